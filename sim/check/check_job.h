/*
 * check_job: the block jobs' checker: legal job states and events, and the
 *   backup's point-in-time contract.
 *
 * Role: every job event is checked against QEMU's state machine (spec
 *   10.2, 10.6): a status change only along the transition table, READY
 *   once and only in ready, COMPLETED or CANCELLED once and only in pending
 *   or aborting, BLOCK_JOB_ERROR only while the job works. A backup that
 *   completes must leave on its target, for every sector it had to copy,
 *   exactly what the source held when the job started; a sync=none backup
 *   (which copies only what the guest overwrites) must hold the old data of
 *   every sector the guest wrote while it ran, whenever it ends.
 * Model: the source's bytes at the job's start (hashes and content tags
 *   per sector), taken by the world after it drained the guest, as QEMU
 *   starts a job inside a drained section.
 * Invariants: the first violation is kept; a mismatch on a sector that an
 *   injected fault touched (on the target, or on the source) is explained.
 * Ownership: the checker owns its snapshots.
 * Async contract: none.
 * Depends on: check_rw (violations), content, ref/job (names, table).
 */
#ifndef BLOCKSIM_CHECK_JOB_H
#define BLOCKSIM_CHECK_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "../../ref/job.h"
#include "check_rw.h"

#define CJ_JOBS_MAX 16

struct cj_job {
    char id[JOB_ID_MAX];
    unsigned line;           /* the record that created it */
    enum job_status status;  /* the last status reported */
    bool live;               /* between created and null */
    bool ready_sent, terminal_sent;
    bool backup;             /* a point-in-time snapshot is kept */
    enum job_type type;
    bool converges;          /* a mirror or active commit (READY, soft cancel) */
    bool cancel_soft;        /* a cancel without force in READY: expect COMPLETED */
    bool cancel_forced;      /* a forced cancel (or one before READY): expect CANCELLED */
    bool none;               /* sync=none: only guest-written sectors count */
    bool fleece;             /* the target's view is judged whole, at any end */
    uint64_t n_sectors;
    uint64_t *want_hash;     /* per sector: the source at the start */
    uint64_t *want_tag;
    uint8_t *in_set;         /* per sector: the backup must copy it */
};

/* Was the wrong value at @sector (of the target) touched by a fault? */
typedef bool check_job_taint_fn(void *opaque, uint64_t sector);

struct check_job {
    uint64_t seed;           /* content seed (names writes in messages) */
    struct cj_job jobs[CJ_JOBS_MAX];
    unsigned n;              /* slots used (a dismissed job's slot is reused) */
    bool failed;
    struct violation first;
    uint64_t events;
    uint64_t sectors_checked;
    uint64_t explained;
};

void check_job_init(struct check_job *c, uint64_t seed);
void check_job_fini(struct check_job *c);

/* A job event, in order. */
void check_job_event(struct check_job *c, const struct job_event *ev, unsigned line,
                     uint64_t now_ns);

/* Backup @id starts over @sectors sectors (@none: sync=none; @fleece: its
 * target is an overlay over the source, whose view must be the source at
 * the start everywhere, whenever the job ends); then check_job_backup_snap
 * tells it, a chunk at a time, what the source held from sector @first
 * (@len bytes of @src) and, with @in_set (one byte a sector of the chunk,
 * or NULL for every one), what it must copy. */
void check_job_backup_start(struct check_job *c, const char *id, uint64_t sectors, bool none,
                            bool fleece);
void check_job_backup_snap(struct check_job *c, const char *id, uint64_t first,
                           const uint8_t *src, uint64_t len, const uint8_t *in_set);

/* The guest wrote sectors [sector, sector + n) (a sync=none backup must
 * have copied their old data first). */
void check_job_guest_wrote(struct check_job *c, uint64_t sector, uint64_t n);

/* Backup @id ended: compare its target from sector @first (@tgt, @len
 * bytes: a chunk) with the snapshot. Returns false on a violation (kept in
 * c->first). */
bool check_job_backup_verify(struct check_job *c, const char *id, uint64_t first,
                             const uint8_t *tgt, uint64_t len, check_job_taint_fn *taint,
                             void *opaque, unsigned line, uint64_t now_ns);

/* A cancel of @id was accepted in status @at: a mirror's (or active
 * commit's) cancel without force in READY (or STANDBY, once resumed) must
 * end COMPLETED without a pivot; any other cancel, CANCELLED (spec 10.4). */
void check_job_cancelled(struct check_job *c, const char *id, bool force, enum job_status at);

/* Mirror @id ended in step (COMPLETED, no error): from sector @first, @tgt
 * must equal @src (both @len bytes: a chunk) sector by sector, after a
 * complete (@pivoted) or a soft cancel. Returns false on a violation. */
bool check_job_mirror_verify(struct check_job *c, const char *id, uint64_t first,
                             const uint8_t *src, const uint8_t *tgt, uint64_t len,
                             bool pivoted, check_job_taint_fn *taint, void *opaque,
                             unsigned line, uint64_t now_ns);

/* Backup @id failed under bitmap-mode=always: from sector @first (@tgt,
 * @len bytes of its target: a chunk), mark per @cluster of the disk the
 * clusters of its copy set in @may, and in @must those whose target
 * differs from the source at the start (the job certainly did not copy
 * them). */
void check_job_backup_uncopied(const struct check_job *c, const char *id, uint64_t first,
                               const uint8_t *tgt, uint64_t len, uint64_t cluster,
                               uint8_t *must, uint8_t *may);

/* The live backup @id with a snapshot, or NULL. */
const struct cj_job *check_job_find(const struct check_job *c, const char *id);

json_t *check_job_json(const struct check_job *c);
void check_job_check(const struct check_job *c);

#endif
