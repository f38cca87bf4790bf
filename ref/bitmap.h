/*
 * bitmap: a hierarchical dirty bitmap over the bytes of a disk.
 *
 * Role: the bit store under named dirty bitmaps (dirty.h), their
 *   persistence (qbm.h) and, later, the mirror and backup jobs.
 * Model: QEMU's HBitmap (util/hbitmap.c; shared/spec/qemu-semantics.md §5.1
 *   to §5.3): one bit per aligned group of 2^g bytes (the granularity), a
 *   leaf level of 64-bit words and summary levels above it, a set that rounds
 *   outward, a count in bytes of whole groups, group-aligned resets, and a
 *   serialisation of little-endian 64-bit words (bit i in byte i/8, bit i%8).
 * Invariants: summary bit j of the "dirty" tree is set iff word j of the level
 *   below is non-zero; summary bit j of the "full" tree is set iff word j
 *   below is all ones (the padding past the last bit counts as ones there);
 *   the top level of each tree is one word; count is the number of set bits;
 *   no leaf bit past the last group is ever set.
 * Cost: n bits, m bits touched. set/reset O(m/64 + log64 n); get O(1);
 *   next_dirty and next_zero O(log64 n) (the two trees make a clean stretch
 *   and a dirty stretch equally cheap to skip); iterating over k dirty
 *   extents O(k log64 n). Memory: n/8 bytes of leaf plus about 2 * n/8/63
 *   for the trees: a 1 TiB disk at 64 KiB granularity is 2^24 bits, 2 MiB of
 *   leaf and about 66 KiB of trees.
 * Ownership: bitmap_new allocates, bitmap_free frees; nothing is borrowed.
 * Async contract: none.
 * Depends on: base.
 */
#ifndef BLOCKSIM_BITMAP_H
#define BLOCKSIM_BITMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base.h"

#define BITMAP_LEVELS_MAX 8       /* 64^8 bits: far beyond any disk */
#define BITMAP_GRAN_MIN 512u      /* QEMU's floor for named bitmaps */
#define BITMAP_GRAN_SHIFT_MAX 31u /* 2 GiB, qcow2's ceiling */

struct bitmap {
    uint64_t size;       /* bytes covered */
    unsigned gran_shift; /* log2 of the granularity */
    uint64_t bits;       /* ceil(size / granularity) */
    uint64_t count;      /* set bits */
    unsigned levels;     /* leaf is level levels - 1; level 0 is one word */
    uint64_t words[BITMAP_LEVELS_MAX];  /* words per level */
    uint64_t *dirty[BITMAP_LEVELS_MAX]; /* dirty tree; [levels - 1] is the leaf */
    uint64_t *full[BITMAP_LEVELS_MAX];  /* full tree; [levels - 1] aliases the leaf */
};

/* A clean bitmap over @size bytes (> 0) with granularity @gran (a power of
 * two, 1 .. 2^31). Aborts on exhaustion like every allocation. */
struct bitmap *bitmap_new(uint64_t size, uint64_t gran);
void bitmap_free(struct bitmap *b);

static inline uint64_t bitmap_granularity(const struct bitmap *b)
{
    return 1ull << b->gran_shift;
}

/* Mark every group that [offset, offset + len) touches; len may be 0.
 * The range must lie within the bitmap. */
void bitmap_set(struct bitmap *b, uint64_t offset, uint64_t len);

/* Clear the groups of [offset, offset + len). @offset must be group aligned,
 * and @len too unless the range ends at the bitmap's size. */
void bitmap_reset(struct bitmap *b, uint64_t offset, uint64_t len);
void bitmap_reset_all(struct bitmap *b);

/* Is the group holding byte @offset dirty? */
bool bitmap_get(const struct bitmap *b, uint64_t offset);

/* Dirty groups times the granularity: may exceed the size when the last
 * group is partial and dirty (as QEMU's count does). */
static inline uint64_t bitmap_count(const struct bitmap *b)
{
    return b->count << b->gran_shift;
}

static inline bool bitmap_empty(const struct bitmap *b)
{
    return b->count == 0;
}

/* The first byte >= @offset, below @offset + @len and the size, whose group
 * is dirty (next_dirty) or clean (next_zero); -1 when there is none. Returns
 * @offset itself when its own group qualifies. */
int64_t bitmap_next_dirty(const struct bitmap *b, uint64_t offset, uint64_t len);
int64_t bitmap_next_zero(const struct bitmap *b, uint64_t offset, uint64_t len);

/* The first dirty run in [*offset, end): on true, *offset and *len describe
 * it, clipped to @end and to the size. The way to iterate over extents. */
bool bitmap_next_extent(const struct bitmap *b, uint64_t end, uint64_t *offset, uint64_t *len);

/* dst |= src. Sizes must match (-EINVAL otherwise); granularities may
 * differ: a dst group is set when any byte of it is dirty in src. */
int bitmap_merge(struct bitmap *dst, const struct bitmap *src) WUR;

/* Serialisation of the groups of [offset, offset + len): @offset aligned to
 * 64 groups, @len too unless the range ends at the size. serial_size gives
 * the bytes (whole 64-bit words). deserialize replaces those groups and
 * returns BS_ECORRUPT, changing nothing, when a bit past the last group is
 * set in @buf. */
uint64_t bitmap_serial_size(const struct bitmap *b, uint64_t offset, uint64_t len);
void bitmap_serialize(const struct bitmap *b, uint64_t offset, uint64_t len, uint8_t *buf);
int bitmap_deserialize(struct bitmap *b, uint64_t offset, uint64_t len,
                       const uint8_t *buf) WUR;

/* Bytes of memory the bitmap holds (struct, leaf and trees). */
uint64_t bitmap_memory(const struct bitmap *b);

/* Same size, granularity and bits. */
bool bitmap_equal(const struct bitmap *a, const struct bitmap *b);

/* Check every invariant (slow: walks every word). */
void bitmap_check(const struct bitmap *b);

#endif
