/*
 * job: see job.h.
 *
 * Method: the status moves only through set_status, which asserts the
 *   spec's transition table; verbs check the verb table first and refuse
 *   with QEMU's text. The driver's callbacks hand control back at a pause
 *   point (job_yield, job_sleep, job_wait); the core resumes it from a
 *   posted wake-up that carries a generation, so a kick or a cancel makes
 *   an older timer stale instead of having to unpost it.
 */
#include "job.h"
#include "node.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define S(x) (1u << JOB_STATUS_##x)

/* Allowed next statuses (spec 10.2). */
static const unsigned next_ok[JOB_STATUS__COUNT] = {
    [JOB_STATUS_UNDEFINED] = S(CREATED),
    [JOB_STATUS_CREATED] = S(RUNNING) | S(ABORTING) | S(NULL),
    [JOB_STATUS_RUNNING] = S(PAUSED) | S(READY) | S(WAITING) | S(ABORTING),
    [JOB_STATUS_PAUSED] = S(RUNNING),
    [JOB_STATUS_READY] = S(STANDBY) | S(WAITING) | S(ABORTING),
    [JOB_STATUS_STANDBY] = S(READY),
    [JOB_STATUS_WAITING] = S(PENDING) | S(ABORTING),
    [JOB_STATUS_PENDING] = S(CONCLUDED) | S(ABORTING),
    [JOB_STATUS_ABORTING] = S(CONCLUDED),
    [JOB_STATUS_CONCLUDED] = S(NULL),
    [JOB_STATUS_NULL] = 0,
};

/* The statuses each verb is accepted in (spec 10.3, QEMU 7.2). */
static const unsigned verb_ok[JOB_VERB__COUNT] = {
    [JOB_VERB_CANCEL] = S(CREATED) | S(RUNNING) | S(PAUSED) | S(READY) | S(STANDBY) |
                        S(WAITING) | S(PENDING),
    [JOB_VERB_PAUSE] = S(CREATED) | S(RUNNING) | S(PAUSED) | S(READY) | S(STANDBY),
    [JOB_VERB_RESUME] = S(CREATED) | S(RUNNING) | S(PAUSED) | S(READY) | S(STANDBY),
    [JOB_VERB_SET_SPEED] = S(CREATED) | S(RUNNING) | S(PAUSED) | S(READY) | S(STANDBY),
    [JOB_VERB_COMPLETE] = S(READY) | S(STANDBY),
    [JOB_VERB_FINALIZE] = S(PENDING),
    [JOB_VERB_DISMISS] = S(CONCLUDED),
};

static const char *const status_names[JOB_STATUS__COUNT] = {
    "undefined", "created", "running", "paused",    "ready", "standby",
    "waiting",   "pending", "aborting", "concluded", "null",
};
static const char *const type_names[JOB_TYPE__COUNT] = { "backup", "mirror", "commit" };
static const char *const verb_names[JOB_VERB__COUNT] = {
    "cancel", "pause", "resume", "set-speed", "complete", "finalize", "dismiss",
};
static const char *const event_names[JOB_EV__COUNT] = {
    "JOB_STATUS_CHANGE",   "BLOCK_JOB_READY",     "BLOCK_JOB_PENDING",
    "BLOCK_JOB_COMPLETED", "BLOCK_JOB_CANCELLED", "BLOCK_JOB_ERROR",
};
static const char *const action_names[] = { "report", "ignore", "stop" };
static const char *const io_status_names[] = { "ok", "failed", "nospace" };
static const char *const policy_names[JOB_ON_ERR__COUNT] = {
    "report", "ignore", "stop", "enospc", "auto",
};

const char *job_status_name(enum job_status s)
{
    ASSERT(s < JOB_STATUS__COUNT);
    return status_names[s];
}

const char *job_type_name(enum job_type t)
{
    ASSERT(t < JOB_TYPE__COUNT);
    return type_names[t];
}

const char *job_verb_name(enum job_verb v)
{
    ASSERT(v < JOB_VERB__COUNT);
    return verb_names[v];
}

