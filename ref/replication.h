/*
 * replication: QEMU's block replication filter for COLO (spec §1), modes
 * primary and secondary, and its four operations.
 *
 * Role: on the primary it sits between the quorum and the NBD client and
 *   forwards the guest's writes, keeping any forwarding error to itself
 *   (get_error tells it); on the secondary it sits above the active disk
 *   (active -> hidden -> secondary disk), runs the backup job sync=none
 *   from the secondary disk into the hidden disk (copy-before-write for
 *   the primary's writes that the NBD server lands on the secondary disk),
 *   empties active and hidden at each checkpoint, and at failover commits
 *   both into the secondary disk (an active commit) and moves onto it.
 * Model: QEMU's block/replication.c and replication.c, as spec §1.3 and
 *   §1.4 state them (stages, routing table, messages); the seed-era
 *   variants v12 and v4 behave as spec §1.3/1.4 describe them.
 * Invariants: stage changes only along NONE -> RUNNING -> (FAILOVER ->
 *   (DONE | FAILOVER_FAILED)) | DONE (asserted); a primary node never
 *   returns a forwarding error (it keeps it in `error`); start, checkpoint
 *   and stop after promotion (DONE, FAILOVER) are no-ops.
 * Ownership: the node owns its state; the jobs belong to the job list the
 *   caller gave (one per host); the other nodes to the graph.
 * Async contract: start, do_checkpoint and stop complete through @cb,
 *   posted on the timer, never inline; each runs with the guest drained
 *   (COLO stops the VM), as QEMU's callers hold the VM stopped. At most one
 *   operation runs at a time per node (asserted). The host's job list
 *   sends its events to replication_job_event.
 * Depends on: node, job, backup, mirror, drv_overlay.
 */
#ifndef BLOCKSIM_REPLICATION_H
#define BLOCKSIM_REPLICATION_H

#include "job.h"
#include "node.h"

enum repl_mode { REPL_MODE_PRIMARY, REPL_MODE_SECONDARY };
enum repl_stage { REPL_STAGE_NONE, REPL_STAGE_RUNNING, REPL_STAGE_FAILOVER,
                  REPL_STAGE_FAILOVER_FAILED, REPL_STAGE_DONE, REPL_STAGE__COUNT };
/* modern: merged QEMU; v12 (Dec 2015): no commit at failover, DONE routes
 * like FAILOVER_FAILED, checkpoint refused when not running or after an
 * error; v4 (May 2015): as v12, and its non-failover stop empties active
 * and hidden before cancelling the job. */
enum repl_variant { REPL_VARIANT_MODERN, REPL_VARIANT_V12, REPL_VARIANT_V4 };

/* Job ids of the internal jobs (QEMU's are anonymous). */
#define REPL_BACKUP_JOB "colo-backup"
#define REPL_COMMIT_JOB "colo-commit"

struct drv_replication_opts {
    enum repl_mode mode;
    enum repl_variant variant;
    struct node *file;      /* primary: the NBD client; secondary: the active disk */
    /* Secondary only. */
    struct node *hidden;    /* the active disk's backing (an overlay) */
    struct node *backup_target; /* where the backup's copies go: hidden, or a
                                 * pass-through above it (NULL: hidden) */
    struct node *secondary; /* the hidden disk's backing: the secondary disk */
    struct node **export_front; /* where the NBD server's writes enter: the
                                 * backup's filter while it runs */
    struct job_list *jobs;  /* the host's jobs */
    uint64_t backup_cluster; /* 0: 64 KiB */
};

extern const struct node_driver drv_replication;

/* An operation's end: 0, or a negative errno with QEMU's message in @e. */
typedef void repl_cb(void *opaque, int ret, const struct err *e);

void replication_start(struct node *n, repl_cb *cb, void *opaque);
void replication_do_checkpoint(struct node *n, repl_cb *cb, void *opaque);
/* 0, or -EIO with "Block replication is not running" / "I/O error occurred". */
int replication_get_error(const struct node *n, struct err *e) WUR;
/* With @failover on a secondary: completes once the commit ended. */
void replication_stop(struct node *n, bool failover, repl_cb *cb, void *opaque);

enum repl_stage replication_stage(const struct node *n);
/* The error field (0 or a negative errno). */
int replication_error(const struct node *n);
/* The host dies (call before its job list and graph go): the operation in
 * progress ends with BS_ECRASHED, the jobs are forgotten. */
void replication_kill(struct node *n);
/* The host's job list's events (every job's; the node picks its own). */
void replication_job_event(struct node *n, const struct job_event *ev);

const char *repl_stage_name(enum repl_stage s);
bool repl_stage_transition_ok(enum repl_stage from, enum repl_stage to);

extern const struct planted_bug replication_bugs[];
extern const size_t replication_bugs_count;

#endif
