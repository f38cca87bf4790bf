/* Tests of props/: choice sequences, the generator, the engine, shrinking,
 * and the proof that every property fails on a planted bug. */
#include "../../props/engine.h"
#include "../../props/gen.h"
#include "../../props/registry.h"
#include "../../ref/node.h"
#include "../../sim/trace/mutant.h"
#include "../../sim/world/world.h"
#include "../suites.h"
#include "../testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

START_TEST(test_choices)
{
    struct rng r;
    rng_seed(&r, 4);
    struct choices c;
    choices_init_record(&c, &r);
    uint64_t a = choice_range(&c, 10, 20);
    uint64_t b = choice_range(&c, 0, 100000);
    ck_assert(a >= 10 && a <= 20);
    ck_assert_uint_le(b, 100000);
    ck_assert_uint_eq(c.len, 1 + 3); /* one byte, then three */
    struct choices d;
    choices_init_bytes(&d, c.buf, c.len);
    ck_assert_uint_eq(choice_range(&d, 10, 20), a);
    ck_assert_uint_eq(choice_range(&d, 0, 100000), b);
    ck_assert_uint_eq(choice_range(&d, 5, 9), 5); /* exhausted: the simplest */
    unsigned w[] = { 0, 3, 1 };
    ck_assert_uint_eq(choice_weighted(&d, w, 3), 1);
    choices_fini(&c);
    choices_fini(&d);
}
END_TEST

/* Any byte string decodes to a valid scenario that runs. */
START_TEST(test_generator_always_valid)
{
    struct rng r;
    rng_seed(&r, 8);
    for (int i = 0; i < 200; i++) {
        uint8_t bytes[96];
        size_t len = rng_below(&r, sizeof(bytes));
        for (size_t k = 0; k < len; k++) {
            bytes[k] = (uint8_t)rng_next(&r);
        }
        const struct prop *p = &registry_props[i % registry_count];
        struct choices c;
        choices_init_bytes(&c, bytes, len);
        struct trace t;
        gen_scenario(&c, &p->gen, &t);
        struct world_opts o = { 0 };
        struct world_result res;
        struct err e = { .file = "gen" };
        ck_assert_msg(world_run(&t, &o, &res, &e) == 0, "line %u: %s", e.line, e.msg);
        trace_fini(&t);
        choices_fini(&c);
    }
}
END_TEST

struct proof {
    const char *property;
    uint64_t node;
    unsigned disk;
};

/* Every planted bug a property names as its proof, flattened: the loop test
 * runs each (a property cannot be registered without one). */
static struct proof proofs[64];
static size_t n_proofs;

static void proofs_collect(void)
{
    n_proofs = 0;
    for (size_t i = 0; i < registry_count; i++) {
        const struct prop *p = &registry_props[i];
        ck_assert_msg(p->proofs[0] != NULL, "property %s names no planted bug", p->name);
        for (unsigned k = 0; k < PROP_PROOFS_MAX && p->proofs[k]; k++) {
            struct mutant m;
            ck_assert_msg(mutant_find(p->proofs[k], strlen(p->proofs[k]), &m) == 0,
                          "%s: unknown mutant %s", p->name, p->proofs[k]);
            ck_assert_uint_lt(n_proofs, ARRAY_LEN(proofs));
            proofs[n_proofs++] = (struct proof){ p->name, m.node, m.disk };
        }
    }
}

/* Every property has a planted bug, a unique fuzz id, and a summary. */
START_TEST(test_registry_complete)
{
    proofs_collect();
    ck_assert_uint_ge(n_proofs, registry_count);
    for (size_t i = 0; i < registry_count; i++) {
        ck_assert_uint_lt(registry_props[i].fuzz_id, PROP_FUZZ_IDS);
        ck_assert_ptr_eq(registry_by_fuzz_id(registry_props[i].fuzz_id), &registry_props[i]);
        ck_assert_ptr_nonnull(registry_props[i].summary);
    }
}
END_TEST

