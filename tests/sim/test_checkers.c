/*
 * Tests of the checkers themselves (sim/check): each is fed observations by
 * hand, as the world would feed them, and a planted wrong answer (a read of
 * a value the model does not allow, a vote the quorum got wrong, a bitmap
 * missing a write) must be caught and named with the right property. A
 * checker that let one through would fail here before it hid a stack bug.
 */
#include <errno.h>
#include <string.h>

#include "../../sim/base/content.h"
#include "../../sim/check/check_bitmap.h"
#include "../../sim/check/check_quorum.h"
#include "../../sim/check/check_rw.h"
#include "../../sim/check/checker.h"
#include "../../sim/world/world.h"
#include "../suites.h"
#include "../testlib.h"

#define SEED 7

/* Write #k's tag, as the world makes them (content_tag_op(tag) == k). */
#define W(k) ((uint64_t)(k) + 1)

/* Sector @s's bytes for @tag: zeroes, bytes no write makes, or a write's. */
static void fill(uint8_t *buf, uint64_t tag, uint64_t s)
{
    if (tag == CONTENT_TAG_ZERO || tag == CONTENT_TAG_GARBAGE) {
        for (unsigned i = 0; i < CONTENT_SECTOR; i++) {
            buf[i] = tag == CONTENT_TAG_ZERO ? 0 : (uint8_t)(i * 37 + 11);
        }
        return;
    }
    content_fill(buf, SEED, tag, s, 1);
}

/* The guest read sector @s and got @tag's bytes: the checker's judgement. */
static bool rw_reads(struct check_rw *c, uint64_t s, uint64_t tag)
{
    uint8_t buf[CONTENT_SECTOR];
    fill(buf, tag, s);
    bool ok = check_rw_read_done(c, buf, s, 1, 42, 9, 1000);
    check_rw_check(c);
    return ok;
}

/* Read-your-writes: the last acknowledged write, and nothing else. */
START_TEST(test_rw_catches_wrong_reads)
{
    struct check_rw c;
    check_rw_init(&c, SEED, NULL, NULL);
    ck_assert(rw_reads(&c, 3, CONTENT_TAG_ZERO)); /* never written: zeroes */
    check_rw_write_done(&c, 3, 1, W(0), true, false);
    check_rw_write_done(&c, 3, 1, W(1), true, false);
    ck_assert(rw_reads(&c, 3, W(1)));
    ck_assert(!c.failed);
    /* Planted: the stale version. */
    ck_assert(!rw_reads(&c, 3, W(0)));
    ck_assert(c.failed);
    ck_assert_str_eq(c.first.property, "read-your-writes");
    ck_assert_uint_eq(c.first.sector, 3);
    ck_assert_uint_eq(c.first.actual, W(0));
    ck_assert_uint_eq(c.first.n_expected, 1);
    ck_assert_uint_eq(c.first.expected[0], W(1));
    ck_assert_uint_eq(c.first.line, 9);
    ck_assert_uint_eq(c.first.op_index, 42);
    ck_assert_ptr_nonnull(strstr(c.first.msg, "expected write #1, read write #0"));
    /* The first violation stands. */
    ck_assert(!rw_reads(&c, 3, W(7)));
    ck_assert_uint_eq(c.first.actual, W(0));
    check_rw_fini(&c);

    /* Another sector's data is named with its home. */
    check_rw_init(&c, SEED, NULL, NULL);
    check_rw_write_done(&c, 8, 2, W(4), true, false);
    uint8_t buf[CONTENT_SECTOR];
    content_fill(buf, SEED, W(4), 9, 1); /* sector 9's bytes read at sector 8 */
    ck_assert(!check_rw_read_done(&c, buf, 8, 1, 0, 0, 0));
    ck_assert_uint_eq(c.first.actual_home, 9);
    ck_assert_ptr_nonnull(strstr(c.first.msg, "data meant for sector 9"));
    check_rw_fini(&c);

    /* A failed write may or may not have landed; a discard reads as zeroes
     * or the old data; garbage is never allowed. */
    check_rw_init(&c, SEED, NULL, NULL);
    check_rw_write_done(&c, 1, 1, W(0), true, false);
    check_rw_write_done(&c, 1, 1, W(1), false, false);
    ck_assert(rw_reads(&c, 1, W(0)) || rw_reads(&c, 1, W(1)));
    check_rw_discard_done(&c, 5, 1);
    ck_assert(rw_reads(&c, 5, CONTENT_TAG_ZERO));
    ck_assert(!rw_reads(&c, 6, CONTENT_TAG_GARBAGE));
    ck_assert_uint_eq(c.first.actual, CONTENT_TAG_GARBAGE);
    check_rw_fini(&c);
}
END_TEST

