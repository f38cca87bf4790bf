/*
 * Tests of block jobs in the world (sim/world/world_job, ref/backup,
 * sim/check/check_job): a backup under guest writes keeps its point in
 * time and the checker proves it; a planted copy-after-write bug is caught
 * and named; sync=none and sync=top copy what they must; refused verbs,
 * target errors and crashes are reported, never taken for stack failures.
 */
#include <string.h>

#include "../../ref/node.h"
#include "../../sim/world/world.h"
#include "../suites.h"
#include "../testlib.h"

#define run_text tl_world_run_text

static json_t *job0(const struct world_result *r)
{
    ck_assert_ptr_nonnull(r->jobs);
    return json_array_get(r->jobs, 0);
}

static const char *str(json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static json_int_t num(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

/* The job's events as one line: statuses, and other events by name. */
static void events_line(json_t *job, char *buf, size_t size)
{
    buf[0] = '\0';
    json_t *evs = json_object_get(job, "events");
    for (size_t i = 0; i < json_array_size(evs); i++) {
        json_t *ev = json_array_get(evs, i);
        const char *s = json_object_get(ev, "status") ? str(ev, "status") : str(ev, "event");
        size_t at = strlen(buf);
        snprintf(buf + at, size - at, "%s%s", i ? " " : "", s);
    }
}

/* Run @text (faults, no planted bug), which must pass, and check its first
 * job's events. */
static void run_events(const char *text, const char *want, struct world_result *r)
{
    run_text(text, NULL, r);
    ck_assert_msg(r->verdict == WORLD_PASS, "%s", r->first.msg);
    char ev[512];
    events_line(job0(r), ev, sizeof(ev));
    ck_assert_str_eq(ev, want);
}

#define expect_caught tl_expect_caught

static const char full_trace[] =
    "blocksim-trace v1\n"
    "topology plain size=1M\n"
    "disk tgt size=1M\n"
    "write 0 65536\n"
    "write 131072 4096\n"
    "job backup j1 target=tgt sync=full speed=1M\n"
    "write 0 4096\n"
    "write 200704 4096\n"
    "read 0 65536\n"
    "job wait j1 concluded\n"
    "read 0 65536\n";

START_TEST(test_backup_full_point_in_time)
{
    struct world_result r;
    tl_world_pass(full_trace, NULL, &r);
    json_t *j = job0(&r);
    ck_assert_str_eq(str(j, "type"), "backup");
    ck_assert_str_eq(str(j, "status"), "null");
    ck_assert_int_eq(num(j, "offset"), 1 << 20);
    ck_assert_int_eq(num(j, "len"), 1 << 20);
    char ev[512];
    events_line(j, ev, sizeof(ev));
    ck_assert_str_eq(ev, "created running waiting pending BLOCK_JOB_COMPLETED concluded null");
    /* Every sector of the target was judged against the start. */
    json_t *cj = json_object_get(r.checks, "jobs");
    ck_assert_int_eq(num(cj, "sectors_checked"), 2048);
    ck_assert(r.sim_ns > 800000000ull); /* 1 MiB at 1 MiB/s */
    world_result_fini(&r);

    /* The planted bug: the guest's write reaches the source before its
     * cluster is copied, so the target holds the new data. */
    struct world_opts o = { .node_mutants = NODE_MUTANT_BACKUP_CBW_LATE };
    run_text(full_trace, &o, &r);
    ck_assert_int_eq(r.verdict, WORLD_FAIL);
    ck_assert_str_eq(r.first.property, "backup-point-in-time");
    ck_assert(r.first.sector == 0 || r.first.sector == 392); /* a sector written during it */
    ck_assert(strstr(r.first.msg, "not what the source held when the job started") != NULL);
    world_result_fini(&r);
}
END_TEST

/* sync=none copies only what the guest overwrites and runs until it is
 * cancelled: then the target holds the old data of every written sector. */
START_TEST(test_backup_none_until_cancelled)
{
    static const char text[] =
        "blocksim-trace v1\n"
        "topology plain size=1M\n"
        "disk tgt size=1M\n"
        "write 0 65536\n"
        "job backup j1 target=tgt sync=none\n"
        "write 0 4096\n"
        "write 524288 4096\n"
        "job cancel j1\n"
        "job wait j1 concluded\n"
        "read 0 4096\n";
    struct world_result r;
    run_events(text, "created running aborting BLOCK_JOB_CANCELLED concluded null", &r);
    json_t *j = job0(&r);
    ck_assert_int_eq(num(j, "offset"), 2 * 65536); /* two clusters copied before write */
    ck_assert_int_eq(num(json_object_get(r.checks, "jobs"), "sectors_checked"), 16);
    world_result_fini(&r);
    expect_caught(text, NODE_MUTANT_BACKUP_CBW_LATE, "backup-point-in-time");
}
END_TEST

/* sync=top on an overlay copies the clusters its top layer allocates. */
START_TEST(test_backup_top_copies_allocated)
{
    static const char text[] =
        "blocksim-trace v1\n"
        "topology overlay size=1M cluster=4K\n"
        "disk tgt size=1M\n"
        "write 0 8192\n"
        "write 196608 512\n"
        "job backup j1 target=tgt sync=top\n"
        "write 4096 4096\n"
        "job wait j1 concluded\n";
    struct world_result r;
    tl_world_pass(text, NULL, &r);
    ck_assert_int_eq(num(job0(&r), "len"), 2 * 65536); /* clusters 0 and 3 */
    ck_assert_int_eq(num(json_object_get(r.checks, "jobs"), "sectors_checked"), 16 + 8);
    world_result_fini(&r);
}
END_TEST

/* A verb in the wrong state is QEMU's error reply, reported, not a
 * failure; a crash takes the job with the host; a target that fails makes
 * the job fail (report) or go on (ignore) and the stack is not blamed. */
START_TEST(test_job_refusals_crashes_and_target_errors)
{
    static const char refuse[] =
        "blocksim-trace v1\n"
        "disk tgt size=1M\n"
        "job backup j1 target=tgt sync=full speed=64K\n"
        "job complete j1\n"
        "job resume j1\n"
        "job pause nosuch\n"
        "write 0 4096\n"
        "crash\n"
        "restart\n"
        "job wait j1 concluded\n"
        "read 0 4096\n";
    struct world_result r;
    tl_world_pass(refuse, NULL, &r);
    ck_assert_uint_eq(r.job_refusals, 3);
    ck_assert_str_eq(r.job_refusal, "line 4: job complete j1: Job 'j1' in state 'running' "
                                    "cannot accept command verb 'complete'");
    ck_assert_str_eq(str(job0(&r), "status"), "running"); /* died with its host */
    world_result_fini(&r);

    static const char eio[] =
        "blocksim-trace v1\n"
        "disk tgt size=1M\n"
        "fault write-eio disk=tgt range=131072-196608\n"
        "write 0 4096\n"
        "job backup j1 target=tgt sync=full\n"
        "job wait j1 concluded\n";
    run_events(eio, "created running BLOCK_JOB_ERROR aborting BLOCK_JOB_COMPLETED "
                         "concluded null", &r);
    json_t *j = job0(&r);
    ck_assert_str_eq(str(j, "error"), "Input/output error");
    world_result_fini(&r);

    static const char ignore[] =
        "blocksim-trace v1\n"
        "disk tgt size=1M\n"
        "fault write-eio disk=tgt range=131072-196608 times=1\n"
        "write 0 4096\n"
        "job backup j1 target=tgt sync=full on-target-error=ignore\n"
        "job wait j1 concluded\n";
    run_events(ignore, "created running BLOCK_JOB_ERROR waiting pending BLOCK_JOB_COMPLETED "
                         "concluded null", &r);
    ck_assert_int_eq(num(json_object_get(r.checks, "jobs"), "sectors_checked"), 2048);
    world_result_fini(&r);

    /* A copy-before-write that fails fails the guest's write (on-cbw-error=
     * break-guest-write); the job copies the cluster later. */
    static const char cbw[] =
        "blocksim-trace v1\n"
        "disk tgt size=1M\n"
        "fault write-eio disk=tgt range=131072-196608 times=1\n"
        "job backup j1 target=tgt sync=full speed=256K\n"
        "write 131072 512\n"
        "job wait j1 concluded\n"
        "read 131072 512\n";
    run_events(cbw, "created running waiting pending BLOCK_JOB_COMPLETED concluded null", &r);
    ck_assert_uint_eq(r.errors[TRACE_WRITE], 1);
    world_result_fini(&r);
}
END_TEST

static const char mirror_trace[] =
    "blocksim-trace v1\n"
    "topology plain size=1M\n"
    "disk tgt size=1M\n"
    "write 0 65536\n"
    "job mirror m1 target=tgt speed=2M\n"
    "write 4096 4096\n"
    "write 300032 512\n"
    "job wait m1 ready\n"
    "write 8192 4096\n"
    "job complete m1\n"
    "job wait m1 concluded\n"
    "write 12288 4096\n"
    "read 0 65536\n"
    "crash\n"
    "restart\n"
    "read 0 65536\n"
    "read 300032 512\n";

/* A mirror converges, completes and moves the guest onto the target, which
 * stays the guest's disk after a crash and restart (reads after it are
 * judged against everything written, before and after the pivot). */
START_TEST(test_mirror_complete_pivots)
{
    struct world_result r;
    run_events(mirror_trace, "created running ready BLOCK_JOB_READY waiting pending "
                         "BLOCK_JOB_COMPLETED concluded null", &r);
    json_t *j = job0(&r);
    ck_assert_int_eq(num(j, "offset"), num(j, "len"));
    ck_assert_int_eq(num(json_object_get(r.checks, "jobs"), "sectors_checked"), 2048);
    world_result_fini(&r);
    static const char *const bugs[] = { "mirror-early-complete", "mirror-lost-dirty" };
    static const uint64_t bits[] = { NODE_MUTANT_MIRROR_EARLY_COMPLETE,
                                     NODE_MUTANT_MIRROR_LOST_DIRTY };
    for (unsigned i = 0; i < 2; i++) {
        struct world_opts o = { .node_mutants = bits[i] };
        run_text(mirror_trace, &o, &r);
        ck_assert_msg(r.verdict == WORLD_FAIL, "%s not caught", bugs[i]);
        ck_assert_str_eq(r.first.property, "mirror-converge");
        ck_assert_uint_eq(r.first.sector, 16); /* write #3 at 8192, never copied */
        world_result_fini(&r);
    }
}
END_TEST

/* Cancel in READY without force: COMPLETED, in step, no pivot; forced:
 * CANCELLED. Write-blocking keeps the target in step by itself. */
START_TEST(test_mirror_cancels)
{
    static const char soft[] =
        "blocksim-trace v1\n"
        "topology overlay size=1M cluster=4K\n"
        "disk tgt size=1M\n"
        "write 0 65536\n"
        "job mirror m1 target=tgt sync=full copy-mode=write-blocking\n"
        "write 4096 4096\n"
        "job wait m1 ready\n"
        "write 8192 4096\n"
        "job cancel m1\n"
        "job wait m1 concluded\n"
        "write 12288 4096\n"
        "read 0 65536\n";
    struct world_result r;
    run_events(soft, "created running ready BLOCK_JOB_READY waiting pending "
                         "BLOCK_JOB_COMPLETED concluded null", &r);
    world_result_fini(&r);
    expect_caught(soft, NODE_MUTANT_MIRROR_CANCEL_FORCED, "mirror-cancel");

    static const char force[] =
        "blocksim-trace v1\n"
        "disk tgt size=1M\n"
        "write 0 65536\n"
        "job mirror m1 target=tgt\n"
        "job wait m1 ready\n"
        "job cancel m1 force\n"
        "job wait m1 concluded\n"
        "read 0 65536\n";
    run_events(force, "created running ready BLOCK_JOB_READY aborting BLOCK_JOB_CANCELLED "
                         "concluded null", &r);
    world_result_fini(&r);
}
END_TEST

/* A target that fails under report: the job ends with the error and never
 * becomes READY (spec 3.6); under stop it pauses until resumed. */
START_TEST(test_mirror_target_errors)
{
    static const char report[] =
        "blocksim-trace v1\n"
        "disk tgt size=1M\n"
        "fault write-eio disk=tgt range=131072-196608\n"
        "write 0 4096\n"
        "job mirror m1 target=tgt\n"
        "job wait m1 concluded\n";
    struct world_result r;
    run_events(report, "created running BLOCK_JOB_ERROR aborting BLOCK_JOB_COMPLETED "
                         "concluded null", &r);
    ck_assert_str_eq(str(job0(&r), "error"), "Input/output error");
    world_result_fini(&r);

    static const char stop[] =
        "blocksim-trace v1\n"
        "disk tgt size=1M\n"
        "fault write-eio disk=tgt range=131072-196608 times=1\n"
        "write 0 4096\n"
        "job mirror m1 target=tgt on-target-error=stop\n"
        "@20ms read 0 4096\n" /* by then the copy failed and the job stopped */
        "job resume m1\n"
        "job wait m1 ready\n"
        "job complete m1\n"
        "job wait m1 concluded\n";
    run_events(stop, "created running BLOCK_JOB_ERROR paused running ready BLOCK_JOB_READY "
                         "waiting pending BLOCK_JOB_COMPLETED concluded null", &r);
    world_result_fini(&r);
}
END_TEST

/* Active commit on the overlay: copies what the overlay holds into its
 * base and moves the guest onto the base, which stays its disk across a
 * crash; the overlay's own commit and make-empty are refused after it. */
START_TEST(test_active_commit)
{
    static const char text[] =
        "blocksim-trace v1\n"
        "topology overlay size=1M cluster=4K\n"
        "write 0 65536\n"
        "commit\n"
        "write 4096 8192\n"
        "write 200704 4096\n"
        "job commit c1 speed=1M\n"
        "write 8192 4096\n"
        "job wait c1 ready\n"
        "write 16384 4096\n"
        "job complete c1\n"
        "job wait c1 concluded\n"
        "write 32768 4096\n"
        "make-empty\n"
        "read 0 65536\n"
        "crash\n"
        "restart\n"
        "read 0 65536\n"
        "read 200704 4096\n";
    struct world_result r;
    tl_world_pass(text, NULL, &r);
    json_t *j = job0(&r);
    ck_assert_str_eq(str(j, "type"), "commit");
    char ev[512];
    events_line(j, ev, sizeof(ev));
    ck_assert_str_eq(ev, "created running ready BLOCK_JOB_READY waiting pending "
                         "BLOCK_JOB_COMPLETED concluded null");
    ck_assert_uint_eq(r.job_refusals, 1);
    ck_assert_msg(strstr(r.job_refusal, "make-empty: after an active commit wrote into the "
                         "base") != NULL, "%s", r.job_refusal);
    world_result_fini(&r);
    expect_caught(text, NODE_MUTANT_MIRROR_LOST_DIRTY, "commit");
}
END_TEST

/* The bitmap's dirty extents at the end of a run, as "OFF+LEN ...". */
static void bitmap_extents(const struct world_result *r, const char *name, char *buf,
                           size_t size)
{
    buf[0] = '\0';
    for (unsigned i = 0; i < r->n_bitmaps; i++) {
        const struct world_bitmap *b = &r->bitmaps[i];
        for (size_t k = 0; strcmp(b->name, name) == 0 && k < b->n_extents; k++) {
            size_t at = strlen(buf);
            snprintf(buf + at, size - at, "%s%llu+%llu", at ? " " : "",
                     (unsigned long long)b->extents[k][0], (unsigned long long)b->extents[k][1]);
        }
    }
}

/* A full backup that records into a bitmap, then an incremental one: the
 * incremental copies the bitmap's clusters as they were at its start, and
 * on success the bitmap holds the writes made since; cancelled, or with
 * bitmap-mode=never, it keeps everything (the successor reclaimed). */
START_TEST(test_backup_incremental)
{
    static const char text[] =
        "blocksim-trace v1\n"
        "topology plain size=1M\n"
        "disk tgt size=1M\n"
        "bitmap add b0 persistent\n"
        "write 0 65536\n"
        "job backup full target=tgt sync=full bitmap=b0 bitmap-mode=on-success\n"
        "job wait full concluded\n"
        "write 131072 4096\n"
        "write 0 4096\n"
        "job backup inc target=tgt sync=incremental bitmap=b0 speed=256K\n"
        "write 131072 512\n"
        "write 524288 4096\n"
        "job wait inc concluded\n"
        "read 0 65536\n";
    struct world_result r;
    struct world_opts o = { .want_bitmaps = true };
    tl_world_pass(text, &o, &r);
    json_t *inc = json_array_get(r.jobs, 1);
    ck_assert_int_eq(num(inc, "len"), 2 * 65536); /* clusters 0 and 2: the bitmap's */
    ck_assert_int_eq(num(json_object_get(r.checks, "jobs"), "sectors_checked"), 2048 + 256);
    char ext[256];
    bitmap_extents(&r, "b0", ext, sizeof(ext));
    ck_assert_str_eq(ext, "131072+65536 524288+65536"); /* the writes during inc */
    world_result_fini(&r);

    /* The planted bug keeps the successor on failure: a cancelled backup
     * loses the bits it was to copy. */
    static const char cancel[] =
        "blocksim-trace v1\n"
        "topology plain size=1M\n"
        "disk tgt size=1M\n"
        "bitmap add b0 persistent\n"
        "write 0 4096\n"
        "write 262144 4096\n"
        "job backup inc target=tgt sync=bitmap bitmap=b0 bitmap-mode=on-success speed=64K\n"
        "write 524288 4096\n"
        "job cancel inc\n"
        "job wait inc concluded\n";
    o = (struct world_opts){ .want_bitmaps = true };
    tl_world_pass(cancel, &o, &r);
    bitmap_extents(&r, "b0", ext, sizeof(ext));
    ck_assert_str_eq(ext, "0+65536 262144+65536 524288+65536"); /* all kept */
    world_result_fini(&r);
    o.node_mutants = NODE_MUTANT_BACKUP_ABDICATE_ALWAYS;
    run_text(cancel, &o, &r);
    ck_assert_int_eq(r.verdict, WORLD_FAIL);
    ck_assert(strncmp(r.first.property, "bitmap-", 7) == 0);
    world_result_fini(&r);
}
END_TEST

/* bitmap-mode=always: a cancelled backup still abdicates, and merges in
 * the clusters it did not copy; without that merge (planted bug) the
 * checker sees the bitmap lose what the job never copied. */
START_TEST(test_backup_bitmap_always)
{
    static const char text[] =
        "blocksim-trace v1\n"
        "topology plain size=1M\n"
        "disk tgt size=1M\n"
        "bitmap add b0 persistent\n"
        "write 0 4096\n"
        "write 262144 4096\n"
        "job backup inc target=tgt sync=bitmap bitmap=b0 bitmap-mode=always speed=64K\n"
        "write 524288 4096\n"
        "job cancel inc\n"
        "job wait inc concluded\n";
    struct world_result r;
    struct world_opts o = { .want_bitmaps = true };
    tl_world_pass(text, &o, &r);
    char ext[256];
    bitmap_extents(&r, "b0", ext, sizeof(ext));
    ck_assert_msg(strstr(ext, "262144+65536") && strstr(ext, "524288+65536"), "%s", ext);
    world_result_fini(&r);
    o.node_mutants = NODE_MUTANT_BACKUP_ALWAYS_NO_MERGE;
    run_text(text, &o, &r);
    ck_assert_int_eq(r.verdict, WORLD_FAIL);
    ck_assert_str_eq(r.first.property, "bitmap-successor");
    ck_assert(strstr(r.first.msg, "the job never copied it") != NULL);
    world_result_fini(&r);
}
END_TEST

/* Image fleecing: sync=none into an overlay over the guest's disk. The
 * overlay's view is the source at the job's start everywhere (copied
 * clusters from the overlay, the rest read through to the source), which
 * the checker judges whole when the job ends. */
START_TEST(test_backup_fleecing)
{
    static const char text[] =
        "blocksim-trace v1\n"
        "topology plain size=1M\n"
        "disk fl size=1M backing=guest\n"
        "write 0 65536\n"
        "write 262144 4096\n"
        "job backup f target=fl sync=none\n"
        "write 0 4096\n"
        "write 262144 512\n"
        "write 524288 4096\n"
        "read 0 65536\n"
        "job cancel f\n"
        "job wait f concluded\n";
    struct world_result r;
    run_events(text, "created running aborting BLOCK_JOB_CANCELLED concluded null", &r);
    ck_assert_int_eq(num(json_object_get(r.checks, "jobs"), "sectors_checked"), 2048);
    world_result_fini(&r);
    expect_caught(text, NODE_MUTANT_BACKUP_CBW_LATE, "backup-point-in-time");
}
END_TEST

/* QEMU's checks of a backup's bitmap options, in its words. */
START_TEST(test_backup_bitmap_refusals)
{
    static const struct { const char *rec; const char *msg; } cases[] = {
        { "job backup b target=tgt sync=incremental",
          "must provide a valid bitmap name for 'incremental' sync mode" },
        { "job backup b target=tgt sync=incremental bitmap=b0 bitmap-mode=never",
          "Bitmap sync mode must be 'on-success' when using sync mode 'incremental'" },
        { "job backup b target=tgt sync=bitmap bitmap=nosuch bitmap-mode=never",
          "Bitmap 'nosuch' could not be found" },
        { "job backup b target=tgt sync=bitmap bitmap=b0",
          "Bitmap sync mode must be given when providing a bitmap" },
        { "job backup b target=tgt sync=none bitmap=b0 bitmap-mode=on-success",
          "sync mode 'none' does not produce meaningful bitmap outputs" },
        { "job backup b target=tgt sync=full bitmap=b0 bitmap-mode=never",
          "Bitmap sync mode 'never' has no meaningful effect when combined with sync mode "
          "'full'" },
        { "job backup b target=tgt sync=full bitmap-mode=on-success",
          "Cannot specify bitmap sync mode without a bitmap" },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char text[512];
        snprintf(text, sizeof(text), "blocksim-trace v1\ndisk tgt size=1M\nbitmap add b0\n"
                 "%s\n", cases[i].rec);
        struct world_result r;
        run_text(text, NULL, &r);
        ck_assert_int_eq(r.verdict, WORLD_PASS);
        ck_assert_uint_eq(r.job_refusals, 1);
        ck_assert_msg(strstr(r.job_refusal, cases[i].msg) != NULL, "case %zu: %s", i,
                      r.job_refusal);
        world_result_fini(&r);
    }
}
END_TEST

/* A job's target on a host of its own, reached over NBD: a backup keeps
 * its point in time through a partition the client's reconnect hides (and
 * a planted copy-after-write is caught); the target host's crash fails the
 * job (reported, not a stack failure); a mirror moves the guest onto the
 * remote disk, whose host's crashes then lose what its cache held. */
START_TEST(test_jobs_remote_target)
{
    static const char backup[] =
        "blocksim-trace v1\ntopology plain size=1M\ndisk tgt size=1M host=vault\n"
        "fault partition host=vault after=5ms before=2s\n"
        "write 0 65536\njob backup b1 target=tgt sync=full speed=1M\nwrite 4096 4096\n"
        "write 300032 512\njob wait b1 concluded\nread 0 65536\n";
    struct world_result r;
    tl_world_pass(backup, NULL, &r);
    ck_assert_str_eq(str(job0(&r), "status"), "null");
    ck_assert(json_is_null(json_object_get(job0(&r), "error")));
    ck_assert_uint_eq(r.n_hosts, 2);
    ck_assert_str_eq(r.hosts[1].name, "vault");
    world_result_fini(&r);
    expect_caught(backup, NODE_MUTANT_BACKUP_CBW_LATE, "backup-point-in-time");
    static const char lost[] =
        "blocksim-trace v1\ntopology plain size=1M\ndisk tgt size=1M host=vault\n"
        "write 0 65536\njob backup b1 target=tgt sync=full speed=256K\n"
        "@100ms crash host=vault\nwrite 8192 4096\njob wait b1 concluded\n"
        "restart host=vault\nread 0 65536\n";
    tl_world_pass(lost, NULL, &r);
    ck_assert_str_eq(str(job0(&r), "error"), "Input/output error");
    world_result_fini(&r);
    for (unsigned seed = 1; seed <= 12; seed++) {
        char mirror[640];
        snprintf(mirror, sizeof(mirror),
                 "blocksim-trace v1\nseed %u\ntopology plain size=1M\n"
                 "disk tgt size=1M host=vault cache=1M\nwrite 0 65536\n"
                 "job mirror m1 target=tgt speed=2M\nwrite 4096 4096\njob wait m1 ready\n"
                 "write 8192 4096\njob complete m1\njob wait m1 concluded\n"
                 "write 12288 4096\nread 0 65536\ncrash host=primary\nrestart host=primary\n"
                 "read 0 65536\ncrash host=vault\nrestart host=vault\nread 0 65536\n", seed);
        run_text(mirror, NULL, &r);
        ck_assert_msg(r.verdict == WORLD_PASS, "seed %u: %s", seed, r.first.msg);
        world_result_fini(&r);
    }
}
END_TEST

/* Image fleecing read over NBD while the guest writes (a backup tool on
 * the export): every read is the source as it was when the job started; a
 * planted copy-after-write is caught by such a read; bad export reads are
 * refused before anything runs. */
START_TEST(test_backup_fleecing_export)
{
    static const char text[] =
        "blocksim-trace v1\ntopology plain size=1M\ndisk fl size=1M backing=guest\nqd 4\n"
        "write 0 65536\njob backup f1 target=fl sync=none\nwrite 0 4096\n"
        "read 0 65536 export=fl\nwrite 8192 4096\nread 0 16384 export=fl\n"
        "write 65536 4096\nread 65536 4096 export=fl\njob cancel f1\n"
        "job wait f1 concluded\nread 0 4096\n";
    struct world_result r;
    tl_world_pass(text, NULL, &r);
    json_t *jobs = json_object_get(r.checks, "jobs");
    ck_assert_int_eq(json_integer_value(json_object_get(jobs, "export_reads_judged")), 3);
    ck_assert_uint_eq(r.ops[TRACE_READ], 4);
    world_result_fini(&r);
    expect_caught(text, NODE_MUTANT_BACKUP_CBW_LATE, "backup-point-in-time");
    static const struct { const char *text; const char *msg; } bad[] = {
        { "blocksim-trace v1\ndisk t size=1M\nread 0 512 export=t\n", "not a fleecing" },
        { "blocksim-trace v1\ndisk fl size=64K backing=guest\nread 65536 512 export=fl\n",
          "beyond the 65536-byte export fl" },
        { "blocksim-trace v1\nread 0 512 export=fl\n", "not a fleecing" },
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct trace t;
        struct err e = { .file = "bad" };
        ck_assert_int_eq(trace_parse(&t, bad[i].text, strlen(bad[i].text), &e), 0);
        struct world_opts o = { 0 };
        ck_assert_int_lt(world_run(&t, &o, &r, &e), 0);
        ck_assert_msg(strstr(e.msg, bad[i].msg) != NULL, "case %zu: %s", i, e.msg);
        trace_fini(&t);
    }
}
END_TEST

Suite *suite_jobs(void)
{
    const TTest *tests[] = {
        test_backup_fleecing_export,
        test_jobs_remote_target,
        test_backup_full_point_in_time,
        test_backup_none_until_cancelled,
        test_backup_top_copies_allocated,
        test_job_refusals_crashes_and_target_errors,
        test_mirror_complete_pivots,
        test_mirror_cancels,
        test_mirror_target_errors,
        test_active_commit,
        test_backup_incremental,
        test_backup_bitmap_refusals,
        test_backup_bitmap_always,
        test_backup_fleecing,
    };
    return tl_suite("jobs", tests, ARRAY_LEN(tests));
}
