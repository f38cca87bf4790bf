/* Tests of ref/replication: the stage table, primary error keeping, the
 * secondary's start, checkpoint and failover against what each disk must
 * hold (spec §1.2-1.4), QEMU's messages, and the seed-era variants. */
#include "../../ref/drv_file.h"
#include "../../ref/drv_overlay.h"
#include "../../ref/replication.h"
#include "../suites.h"
#include "../testlib.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define SIZE (256u * 1024)
#define CL 4096u

/* The secondary's graph: secondary disk, hidden and active overlays, the
 * replication node; `front` is where the NBD server's writes enter. */
struct sec_fixture {
    struct tl_env env;
    struct disk *d[3];
    struct disk_handle *h[3];
    struct graph g;
    struct job_list jobs;
    struct node *disk, *hidden, *active, *repl, *front;
    uint64_t events;
};

static void sec_event(void *opaque, const struct job_event *ev)
{
    struct sec_fixture *f = opaque;
    f->events++;
    replication_job_event(f->repl, ev);
}

static void sec_setup(struct sec_fixture *f, enum repl_variant v, uint64_t mutants)
{
    memset(f, 0, sizeof(*f));
    tl_env_init(&f->env);
    static const char *const names[] = { "secondary", "hidden", "active" };
    graph_init(&f->g, evq_timer(&f->env.q), mutants);
    struct node *file[3];
    for (unsigned i = 0; i < 3; i++) {
        struct disk_config c;
        disk_config_default(&c, names[i], i ? overlay_file_size(SIZE, CL) : SIZE);
        f->d[i] = disk_new(&c, &f->env.q, &f->env.plan, 1, i, 0);
        f->h[i] = disk_handle_new(f->d[i]);
        struct drv_file_opts fo = { disk_storage(f->h[i]) };
        ck_assert_int_eq(node_new(&f->g, &drv_file, names[i], &fo, NULL, &file[i]), 0);
    }
    f->disk = file[0];
    struct drv_overlay_opts ho = { file[1], f->disk, SIZE, CL };
    ck_assert_int_eq(node_new(&f->g, &drv_overlay, "hidden-ovl", &ho, NULL, &f->hidden), 0);
    struct drv_overlay_opts ao = { file[2], f->hidden, SIZE, CL };
    ck_assert_int_eq(node_new(&f->g, &drv_overlay, "active-ovl", &ao, NULL, &f->active), 0);
    f->front = f->disk;
    job_list_init(&f->jobs, evq_timer(&f->env.q), sec_event, f);
    f->jobs.mutants = mutants;
    struct drv_replication_opts ro = {
        .mode = REPL_MODE_SECONDARY, .variant = v, .file = f->active, .hidden = f->hidden,
        .secondary = f->disk, .export_front = &f->front, .jobs = &f->jobs,
    };
    ck_assert_int_eq(node_new(&f->g, &drv_replication, "repl", &ro, NULL, &f->repl), 0);
}

static void sec_teardown(struct sec_fixture *f)
{
    tl_run(&f->env.q);
    job_list_fini(&f->jobs);
    tl_run(&f->env.q);
    graph_fini(&f->g);
    for (unsigned i = 0; i < 3; i++) {
        disk_handle_free(f->h[i]);
        disk_free(f->d[i]);
    }
    tl_env_fini(&f->env);
}

/* An operation's result, run to its end. */
struct op_result {
    int calls;
    int ret;
    char msg[256];
};

static void op_cb(void *opaque, int ret, const struct err *e)
{
    struct op_result *r = opaque;
    r->calls++;
    r->ret = ret;
    snprintf(r->msg, sizeof(r->msg), "%s", e && ret < 0 ? e->msg : "");
}

enum op { OP_START, OP_CHECKPOINT, OP_STOP, OP_FAILOVER };

static struct op_result run_op(struct tl_env *env, struct node *n, enum op op)
{
    struct op_result r = { 0 };
    if (op == OP_START) {
        replication_start(n, op_cb, &r);
    } else if (op == OP_CHECKPOINT) {
        replication_do_checkpoint(n, op_cb, &r);
    } else {
        replication_stop(n, op == OP_FAILOVER, op_cb, &r);
    }
    ck_assert_int_eq(r.calls, 0); /* never inline */
    tl_run(&env->q);
    ck_assert_int_eq(r.calls, 1);
    return r;
}

