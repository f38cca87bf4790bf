/* Tests of ref/bitmap: model-based against a naive shadow (one byte per
 * group), at sizes on word and level boundaries, plus the QEMU facts:
 * outward set, whole-group count, aligned reset, merge across granularities,
 * little-endian serialisation. */
#include "../../ref/bitmap.h"
#include "../../sim/base/rng.h"
#include "../suites.h"
#include "../testlib.h"

#include <string.h>

struct shadow {
    uint64_t size;
    uint64_t gran;
    uint64_t bits;
    uint8_t *bit;
};

static void shadow_init(struct shadow *s, uint64_t size, uint64_t gran)
{
    s->size = size;
    s->gran = gran;
    s->bits = (size + gran - 1) / gran;
    s->bit = mem_alloc(s->bits);
}

static void shadow_fini(struct shadow *s)
{
    mem_free(s->bit, s->bits);
}

static void shadow_store(struct shadow *s, uint64_t off, uint64_t len, uint8_t v)
{
    for (uint64_t i = off / s->gran; len && i <= (off + len - 1) / s->gran; i++) {
        s->bit[i] = v;
    }
}

static int64_t shadow_next(const struct shadow *s, uint64_t off, uint64_t len, uint8_t v)
{
    uint64_t end = off + len < s->size ? off + len : s->size;
    for (uint64_t b = off; b < end; b = (b / s->gran + 1) * s->gran) {
        if (s->bit[b / s->gran] == v) {
            return (int64_t)b;
        }
    }
    return -1;
}

static void shadow_compare(const struct shadow *s, const struct bitmap *b, struct rng *r)
{
    bitmap_check(b);
    uint64_t count = 0;
    for (uint64_t i = 0; i < s->bits; i++) {
        count += s->bit[i];
        ck_assert_int_eq(bitmap_get(b, i * s->gran), s->bit[i]);
    }
    ck_assert_uint_eq(bitmap_count(b), count * s->gran);
    for (int k = 0; k < 16; k++) {
        uint64_t off = rng_below(r, s->size);
        uint64_t len = rng_below(r, s->size + 1);
        ck_assert_int_eq(bitmap_next_dirty(b, off, len), shadow_next(s, off, len, 1));
        ck_assert_int_eq(bitmap_next_zero(b, off, len), shadow_next(s, off, len, 0));
    }
    /* Extents cover exactly the dirty groups, clipped to the size. */
    uint64_t off = 0, len = 0, covered = 0, prev_end = 0;
    while (bitmap_next_extent(b, UINT64_MAX, &off, &len)) {
        ck_assert(len > 0);
        ck_assert(prev_end == 0 || off > prev_end); /* maximal runs */
        for (uint64_t x = off; x < off + len; x += 1) {
            ck_assert(s->bit[x / s->gran]);
            x = (x / s->gran + 1) * s->gran - 1;
        }
        ck_assert(off + len == s->size || !s->bit[(off + len) / s->gran]);
        covered += len;
        prev_end = off += len;
    }
    uint64_t want = 0;
    for (uint64_t i = 0; i < s->bits; i++) {
        want += s->bit[i] ? min_u64(s->gran, s->size - i * s->gran) : 0;
    }
    ck_assert_uint_eq(covered, want);
}

/* A random range, biased to group, word and level edges. */
static void random_range(struct rng *r, const struct shadow *s, uint64_t *off, uint64_t *len)
{
    uint64_t unit = rng_below(r, 3) == 0 ? s->gran * 64 : s->gran;
    if (rng_below(r, 2)) {
        *off = rng_below(r, s->size / 512) * 512;
    } else {
        *off = min_u64(rng_below(r, s->bits + 1) * unit, s->size - 512);
        *off -= rng_below(r, 2) && *off >= 512 ? 512 : 0;
    }
    *len = rng_below(r, 4) == 0 ? rng_below(r, s->size - *off) + 1
                                : min_u64(rng_range(r, 1, 200) * 512, s->size - *off);
}

