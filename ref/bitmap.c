/*
 * bitmap: see bitmap.h.
 *
 * Method: the leaf words hold the bits. Two summary trees sit above them:
 * in the dirty tree a bit says "this word below has a set bit", in the full
 * tree "this word below has every bit set". Every leaf change goes through
 * leaf_store, which keeps the count and walks each tree upward only while a
 * word changes between zero/non-zero (or full/not full), so a change costs
 * O(1) amortised and O(log64 n) at worst. A search for the next set bit
 * descends the dirty tree; a search for the next clear bit descends the full
 * tree with every word inverted (its padding is ones, so inverted padding is
 * never found). Both searches climb only while the current word has nothing
 * left, so either costs O(log64 n).
 */
#include "bitmap.h"

#include <string.h>

#define NOT_FOUND UINT64_MAX

static unsigned leaf_level(const struct bitmap *b)
{
    return b->levels - 1;
}

/* The bits of leaf word @w past the last group: ones there, zero elsewhere. */
static uint64_t leaf_pad(const struct bitmap *b, uint64_t w)
{
    if (w != b->words[leaf_level(b)] - 1 || b->bits % 64 == 0) {
        return 0;
    }
    return ~0ull << (b->bits % 64);
}

/* Set or clear bit @idx of summary level @l of a tree, then carry the change
 * upward while the word's summary (non-zero, or all ones) changes. */
static void tree_store(uint64_t *const *tree, bool full, unsigned l, uint64_t idx, bool on)
{
    for (;;) {
        uint64_t *wp = &tree[l][idx / 64];
        uint64_t old = *wp;
        uint64_t mask = 1ull << (idx % 64);
        *wp = on ? old | mask : old & ~mask;
        bool was = full ? old == ~0ull : old != 0;
        bool is = full ? *wp == ~0ull : *wp != 0;
        if (was == is || l == 0) {
            return;
        }
        on = is;
        idx /= 64;
        l--;
    }
}

static void leaf_store(struct bitmap *b, uint64_t w, uint64_t val)
{
    unsigned leaf = leaf_level(b);
    uint64_t old = b->dirty[leaf][w];
    if (old == val) {
        return;
    }
    b->dirty[leaf][w] = val;
    b->count = b->count - (uint64_t)__builtin_popcountll(old) +
               (uint64_t)__builtin_popcountll(val);
    if (leaf == 0) {
        return;
    }
    if ((old != 0) != (val != 0)) {
        tree_store(b->dirty, false, leaf - 1, w, val != 0);
    }
    uint64_t pad = leaf_pad(b, w);
    bool was_full = (old | pad) == ~0ull;
    bool is_full = (val | pad) == ~0ull;
    if (was_full != is_full) {
        tree_store(b->full, true, leaf - 1, w, is_full);
    }
}

/* The first bit >= @pos set in @tree's leaf (after xor with @inv), or
 * NOT_FOUND. May return a padding bit of the last word when searching
 * for clear bits; callers clip. */
static uint64_t tree_find(const struct bitmap *b, uint64_t *const *tree, uint64_t inv,
                          uint64_t pos)
{
    unsigned leaf = leaf_level(b);
    unsigned l = leaf;
    for (;;) {
        uint64_t w = pos / 64;
        uint64_t word = 0;
        if (w < b->words[l]) {
            word = (tree[l][w] ^ inv) & (~0ull << (pos % 64));
        }
        if (word) {
            pos = w * 64 + (uint64_t)__builtin_ctzll(word);
            while (l < leaf) {
                l++;
                uint64_t below = tree[l][pos] ^ inv;
                ASSERT(below != 0);
                pos = pos * 64 + (uint64_t)__builtin_ctzll(below);
            }
            return pos;
        }
        if (l == 0) {
            return NOT_FOUND;
        }
        l--;
        pos = w + 1;
    }
}

struct bitmap *bitmap_new(uint64_t size, uint64_t gran)
{
    ASSERT(size > 0);
    ASSERT(is_pow2(gran) && gran <= (1ull << BITMAP_GRAN_SHIFT_MAX));
    struct bitmap *b = mem_alloc(sizeof(*b));
    b->size = size;
    b->gran_shift = (unsigned)__builtin_ctzll(gran);
    b->bits = (size - 1) / gran + 1;
    uint64_t w = (b->bits + 63) / 64;
    unsigned levels = 1;
    for (uint64_t x = w; x > 1; x = (x + 63) / 64) {
        levels++;
    }
    ASSERT(levels <= BITMAP_LEVELS_MAX);
    b->levels = levels;
    for (unsigned l = levels; l > 0; l--) {
        b->words[l - 1] = w;
        w = (w + 63) / 64;
    }
    unsigned leaf = levels - 1;
    b->dirty[leaf] = mem_alloc(b->words[leaf] * 8);
    b->full[leaf] = b->dirty[leaf];
    for (unsigned l = 0; l < leaf; l++) {
        b->dirty[l] = mem_alloc(b->words[l] * 8);
        b->full[l] = mem_alloc(b->words[l] * 8);
        /* Entries for words that do not exist count as full. */
        uint64_t used = b->words[l + 1];
        if (used % 64) {
            b->full[l][b->words[l] - 1] = ~0ull << (used % 64);
        }
    }
    return b;
}

