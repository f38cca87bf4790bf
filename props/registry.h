/*
 * registry: the table of properties by name, for `blocksim check`, the
 * engine's tests and CI sharding.
 *
 * Role: each property is a generator setting plus a check of one scenario.
 * Invariants: names are unique; every property has a planted bug that makes
 *   it fail (tests/props/test_engine.c proves it).
 * Ownership: static tables.
 * Depends on: gen, sim/world.
 */
#ifndef BLOCKSIM_REGISTRY_H
#define BLOCKSIM_REGISTRY_H

#include <stddef.h>

#include "engine.h"
#include "gen.h"

#define PROP_PROOFS_MAX 4
#define PROP_FUZZ_IDS 32 /* fuzz_scenario's first byte modulo this */

struct prop {
    const char *name;
    const char *summary;
    unsigned fuzz_id;    /* fixed for ever; unique below PROP_FUZZ_IDS */
    struct gen_opts gen;
    /* Planted bugs (sim/trace/mutant names) each of which the property must
     * catch: tests/props/test_engine.c runs them all. */
    const char *proofs[PROP_PROOFS_MAX];
    /* 0: the scenario passes; 1: it fails (@msg says how); 2: it is not a
     * valid scenario (a generated one never is: the engine counts that as a
     * failure; the trace shrinker rejects the candidate). */
    int (*check)(const struct prop *p, const struct trace *t, uint64_t node_mutants,
                 unsigned disk_mutants, char *msg, size_t size);
    /* What 'blocksim replay' needs besides the repro trace to show a failure
     * ("" or NULL: nothing). */
    const char *replay_flags;
};

extern const struct prop registry_props[];
extern const size_t registry_count;

const struct prop *registry_find(const char *name);

/* The property with fuzz id @id, or NULL. */
const struct prop *registry_by_fuzz_id(unsigned id);

#endif
