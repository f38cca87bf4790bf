/*
 * main: the blocksim command: a table of subcommands.
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../ref/base.h"
#include "cli.h"

struct command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    { "replay", cmd_replay, "replay a trace through the simulated stack and judge it" },
    { "convert", cmd_convert, "convert a trace (fio iolog or native) to native form" },
    { "check", cmd_check, "run property suites over generated scenarios, shrink failures" },
    { "shrink", cmd_shrink, "shrink a failing trace to a smaller one that still fails" },
    { "explore", cmd_explore, "crash a workload into every state the disk allows, check each" },
    { "quorum", cmd_quorum, "run the reference quorum over image files (QEMU cross-check)" },
    { "nbd-serve", cmd_nbd_serve, "serve the reference stack over NBD on a real socket" },
    { "oracle", cmd_oracle, "run a trace against a real NBD server or QEMU, judge every read" },
    { "campaign", cmd_campaign, "merge campaign results into a failure database, replay it" },
    { "nbd-check", cmd_nbd_check, "drive a real NBD server with blocksim's client, check reads" },
};

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "blocksim %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

static void usage(FILE *out)
{
    fprintf(out, "usage: blocksim COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
        fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
    }
    fprintf(out, "\n'blocksim COMMAND --help' describes a command; 'blocksim --version' "
            "prints the version.\nExit status: 0 ok, 1 a property failed, 2 usage or input "
            "error.\n");
}

int main(int argc, char **argv)
{
    /* jansson seeds its hash tables from the OS unless told otherwise. */
    json_object_seed(0x626c6f636b73696dull & 0xffffffffu);
    if (argc < 2) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        usage(stdout);
        return CLI_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("blocksim %s\n", BLOCKSIM_VERSION);
        return CLI_OK;
    }
    for (size_t i = 0; i < ARRAY_LEN(commands); i++) {
        if (strcmp(argv[1], commands[i].name) == 0) {
            return commands[i].run(argc - 1, argv + 1);
        }
    }
    fprintf(stderr, "blocksim: unknown command '%s' (see blocksim --help)\n", argv[1]);
    return CLI_USAGE;
}