const char *job_event_name(enum job_event_kind k)
{
    ASSERT(k < JOB_EV__COUNT);
    return event_names[k];
}

const char *job_action_name(enum job_action a)
{
    ASSERT((size_t)a < ARRAY_LEN(action_names));
    return action_names[a];
}

const char *job_io_status_name(enum job_io_status s)
{
    ASSERT((size_t)s < ARRAY_LEN(io_status_names));
    return io_status_names[s];
}

int job_policy_parse(const char *s, size_t len, enum job_policy *out)
{
    for (unsigned i = 0; i < JOB_ON_ERR__COUNT; i++) {
        if (strlen(policy_names[i]) == len && memcmp(s, policy_names[i], len) == 0) {
            *out = (enum job_policy)i;
            return 0;
        }
    }
    return -EINVAL;
}

bool job_transition_ok(enum job_status from, enum job_status to)
{
    ASSERT(from < JOB_STATUS__COUNT && to < JOB_STATUS__COUNT);
    return (next_ok[from] >> to) & 1;
}

bool job_verb_ok(enum job_status s, enum job_verb v)
{
    ASSERT(s < JOB_STATUS__COUNT && v < JOB_VERB__COUNT);
    return (verb_ok[v] >> s) & 1;
}

/* ---- events and status ---- */

static void emit(const struct job *j, enum job_event_kind kind, const struct job_event *more)
{
    struct job_event ev = more ? *more : (struct job_event){ 0 };
    ev.kind = kind;
    ev.id = j->id;
    ev.type = j->drv->type;
    ev.status = j->status;
    ev.len = j->len;
    ev.offset = j->offset;
    ev.speed = j->speed;
    if (j->list->on_event) {
        j->list->on_event(j->list->opaque, &ev);
    }
}

static void set_status(struct job *j, enum job_status s)
{
    if (j->status == s && s == JOB_STATUS_ABORTING) {
        return; /* aborting -> aborting: a silent no-op */
    }
    ASSERT(job_transition_ok(j->status, s));
    j->status = s;
    emit(j, JOB_EV_STATUS_CHANGE, NULL);
}

static int verb_check(const struct job *j, enum job_verb v, struct err *e)
{
    if (job_verb_ok(j->status, v)) {
        return 0;
    }
    err_set(e, 0, 0, "Job '%s' in state '%s' cannot accept command verb '%s'", j->id,
            job_status_name(j->status), job_verb_name(v));
    return -EPERM;
}

/* ---- lifetime ---- */

void job_list_init(struct job_list *l, struct env_timer timer, job_event_fn *on_event,
                   void *opaque)
{
    memset(l, 0, sizeof(*l));
    l->timer = timer;
    l->on_event = on_event;
    l->opaque = opaque;
}

struct job *job_find(const struct job_list *l, const char *id)
{
    for (struct job *j = l->head; j; j = j->next) {
        if (strcmp(j->id, id) == 0) {
            return j;
        }
    }
    return NULL;
}

static void job_free(struct job *j)
{
    ASSERT(j->dead && j->timers == 0);
    mem_free(j, sizeof(*j));
}

static void unlink_job(struct job *j)
{
    struct job **p = &j->list->head;
    while (*p != j) {
        ASSERT(*p != NULL);
        p = &(*p)->next;
    }
    *p = j->next;
    j->next = NULL;
    if (j->drv->free) {
        j->drv->free(j);
    }
    j->dead = true;
    if (j->timers == 0) {
        job_free(j);
    }
}

/* Concluded -> null: the job disappears from its list. */
static void to_null(struct job *j)
{
    set_status(j, JOB_STATUS_NULL);
    unlink_job(j);
}

void job_list_fini(struct job_list *l)
{
    while (l->head) { /* the host died with its jobs: no events, no hooks */
        struct job *j = l->head;
        j->timer_gen++; /* its posted wake-ups are stale */
        l->head = j->next;
        j->next = NULL;
        if (j->drv->free) {
            j->drv->free(j);
        }
        j->dead = true;
        if (j->timers == 0) {
            job_free(j);
        }
    }
}