void bitmap_free(struct bitmap *b)
{
    if (!b) {
        return;
    }
    unsigned leaf = leaf_level(b);
    for (unsigned l = 0; l < leaf; l++) {
        mem_free(b->dirty[l], b->words[l] * 8);
        mem_free(b->full[l], b->words[l] * 8);
    }
    mem_free(b->dirty[leaf], b->words[leaf] * 8);
    mem_free(b, sizeof(*b));
}

/* Set (or clear) bits first..last inclusive. */
static void bits_store(struct bitmap *b, uint64_t first, uint64_t last, bool on)
{
    ASSERT(first <= last && last < b->bits);
    uint64_t *leaf = b->dirty[leaf_level(b)];
    for (uint64_t w = first / 64; w <= last / 64; w++) {
        uint64_t lo = w == first / 64 ? first % 64 : 0;
        uint64_t hi = w == last / 64 ? last % 64 : 63;
        uint64_t mask = (~0ull << lo) & (~0ull >> (63 - hi));
        leaf_store(b, w, on ? leaf[w] | mask : leaf[w] & ~mask);
    }
}

void bitmap_set(struct bitmap *b, uint64_t offset, uint64_t len)
{
    ASSERT(offset <= b->size && len <= b->size - offset);
    if (len == 0) {
        return;
    }
    bits_store(b, offset >> b->gran_shift, (offset + len - 1) >> b->gran_shift, true);
}

void bitmap_reset(struct bitmap *b, uint64_t offset, uint64_t len)
{
    uint64_t gran = bitmap_granularity(b);
    ASSERT(offset <= b->size && len <= b->size - offset);
    ASSERT(offset % gran == 0);
    ASSERT(len % gran == 0 || offset + len == b->size);
    if (len == 0) {
        return;
    }
    bits_store(b, offset >> b->gran_shift, (offset + len - 1) >> b->gran_shift, false);
}

void bitmap_reset_all(struct bitmap *b)
{
    uint64_t *leaf = b->dirty[leaf_level(b)];
    for (uint64_t w = 0; w < b->words[leaf_level(b)]; w++) {
        if (leaf[w]) {
            leaf_store(b, w, 0);
        }
    }
    ASSERT(b->count == 0);
}

bool bitmap_get(const struct bitmap *b, uint64_t offset)
{
    ASSERT(offset < b->size);
    uint64_t bit = offset >> b->gran_shift;
    return (b->dirty[leaf_level(b)][bit / 64] >> (bit % 64)) & 1;
}

static int64_t next_common(const struct bitmap *b, uint64_t offset, uint64_t len, bool dirty)
{
    if (offset >= b->size || len == 0) {
        return -1;
    }
    uint64_t end = offset + min_u64(len, b->size - offset);
    uint64_t bit = dirty ? tree_find(b, b->dirty, 0, offset >> b->gran_shift)
                         : tree_find(b, b->full, ~0ull, offset >> b->gran_shift);
    if (bit == NOT_FOUND || bit >= b->bits) {
        return -1;
    }
    uint64_t pos = max_u64(bit << b->gran_shift, offset);
    return pos < end ? (int64_t)pos : -1;
}

int64_t bitmap_next_dirty(const struct bitmap *b, uint64_t offset, uint64_t len)
{
    return next_common(b, offset, len, true);
}

int64_t bitmap_next_zero(const struct bitmap *b, uint64_t offset, uint64_t len)
{
    return next_common(b, offset, len, false);
}

bool bitmap_next_extent(const struct bitmap *b, uint64_t end, uint64_t *offset, uint64_t *len)
{
    end = min_u64(end, b->size);
    if (*offset >= end) {
        return false;
    }
    int64_t start = bitmap_next_dirty(b, *offset, end - *offset);
    if (start < 0) {
        return false;
    }
    int64_t stop = bitmap_next_zero(b, (uint64_t)start, end - (uint64_t)start);
    *offset = (uint64_t)start;
    *len = (stop < 0 ? end : (uint64_t)stop) - (uint64_t)start;
    return true;
}

