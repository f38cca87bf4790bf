/* Tests of sim/disk: cache and flush, crash generators, injected faults and
 * taint, epochs, sparse memory. */
#include "../../sim/base/content.h"
#include "../../sim/base/rng.h"
#include "../../sim/dev/disk.h"
#include "../../sim/dev/fault.h"
#include "../suites.h"
#include "../testlib.h"

#include <string.h>

struct dfx {
    struct tl_env env;
    struct disk *d;
    struct disk_handle *h;
};

static void dfx_setup(struct dfx *f, uint64_t cache, bool atomic, uint64_t seed)
{
    tl_env_init(&f->env);
    struct disk_config c;
    disk_config_default(&c, "d0", 1 << 20);
    c.cache_bytes = cache;
    c.atomic_sector = atomic;
    f->d = disk_new(&c, &f->env.q, &f->env.plan, seed, 0, 0);
    f->h = disk_handle_new(f->d);
}

static void dfx_teardown(struct dfx *f)
{
    disk_handle_free(f->h);
    disk_free(f->d);
    tl_env_fini(&f->env);
}

static void add_rule(struct dfx *f, const char *text)
{
    struct fault_rule r;
    ck_assert_int_eq(fault_rule_parse(text, &r, NULL), 0);
    fault_plan_add(&f->env.plan, &r);
}

START_TEST(test_flush_makes_durable)
{
    struct dfx f;
    dfx_setup(&f, 1 << 20, true, 1);
    uint8_t a[4096];
    uint8_t b[4096];
    uint8_t r[4096];
    tl_pattern(a, 4096, 1);
    tl_pattern(b, 4096, 2);
    ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, 0, a, 4096, 0), 0);
    ck_assert_int_eq(tl_disk_flush(&f.env.q, f.h), 0);
    ck_assert_uint_eq(f.d->log_n, 0);
    ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, 0, b, 4096, 0), 0);
    ck_assert_int_eq(tl_disk_read(&f.env.q, f.h, 0, r, 4096), 0);
    tl_assert_mem_eq(r, b, 4096); /* reads see the cache */
    struct disk_crash_report rep;
    disk_crash(f.d, DISK_CRASH_PREFIX, &rep);
    ck_assert_uint_eq(rep.pending, 1);
    disk_peek(f.d, 0, r, 4096);
    ck_assert(memcmp(r, a, 4096) == 0 || memcmp(r, b, 4096) == 0);
    /* The old handle is dead. */
    ck_assert_int_eq(tl_disk_read(&f.env.q, f.h, 0, r, 4096), BS_ECRASHED);
    dfx_teardown(&f);
}
END_TEST

/* Over many seeds, every generator keeps only states the generator allows. */
START_TEST(test_crash_generators)
{
    for (int mode = 0; mode < DISK_CRASH__COUNT; mode++) {
        unsigned seen_kept = 0;
        unsigned seen_dropped = 0;
        for (uint64_t seed = 1; seed <= 40; seed++) {
            struct dfx f;
            dfx_setup(&f, 1 << 20, true, seed);
            uint8_t w[3][512];
            for (int i = 0; i < 3; i++) {
                memset(w[i], 'a' + i, 512);
                ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, (uint64_t)i * 512, w[i], 512,
                                               i == 1 ? ENV_IO_FUA : 0), 0);
            }
            disk_crash(f.d, (enum disk_crash_mode)mode, NULL);
            uint8_t r[3][512];
            disk_peek(f.d, 0, r[0], 3 * 512);
            /* The FUA write (sector 1) always survives. */
            tl_assert_mem_eq(r[1], w[1], 512);
            bool kept0 = r[0][0] == 'a';
            bool kept2 = r[2][0] == 'c';
            if (mode == DISK_CRASH_PREFIX) {
                ck_assert(kept0); /* before the FUA write in the log */
                if (kept2) {
                    ck_assert(kept0);
                }
            }
            seen_kept += kept2;
            seen_dropped += !kept2;
            dfx_teardown(&f);
        }
        ck_assert_uint_gt(seen_kept, 0);
        ck_assert_uint_gt(seen_dropped, 0);
    }
}
END_TEST

