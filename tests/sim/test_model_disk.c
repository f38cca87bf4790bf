/* Tests of sim/model_disk: current and post-crash value sets. */
#include "../../sim/check/check_rw.h"
#include "../../sim/base/content.h"
#include "../../sim/check/model_disk.h"
#include "../suites.h"
#include "../testlib.h"

static bool can_read(struct model_disk *m, uint64_t s, uint64_t tag)
{
    /* Probe without narrowing: look at the current set. */
    uint64_t set[8];
    unsigned n = model_disk_current(m, s, set, 8);
    for (unsigned i = 0; i < n && i < 8; i++) {
        if (set[i] == tag) {
            return true;
        }
    }
    return false;
}

START_TEST(test_model_read_your_writes)
{
    struct model_disk m;
    model_disk_init(&m);
    ck_assert(can_read(&m, 5, 0));
    model_disk_tick(&m);
    model_disk_write(&m, 5, 2, 11, 0);
    ck_assert(can_read(&m, 5, 11));
    ck_assert(!can_read(&m, 5, 0));
    model_disk_tick(&m);
    model_disk_write(&m, 5, 1, 12, MODEL_MAYBE); /* failed write */
    ck_assert(can_read(&m, 5, 11));
    ck_assert(can_read(&m, 5, 12));
    uint64_t set[4];
    unsigned n;
    ck_assert(model_disk_read(&m, 5, 12, set, 4, &n)); /* it did land */
    ck_assert_uint_eq(n, 0);
    ck_assert(!can_read(&m, 5, 11));
    ck_assert(!model_disk_read(&m, 6, 12, set, 4, &n));
    ck_assert_uint_eq(n, 1);
    ck_assert_uint_eq(set[0], 11);
    model_disk_check(&m);
    model_disk_fini(&m);
}
END_TEST

START_TEST(test_model_crash_sets)
{
    struct model_disk m;
    model_disk_init(&m);
    model_disk_tick(&m);
    model_disk_write(&m, 0, 3, 1, 0);            /* A on 0..2 */
    uint64_t flush = model_disk_tick(&m);        /* flush submitted */
    model_disk_tick(&m);
    model_disk_write(&m, 0, 1, 2, 0);            /* B on 0, after the flush began */
    model_disk_tick(&m);
    model_disk_flush(&m, flush);                 /* covers A only */
    model_disk_tick(&m);
    model_disk_write(&m, 1, 1, 3, MODEL_DURABLE); /* C on 1, FUA */
    model_disk_tick(&m);
    model_disk_write(&m, 2, 1, 4, 0);            /* D on 2 */
    model_disk_crash(&m);
    ck_assert(can_read(&m, 0, 1) && can_read(&m, 0, 2) && !can_read(&m, 0, 0));
    ck_assert(can_read(&m, 1, 3) && !can_read(&m, 1, 1));
    ck_assert(can_read(&m, 2, 1) && can_read(&m, 2, 4));
    ck_assert(can_read(&m, 9, 0));
    /* What is read after the crash is on media: it stays. */
    uint64_t set[4];
    unsigned n;
    ck_assert(model_disk_read(&m, 0, 1, set, 4, &n));
    ck_assert(!can_read(&m, 0, 2));
    model_disk_crash(&m);
    ck_assert(!can_read(&m, 0, 2));
    model_disk_check(&m);
    model_disk_fini(&m);
}
END_TEST

START_TEST(test_model_assign)
{
    struct model_disk view;
    struct model_disk base;
    model_disk_init(&view);
    model_disk_init(&base);
    model_disk_tick(&base);
    model_disk_write(&base, 3, 1, 9, 0);
    model_disk_tick(&view);
    model_disk_write(&view, 1, 1, 5, 0);
    model_disk_assign(&view, &base);
    ck_assert(can_read(&view, 1, 0));
    ck_assert(can_read(&view, 3, 9));
    model_disk_crash(&view); /* assigned values are durable */
    ck_assert(!can_read(&view, 1, 5));
    model_disk_fini(&view);
    model_disk_fini(&base);
}
END_TEST

/* A read of sector @s that returns write @tag, through the checker. */
static bool checker_reads(struct check_rw *c, uint64_t s, uint64_t tag)
{
    uint8_t buf[CONTENT_SECTOR];
    content_fill(buf, 7, tag, s, 1);
    return check_rw_read_done(c, buf, s, 1, 0, 0, 0);
}

/* After a crash a quorum's replicas may hold different crash-possible values
 * of a sector, and whole-request votes may return them in any order (QEMU
 * does: tests/qemu_quorum.py). The replica checker lets them alternate but
 * still catches a value no crash allows; the single-disk checker pins the
 * first value read. */
START_TEST(test_checker_replicas_after_crash)
{
    for (int replicas = 0; replicas < 2; replicas++) {
        struct check_rw c;
        check_rw_init(&c, 7, NULL, NULL);
        c.replicas = replicas;
        check_rw_write_done(&c, 115, 1, 1, true, false); /* write #0 */
        check_rw_flush_done(&c, check_rw_flush_submit(&c), true);
        check_rw_write_done(&c, 115, 1, 4, true, false); /* write #3, unflushed */
        ck_assert(checker_reads(&c, 115, 4));
        check_rw_crash(&c);
        ck_assert(checker_reads(&c, 115, 1));            /* lost: legal */
        ck_assert_int_eq(checker_reads(&c, 115, 4), replicas); /* another replica's */
        ck_assert(!c.failed || !replicas);
        if (replicas) {
            ck_assert(checker_reads(&c, 115, 1));
            ck_assert(!checker_reads(&c, 115, 9));       /* no crash allows write #8 */
            ck_assert(c.failed);
            ck_assert_str_eq(c.first.property, "crash-consistency");
        }
        check_rw_fini(&c);
    }
    /* Once rewritten, the sector has one value again, replicas or not. */
    struct check_rw c;
    check_rw_init(&c, 7, NULL, NULL);
    c.replicas = true;
    check_rw_write_done(&c, 115, 1, 1, true, false);
    check_rw_crash(&c);
    check_rw_write_done(&c, 115, 1, 6, true, false);
    ck_assert(checker_reads(&c, 115, 6));
    ck_assert(!checker_reads(&c, 115, 1));
    check_rw_fini(&c);
}
END_TEST

Suite *suite_model_disk(void)
{
    const TTest *tests[] = {
        test_checker_replicas_after_crash,
        test_model_read_your_writes,
        test_model_crash_sets,
        test_model_assign,
    };
    return tl_suite("model_disk", tests, ARRAY_LEN(tests));
}