/* Crash consistency: flushed and FUA writes survive; unflushed ones may go;
 * whatever a read then sees is what the sector holds from then on. */
START_TEST(test_rw_catches_lost_durable_writes)
{
    struct check_rw c;
    check_rw_init(&c, SEED, NULL, NULL);
    check_rw_write_done(&c, 0, 1, W(0), true, false);
    check_rw_flush_done(&c, check_rw_flush_submit(&c), true);
    check_rw_write_done(&c, 1, 1, W(1), true, true);  /* FUA */
    check_rw_write_done(&c, 2, 1, W(2), true, false); /* done before the flush */
    uint64_t seq = check_rw_flush_submit(&c);
    check_rw_write_done(&c, 3, 1, W(3), true, false); /* done after it was sent */
    check_rw_flush_done(&c, seq, true);
    check_rw_write_lost(&c, 4, 1, W(4));              /* in flight at the crash */
    check_rw_crash(&c);
    ck_assert(rw_reads(&c, 2, W(2)));                 /* the flush covered it */
    ck_assert(rw_reads(&c, 3, CONTENT_TAG_ZERO));     /* lost: legal */
    ck_assert(!c.failed);
    ck_assert(!rw_reads(&c, 3, W(3)));                /* ...and now pinned */
    ck_assert_str_eq(c.first.property, "crash-consistency");
    ck_assert_uint_eq(c.first.sector, 3);
    check_rw_fini(&c);

    check_rw_init(&c, SEED, NULL, NULL);
    check_rw_write_done(&c, 0, 1, W(0), true, false);
    check_rw_flush_done(&c, check_rw_flush_submit(&c), true);
    check_rw_write_done(&c, 1, 1, W(1), true, true);
    check_rw_write_lost(&c, 4, 1, W(4));
    check_rw_crash(&c);
    ck_assert(rw_reads(&c, 4, W(4)));                  /* in flight: may have landed */
    ck_assert(!rw_reads(&c, 1, CONTENT_TAG_ZERO));     /* planted: a lost FUA write */
    ck_assert_str_eq(c.first.property, "crash-consistency");
    ck_assert_uint_eq(c.first.sector, 1);
    check_rw_fini(&c);

    /* A failed flush makes nothing durable. */
    check_rw_init(&c, SEED, NULL, NULL);
    check_rw_write_done(&c, 0, 1, W(0), true, false);
    check_rw_flush_done(&c, check_rw_flush_submit(&c), false);
    check_rw_crash(&c);
    ck_assert(rw_reads(&c, 0, CONTENT_TAG_ZERO));
    check_rw_fini(&c);

    /* A successful one does: the flushed write cannot vanish. */
    check_rw_init(&c, SEED, NULL, NULL);
    check_rw_write_done(&c, 0, 1, W(0), true, false);
    check_rw_flush_done(&c, check_rw_flush_submit(&c), true);
    check_rw_crash(&c);
    ck_assert(!rw_reads(&c, 0, CONTENT_TAG_ZERO));
    check_rw_fini(&c);
}
END_TEST

static bool taint_sector_5(void *opaque, uint64_t sector)
{
    unsigned *calls = opaque;
    (*calls)++;
    return sector == 5;
}

/* Attribution: a wrong value is excused only where the oracle says a fault
 * touched that very sector. */
