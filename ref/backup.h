/*
 * backup: the backup job and its copy-before-write filter (cbw).
 *
 * Role: a backup puts a cbw filter above its source node (the guest then
 *   writes through it) and copies the source to a target node as it was
 *   when the job started: before a guest write touches a cluster not yet
 *   copied, the filter copies that cluster; the job copies the rest in the
 *   background (sync=full every cluster; sync=top only clusters the source
 *   layer allocates; sync=none none: only what the guest overwrites, the
 *   COLO hidden-disk and image-fleecing mode, running until cancelled).
 * Model: spec sections 4.1-4.5 and 10 (QEMU's block/backup.c,
 *   block/block-copy.c, block/copy-before-write.c). One cluster a copy, one
 *   background copy at a time; a zero range (source block status) is
 *   written as write-zeroes; a guest write whose copy fails fails with the
 *   copy's error (on-cbw-error=break-guest-write, the default). With a
 *   bitmap (sync=bitmap or incremental, or full/top with bitmap=): the copy
 *   set of sync=bitmap is its dirty clusters; a successor freezes it at the
 *   start; at the end it is abdicated (success with on-success, or always)
 *   or reclaimed (failure with on-success, or never); a failure under
 *   always merges in the clusters not copied. Not modelled yet: fleecing
 *   reads of the target through its backing, x-perf parallelism.
 * Invariants: a cluster is copied at most once; a guest write never reaches
 *   the source over a cluster that is in the copy set and not copied; a
 *   guest write waits for a copy of its cluster that is in flight.
 * Ownership: the filter node owns the copy state (it outlives the job:
 *   guest requests may still be in flight when the job ends); the job's
 *   driver state points at it.
 * Async contract: as node.h and job.h.
 * Depends on: node, job.
 */
#ifndef BLOCKSIM_BACKUP_H
#define BLOCKSIM_BACKUP_H

#include "dirty.h"
#include "job.h"
#include "node.h"

#define BACKUP_CLUSTER_DEFAULT (64u * 1024)

enum backup_sync { BACKUP_SYNC_FULL, BACKUP_SYNC_TOP, BACKUP_SYNC_NONE,
                   BACKUP_SYNC_INCREMENTAL, BACKUP_SYNC_BITMAP };
enum backup_bitmap_mode { BACKUP_BMODE_ON_SUCCESS, BACKUP_BMODE_NEVER, BACKUP_BMODE_ALWAYS };

struct backup_opts {
    struct node *source;   /* the node the filter goes above */
    struct node *target;
    struct node **front;   /* where the guest submits: the filter while the job
                            * runs, the source again when it ends */
    enum backup_sync sync;
    uint64_t cluster;      /* 0: 64 KiB (spec 4.2) */
    enum job_policy on_source_error, on_target_error;
    struct job_opts job;
    /* Incremental backup: the source's dirty bitmaps, the one named (NULL:
     * none) and what happens to it at the end (has_bitmap_mode: given). */
    struct dirty_set *dirty;
    const char *bitmap;
    enum backup_bitmap_mode bitmap_mode;
    bool has_bitmap_mode;
};

/* Create the filter and the job (status created; job_start runs it): 0 and
 * *out, or a negative errno with QEMU's message in @e. */
int backup_create(struct job_list *l, struct graph *g, const char *id,
                  const struct backup_opts *o, struct err *e, struct job **out) WUR;

/* Replication's checkpoint (QEMU's backup_do_checkpoint): every cluster
 * becomes eligible for copy-before-write again. Only for sync=none: else
 * -EINVAL with QEMU's message. Runs with no write in flight (asserted). */
int backup_do_checkpoint(struct job *j, struct err *e) WUR;

extern const struct node_driver drv_cbw;

/* This module's planted bugs (sim/trace/mutant gathers them). */
extern const struct planted_bug backup_bugs[];
extern const size_t backup_bugs_count;

#endif