/* QEMU's id_wellformed: a letter, then letters, digits, '-', '.', '_'. */
static bool id_ok(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n >= JOB_ID_MAX || !((id[0] >= 'a' && id[0] <= 'z') ||
                                       (id[0] >= 'A' && id[0] <= 'Z'))) {
        return false;
    }
    for (size_t i = 1; i < n; i++) {
        char c = id[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '.' || c == '_';
        if (!ok) {
            return false;
        }
    }
    return true;
}

static void speed_apply(struct job *j, uint64_t speed)
{
    j->speed = speed;
    uint64_t quota = speed / (1000000000ull / JOB_SLICE_NS);
    j->slice_quota = quota ? quota : 1;
}

int job_create(struct job_list *l, const char *id, const struct job_driver *drv,
               void *drv_state, const struct job_opts *o, struct err *e, struct job **out)
{
    ASSERT(drv != NULL && drv->run != NULL);
    if (!id_ok(id)) {
        return err_set(e, 0, 0, "Invalid job ID '%s'", id), -EINVAL;
    }
    if (job_find(l, id)) {
        return err_set(e, 0, 0, "Job ID '%s' already in use", id), -EEXIST;
    }
    struct job *j = mem_alloc(sizeof(*j));
    j->list = l;
    snprintf(j->id, sizeof(j->id), "%s", id);
    j->drv = drv;
    j->drv_state = drv_state;
    j->auto_finalize = o->auto_finalize;
    j->auto_dismiss = o->auto_dismiss;
    memcpy(j->hold, o->hold, sizeof(j->hold));
    j->pause_count = 1; /* until started */
    j->next = l->head;
    l->head = j;
    set_status(j, JOB_STATUS_CREATED);
    if (o->speed < 0) { /* QEMU creates the job, then destroys it at once */
        err_set(e, 0, 0, "Parameter 'speed' expects a non-negative value");
        to_null(j);
        return -EINVAL;
    }
    speed_apply(j, (uint64_t)o->speed);
    *out = j;
    return 0;
}

int job_nodes_free(const struct job_list *l, struct node *const *nodes, unsigned n,
                   struct err *e)
{
    for (const struct job *j = l->head; j; j = j->next) {
        for (unsigned h = 0; h < JOB_HOLD_MAX && j->hold[h]; h++) {
            for (unsigned k = 0; k < n; k++) {
                if (nodes[k] == j->hold[h]) {
                    return err_set(e, 0, 0, "Node '%s' is busy: block device is in use by "
                                   "block job: %s", nodes[k]->name,
                                   job_type_name(j->drv->type)), -EBUSY;
                }
            }
        }
    }
    return 0;
}

/* ---- running: wake-ups and pause points ---- */

struct wake {
    struct job *j;
    uint64_t gen;
};

static void wake(struct job *j);

static void wake_fired(void *opaque)
{
    struct wake *w = opaque;
    struct job *j = w->j;
    bool live = w->gen == j->timer_gen;
    mem_free(w, sizeof(*w));
    j->timers--;
    if (j->dead) {
        if (j->timers == 0) {
            job_free(j);
        }
        return;
    }
    if (live) {
        wake(j);
    }
}

/* Wake the job after @ns; any earlier wake-up becomes stale. */
static void post_wake(struct job *j, uint64_t ns)
{
    struct wake *w = mem_alloc(sizeof(*w));
    w->j = j;
    w->gen = ++j->timer_gen;
    j->timers++;
    env_post(&j->list->timer, ns, wake_fired, w);
}

static void success_path(struct job *j);
static void abort_path(struct job *j);

static void work_end(struct job *j, int ret)
{
    j->busy = false;
    j->wait = JOB_WAIT_NONE;
    j->work_done = true;
    j->timer_gen++; /* nothing more to wake */
    if (ret == 0 && j->force_cancel) {
        ret = -ECANCELED;
    }
    j->ret = ret;
    if (ret < 0) {
        abort_path(j);
    } else {
        success_path(j);
    }
}