/* Write @len bytes of byte @v at @off through @n. */
static void put(struct tl_env *env, struct node *n, uint64_t off, uint64_t len, uint8_t v)
{
    uint8_t buf[16384];
    ck_assert(len <= sizeof(buf));
    memset(buf, v, len);
    ck_assert_int_eq(tl_node_io(&env->q, n, NODE_OP_WRITE, off, len, buf, 0), 0);
}

/* Does every byte of [off, off + len) read through @n equal @v? */
static void expect(struct tl_env *env, struct node *n, uint64_t off, uint64_t len, uint8_t v)
{
    uint8_t buf[16384];
    uint8_t want[16384];
    ck_assert(len <= sizeof(buf));
    memset(want, v, len);
    ck_assert_int_eq(tl_node_io(&env->q, n, NODE_OP_READ, off, len, buf, 0), 0);
    tl_assert_mem_eq(buf, want, len);
}

START_TEST(test_repl_stage_table)
{
    static const unsigned ok[REPL_STAGE__COUNT] = {
        [REPL_STAGE_NONE] = 1u << REPL_STAGE_RUNNING,
        [REPL_STAGE_RUNNING] = 1u << REPL_STAGE_FAILOVER | 1u << REPL_STAGE_DONE,
        [REPL_STAGE_FAILOVER] = 1u << REPL_STAGE_DONE | 1u << REPL_STAGE_FAILOVER_FAILED,
    };
    for (unsigned a = 0; a < REPL_STAGE__COUNT; a++) {
        for (unsigned b = 0; b < REPL_STAGE__COUNT; b++) {
            ck_assert_msg(repl_stage_transition_ok(a, b) == ((ok[a] >> b) & 1), "%s -> %s",
                          repl_stage_name(a), repl_stage_name(b));
        }
    }
    ck_assert_str_eq(repl_stage_name(REPL_STAGE_FAILOVER_FAILED), "failover-failed");
}
END_TEST

/* The primary: I/O fails until started; reads always fail; a forwarding
 * error is kept for get_error and never returned (unless planted). */
static void primary_case(uint64_t mutants)
{
    struct tl_env env;
    tl_env_init(&env);
    ck_assert_int_eq(fault_plan_parse_spec(&env.plan, "write-eio disk=fwd nth=2 times=1", NULL),
                     0);
    struct disk_config c;
    disk_config_default(&c, "fwd", SIZE);
    struct disk *d = disk_new(&c, &env.q, &env.plan, 1, 0, 0);
    struct disk_handle *h = disk_handle_new(d);
    struct graph g;
    graph_init(&g, evq_timer(&env.q), mutants);
    struct drv_file_opts fo = { disk_storage(h) };
    struct node *file;
    struct node *repl;
    ck_assert_int_eq(node_new(&g, &drv_file, "fwd", &fo, NULL, &file), 0);
    struct drv_replication_opts ro = { .mode = REPL_MODE_PRIMARY, .file = file };
    ck_assert_int_eq(node_new(&g, &drv_replication, "repl", &ro, NULL, &repl), 0);
    uint8_t buf[4096] = { 0 };
    struct err e = { .file = NULL };
    ck_assert_int_eq(replication_get_error(repl, &e), -EIO);
    ck_assert_str_eq(e.msg, "Block replication is not running");
    ck_assert_int_eq(tl_node_io(&env.q, repl, NODE_OP_WRITE, 0, 4096, buf, 0), -EIO);
    struct op_result r = run_op(&env, repl, OP_START);
    ck_assert_int_eq(r.ret, 0);
    ck_assert_int_eq(replication_stage(repl), REPL_STAGE_RUNNING);
    ck_assert_int_eq(tl_node_io(&env.q, repl, NODE_OP_READ, 0, 4096, buf, 0), -EIO);
    ck_assert_int_eq(tl_node_io(&env.q, repl, NODE_OP_WRITE, 0, 4096, buf, 0), 0);
    bool planted = mutants != 0;
    ck_assert_int_eq(tl_node_io(&env.q, repl, NODE_OP_WRITE, 4096, 4096, buf, 0),
                     planted ? -EIO : 0); /* the second write fails below */
    ck_assert_int_eq(replication_get_error(repl, &e), planted ? 0 : -EIO);
    if (!planted) {
        ck_assert_str_eq(e.msg, "I/O error occurred");
    }
    r = run_op(&env, repl, OP_START);
    ck_assert_int_eq(r.ret, -EINVAL);
    ck_assert_str_eq(r.msg, "Block replication is running or done");
    ck_assert_int_eq(run_op(&env, repl, OP_CHECKPOINT).ret, 0); /* a primary: no-op */
    ck_assert_int_eq(run_op(&env, repl, OP_STOP).ret, 0);
    ck_assert_int_eq(replication_stage(repl), REPL_STAGE_DONE);
    ck_assert_int_eq(replication_error(repl), 0); /* stop clears it */
    ck_assert_int_eq(tl_node_io(&env.q, repl, NODE_OP_WRITE, 0, 4096, buf, 0), -EIO);
    ck_assert_int_eq(run_op(&env, repl, OP_STOP).ret, 0); /* after promotion: ignored */
    tl_run(&env.q);
    graph_fini(&g);
    disk_handle_free(h);
    disk_free(d);
    tl_env_fini(&env);
}

