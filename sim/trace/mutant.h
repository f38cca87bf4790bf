/*
 * mutant: the planted bugs, by name.
 *
 * Role: every known bug that can be switched on in ref/ (node mutants) or
 *   in the simulated disk (disk mutants), gathered by name from the tables
 *   each module keeps beside its code, so that the CLI's --mutant (and
 *   --mutant list), the trace's 'mutant NAME' record and the repro traces
 *   that check writes all name them the same way.
 * Model: none; planted bugs prove that a checker or property can fail.
 * Invariants: names are unique; each entry sets exactly one bit.
 * Ownership: static data.
 * Async contract: none.
 * Depends on: ref/node (node mutant bits), sim/disk (disk mutant bits).
 */
#ifndef BLOCKSIM_MUTANT_H
#define BLOCKSIM_MUTANT_H

#include <stddef.h>

#include "../../ref/base.h"

struct mutant {
    const char *name;
    uint64_t node; /* a NODE_MUTANT_* bit, or 0 */
    unsigned disk; /* enum disk_mutant bit, or 0 */
    const char *what;
    size_t index;  /* in the gathered list (what a 'mutant' record stores) */
};

/* Every planted bug of every module, gathered from the modules' own tables
 * (struct planted_bug, base.h) in a fixed order. */
size_t mutant_count(void);
struct mutant mutant_get(size_t index);

/* The planted bug named @name (@len bytes) into @out: 0, or -ENOENT. */
int mutant_find(const char *name, size_t len, struct mutant *out) WUR;

#endif
