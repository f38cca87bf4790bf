/*
 * cmd_check: `blocksim check` (property suites) and `blocksim shrink`
 * (shrink an existing failing trace).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../props/engine.h"
#include "../props/pool.h"
#include "../props/registry.h"
#include "../sim/trace/trace.h"
#include "cli.h"

#define CHECK_OUT_DEFAULT "blocksim-failures"

struct check_args {
    struct engine_opts o;
    bool list;
    bool json;
    bool quiet;
    char mutants[128];
    const char *jsonl;  /* --jsonl: results file, or NULL */
    FILE *jf;
};

static void check_usage(FILE *out)
{
    fprintf(out,
            "usage: blocksim check PROPERTY... [OPTIONS]   (PROPERTY 'all': every one)\n"
            "       blocksim check --list\n"
            "Generate scenarios from a seed, check PROPERTY on each, and on the first\n"
            "failure shrink it and write it as a native trace that `blocksim replay`\n"
            "reproduces on its own (the planted bugs it needs are 'mutant' records in it).\n\n"
            "  --trials N       trials per property (default 1000; 0: until --time)\n"
            "  --seed S         campaign seed (default 1)\n"
            "  --time SECONDS   stop each property after this long\n"
            "  --shard I/N      run only trials i with i %% N == I (many machines, one "
            "campaign)\n"
            "  --out DIR        where failing traces go, made when the first one is\n"
            "                   written (default ./" CHECK_OUT_DEFAULT "); checked before\n"
            "                   any trial runs. Nothing is written when every trial passes.\n"
            "  --no-fork        run trials in this process, one at a time (for a debugger;\n"
            "                   a crash ends the run, its trial kept in OUT as a trail)\n"
            "  --timeout S      fork mode: a trial running longer hangs (default 30)\n"
            "  --jobs N         fork mode: trials run at once by long-lived workers\n"
            "                   (default: one a core, at most 16); the counts, the failing\n"
            "                   trial and its repro are those of running them one by one\n"
            "  --shrink-steps N candidate runs the shrinker may spend (default 5000)\n"
            "  --json           print results as JSON (seed, shard, repro, reproduce)\n"
            "  --jsonl FILE     append results as JSON lines (a batch line a property, a\n"
            "                   failure line with its shrunk trace), each on disk before\n"
            "                   the next trial; `blocksim campaign merge` reads them\n"
            "  --quiet          no progress line on a terminal\n"
            "  --mutant NAME    plant a known bug (repeatable):\n");
    cli_mutants_usage(out);
    fprintf(out, "\nA found failure is never lost: when its trace cannot be written, it is\n"
            "printed to standard output. ^C stops the run and prints what ran so far.\n"
            "Exit status: 0 every property held, 1 one failed, 2 usage error,\n"
            "130 interrupted (no failure found before).\n");
}

static int parse_shard(const char *val, struct engine_opts *o)
{
    uint64_t i;
    uint64_t n;
    if (cli_parse_pair(val, '/', false, &i, &n) < 0 || n == 0 || i >= n || n > UINT32_MAX) {
        cli_error("check", "--shard: expected I/N with I < N, got '%s'", val);
        return CLI_USAGE;
    }
    o->shard_index = (unsigned)i;
    o->shard_count = (unsigned)n;
    return 0;
}

