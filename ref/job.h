/*
 * job: the block job core, QEMU's job state machine, verbs and events
 *   (backup, mirror and commit are drivers on top of it).
 *
 * Role: owns a job's status, pause counter, cancel and completion requests,
 *   error policy and rate limit, and runs its lifecycle: created, running
 *   (ready, for jobs that converge), then the success path (waiting,
 *   pending, finalize, concluded) or the abort path (aborting, concluded),
 *   and null when dismissed. A verb in the wrong state is refused with
 *   QEMU's message; every status change and job event is reported through
 *   the list's callback, in QEMU's order.
 * Model: ../shared/spec/qemu-semantics.md section 10 (checked against QEMU
 *   7.2: job.c, job-qmp.c, blockjob.c, blockdev.c, ratelimit.h). A lone job
 *   is its own transaction; grouped transactions are not modelled. Drained
 *   sections are not modelled, so the paused/running pair QEMU reports
 *   right after a blockdev-backup starts does not appear here.
 * Invariants: only the transitions of the spec's table happen (asserted);
 *   the pause counter is never negative; the driver runs only while the job
 *   is busy; a job is freed only at null, after its last timer fired.
 * Ownership: the list owns its jobs; a job owns its driver state.
 * Async contract: the driver's work is a chain of callbacks. The core
 *   enters it (driver->run, always from a posted event, never from inside a
 *   verb); the driver issues its I/O and, with nothing in flight, hands
 *   control back with job_yield, job_sleep or job_work_done. That hand-back
 *   is the pause point: a pause, a forced cancel or a kick takes effect
 *   there.
 * Depends on: env (timer), base.
 */
#ifndef BLOCKSIM_JOB_H
#define BLOCKSIM_JOB_H

#include <stdbool.h>
#include <stdint.h>

#include "base.h"
#include "env.h"

struct node;

#define JOB_ID_MAX 32
#define JOB_SLICE_NS 100000000ull /* BLOCK_JOB_SLICE_TIME: 100 ms */

enum job_type { JOB_TYPE_BACKUP, JOB_TYPE_MIRROR, JOB_TYPE_COMMIT, JOB_TYPE__COUNT };

enum job_status {
    JOB_STATUS_UNDEFINED,
    JOB_STATUS_CREATED,
    JOB_STATUS_RUNNING,
    JOB_STATUS_PAUSED,
    JOB_STATUS_READY,
    JOB_STATUS_STANDBY,
    JOB_STATUS_WAITING,
    JOB_STATUS_PENDING,
    JOB_STATUS_ABORTING,
    JOB_STATUS_CONCLUDED,
    JOB_STATUS_NULL,
    JOB_STATUS__COUNT,
};

enum job_verb {
    JOB_VERB_CANCEL,
    JOB_VERB_PAUSE,
    JOB_VERB_RESUME,
    JOB_VERB_SET_SPEED,
    JOB_VERB_COMPLETE,
    JOB_VERB_FINALIZE,
    JOB_VERB_DISMISS,
    JOB_VERB__COUNT,
};

/* BlockdevOnError, and the action a failure resolves to. */
enum job_policy { JOB_ON_ERR_REPORT, JOB_ON_ERR_IGNORE, JOB_ON_ERR_STOP, JOB_ON_ERR_ENOSPC,
                  JOB_ON_ERR_AUTO, JOB_ON_ERR__COUNT };
enum job_action { JOB_ACTION_REPORT, JOB_ACTION_IGNORE, JOB_ACTION_STOP };
enum job_io_status { JOB_IO_OK, JOB_IO_FAILED, JOB_IO_NOSPACE };

enum job_event_kind {
    JOB_EV_STATUS_CHANGE, /* JOB_STATUS_CHANGE: id, status */
    JOB_EV_READY,         /* BLOCK_JOB_READY */
    JOB_EV_PENDING,       /* BLOCK_JOB_PENDING (only with auto-finalize=off) */
    JOB_EV_COMPLETED,     /* BLOCK_JOB_COMPLETED, error set when it failed */
    JOB_EV_CANCELLED,     /* BLOCK_JOB_CANCELLED */
    JOB_EV_ERROR,         /* BLOCK_JOB_ERROR: operation and action */
    JOB_EV__COUNT,
};

