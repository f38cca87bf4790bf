/* Tests of props/crashx: crash-state exploration finds what sampling misses. */
#include "../../props/crashx.h"
#include "../../ref/node.h"
#include "../../sim/dev/disk.h"
#include "../../sim/world/world.h"
#include "../suites.h"
#include "../testlib.h"

#include <stdlib.h>
#include <string.h>

static void parse(struct trace *t, const char *text)
{
    struct err e = { .file = "test" };
    ck_assert_int_eq(trace_parse(t, text, strlen(text), &e), 0);
}

/* An explorer's repro trace replays alone (its mutants and crash plan
 * travel in it) to a failure; @res gets the replay's result. */
static void repro_fails_alone(const char *repro, struct world_result *res)
{
    ck_assert_ptr_nonnull(repro);
    struct trace t;
    parse(&t, repro);
    struct world_opts wo = { 0 };
    struct err e = { .file = "repro" };
    ck_assert_int_eq(world_run(&t, &wo, res, &e), 0);
    ck_assert_int_eq(res->verdict, WORLD_FAIL);
    trace_fini(&t);
}

START_TEST(test_exhaustive_passes_and_counts)
{
    struct crashx_opts o;
    crashx_opts_default(&o);
    o.tear_samples = 8;
    struct crashx_result r;
    crashx_exhaustive(2, &o, &r);
    ck_assert_msg(!r.failed, "%s", r.message);
    ck_assert(r.exhaustive);
    ck_assert_uint_eq(r.workloads, 7 + 49 + 9 + 81);
    ck_assert_uint_gt(r.states[CRASHX_SUBSET], r.workloads);
}
END_TEST

/* The map-ordering bug only shows when a crash lands inside the overlay's
 * own flush, with stale data left by make-empty: exploration finds it in
 * three operations. */
START_TEST(test_exhaustive_finds_map_ordering_bug)
{
    struct crashx_opts o;
    crashx_opts_default(&o);
    o.tear_samples = 8;
    o.node_mutants = NODE_MUTANT_OVERLAY_MAP_FIRST;
    struct crashx_result r;
    crashx_exhaustive(3, &o, &r);
    ck_assert(r.failed);
    ck_assert_msg(strstr(r.message, "make-empty") != NULL, "%s", r.message);
    ck_assert_msg(strstr(r.message, "at device flush") != NULL, "%s", r.message);
    /* Its repro trace replays the very state: it fails alone (the mutant
     * travels in it), and without the mutant it passes. */
    ck_assert_ptr_nonnull(r.repro);
    ck_assert_ptr_nonnull(strstr(r.repro, "at-flush="));
    ck_assert_ptr_nonnull(strstr(r.repro, "mutant overlay-map-first"));
    struct world_result res;
    repro_fails_alone(r.repro, &res);
    ck_assert_msg(strstr(r.message, res.first.msg) != NULL, "%s vs %s", r.message,
                  res.first.msg);
    crashx_result_fini(&r);
}
END_TEST

START_TEST(test_workload_states_and_fua)
{
    struct trace t;
    parse(&t, "blocksim-trace v1\ntopology plain size=1M\n"
              "write 0 4096\nwrite 8192 4096\nwrite 16384 4096 fua\nwrite 32768 4096\n");
    struct crashx_opts o;
    crashx_opts_default(&o);
    struct crashx_result r;
    struct err e = { .file = "t" };
    ck_assert_int_eq(crashx_run(&t, &o, &r, &e), 0);
    ck_assert_msg(!r.failed, "%s", r.message);
    ck_assert(r.exhaustive);
    /* One crash point (no flushes): 3 non-FUA entries, 8 subsets; prefixes
     * through the FUA write: lengths 3 and 4. */
    ck_assert_uint_eq(r.points, 1);
    ck_assert_uint_eq(r.states[CRASHX_SUBSET], 8);
    ck_assert_uint_eq(r.states[CRASHX_PREFIX], 2);
    o.disk_mutants = DISK_MUTANT_FUA_VOLATILE;
    ck_assert_int_eq(crashx_run(&t, &o, &r, &e), 0);
    ck_assert(r.failed);
    ck_assert_msg(strstr(r.message, "sector 32") != NULL, "%s", r.message);
    crashx_result_fini(&r);
    trace_fini(&t);
    parse(&t, "blocksim-trace v1\ncrash\nrestart\n");
    ck_assert_int_eq(crashx_run(&t, &o, &r, &e), BS_EPARSE); /* no operations */
    trace_fini(&t);
    parse(&t, "blocksim-trace v1\nwrite 0 512\nshutdown\nrestart\n");
    ck_assert_int_eq(crashx_run(&t, &o, &r, &e), BS_EPARSE);
    ck_assert_uint_eq(e.line, 3);
    trace_fini(&t);
}
END_TEST