START_TEST(test_rw_excuses_only_tainted_sectors)
{
    unsigned calls = 0;
    struct check_rw c;
    check_rw_init(&c, SEED, taint_sector_5, &calls);
    check_rw_write_done(&c, 4, 2, W(0), true, false);
    ck_assert(rw_reads(&c, 4, W(0)));
    ck_assert_uint_eq(calls, 0); /* a right value asks nobody */
    ck_assert(rw_reads(&c, 5, CONTENT_TAG_GARBAGE));
    ck_assert_uint_eq(c.explained, 1);
    ck_assert(!c.failed);
    ck_assert(!rw_reads(&c, 4, CONTENT_TAG_GARBAGE)); /* planted: untainted */
    ck_assert_uint_eq(c.first.sector, 4);
    ck_assert_uint_eq(c.explained, 1);
    ck_assert_uint_eq(c.sectors_checked, 3);
    check_rw_fini(&c);
}
END_TEST

/* ---- the quorum checker ---- */

/* The hash of a sector of byte @fill (the checker groups by equal hashes). */
static uint64_t fill_hash(uint8_t fill)
{
    return 0x9e3779b97f4a7c15ull * (fill + 1u);
}

static void child_read(struct check_quorum *c, unsigned child, int ret, uint8_t fill)
{
    check_quorum_child(c, child, NODE_OP_READ, 0, 512, ret, ret == 0 ? fill_hash(fill) : 0);
}

static void report_bad(struct check_quorum *c, enum node_op op, unsigned child, int error)
{
    struct quorum_event ev = { .kind = QUORUM_REPORT_BAD, .op = op, .error = error,
                               .child = child, .node_name = "c", .sector_num = 0,
                               .sectors_count = op == NODE_OP_FLUSH ? 0 : 1 };
    check_quorum_event(c, &ev);
}

static void failure(struct check_quorum *c, enum node_op op)
{
    struct quorum_event ev = { .kind = QUORUM_FAILURE, .op = op, .child = UINT32_MAX,
                               .node_name = "q", .sector_num = 0, .sectors_count = 1 };
    check_quorum_event(c, &ev);
}

static bool quorum_read_returns(struct check_quorum *c, int ret, uint8_t fill)
{
    return check_quorum_done(c, NODE_OP_READ, 0, 512, ret, ret == 0 ? fill_hash(fill) : 0, 3,
                             1, 0);
}

/* Two of three children agree on version A: the vote returns A and reports
 * the loser; any other outcome is caught. */
START_TEST(test_quorum_catches_wrong_votes)
{
    for (unsigned plant = 0; plant < 4; plant++) {
        struct check_quorum c;
        check_quorum_init(&c, 3, 2, false, false, 0);
        child_read(&c, 0, 0, 0xaa);
        child_read(&c, 1, 0, 0xbb);
        child_read(&c, 2, 0, 0xaa);
        if (plant != 1) {
            report_bad(&c, NODE_OP_READ, 1, 0); /* the losing version */
        }
        if (plant == 3) {
            failure(&c, NODE_OP_READ);
        }
        bool ok = quorum_read_returns(&c, plant == 2 ? -EIO : 0, plant == 0 ? 0xaa : 0xaa);
        if (plant == 0) {
            ck_assert_msg(ok, "%s", c.first.msg);
            ck_assert_uint_eq(c.votes, 1);
        } else {
            ck_assert_msg(!ok, "planted %u not caught", plant);
            ck_assert_str_eq(c.first.property, "quorum");
            ck_assert_uint_eq(c.first.line, 3);
        }
        check_quorum_check(&c);
        check_quorum_fini(&c);
    }
    /* The minority's version returned. */
    struct check_quorum c;
    check_quorum_init(&c, 3, 2, false, false, 0);
    child_read(&c, 0, 0, 0xaa);
    child_read(&c, 1, 0, 0xbb);
    child_read(&c, 2, 0, 0xaa);
    report_bad(&c, NODE_OP_READ, 1, 0);
    ck_assert(!quorum_read_returns(&c, 0, 0xbb));
    ck_assert_ptr_nonnull(strstr(c.first.msg, "winning version"));
    check_quorum_fini(&c);
}
END_TEST

/* A write with one success under threshold 2 fails with the most frequent
 * error, reports both failed children and emits QUORUM_FAILURE. */
