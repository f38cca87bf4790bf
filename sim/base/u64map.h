/*
 * u64map: an open-addressing hash map from uint64_t keys to uint64_t values.
 *
 * Role: sparse indexes keyed by sector or chunk number (disk contents, the
 *   model disk, taint sets).
 * Model: linear probing with backward-shift deletion (no tombstones); keys
 *   below a limit set with u64map_dense live in a flat array instead (an
 *   index over a small disk: a load and a bit test, no hash, no probe).
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
    size_t n;   /* keys held, both ways */
    uint64_t *dense;   /* values of keys below dense_n (u64map_dense) */
    uint64_t *present; /* bit k: key k < dense_n is held */
    uint64_t dense_n;
    size_t n_dense;    /* keys held in dense[] */
};

/* The most keys u64map_dense holds flat (8 MiB of values). */
#define U64MAP_DENSE_MAX (1u << 20)

void u64map_init(struct u64map *m);
void u64map_fini(struct u64map *m);

/* From now on keys below @limit (at most U64MAP_DENSE_MAX) are held flat;
 * the map must be empty. */
void u64map_dense(struct u64map *m, uint64_t limit);

/* Bytes the map holds (slots and flat arrays). */
uint64_t u64map_bytes(const struct u64map *m);

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
