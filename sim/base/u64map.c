/*
 * u64map: see u64map.h. Method: the slot of a key is the mix of its high bits,
 * its low bits kept (slot_home), masked to the capacity; collisions probe
 * forward. Deletion shifts later members of
 * the probe run back, so lookups never need tombstones.
 */
#include "u64map.h"

#include <stdlib.h>
#include <string.h>

#include "../../ref/base.h"
#include "rng.h"

void u64map_init(struct u64map *m)
{
    memset(m, 0, sizeof(*m));
}

static uint64_t present_words(uint64_t dense_n)
{
    return (dense_n + 63) / 64;
}

void u64map_fini(struct u64map *m)
{
    mem_free(m->slots, m->cap * sizeof(*m->slots));
    mem_free(m->dense, m->dense_n * sizeof(*m->dense));
    mem_free(m->present, present_words(m->dense_n) * sizeof(*m->present));
    memset(m, 0, sizeof(*m));
}

void u64map_dense(struct u64map *m, uint64_t limit)
{
    ASSERT(m->n == 0 && m->dense_n == 0);
    ASSERT(limit <= U64MAP_DENSE_MAX);
    if (limit == 0) {
        return;
    }
    m->dense_n = limit;
    m->dense = mem_alloc(limit * sizeof(*m->dense));
    m->present = mem_alloc(present_words(limit) * sizeof(*m->present));
}

uint64_t u64map_bytes(const struct u64map *m)
{
    return m->cap * sizeof(*m->slots) + m->dense_n * sizeof(*m->dense) +
           present_words(m->dense_n) * sizeof(*m->present);
}

static bool dense_has(const struct u64map *m, uint64_t key)
{
    return (m->present[key / 64] >> (key % 64)) & 1;
}

/* Keys that differ only in their low U64MAP_RUN_BITS bits (neighbouring
 * sectors) get neighbouring slots, so a range costs a few cache lines, not
 * a miss per key; the runs themselves spread by the mix. */
#define U64MAP_RUN_BITS 3

static size_t slot_home(const struct u64map *m, uint64_t key)
{
    uint64_t low = key & ((1u << U64MAP_RUN_BITS) - 1);
    return (size_t)((rng_mix64(key >> U64MAP_RUN_BITS) << U64MAP_RUN_BITS) | low) &
           (m->cap - 1);
}

uint64_t *u64map_get(const struct u64map *m, uint64_t key)
{
    ASSERT(key != U64MAP_EMPTY);
    if (key < m->dense_n) {
        return dense_has(m, key) ? &m->dense[key] : NULL;
    }
    if (m->n == m->n_dense) {
        return NULL;
    }
    for (size_t i = slot_home(m, key), probes = 0; probes < m->cap;
         i = (i + 1) & (m->cap - 1), probes++) {
        if (m->slots[i].key == key) {
            return &m->slots[i].value;
        }
        if (m->slots[i].key == U64MAP_EMPTY) {
            return NULL;
        }
    }
    UNREACHABLE();
}

static void map_grow(struct u64map *m)
{
    struct u64map_slot *old = m->slots;
    size_t old_cap = m->cap;
    m->cap = old_cap ? 2 * old_cap : 16;
    m->slots = mem_alloc(m->cap * sizeof(*m->slots));
    for (size_t i = 0; i < m->cap; i++) {
        m->slots[i].key = U64MAP_EMPTY;
    }
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key == U64MAP_EMPTY) {
            continue;
        }
        size_t j = slot_home(m, old[i].key);
        while (m->slots[j].key != U64MAP_EMPTY) {
            j = (j + 1) & (m->cap - 1);
        }
        m->slots[j] = old[i];
    }
    mem_free(old, old_cap * sizeof(*old));
}

uint64_t *u64map_put(struct u64map *m, uint64_t key, bool *created)
{
    ASSERT(key != U64MAP_EMPTY);
    if (key < m->dense_n) {
        bool fresh = !dense_has(m, key);
        if (fresh) {
            m->present[key / 64] |= 1ull << (key % 64);
            m->dense[key] = 0;
            m->n++;
            m->n_dense++;
        }
        if (created) {
            *created = fresh;
        }
        return &m->dense[key];
    }
    if (2 * (m->n - m->n_dense + 1) > m->cap) {
        map_grow(m);
    }
    size_t i = slot_home(m, key);
    for (size_t probes = 0; probes < m->cap; probes++) {
        if (m->slots[i].key == key) {
            if (created) {
                *created = false;
            }
            return &m->slots[i].value;
        }
        if (m->slots[i].key == U64MAP_EMPTY) {
            m->slots[i].key = key;
            m->slots[i].value = 0;
            m->n++;
            if (created) {
                *created = true;
            }
            return &m->slots[i].value;
        }
        i = (i + 1) & (m->cap - 1);
    }
    UNREACHABLE();
}

bool u64map_del(struct u64map *m, uint64_t key)
{
    if (key < m->dense_n) {
        if (!dense_has(m, key)) {
            return false;
        }
        m->present[key / 64] &= ~(1ull << (key % 64));
        m->n--;
        m->n_dense--;
        return true;
    }
    uint64_t *v = u64map_get(m, key);
    if (!v) {
        return false;
    }
    size_t hole = (size_t)((struct u64map_slot *)((char *)v - offsetof(struct u64map_slot,
                                                                       value)) - m->slots);
    size_t mask = m->cap - 1;
    for (size_t j = (hole + 1) & mask; m->slots[j].key != U64MAP_EMPTY; j = (j + 1) & mask) {
        size_t home = slot_home(m, m->slots[j].key);
        /* Move j back into the hole unless its home lies in (hole, j]. */
        bool stays = hole <= j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (!stays) {
            m->slots[hole] = m->slots[j];
            hole = j;
        }
    }
    m->slots[hole].key = U64MAP_EMPTY;
    m->n--;
    return true;
}

static int key_cmp(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a;
    uint64_t y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

uint64_t *u64map_keys(const struct u64map *m)
{
    uint64_t *keys = mem_alloc(m->n * sizeof(*keys));
    size_t k = 0;
    for (uint64_t w = 0; w < present_words(m->dense_n); w++) { /* ascending already */
        for (uint64_t bits = m->present[w]; bits; bits &= bits - 1) {
            keys[k++] = w * 64 + (uint64_t)__builtin_ctzll(bits);
        }
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key != U64MAP_EMPTY) {
            keys[k++] = m->slots[i].key;
        }
    }
    ASSERT(k == m->n);
    qsort(keys, k, sizeof(*keys), key_cmp);
    return keys;
}

void u64map_check(const struct u64map *m)
{
    size_t count = 0;
    ASSERT(m->cap == 0 || is_pow2(m->cap));
    ASSERT(2 * (m->n - m->n_dense) <= m->cap || m->cap == 0);
    size_t dense = 0;
    for (uint64_t w = 0; w < present_words(m->dense_n); w++) {
        dense += (size_t)__builtin_popcountll(m->present[w]);
    }
    ASSERT(dense == m->n_dense);
    ASSERT(m->dense_n % 64 == 0 || !m->dense_n ||
           !(m->present[m->dense_n / 64] >> (m->dense_n % 64))); /* none past the end */
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key != U64MAP_EMPTY) {
            count++;
            ASSERT(m->slots[i].key >= m->dense_n);
            ASSERT(u64map_get(m, m->slots[i].key) == &m->slots[i].value);
        }
    }
    ASSERT(count + m->n_dense == m->n);
}