static int check_opt(struct check_args *a, int c, const char *val)
{
    uint64_t v;
    switch (c) {
    case 'l':
        a->list = true;
        return 0;
    case 'n':
        return cli_parse_num("check", "--trials", val, &a->o.trials, false);
    case 's':
        return cli_parse_num("check", "--seed", val, &a->o.seed, false);
    case 't':
        CLI_TRY(cli_parse_num("check", "--time", val, &v, false));
        a->o.seconds = (double)v;
        return 0;
    case 'S':
        return parse_shard(val, &a->o);
    case 'o':
        a->o.out_dir = val;
        return 0;
    case 'F':
        a->o.fork = false;
        return 0;
    case 'T':
        CLI_TRY(cli_parse_range("check", "--timeout", val, &v, 1, 86400));
        a->o.timeout_s = (unsigned)v;
        return 0;
    case 'k':
        return cli_parse_num("check", "--shrink-steps", val, &a->o.shrink_steps, false);
    case 'w':
        CLI_TRY(cli_parse_range("check", "--jobs", val, &v, 1, POOL_MAX));
        a->o.workers = (unsigned)v;
        return 0;
    case 'j':
        a->json = true;
        return 0;
    case 'J':
        a->jsonl = val;
        return 0;
    case 'q':
        a->quiet = true;
        return 0;
    case 'm':
        return cli_mutant_note("check", val, &a->o.node_mutants, &a->o.disk_mutants, a->mutants,
                               sizeof(a->mutants));
    case 'h':
        return -1;
    default:
        return CLI_USAGE;
    }
}

