/*
 * cmd_check: `blocksim check` (property suites) and `blocksim shrink`
 * (shrink an existing failing trace).
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../props/crashx.h"
#include "../props/engine.h"
#include "../props/registry.h"
#include "../sim/trace.h"
#include "cli.h"

struct check_args {
    struct engine_opts o;
    bool list;
    bool json;
    char mutants[128];
};

static void check_usage(FILE *out)
{
    fprintf(out,
            "usage: blocksim check PROPERTY... [OPTIONS]   (PROPERTY 'all': every one)\n"
            "       blocksim check --list\n"
            "Generate scenarios from a seed, check PROPERTY on each, and on the first\n"
            "failure shrink it and write it as a native trace that `blocksim replay`\n"
            "reproduces.\n\n"
            "  --trials N       trials per property (default 1000; 0: until --time)\n"
            "  --seed S         campaign seed (default 1)\n"
            "  --time SECONDS   stop each property after this long\n"
            "  --shard I/N      run only trials i with i %% N == I (many machines, one "
            "campaign)\n"
            "  --out DIR        where failing traces go (default .)\n"
            "  --no-fork        run trials in this process (faster; a crash ends the run)\n"
            "  --timeout S      fork mode: a trial running longer hangs (default 30)\n"
            "  --shrink-steps N candidate runs the shrinker may spend (default 5000)\n"
            "  --json           print results as JSON\n"
            "  --mutant NAME    plant a known bug (repeatable):\n");
    cli_mutants_usage(out);
    fprintf(out, "\nExit status: 0 every property held, 1 one failed, 2 usage error.\n");
}

static int parse_shard(const char *val, struct engine_opts *o)
{
    unsigned i;
    unsigned n;
    char tail;
    if (sscanf(val, "%u/%u%c", &i, &n, &tail) != 2 || n == 0 || i >= n) {
        cli_error("check", "--shard: expected I/N with I < N, got '%s'", val);
        return CLI_USAGE;
    }
    o->shard_index = i;
    o->shard_count = n;
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
        TRY(cli_parse_num("check", "--time", val, &v, false));
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
        TRY(cli_parse_num("check", "--timeout", val, &v, false));
        a->o.timeout_s = (unsigned)(v ? v : 1);
        return 0;
    case 'k':
        return cli_parse_num("check", "--shrink-steps", val, &a->o.shrink_steps, false);
    case 'j':
        a->json = true;
        return 0;
    case 'm': {
        TRY(cli_mutant_parse("check", val, &a->o.node_mutants, &a->o.disk_mutants));
        size_t at = strlen(a->mutants);
        snprintf(a->mutants + at, sizeof(a->mutants) - at, " --mutant %s", val);
        return 0;
    }
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
        { "json", no_argument, NULL, 'j' },      { "mutant", required_argument, NULL, 'm' },
        { "help", no_argument, NULL, 'h' },      { NULL, 0, NULL, 0 },
    };
    memset(a, 0, sizeof(*a));
    engine_opts_default(&a->o);
    a->o.fork = true;
    a->o.out_dir = ".";
    a->o.progress = isatty(2);
    optind = 1;
    int c;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        int ret = check_opt(a, c, optarg);
        if (ret == -1) {
            check_usage(stdout);
            return -1;
        }
        if (ret != 0) {
            return CLI_USAGE;
        }
    }
    return 0;
}

static void check_list(void)
{
    for (size_t i = 0; i < registry_count; i++) {
        printf("%-18s %s\n", registry_props[i].name, registry_props[i].summary);
    }
}

static json_t *result_json(const struct prop *p, const struct engine_result *r)
{
    json_t *o = json_object();
    json_object_set_new(o, "property", json_string(p->name));
    json_object_set_new(o, "verdict", json_string(r->failed ? "fail" : "pass"));
    json_object_set_new(o, "trials", json_integer((json_int_t)r->trials));
    json_object_set_new(o, "passed", json_integer((json_int_t)r->passed));
    json_object_set_new(o, "duplicates", json_integer((json_int_t)r->dups));
    json_object_set_new(o, "seconds", json_real(r->seconds));
    if (r->failed) {
        json_object_set_new(o, "message", json_string(r->message));
        json_object_set_new(o, "trial", json_integer((json_int_t)r->fail_trial));
        json_object_set_new(o, "ops_before_shrink", json_integer((json_int_t)r->ops_before));
        json_object_set_new(o, "ops_after_shrink", json_integer((json_int_t)r->ops_after));
        json_object_set_new(o, "shrink_steps", json_integer((json_int_t)r->shrink_steps));
        json_object_set_new(o, "shrink_stopped_early", json_boolean(r->shrink_stopped_early));
        json_object_set_new(o, "repro", json_string(r->repro_path));
    }
    return o;
}

static void result_text(const struct prop *p, const struct check_args *a,
                        const struct engine_result *r)
{
    printf("%-18s %s  %" PRIu64 " trials (%" PRIu64 " passed, %" PRIu64 " duplicate) in "
           "%.2f s, %.0f trials/s\n", p->name, r->failed ? "FAIL" : "pass", r->trials,
           r->passed, r->dups, r->seconds, r->seconds > 0 ? (double)r->trials / r->seconds
                                                            : 0.0);
    if (!r->failed) {
        return;
    }
    printf("  seed %" PRIu64 ", trial %" PRIu64 ": %s\n", a->o.seed, r->fail_trial,
           r->message);
    printf("  shrunk from %zu to %zu operations in %" PRIu64 " steps%s\n", r->ops_before,
           r->ops_after, r->shrink_steps,
           r->shrink_stopped_early ? " (stopped early: budget spent)" : "");
    if (r->repro_path[0]) {
        printf("  reproduce: blocksim replay %s%s\n", r->repro_path, a->mutants);
    }
}

static int check_one(const struct prop *p, const struct check_args *a, json_t *all)
{
    struct engine_result r;
    int ret = engine_run(p, &a->o, &r);
    if (ret < 0) {
        cli_error("check", "%s", r.message);
        return CLI_USAGE;
    }
    if (all) {
        json_array_append_new(all, result_json(p, &r));
    } else {
        result_text(p, a, &r);
    }
    return r.failed ? CLI_FAIL : CLI_OK;
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
    mkdir(a.o.out_dir, 0777); /* may exist already; fopen reports real errors */
    json_t *all = a.json ? json_array() : NULL;
    int status = CLI_OK;
    for (int i = optind; i < argc && status != CLI_USAGE; i++) {
        bool every = strcmp(argv[i], "all") == 0;
        for (size_t k = 0; k < registry_count && status != CLI_USAGE; k++) {
            const struct prop *p = &registry_props[k];
            if (every || strcmp(argv[i], p->name) == 0) {
                int one = check_one(p, &a, all);
                status = one > status ? one : status;
            }
        }
    }
    if (all) {
        json_dumpf(all, stdout, JSON_INDENT(2));
        fputc('\n', stdout);
        json_decref(all);
    }
    return status;
}

