/*
 * cli: the blocksim command's subcommands.
 *
 * Role: parse arguments (getopt_long), run, print, and map outcomes to exit
 *   status: 0 ok, 1 a property or expectation failed, 2 usage or bad input.
 * Model: DESIGN.md "Command line".
 * Invariants: errors go to stderr and name what and where; nothing is
 *   printed to stdout on a usage error.
 * Ownership: each command frees what it allocated before returning.
 * Async contract: none.
 * Depends on: sim/ (world, trace, importers, report).
 */
#ifndef BLOCKSIM_CLI_H
#define BLOCKSIM_CLI_H

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

int cmd_replay(int argc, char **argv);
int cmd_convert(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_shrink(int argc, char **argv);
int cmd_explore(int argc, char **argv);
int cmd_nbd_serve(int argc, char **argv);
int cmd_nbd_check(int argc, char **argv);
int cmd_quorum(int argc, char **argv);

/* Load @path as @format ("auto" is resolved in place) into @t; on error
 * prints it and returns CLI_USAGE. */
struct trace;
int trace_load(const char *cmd, const char *path, const char **format, struct trace *t);

/* Parse option @opt's value as an unsigned integer (@size: "4K" units too);
 * on error prints "blocksim CMD: OPT: expected ..." and returns CLI_USAGE. */
int cli_parse_num(const char *cmd, const char *opt, const char *val, uint64_t *out,
                  bool size);

/* Planted bugs by name: adds its bits, or prints the error and returns
 * CLI_USAGE. */
int cli_mutant_parse(const char *cmd, const char *name, unsigned *node, unsigned *disk);
void cli_mutants_usage(FILE *out);

/* Print "blocksim CMD: MSG" to stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
