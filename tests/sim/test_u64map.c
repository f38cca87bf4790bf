/* Tests of sim/u64map against a shadow array. */
#include "../../sim/base/rng.h"
#include "../../sim/base/u64map.h"
#include "../suites.h"
#include "../testlib.h"

#include <string.h>

/* Keys k * spread: scattered, dense neighbours (which share runs of slots),
 * and only the first key of each run. */
static const uint64_t spreads[] = { 0x10001, 1, 8 };

/* @dense: keys below it are held flat (u64map_dense), the rest hashed. */
static void against_shadow(uint64_t spread, uint64_t seed, uint64_t dense)
{
    enum { KEYS = 2048 };
    struct u64map m;
    u64map_init(&m);
    u64map_dense(&m, dense);
    static uint64_t shadow[KEYS]; /* 0: absent, else value */
    memset(shadow, 0, sizeof(shadow));
    struct rng r;
    rng_seed(&r, seed);
    for (int step = 0; step < 40000; step++) {
        uint64_t k = rng_below(&r, KEYS);
        uint64_t key = k * spread; /* include 0 */
        if (rng_below(&r, 3) == 0) {
            ck_assert_int_eq(u64map_del(&m, key), shadow[k] != 0);
            shadow[k] = 0;
        } else {
            uint64_t v = rng_next(&r) | 1;
            *u64map_put(&m, key, NULL) = v;
            shadow[k] = v;
        }
        if (step % 4096 == 0) {
            u64map_check(&m);
        }
    }
    size_t count = 0;
    for (uint64_t k = 0; k < KEYS; k++) {
        uint64_t *v = u64map_get(&m, k * spread);
        ck_assert_int_eq(v != NULL, shadow[k] != 0);
        if (v) {
            ck_assert_uint_eq(*v, shadow[k]);
            count++;
        }
    }
    ck_assert_uint_eq(count, m.n);
    uint64_t *keys = u64map_keys(&m);
    for (size_t i = 1; i < m.n; i++) {
        ck_assert_uint_lt(keys[i - 1], keys[i]);
    }
    mem_free(keys, m.n * sizeof(*keys));
    u64map_check(&m);
    u64map_fini(&m);
}

START_TEST(test_u64map_against_shadow)
{
    for (uint64_t i = 0; i < ARRAY_LEN(spreads); i++) {
        against_shadow(spreads[i], 5 + i, 0);
        against_shadow(spreads[i], 9 + i, 1000);  /* some keys flat, some hashed */
        against_shadow(spreads[i], 13 + i, 2048 * spreads[i] > U64MAP_DENSE_MAX
                                               ? U64MAP_DENSE_MAX : 2048 * spreads[i]);
    }
}
END_TEST

Suite *suite_u64map(void)
{
    const TTest *tests[] = {
        test_u64map_against_shadow,
    };
    return tl_suite("u64map", tests, ARRAY_LEN(tests));
}
