/*
 * u64map: an open-addressing hash map from uint64_t keys to uint64_t values.
 *
 * Role: sparse indexes keyed by sector or chunk number (disk contents, the
 *   model disk, taint sets).
 * Model: linear probing with backward-shift deletion (no tombstones).
 * Invariants: load factor at most 1/2; key UINT64_MAX is reserved as "empty".
 *   Iteration order depends only on the keys and the insertion history, never
 *   on pointers; callers that expose an order sort the keys (u64map_keys).
 * Ownership: the map owns its slot array; values are plain numbers (callers
 *   that store pointers free them).
 * Async contract: none.
 * Depends on: base.
 */
#ifndef BLOCKSIM_U64MAP_H
#define BLOCKSIM_U64MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define U64MAP_EMPTY UINT64_MAX

struct u64map_slot {
    uint64_t key;
    uint64_t value;
};

struct u64map {
    struct u64map_slot *slots;
    size_t cap; /* power of two, or 0 */
    size_t n;
};

void u64map_init(struct u64map *m);
void u64map_fini(struct u64map *m);

/* Pointer to the value of @key, or NULL. Valid until the next insert. */
uint64_t *u64map_get(const struct u64map *m, uint64_t key);

/* Pointer to the value of @key, inserted as 0 if absent (*created tells). */
uint64_t *u64map_put(struct u64map *m, uint64_t key, bool *created);

/* Remove @key; true if it was present. */
bool u64map_del(struct u64map *m, uint64_t key);

/* All keys in ascending order, in a new array of m->n entries (mem_free it
 * with m->n * sizeof(uint64_t)). */
uint64_t *u64map_keys(const struct u64map *m);

void u64map_check(const struct u64map *m);

#endif