START_TEST(test_repl_primary_keeps_errors)
{
    primary_case(0);
    primary_case(NODE_MUTANT_REPL_PRIMARY_RETURNS_ERROR);
}
END_TEST

/* Start, primary writes (through the export front) and secondary writes
 * (through the node), a checkpoint: each disk holds what spec 1.2 says. */
START_TEST(test_repl_secondary_checkpoint)
{
    struct sec_fixture f;
    sec_setup(&f, REPL_VARIANT_MODERN, 0);
    put(&f.env, f.disk, 0, 16384, 0x11); /* C before start */
    struct err e = { .file = NULL };
    ck_assert_int_eq(tl_node_io(&f.env.q, f.repl, NODE_OP_READ, 0, 512, (uint8_t[512]){ 0 },
                                0), -EIO); /* NONE */
    struct op_result r = run_op(&f.env, f.repl, OP_START);
    ck_assert_int_eq(r.ret, 0);
    ck_assert_int_eq(replication_stage(f.repl), REPL_STAGE_RUNNING);
    ck_assert_ptr_nonnull(job_find(&f.jobs, REPL_BACKUP_JOB));
    ck_assert_ptr_ne(f.front, f.disk); /* the copy-before-write filter */
    put(&f.env, f.front, 0, 4096, 0x22);        /* P */
    put(&f.env, f.front, 0, 4096, 0x23);        /* P again: no second copy */
    put(&f.env, f.repl, 8192, 4096, 0x33);      /* S */
    expect(&f.env, f.disk, 0, 4096, 0x23);      /* secondary disk = C + P */
    expect(&f.env, f.hidden, 0, 4096, 0x11);    /* hidden = C where P wrote */
    expect(&f.env, f.repl, 0, 4096, 0x11);      /* view = C + S */
    expect(&f.env, f.repl, 8192, 4096, 0x33);
    expect(&f.env, f.disk, 8192, 4096, 0x11);   /* S never reaches it */
    ck_assert_int_eq(run_op(&f.env, f.repl, OP_CHECKPOINT).ret, 0);
    ck_assert_uint_eq(overlay_clusters_allocated(f.active), 0);
    ck_assert_uint_eq(overlay_clusters_allocated(f.hidden), 0);
    expect(&f.env, f.repl, 0, 4096, 0x23);      /* the new C: the primary's */
    expect(&f.env, f.repl, 8192, 4096, 0x11);   /* S discarded */
    put(&f.env, f.front, 0, 4096, 0x24);        /* copied again after the reset */
    expect(&f.env, f.repl, 0, 4096, 0x23);
    ck_assert_int_eq(replication_get_error(f.repl, &e), 0);
    sec_teardown(&f);
}
END_TEST

/* The planted bugs of the checkpoint break what spec 1.2 says. */
START_TEST(test_repl_checkpoint_planted)
{
    struct sec_fixture f;
    sec_setup(&f, REPL_VARIANT_MODERN, NODE_MUTANT_REPL_CHECKPOINT_NO_RESET);
    ck_assert_int_eq(run_op(&f.env, f.repl, OP_START).ret, 0);
    put(&f.env, f.front, 0, 4096, 0x22);
    ck_assert_int_eq(run_op(&f.env, f.repl, OP_CHECKPOINT).ret, 0);
    put(&f.env, f.front, 0, 4096, 0x24);        /* no copy: leaks into the view */
    expect(&f.env, f.repl, 0, 4096, 0x24);
    sec_teardown(&f);
    sec_setup(&f, REPL_VARIANT_MODERN, NODE_MUTANT_REPL_CHECKPOINT_ACTIVE_ONLY);
    ck_assert_int_eq(run_op(&f.env, f.repl, OP_START).ret, 0);
    put(&f.env, f.front, 0, 4096, 0x22);
    ck_assert_int_eq(run_op(&f.env, f.repl, OP_CHECKPOINT).ret, 0);
    /* kept: the 64 KiB backup cluster's copy, in 4 KiB overlay clusters */
    ck_assert_uint_eq(overlay_clusters_allocated(f.hidden), 65536 / CL);
    sec_teardown(&f);
}
END_TEST

