/* Tests of sim/model_disk: current and post-crash value sets. */
#include "../../sim/check/check_rw.h"
#include "../../sim/base/content.h"
#include "../../sim/base/rng.h"
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

/*
 * A reference model, written the slow and obvious way: every candidate of a
 * sector is kept in completion order and the durable base is found afresh
 * each time (the last definite one that is FUA, read back after a crash, or
 * completed before the last flush's submission). The model must give the
 * same current sets and read verdicts; its crash-free mode must too, on
 * sequences without a crash.
 */
#define REF_SECTORS 3
#define REF_MAX 512

struct ref_sector {
    struct model_cand c[REF_MAX];
    unsigned n;
};

struct ref_model {
    struct ref_sector s[REF_SECTORS];
    uint64_t seq, durable_seq;
};

static void ref_prune(struct ref_model *r, struct ref_sector *sec)
{
    unsigned base = 0;
    for (unsigned i = sec->n; i > 0; i--) {
        const struct model_cand *c = &sec->c[i - 1];
        if (!(c->flags & MODEL_MAYBE) &&
            ((c->flags & MODEL_DURABLE) || c->seq < r->durable_seq)) {
            base = i - 1;
            break;
        }
    }
    memmove(sec->c, sec->c + base, (sec->n - base) * sizeof(sec->c[0]));
    sec->n -= base;
}

static unsigned ref_start(const struct ref_sector *sec)
{
    unsigned i = sec->n - 1;
    while (sec->c[i].flags & MODEL_MAYBE) {
        i--;
    }
    return i;
}

static unsigned ref_current(const struct ref_sector *sec, uint64_t *set)
{
    unsigned n = 0;
    for (unsigned i = ref_start(sec); i < sec->n; i++) {
        set[n++] = sec->c[i].tag;
    }
    return n;
}

static bool ref_read(struct ref_model *r, struct ref_sector *sec, uint64_t tag)
{
    for (unsigned i = sec->n; i > ref_start(sec); i--) {
        struct model_cand *c = &sec->c[i - 1];
        if (c->tag == tag) {
            sec->n = i;
            bool crashed = c->flags & MODEL_CRASHED;
            c->flags &= ~(uint32_t)(MODEL_MAYBE | MODEL_CRASHED);
            c->flags |= crashed ? MODEL_DURABLE : 0;
            ref_prune(r, sec);
            return true;
        }
    }
    return false;
}

static void ref_write(struct ref_model *r, struct ref_sector *sec, uint64_t tag, uint32_t flags)
{
    if ((flags & MODEL_DURABLE) && !(flags & MODEL_MAYBE)) {
        sec->n = 0;
    }
    ck_assert_uint_lt(sec->n, REF_MAX);
    sec->c[sec->n++] = (struct model_cand){ tag, r->seq, flags };
    ref_prune(r, sec);
}

static void ref_crash(struct ref_model *r)
{
    for (unsigned k = 0; k < REF_SECTORS; k++) {
        ref_prune(r, &r->s[k]);
        for (unsigned i = 1; i < r->s[k].n; i++) {
            r->s[k].c[i].flags |= MODEL_MAYBE | MODEL_CRASHED;
        }
    }
}

/* A read of sector @s: a value of its current set, or any; @f (or NULL)
 * must answer as @m does. */
static void step_read(struct ref_model *r, struct model_disk *m, struct model_disk *f,
                      unsigned s, struct rng *g)
{
    uint64_t set[REF_MAX];
    unsigned n = ref_current(&r->s[s], set);
    uint64_t tag = rng_below(g, 3) ? set[rng_below(g, n)] : rng_below(g, 7);
    uint64_t expect[REF_MAX];
    unsigned n_expect;
    bool want = ref_read(r, &r->s[s], tag);
    ck_assert_int_eq(model_disk_read(m, s, tag, expect, REF_MAX, &n_expect), want);
    ck_assert_uint_eq(n_expect, want ? 0 : n);
    if (f) {
        ck_assert_int_eq(model_disk_read(f, s, tag, expect, REF_MAX, &n_expect), want);
    }
}