/* Each property catches its planted bug, shrinks it to at most 20
 * operations, and the written trace replays to the same failure. */
START_TEST(test_properties_catch_planted_bugs)
{
    proofs_collect();
    ck_assert_uint_lt((size_t)_i, n_proofs);
    const struct proof *pr = &proofs[_i];
    const struct prop *p = registry_find(pr->property);
    ck_assert_ptr_nonnull(p);
    char dir[] = "/tmp/blocksim-props-XXXXXX";
    ck_assert_ptr_nonnull(mkdtemp(dir));
    struct engine_opts o;
    engine_opts_default(&o);
    o.trials = 3000;
    o.node_mutants = pr->node;
    o.disk_mutants = pr->disk;
    o.out_dir = dir;
    struct engine_result r;
    engine_run(p, &o, &r);
    ck_assert_msg(r.failed, "%s did not catch mutant %#llx/%u in %llu trials", p->name,
                  (unsigned long long)pr->node, pr->disk, (unsigned long long)r.trials);
    ck_assert_uint_le(r.ops_after, 20);
    ck_assert_uint_le(r.ops_after, r.ops_before);
    char *data;
    size_t len;
    struct err e = { .file = r.repro_path };
    ck_assert_int_eq(trace_file_read(r.repro_path, 1 << 20, &data, &len, &e), 0);
    struct trace t;
    ck_assert_int_eq(trace_parse(&t, data, len, &e), 0);
    trace_file_free(data, len);
    char msg[320];
    ck_assert_int_eq(p->check(p, &t, pr->node, pr->disk, msg, sizeof(msg)), 1);
    /* The planted bug travels in the trace: the file alone fails... */
    ck_assert_int_eq(p->check(p, &t, 0, 0, msg, sizeof(msg)), 1);
    /* ...and without its 'mutant' records it passes: the bug, not the trace. */
    struct trace view = { 0 }; /* borrows t's records */
    view.recs = calloc(t.n, sizeof(*view.recs));
    for (size_t i = 0; i < t.n; i++) {
        if (t.recs[i].kind != TRACE_MUTANT) {
            view.recs[view.n++] = t.recs[i];
        }
    }
    ck_assert_uint_lt(view.n, t.n);
    ck_assert_int_eq(p->check(p, &view, 0, 0, msg, sizeof(msg)), 0);
    free(view.recs);
    trace_fini(&t);
    engine_result_fini(&r);
    unlink(r.repro_path);
    ck_assert_int_eq(rmdir(dir), 0); /* nothing else left behind */
}
END_TEST

START_TEST(test_properties_hold)
{
    struct engine_opts o;
    engine_opts_default(&o);
    o.trials = 150;
    for (size_t i = 0; i < registry_count; i++) {
        struct engine_result r;
        engine_run(&registry_props[i], &o, &r);
        ck_assert_msg(!r.failed, "%s: %s", registry_props[i].name, r.message);
        ck_assert_uint_eq(r.passed + r.dups, 150);
    }
}
END_TEST

START_TEST(test_same_seed_same_failure_and_shards)
{
    const struct prop *p = registry_find("crash");
    struct engine_opts o;
    engine_opts_default(&o);
    o.disk_mutants = DISK_MUTANT_FLUSH_NOOP;
    struct engine_result a;
    struct engine_result b;
    engine_run(p, &o, &a);
    engine_run(p, &o, &b);
    ck_assert(a.failed && b.failed);
    ck_assert_uint_eq(a.fail_trial, b.fail_trial);
    ck_assert_uint_eq(a.ops_after, b.ops_after);
    ck_assert_str_eq(a.message, b.message);
    engine_result_fini(&a);
    engine_result_fini(&b);
    /* Two shards cover the campaign exactly once. */
    o.disk_mutants = 0;
    o.trials = 40;
    uint64_t total = 0;
    for (unsigned s = 0; s < 2; s++) {
        o.shard_index = s;
        o.shard_count = 2;
        engine_run(p, &o, &a);
        total += a.trials + a.dups;
    }
    ck_assert_uint_eq(total, 40);
}
END_TEST