START_TEST(test_tear_non_atomic_taints)
{
    unsigned tainted = 0;
    for (uint64_t seed = 1; seed <= 20; seed++) {
        struct dfx f;
        dfx_setup(&f, 1 << 20, false, seed);
        uint8_t w[65536];
        tl_pattern(w, sizeof(w), seed);
        ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, 0, w, sizeof(w), 0), 0);
        struct disk_crash_report rep;
        disk_crash(f.d, DISK_CRASH_TEAR, &rep);
        uint8_t r[65536];
        disk_peek(f.d, 0, r, sizeof(r));
        for (uint64_t s = 0; s < 128; s++) {
            bool same_new = memcmp(r + s * 512, w + s * 512, 512) == 0;
            bool zero = true;
            for (int i = 0; i < 512; i++) {
                zero &= r[s * 512 + i] == 0;
            }
            if (!same_new && !zero) {
                ck_assert_int_ne(disk_taint_get(f.d, s), DISK_TAINT_NONE);
                tainted++;
            }
        }
        ck_assert_uint_eq(rep.pending, 1);
        dfx_teardown(&f);
    }
    ck_assert_uint_gt(tainted, 0);
}
END_TEST

/* A write that cleared a taint and is then lost in a crash brings the
 * taint back with the untrue bytes (found by fuzz_scenario). */
START_TEST(test_crash_undo_restores_taint)
{
    struct dfx f;
    dfx_setup(&f, 1 << 20, true, 1);
    add_rule(&f, "misdirect range=0-512 times=1 delta=64K");
    uint8_t w[512];
    tl_pattern(w, 512, 1);
    ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, 0, w, 512, 0), 0); /* lands at 64K */
    ck_assert_int_eq(disk_taint_get(f.d, 128), DISK_TAINT_MISDIRECT_CLOBBER);
    ck_assert_int_eq(tl_disk_flush(&f.env.q, f.h), 0);
    struct disk_handle *h = f.h;
    ck_assert_int_eq(tl_disk_write(&f.env.q, h, 65536, w, 512, 0), 0); /* clears it */
    ck_assert_int_eq(disk_taint_get(f.d, 128), DISK_TAINT_NONE);
    disk_crash(f.d, DISK_CRASH_PREFIX, NULL);
    bool kept = f.d->chunks.n > 0 && disk_taint_get(f.d, 128) == DISK_TAINT_NONE;
    /* Either the clean write survived (no taint needed) or the taint is back. */
    uint8_t r[512];
    disk_peek(f.d, 65536, r, 512);
    ck_assert(kept || disk_taint_get(f.d, 128) == DISK_TAINT_MISDIRECT_CLOBBER);
    for (uint64_t seed = 2; seed < 40; seed++) {
        dfx_teardown(&f);
        dfx_setup(&f, 1 << 20, true, seed);
        add_rule(&f, "misdirect range=0-512 times=1 delta=64K");
        ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, 0, w, 512, 0), 0);
        ck_assert_int_eq(tl_disk_flush(&f.env.q, f.h), 0);
        uint8_t z[512] = { 0 };
        ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, 65536, z, 512, 0), 0);
        disk_crash(f.d, DISK_CRASH_SUBSET, NULL);
        disk_peek(f.d, 65536, r, 512);
        bool dropped = memcmp(r, w, 512) == 0;
        if (dropped) {
            ck_assert_int_eq(disk_taint_get(f.d, 128), DISK_TAINT_MISDIRECT_CLOBBER);
        }
    }
    dfx_teardown(&f);
}
END_TEST

START_TEST(test_cache_capacity_writes_back)
{
    struct dfx f;
    dfx_setup(&f, 8192, true, 1);
    uint8_t w[4096] = { 1 };
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, (uint64_t)i * 4096, w, 4096, 0), 0);
    }
    ck_assert_uint_eq(f.d->log_n, 2);
    ck_assert_uint_eq(f.d->stats.written_back, 3);
    disk_check(f.d);
    disk_crash(f.d, DISK_CRASH_SUBSET, NULL);
    uint8_t r[4096];
    disk_peek(f.d, 0, r, 4096); /* written back: durable */
    tl_assert_mem_eq(r, w, 4096);
    dfx_teardown(&f);
}
END_TEST