static void model_run(uint64_t size, uint64_t gran, uint64_t seed, int steps)
{
    struct rng r;
    rng_stream(&r, seed, "bitmap-model", size, gran);
    struct shadow s;
    shadow_init(&s, size, gran);
    struct bitmap *b = bitmap_new(size, gran);
    for (int i = 0; i < steps; i++) {
        uint64_t off, len;
        random_range(&r, &s, &off, &len);
        if (rng_below(&r, 3) == 0) {
            uint64_t a = align_down(off, gran);
            uint64_t e = off + len >= size ? size : align_up(off + len, gran);
            e = e > size ? size : e;
            bitmap_reset(b, a, e - a);
            shadow_store(&s, a, e - a, 0);
        } else {
            bitmap_set(b, off, len);
            shadow_store(&s, off, len, 1);
        }
        if (i % 8 == 7) {
            shadow_compare(&s, b, &r);
        }
    }
    shadow_compare(&s, b, &r);
    bitmap_reset_all(b);
    memset(s.bit, 0, s.bits);
    shadow_compare(&s, b, &r);
    bitmap_free(b);
    shadow_fini(&s);
}

START_TEST(test_bitmap_model_boundaries)
{
    /* Bit counts at 1, 63, 64, 65 words of bits, and on the first summary
     * level's edge (64 * 64 bits) and just past it. */
    static const uint64_t bits[] = { 1, 2, 63, 64, 65, 127, 128, 4095, 4096, 4097, 64 * 65 };
    static const uint64_t grans[] = { 512, 4096, 65536 };
    for (size_t g = 0; g < ARRAY_LEN(grans); g++) {
        for (size_t i = 0; i < ARRAY_LEN(bits); i++) {
            model_run(bits[i] * grans[g], grans[g], i, 120);
            /* A partial last group: the size is not a multiple. */
            if (grans[g] > 512) {
                model_run(bits[i] * grans[g] - 512, grans[g], i + 100, 120);
            }
        }
    }
}
END_TEST

START_TEST(test_bitmap_model_three_levels)
{
    /* 64^2 * 3 + 5 bits: three levels and a ragged top. */
    model_run((4096ull * 3 + 5) * 512, 512, 7, 400);
}
END_TEST

START_TEST(test_bitmap_qemu_facts)
{
    struct bitmap *b = bitmap_new(10 * 4096 + 512, 4096);
    bitmap_set(b, 4096 - 512, 1024); /* straddles: both groups */
    ck_assert(bitmap_get(b, 0) && bitmap_get(b, 4096));
    ck_assert(!bitmap_get(b, 8192));
    ck_assert_uint_eq(bitmap_count(b), 8192);
    bitmap_set(b, 10 * 4096, 512); /* the partial last group counts fully */
    ck_assert_uint_eq(bitmap_count(b), 3 * 4096);
    ck_assert_int_eq(bitmap_next_dirty(b, 100, 8000), 100); /* inside a dirty group */
    ck_assert_int_eq(bitmap_next_zero(b, 0, UINT64_MAX), 8192);
    ck_assert_int_eq(bitmap_next_dirty(b, 8192, 4096), -1);
    uint64_t off = 0, len = 0;
    ck_assert(bitmap_next_extent(b, UINT64_MAX, &off, &len));
    ck_assert_uint_eq(off, 0);
    ck_assert_uint_eq(len, 8192);
    off += len;
    ck_assert(bitmap_next_extent(b, UINT64_MAX, &off, &len));
    ck_assert_uint_eq(off, 40960);
    ck_assert_uint_eq(len, 512); /* clipped to the size */
    bitmap_reset(b, 10 * 4096, 512); /* unaligned length only at the end */
    bitmap_reset(b, 0, 4096);
    ck_assert_uint_eq(bitmap_count(b), 4096);
    bitmap_free(b);
}
END_TEST

