/*
 * crashx: crash-state exploration of a workload.
 *
 * Role: where `check` samples one crash state per crash, crashx enumerates
 *   them: at every crash point of a workload (as the disks receive each
 *   flush, after each mark record, and at its end) it crashes the host
 *   into many states, reopens
 *   the stack on each and reads back everything written.
 * Model: CrashMonkey (all earlier epochs plus subsets of the last epoch's
 *   writes) and dm-log-writes replay (every prefix of the log), plus
 *   per-sector tearing; SQLite test6.c for the tear.
 * Invariants: a state is only generated if the device contract allows it
 *   (FUA writes are always kept; prefixes run through the last FUA write);
 *   identical plans run once; subsets are exhaustive when the log is small.
 * Ownership: results are plain values; the workload is borrowed.
 * Async contract: none.
 * Depends on: sim/world, sim/disk, sim/trace.
 */
#ifndef BLOCKSIM_CRASHX_H
#define BLOCKSIM_CRASHX_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "../sim/trace/trace.h"

enum crashx_gen { CRASHX_PREFIX, CRASHX_SUBSET, CRASHX_TEAR, CRASHX__COUNT };

struct crashx_opts {
    uint64_t node_mutants;
    unsigned disk_mutants;
    uint64_t max_states;   /* per workload and generator, shared among its crash
                            * points, at least 16 a point (default 10,000) */
    uint64_t tear_samples; /* torn states per workload (default 1,000) */
    uint64_t seed;       /* sampling, when a generator cannot be exhaustive */
    double seconds;      /* wall budget; 0: none (the result says when it ran out) */
    uint64_t only_point; /* explore only crash point only_point - 1; 0: all */
    bool progress;       /* a progress line on stderr (a terminal) */
    bool no_fork;        /* run each state from the start, never as a child forked
                          * at its crash (by default a long workload's are; the
                          * same states and verdicts either way) */
    size_t fork_min_records; /* fork at crash points with this many records before
                              * them, or more (default 200: a fork costs about what
                              * a run of a few hundred does) */
    char host[TRACE_HOST_MAX]; /* the host crashed at each point ("": every host;
                                * another host's crash may strike inside an operator
                                * action of the guest's host, e.g. a COLO checkpoint) */
    const volatile sig_atomic_t *stop; /* set by a signal handler: stop soon */
};

struct crashx_result {
    uint64_t workloads;
    uint64_t points;                 /* crash points explored */
    uint64_t states[CRASHX__COUNT];  /* states run, per generator */
    uint64_t dups;                   /* states whose contents repeated another's */
    uint64_t distinct;               /* distinct post-crash contents */
    bool exhaustive;                 /* every subset was enumerated everywhere */
    bool failed;
    bool stopped;                    /* the time budget or a stop request ended it */
    uint64_t fail_point;             /* failed: the crash point's number */
    double seconds;
    char message[512];
    char *repro;                     /* failed: a native trace that replays the
                                      * failing state exactly (crash record with
                                      * at-flush= and plan=); crashx_result_fini */
};

void crashx_opts_default(struct crashx_opts *o);

/* Explore @workload. Its own crash and restart records stay where they are
 * and split it into segments; each segment (the operations between a
 * restart and the next crash) is explored in turn: crash points at every
 * device flush inside it, after each of its marks and at its end. Points
 * are numbered from 0 in that order (o->only_point picks one). Returns 0
 * (r->failed tells) or BS_EPARSE with @e. */
int crashx_run(const struct trace *workload, const struct crashx_opts *o,
               struct crashx_result *r, struct err *e) WUR;

/* Every workload of 1..@max_ops operations over a tiny alphabet (write,
 * FUA write or zero of sector 0 or 1, flush; on the overlay also
 * make-empty and commit), on both topologies, each explored exhaustively.
 * Stops at the first failure (r->message names the workload). */
void crashx_exhaustive(unsigned max_ops, const struct crashx_opts *o,
                       struct crashx_result *r);

const char *crashx_gen_name(enum crashx_gen g);

void crashx_result_fini(struct crashx_result *r);

#endif
