/*
 * content: guest write contents that say which write put them there.
 *
 * Role: workloads without data (fio iologs, generated scenarios) write bytes
 *   derived from (seed, operation index, sector), so a checker reading any
 *   sector back can name the write it came from, or see that it is garbage.
 * Model: none in QEMU; this is the harness's own tagging scheme.
 * Invariants: a filled sector never equals all zeroes (its tag is non-zero).
 * Ownership: callers own the buffers.
 * Async contract: none.
 * Depends on: rng (mixing), base.
 *
 * Sector layout (512 bytes, little endian):
 *   0   8  tag: the writing operation's index + 1 (0 is reserved for zeroes)
 *   8   8  the sector number the write meant this data for
 *   16  496 filler: 62 words, word i = x ^ (x >> 29) with x = base + i * K1,
 *           where base = mix64(seed ^ tag * K1 ^ sector * K2)
 */
#ifndef BLOCKSIM_CONTENT_H
#define BLOCKSIM_CONTENT_H

#include <stdbool.h>
#include <stdint.h>

#define CONTENT_SECTOR 512u
#define CONTENT_TAG_ZERO 0u
#define CONTENT_TAG_GARBAGE UINT64_MAX
/* Tags at or above this are no write's: patterns (a sector of one byte, as
 * `write OFF LEN pattern=0xNN` and qemu-io's `write -P` make them) and the
 * bytes an image file gave a disk at the start. */
#define CONTENT_TAG_SPECIAL (UINT64_MAX - 0x200u)
#define CONTENT_TAG_IMAGE (UINT64_MAX - 1u)

/* The tag of a sector filled with byte @b (CONTENT_TAG_ZERO for 0). */
static inline uint64_t content_pattern_tag(uint8_t b)
{
    return b ? CONTENT_TAG_SPECIAL + b : CONTENT_TAG_ZERO;
}

static inline bool content_tag_is_pattern(uint64_t tag)
{
    return tag > CONTENT_TAG_SPECIAL && tag <= CONTENT_TAG_SPECIAL + 0xffu;
}

/* Fill @n_sectors sectors from @first_sector with the bytes of write @tag. */
void content_fill(uint8_t *buf, uint64_t seed, uint64_t tag, uint64_t first_sector,
                  uint64_t n_sectors);

/* The one sector at @sector whose content_identify is @tag: a write's bytes,
 * zeroes, or a pattern (never garbage or an image's data). */
void content_make(uint8_t *buf, uint64_t seed, uint64_t tag, uint64_t sector);

/* The tag of one sector read at @sector: its writer's tag, CONTENT_TAG_ZERO
 * for an all-zero sector, a pattern tag for a sector of one byte, or
 * CONTENT_TAG_GARBAGE (then *home, if non-NULL,
 * holds the sector the data was meant for when the tag and filler were
 * intact, which names a misdirected write, else UINT64_MAX). */
uint64_t content_identify(const uint8_t *data, uint64_t seed, uint64_t sector,
                          uint64_t *home);

/* content_identify of @n sectors from @sector into @tags; true if none is
 * garbage (then the tags say every byte). */
bool content_identify_run(const uint8_t *data, uint64_t seed, uint64_t sector, uint64_t n,
                          uint64_t *tags);

/* One hash of @n sectors' contents: of their @tags when @known (none is
 * garbage), else of their bytes @data. Contents that came as tags (a
 * described read, ref/env.h) and the same contents as bytes hash alike. */
uint64_t content_hash(const uint64_t *tags, bool known, const uint8_t *data, uint64_t n);

/* The operation index of a tag (tag - 1). */
static inline uint64_t content_tag_op(uint64_t tag)
{
    return tag - 1;
}

#endif