START_TEST(test_quorum_catches_wrong_write_results)
{
    for (unsigned plant = 0; plant < 3; plant++) {
        struct check_quorum c;
        check_quorum_init(&c, 3, 2, false, false, 0);
        check_quorum_child(&c, 0, NODE_OP_WRITE, 0, 512, 0, fill_hash(0));
        check_quorum_child(&c, 1, NODE_OP_WRITE, 0, 512, -EIO, fill_hash(0));
        check_quorum_child(&c, 2, NODE_OP_WRITE, 0, 512, -ENOSPC, fill_hash(0));
        report_bad(&c, NODE_OP_WRITE, 1, -EIO);
        if (plant != 2) {
            report_bad(&c, NODE_OP_WRITE, 2, -ENOSPC);
        }
        failure(&c, NODE_OP_WRITE);
        /* The tie between EIO and ENOSPC goes to the higher child index. */
        int ret = plant == 1 ? 0 : -ENOSPC;
        bool ok = check_quorum_done(&c, NODE_OP_WRITE, 0, 512, ret, 0, 1, 0, 0);
        ck_assert_msg(ok == (plant == 0), "plant %u: %s", plant, c.first.msg);
        check_quorum_fini(&c);
    }
    /* A child the quorum never asked. */
    struct check_quorum c;
    check_quorum_init(&c, 2, 1, false, false, 0);
    check_quorum_child(&c, 0, NODE_OP_WRITE, 0, 512, 0, fill_hash(0));
    ck_assert(!check_quorum_done(&c, NODE_OP_WRITE, 0, 512, 0, 0, 1, 0, 0));
    ck_assert_ptr_nonnull(strstr(c.first.msg, "never asked"));
    check_quorum_fini(&c);
}
END_TEST

/* ---- the bitmap checker ---- */

/* The stack's side: a dirty set over 1 MiB with persistent bitmap "b" at
 * 64 KiB, as a load or an add leaves it. */
static struct dirty_set *real_set(void)
{
    struct dirty_set *real = dirty_set_new(1 << 20);
    struct err e = { .file = NULL };
    ck_assert_int_eq(dirty_add(real, "b", 65536, DIRTY_ADD_PERSISTENT, &e, NULL), 0);
    return real;
}

/* A model and a real dirty set over 1 MiB, each with persistent bitmap
 * "b" at 64 KiB (check_bitmap_fini and dirty_set_free end them). */
static struct dirty_set *bitmap_pair(struct check_bitmap *c)
{
    check_bitmap_init(c, 1 << 20);
    struct trace_bitmap op = { .op = TRACE_BM_ADD, .persistent = true };
    snprintf(op.name, sizeof(op.name), "b");
    ck_assert_int_eq(check_bitmap_apply(c, &op, 65536), 0);
    return real_set();
}

/* A persistent bitmap misses a write (the stack never marked it): the
 * coverage check names it; a bitmap marked correctly passes. */
START_TEST(test_bitmap_catches_missing_bits)
{
    for (int plant = 0; plant < 2; plant++) {
        struct check_bitmap c;
        struct dirty_set *real = bitmap_pair(&c);
        if (!plant) {
            dirty_mark(real, 70000, 4096);
        }
        struct cb_where at = { .line = 5, .time_ns = 1, .op_index = 2 };
        check_bitmap_write_done(&c, real, 70000, 4096, &at);
        ck_assert_int_eq(c.failed, plant);
        if (plant) {
            ck_assert_str_eq(c.first.property, "bitmap-coverage");
            ck_assert_uint_eq(c.first.line, 5);
        }
        check_bitmap_compare(&c, real, "bitmap-successor", &at);
        ck_assert_int_eq(c.failed, plant);
        check_bitmap_check(&c);
        dirty_set_free(real);
        check_bitmap_fini(&c);
    }
}
END_TEST

/* A clean store must load back bit for bit; a corruption excuses only a
 * bitmap the loader refused, never one it loaded as consistent. */
