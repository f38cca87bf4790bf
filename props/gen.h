/*
 * gen: choice sequences, and the scenario generator that reads them.
 *
 * Role: every generated scenario (property trials, fuzzer inputs, shrink
 *   candidates) is decoded from a byte string, so shrinking the bytes
 *   shrinks the scenario and a fuzzer's input is a scenario.
 * Model: Hypothesis/theft: a trial draws choices; past the end of the
 *   bytes every draw is zero, the simplest value, so any prefix decodes.
 * Invariants: every byte string decodes to a valid scenario (ops fit the
 *   disk, nothing runs while the host is down, overlay actions only on the
 *   overlay topology); spans record where each operation's bytes lie.
 * Ownership: a choice sequence owns its buffer (when recording) and spans.
 * Async contract: none.
 * Depends on: sim/trace, sim/rng.
 */
#ifndef BLOCKSIM_GEN_H
#define BLOCKSIM_GEN_H

#include <stddef.h>
#include <stdint.h>

#include "../sim/base/rng.h"
#include "../sim/trace/trace.h"

#define GEN_SPANS_MAX 4096

struct gen_span {
    size_t start;
    size_t end;
};

struct choices {
    uint8_t *buf;        /* owned */
    size_t len;
    size_t cap;
    size_t pos;
    struct rng *extend;  /* non-NULL: draws past the end append random bytes */
    struct gen_span spans[GEN_SPANS_MAX];
    size_t n_spans;
    size_t open_span;    /* start of the span being recorded */
};

/* Decode from a copy of @data (no extension). */
void choices_init_bytes(struct choices *c, const uint8_t *data, size_t len);
/* Record: start empty, draw new bytes from @r. */
void choices_init_record(struct choices *c, struct rng *r);
void choices_fini(struct choices *c);

/* Uniform-ish in [lo, hi] from as few bytes as the range needs. */
uint64_t choice_range(struct choices *c, uint64_t lo, uint64_t hi);
/* An index in [0, n) picked by @weights (0 weight: never). */
unsigned choice_weighted(struct choices *c, const unsigned *weights, unsigned n);

void choice_span_begin(struct choices *c);
void choice_span_end(struct choices *c);

/* What a property lets the generator produce. */
enum { GEN_JOB_BACKUP = 1u << 0, GEN_JOB_MIRROR = 1u << 1, GEN_JOB_COMMIT = 1u << 2 };
/* The colo topology (GEN_COLO) and what it may do besides both guests'
 * I/O and checkpoints: fail over once, lose the network link for good or
 * only for a while, lose the secondary (crash, restart, primary-alone). */
enum { GEN_COLO = 1u << 0, GEN_COLO_FAILOVER = 1u << 1, GEN_COLO_NET = 1u << 2,
       GEN_COLO_NET_TRANSIENT = 1u << 3, GEN_COLO_LOSS = 1u << 4, GEN_COLO_DISK = 1u << 5 };

struct gen_opts {
    unsigned max_ops;      /* guest operations, before the final read sweep */
    bool overlay;          /* may pick the overlay topology */
    bool plain;            /* may pick the plain topology */
    bool crashes;          /* crash and restart */
    bool faults;           /* disk fault rules */
    bool torn;             /* disks without atomic sectors */
    bool bitmaps;          /* dirty bitmap records (a persistent one to start) */
    bool shutdowns;        /* clean shutdown and restart */
    bool dance;            /* favour successor create, abdicate and reclaim */
    bool quorum;           /* the quorum topology; faults then target one child */
    bool net;              /* quorum: NBD children and network faults (no disk faults) */
    unsigned fault_kinds;  /* bits of enum fault_kind to draw from; 0: the default set */
    bool qbm_faults;       /* disk faults hit the QBM files (disk=qbm), read by the loader */
    unsigned jobs;         /* GEN_JOB_* kinds: an extra disk tgt and jobs onto it,
                            * with verbs (no shutdowns: jobs do not cross one) */
    bool jobs_bitmap;      /* backups use the persistent bitmap 'a' (incremental,
                            * bitmap, or full/top recording into it) */
    bool jobs_cancel;      /* mirrors and commits end with a soft cancel in READY
                            * (else with complete) */
    unsigned colo;         /* GEN_COLO_*: the colo topology */
    bool flush_crashes;    /* the first crash strikes inside a flush (at-flush=), with
                            * writes in flight (queue depth 2 to 8) and flushes,
                            * make-empty and crashes favoured */
};

/* Decode a whole scenario into a new trace @t (header first). */
void gen_scenario(struct choices *c, const struct gen_opts *o, struct trace *t);

/* Number of guest operations in @t. */
size_t gen_trace_ops(const struct trace *t);

#endif
