/*
 * cmd_explore: `blocksim explore`, crash-state exploration of a trace's
 * workload (props/crashx) or of every tiny workload (--exhaustive).
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../props/crashx.h"
#include "../sim/trace/trace.h"
#include "cli.h"

static void explore_usage(FILE *out)
{
    fprintf(out,
            "usage: blocksim explore TRACE [--max-states N] [--tear-samples N] [--seed S]\n"
            "                        [--time SECONDS] [--point K] [--json] [--quiet] [--no-fork]\n"
            "                        [--mutant NAME] [--host NAME]\n"
            "       blocksim explore --exhaustive [--ops N] [--mutant NAME]\n"
            "Crash the host at every crash point of a workload (as the disks receive\n"
            "each flush, the stack's own included, after each mark record (dm-log-writes'\n"
            "marks: replay-log --end-mark) and at its end) into many states:\n"
            "every prefix of the disk's cache, subsets of it (all of them when it is\n"
            "small) and per-sector tears; reopen the stack on each and read everything\n"
            "back. A TRACE's own crash and restart records stay where they are: the\n"
            "workload between them is explored segment by segment, each after the\n"
            "crashes before it. Where the run up to a crash point is long (200 records\n"
            "or more), each state is a process forked at the crash, one per core at a\n"
            "time, so a state costs what follows the crash; else each state replays\n"
            "the workload up to its crash point. Both give the same states and verdicts.\n"
            "--exhaustive does so for every workload of 1..N operations (default 3) over\n"
            "a tiny alphabet, on the plain and overlay topologies.\n\n"
            "  --max-states N     states per workload and generator (default 10000)\n"
            "  --tear-samples N   torn states per workload (default 1000)\n"
            "  --seed S           sampling seed (default 1)\n"
            "  --time SECONDS     stop after this long (the report says so; not a failure)\n"
            "  --point K          explore only crash point K (as a failure's reproduce line)\n"
            "  --host NAME        crash only host NAME (e.g. colo's secondary, inside its\n"
            "                     checkpoints and failover); default: every host\n"
            "  --out DIR          where a failing state's repro trace goes (default\n"
            "                     ./blocksim-failures, made when needed; checked first)\n"
            "  --json             print the result as JSON\n"
            "  --jsonl FILE       append the result as JSON lines (campaign merge reads\n"
            "                     them): a batch line, and a failure line with its repro\n"
            "  --quiet            no progress line on a terminal\n"
            "  --no-fork          run each state from the start of the workload instead\n"
            "                     of as a process forked at its crash (slower; the same\n"
            "                     states and verdicts)\n"
            "  --mutant NAME      plant a known bug (see blocksim replay --help)\n\n"
            "A failing state is written as a native trace whose crash record names it\n"
            "exactly (at-flush=, plan=): `blocksim replay` on it fails alone.\n"
            "Exit status: 0 every state passed (or the time ran out first), 1 a state\n"
            "failed (with a reproduce: line), 2 usage or input error, 130 interrupted.\n");
}

struct explore_args {
    struct crashx_opts o;
    bool exhaustive, json, quiet, tear_set;
    uint64_t ops;
    const char *out_dir;
    char repro_path[4200];
    char repro_error[256];
    char mutants[128];
    const char *jsonl; /* --jsonl: results file, or NULL */
};

static int explore_opt(struct explore_args *a, int c, const char *val)
{
    uint64_t v;
    switch (c) {
    case 'n': return cli_parse_num("explore", "--max-states", val, &a->o.max_states, false);
    case 's': return cli_parse_num("explore", "--seed", val, &a->o.seed, false);
    case 'x': a->exhaustive = true; return 0;
    case 'j': a->json = true; return 0;
    case 'q': a->quiet = true; return 0;
    case 'F': a->o.no_fork = true; return 0;
    case 'o': a->out_dir = val; return 0;
    case 'e':
        a->tear_set = true;
        return cli_parse_num("explore", "--tear-samples", val, &a->o.tear_samples, false);
    case 't':
        CLI_TRY(cli_parse_num("explore", "--time", val, &v, false));
        a->o.seconds = (double)v;
        return 0;
    case 'p':
        CLI_TRY(cli_parse_range("explore", "--point", val, &v, 0, UINT64_MAX - 1));
        a->o.only_point = v + 1;
        return 0;
    case 'k':
        return cli_parse_range("explore", "--ops", val, &a->ops, 1, 4);
    case 'm':
        return cli_mutant_note("explore", val, &a->o.node_mutants, &a->o.disk_mutants,
                               a->mutants, sizeof(a->mutants));
    case 'J':
        a->jsonl = val;
        return 0;
    case 'H':
        if (strlen(val) == 0 || strlen(val) >= sizeof(a->o.host)) {
            cli_error("explore", "--host: expected a host name of 1..%zu characters, got "
                      "'%s'", sizeof(a->o.host) - 1, val);
            return CLI_USAGE;
        }
        snprintf(a->o.host, sizeof(a->o.host), "%s", val);
        return 0;
    default: return CLI_USAGE;
    }
}

