/*
 * mirror: the mirror job (and active commit, which is a mirror onto the
 *   top's backing) with its filter above the source.
 *
 * Role: copies the source to a target while the guest keeps writing: a
 *   dirty bitmap (one byte a granule) starts with what sync selects and
 *   gains every range the guest writes; the job copies dirty chunks until
 *   the bitmap is clean and nothing is in flight, flushes the target and
 *   becomes READY; it keeps the target in step until complete (the guest
 *   moves onto the target: the pivot) or a cancel (before READY, or
 *   forced: CANCELLED; in READY without force: COMPLETED, no pivot, a
 *   consistent target). copy-mode=write-blocking writes each guest write
 *   to the target too before it completes.
 * Model: spec sections 3 and 10 (QEMU's block/mirror.c). Simplifications:
 *   one source read and target write per op, at most 16 ops in flight, ops
 *   of at most max(buf-size/16, 1 MiB); no zero_target pass (targets here
 *   start zeroed); zero ranges (source block status) go as write-zeroes.
 * Invariants: a copy clears its granules' dirty bits before it reads, so a
 *   guest write during the copy dirties them again; the job finishes only
 *   with the bitmap clean, no copy and no guest write in flight, and the
 *   target flushed.
 * Ownership: the filter node owns the bitmap and the copy state (it
 *   outlives the job); the job's driver state points at it.
 * Async contract: as node.h and job.h.
 * Depends on: node, job.
 */
#ifndef BLOCKSIM_MIRROR_H
#define BLOCKSIM_MIRROR_H

#include "job.h"
#include "node.h"

#define MIRROR_GRANULARITY_DEFAULT (64u * 1024)
#define MIRROR_BUF_DEFAULT (16u << 20)
#define MIRROR_OPS_MAX 16

enum mirror_sync { MIRROR_SYNC_FULL, MIRROR_SYNC_TOP };

struct mirror_opts {
    struct node *source;   /* the node the filter goes above */
    struct node *target;
    struct node **front;   /* where the guest submits: the filter while the job
                            * runs; the target after a pivot, else the source */
    enum mirror_sync sync;
    uint64_t granularity;  /* 0: 64 KiB (a target without cluster information) */
    uint64_t buf_size;     /* 0: 16 MiB */
    bool write_blocking;
    enum job_policy on_source_error, on_target_error;
    enum job_type type;    /* JOB_TYPE_MIRROR, or JOB_TYPE_COMMIT (active commit) */
    /* sync=top: copy what the layers from the source down to this one
     * (excluded, through backing links) allocate; NULL: the source's own. */
    struct node *base;
    struct job_opts job;
};

/* Create the filter and the job (status created; job_start runs it): 0 and
 * *out, or a negative errno with QEMU's message in @e. */
int mirror_create(struct job_list *l, struct graph *g, const char *id,
                  const struct mirror_opts *o, struct err *e, struct job **out) WUR;

/* Did job @j (a mirror, at or after its COMPLETED event) move the guest
 * onto its target? */
bool mirror_pivoted(const struct job *j);

extern const struct node_driver drv_mirror_top;

extern const struct planted_bug mirror_bugs[];
extern const size_t mirror_bugs_count;

#endif
