/*
 * rng: see rng.h. Method: a stream's seed is SplitMix64 run over the root
 * seed mixed with an FNV-1a hash of the name and the two ids; the four words
 * of xoshiro256** state are four successive SplitMix64 outputs.
 */
#include "rng.h"

#include "../../ref/base.h"

void rng_seed(struct rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) {
        r->s[i] = rng_mix64(x);
        x += 0x9e3779b97f4a7c15ull;
    }
    if ((r->s[0] | r->s[1] | r->s[2] | r->s[3]) == 0) {
        r->s[0] = 1;
    }
}

void rng_stream(struct rng *r, uint64_t root_seed, const char *name, uint64_t a, uint64_t b)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const char *p = name; *p; p++) {
        h ^= (uint8_t)*p;
        h *= 0x100000001b3ull;
    }
    uint64_t seed = rng_mix64(root_seed ^ h);
    seed = rng_mix64(seed ^ a);
    seed = rng_mix64(seed ^ (b * 0xd1b54a32d192ed03ull));
    rng_seed(r, seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

uint64_t rng_next(struct rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint64_t rng_below(struct rng *r, uint64_t n)
{
    ASSERT(n > 0);
    unsigned __int128 m = (unsigned __int128)rng_next(r) * n;
    uint64_t low = (uint64_t)m;
    if (low < n) {
        uint64_t threshold = (0 - n) % n;
        /* Bounded: each retry succeeds with probability > 1/2. */
        for (int i = 0; low < threshold && i < 128; i++) {
            m = (unsigned __int128)rng_next(r) * n;
            low = (uint64_t)m;
        }
    }
    return (uint64_t)(m >> 64);
}

uint64_t rng_range(struct rng *r, uint64_t lo, uint64_t hi)
{
    ASSERT(lo <= hi);
    if (lo == 0 && hi == UINT64_MAX) {
        return rng_next(r);
    }
    return lo + rng_below(r, hi - lo + 1);
}

int rng_chance(struct rng *r, uint64_t threshold)
{
    if (threshold == UINT64_MAX) {
        return 1;
    }
    return rng_next(r) < threshold;
}