/* 0 to go on, -1 after --help, CLI_USAGE. */
static int explore_parse(struct explore_args *a, int argc, char **argv)
{
    static const struct option options[] = {
        { "max-states", required_argument, NULL, 'n' }, { "seed", required_argument, NULL, 's' },
        { "exhaustive", no_argument, NULL, 'x' },       { "ops", required_argument, NULL, 'k' },
        { "mutant", required_argument, NULL, 'm' },     { "help", no_argument, NULL, 'h' },
        { "tear-samples", required_argument, NULL, 'e' },
        { "time", required_argument, NULL, 't' },       { "point", required_argument, NULL, 'p' },
        { "json", no_argument, NULL, 'j' },             { "quiet", no_argument, NULL, 'q' },
        { "out", required_argument, NULL, 'o' },        { "host", required_argument, NULL, 'H' },
        { "jsonl", required_argument, NULL, 'J' },      { "no-fork", no_argument, NULL, 'F' },
        { NULL, 0, NULL, 0 },
    };
    memset(a, 0, sizeof(*a));
    crashx_opts_default(&a->o);
    a->ops = 3;
    a->out_dir = "blocksim-failures";
    optind = 1;
    int c;
    while ((c = cli_getopt("explore", argc, argv, options)) != -1) {
        if (c == 'h') {
            explore_usage(stdout);
            return -1;
        }
        CLI_TRY(explore_opt(a, c, optarg));
    }
    if (a->exhaustive && optind != argc) {
        cli_error("explore", "--exhaustive takes no TRACE");
        return CLI_USAGE;
    }
    if (!a->exhaustive && optind != argc - 1) {
        cli_error("explore", "expected one TRACE (see --help)");
        return CLI_USAGE;
    }
    if (a->jsonl && cli_out_file_check("explore", "--jsonl", a->jsonl) != 0) {
        return CLI_USAGE;
    }
    return cli_out_dir_check("explore", "--out", a->out_dir);
}

/* OUT/explore-<trace name>-point<K>.trace (or -exhaustive); on failure the
 * trace goes to stdout, never lost. */
static void explore_write_repro(struct explore_args *a, const char *path,
                                const struct crashx_result *r)
{
    const char *base = path ? strrchr(path, '/') : NULL;
    base = base ? base + 1 : path ? path : "exhaustive";
    size_t stem = strcspn(base, ".");
    snprintf(a->repro_path, sizeof(a->repro_path), "%s/explore-%.*s-point%" PRIu64 ".trace",
             a->out_dir, (int)(stem ? stem : strlen(base)), base, r->fail_point);
    mkdir(a->out_dir, 0777); /* may exist; fopen says what is wrong */
    FILE *f = fopen(a->repro_path, "w");
    bool ok = f && fputs(r->repro, f) >= 0;
    ok = f && fclose(f) == 0 && ok;
    if (!ok) {
        snprintf(a->repro_error, sizeof(a->repro_error), "%.200s: %s", a->repro_path,
                 strerror(errno));
        a->repro_path[0] = '\0';
    }
}

static void explore_reproduce(const struct explore_args *a, const char *path,
                              const struct crashx_result *r, char *buf, size_t size)
{
    if (a->exhaustive) {
        snprintf(buf, size, "blocksim explore --exhaustive --ops %" PRIu64 "%s", a->ops,
                 a->mutants);
        return;
    }
    snprintf(buf, size, "blocksim explore %s --point %" PRIu64 " --seed %" PRIu64
             " --max-states %" PRIu64 " --tear-samples %" PRIu64 "%s%s%s", path, r->fail_point,
             a->o.seed, a->o.max_states, a->o.tear_samples, a->o.host[0] ? " --host " : "",
             a->o.host, a->mutants);
}

