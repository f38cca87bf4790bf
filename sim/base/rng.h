/*
 * rng: seeded, splittable pseudo-random streams.
 *
 * Role: the only source of randomness in blocksim. Every consumer draws from
 *   its own named stream, split from the world seed, so adding a consumer
 *   never shifts another's draws.
 * Model: SplitMix64 for seeding and splitting; xoshiro256** for draws (both
 *   published public-domain algorithms, written here from their description).
 * Invariants: the state of a stream is never all zero.
 * Ownership: streams are plain values, embedded by their owner.
 * Async contract: none.
 * Depends on: base.
 */
#ifndef BLOCKSIM_RNG_H
#define BLOCKSIM_RNG_H

#include <stdint.h>

struct rng {
    uint64_t s[4];
};

/* Seed @r from a 64-bit value via SplitMix64. */
void rng_seed(struct rng *r, uint64_t seed);

/* A stream named @name with ids @a, @b, derived from @root_seed alone. */
void rng_stream(struct rng *r, uint64_t root_seed, const char *name, uint64_t a, uint64_t b);

uint64_t rng_next(struct rng *r);

/* Uniform in [0, n); n > 0. Unbiased (Lemire's multiply-and-reject). */
uint64_t rng_below(struct rng *r, uint64_t n);

/* Uniform in [lo, hi]; lo <= hi. */
uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi);

/* True with probability threshold / 2^64 (UINT64_MAX: always). */
int rng_chance(struct rng *r, uint64_t threshold);

/* SplitMix64 finaliser: a good 64-bit mix, also used for content words. */
static inline uint64_t rng_mix64(uint64_t z)
{
    z += 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

#endif