static int check_parse(struct check_args *a, int argc, char **argv)
{
    static const struct option options[] = {
        { "list", no_argument, NULL, 'l' },      { "trials", required_argument, NULL, 'n' },
        { "seed", required_argument, NULL, 's' }, { "time", required_argument, NULL, 't' },
        { "shard", required_argument, NULL, 'S' }, { "out", required_argument, NULL, 'o' },
        { "no-fork", no_argument, NULL, 'F' },   { "timeout", required_argument, NULL, 'T' },
        { "shrink-steps", required_argument, NULL, 'k' },
        { "jobs", required_argument, NULL, 'w' },
        { "json", no_argument, NULL, 'j' },      { "mutant", required_argument, NULL, 'm' },
        { "jsonl", required_argument, NULL, 'J' },
        { "quiet", no_argument, NULL, 'q' },     { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    memset(a, 0, sizeof(*a));
    engine_opts_default(&a->o);
    a->o.fork = true;
    a->o.out_dir = CHECK_OUT_DEFAULT;
    optind = 1;
    int c;
    while ((c = cli_getopt("check", argc, argv, options)) != -1) {
        int ret = check_opt(a, c, optarg);
        if (ret == -1) {
            check_usage(stdout);
            return -1;
        }
        if (ret != 0) {
            return CLI_USAGE;
        }
    }
    a->o.progress = isatty(2) && !a->quiet && !a->json;
    return 0;
}

static void check_list(void)
{
    for (size_t i = 0; i < registry_count; i++) {
        printf("%-18s %s\n", registry_props[i].name, registry_props[i].summary);
    }
}

/* The command that reruns this campaign's property @p (its failure, with
 * the same seed and shard). */
static void check_reproduce(const struct prop *p, const struct check_args *a,
                            const struct engine_result *r, char *buf, size_t size)
{
    if (r->repro_path[0]) {
        snprintf(buf, size, "blocksim replay%s %s", p->replay_flags ? p->replay_flags : "",
                 r->repro_path);
        return;
    }
    int n = snprintf(buf, size, "blocksim check %s --seed %" PRIu64 " --trials %" PRIu64 "%s",
                     p->name, a->o.seed, r->fail_trial + 1, a->mutants);
    if (a->o.shard_count > 1 && n > 0 && (size_t)n < size) {
        snprintf(buf + n, size - (size_t)n, " --shard %u/%u", a->o.shard_index,
                 a->o.shard_count);
    }
}

static json_t *result_json(const struct prop *p, const struct check_args *a,
                           const struct engine_result *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "property", json_string(p->name));
    json_object_set_new(o, "verdict", json_string(r->failed ? "fail" : "pass"));
    json_object_set_new(o, "seed", json_integer((json_int_t)a->o.seed));
    if (a->o.shard_count > 1) {
        json_object_set_new(o, "shard", json_pack("[I, I]", (json_int_t)a->o.shard_index,
                                                  (json_int_t)a->o.shard_count));
    }
    json_object_set_new(o, "trials", json_integer((json_int_t)r->trials));
    json_object_set_new(o, "passed", json_integer((json_int_t)r->passed));
    json_object_set_new(o, "duplicates", json_integer((json_int_t)r->dups));
    json_object_set_new(o, "operations", json_integer((json_int_t)r->ops));
    json_object_set_new(o, "seconds", json_real(r->seconds));
    json_object_set_new(o, "cpu_seconds", json_real(r->cpu_seconds));
    json_object_set_new(o, "interrupted", json_boolean(r->interrupted));
    if (r->failed) {
        char cmd[768];
        check_reproduce(p, a, r, cmd, sizeof(cmd));
        json_object_set_new(o, "message", json_string(r->message));
        json_object_set_new(o, "trial", json_integer((json_int_t)r->fail_trial));
        json_object_set_new(o, "ops_before_shrink", json_integer((json_int_t)r->ops_before));
        json_object_set_new(o, "ops_after_shrink", json_integer((json_int_t)r->ops_after));
        json_object_set_new(o, "shrink_steps", json_integer((json_int_t)r->shrink_steps));
        json_object_set_new(o, "shrink_stopped_early", json_boolean(r->shrink_stopped_early));
        json_object_set_new(o, "repro", r->repro_path[0] ? json_string(r->repro_path)
                                                         : json_null());
        json_object_set_new(o, "reproduce", json_string(cmd));
        if (r->repro_error[0]) {
            char *text = NULL;
            size_t size = 0;
            FILE *f = open_memstream(&text, &size);
            if (f && engine_repro_print(p, &a->o, r, f) == 0 && fclose(f) == 0) {
                json_object_set_new(o, "repro_trace", json_stringn(text, size));
            } else if (f) {
                fclose(f);
            }
            free(text);
            json_object_set_new(o, "repro_error", json_string(r->repro_error));
        }
    }
    return o;
}

static void result_text(const struct prop *p, const struct check_args *a,
                        const struct engine_result *r)
{
    printf("%-18s %s  %" PRIu64 " trials (%" PRIu64 " passed, %" PRIu64 " duplicate) in "
           "%.2f s, %.0f trials/s (%.0f a CPU second), %.1f operations a trial%s\n",
           p->name, r->failed ? "FAIL" : "pass", r->trials, r->passed, r->dups, r->seconds,
           r->seconds > 0 ? (double)r->trials / r->seconds : 0.0,
           r->cpu_seconds > 0 ? (double)r->trials / r->cpu_seconds : 0.0,
           r->trials ? (double)r->ops / (double)r->trials : 0.0,
           r->interrupted ? " (interrupted)" : "");
    if (!r->failed) {
        return;
    }
    printf("  seed %" PRIu64 ", trial %" PRIu64 ": %s\n", a->o.seed, r->fail_trial,
           r->message);
    printf("  shrunk from %zu to %zu operations in %" PRIu64 " steps%s\n", r->ops_before,
           r->ops_after, r->shrink_steps,
           r->shrink_stopped_early ? " (stopped early: budget spent)" : "");
    if (r->repro_error[0]) {
        /* Never lose a found failure: the trace goes to stdout instead. */
        printf("  the trace could not be written (%s); here it is:\n", r->repro_error);
        if (engine_repro_print(p, &a->o, r, stdout) < 0) {
            printf("  (standard output failed too: seed %" PRIu64 ", trial %" PRIu64 ")\n",
                   a->o.seed, r->fail_trial);
        }
    }
    char cmd[768];
    check_reproduce(p, a, r, cmd, sizeof(cmd));
    printf("  reproduce: %s\n", cmd);
}

/* The run's lines in the results file: its batch, and its failure with the
 * shrunk trace (a campaign's database is built from them alone). */
static void check_jsonl(const struct prop *p, const struct check_args *a,
                        const struct engine_result *r)
{
    json_t *shard = json_pack("[I, I]", (json_int_t)a->o.shard_index,
                              (json_int_t)(a->o.shard_count ? a->o.shard_count : 1));
    json_t *batch = json_pack("{s:s, s:s, s:s, s:I, s:O, s:I, s:I, s:f, s:b}", "type", "batch",
                              "command", "check", "property", p->name, "seed",
                              (json_int_t)a->o.seed, "shard", shard, "trials",
                              (json_int_t)r->trials, "passed", (json_int_t)r->passed,
                              "seconds", r->seconds, "interrupted", r->interrupted);
    int ret = cli_jsonl_put(a->jf, batch);
    if (r->failed && ret == 0) {
        char *text = NULL;
        size_t len = 0;
        FILE *f = open_memstream(&text, &len);
        bool ok = f && engine_repro_print(p, &a->o, r, f) == 0;
        ok = f && fclose(f) == 0 && ok;
        char cmd[768];
        check_reproduce(p, a, r, cmd, sizeof(cmd));
        json_t *o = cli_failure_json("check", p->name, r->message, ok ? text : "",
                                     ok ? len : 0);
        json_object_set(o, "shard", shard);
        json_object_set_new(o, "seed", json_integer((json_int_t)a->o.seed));
        json_object_set_new(o, "trial", json_integer((json_int_t)r->fail_trial));
        json_object_set_new(o, "repro", r->repro_path[0] ? json_string(r->repro_path)
                                                         : json_null());
        json_object_set_new(o, "mutants", json_string(a->mutants));
        json_object_set_new(o, "reproduce", json_string(cmd));
        ret = cli_jsonl_put(a->jf, o);
        free(text);
    }
    json_decref(shard);
    if (ret < 0) {
        cli_error("check", "--jsonl %s: %s (the results above stand)", a->jsonl,
                  strerror(errno));
    }
}

static int check_one(const struct prop *p, const struct check_args *a, json_t *all)
{
    struct engine_result r;
    engine_run(p, &a->o, &r);
    if (a->jf) {
        check_jsonl(p, a, &r);
    }
    if (all) {
        json_array_append_new(all, result_json(p, a, &r));
    } else {
        result_text(p, a, &r);
        fflush(stdout);
    }
    engine_result_fini(&r);
    return r.failed ? CLI_FAIL : r.interrupted ? 130 : CLI_OK;
}

int cmd_check(int argc, char **argv)
{
    struct check_args a;
    int ret = check_parse(&a, argc, argv);
    if (ret != 0) {
        return ret < 0 ? CLI_OK : ret;
    }
    if (a.list) {
        check_list();
        return CLI_OK;
    }
    if (optind == argc) {
        cli_error("check", "name at least one property (see --list)");
        return CLI_USAGE;
    }
    for (int i = optind; i < argc; i++) {
        if (strcmp(argv[i], "all") != 0 && !registry_find(argv[i])) {
            cli_error("check", "unknown property '%s' (see --list)", argv[i]);
            return CLI_USAGE;
        }
    }
    CLI_TRY(cli_out_dir_check("check", "--out", a.o.out_dir));
    if (a.jsonl && !(a.jf = cli_jsonl_open("check", a.jsonl))) {
        return CLI_USAGE;
    }
    cli_catch_stop_signals();
    a.o.stop = &cli_stop;
    json_t *all = a.json ? json_array() : NULL;
    int status = CLI_OK;
    for (int i = optind; i < argc && !cli_stop; i++) {
        bool every = strcmp(argv[i], "all") == 0;
        for (size_t k = 0; k < registry_count && !cli_stop; k++) {
            const struct prop *p = &registry_props[k];
            if (every || strcmp(argv[i], p->name) == 0) {
                int one = check_one(p, &a, all);
                status = one == CLI_FAIL || status == CLI_FAIL ? CLI_FAIL : one;
            }
        }
    }
    if (all) {
        json_dumpf(all, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(all);
    }
    if (a.jf) {
        fclose(a.jf);
    }
    return status;
}

/* ---- shrink ---- */

struct shrink_ctx {
    const struct prop *p;
    uint64_t node_mutants;
    unsigned disk_mutants;
    const struct trace *t;
    bool *drop;          /* per record: left out of the candidate */
    uint64_t steps;
    char msg[320];
};

/* Does the trace without the dropped records still fail (and stay valid)? */
static bool shrink_fails(struct shrink_ctx *s)
{
    struct trace view = { 0 };
    view.recs = mem_alloc(s->t->n * sizeof(*view.recs));
    for (size_t i = 0; i < s->t->n; i++) {
        if (!s->drop[i]) {
            view.recs[view.n++] = s->t->recs[i];
        }
    }
    s->steps++;
    char msg[320];
    int ret = s->p->check(s->p, &view, s->node_mutants, s->disk_mutants, msg, sizeof(msg));
    mem_free(view.recs, s->t->n * sizeof(*view.recs));
    if (ret == 1) {
        memcpy(s->msg, msg, sizeof(msg));
    }
    return ret == 1;
}

/* A removable unit: an operation, or a crash with the restart after it. */
static size_t unit_end(const struct trace *t, size_t i)
{
    if (t->recs[i].kind == TRACE_CRASH && i + 1 < t->n && t->recs[i + 1].kind == TRACE_RESTART) {
        return i + 2;
    }
    return i + 1;
}

static bool unit_start(const struct trace *t, size_t i)
{
    enum trace_kind k = t->recs[i].kind;
    return trace_kind_is_op(k) || k == TRACE_CRASH || k == TRACE_COMMIT ||
           k == TRACE_MAKE_EMPTY;
}

/* Try dropping units [from, from + count); keep the drop if it still fails. */
static bool shrink_try_units(struct shrink_ctx *s, const size_t *units, size_t n_units,
                             size_t from, size_t count)
{
    size_t *changed = mem_alloc(s->t->n * sizeof(*changed));
    size_t n_changed = 0;
    for (size_t u = from; u < from + count && u < n_units; u++) {
        for (size_t i = units[u]; i < unit_end(s->t, units[u]); i++) {
            if (!s->drop[i]) {
                s->drop[i] = true;
                changed[n_changed++] = i;
            }
        }
    }
    bool kept = n_changed > 0 && shrink_fails(s);
    if (!kept) {
        for (size_t k = 0; k < n_changed; k++) {
            s->drop[changed[k]] = false;
        }
    }
    mem_free(changed, s->t->n * sizeof(*changed));
    return kept;
}

static void shrink_ddmin(struct shrink_ctx *s, uint64_t max_steps)
{
    size_t *units = mem_alloc(s->t->n * sizeof(*units));
    size_t n_units = 0;
    for (size_t i = 0; i < s->t->n; i++) {
        if (unit_start(s->t, i)) {
            units[n_units++] = i;
            i = unit_end(s->t, i) - 1;
        }
    }
    for (size_t chunk = n_units / 2 ? n_units / 2 : 1; chunk > 0 && s->steps < max_steps;) {
        bool progress = false;
        for (size_t from = 0; from < n_units && s->steps < max_steps; from += chunk) {
            progress |= shrink_try_units(s, units, n_units, from, chunk);
        }
        if (!progress) {
            chunk /= 2;
        }
    }
    mem_free(units, s->t->n * sizeof(*units));
}

static void shrink_usage(FILE *out)
{
    fprintf(out, "usage: blocksim shrink TRACE --property P [--out FILE] [--mutant NAME]\n"
            "Remove operations from TRACE while property P still fails on it; write the\n"
            "result (default TRACE.shrunk.trace, replaced only once complete), with a\n"
            "'mutant' record for each --mutant so that it replays alone. 'expect'\n"
            "records are dropped.\n\n"
            "Exit status: 0 shrunk and written, 1 P does not fail on TRACE (nothing to\n"
            "shrink), 2 usage or input error (the shrunk trace goes to standard output\n"
            "when FILE cannot be written).\n");
}

/* The trace without the dropped records, with a 'mutant' record per
 * planted bug of the command line. */
static void shrink_print(const struct shrink_ctx *s, FILE *f)
{
    const struct trace *t = s->t;
    struct trace view = { 0 };
    view.recs = mem_alloc(t->n * sizeof(*view.recs));
    for (size_t i = 0; i < t->n; i++) {
        if (!s->drop[i]) {
            view.recs[view.n++] = t->recs[i];
        }
    }
    trace_print_repro(&view, NULL, s->node_mutants, s->disk_mutants, f);
    mem_free(view.recs, t->n * sizeof(*view.recs));
}

static int shrink_write(const struct shrink_ctx *s, const char *path)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    bool ok = f != NULL;
    if (f) {
        shrink_print(s, f);
        ok = !ferror(f);
        ok &= fclose(f) == 0;
    }
    if (!ok || rename(tmp, path) != 0) {
        int err = errno;
        unlink(tmp);
        cli_error("shrink", "%s: cannot write: %s; the shrunk trace follows on standard "
                  "output", path, strerror(err));
        shrink_print(s, stdout);
        return CLI_USAGE;
    }
    return CLI_OK;
}

static int shrink_run(const struct prop *p, struct shrink_ctx *s, const char *in,
                      const char *out)
{
    size_t before = 0;
    for (size_t i = 0; i < s->t->n; i++) {
        s->drop[i] = s->t->recs[i].kind == TRACE_EXPECT;
        before += unit_start(s->t, i);
    }
    if (!shrink_fails(s)) {
        printf("shrink: property %s does not fail on %s; nothing to shrink\n", p->name, in);
        return CLI_FAIL;
    }
    shrink_ddmin(s, 20000);
    size_t after = 0;
    for (size_t i = 0; i < s->t->n; i++) {
        after += !s->drop[i] && unit_start(s->t, i);
    }
    CLI_TRY(shrink_write(s, out));
    printf("shrunk %s from %zu to %zu operations (%" PRIu64 " runs): %s\n  %s\n", in, before,
           after, s->steps, out, s->msg);
    return CLI_OK;
}

int cmd_shrink(int argc, char **argv)
{
    static const struct option options[] = {
        { "property", required_argument, NULL, 'p' }, { "out", required_argument, NULL, 'o' },
        { "mutant", required_argument, NULL, 'm' },   { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *prop_name = NULL;
    const char *out = NULL;
    struct shrink_ctx s = { 0 };
    int c;
    optind = 1;
    while ((c = cli_getopt("shrink", argc, argv, options)) != -1) {
        if (c == 'h') {
            shrink_usage(stdout);
            return CLI_OK;
        } else if (c == 'p') {
            prop_name = optarg;
        } else if (c == 'o') {
            out = optarg;
        } else if (c != 'm' ||
                   cli_mutant_parse("shrink", optarg, &s.node_mutants, &s.disk_mutants)) {
            return CLI_USAGE;
        }
    }
    if (optind != argc - 1 || !prop_name) {
        cli_error("shrink", "expected TRACE and --property P (see --help)");
        return CLI_USAGE;
    }
    s.p = registry_find(prop_name);
    if (!s.p) {
        cli_error("shrink", "unknown property '%s' (see blocksim check --list)", prop_name);
        return CLI_USAGE;
    }
    char def[4096];
    snprintf(def, sizeof(def), "%s.shrunk.trace", argv[optind]);
    if (!out && strcmp(argv[optind], "-") == 0) {
        snprintf(def, sizeof(def), "stdin.shrunk.trace");
    }
    CLI_TRY(cli_out_file_check("shrink", "--out", out ? out : def));
    const char *format = "auto";
    struct trace t;
    CLI_TRY(trace_load("shrink", argv[optind], &format, NULL, &t));
    s.t = &t;
    s.drop = mem_alloc(t.n * sizeof(*s.drop));
    int ret = shrink_run(s.p, &s, argv[optind], out ? out : def);
    mem_free(s.drop, t.n * sizeof(*s.drop));
    trace_fini(&t);
    return ret;
}
