/*
 * cli: the blocksim command's subcommands.
 *
 * Role: parse arguments (getopt_long), run, print, and map outcomes to exit
 *   status: 0 ok, 1 a property or expectation failed, 2 usage or bad input.
 * Model: ../shared/DESIGN.md "Command line".
 * Invariants: errors go to stderr and name what and where; nothing is
 *   printed to stdout on a usage error.
 * Ownership: each command frees what it allocated before returning.
 * Async contract: none.
 * Depends on: sim/ (world, trace, importers, report), props/ (engine,
 *   registry, crash exploration), ref/ (NBD, quorum).
 */
#ifndef BLOCKSIM_CLI_H
#define BLOCKSIM_CLI_H

enum { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2 };

#define BLOCKSIM_VERSION "0.3.0"

/* Return the caller's CLI status on any non-zero one (CLI_USAGE is positive,
 * so ref/base.h's TRY, which stops on negative errnos only, would go on). */
#define CLI_TRY(expr)                                                        \
    do {                                                                     \
        int cli_try_ret_ = (expr);                                           \
        if (cli_try_ret_ != 0) {                                             \
            return cli_try_ret_;                                             \
        }                                                                    \
    } while (0)

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
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
int cmd_campaign(int argc, char **argv);
int cmd_oracle(int argc, char **argv);

/* Campaign results as JSON lines (cmd_campaign.c): open @path for appending
 * (NULL, the error printed, when it cannot be); append @o (consumed) as one
 * line, on disk before it returns (0, or -1); the digest of a trace's
 * records (comments left out); a failure line of @command's. */
struct json_t;
FILE *cli_jsonl_open(const char *cmd, const char *path);
int cli_jsonl_put(FILE *f, struct json_t *o);
uint64_t cli_trace_digest(const char *text, size_t len);
struct json_t *cli_failure_json(const char *command, const char *property, const char *message,
                                const char *trace, size_t len);

/* Load @path ("-": standard input) as @format ("auto" is resolved in place)
 * into @t; @fio (may be NULL) holds the fio importer's options. On error
 * prints it and returns CLI_USAGE. */
struct trace;
struct import_fio_opts;
/* The formats trace_load reads (besides auto). */
#define TRACE_FORMATS "native, fio, blkparse, msr, alibaba, tencent, dm-log-writes"
/* Is @name (the value of @cmd's @option) a format trace_load reads, or
 * with @scenario "scenario"? Else prints the error, returns CLI_USAGE. */
int trace_format_check(const char *cmd, const char *option, const char *name,
                       bool scenario);
int trace_load(const char *cmd, const char *path, const char **format,
               const struct import_fio_opts *fio, struct trace *t);

/* getopt_long over @opts (short option -h is 'h') with blocksim's messages:
 * an unknown option, a missing value or a value given to a flag prints one
 * "blocksim CMD: ... (see --help)" line and returns '?'. */
struct option;
int cli_getopt(const char *cmd, int argc, char **argv, const struct option *opts);

/* Parse option @opt's value as an unsigned integer (@size: "4K" units too);
 * on error prints "blocksim CMD: OPT: expected ..." and returns CLI_USAGE. */
int cli_parse_num(const char *cmd, const char *opt, const char *val, uint64_t *out,
                  bool size);

/* Print @e as "blocksim CMD: FILE:LINE: field N: MSG"; returns CLI_USAGE. */
struct err;
int cli_input_error(const char *cmd, const struct err *e);

/* "A<sep>B" into two numbers (sizes such as 4K when @size): 0 or -EINVAL. */
int cli_parse_pair(const char *val, char sep, bool size, uint64_t *first, uint64_t *second);

/* SIGINT and SIGTERM set cli_stop, and long-running commands stop soon after,
 * cleanly: partial results printed, sockets closed. */
extern volatile sig_atomic_t cli_stop;
void cli_catch_stop_signals(void);

/* --align reject|round into @o's align_round; CLI_USAGE on a bad value. */
int cli_align_parse(const char *cmd, const char *val, struct import_fio_opts *o);

/* Output paths, checked before any work: a directory that exists and is
 * writable, or that can be made in a writable parent; a file whose
 * directory is writable. Each prints the error and returns CLI_USAGE. */
int cli_out_dir_check(const char *cmd, const char *opt, const char *dir);
int cli_out_file_check(const char *cmd, const char *opt, const char *path);

/* An unsigned integer in @min..@max; else prints "OPT: expected MIN..MAX"
 * and returns CLI_USAGE. */
int cli_parse_range(const char *cmd, const char *opt, const char *val, uint64_t *out,
                    uint64_t min, uint64_t max);

/* Planted bugs by name: adds its bits, or prints the error and returns
 * CLI_USAGE. */
int cli_mutant_parse(const char *cmd, const char *name, uint64_t *node, unsigned *disk);
/* The same, and " --mutant NAME" appended to @names (for reproduce lines). */
int cli_mutant_note(const char *cmd, const char *name, uint64_t *node, unsigned *disk,
                    char *names, size_t size);
void cli_mutants_usage(FILE *out);

/* Print "blocksim CMD: MSG" to stderr. */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