/* ---- shrink ---- */

struct shrink_ctx {
    const struct prop *p;
    unsigned node_mutants;
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
            "result (default TRACE.shrunk.trace). 'expect' records are dropped.\n");
}

static int shrink_write(const struct trace *t, const bool *drop, const char *path)
{
    char tmp[4200];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        cli_error("shrink", "%s: cannot create", tmp);
        return CLI_USAGE;
    }
    struct trace view = { 0 };
    view.recs = mem_alloc(t->n * sizeof(*view.recs));
    for (size_t i = 0; i < t->n; i++) {
        if (!drop[i]) {
            view.recs[view.n++] = t->recs[i];
        }
    }
    trace_print_canonical(&view, f);
    mem_free(view.recs, t->n * sizeof(*view.recs));
    bool ok = !ferror(f);
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        cli_error("shrink", "%s: cannot write", path);
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
        cli_error("shrink", "%s: property %s does not fail on it; nothing to shrink", in,
                  p->name);
        return CLI_USAGE;
    }
    shrink_ddmin(s, 20000);
    size_t after = 0;
    for (size_t i = 0; i < s->t->n; i++) {
        after += !s->drop[i] && unit_start(s->t, i);
    }
    TRY(shrink_write(s->t, s->drop, out));
    printf("shrunk %s from %zu to %zu operations (%" PRIu64 " runs): %s\n  %s\n", in, before,
           after, s->steps, out, s->msg);
    return CLI_FAIL; /* the shrunk trace still fails, as it should */
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
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
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
    char *data = NULL;
    size_t len = 0;
    struct err e = { .file = argv[optind] };
    struct trace t;
    int ret = trace_file_read(argv[optind], 1u << 30, &data, &len, &e);
    ret = ret == 0 ? trace_parse(&t, data, len, &e) : ret;
    trace_file_free(data, len);
    if (ret < 0) {
        char msg[512];
        err_format(&e, msg, sizeof(msg));
        cli_error("shrink", "%s", msg);
        return CLI_USAGE;
    }
    char def[4096];
    snprintf(def, sizeof(def), "%s.shrunk.trace", argv[optind]);
    s.t = &t;
    s.drop = mem_alloc(t.n * sizeof(*s.drop));
    ret = shrink_run(s.p, &s, argv[optind], out ? out : def);
    mem_free(s.drop, t.n * sizeof(*s.drop));
    trace_fini(&t);
    return ret;
}

