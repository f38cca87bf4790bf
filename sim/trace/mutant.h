/*
 * mutant: the planted bugs, by name.
 *
 * Role: one table of every known bug that can be switched on in ref/ (node
 *   mutants) or in the simulated disk (disk mutants), so that the CLI's
 *   --mutant, the trace's 'mutant NAME' record and the repro traces that
 *   check writes all name them the same way.
 * Model: none; planted bugs prove that a checker or property can fail.
 * Invariants: names are unique; each entry sets exactly one bit.
 * Ownership: static data.
 * Async contract: none.
 * Depends on: ref/node (node mutant bits), sim/disk (disk mutant bits).
 */
#ifndef BLOCKSIM_MUTANT_H
#define BLOCKSIM_MUTANT_H

#include <stddef.h>

struct mutant {
    const char *name;
    unsigned node; /* enum node_mutant bit, or 0 */
    unsigned disk; /* enum disk_mutant bit, or 0 */
    const char *what;
};

extern const struct mutant mutant_table[];
extern const size_t mutant_count;

/* The entry named @name (@len bytes), or NULL. */
const struct mutant *mutant_find(const char *name, size_t len);

#endif