/* Same current set in @m as in @r for every sector? */
static void same_sets(const struct model_disk *m, const struct ref_model *r)
{
    for (unsigned s = 0; s < REF_SECTORS; s++) {
        uint64_t want[REF_MAX], got[REF_MAX];
        unsigned nw = ref_current(&r->s[s], want);
        unsigned ng = model_disk_current(m, s, got, REF_MAX);
        ck_assert_uint_eq(ng, nw);
        ck_assert(memcmp(got, want, nw * sizeof(want[0])) == 0);
    }
}

START_TEST(test_model_against_reference)
{
    static const uint32_t flag_kinds[] = { 0, 0, 0, MODEL_MAYBE, MODEL_DURABLE,
                                           MODEL_MAYBE | MODEL_DURABLE };
    for (uint64_t seed = 1; seed <= 300; seed++) {
        struct rng g;
        rng_seed(&g, seed);
        bool crashes = seed % 2 == 0; /* odd seeds: crash-free, a third model too */
        static struct ref_model r;
        memset(&r, 0, sizeof(r));
        struct model_disk m, f;
        model_disk_init(&m);
        model_disk_init(&f);
        f.crash_free = true;
        for (unsigned s = 0; s < REF_SECTORS; s++) {
            r.s[s].c[0] = (struct model_cand){ 0, 0, MODEL_DURABLE };
            r.s[s].n = 1;
            model_disk_write(&m, s, 1, 0, MODEL_DURABLE); /* every sector known */
            model_disk_write(&f, s, 1, 0, MODEL_DURABLE);
        }
        uint64_t pending[8];
        unsigned n_pending = 0;
        for (unsigned step = 0; step < 200; step++) {
            unsigned s = (unsigned)rng_below(&g, REF_SECTORS);
            unsigned what = (unsigned)rng_below(&g, 10);
            if (what < 4) { /* a write completes */
                uint64_t tag = 1 + rng_below(&g, 6);
                uint32_t flags = flag_kinds[rng_below(&g, ARRAY_LEN(flag_kinds))];
                r.seq = model_disk_tick(&m);
                model_disk_tick(&f);
                ref_write(&r, &r.s[s], tag, flags);
                model_disk_write(&m, s, 1, tag, flags);
                model_disk_write(&f, s, 1, tag, flags);
            } else if (what == 4 && n_pending < ARRAY_LEN(pending)) { /* a flush is sent */
                pending[n_pending++] = r.seq = model_disk_tick(&m);
                model_disk_tick(&f);
            } else if (what == 5 && n_pending > 0) { /* one completes */
                unsigned k = (unsigned)rng_below(&g, n_pending);
                uint64_t submit = pending[k];
                pending[k] = pending[--n_pending];
                r.seq = model_disk_tick(&m);
                model_disk_tick(&f);
                r.durable_seq = submit > r.durable_seq ? submit : r.durable_seq;
                model_disk_flush(&m, submit);
                model_disk_flush(&f, submit);
            } else if (what == 6 && crashes) { /* power loss */
                ref_crash(&r);
                model_disk_crash(&m);
                n_pending = 0;
            } else {
                step_read(&r, &m, crashes ? NULL : &f, s, &g);
            }
            same_sets(&m, &r);
            if (!crashes) {
                same_sets(&f, &r);
                /* and holds nothing else (the three sectors share chunk 0) */
                uint64_t set[REF_MAX];
                ck_assert_uint_eq(f.chunks[0].s[s].n, model_disk_current(&f, s, set, REF_MAX));
            }
            model_disk_check(&m);
            model_disk_check(&f);
        }
        model_disk_fini(&m);
        model_disk_fini(&f);
    }
}
END_TEST

Suite *suite_model_disk(void)
{
    const TTest *tests[] = {
        test_checker_replicas_after_crash,
        test_model_read_your_writes,
        test_model_crash_sets,
        test_model_assign,
        test_model_against_reference,
    };
    return tl_suite("model_disk", tests, ARRAY_LEN(tests));
}
