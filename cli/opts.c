/*
 * opts: what every subcommand's argument parsing shares: getopt_long with
 * blocksim's own messages (one line naming the command and the option, a
 * "see --help" hint), and strict number parsing (no sign, no junk, no
 * overflow).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../ref/base.h"
#include "../sim/trace/import_fio.h"
#include "cli.h"

int cli_getopt(const char *cmd, int argc, char **argv, const struct option *opts)
{
    opterr = 0; /* our messages, not getopt's */
    int c = getopt_long(argc, argv, ":h", opts, NULL);
    if (c == '?' || c == ':') {
        const char *arg = argv[optind - 1];
        char shortopt[3] = { '-', (char)optopt, '\0' };
        /* A long option's text is argv[optind - 1]; a short one's is -optopt. */
        const char *name = (arg && arg[0] == '-' && arg[1] == '-') || !optopt ? arg : shortopt;
        if (c == ':') {
            cli_error(cmd, "option '%s' needs a value (see --help)", name);
        } else if (optopt && strncmp(arg, "--", 2) == 0) {
            cli_error(cmd, "option '%s' takes no value (see --help)", name);
        } else {
            cli_error(cmd, "unknown option '%s' (see --help)", name);
        }
        return '?';
    }
    return c;
}

int cli_parse_num(const char *cmd, const char *opt, const char *val, uint64_t *out,
                  bool size)
{
    int ret = size ? parse_size(val, out) : parse_u64(val, out);
    if (ret < 0) {
        cli_error(cmd, "%s: expected %s, got '%s'", opt,
                  size ? "a size such as 1G" : "an unsigned integer", val);
        return CLI_USAGE;
    }
    return 0;
}

int cli_parse_range(const char *cmd, const char *opt, const char *val, uint64_t *out,
                    uint64_t min, uint64_t max)
{
    if (parse_u64(val, out) < 0 || *out < min || *out > max) {
        cli_error(cmd, "%s: expected %" PRIu64 "..%" PRIu64 ", got '%s'", opt, min, max, val);
        return CLI_USAGE;
    }
    return 0;
}

/* The directory that holds @path (a copy in @dir). */
static void dir_of(const char *path, char *dir, size_t size)
{
    const char *slash = strrchr(path, '/');
    if (!slash) {
        snprintf(dir, size, ".");
    } else if (slash == path) {
        snprintf(dir, size, "/");
    } else {
        snprintf(dir, size, "%.*s", (int)(slash - path), path);
    }
}

/* Is the directory that would hold @path there and writable? Else print
 * why (for @opt) and return CLI_USAGE. */
static int parent_check(const char *cmd, const char *opt, const char *path)
{
    struct stat st;
    char parent[4096];
    dir_of(path, parent, sizeof(parent));
    if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode) || access(parent, W_OK | X_OK) != 0) {
        cli_error(cmd, "%s %s: cannot be written (%s is not a writable directory)", opt, path,
                  parent);
        return CLI_USAGE;
    }
    return 0;
}

int cli_out_dir_check(const char *cmd, const char *opt, const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode)) {
            cli_error(cmd, "%s %s: not a directory", opt, dir);
            return CLI_USAGE;
        }
        if (access(dir, W_OK | X_OK) != 0) {
            cli_error(cmd, "%s %s: cannot write there: %s", opt, dir, strerror(errno));
            return CLI_USAGE;
        }
        return 0;
    }
    return parent_check(cmd, opt, dir); /* made when first needed */
}

int cli_out_file_check(const char *cmd, const char *opt, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        cli_error(cmd, "%s %s: is a directory", opt, path);
        return CLI_USAGE;
    }
    return parent_check(cmd, opt, path);
}

int cli_align_parse(const char *cmd, const char *val, struct import_fio_opts *o)
{
    if (strcmp(val, "reject") != 0 && strcmp(val, "round") != 0) {
        cli_error(cmd, "--align: expected reject or round, got '%s'", val);
        return CLI_USAGE;
    }
    o->align_round = strcmp(val, "round") == 0;
    return 0;
}

int cli_parse_pair(const char *val, char sep, bool size, uint64_t *first, uint64_t *second)
{
    const char *at = strchr(val, sep);
    char head[32];
    if (!at || (size_t)(at - val) >= sizeof(head)) {
        return -EINVAL;
    }
    memcpy(head, val, (size_t)(at - val));
    head[at - val] = '\0';
    int (*parse)(const char *, uint64_t *) = size ? parse_size : parse_u64;
    return parse(head, first) < 0 || parse(at + 1, second) < 0 ? -EINVAL : 0;
}

volatile sig_atomic_t cli_stop;

static void on_stop_signal(int sig)
{
    (void)sig;
    cli_stop = 1;
}

void cli_catch_stop_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop_signal;
    sa.sa_flags = SA_RESTART; /* poll(2) still returns EINTR: loops see cli_stop */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

int cli_input_error(const char *cmd, const struct err *e)
{
    char msg[1200];
    err_format(e, msg, sizeof(msg));
    cli_error(cmd, "%s", msg);
    return CLI_USAGE;
}
