/*
 * engine: runs a property over many generated trials, shrinks a failure to
 *   a small scenario and writes it as a native trace that replays it.
 *
 * Role: blocksim's own property engine (theft is not packaged for Debian).
 * Model: theft/Hypothesis: a trial is a choice sequence drawn from a seeded
 *   stream; shrinking edits the bytes (delete spans and chunks, zero and
 *   lower bytes) and keeps an edit when the property still fails and the
 *   bytes got shortlex-smaller; trials with the same bytes are run once.
 * Invariants: trial i of seed S always decodes the same bytes; a shard I/N
 *   runs exactly the trials with i % N == I; shrinking never accepts a
 *   candidate that passes.
 * Ownership: the caller owns the options; results are plain values.
 * Async contract: none; a trial may run in a forked child (fork mode), so a
 *   crash, an assertion or a hang is a failure like any other.
 * Depends on: gen, registry, sim/world.
 */
#ifndef BLOCKSIM_ENGINE_H
#define BLOCKSIM_ENGINE_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../ref/base.h"
#include "gen.h"

struct prop;

struct engine_opts {
    uint64_t seed;
    uint64_t trials;        /* 0: until the time budget ends */
    double seconds;         /* 0: no time budget */
    unsigned shard_index;
    unsigned shard_count;   /* 0 or 1: no sharding */
    uint64_t node_mutants;  /* planted bugs, to prove a property can fail */
    unsigned disk_mutants;
    bool fork;              /* run trials in forked workers, with a timeout */
    unsigned timeout_s;     /* fork mode: a trial longer than this hangs */
    unsigned workers;       /* fork mode: trials run at once (0: one a core) */
    uint64_t shrink_steps;  /* candidate runs the shrinker may spend */
    double shrink_seconds;
    const char *out_dir;    /* where repro traces go (made when first needed);
                             * NULL: nowhere */
    bool progress;          /* print progress to stderr (a terminal) */
    /* Set (by a signal handler) to stop: the trial running is discarded,
     * a shrink keeps its best so far, the result says interrupted. */
    const volatile sig_atomic_t *stop;
};

struct engine_result {
    uint64_t trials;
    uint64_t passed;
    uint64_t dups;
    uint64_t ops;          /* guest operations and control records in the trials run */
    bool failed;
    uint64_t fail_trial;
    char message[320];
    size_t ops_before;     /* operations in the first failing scenario */
    size_t ops_after;      /* after shrinking */
    uint64_t shrink_steps;
    bool shrink_stopped_early;
    char repro_path[512];  /* the repro trace written, or "" */
    char repro_error[320]; /* why it could not be written, or "" */
    uint8_t *bytes;        /* failed: the shrunk choices (engine_result_fini) */
    size_t len;
    bool interrupted;      /* o->stop ended the run early */
    double seconds;
    double cpu_seconds;    /* of this process and its workers: trials a core */
};

void engine_opts_default(struct engine_opts *o);

/* Run @p; the result says pass or fail. On a failure the shrunk scenario is
 * written as OUT/<property>-<seed>[-shard-I].trace when o->out_dir is set;
 * when that fails r->repro_error says why and the scenario stays in
 * r->bytes for engine_repro_print. engine_result_fini frees it. */
void engine_run(const struct prop *p, const struct engine_opts *o, struct engine_result *r);
void engine_result_fini(struct engine_result *r);

/* Print failed @r's scenario as a native trace to @f: a header comment
 * (property, seed, trial, message), a 'mutant' record per planted bug in
 * @o, then the scenario. 0 or -EIO. */
int engine_repro_print(const struct prop *p, const struct engine_opts *o,
                       const struct engine_result *r, FILE *f) WUR;

/* Does @p fail on the scenario decoded from @bytes? Fills @msg when it does. */
bool engine_trial_fails(const struct prop *p, const struct engine_opts *o,
                        const uint8_t *bytes, size_t len, char *msg, size_t size);

/* Shrink failing @bytes in place (*len shrinks too). */
void engine_shrink(const struct prop *p, const struct engine_opts *o, uint8_t *bytes,
                   size_t *len, struct engine_result *r);

#endif