int bitmap_merge(struct bitmap *dst, const struct bitmap *src)
{
    if (dst->size != src->size) {
        return -EINVAL;
    }
    if (dst->gran_shift == src->gran_shift) {
        const uint64_t *s = src->dirty[leaf_level(src)];
        uint64_t *d = dst->dirty[leaf_level(dst)];
        for (uint64_t w = 0; w < dst->words[leaf_level(dst)]; w++) {
            if (s[w] & ~d[w]) {
                leaf_store(dst, w, d[w] | s[w]);
            }
        }
        return 0;
    }
    uint64_t off = 0;
    uint64_t len = 0;
    while (bitmap_next_extent(src, src->size, &off, &len)) {
        bitmap_set(dst, off, len);
        off += len;
    }
    return 0;
}

/* Leaf words [*first, *last] of a serialisation range, after checking it. */
static void serial_words(const struct bitmap *b, uint64_t offset, uint64_t len,
                         uint64_t *first, uint64_t *count)
{
    uint64_t chunk = 64ull << b->gran_shift;
    ASSERT(offset <= b->size && len <= b->size - offset);
    ASSERT(offset % chunk == 0);
    ASSERT(len % chunk == 0 || offset + len == b->size);
    *first = (offset >> b->gran_shift) / 64;
    *count = len == 0 ? 0 : ((offset + len - 1) >> b->gran_shift) / 64 - *first + 1;
}

uint64_t bitmap_serial_size(const struct bitmap *b, uint64_t offset, uint64_t len)
{
    uint64_t first;
    uint64_t count;
    serial_words(b, offset, len, &first, &count);
    return count * 8;
}

void bitmap_serialize(const struct bitmap *b, uint64_t offset, uint64_t len, uint8_t *buf)
{
    uint64_t first;
    uint64_t count;
    serial_words(b, offset, len, &first, &count);
    const uint64_t *leaf = b->dirty[leaf_level(b)];
    for (uint64_t i = 0; i < count; i++) {
        put_le64(buf + 8 * i, leaf[first + i]);
    }
}

int bitmap_deserialize(struct bitmap *b, uint64_t offset, uint64_t len, const uint8_t *buf)
{
    uint64_t first;
    uint64_t count;
    serial_words(b, offset, len, &first, &count);
    if (count > 0 && (get_le64(buf + 8 * (count - 1)) & leaf_pad(b, first + count - 1))) {
        return BS_ECORRUPT;
    }
    for (uint64_t i = 0; i < count; i++) {
        leaf_store(b, first + i, get_le64(buf + 8 * i));
    }
    return 0;
}

uint64_t bitmap_memory(const struct bitmap *b)
{
    uint64_t bytes = sizeof(*b) + b->words[leaf_level(b)] * 8;
    for (unsigned l = 0; l < leaf_level(b); l++) {
        bytes += 2 * b->words[l] * 8;
    }
    return bytes;
}

bool bitmap_equal(const struct bitmap *a, const struct bitmap *b)
{
    return a->size == b->size && a->gran_shift == b->gran_shift && a->count == b->count &&
           memcmp(a->dirty[leaf_level(a)], b->dirty[leaf_level(b)],
                  a->words[leaf_level(a)] * 8) == 0;
}

/* Summary bit @j of level @l agrees with word j of level l + 1. */
static void check_level(const struct bitmap *b, unsigned l)
{
    unsigned leaf = leaf_level(b);
    for (uint64_t j = 0; j < b->words[l] * 64; j++) {
        bool dirty = (b->dirty[l][j / 64] >> (j % 64)) & 1;
        bool full = (b->full[l][j / 64] >> (j % 64)) & 1;
        if (j >= b->words[l + 1]) {
            ASSERT(!dirty && full);
            continue;
        }
        uint64_t pad = l + 1 == leaf ? leaf_pad(b, j) : 0;
        ASSERT(dirty == (b->dirty[l + 1][j] != 0));
        ASSERT(full == ((b->full[l + 1][j] | pad) == ~0ull));
    }
}

void bitmap_check(const struct bitmap *b)
{
    unsigned leaf = leaf_level(b);
    ASSERT(b->levels >= 1 && b->levels <= BITMAP_LEVELS_MAX);
    ASSERT(b->words[0] == 1);
    ASSERT(b->words[leaf] == (b->bits + 63) / 64);
    ASSERT(b->full[leaf] == b->dirty[leaf]);
    uint64_t count = 0;
    for (uint64_t w = 0; w < b->words[leaf]; w++) {
        count += (uint64_t)__builtin_popcountll(b->dirty[leaf][w]);
        ASSERT((b->dirty[leaf][w] & leaf_pad(b, w)) == 0);
    }
    ASSERT(count == b->count);
    for (unsigned l = 0; l < leaf; l++) {
        check_level(b, l);
    }
}
