/*
 * Tests of the colo topology (sim/topo/colo, sim/check/check_colo): a
 * replicated run with a checkpoint and a failover passes and its checker
 * judged what it must; each planted bug is caught by the invariant it
 * breaks; the seed-era variants fail where they are unsafe; a lost
 * secondary, a network that heals and one that does not; bad records.
 */
#include <string.h>

#include "../../ref/node.h"
#include "../../sim/world/world.h"
#include "../suites.h"
#include "../testlib.h"

static json_int_t num(const json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

static const char *str(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* Both guests, a checkpoint, then a failover: every invariant holds. */
static const char pair_trace[] =
    "blocksim-trace v1\n"
    "topology colo size=4M\n"
    "qd 4\n"
    "write 0 65536\n"
    "write 1048576 4096 guest=secondary\n"
    "read 0 65536 guest=secondary\n"
    "read 1048576 4096 guest=secondary\n"
    "colo checkpoint\n"
    "read 0 65536 guest=secondary\n"
    "write 0 4096\n"
    "read 0 4096 guest=secondary\n"
    "write 8192 4096 guest=secondary\n"
    "colo failover\n"
    "read 0 65536 guest=secondary\n"
    "read 8192 4096 guest=secondary\n"
    "write 12288 4096 guest=secondary\n"
    "read 12288 4096 guest=secondary\n";

START_TEST(test_colo_pair_passes)
{
    struct world_result r;
    tl_world_pass(pair_trace, NULL, &r);
    const json_t *rep = r.replication;
    ck_assert_ptr_nonnull(rep);
    ck_assert_int_eq(num(rep, "checkpoints"), 1);
    ck_assert_int_eq(num(rep, "failovers"), 1);
    ck_assert_str_eq(str(json_object_get(rep, "secondary"), "stage"), "done");
    ck_assert_str_eq(str(json_object_get(rep, "primary"), "stage"), "running");
    /* start (both hosts), the checkpoint and the failover */
    ck_assert_uint_eq(json_array_size(json_object_get(rep, "history")), 4);
    const json_t *ck = json_object_get(r.checks, "colo");
    ck_assert_int_eq(num(ck, "reads_judged"), 4); /* before the failover */
    const json_t *pc = json_object_get(r.checks, "promoted"); /* after it: 3 reads */
    ck_assert(json_is_true(json_object_get(pc, "active")));
    ck_assert_int_eq(num(pc, "sectors_checked"), 128 + 8 + 8);
    ck_assert_int_eq(num(ck, "checkpoints_checked"), 1);
    ck_assert_int_eq(num(ck, "failovers_checked"), 1);
    ck_assert_int_gt(num(ck, "hidden_clusters_checked"), 0);
    ck_assert_uint_eq(r.ops[TRACE_READ], 7);
    world_result_fini(&r);
}
END_TEST

/* A primary write after a checkpoint, read by the secondary guest before
 * the failover: what every planted bug of the checkpoint, the CoW and the
 * failover breaks. */
static const char interval_trace[] =
    "blocksim-trace v1\n"
    "topology colo size=4M\n"
    "write 0 4096\n"
    "colo checkpoint\n"
    "write 0 4096\n"
    "read 0 4096 guest=secondary\n"
    "colo failover\n";

START_TEST(test_colo_planted_bugs_caught)
{
    tl_expect_caught(interval_trace, NODE_MUTANT_REPL_CHECKPOINT_ACTIVE_ONLY, "colo-checkpoint");
    tl_expect_caught(interval_trace, NODE_MUTANT_REPL_CHECKPOINT_NO_RESET, "colo-view");
    tl_expect_caught(interval_trace, NODE_MUTANT_REPL_FAILOVER_ACTIVE_ONLY, "colo-failover");
    tl_expect_caught(interval_trace, NODE_MUTANT_BACKUP_CBW_LATE, "colo-hidden");
    /* The link lost for good: the forwards fail; kept, the checkpoint is
     * refused; returned (planted), the pair differs at the checkpoint. */
    static const char lost_link[] =
        "blocksim-trace v1\n"
        "topology colo size=4M\n"
        "fault partition host=secondary after=1ms\n"
        "write 0 4096\n"
        "@100s write 4096 4096\n"
        "colo checkpoint\n";
    struct world_result r;
    tl_world_pass(lost_link, NULL, &r);
    ck_assert_int_eq(num(r.replication, "checkpoints_refused"), 1);
    ck_assert_int_eq(r.errors[TRACE_WRITE], 0); /* the guest never saw the loss */
    world_result_fini(&r);
    tl_expect_caught(lost_link, NODE_MUTANT_REPL_PRIMARY_RETURNS_ERROR, "colo-checkpoint");
}
END_TEST

START_TEST(test_colo_interval_passes)
{
    struct world_result r;
    tl_world_pass(interval_trace, NULL, &r);
    world_result_fini(&r);
}
END_TEST

/* The seed-era variants commit nothing at failover: the secondary disk is
 * not the guest's view (I4), which the checker shows as a failure. */
START_TEST(test_colo_seed_era_unsafe)
{
    static const char *const variants[] = { "v12", "v4" };
    for (unsigned i = 0; i < 2; i++) {
        char text[512];
        snprintf(text, sizeof(text), "blocksim-trace v1\ntopology colo size=4M variant=%s\n"
                 "write 0 4096\ncolo checkpoint\nwrite 0 4096\nread 0 4096 guest=secondary\n"
                 "colo failover\n", variants[i]);
        tl_expect_caught(text, 0, "colo-failover");
    }
}
END_TEST

/* The secondary lost: its guest's I/O in flight is lost, the primary goes
 * on unharmed, the checkpoint is refused; writes issued after the loss are
 * reported by get-error (a planted bug that returns them is caught). */
START_TEST(test_colo_secondary_loss)
{
    static const char text[] =
        "blocksim-trace v1\n"
        "topology colo size=4M\n"
        "qd 4\n"
        "write 65536 4096 guest=secondary\n"
        "@1us crash host=secondary\n"
        "write 0 4096\n"
        "colo checkpoint\n"
        "colo primary-alone\n"
        "write 8192 4096\n"
        "read 0 12288\n"
        "restart host=secondary\n"
        "read 0 4096 guest=secondary\n"
        "replication get-error host=primary\n";
    struct world_result r;
    tl_world_pass(text, NULL, &r);
    ck_assert_int_eq(num(r.replication, "checkpoints_refused"), 1);
    ck_assert_int_eq(r.errors[TRACE_WRITE], 0);
    ck_assert_int_eq(r.errors[TRACE_READ], 1); /* the restarted secondary: stage none */
    json_t *h = json_object_get(r.replication, "history");
    const json_t *last = json_array_get(h, json_array_size(h) - 1);
    ck_assert_str_eq(str(last, "op"), "get-error");
    ck_assert_str_eq(str(last, "result"), "ok"); /* primary-alone stopped it: cleared */
    world_result_fini(&r);
    tl_expect_caught(text, NODE_MUTANT_REPL_PRIMARY_RETURNS_ERROR, "colo-secondary-loss");
}
END_TEST

/* A connection reset (with a write in flight) heals within the reconnect
 * delay and hides itself: the checkpoint succeeds; a planted client that
 * fails what was in flight at the break is caught. */
START_TEST(test_colo_liveness)
{
    static const char text[] =
        "blocksim-trace v1\n"
        "topology colo size=4M\n"
        "fault net-reset host=secondary nth=10 times=1\n"
        "write 0 4096\n"
        "write 8192 4096\n"
        "write 16384 4096\n"
        "colo checkpoint\n"
        "read 0 4096 guest=secondary\n";
    struct world_result r;
    tl_world_pass(text, NULL, &r);
    ck_assert_int_eq(num(r.replication, "checkpoints"), 1);
    world_result_fini(&r);
    tl_expect_caught(text, NODE_MUTANT_NBD_NO_RETRY, "colo-liveness");
}
END_TEST

/* A crash of the secondary at every device flush, inside the checkpoints
 * and the failover too: the operation it strikes ends ("the host went
 * down"), nothing false is reported, and after a completed failover the
 * secondary guest keeps what the failover committed. */
START_TEST(test_colo_secondary_crash_inside)
{
    unsigned inside = 0;
    unsigned promoted = 0;
    for (unsigned n = 1; n <= 40; n++) {
        char text[1024];
        snprintf(text, sizeof(text),
                 "blocksim-trace v1\ntopology colo size=1M\ndisk secondary-disk cache=1M\n"
                 "write 0 65536\nwrite 131072 4096 guest=secondary\ncolo checkpoint\n"
                 "write 0 4096\nwrite 8192 4096 guest=secondary\ncolo checkpoint\n"
                 "write 4096 4096\nwrite 12288 4096 guest=secondary\ncolo failover\n"
                 "write 16384 4096 guest=secondary\n"
                 "crash host=secondary at-flush=%u mode=subset\nrestart host=secondary\n"
                 "read 0 65536\nread 8192 8192 guest=secondary\n", n);
        struct world_result r;
        tl_world_run_text(text, NULL, &r);
        ck_assert_msg(r.verdict == WORLD_PASS, "at-flush=%u: %s: %s", n, r.first.property,
                      r.first.msg);
        json_t *h = json_object_get(r.replication, "history");
        for (size_t i = 0; i < json_array_size(h); i++) {
            inside += strcmp(str(json_array_get(h, i), "result"), "the host went down") == 0;
        }
        promoted += json_is_true(json_object_get(r.replication, "promoted"));
        world_result_fini(&r);
    }
    ck_assert_uint_gt(inside, 0);   /* some crashes struck inside an operation */
    ck_assert_uint_gt(promoted, 0); /* some after the failover */
}
END_TEST

/* Bad scenarios: named, nothing run. */
START_TEST(test_colo_bad_records)
{
    static const struct { const char *text; const char *msg; } bad[] = {
        { "blocksim-trace v1\nwrite 0 512 guest=secondary\n", "needs the colo topology" },
        { "blocksim-trace v1\ntopology quorum\ncolo checkpoint\n", "needs the colo topology" },
        { "blocksim-trace v1\ntopology colo\nreplication start host=s1\n", "no host 's1'" },
        { "blocksim-trace v1\ntopology colo\ncrash host=secondary\nread 0 512 guest=secondary\n",
          "while the host is down" },
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct trace t;
        struct err e = { .file = "bad" };
        ck_assert_int_eq(trace_parse(&t, bad[i].text, strlen(bad[i].text), &e), 0);
        struct world_opts o = { 0 };
        struct world_result r;
        ck_assert_int_lt(world_run(&t, &o, &r, &e), 0);
        ck_assert_msg(strstr(e.msg, bad[i].msg) != NULL, "case %zu: %s", i, e.msg);
        trace_fini(&t);
    }
}
END_TEST

Suite *suite_colo(void)
{
    const TTest *tests[] = {
        test_colo_pair_passes, test_colo_planted_bugs_caught, test_colo_interval_passes,
        test_colo_seed_era_unsafe, test_colo_secondary_loss, test_colo_liveness,
        test_colo_bad_records, test_colo_secondary_crash_inside,
    };
    return tl_suite("colo", tests, ARRAY_LEN(tests));
}
