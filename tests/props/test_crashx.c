/* Tests of props/crashx: crash-state exploration finds what sampling misses. */
#include "../../props/crashx.h"
#include "../../ref/node.h"
#include "../../sim/disk.h"
#include "../suites.h"
#include "../testlib.h"

#include <string.h>

static void parse(struct trace *t, const char *text)
{
    struct err e = { .file = "test" };
    ck_assert_int_eq(trace_parse(t, text, strlen(text), &e), 0);
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
    trace_fini(&t);
    parse(&t, "blocksim-trace v1\nwrite 0 512\ncrash\nrestart\n");
    ck_assert_int_eq(crashx_run(&t, &o, &r, &e), BS_EPARSE);
    ck_assert_uint_eq(e.line, 3);
    trace_fini(&t);
}
END_TEST

Suite *suite_crashx(void)
{
    const TTest *tests[] = {
        test_exhaustive_passes_and_counts,
        test_exhaustive_finds_map_ordering_bug,
        test_workload_states_and_fua,
    };
    return tl_suite("crashx", tests, ARRAY_LEN(tests));
}