START_TEST(test_fault_eio_enospc_latent)
{
    struct dfx f;
    dfx_setup(&f, 0, true, 1);
    add_rule(&f, "write-eio range=0-4K times=1");
    add_rule(&f, "enospc range=8K-12K nth=2");
    add_rule(&f, "read-eio range=64K-68K sticky times=1");
    uint8_t w[4096] = { 7 };
    uint8_t r[4096];
    ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, 0, w, 4096, 0), -EIO);
    ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, 0, w, 4096, 0), 0);
    ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, 8192, w, 4096, 0), 0);
    ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, 8192, w, 4096, 0), -ENOSPC);
    ck_assert_int_eq(tl_disk_read(&f.env.q, f.h, 65536, r, 4096), -EIO);
    ck_assert_int_eq(tl_disk_read(&f.env.q, f.h, 65536, r, 4096), -EIO); /* sticky */
    ck_assert_int_eq(tl_disk_read(&f.env.q, f.h, 0, r, 4096), 0);
    ck_assert_uint_eq(f.d->stats.faults[FAULT_WRITE_EIO], 1);
    ck_assert_uint_eq(f.d->stats.faults[FAULT_ENOSPC], 1);
    dfx_teardown(&f);
    dfx_setup(&f, 0, true, 1);
    add_rule(&f, "latent range=0-512 times=1");
    ck_assert_int_eq(tl_disk_read(&f.env.q, f.h, 0, r, 512), -EIO);
    ck_assert_int_eq(tl_disk_read(&f.env.q, f.h, 0, r, 4096), -EIO);
    ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, 0, w, 512, 0), 0); /* rewrite heals */
    ck_assert_int_eq(tl_disk_read(&f.env.q, f.h, 0, r, 4096), 0);
    dfx_teardown(&f);
}
END_TEST

START_TEST(test_misdirect_and_corrupt_taint)
{
    struct dfx f;
    dfx_setup(&f, 0, true, 1);
    add_rule(&f, "misdirect range=0-512 times=1 delta=64K");
    add_rule(&f, "read-corrupt range=128K-132K times=1");
    uint8_t w[512];
    uint8_t r[512];
    tl_pattern(w, 512, 3);
    ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, 0, w, 512, 0), 0); /* silently wrong */
    disk_peek(f.d, 65536, r, 512);
    tl_assert_mem_eq(r, w, 512);
    ck_assert_int_eq(disk_taint_get(f.d, 0), DISK_TAINT_MISDIRECT_STALE);
    ck_assert_int_eq(disk_taint_get(f.d, 128), DISK_TAINT_MISDIRECT_CLOBBER);
    ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, 0, w, 512, 0), 0);
    ck_assert_int_eq(disk_taint_get(f.d, 0), DISK_TAINT_NONE);
    ck_assert_int_eq(tl_disk_write(&f.env.q, f.h, 131072, w, 512, 0), 0);
    ck_assert_int_eq(tl_disk_read(&f.env.q, f.h, 131072, r, 512), 0);
    ck_assert_int_ne(memcmp(r, w, 512), 0);
    ck_assert_int_eq(disk_taint_get(f.d, 256), DISK_TAINT_READ_CORRUPT);
    disk_peek(f.d, 131072, r, 512); /* the media is intact */
    tl_assert_mem_eq(r, w, 512);
    dfx_teardown(&f);
}
END_TEST

START_TEST(test_no_log)
{
    /* An owner that promises no power loss: the cache logs nothing, reads
     * and flushes work as before. */
    struct tl_env env;
    tl_env_init(&env);
    struct disk_config c;
    disk_config_default(&c, "d0", 1 << 20);
    c.no_log = true;
    struct disk *d = disk_new(&c, &env.q, &env.plan, 1, 0, 0);
    struct disk_handle *h = disk_handle_new(d);
    uint8_t a[4096];
    uint8_t r[4096];
    tl_pattern(a, 4096, 1);
    ck_assert_int_eq(tl_disk_write(&env.q, h, 4096, a, 4096, 0), 0);
    ck_assert_uint_eq(d->log_n, 0);
    ck_assert_int_eq(tl_disk_read(&env.q, h, 4096, r, 4096), 0);
    tl_assert_mem_eq(r, a, 4096);
    ck_assert_int_eq(tl_disk_flush(&env.q, h), 0);
    ck_assert_uint_eq(d->stats.ops[1], 1);
    disk_handle_free(h);
    disk_free(d);
    tl_env_fini(&env);
}
END_TEST

