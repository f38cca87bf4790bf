/*
 * mutants: the planted bugs the CLI can switch on (--mutant NAME), so a
 * user can watch each checker catch its bug.
 */
#include <stdio.h>
#include <string.h>

#include "../sim/trace/mutant.h"
#include "cli.h"

void cli_mutants_usage(FILE *out)
{
    for (size_t i = 0; i < mutant_count; i++) {
        fprintf(out, "                    %-21s %s\n", mutant_table[i].name,
                mutant_table[i].what);
    }
}

int cli_mutant_parse(const char *cmd, const char *name, unsigned *node, unsigned *disk)
{
    const struct mutant *m = mutant_find(name, strlen(name));
    if (m) {
        *node |= m->node;
        *disk |= m->disk;
        return 0;
    }
    cli_error(cmd, "--mutant: unknown mutant '%s' (see --help)", name);
    return CLI_USAGE;
}