/* A property whose check crashes on scenarios with at least three
 * operations: fork mode reports the crash and shrinks it to three. */
static int check_crashes(const struct prop *p, const struct trace *t, uint64_t nm,
                         unsigned dm, char *msg, size_t size)
{
    (void)p;
    (void)nm;
    (void)dm;
    (void)msg;
    (void)size;
    size_t ops = gen_trace_ops(t);
    if (ops >= 3) {
        abort();
    }
    return 0;
}

static const struct prop crashing = {
    .name = "crashing", .summary = "aborts on 3 or more operations",
    .gen = { .max_ops = 30, .plain = true }, .check = check_crashes,
};

/* Under valgrind a forked child's exit reports the parent's reachable heap
 * as leak errors, so fork mode cannot be judged there; the plain and ASan
 * runs cover it. */
static bool under_valgrind(void)
{
    return getenv("BLOCKSIM_UNDER_VALGRIND") != NULL;
}

START_TEST(test_fork_mode_catches_crashes)
{
    if (under_valgrind()) {
        return;
    }
    struct engine_opts o;
    engine_opts_default(&o);
    o.fork = true;
    o.trials = 50;
    o.shrink_steps = 2000;
    struct engine_result r;
    engine_run(&crashing, &o, &r);
    ck_assert(r.failed);
    /* Natively the child dies by SIGABRT; under valgrind it exits instead. */
    ck_assert_msg(strstr(r.message, "signal 6") || strstr(r.message, "exited with status"),
                  "%s", r.message);
    ck_assert_uint_eq(r.ops_after, 3);
    engine_result_fini(&r);
}
END_TEST

/* Fork mode's pool of workers counts trials in trial order: with 1 to 4
 * workers it finds the same failing trial, message and shrunk scenario as
 * running the trials in this process, and passes the same trials. */
static void same_result(const struct engine_result *a, const struct engine_result *b)
{
    ck_assert_int_eq(a->failed, b->failed);
    ck_assert_uint_eq(a->trials, b->trials);
    ck_assert_uint_eq(a->passed, b->passed);
    ck_assert_uint_eq(a->dups, b->dups);
    ck_assert_uint_eq(a->fail_trial, b->fail_trial);
    ck_assert_str_eq(a->message, b->message);
    ck_assert_uint_eq(a->len, b->len);
    ck_assert(a->len == 0 || memcmp(a->bytes, b->bytes, a->len) == 0);
}

START_TEST(test_pool_agrees_with_in_process)
{
    if (under_valgrind()) {
        return;
    }
    static const char *const props[] = { "read-your-writes", "crash", "colo-view",
                                         "mirror-converge" };
    proofs_collect();
    for (size_t k = 0; k < ARRAY_LEN(props); k++) {
        const struct proof *pr = NULL;
        for (size_t i = 0; i < n_proofs && !pr; i++) {
            pr = strcmp(proofs[i].property, props[k]) == 0 ? &proofs[i] : NULL;
        }
        ck_assert_ptr_nonnull(pr);
        struct engine_opts o;
        engine_opts_default(&o);
        o.trials = 3000;
        o.shrink_steps = 300;
        o.node_mutants = pr->node;
        o.disk_mutants = pr->disk;
        struct engine_result want;
        engine_run(registry_find(pr->property), &o, &want);
        ck_assert_msg(want.failed, "%s", pr->property);
        o.fork = true;
        o.workers = 1 + (unsigned)k; /* 1 to 4 */
        struct engine_result got;
        engine_run(registry_find(pr->property), &o, &got);
        same_result(&want, &got);
        engine_result_fini(&want);
        engine_result_fini(&got);
    }
    /* Passing: the same trials and duplicates. */
    struct engine_opts o;
    engine_opts_default(&o);
    o.trials = 300;
    struct engine_result want;
    struct engine_result got;
    engine_run(registry_find("overlay"), &o, &want);
    o.fork = true;
    o.workers = 3;
    engine_run(registry_find("overlay"), &o, &got);
    ck_assert(!want.failed);
    same_result(&want, &got);
}
END_TEST