static void explore_print(const struct explore_args *a, const char *path,
                          const struct crashx_result *r)
{
    uint64_t states = r->states[CRASHX_PREFIX] + r->states[CRASHX_SUBSET] +
                      r->states[CRASHX_TEAR];
    double rate = r->seconds > 0 ? (double)states / r->seconds : 0.0;
    char cmd[1024];
    explore_reproduce(a, path, r, cmd, sizeof(cmd));
    if (a->json) {
        json_t *o = json_pack("{s:s, s:I, s:I, s:{s:I, s:I, s:I}, s:I, s:I, s:b, s:b, s:f, s:f}",
                              "verdict", r->failed ? "fail" : "pass",
                              "workloads", (json_int_t)r->workloads,
                              "points", (json_int_t)r->points,
                              "states", "prefix", (json_int_t)r->states[CRASHX_PREFIX],
                              "subset", (json_int_t)r->states[CRASHX_SUBSET],
                              "tear", (json_int_t)r->states[CRASHX_TEAR],
                              "distinct", (json_int_t)r->distinct,
                              "repeated", (json_int_t)r->dups,
                              "exhaustive", r->exhaustive, "stopped_early", r->stopped,
                              "seconds", r->seconds, "states_per_second", rate);
        json_object_set_new(o, "seed", json_integer((json_int_t)a->o.seed));
        if (r->failed) {
            json_object_set_new(o, "repro", a->repro_path[0] ? json_string(a->repro_path)
                                                             : json_null());
            if (!a->repro_path[0]) {
                json_object_set_new(o, "repro_trace", json_string(r->repro));
            }
            json_object_set_new(o, "message", json_string(r->message));
            json_object_set_new(o, "point", json_integer((json_int_t)r->fail_point));
            json_object_set_new(o, "reproduce", json_string(cmd));
        }
        json_dumpf(o, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        fputc('\n', stdout);
        json_decref(o);
        return;
    }
    printf("explore: %s  %" PRIu64 " workload(s), %" PRIu64 " crash point(s), %" PRIu64
           " prefix + %" PRIu64 " subset + %" PRIu64 " tear states, %" PRIu64
           " distinct contents (%" PRIu64 " repeated)%s; %.2f s, %.0f states/s%s\n",
           r->failed ? "FAIL" : "pass", r->workloads, r->points, r->states[CRASHX_PREFIX],
           r->states[CRASHX_SUBSET], r->states[CRASHX_TEAR], r->distinct, r->dups,
           r->exhaustive ? "; subsets exhaustive" : "; subsets sampled", r->seconds, rate,
           r->stopped ? " (stopped early: not every state ran)" : "");
    if (!r->failed) {
        return;
    }
    printf("  %s\n", r->message);
    if (a->repro_path[0]) {
        printf("  repro: %s (blocksim replay %s fails alone)\n", a->repro_path, a->repro_path);
    } else {
        printf("  the repro trace could not be written (%s); here it is:\n%s", a->repro_error,
               r->repro);
    }
    printf("  reproduce: %s\n", cmd);
}

/* The result as results lines: the states run as a batch (property
 * "explore"), and the failure with its repro trace. */
static int explore_jsonl(const struct explore_args *a, const char *path,
                         const struct crashx_result *r)
{
    FILE *f = cli_jsonl_open("explore", a->jsonl);
    if (!f) {
        return -1;
    }
    uint64_t states = r->states[CRASHX_PREFIX] + r->states[CRASHX_SUBSET] +
                      r->states[CRASHX_TEAR];
    json_t *b = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:f, s:b}", "type", "batch",
                          "command", "explore", "property", "explore", "trace",
                          path ? path : "exhaustive", "seed", (json_int_t)a->o.seed,
                          "trials", (json_int_t)states,
                          "passed", (json_int_t)(states - r->failed), "seconds", r->seconds,
                          "interrupted", r->stopped);
    int ret = cli_jsonl_put(f, b);
    if (ret == 0 && r->failed && r->repro) {
        char cmd[1024];
        explore_reproduce(a, path, r, cmd, sizeof(cmd));
        json_t *o = cli_failure_json("explore", "explore", r->message, r->repro,
                                     strlen(r->repro));
        const char *v = strstr(r->message, ": "); /* "crash <where>: <property>: ..." */
        v = v ? v + 2 : r->message;
        json_object_set_new(o, "kind", json_stringn(v, strcspn(v, ":")));
        json_object_set_new(o, "seed", json_integer((json_int_t)a->o.seed));
        json_object_set_new(o, "trial", json_integer((json_int_t)r->fail_point));
        json_object_set_new(o, "repro", a->repro_path[0] ? json_string(a->repro_path)
                                                          : json_null());
        json_object_set_new(o, "mutants", json_string(a->mutants));
        json_object_set_new(o, "reproduce", json_string(cmd));
        ret = cli_jsonl_put(f, o);
    }
    return fclose(f) != 0 || ret < 0 ? -1 : 0;
}

int cmd_explore(int argc, char **argv)
{
    struct explore_args a;
    int ret = explore_parse(&a, argc, argv);
    if (ret != 0) {
        return ret < 0 ? CLI_OK : ret;
    }
    cli_catch_stop_signals();
    a.o.stop = &cli_stop;
    struct crashx_result r;
    const char *path = a.exhaustive ? NULL : argv[optind];
    if (a.exhaustive) {
        a.o.tear_samples = a.tear_set ? a.o.tear_samples : 32; /* tiny workloads */
        crashx_exhaustive((unsigned)a.ops, &a.o, &r);
    } else {
        const char *format = "auto";
        struct trace t;
        CLI_TRY(trace_load("explore", path, &format, NULL, &t));
        a.o.progress = isatty(2) && !a.quiet && !a.json;
        struct err e = { .file = path };
        ret = crashx_run(&t, &a.o, &r, &e);
        trace_fini(&t);
        if (ret < 0) {
            return cli_input_error("explore", &e);
        }
    }
    if (r.failed && r.repro) {
        explore_write_repro(&a, path, &r);
    }
    explore_print(&a, path, &r);
    if (a.jsonl && explore_jsonl(&a, path, &r) < 0) {
        cli_error("explore", "--jsonl %s: %s (the result above stands)", a.jsonl,
                  strerror(errno));
    }
    crashx_result_fini(&r);
    return r.failed ? CLI_FAIL : cli_stop ? 130 : CLI_OK;
}