/* A trace's own crash records split it into segments, each explored after
 * the crashes before it: a bug that only the second segment shows (its FUA
 * write) is found there, at crash point 1. */
START_TEST(test_segments_between_crash_records)
{
    struct trace t;
    parse(&t, "blocksim-trace v1\ntopology plain size=1M\nwrite 0 4096\ncrash mode=prefix\n"
              "restart\nwrite 8192 4096 fua\nwrite 16384 4096\n");
    struct crashx_opts o;
    crashx_opts_default(&o);
    struct crashx_result r;
    struct err e = { .file = "t" };
    ck_assert_int_eq(crashx_run(&t, &o, &r, &e), 0);
    ck_assert_msg(!r.failed, "%s", r.message);
    ck_assert_uint_eq(r.points, 2); /* the end of each segment (no flushes) */
    o.disk_mutants = DISK_MUTANT_FUA_VOLATILE;
    ck_assert_int_eq(crashx_run(&t, &o, &r, &e), 0);
    ck_assert(r.failed);
    ck_assert_uint_eq(r.fail_point, 1);
    ck_assert_msg(strstr(r.message, "sector 16") != NULL, "%s", r.message);
    /* The repro names the plan on the second crash record; the first stays. */
    ck_assert_ptr_nonnull(strstr(r.repro, "crash mode=prefix\n"));
    ck_assert_ptr_nonnull(strstr(r.repro, "crash plan="));
    struct world_result res;
    repro_fails_alone(r.repro, &res);
    crashx_result_fini(&r);
    /* --point picks that one point: the same failure, alone. */
    o.only_point = 2;
    ck_assert_int_eq(crashx_run(&t, &o, &r, &e), 0);
    ck_assert(r.failed);
    ck_assert_uint_eq(r.points, 1);
    crashx_result_fini(&r);
    o.only_point = 1; /* the first segment has no FUA write: it passes */
    ck_assert_int_eq(crashx_run(&t, &o, &r, &e), 0);
    ck_assert(!r.failed);
    trace_fini(&t);
}
END_TEST

/* Writes racing the overlay's own flush: a crash between its data flush and
 * its map's finds a map that claims too early (the map snapshot taken after
 * the data flush: overlay-snapshot-late); the correct overlay survives every
 * state. The repro names the crash point and plan, and replays alone. */
START_TEST(test_explore_finds_snapshot_late)
{
    struct trace t;
    char *data;
    size_t len;
    struct err e = { .file = "overlay-flush-race.trace" };
    ck_assert_int_eq(trace_file_read("traces/native/overlay-flush-race.trace", 1 << 20, &data,
                                     &len, &e), 0);
    ck_assert_int_eq(trace_parse(&t, data, len, &e), 0);
    trace_file_free(data, len);
    struct crashx_opts o;
    crashx_opts_default(&o);
    struct crashx_result r;
    ck_assert_int_eq(crashx_run(&t, &o, &r, &e), 0);
    ck_assert_msg(!r.failed, "%s", r.message);
    o.node_mutants = NODE_MUTANT_OVERLAY_SNAPSHOT_LATE;
    ck_assert_int_eq(crashx_run(&t, &o, &r, &e), 0);
    ck_assert(r.failed);
    ck_assert_ptr_nonnull(strstr(r.message, "at device flush"));
    struct world_result res;
    repro_fails_alone(r.repro, &res);
    crashx_result_fini(&r);
    trace_fini(&t);
}
END_TEST

/* The COLO secondary explored (host=secondary): crashes inside its
 * checkpoints and failover and after it; the correct stack survives every
 * state, a commit that does not flush the secondary disk does not, and the
 * repro (its crash record names the secondary's disks' fates) fails alone. */
START_TEST(test_explore_colo_secondary)
{
    struct trace t;
    char *data;
    size_t len;
    struct err e = { .file = "colo-explore.trace" };
    ck_assert_int_eq(trace_file_read("traces/native/colo-explore.trace", 1 << 20, &data, &len,
                                     &e), 0);
    ck_assert_int_eq(trace_parse(&t, data, len, &e), 0);
    trace_file_free(data, len);
    struct crashx_opts o;
    crashx_opts_default(&o);
    o.max_states = 2000;
    o.tear_samples = 100;
    snprintf(o.host, sizeof(o.host), "secondary");
    struct crashx_result r;
    ck_assert_int_eq(crashx_run(&t, &o, &r, &e), 0);
    ck_assert_msg(!r.failed, "%s", r.message);
    ck_assert_uint_gt(r.points, 10);
    o.node_mutants = NODE_MUTANT_MIRROR_NO_TARGET_FLUSH;
    ck_assert_int_eq(crashx_run(&t, &o, &r, &e), 0);
    ck_assert(r.failed);
    ck_assert_ptr_nonnull(strstr(r.message, "crash-consistency"));
    ck_assert_ptr_nonnull(strstr(r.repro, "crash host=secondary plan="));
    struct world_result res;
    repro_fails_alone(r.repro, &res);
    crashx_result_fini(&r);
    trace_fini(&t);
}
END_TEST