/* Failover commits active and hidden into the secondary disk and moves
 * onto it; afterwards start, checkpoint and stop are no-ops. */
static void failover_case(uint64_t mutants, uint8_t want_at0)
{
    struct sec_fixture f;
    sec_setup(&f, REPL_VARIANT_MODERN, mutants);
    put(&f.env, f.disk, 0, 16384, 0x11);
    ck_assert_int_eq(run_op(&f.env, f.repl, OP_START).ret, 0);
    put(&f.env, f.front, 0, 4096, 0x22);        /* P: rolled back */
    put(&f.env, f.repl, 73728, 4096, 0x33);     /* S (another commit granule): kept */
    struct op_result r = run_op(&f.env, f.repl, OP_FAILOVER);
    ck_assert_int_eq(r.ret, 0);
    ck_assert_int_eq(replication_stage(f.repl), REPL_STAGE_DONE);
    ck_assert_int_eq(replication_error(f.repl), 0);
    ck_assert_ptr_null(job_find(&f.jobs, REPL_COMMIT_JOB));
    expect(&f.env, f.disk, 0, 4096, want_at0);
    expect(&f.env, f.disk, 73728, 4096, 0x33);
    put(&f.env, f.repl, 12288, 4096, 0x44);     /* now straight to the disk */
    expect(&f.env, f.disk, 12288, 4096, 0x44);
    ck_assert_int_eq(run_op(&f.env, f.repl, OP_START).ret, 0);
    ck_assert_int_eq(run_op(&f.env, f.repl, OP_CHECKPOINT).ret, 0);
    ck_assert_int_eq(run_op(&f.env, f.repl, OP_FAILOVER).ret, 0);
    ck_assert_int_eq(replication_stage(f.repl), REPL_STAGE_DONE);
    sec_teardown(&f);
}

START_TEST(test_repl_failover)
{
    failover_case(0, 0x11);
    failover_case(NODE_MUTANT_REPL_FAILOVER_ACTIVE_ONLY, 0x22); /* hidden not committed */
}
END_TEST

/* A commit that fails (every write to the secondary disk fails from the
 * failover on): FAILOVER_FAILED, get-error says so, and a write goes to the
 * active disk where active or hidden hold the range, else to the
 * secondary disk (which fails it). */
START_TEST(test_repl_failover_failed)
{
    struct sec_fixture f;
    sec_setup(&f, REPL_VARIANT_MODERN, 0);
    put(&f.env, f.disk, 0, 16384, 0x11);
    ck_assert_int_eq(run_op(&f.env, f.repl, OP_START).ret, 0);
    put(&f.env, f.front, 0, 4096, 0x22);        /* hidden holds the first 64 KiB */
    put(&f.env, f.repl, 73728, 4096, 0x33);     /* active holds a cluster of its own */
    ck_assert_int_eq(fault_plan_parse_spec(&f.env.plan, "write-eio disk=secondary", NULL), 0);
    struct op_result r = run_op(&f.env, f.repl, OP_FAILOVER);
    ck_assert_int_eq(r.ret, -EIO);
    ck_assert_ptr_nonnull(strstr(r.msg, "failover commit failed"));
    ck_assert_int_eq(replication_stage(f.repl), REPL_STAGE_FAILOVER_FAILED);
    struct err e = { .file = NULL };
    ck_assert_int_eq(replication_get_error(f.repl, &e), -EIO);
    ck_assert_str_eq(e.msg, "I/O error occurred");
    uint8_t buf[4096];
    memset(buf, 0x44, sizeof(buf));
    ck_assert_int_eq(tl_node_io(&f.env.q, f.repl, NODE_OP_WRITE, 4096, 4096, buf, 0), 0);
    expect(&f.env, f.repl, 4096, 4096, 0x44);   /* held by hidden: into active */
    ck_assert_int_eq(tl_node_io(&f.env.q, f.repl, NODE_OP_WRITE, 131072, 4096, buf, 0),
                     -EIO);                     /* held by neither: the secondary disk */
    ck_assert_int_eq(run_op(&f.env, f.repl, OP_CHECKPOINT).ret, -EIO); /* no backup job */
    sec_teardown(&f);
}
END_TEST