START_TEST(test_bitmap_catches_wrong_loads)
{
    for (int variant = 0; variant < 4; variant++) {
        struct check_bitmap c;
        struct dirty_set *real = bitmap_pair(&c);
        dirty_mark(real, 0, 4096);
        struct cb_where at = { .line = 7 };
        check_bitmap_write_done(&c, real, 0, 4096, &at);
        check_bitmap_stored(&c);
        check_bitmap_down(&c, false);
        dirty_set_free(real);
        /* The reload: variant 0 exact; 1 a flipped bit, no fault (caught);
         * 2 a flipped bit with the files corrupted (still caught: loaded as
         * consistent); 3 the same with the descriptor lost (explained). */
        real = real_set();
        dirty_mark(real, 0, 4096);
        if (variant > 0) {
            dirty_mark(real, 131072, 512);
        }
        check_bitmap_loaded(&c, real, &at, variant == 3, variant >= 2);
        ck_assert_msg(c.failed == (variant == 1 || variant == 2), "variant %d", variant);
        if (c.failed) {
            ck_assert_str_eq(c.first.property, "bitmap-store");
        }
        ck_assert_uint_eq(c.explained, variant == 3);
        dirty_set_free(real);
        check_bitmap_fini(&c);
    }
}
END_TEST

/* ---- the checker interface, as the world drives it ---- */

/* A checker that counts what it observes and may fail on purpose: at its
 * fail_at-th completion (1-based), or at the end of the run. */
struct spy {
    unsigned submits, dones, losts, controls, crashes, restarts, ends;
    unsigned guest_crashes, guest_restarts;
    uint64_t flush_cookie_seen;
    unsigned fail_at;
    bool fail_at_end;
    bool failed;
    struct violation v;
};

static void spy_fail(struct spy *s, unsigned line)
{
    if (!s->failed) {
        s->failed = true;
        memset(&s->v, 0, sizeof(s->v));
        snprintf(s->v.property, sizeof(s->v.property), "spy");
        snprintf(s->v.msg, sizeof(s->v.msg), "planted by the test");
        s->v.line = line;
    }
}

static uint64_t spy_submit(void *self, const struct checker_io *io)
{
    struct spy *s = self;
    s->submits++;
    return io->op == NODE_OP_FLUSH ? 1000 + s->submits : 0;
}

static void spy_done(void *self, const struct checker_io *io)
{
    struct spy *s = self;
    s->dones++;
    if (io->op == NODE_OP_FLUSH && io->guest) {
        s->flush_cookie_seen = io->cookie;
    }
    if (s->dones == s->fail_at) {
        spy_fail(s, io->rec->line);
    }
}

static void spy_lost(void *self, const struct checker_io *io)
{
    (void)io;
    ((struct spy *)self)->losts++;
}

static void spy_control(void *self, const struct trace_rec *rec)
{
    (void)rec;
    ((struct spy *)self)->controls++;
}

static void spy_crash(void *self, unsigned host, bool guest, int mode)
{
    struct spy *s = self;
    (void)host;
    (void)mode;
    s->crashes++;
    s->guest_crashes += guest;
}

static void spy_restart(void *self, unsigned host, bool guest)
{
    struct spy *s = self;
    (void)host;
    s->restarts++;
    s->guest_restarts += guest;
}

static void spy_end(void *self)
{
    struct spy *s = self;
    s->ends++;
    if (s->fail_at_end) {
        spy_fail(s, 0);
    }
}

static const struct violation *spy_violation(const void *self)
{
    const struct spy *s = self;
    return s->failed ? &s->v : NULL;
}

static json_t *spy_json(const void *self)
{
    const struct spy *s = self;
    return json_pack("{s:i}", "dones", (json_int_t)s->dones);
}

static const struct checker_ops spy_ops = {
    .name = "spy", .io_submit = spy_submit, .io_done = spy_done, .io_lost = spy_lost,
    .control = spy_control, .crash = spy_crash, .restart = spy_restart, .end = spy_end,
    .violation = spy_violation, .json = spy_json,
};

/* Two writes at queue depth 2 when the host crashes at @50us: both lost;
 * the flush, the read and the control records all observed. Line 8 reads
 * back the FUA write, which a planted disk bug may lose. */
static const char spy_trace[] =
    "blocksim-trace v1\n"
    "topology plain size=1M\n"
    "write 0 4096\n"
    "flush\n"
    "write 8192 4096 fua\n"
    "crash mode=prefix\n"
    "restart\n"
    "read 8192 4096\n"
    "qd 2\n"
    "write 0 65536\n"
    "write 65536 65536\n"
    "@50us crash\n"
    "restart\n";