START_TEST(test_sparse_memory_and_hash)
{
    struct tl_env env;
    tl_env_init(&env);
    struct disk_config c;
    disk_config_default(&c, "big", 1ull << 40);
    c.cache_bytes = 0;
    struct disk *d = disk_new(&c, &env.q, &env.plan, 1, 0, 0);
    struct disk_handle *h = disk_handle_new(d);
    uint64_t empty = disk_content_hash(d);
    uint8_t w[4096] = { 1 };
    ck_assert_int_eq(tl_disk_write(&env.q, h, (1ull << 40) - 4096, w, 4096, 0), 0);
    ck_assert_uint_le(disk_mem_bytes(d), 128 * 1024); /* one small slab */
    ck_assert_uint_ne(disk_content_hash(d), empty);
    memset(w, 0, sizeof(w));
    ck_assert_int_eq(tl_disk_write(&env.q, h, (1ull << 40) - 4096, w, 4096, 0), 0);
    ck_assert_uint_eq(disk_content_hash(d), empty); /* zero chunks do not count */
    disk_handle_free(h);
    disk_free(d);
    tl_env_fini(&env);
}
END_TEST

/* Two disks that take the same history: one with described I/O. */
struct desc_pair {
    struct tl_env env;
    struct disk *d[2];
    struct disk_handle *h[2];
    struct env_storage st[2];
};

/* Step @i of the history (drawn from @r) on both; true if it was a read
 * the described disk answered in tags. */
static bool desc_pair_step(struct desc_pair *p, struct rng *r, uint64_t i)
{
    static uint8_t buf[64 * 1024];
    static uint8_t got[64 * 1024];
    static uint8_t want[64 * 1024];
    static uint64_t tags[128];
    const struct env_storage *sd = &p->st[0];
    const struct env_storage *sb = &p->st[1];
    uint64_t n = 1 + rng_below(r, rng_below(r, 4) ? 16 : 128);
    uint64_t off = rng_below(r, p->d[0]->cfg.size / 512 - n + 1) * 512;
    uint64_t len = n * 512;
    struct tl_count k = { 0, 0 };
    uint64_t what = rng_below(r, 10);
    struct env_desc d = { .tag = i, .tags = tags };
    if (what < 4) { /* a described write, and its bytes */
        sd->ops->write_desc(sd->dev, off, &d, len, 0, tl_count_cb, &k);
        content_fill(buf, 77, i, off / 512, n);
        sb->ops->write(sb->dev, off, buf, len, 0, tl_count_cb, &k);
    } else if (what < 6) { /* bytes, to both */
        tl_pattern(buf, len, i);
        sd->ops->write(sd->dev, off, buf, len, 0, tl_count_cb, &k);
        sb->ops->write(sb->dev, off, buf, len, 0, tl_count_cb, &k);
    } else if (what < 7) {
        sd->ops->write_zeroes(sd->dev, off, len, 0, tl_count_cb, &k);
        sb->ops->write_zeroes(sb->dev, off, len, 0, tl_count_cb, &k);
    } else if (what < 8) {
        sd->ops->discard(sd->dev, off, len, tl_count_cb, &k);
        sb->ops->discard(sb->dev, off, len, tl_count_cb, &k);
    } else { /* a described read against the bytes */
        sd->ops->read_desc(sd->dev, off, got, len, &d, tl_count_cb, &k);
        sb->ops->read(sb->dev, off, want, len, tl_count_cb, &k);
    }
    tl_run(&p->env.q);
    ck_assert_int_eq(k.ret, 0);
    for (uint64_t s = 0; d.described && s < n; s++) {
        content_make(got + s * 512, 77, tags[s], off / 512 + s);
    }
    if (what >= 8) {
        tl_assert_mem_eq(got, want, len);
    }
    if (i % 100 == 0) {
        disk_peek(p->d[0], off, got, len);
        disk_peek(p->d[1], off, want, len);
        tl_assert_mem_eq(got, want, len);
        ck_assert_uint_eq(disk_content_hash(p->d[0]), disk_content_hash(p->d[1]));
    }
    return d.described;
}

