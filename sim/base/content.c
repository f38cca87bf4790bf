/*
 * content: see content.h. Method: the filler is a counter-mode stream of the
 * SplitMix64 finaliser, so a sector is produced and verified in 62 mixes
 * with no state carried between sectors.
 */
#include "content.h"

#include <string.h>
#include <xxhash.h>

#include "../../ref/base.h"
#include "rng.h"

#define K1 0x9e3779b97f4a7c15ull
#define K2 0xc2b2ae3d27d4eb4full

static uint64_t filler_base(uint64_t seed, uint64_t tag, uint64_t sector)
{
    return rng_mix64(seed ^ (tag * K1) ^ (sector * K2));
}

/* Word @w of a sector's filler: distinct per word, cheap enough that the
 * compiler vectorises the loops (the base already mixes seed, tag, sector). */
static inline uint64_t filler_word(uint64_t base, unsigned w)
{
    uint64_t x = base + (uint64_t)w * K1;
    return x ^ (x >> 29);
}

/* The filler is produced and checked as native words; the layout is little
 * endian, which the build asserts here rather than paying for byte shifts. */
STATIC_ASSERT(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__);

void content_fill(uint8_t *buf, uint64_t seed, uint64_t tag, uint64_t first_sector,
                  uint64_t n_sectors)
{
    ASSERT(tag != CONTENT_TAG_ZERO);
    ASSERT(tag < CONTENT_TAG_SPECIAL); /* a write's tag, never a pattern's */
    for (uint64_t i = 0; i < n_sectors; i++) {
        uint8_t *p = buf + i * CONTENT_SECTOR;
        uint64_t sector = first_sector + i;
        uint64_t base = filler_base(seed, tag, sector);
        uint64_t words[CONTENT_SECTOR / 8];
        words[0] = tag;
        words[1] = sector;
        for (unsigned w = 0; w < (CONTENT_SECTOR - 16) / 8; w++) {
            words[2 + w] = filler_word(base, w);
        }
        memcpy(p, words, sizeof(words));
    }
}

void content_make(uint8_t *buf, uint64_t seed, uint64_t tag, uint64_t sector)
{
    ASSERT(tag != CONTENT_TAG_GARBAGE && tag != CONTENT_TAG_IMAGE);
    if (tag == CONTENT_TAG_ZERO || content_tag_is_pattern(tag)) {
        memset(buf, tag == CONTENT_TAG_ZERO ? 0 : (int)(tag - CONTENT_TAG_SPECIAL),
               CONTENT_SECTOR);
    } else {
        content_fill(buf, seed, tag, sector, 1);
    }
}

bool content_identify_run(const uint8_t *data, uint64_t seed, uint64_t sector, uint64_t n,
                          uint64_t *tags)
{
    bool known = true;
    for (uint64_t i = 0; i < n; i++) {
        tags[i] = content_identify(data + i * CONTENT_SECTOR, seed, sector + i, NULL);
        known &= tags[i] != CONTENT_TAG_GARBAGE;
    }
    return known;
}

uint64_t content_hash(const uint64_t *tags, bool known, const uint8_t *data, uint64_t n)
{
    return known ? XXH3_64bits(tags, n * sizeof(*tags)) : XXH3_64bits(data, n * CONTENT_SECTOR);
}

/* Is the sector one byte repeated? */
static bool one_byte(const uint8_t *p)
{
    for (unsigned i = 1; i < CONTENT_SECTOR; i++) {
        if (p[i] != p[0]) {
            return false;
        }
    }
    return true;
}

static int all_zero(const uint8_t *p)
{
    static const uint8_t zero[CONTENT_SECTOR];
    return memcmp(p, zero, CONTENT_SECTOR) == 0;
}

uint64_t content_identify(const uint8_t *data, uint64_t seed, uint64_t sector,
                          uint64_t *home)
{
    uint64_t tag = get_le64(data);
    uint64_t meant = get_le64(data + 8);
    if (home) {
        *home = UINT64_MAX;
    }
    if (tag == CONTENT_TAG_ZERO) {
        return all_zero(data) ? CONTENT_TAG_ZERO : CONTENT_TAG_GARBAGE;
    }
    if (one_byte(data)) { /* a filler never is: its second word is the sector */
        return content_pattern_tag(data[0]);
    }
    if (tag >= CONTENT_TAG_SPECIAL) {
        return CONTENT_TAG_GARBAGE;
    }
    uint64_t base = filler_base(seed, tag, meant);
    uint64_t words[CONTENT_SECTOR / 8];
    memcpy(words, data, sizeof(words));
    uint64_t diff = 0;
    for (unsigned w = 0; w < (CONTENT_SECTOR - 16) / 8; w++) {
        diff |= words[2 + w] ^ filler_word(base, w);
    }
    if (diff != 0) {
        return CONTENT_TAG_GARBAGE;
    }
    if (meant != sector) {
        if (home) {
            *home = meant;
        }
        return CONTENT_TAG_GARBAGE;
    }
    return tag;
}