/* A time budget ends the run without a verdict against the stack. */
START_TEST(test_time_budget_stops_cleanly)
{
    struct trace t;
    parse(&t, "blocksim-trace v1\ntopology plain size=1M\nwrite 0 4096\nwrite 8192 4096\n"
              "flush\nwrite 16384 4096\n");
    struct crashx_opts o;
    crashx_opts_default(&o);
    static volatile sig_atomic_t stop = 1; /* as if ^C came at once */
    o.stop = &stop;
    struct crashx_result r;
    struct err e = { .file = "t" };
    ck_assert_int_eq(crashx_run(&t, &o, &r, &e), 0);
    ck_assert(!r.failed);
    ck_assert(r.stopped);
    ck_assert_uint_eq(r.states[CRASHX_PREFIX] + r.states[CRASHX_SUBSET], 0);
    trace_fini(&t);
}
END_TEST

/* Exploring by forking at each crash (every state a child that resolves
 * the crash its own way) finds the same states, contents, verdicts and
 * repro traces as running every state from the start, passing or failing. */
START_TEST(test_fork_mode_agrees)
{
    /* Under valgrind a forked child's exit reports the parent's reachable
     * heap as leak errors (its exit status then says the state's run died):
     * fork mode cannot be judged there; the plain and ASan runs cover it. */
    if (getenv("BLOCKSIM_UNDER_VALGRIND")) {
        return;
    }
    static const struct {
        const char *path;
        uint64_t node_mutants;
        unsigned disk_mutants;
        const char *host;
    } cases[] = {
        { "traces/native/overlay-flush-race.trace", 0, 0, "" },
        { "traces/native/overlay-flush-race.trace", NODE_MUTANT_OVERLAY_SNAPSHOT_LATE, 0, "" },
        { "traces/native/fua-crash.trace", 0, DISK_MUTANT_FUA_VOLATILE, "" },
        { "traces/native/colo-explore.trace", NODE_MUTANT_MIRROR_NO_TARGET_FLUSH, 0,
          "secondary" },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct trace t;
        char *data;
        size_t len;
        struct err e = { .file = cases[i].path };
        ck_assert_int_eq(trace_file_read(cases[i].path, 1 << 20, &data, &len, &e), 0);
        ck_assert_int_eq(trace_parse(&t, data, len, &e), 0);
        trace_file_free(data, len);
        struct crashx_result r[2];
        for (int fork_mode = 0; fork_mode < 2; fork_mode++) {
            struct crashx_opts o;
            crashx_opts_default(&o);
            o.max_states = 400;
            o.tear_samples = 100;
            o.node_mutants = cases[i].node_mutants;
            o.disk_mutants = cases[i].disk_mutants;
            snprintf(o.host, sizeof(o.host), "%s", cases[i].host);
            o.no_fork = !fork_mode;
            o.fork_min_records = 0; /* every point forks */
            ck_assert_int_eq(crashx_run(&t, &o, &r[fork_mode], &e), 0);
        }
        ck_assert_int_eq(r[0].failed, r[1].failed);
        ck_assert_str_eq(r[0].message, r[1].message);
        ck_assert_uint_eq(r[0].points, r[1].points);
        ck_assert_uint_eq(r[0].distinct, r[1].distinct);
        ck_assert_uint_eq(r[0].dups, r[1].dups);
        for (int g = 0; g < CRASHX__COUNT; g++) {
            ck_assert_uint_eq(r[0].states[g], r[1].states[g]);
        }
        ck_assert(r[0].failed || r[0].states[CRASHX_PREFIX] > 0);
        ck_assert_int_eq(r[0].failed, cases[i].node_mutants || cases[i].disk_mutants);
        if (r[0].failed) {
            ck_assert_str_eq(r[0].repro, r[1].repro);
        }
        crashx_result_fini(&r[0]);
        crashx_result_fini(&r[1]);
        trace_fini(&t);
    }
}
END_TEST

Suite *suite_crashx(void)
{
    const TTest *tests[] = {
        test_exhaustive_passes_and_counts,
        test_exhaustive_finds_map_ordering_bug,
        test_segments_between_crash_records,
        test_time_budget_stops_cleanly,
        test_explore_colo_secondary,
        test_explore_finds_snapshot_late,
        test_workload_states_and_fua,
        test_fork_mode_agrees,
    };
    return tl_suite("crashx", tests, ARRAY_LEN(tests));
}