/* The job, not busy, passes a pause point: a forced cancel ends it, a
 * pending pause stops it, else the driver runs. */
static void pause_point(struct job *j)
{
    if (j->force_cancel && j->drv->busy && j->drv->busy(j)) {
        j->wait = JOB_WAIT_YIELD; /* its I/O ends first; the driver kicks it then */
        return;
    }
    if (j->force_cancel) {
        work_end(j, -ECANCELED);
        return;
    }
    if (j->pause_count > 0) {
        set_status(j, j->status == JOB_STATUS_READY ? JOB_STATUS_STANDBY : JOB_STATUS_PAUSED);
        j->wait = JOB_WAIT_PAUSED;
        if (j->drv->pause) {
            j->drv->pause(j);
        }
        return;
    }
    j->wait = JOB_WAIT_NONE;
    j->busy = true;
    j->drv->run(j);
}

static void wake(struct job *j)
{
    ASSERT(!j->busy && !j->work_done);
    if (j->wait == JOB_WAIT_PAUSED) {
        if (j->pause_count > 0 && !j->force_cancel) {
            return; /* paused again before it woke */
        }
        bool was_standby = j->status == JOB_STATUS_STANDBY;
        set_status(j, was_standby ? JOB_STATUS_READY : JOB_STATUS_RUNNING);
        if (was_standby && (j->list->mutants & NODE_MUTANT_JOB_READY_RESENT)) {
            emit(j, JOB_EV_READY, NULL); /* planted bug: QEMU does not send it again */
        }
        if (j->drv->resume) {
            j->drv->resume(j);
        }
    }
    pause_point(j);
}

void job_start(struct job *j)
{
    ASSERT(j->status == JOB_STATUS_CREATED && !j->started);
    j->started = true;
    j->pause_count--;
    set_status(j, JOB_STATUS_RUNNING);
    j->wait = JOB_WAIT_YIELD;
    post_wake(j, 0);
}

void job_sleep(struct job *j, uint64_t ns)
{
    ASSERT(j->busy);
    j->busy = false;
    j->wait = JOB_WAIT_SLEEP;
    /* A pending pause or a forced cancel is taken at once. */
    post_wake(j, j->force_cancel || j->pause_count > 0 ? 0 : ns);
}

void job_yield(struct job *j)
{
    job_sleep(j, 0);
}

void job_wait(struct job *j)
{
    ASSERT(j->busy);
    j->busy = false;
    j->wait = JOB_WAIT_YIELD;
    if (j->force_cancel || j->pause_count > 0) {
        post_wake(j, 0);
    }
}

void job_kick(struct job *j)
{
    if (j->started && !j->busy && !j->work_done &&
        (j->wait == JOB_WAIT_SLEEP || j->wait == JOB_WAIT_YIELD)) {
        post_wake(j, 0);
    }
}

void job_work_done(struct job *j, int ret)
{
    ASSERT(j->busy);
    work_end(j, ret);
}

void job_ready(struct job *j)
{
    ASSERT(j->busy && j->status == JOB_STATUS_RUNNING);
    set_status(j, JOB_STATUS_READY);
    emit(j, JOB_EV_READY, NULL);
}

void job_filter_drop(struct node **front, struct node *filter, struct node *below)
{
    if (*front == filter) {
        *front = below;
    }
}

bool job_cancel_requested(const struct job *j)
{
    return j->cancelled;
}

bool job_force_cancelled(const struct job *j)
{
    return j->force_cancel;
}

/* ---- finishing ---- */

static void conclude(struct job *j)
{
    set_status(j, JOB_STATUS_CONCLUDED);
    if (j->auto_dismiss || !j->started) { /* a job that never ran goes at once */
        to_null(j);
    }
}