/* ---- explore ---- */

static void explore_usage(FILE *out)
{
    fprintf(out,
            "usage: blocksim explore TRACE [--max-states N] [--tear-samples N] [--seed S]\n"
            "                        [--mutant NAME]\n"
            "       blocksim explore --exhaustive [--ops N] [--mutant NAME]\n"
            "Crash the host at every crash point of a workload (as the disks receive\n"
            "each flush, the stack's own included, and at its end) into many states:\n"
            "every prefix of the disk's cache, subsets of it (all of them when it is\n"
            "small) and per-sector tears; reopen the stack on each and read everything\n"
            "back. --exhaustive does so for every workload of 1..N operations (default\n"
            "3) over a tiny alphabet. Each state replays the workload: the cost grows\n"
            "with states times workload length.\n");
}

static void explore_print(const struct crashx_result *r)
{
    printf("explore: %s  %" PRIu64 " workload(s), %" PRIu64 " crash point(s), %" PRIu64
           " prefix + %" PRIu64 " subset + %" PRIu64 " tear states, %" PRIu64
           " distinct contents (%" PRIu64 " repeated)%s\n", r->failed ? "FAIL" : "pass",
           r->workloads, r->points, r->states[CRASHX_PREFIX], r->states[CRASHX_SUBSET],
           r->states[CRASHX_TEAR], r->distinct, r->dups,
           r->exhaustive ? "; subsets exhaustive" : "; subsets sampled");
    if (r->failed) {
        printf("  %s\n", r->message);
    }
}

int cmd_explore(int argc, char **argv)
{
    static const struct option options[] = {
        { "max-states", required_argument, NULL, 'n' }, { "seed", required_argument, NULL, 's' },
        { "exhaustive", no_argument, NULL, 'x' },       { "ops", required_argument, NULL, 'k' },
        { "mutant", required_argument, NULL, 'm' },     { "help", no_argument, NULL, 'h' },
        { "tear-samples", required_argument, NULL, 'e' }, { NULL, 0, NULL, 0 },
    };
    struct crashx_opts o;
    crashx_opts_default(&o);
    bool tear_set = false;
    bool exhaustive = false;
    uint64_t ops = 3;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        int ret = 0;
        if (c == 'h') {
            explore_usage(stdout);
            return CLI_OK;
        } else if (c == 'n') {
            ret = cli_parse_num("explore", "--max-states", optarg, &o.max_states, false);
        } else if (c == 's') {
            ret = cli_parse_num("explore", "--seed", optarg, &o.seed, false);
        } else if (c == 'x') {
            exhaustive = true;
        } else if (c == 'e') {
            ret = cli_parse_num("explore", "--tear-samples", optarg, &o.tear_samples, false);
            tear_set = true;
        } else if (c == 'k') {
            ret = cli_parse_num("explore", "--ops", optarg, &ops, false);
            ret = ret ? ret : (ops >= 1 && ops <= 4 ? 0 : (cli_error("explore", "--ops: "
                                                                     "1..4"), CLI_USAGE));
        } else if (c != 'm') {
            return CLI_USAGE;
        } else {
            ret = cli_mutant_parse("explore", optarg, &o.node_mutants, &o.disk_mutants);
        }
        if (ret) {
            return CLI_USAGE;
        }
    }
    struct crashx_result r;
    if (exhaustive) {
        if (optind != argc) {
            cli_error("explore", "--exhaustive takes no TRACE");
            return CLI_USAGE;
        }
        o.tear_samples = tear_set ? o.tear_samples : 32; /* tiny workloads */
        crashx_exhaustive((unsigned)ops, &o, &r);
        explore_print(&r);
        return r.failed ? CLI_FAIL : CLI_OK;
    }
    if (optind != argc - 1) {
        cli_error("explore", "expected one TRACE (see --help)");
        return CLI_USAGE;
    }
    const char *format = "auto";
    struct trace t;
    TRY(trace_load("explore", argv[optind], &format, &t) ? -CLI_USAGE : 0);
    struct err e = { .file = argv[optind] };
    int ret = crashx_run(&t, &o, &r, &e);
    trace_fini(&t);
    if (ret < 0) {
        char msg[512];
        err_format(&e, msg, sizeof(msg));
        cli_error("explore", "%s", msg);
        return CLI_USAGE;
    }
    explore_print(&r);
    return r.failed ? CLI_FAIL : CLI_OK;
}