/* A crash in one trial while later ones run beside it: the earliest
 * crashing trial is the failure, whatever the number of workers. */
START_TEST(test_pool_crash_is_the_earliest)
{
    if (under_valgrind()) {
        return;
    }
    struct engine_result r[2];
    for (unsigned k = 0; k < 2; k++) {
        struct engine_opts o;
        engine_opts_default(&o);
        o.fork = true;
        o.workers = k == 0 ? 1 : 4;
        o.trials = 50;
        o.shrink_steps = 50;
        engine_run(&crashing, &o, &r[k]);
        ck_assert(r[k].failed);
        ck_assert_msg(strstr(r[k].message, "signal 6") ||
                      strstr(r[k].message, "exited with status"), "%s", r[k].message);
    }
    same_result(&r[0], &r[1]);
    engine_result_fini(&r[0]);
    engine_result_fini(&r[1]);
}
END_TEST

/* A check that never returns on scenarios with a flush: a hang. */
static int check_hangs(const struct prop *p, const struct trace *t, uint64_t nm,
                       unsigned dm, char *msg, size_t size)
{
    (void)p;
    (void)nm;
    (void)dm;
    (void)msg;
    (void)size;
    for (size_t i = 0; i < t->n - 1; i++) { /* the generator's last flush aside */
        while (t->recs[i].kind == TRACE_FLUSH) {
            pause();
        }
    }
    return 0;
}

static const struct prop hanging = {
    .name = "hanging", .summary = "hangs on a flush",
    .gen = { .max_ops = 30, .plain = true }, .check = check_hangs,
};

START_TEST(test_fork_mode_catches_hangs)
{
    if (under_valgrind()) {
        return;
    }
    struct engine_opts o;
    engine_opts_default(&o);
    o.fork = true;
    o.timeout_s = 1;
    o.trials = 20;
    o.shrink_steps = 3;
    struct engine_result r;
    engine_run(&hanging, &o, &r);
    ck_assert(r.failed);
    ck_assert_msg(strstr(r.message, "hung") != NULL, "%s", r.message);
    ck_assert(r.shrink_stopped_early);
    engine_result_fini(&r);
}

/* A stop request (^C) ends the run; the trial it cut short is no failure. */
static volatile sig_atomic_t test_stop;

static int check_stops(const struct prop *p, const struct trace *t, uint64_t nm,
                       unsigned dm, char *msg, size_t size)
{
    (void)p;
    (void)t;
    (void)nm;
    (void)dm;
    static unsigned calls;
    if (++calls == 5) {
        test_stop = 1; /* as the SIGINT handler would, in the middle of a trial */
        snprintf(msg, size, "killed by the interrupt");
        return 1;
    }
    return 0;
}

static const struct prop stopping = {
    .name = "stopping", .summary = "interrupted at its fifth trial",
    .gen = { .max_ops = 30, .plain = true }, .check = check_stops,
};

START_TEST(test_interrupt_is_no_failure)
{
    struct engine_opts o;
    engine_opts_default(&o);
    o.trials = 100;
    o.stop = &test_stop;
    struct engine_result r;
    engine_run(&stopping, &o, &r);
    ck_assert(!r.failed);
    ck_assert(r.interrupted);
    ck_assert_uint_eq(r.trials, 4);
    ck_assert_uint_eq(r.passed, 4);
    engine_run(&stopping, &o, &r); /* still stopped: runs nothing */
    ck_assert(r.interrupted);
    ck_assert_uint_eq(r.trials, 0);
    test_stop = 0;
}
END_TEST

