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

#include <stdint.h>

#define CONTENT_SECTOR 512u
#define CONTENT_TAG_ZERO 0u
#define CONTENT_TAG_GARBAGE UINT64_MAX

/* Fill @n_sectors sectors from @first_sector with the bytes of write @tag. */
void content_fill(uint8_t *buf, uint64_t seed, uint64_t tag, uint64_t first_sector,
                  uint64_t n_sectors);

/* The tag of one sector read at @sector: its writer's tag, CONTENT_TAG_ZERO
 * for an all-zero sector, or CONTENT_TAG_GARBAGE (then *home, if non-NULL,
 * holds the sector the data was meant for when the tag and filler were
 * intact, which names a misdirected write, else UINT64_MAX). */
uint64_t content_identify(const uint8_t *data, uint64_t seed, uint64_t sector,
                          uint64_t *home);

/* The operation index of a tag (tag - 1). */
static inline uint64_t content_tag_op(uint64_t tag)
{
    return tag - 1;
}

#endif
