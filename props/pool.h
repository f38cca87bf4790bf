/*
 * pool: trials run by long-lived forked workers, several at a time.
 *
 * Role: fork mode of the property engine without a fork per trial. Each
 *   worker is a child that runs the trials it is sent one after another; a
 *   trial that crashes or hangs takes its worker down, which the pool
 *   reports as that trial's failure and replaces.
 * Model: the caller submits (tag, bytes) to an idle worker and waits for
 *   results, which come back in any order, each with its tag.
 * Invariants: a busy worker runs exactly one trial; every submitted trial
 *   gets exactly one result (its verdict, its crash or its hang).
 * Ownership: the pool owns its workers and their pipes; pool_free kills the
 *   busy ones and reaps them all.
 * Async contract: a worker arms alarm(timeout) around each trial, so a hang
 *   ends the worker by SIGALRM; the parent only waits.
 * Depends on: base.
 */
#ifndef BLOCKSIM_POOL_H
#define BLOCKSIM_POOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define POOL_MAX 16 /* workers at most */
#define POOL_MSG 320

/* Runs one trial in a worker: true if it fails, with its message in @msg. */
typedef bool pool_run_fn(const void *ctx, const uint8_t *bytes, size_t len, char *msg,
                         size_t size);

struct pool;

/* @workers workers (1..POOL_MAX), started as trials need them. */
struct pool *pool_new(pool_run_fn *run, const void *ctx, unsigned workers,
                      unsigned timeout_s);
void pool_free(struct pool *pl);

unsigned pool_idle(const struct pool *pl);

/* Start a trial on an idle worker (there must be one). */
void pool_submit(struct pool *pl, uint64_t tag, const uint8_t *bytes, size_t len);

/* Wait for the next result of a trial in flight (there must be one). */
void pool_wait(struct pool *pl, uint64_t *tag, bool *fail, char *msg, size_t size);

/* Cores online (at least 1, at most POOL_MAX). */
unsigned pool_cores(void);

#endif