/* An output directory that cannot be written loses nothing: the shrunk
 * scenario stays in the result and prints as a trace that parses. */
START_TEST(test_unwritable_out_keeps_the_failure)
{
    const struct prop *p = registry_find("crash");
    struct engine_opts o;
    engine_opts_default(&o);
    o.disk_mutants = DISK_MUTANT_FLUSH_NOOP;
    o.out_dir = "/nonexistent/blocksim-out";
    struct engine_result r;
    engine_run(p, &o, &r);
    ck_assert(r.failed);
    ck_assert_str_eq(r.repro_path, "");
    ck_assert_ptr_nonnull(strstr(r.repro_error, "/nonexistent/blocksim-out"));
    char *text = NULL;
    size_t size = 0;
    FILE *f = open_memstream(&text, &size);
    ck_assert_int_eq(engine_repro_print(p, &o, &r, f), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(text, "mutant disk-flush-noop"));
    struct trace t;
    struct err e = { .file = "memstream" };
    ck_assert_int_eq(trace_parse(&t, text, size, &e), 0);
    char msg[320];
    ck_assert_int_eq(p->check(p, &t, 0, 0, msg, sizeof(msg)), 1);
    trace_fini(&t);
    free(text);
    engine_result_fini(&r);
}
END_TEST
END_TEST

START_TEST(test_buggify_points_fire_deterministically)
{
    struct trace t;
    char *data;
    size_t len;
    struct err e = { .file = "overlay.trace" };
    ck_assert_int_eq(trace_file_read("traces/native/overlay.trace", 1 << 24, &data, &len, &e), 0);
    ck_assert_int_eq(trace_parse(&t, data, len, &e), 0);
    trace_file_free(data, len);
    struct world_opts o = { 0 };
    struct world_result a;
    struct world_result b;
    ck_assert_int_eq(world_run(&t, &o, &a, &e), 0);
    ck_assert_uint_eq(a.buggified, 0);
    o.buggify = true;
    ck_assert_int_eq(world_run(&t, &o, &a, &e), 0);
    ck_assert_int_eq(world_run(&t, &o, &b, &e), 0);
    ck_assert_uint_gt(a.buggified, 0);
    ck_assert_uint_eq(a.buggified, b.buggified);
    ck_assert_uint_eq(a.digest, b.digest);
    ck_assert_int_eq(a.verdict, WORLD_PASS); /* legal paths only */
    trace_fini(&t);
}
END_TEST

Suite *suite_engine(void)
{
    Suite *s = suite_create("engine");
    TCase *tc = tl_tcase("engine");
    tcase_add_test(tc, test_choices);
    tcase_add_test(tc, test_generator_always_valid);
    tcase_add_test(tc, test_registry_complete);
    size_t planted = 0; /* the proofs the registry names, one test each */
    for (size_t i = 0; i < registry_count; i++) {
        for (unsigned k = 0; k < PROP_PROOFS_MAX && registry_props[i].proofs[k]; k++) {
            planted++;
        }
    }
    tcase_add_loop_test(tc, test_properties_catch_planted_bugs, 0, (int)planted);
    tcase_add_test(tc, test_properties_hold);
    tcase_add_test(tc, test_same_seed_same_failure_and_shards);
    tcase_add_test(tc, test_fork_mode_catches_crashes);
    tcase_add_test(tc, test_buggify_points_fire_deterministically);
    tcase_add_test(tc, test_fork_mode_catches_hangs);
    tcase_add_test(tc, test_pool_agrees_with_in_process);
    tcase_add_test(tc, test_pool_crash_is_the_earliest);
    tcase_add_test(tc, test_interrupt_is_no_failure);
    tcase_add_test(tc, test_unwritable_out_keeps_the_failure);
    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);
    return s;
}