/* Messages and refusals: stop before start; a checkpoint without its
 * backup job; a chain without its backing. */
START_TEST(test_repl_refusals)
{
    struct sec_fixture f;
    sec_setup(&f, REPL_VARIANT_MODERN, 0);
    struct op_result r = run_op(&f.env, f.repl, OP_STOP);
    ck_assert_int_eq(r.ret, -EIO);
    ck_assert_str_eq(r.msg, "Block replication is not running");
    ck_assert_int_eq(run_op(&f.env, f.repl, OP_START).ret, 0);
    struct err e = { .file = NULL };
    ck_assert_int_eq(job_cancel(job_find(&f.jobs, REPL_BACKUP_JOB), true, true, &e), 0);
    tl_run(&f.env.q);
    r = run_op(&f.env, f.repl, OP_CHECKPOINT);
    ck_assert_int_eq(r.ret, -EIO);
    ck_assert_str_eq(r.msg, "Backup job was cancelled unexpectedly");
    ck_assert_int_eq(replication_get_error(f.repl, &e), -EIO); /* the job ended while RUNNING */
    sec_teardown(&f);
    /* A chain whose active disk has no backing. */
    sec_setup(&f, REPL_VARIANT_MODERN, 0);
    struct node *lone;
    struct drv_replication_opts ro = {
        .mode = REPL_MODE_SECONDARY, .file = f.disk, .hidden = f.hidden, .secondary = f.disk,
        .export_front = &f.front, .jobs = &f.jobs,
    };
    ck_assert_int_eq(node_new(&f.g, &drv_replication, "lone", &ro, NULL, &lone), 0);
    r = run_op(&f.env, lone, OP_START);
    ck_assert_int_eq(r.ret, -EINVAL);
    ck_assert_str_eq(r.msg, "Active disk doesn't have backing file");
    sec_teardown(&f);
}
END_TEST

/* v12: failover goes DONE without a commit; DONE writes go to the active
 * disk where active or hidden hold the range, else to the secondary disk;
 * a checkpoint when not running is refused with the seed's message. */
START_TEST(test_repl_v12)
{
    struct sec_fixture f;
    sec_setup(&f, REPL_VARIANT_V12, 0);
    put(&f.env, f.disk, 0, 16384, 0x11);
    ck_assert_int_eq(run_op(&f.env, f.repl, OP_START).ret, 0);
    put(&f.env, f.front, 0, 4096, 0x22);        /* hidden holds the first 64 KiB */
    ck_assert_int_eq(run_op(&f.env, f.repl, OP_FAILOVER).ret, 0);
    ck_assert_int_eq(replication_stage(f.repl), REPL_STAGE_DONE);
    ck_assert_int_eq(replication_error(f.repl), 0); /* DONE first: error stays clean */
    expect(&f.env, f.disk, 0, 4096, 0x22);      /* not committed: the seed's hazard */
    expect(&f.env, f.repl, 0, 4096, 0x11);      /* the view still holds */
    put(&f.env, f.repl, 61440, 8192, 0x55);     /* held by hidden: active; past it: disk */
    expect(&f.env, f.disk, 61440, 4096, 0x00);  /* untouched: the write went to active */
    expect(&f.env, f.disk, 65536, 4096, 0x55);
    expect(&f.env, f.repl, 61440, 8192, 0x55);
    struct op_result r = run_op(&f.env, f.repl, OP_CHECKPOINT);
    ck_assert_int_eq(r.ret, -EIO);
    ck_assert_str_eq(r.msg, "Block replication is not running");
    sec_teardown(&f);
}
END_TEST

Suite *suite_replication(void)
{
    const TTest *tests[] = {
        test_repl_stage_table, test_repl_primary_keeps_errors, test_repl_secondary_checkpoint,
        test_repl_checkpoint_planted, test_repl_failover, test_repl_refusals, test_repl_v12,
        test_repl_failover_failed,
    };
    return tl_suite("replication", tests, ARRAY_LEN(tests));
}