START_TEST(test_bitmap_merge_granularities)
{
    uint64_t size = 1 << 20;
    struct bitmap *fine = bitmap_new(size, 512);
    struct bitmap *coarse = bitmap_new(size, 65536);
    struct bitmap *other = bitmap_new(size + 512, 512);
    bitmap_set(fine, 65536 + 1024, 512);
    bitmap_set(fine, 5 * 65536 - 512, 1024);
    ck_assert_int_eq(bitmap_merge(coarse, fine), 0);
    ck_assert_uint_eq(bitmap_count(coarse), 3 * 65536); /* groups 1, 4 and 5 */
    ck_assert(bitmap_get(coarse, 65536) && bitmap_get(coarse, 4 * 65536));
    ck_assert(bitmap_get(coarse, 5 * 65536) && !bitmap_get(coarse, 0));
    /* And back: every fine group under a dirty coarse one. */
    bitmap_reset_all(fine);
    ck_assert_int_eq(bitmap_merge(fine, coarse), 0);
    ck_assert_uint_eq(bitmap_count(fine), bitmap_count(coarse));
    ck_assert_int_eq(bitmap_merge(other, fine), -EINVAL);
    struct bitmap *same = bitmap_new(size, 512);
    ck_assert_int_eq(bitmap_merge(same, fine), 0);
    ck_assert(bitmap_equal(same, fine));
    bitmap_check(same);
    bitmap_free(same);
    bitmap_free(fine);
    bitmap_free(coarse);
    bitmap_free(other);
}
END_TEST

START_TEST(test_bitmap_serialisation)
{
    uint64_t gran = 512;
    uint64_t size = 200 * gran; /* 200 bits: 4 words, the last partial */
    struct bitmap *b = bitmap_new(size, gran);
    bitmap_set(b, 0, 512);           /* bit 0 */
    bitmap_set(b, 9 * 512, 512);     /* bit 9: byte 1, bit 1 */
    bitmap_set(b, 199 * 512, 512);   /* bit 199: byte 24, bit 7 */
    ck_assert_uint_eq(bitmap_serial_size(b, 0, size), 32);
    uint8_t buf[32];
    bitmap_serialize(b, 0, size, buf);
    ck_assert_uint_eq(buf[0], 0x01);
    ck_assert_uint_eq(buf[1], 0x02);
    ck_assert_uint_eq(buf[24], 0x80);
    struct bitmap *c = bitmap_new(size, gran);
    ck_assert_int_eq(bitmap_deserialize(c, 0, size, buf), 0);
    ck_assert(bitmap_equal(b, c));
    bitmap_check(c);
    /* A range: the second 64-group chunk alone. */
    ck_assert_uint_eq(bitmap_serial_size(b, 64 * gran, 64 * gran), 8);
    /* A bit past the last group is corruption; nothing changes. */
    buf[25] = 0x01;
    buf[0] = 0;
    ck_assert_int_eq(bitmap_deserialize(c, 0, size, buf), BS_ECORRUPT);
    ck_assert(bitmap_equal(b, c));
    bitmap_free(b);
    bitmap_free(c);
}
END_TEST

START_TEST(test_bitmap_memory)
{
    /* 1 TiB at 64 KiB: 2 MiB of leaf, about 66 KiB of summary trees. */
    struct bitmap *b = bitmap_new(1ull << 40, 65536);
    ck_assert_uint_eq(b->levels, 4); /* 2^18, 2^12, 64 words, 1 */
    ck_assert_uint_ge(bitmap_memory(b), 2u << 20);
    ck_assert_uint_le(bitmap_memory(b), (2u << 20) + (70u << 10));
    bitmap_set(b, (1ull << 40) - 65536, 65536);
    ck_assert_int_eq(bitmap_next_dirty(b, 0, UINT64_MAX), (int64_t)((1ull << 40) - 65536));
    ck_assert_int_eq(bitmap_next_zero(b, (1ull << 40) - 65536, UINT64_MAX), -1);
    bitmap_free(b);
}
END_TEST

Suite *suite_bitmap(void)
{
    const TTest *tests[] = {
        test_bitmap_model_boundaries, test_bitmap_model_three_levels, test_bitmap_qemu_facts,
        test_bitmap_merge_granularities, test_bitmap_serialisation, test_bitmap_memory,
    };
    return tl_suite("bitmap", tests, ARRAY_LEN(tests));
}