/* Two disks take the same random history: one the guest's writes as
 * descriptions (kept as tags), the other their bytes. Byte writes, zeroes
 * and discards into described chunks, partial and whole, in between. Both
 * always read, peek and hash alike; a described read answers in tags only
 * where every chunk is described, and those tags make the same bytes. */
START_TEST(test_described_store)
{
    for (unsigned no_log = 0; no_log < 2; no_log++) {
        struct desc_pair p;
        tl_env_init(&p.env);
        struct disk_config c;
        disk_config_default(&c, "d0", 256 * 1024);
        c.no_log = no_log;
        c.cache_bytes = no_log ? 1u << 20 : 0; /* both keep no log */
        for (unsigned k = 0; k < 2; k++) {
            p.d[k] = disk_new(&c, &p.env.q, &p.env.plan, 1, k, 0);
            if (k == 0) {
                disk_describe(p.d[k], 77);
            }
            p.h[k] = disk_handle_new(p.d[k]);
            p.st[k] = disk_storage(p.h[k]);
        }
        ck_assert(p.st[0].ops->describes(p.st[0].dev));
        ck_assert(!p.st[1].ops->describes(p.st[1].dev));
        struct rng r;
        rng_seed(&r, 5 + no_log);
        unsigned described = 0;
        for (uint64_t i = 1; i <= 3000; i++) {
            described += desc_pair_step(&p, &r, i);
        }
        ck_assert_uint_gt(described, 50);
        ck_assert_uint_eq(disk_content_hash(p.d[0]), disk_content_hash(p.d[1]));
        for (unsigned k = 0; k < 2; k++) {
            disk_handle_free(p.h[k]);
            disk_free(p.d[k]);
        }
        tl_env_fini(&p.env);
    }
}
END_TEST

/* Only tags are kept for what the guest wrote described: a sixty-fourth of
 * the bytes. A write the cache log must remember is kept as bytes. */
START_TEST(test_described_memory)
{
    struct tl_env env;
    tl_env_init(&env);
    struct disk_config c;
    disk_config_default(&c, "big", 1ull << 40);
    c.no_log = true;
    struct disk *d = disk_new(&c, &env.q, &env.plan, 1, 0, 0);
    disk_describe(d, 9);
    struct disk_handle *h = disk_handle_new(d);
    struct env_storage st = disk_storage(h);
    struct tl_count k = { 0, 0 };
    for (uint64_t i = 0; i < 4096; i++) { /* 16 MiB */
        struct env_desc desc = { .tag = i + 1 };
        st.ops->write_desc(st.dev, i * 7919 * 4096, &desc, 4096, 0, tl_count_cb, &k);
    }
    tl_run(&env.q);
    ck_assert_int_eq(k.calls, 4096);
    ck_assert_uint_le(disk_mem_bytes(d), 1u << 20);
    disk_handle_free(h);
    disk_free(d);
    c.no_log = false;
    d = disk_new(&c, &env.q, &env.plan, 1, 0, 0);
    disk_describe(d, 9);
    h = disk_handle_new(d);
    st = disk_storage(h);
    struct env_desc desc = { .tag = 1 };
    st.ops->write_desc(st.dev, 0, &desc, 4096, 0, tl_count_cb, &k);
    tl_run(&env.q);
    ck_assert_uint_eq(d->log_n, 1);
    uint64_t tags[8];
    struct env_desc rd = { .tags = tags };
    uint8_t got[4096];
    uint8_t want[4096];
    st.ops->read_desc(st.dev, 0, got, 4096, &rd, tl_count_cb, &k);
    tl_run(&env.q);
    ck_assert(!rd.described); /* the log needed the bytes: they are bytes */
    content_fill(want, 9, 1, 0, 8);
    tl_assert_mem_eq(got, want, 4096);
    disk_handle_free(h);
    disk_free(d);
    tl_env_fini(&env);
}
END_TEST

Suite *suite_disk(void)
{
    const TTest *tests[] = {
        test_flush_makes_durable,
        test_crash_generators,
        test_tear_non_atomic_taints,
        test_crash_undo_restores_taint,
        test_cache_capacity_writes_back,
        test_fault_eio_enospc_latent,
        test_misdirect_and_corrupt_taint,
        test_sparse_memory_and_hash,
        test_no_log,
        test_described_store,
        test_described_memory,
    };
    return tl_suite("disk", tests, ARRAY_LEN(tests));
}