static void abort_path(struct job *j)
{
    if (j->ret == 0) {
        j->ret = -ECANCELED;
    }
    set_status(j, JOB_STATUS_ABORTING);
    if (j->drv->abort) {
        j->drv->abort(j);
    }
    if (j->drv->clean) {
        j->drv->clean(j);
    }
    if (j->force_cancel) {
        emit(j, JOB_EV_CANCELLED, NULL);
    } else {
        if (!j->error[0]) {
            snprintf(j->error, sizeof(j->error), "%s", blocksim_strerror(j->ret));
        }
        struct job_event more = { .error = j->error };
        emit(j, JOB_EV_COMPLETED, &more);
    }
    conclude(j);
}

static void finalize(struct job *j)
{
    int ret = j->drv->prepare ? j->drv->prepare(j) : 0;
    if (ret < 0) {
        j->ret = ret;
        abort_path(j);
        return;
    }
    if (j->drv->commit) {
        j->drv->commit(j);
    }
    if (j->drv->clean) {
        j->drv->clean(j);
    }
    emit(j, JOB_EV_COMPLETED, NULL);
    conclude(j);
}

/* A lone job is its own transaction: waiting, then pending at once. */
static void success_path(struct job *j)
{
    set_status(j, JOB_STATUS_WAITING);
    set_status(j, JOB_STATUS_PENDING);
    if (!j->auto_finalize) {
        emit(j, JOB_EV_PENDING, NULL);
        return; /* until job_finalize */
    }
    finalize(j);
}

/* ---- errors and rate ---- */

enum job_action job_error(struct job *j, enum job_policy p, bool read, int ret)
{
    ASSERT(ret < 0);
    enum job_action a;
    switch (p) {
    case JOB_ON_ERR_REPORT:
        a = JOB_ACTION_REPORT;
        break;
    case JOB_ON_ERR_IGNORE:
        a = JOB_ACTION_IGNORE;
        break;
    case JOB_ON_ERR_STOP:
        a = JOB_ACTION_STOP;
        break;
    default: /* enospc, auto: stop on ENOSPC only */
        a = ret == -ENOSPC ? JOB_ACTION_STOP : JOB_ACTION_REPORT;
        break;
    }
    struct job_event more = { .read = read, .action = a };
    emit(j, JOB_EV_ERROR, &more);
    if (a == JOB_ACTION_STOP) {
        if (!j->user_paused) { /* the user must resume it */
            j->pause_count++;
            j->user_paused = true;
        }
        if (j->io_status == JOB_IO_OK) {
            j->io_status = ret == -ENOSPC ? JOB_IO_NOSPACE : JOB_IO_FAILED;
        }
    }
    return a;
}

uint64_t job_ratelimit(struct job *j, uint64_t bytes)
{
    if (j->speed == 0) {
        return 0;
    }
    uint64_t now = env_now(&j->list->timer);
    if (j->slice_end_ns < now) { /* the (maybe stretched) slice is over */
        j->slice_start_ns = now;
        j->slice_end_ns = now + JOB_SLICE_NS;
        j->dispatched = 0;
    }
    j->dispatched += bytes;
    if (j->dispatched < j->slice_quota) {
        return 0;
    }
    /* Over quota: stretch the slice to pay the burst back. */
    unsigned __int128 span = (unsigned __int128)JOB_SLICE_NS * j->dispatched / j->slice_quota;
    j->slice_end_ns = j->slice_start_ns + (uint64_t)span;
    return j->slice_end_ns > now ? j->slice_end_ns - now : 0;
}

/* ---- verbs ---- */

int job_user_pause(struct job *j, struct err *e)
{
    TRY(verb_check(j, JOB_VERB_PAUSE, e));
    if (j->user_paused) {
        return err_set(e, 0, 0, "Job is already paused"), -EPERM;
    }
    j->user_paused = true;
    j->pause_count++;
    job_kick(j); /* it pauses at the pause point the kick brings it to */
    return 0;
}

