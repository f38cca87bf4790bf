/* Tests of props/: choice sequences, the generator, the engine, shrinking,
 * and the proof that every property fails on a planted bug. */
#include "../../props/engine.h"
#include "../../props/gen.h"
#include "../../props/registry.h"
#include "../../ref/node.h"
#include "../../sim/world.h"
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
    unsigned node;
    unsigned disk;
};

static const struct proof proofs[] = {
    { "read-your-writes", NODE_MUTANT_FILE_EARLY_ACK, 0 },
    { "crash", 0, DISK_MUTANT_FLUSH_NOOP },
    { "flush-fua", 0, DISK_MUTANT_FUA_VOLATILE },
    { "flush-fua", NODE_MUTANT_FILE_DROP_FUA, 0 },
    { "overlay", NODE_MUTANT_OVERLAY_NO_COPYUP, 0 },
    { "overlay", NODE_MUTANT_OVERLAY_NO_SERIALISE, 0 },
    { "trace-roundtrip", 0, DISK_MUTANT_FUA_VOLATILE },
    { "bitmap-coverage", NODE_MUTANT_DIRTY_LATE_MARK, 0 },
    { "bitmap-store", NODE_MUTANT_QBM_SHORT_STORE, 0 },
    { "bitmap-crash", NODE_MUTANT_QBM_NO_IN_USE, 0 },
    { "bitmap-successor", NODE_MUTANT_DIRTY_RECLAIM_DROP, 0 },
    { "quorum-vote", NODE_MUTANT_QUORUM_THRESHOLD, 0 },
    { "quorum-vote", NODE_MUTANT_QUORUM_NO_REWRITE, 0 },
    { "quorum-vote", NODE_MUTANT_QUORUM_TIE_LOW, 0 },
    { "quorum-write", NODE_MUTANT_QUORUM_WRITE_ANY, 0 },
    { "nbd-net", NODE_MUTANT_NBD_NO_RETRY, 0 },
};

/* Each property catches its planted bug, shrinks it to at most 20
 * operations, and the written trace replays to the same failure. */
START_TEST(test_properties_catch_planted_bugs)
{
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
    ck_assert_int_eq(engine_run(p, &o, &r), 0);
    ck_assert_msg(r.failed, "%s did not catch mutant %u/%u in %llu trials", p->name, pr->node,
                  pr->disk, (unsigned long long)r.trials);
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
    ck_assert_int_eq(p->check(p, &t, 0, 0, msg, sizeof(msg)), 0); /* the bug, not the trace */
    trace_fini(&t);
    unlink(r.repro_path);
    char cur[300];
    snprintf(cur, sizeof(cur), "%s/current.bin", dir);
    unlink(cur);
    rmdir(dir);
}
END_TEST

START_TEST(test_properties_hold)
{
    struct engine_opts o;
    engine_opts_default(&o);
    o.trials = 150;
    for (size_t i = 0; i < registry_count; i++) {
        struct engine_result r;
        ck_assert_int_eq(engine_run(&registry_props[i], &o, &r), 0);
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
    ck_assert_int_eq(engine_run(p, &o, &a), 0);
    ck_assert_int_eq(engine_run(p, &o, &b), 0);
    ck_assert(a.failed && b.failed);
    ck_assert_uint_eq(a.fail_trial, b.fail_trial);
    ck_assert_uint_eq(a.ops_after, b.ops_after);
    ck_assert_str_eq(a.message, b.message);
    /* Two shards cover the campaign exactly once. */
    o.disk_mutants = 0;
    o.trials = 40;
    uint64_t total = 0;
    for (unsigned s = 0; s < 2; s++) {
        o.shard_index = s;
        o.shard_count = 2;
        ck_assert_int_eq(engine_run(p, &o, &a), 0);
        total += a.trials + a.dups;
    }
    ck_assert_uint_eq(total, 40);
}
END_TEST

/* A property whose check crashes on scenarios with at least three
 * operations: fork mode reports the crash and shrinks it to three. */
static int check_crashes(const struct prop *p, const struct trace *t, unsigned nm,
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
    "crashing", "aborts on 3 or more operations",
      { 30, false, true, false, false, false, false, false, false, false, false, 0 },
    check_crashes,
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
    ck_assert_int_eq(engine_run(&crashing, &o, &r), 0);
    ck_assert(r.failed);
    /* Natively the child dies by SIGABRT; under valgrind it exits instead. */
    ck_assert_msg(strstr(r.message, "signal 6") || strstr(r.message, "exited with status"),
                  "%s", r.message);
    ck_assert_uint_eq(r.ops_after, 3);
}
END_TEST

/* A check that never returns on scenarios with a flush: a hang. */
static int check_hangs(const struct prop *p, const struct trace *t, unsigned nm,
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
    "hanging", "hangs on a flush",
      { 30, false, true, false, false, false, false, false, false, false, false, 0 }, check_hangs,
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
    ck_assert_int_eq(engine_run(&hanging, &o, &r), 0);
    ck_assert(r.failed);
    ck_assert_msg(strstr(r.message, "hung") != NULL, "%s", r.message);
    ck_assert(r.shrink_stopped_early);
}
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
    tcase_add_loop_test(tc, test_properties_catch_planted_bugs, 0, ARRAY_LEN(proofs));
    tcase_add_test(tc, test_properties_hold);
    tcase_add_test(tc, test_same_seed_same_failure_and_shards);
    tcase_add_test(tc, test_fork_mode_catches_crashes);
    tcase_add_test(tc, test_buggify_points_fire_deterministically);
    tcase_add_test(tc, test_fork_mode_catches_hangs);
    tcase_set_timeout(tc, 300);
    suite_add_tcase(s, tc);
    return s;
}