struct job_event {
    enum job_event_kind kind;
    const char *id;
    enum job_type type;
    enum job_status status; /* STATUS_CHANGE */
    uint64_t len, offset, speed;
    const char *error;      /* COMPLETED of a failed job, else NULL */
    bool read;              /* ERROR: the operation was a read (else a write) */
    enum job_action action; /* ERROR */
};

struct job;

/* What a job type does; every hook but run is optional. */
struct job_driver {
    enum job_type type;
    /* Do work: the job is busy. Issue I/O, then with nothing in flight call
     * job_yield, job_sleep or job_work_done. */
    void (*run)(struct job *j);
    /* Success path, at finalize: prepare may fail (the job then aborts);
     * commit follows on success, abort on failure; clean after either. */
    int (*prepare)(struct job *j);
    void (*commit)(struct job *j);
    void (*abort)(struct job *j);
    void (*clean)(struct job *j);
    /* A cancel request: returns whether it is forced (NULL: always). */
    bool (*cancel)(struct job *j, bool force);
    /* A complete request in ready or standby (NULL: the job cannot be
     * completed). */
    void (*complete)(struct job *j);
    /* Does the driver still have I/O in flight? A forced cancel waits at
     * the pause point until it has none (the driver kicks the job as its
     * I/O ends), as QEMU's jobs wait for their requests before they exit
     * (optional: never). */
    bool (*busy)(const struct job *j);
    /* The job stops at, and leaves, a pause point. */
    void (*pause)(struct job *j);
    void (*resume)(struct job *j);
    void (*free)(struct job *j); /* the driver state, at null */
};

typedef void job_event_fn(void *opaque, const struct job_event *ev);

/* The jobs of one host, with unique ids. */
struct job_list {
    struct env_timer timer;
    job_event_fn *on_event;
    void *opaque;
    struct job *head;
    uint64_t mutants; /* planted bugs (NODE_MUTANT_*) */
};

#define JOB_HOLD_MAX 3

struct job_opts {
    /* The nodes the job op-blocks until it is gone (its source, target,
     * filter; NULL: none): no other job may use them meanwhile. */
    struct node *hold[JOB_HOLD_MAX];
    bool auto_finalize; /* default true */
    bool auto_dismiss;  /* default true */
    int64_t speed;      /* bytes/s, 0: unlimited; negative is refused */
};

enum job_wait { JOB_WAIT_NONE, JOB_WAIT_SLEEP, JOB_WAIT_YIELD, JOB_WAIT_PAUSED };

struct job {
    struct job_list *list;
    struct job *next;
    char id[JOB_ID_MAX];
    const struct job_driver *drv;
    void *drv_state;
    enum job_status status;
    unsigned pause_count;
    bool user_paused;
    bool busy;            /* the driver is running (between entry and hand-back) */
    enum job_wait wait;   /* how it waits while not busy */
    bool started;
    bool cancelled;       /* a cancel was requested */
    bool force_cancel;
    bool work_done;       /* past the work: waiting, pending or later */
    bool auto_finalize, auto_dismiss;
    int ret;              /* the work's result (then finalize's) */
    char error[128];      /* COMPLETED's error text */
    enum job_io_status io_status;
    uint64_t offset, len; /* progress */
    uint64_t speed;
    uint64_t slice_start_ns, slice_end_ns, slice_quota, dispatched; /* rate limit */
    uint64_t timer_gen;   /* a posted timer with an older generation is stale */
    unsigned timers;      /* posted and not fired yet */
    bool dead;            /* at null: freed when its last timer fires */
    struct node *hold[JOB_HOLD_MAX]; /* op-blocked while the job exists */
};

