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

void u64map_fini(struct u64map *m)
{
    mem_free(m->slots, m->cap * sizeof(*m->slots));
    memset(m, 0, sizeof(*m));
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
    if (m->n == 0) {
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
    if (2 * (m->n + 1) > m->cap) {
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
    ASSERT(2 * m->n <= m->cap || m->cap == 0);
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key != U64MAP_EMPTY) {
            count++;
            ASSERT(u64map_get(m, m->slots[i].key) == &m->slots[i].value);
        }
    }
    ASSERT(count == m->n);
}