int job_user_resume(struct job *j, struct err *e)
{
    if (!j->user_paused) { /* checked before the verb table */
        return err_set(e, 0, 0, "Can't resume a job that was not paused"), -EPERM;
    }
    TRY(verb_check(j, JOB_VERB_RESUME, e));
    j->user_paused = false;
    j->io_status = JOB_IO_OK;
    ASSERT(j->pause_count > 0);
    if (--j->pause_count == 0 && j->started && j->wait == JOB_WAIT_PAUSED) {
        post_wake(j, 0);
    }
    return 0;
}

int job_cancel(struct job *j, bool force, bool blockjob, struct err *e)
{
    TRY(verb_check(j, JOB_VERB_CANCEL, e));
    if (blockjob && !force && j->user_paused) {
        return err_set(e, 0, 0, "The block job for device '%s' is currently paused", j->id),
               -EBUSY;
    }
    force = j->drv->cancel ? j->drv->cancel(j, force) : true;
    if (j->user_paused) {
        j->user_paused = false;
        ASSERT(j->pause_count > 0);
        j->pause_count--;
    }
    j->cancelled = true;
    j->force_cancel |= force;
    if (!j->started) { /* never ran: straight to the abort path */
        j->force_cancel = true;
        work_end(j, -ECANCELED);
    } else if (j->work_done) { /* waiting or pending: the transaction aborts */
        j->force_cancel = true;
        j->ret = j->ret < 0 ? j->ret : -ECANCELED;
        abort_path(j);
    } else if (!j->busy) {
        post_wake(j, 0); /* to its pause point, where the cancel is seen */
    }
    return 0;
}

int job_complete(struct job *j, struct err *e)
{
    TRY(verb_check(j, JOB_VERB_COMPLETE, e));
    if (j->cancelled || !j->drv->complete) {
        return err_set(e, 0, 0, "The active block job '%s' cannot be completed", j->id),
               -EPERM;
    }
    j->drv->complete(j);
    job_kick(j);
    return 0;
}

int job_finalize(struct job *j, struct err *e)
{
    TRY(verb_check(j, JOB_VERB_FINALIZE, e));
    finalize(j);
    return 0;
}

int job_dismiss(struct job *j, struct err *e)
{
    TRY(verb_check(j, JOB_VERB_DISMISS, e));
    to_null(j);
    return 0;
}

int job_set_speed(struct job *j, int64_t speed, struct err *e)
{
    TRY(verb_check(j, JOB_VERB_SET_SPEED, e));
    if (speed < 0) {
        return err_set(e, 0, 0, "Parameter 'speed' expects a non-negative value"), -EINVAL;
    }
    uint64_t old = j->speed;
    speed_apply(j, (uint64_t)speed);
    if ((speed == 0 || (uint64_t)speed > old) && j->wait == JOB_WAIT_SLEEP) {
        job_kick(j); /* a sleeping job wakes at once */
    }
    return 0;
}

void job_check(const struct job *j)
{
    ASSERT(j->status > JOB_STATUS_UNDEFINED && j->status < JOB_STATUS__COUNT);
    ASSERT(!j->dead || j->status == JOB_STATUS_NULL);
    ASSERT(!j->user_paused || j->pause_count > 0);
    ASSERT(!j->busy || j->wait == JOB_WAIT_NONE);
    ASSERT(!j->busy || !j->work_done);
    ASSERT(!j->force_cancel || j->cancelled);
    ASSERT(j->offset <= j->len || j->len == 0);
    ASSERT(j->slice_quota >= 1);
    bool paused_status = j->status == JOB_STATUS_PAUSED || j->status == JOB_STATUS_STANDBY;
    ASSERT(paused_status == (j->wait == JOB_WAIT_PAUSED && !j->work_done));
}

const struct planted_bug job_bugs[] = {
    { "job-ready-resent", NODE_MUTANT_JOB_READY_RESENT,
      "job core: a job back from standby sends BLOCK_JOB_READY again" },
};

const size_t job_bugs_count = ARRAY_LEN(job_bugs);