static void spy_run(struct spy *s, struct world_opts *o, struct world_result *r)
{
    struct trace t;
    struct err e = { .file = "spy" };
    ck_assert_int_eq(trace_parse(&t, spy_trace, strlen(spy_trace), &e), 0);
    struct checker c = { &spy_ops, s };
    o->checkers = &c;
    o->n_checkers = 1;
    o->want_checks = true;
    int ret = world_run(&t, o, r, &e);
    ck_assert_msg(ret == 0, "line %u: %s", e.line, e.msg);
    trace_fini(&t);
}

/* Every hook is called, once per event, with the cookie io_submit gave. */
START_TEST(test_checker_interface_sees_every_event)
{
    struct spy s = { 0 };
    struct world_opts o = { 0 };
    struct world_result r;
    spy_run(&s, &o, &r);
    ck_assert_int_eq(r.verdict, WORLD_PASS);
    ck_assert_uint_eq(s.submits, 6);   /* 4 writes, a flush, a read */
    ck_assert_uint_eq(s.dones, 4);     /* all but the two writes the crash took */
    ck_assert_uint_eq(s.losts, 2);
    ck_assert_uint_eq(r.lost, 2);
    ck_assert_uint_eq(s.flush_cookie_seen, 1002); /* the flush was the second submit */
    ck_assert_uint_eq(s.controls, 4);  /* 2 crashes, 2 restarts */
    ck_assert_uint_eq(s.crashes, 2);
    ck_assert_uint_eq(s.guest_crashes, 2);
    ck_assert_uint_eq(s.restarts, 2);
    ck_assert_uint_eq(s.guest_restarts, 2);
    ck_assert_uint_eq(s.ends, 1);
    /* Its own section of the report, beside the world's own checker. */
    ck_assert_ptr_nonnull(json_object_get(r.checks, "rw"));
    json_t *spy = json_object_get(r.checks, "spy");
    ck_assert_ptr_nonnull(spy);
    ck_assert_int_eq(json_integer_value(json_object_get(spy, "dones")), 4);
    world_result_fini(&r);
}
END_TEST

/* The verdict is the earliest violation in event order, whichever checker
 * saw it, even one registered after the world's own. */
START_TEST(test_checker_first_violation_wins)
{
    /* The spy fails at the first completion (line 3), before the planted
     * FUA bug shows at line 8: the spy's. */
    struct spy s = { .fail_at = 1 };
    struct world_opts o = { .disk_mutants = DISK_MUTANT_FUA_VOLATILE, .has_seed = true };
    struct world_result r;
    o.seed = 1;
    spy_run(&s, &o, &r);
    ck_assert_int_eq(r.verdict, WORLD_FAIL);
    ck_assert_str_eq(r.first.property, "spy");
    ck_assert_uint_eq(r.first.line, 3);
    world_result_fini(&r);
    /* The spy fails only at the end: the planted bug, found first (try
     * seeds until the crash drops the write, as in test_world). */
    bool caught = false;
    for (o.seed = 1; o.seed < 50 && !caught; o.seed++) {
        s = (struct spy){ .fail_at_end = true };
        spy_run(&s, &o, &r);
        ck_assert_int_eq(r.verdict, WORLD_FAIL);
        caught = strcmp(r.first.property, "crash-consistency") == 0;
        if (caught) {
            ck_assert_uint_eq(r.first.line, 8);
        } else {
            ck_assert_str_eq(r.first.property, "spy");
        }
        world_result_fini(&r);
    }
    ck_assert(caught);
}
END_TEST

Suite *suite_checkers(void)
{
    const TTest *tests[] = {
        test_rw_catches_wrong_reads,
        test_rw_catches_lost_durable_writes,
        test_rw_excuses_only_tainted_sectors,
        test_quorum_catches_wrong_votes,
        test_quorum_catches_wrong_write_results,
        test_bitmap_catches_missing_bits,
        test_bitmap_catches_wrong_loads,
        test_checker_interface_sees_every_event,
        test_checker_first_violation_wins,
    };
    return tl_suite("checkers", tests, ARRAY_LEN(tests));
}