void job_list_init(struct job_list *l, struct env_timer timer, job_event_fn *on_event,
                   void *opaque);
/* Every job must be at null (dismissed) or be dropped here (the host died). */
void job_list_fini(struct job_list *l);
struct job *job_find(const struct job_list *l, const char *id);

/* A new job in status created; 0 and *out, or an error with QEMU's
 * message: "Invalid job ID 'ID'", "Job ID 'ID' already in use",
 * "Parameter 'speed' expects a non-negative value" (the job is then created
 * and at once destroyed: events created, null). */
int job_create(struct job_list *l, const char *id, const struct job_driver *drv,
               void *drv_state, const struct job_opts *o, struct err *e, struct job **out) WUR;
void job_start(struct job *j);

/* QEMU's op blockers: 0 when no job of @l holds any of the @n @nodes, else
 * -EBUSY with "Node 'NAME' is busy: block device is in use by block job:
 * TYPE" [mem]. Job drivers call it before they build anything. */
int job_nodes_free(const struct job_list *l, struct node *const *nodes, unsigned n,
                   struct err *e) WUR;

/* ---- for drivers ---- */
/* Hand control back with nothing in flight: enter me again at once (after
 * any pause), or after @ns (a rate-limit sleep; a kick ends it early). */
void job_yield(struct job *j);
void job_sleep(struct job *j, uint64_t ns);
/* Wait until job_kick (mirror in ready waits for new dirty data). */
void job_wait(struct job *j);
void job_kick(struct job *j);
/* The work ended with @ret (negative errno: the job fails). */
void job_work_done(struct job *j, int ret);
/* The work converged: running -> ready, BLOCK_JOB_READY. */
void job_ready(struct job *j);
/* A job I/O failed with @ret: BLOCK_JOB_ERROR, io-status, and the action
 * (stop pauses the job at its next pause point; retry after resume). */
enum job_action job_error(struct job *j, enum job_policy p, bool read, int ret);
/* Bytes about to be issued: how long to sleep first (0: go on). */
uint64_t job_ratelimit(struct job *j, uint64_t bytes);
/* A job's filter leaves the guest's path: if the guest still submits to
 * @filter (through *@front), it submits to @below again. */
void job_filter_drop(struct node **front, struct node *filter, struct node *below);
/* A soft cancel (mirror in ready) asks the driver to finish without pivot. */
bool job_cancel_requested(const struct job *j);
bool job_force_cancelled(const struct job *j);

/* ---- verbs: 0, or a negative errno with QEMU's message in @e ---- */
int job_user_pause(struct job *j, struct err *e) WUR;
int job_user_resume(struct job *j, struct err *e) WUR;
/* @force: job-cancel is always forced; block-job-cancel's force defaults to
 * false and (@blockjob) refuses a user-paused job. */
int job_cancel(struct job *j, bool force, bool blockjob, struct err *e) WUR;
int job_complete(struct job *j, struct err *e) WUR;
int job_finalize(struct job *j, struct err *e) WUR;
int job_dismiss(struct job *j, struct err *e) WUR;
int job_set_speed(struct job *j, int64_t speed, struct err *e) WUR;

const char *job_status_name(enum job_status s);
const char *job_type_name(enum job_type t);
const char *job_verb_name(enum job_verb v);
const char *job_event_name(enum job_event_kind k);
const char *job_action_name(enum job_action a);
const char *job_io_status_name(enum job_io_status s);
/* Parse a policy name ("report", "ignore", "stop", "enospc", "auto"). */
int job_policy_parse(const char *s, size_t len, enum job_policy *out) WUR;
/* Is @to a legal next status after @from (the spec's table)? */
bool job_transition_ok(enum job_status from, enum job_status to);
bool job_verb_ok(enum job_status s, enum job_verb v);

void job_check(const struct job *j);

/* This module's planted bugs (sim/trace/mutant gathers them). */
extern const struct planted_bug job_bugs[];
extern const size_t job_bugs_count;

#endif
