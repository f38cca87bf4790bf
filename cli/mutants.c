/*
 * mutants: the planted bugs the CLI can switch on (--mutant NAME), so a
 * user can watch each checker catch its bug.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sim/trace/mutant.h"
#include "cli.h"

void cli_mutants_usage(FILE *out)
{
    for (size_t i = 0; i < mutant_count(); i++) {
        struct mutant m = mutant_get(i);
        fprintf(out, "                    %-21s %s\n", m.name, m.what);
    }
    fprintf(out, "                    %-21s print them all (one a line) and exit\n", "list");
}

int cli_mutant_note(const char *cmd, const char *name, uint64_t *node, unsigned *disk,
                    char *names, size_t size)
{
    CLI_TRY(cli_mutant_parse(cmd, name, node, disk));
    size_t at = strlen(names);
    snprintf(names + at, size - at, " --mutant %s", name);
    return 0;
}

int cli_mutant_parse(const char *cmd, const char *name, uint64_t *node, unsigned *disk)
{
    if (strcmp(name, "list") == 0) { /* print every planted bug, do nothing else */
        for (size_t i = 0; i < mutant_count(); i++) {
            struct mutant m = mutant_get(i);
            printf("%-22s %s\n", m.name, m.what);
        }
        fflush(stdout);
        exit(CLI_OK);
    }
    struct mutant m;
    if (mutant_find(name, strlen(name), &m) == 0) {
        *node |= m.node;
        *disk |= m.disk;
        return 0;
    }
    cli_error(cmd, "--mutant: unknown mutant '%s' (see --help)", name);
    return CLI_USAGE;
}
