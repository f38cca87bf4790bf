/*
 * replication: see replication.h.
 *
 * Method: the node forwards to `file` as spec §1.3's table says for its
 *   mode and stage. The operations are small state machines: each step
 *   that waits (an overlay's make-empty, a job's end, the commit's
 *   readiness) resumes from its callback; the operation's caller hears the
 *   end from a posted event. A FAILOVER_FAILED write (and a seed-era DONE
 *   write) is split by the allocation of active and hidden: allocated
 *   parts go to the active disk, the rest straight to the secondary disk.
 */
#include "replication.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "backup.h"
#include "drv_overlay.h"
#include "mirror.h"

/* A continuation posted from a job's event, dropped if the node is gone. */
struct repl_link {
    struct node *n;   /* NULL once the node closed */
    unsigned pending; /* events posted, not yet run */
};

enum repl_step { STEP_IDLE, STEP_START, STEP_CHECKPOINT, STEP_STOP, STEP_FAILOVER };

struct repl_state {
    struct drv_replication_opts o;
    struct node *file;       /* where requests go (the commit moves it) */
    enum repl_stage stage;
    int error;
    struct job *backup;      /* the backup job while it lives */
    /* The operation in progress. */
    enum repl_step step;
    unsigned phase;
    repl_cb *cb;
    void *opaque;
    struct err e;
    int ret;
    bool want_complete;      /* the commit is READY: complete it */
    bool commit_failed;
    char commit_error[128];
    struct repl_link *link;  /* posted continuations (NULL: none yet) */
};

static struct repl_state *rs(const struct node *n)
{
    return n->state;
}

static const char *const stage_names[REPL_STAGE__COUNT] = {
    "none", "running", "failover", "failover-failed", "done",
};

const char *repl_stage_name(enum repl_stage s)
{
    ASSERT(s < REPL_STAGE__COUNT);
    return stage_names[s];
}

bool repl_stage_transition_ok(enum repl_stage from, enum repl_stage to)
{
    static const unsigned ok[REPL_STAGE__COUNT] = {
        [REPL_STAGE_NONE] = 1u << REPL_STAGE_RUNNING,
        [REPL_STAGE_RUNNING] = 1u << REPL_STAGE_FAILOVER | 1u << REPL_STAGE_DONE,
        [REPL_STAGE_FAILOVER] = 1u << REPL_STAGE_DONE | 1u << REPL_STAGE_FAILOVER_FAILED,
    };
    return (ok[from] >> to) & 1;
}

static void set_stage(struct repl_state *s, enum repl_stage to)
{
    ASSERT(repl_stage_transition_ok(s->stage, to));
    s->stage = to;
}

enum repl_stage replication_stage(const struct node *n)
{
    return rs(n)->stage;
}

int replication_error(const struct node *n)
{
    return rs(n)->error;
}

static bool seed_era(const struct repl_state *s)
{
    return s->o.variant != REPL_VARIANT_MODERN;
}

/* ---- the node ---- */

static int repl_open(struct node *n, const void *opts, struct err *e)
{
    const struct drv_replication_opts *o = opts;
    struct repl_state *s = rs(n);
    if (!o || !o->file) {
        return err_set(e, 0, 0, "replication node '%s' needs a file child", n->name), -EINVAL;
    }
    bool sec = o->mode == REPL_MODE_SECONDARY;
    if (sec && (!o->hidden || !o->secondary || !o->export_front || !o->jobs)) {
        return err_set(e, 0, 0, "No top_bs or it is invalid"), -EINVAL; /* [src] text */
    }
    s->o = *o;
    s->file = o->file;
    n->length = o->file->length;
    node_child_attach(n, o->file, NODE_ROLE_FILE);
    return 0;
}

static void pass_done(void *opaque, int ret)
{
    req_complete(opaque, ret);
}

/* Primary: a forwarding error is kept, never returned (spec §1.3). */
static void primary_done(void *opaque, int ret)
{
    struct req *req = opaque;
    struct repl_state *s = rs(req->node);
    if (ret < 0 && !node_mutant(req->node, NODE_MUTANT_REPL_PRIMARY_RETURNS_ERROR)) {
        s->error = ret;
        ret = 0;
    }
    req_complete(req, ret);
}

static void forward(struct node *to, struct req *req, env_io_cb *cb)
{
    node_submit(to, req->op, req->offset, req->len, req->buf, req->flags, cb, req);
}

/* A split request: its parts in flight and the first error. */
static void part_done(void *opaque, int ret)
{
    struct req *req = opaque;
    req->ret = req->ret < 0 ? req->ret : ret;
    if (--req->drv_u64[0] == 0) {
        req_complete(req, req->ret);
    }
}

/* Is [off, off + len) allocated in the active or the hidden disk? *pnum:
 * how far the answer holds. */
static bool above_secondary(struct repl_state *s, uint64_t off, uint64_t len, uint64_t *pnum)
{
    struct node *layers[] = { s->o.file, s->o.hidden };
    bool alloc = false;
    *pnum = len;
    for (unsigned i = 0; i < 2; i++) {
        uint64_t p = 0;
        int bs = node_block_status(layers[i], off, len, &p);
        p = p ? min_u64(p, len) : len;
        if (bs < 0 || (bs & NODE_BS_ALLOCATED)) {
            alloc = true;
            *pnum = i == 0 || !alloc ? p : *pnum;
        }
        *pnum = min_u64(*pnum, p);
    }
    return alloc;
}

/* FAILOVER_FAILED (and a seed-era DONE): parts allocated above the
 * secondary disk go to the active disk, the rest to the secondary disk;
 * a seed-era discard goes to both. */
static void split_write(struct node *n, struct req *req)
{
    struct repl_state *s = rs(n);
    req->ret = 0;
    req->drv_u64[0] = 1; /* held until every part is issued */
    if (seed_era(s) && req->op == NODE_OP_DISCARD) {
        req->drv_u64[0] += 2;
        forward(s->o.file, req, part_done);
        forward(s->o.secondary, req, part_done);
        part_done(req, 0);
        return;
    }
    uint64_t end = req->offset + req->len;
    for (uint64_t off = req->offset; off < end;) {
        uint64_t pnum;
        bool alloc = above_secondary(s, off, end - off, &pnum);
        uint8_t *buf = req->buf ? req->buf + (off - req->offset) : NULL;
        req->drv_u64[0]++;
        node_submit(alloc ? s->o.file : s->o.secondary, req->op, off, pnum, buf, req->flags,
                    part_done, req);
        off += pnum;
    }
    part_done(req, 0);
}

static void repl_submit(struct node *n, struct req *req)
{
    struct repl_state *s = rs(n);
    bool write = req->op != NODE_OP_READ;
    if (s->o.mode == REPL_MODE_PRIMARY) {
        if (s->stage != REPL_STAGE_RUNNING || !write) {
            req_complete(req, -EIO); /* reads always fail: quorum fifo reads child 0 */
            return;
        }
        forward(s->file, req, primary_done);
        return;
    }
    bool split = s->stage == REPL_STAGE_FAILOVER_FAILED ||
                 (s->stage == REPL_STAGE_DONE && seed_era(s));
    if (s->stage == REPL_STAGE_NONE) {
        req_complete(req, -EIO);
    } else if (split && write && req->op != NODE_OP_FLUSH) {
        split_write(n, req);
    } else {
        forward(s->file, req, pass_done);
    }
}

static void repl_close(struct node *n)
{
    struct repl_state *s = rs(n);
    if (s->link) {
        s->link->n = NULL;
        if (s->link->pending == 0) {
            mem_free(s->link, sizeof(*s->link));
        }
    }
}

static int repl_block_status(struct node *n, uint64_t offset, uint64_t len, uint64_t *pnum)
{
    return node_block_status(rs(n)->file, offset, len, pnum);
}

static void repl_check(const struct node *n)
{
    const struct repl_state *s = rs(n);
    ASSERT(s->stage < REPL_STAGE__COUNT);
    ASSERT(s->error <= 0);
    ASSERT(s->o.mode == REPL_MODE_SECONDARY || s->backup == NULL);
    ASSERT(s->step != STEP_IDLE || s->cb == NULL);
}

const struct node_driver drv_replication = {
    .name = "replication",
    .state_size = sizeof(struct repl_state),
    .open = repl_open,
    .close = repl_close,
    .submit = { repl_submit, repl_submit, repl_submit, repl_submit, repl_submit },
    .block_status = repl_block_status,
    .check = repl_check,
};

/* ---- operations ---- */

struct repl_end {
    repl_cb *cb;
    void *opaque;
    int ret;
    struct err e;
};

static void end_ev(void *opaque)
{
    struct repl_end *x = opaque;
    struct repl_end copy = *x;
    mem_free(x, sizeof(*x));
    copy.cb(copy.opaque, copy.ret, &copy.e);
}

/* Post the end of an operation to @cb. */
static void post_end(struct node *n, repl_cb *cb, void *opaque, int ret, const struct err *e)
{
    struct repl_end *x = mem_alloc(sizeof(*x));
    x->cb = cb;
    x->opaque = opaque;
    x->ret = ret;
    if (e) {
        x->e = *e;
    }
    env_post(&n->graph->timer, 0, end_ev, x);
}

static void op_begin(struct node *n, enum repl_step step, repl_cb *cb, void *opaque)
{
    struct repl_state *s = rs(n);
    ASSERT(s->step == STEP_IDLE); /* one operation at a time */
    s->step = step;
    s->phase = 0;
    s->cb = cb;
    s->opaque = opaque;
    s->ret = 0;
    memset(&s->e, 0, sizeof(s->e));
}

static void op_end(struct node *n, int ret)
{
    struct repl_state *s = rs(n);
    repl_cb *cb = s->cb;
    void *opaque = s->opaque;
    s->step = STEP_IDLE;
    s->cb = NULL;
    post_end(n, cb, opaque, ret, ret < 0 ? &s->e : NULL);
}


static void step_next(struct node *n);

static void step_done(void *opaque, int ret)
{
    struct node *n = opaque;
    struct repl_state *s = rs(n);
    if (s->step == STEP_IDLE) {
        return; /* ended by replication_kill: its host died */
    }
    if (ret < 0) {
        s->ret = ret;
    }
    s->phase++;
    step_next(n);
}

/* Empty the active disk, then the hidden disk (phases @first, @first + 1),
 * then go on at phase @first + 2. */
static bool empty_disks(struct node *n, unsigned first)
{
    struct repl_state *s = rs(n);
    if (s->ret < 0) {
        return false;
    }
    if (s->phase == first) {
        overlay_make_empty(s->o.file, step_done, n);
        return true;
    }
    if (s->phase == first + 1 && !node_mutant(n, NODE_MUTANT_REPL_CHECKPOINT_ACTIVE_ONLY)) {
        overlay_make_empty(s->o.hidden, step_done, n);
        return true;
    }
    return false;
}

/* The secondary's checkpoint proper (spec §1.4 do_checkpoint, 1-4). */
static int checkpoint_prepare(struct node *n)
{
    struct repl_state *s = rs(n);
    if (!s->backup) {
        err_set(&s->e, 0, 0, "Backup job was cancelled unexpectedly");
        return -EIO;
    }
    if (node_mutant(n, NODE_MUTANT_REPL_CHECKPOINT_NO_RESET)) {
        return 0;
    }
    return backup_do_checkpoint(s->backup, &s->e);
}

static void job_start_backup(struct node *n)
{
    struct repl_state *s = rs(n);
    struct backup_opts bo = {
        .source = s->o.secondary, .front = s->o.export_front,
        .target = s->o.backup_target ? s->o.backup_target : s->o.hidden,
        .sync = BACKUP_SYNC_NONE, .cluster = s->o.backup_cluster,
        .on_source_error = JOB_ON_ERR_REPORT, .on_target_error = JOB_ON_ERR_REPORT,
        .job = { .auto_finalize = true, .auto_dismiss = true },
    };
    struct job *j;
    int ret = backup_create(s->o.jobs, n->graph, REPL_BACKUP_JOB, &bo, &s->e, &j);
    if (ret < 0) {
        s->ret = ret;
        return;
    }
    s->backup = j;
    job_start(j);
}

/* Start: checks, the backup job, RUNNING, the initial checkpoint. */
static void start_next(struct node *n)
{
    struct repl_state *s = rs(n);
    if (s->phase == 0) {
        job_start_backup(n);
        if (s->ret < 0) {
            op_end(n, s->ret);
            return;
        }
        set_stage(s, REPL_STAGE_RUNNING);
        s->ret = checkpoint_prepare(n);
        s->phase = 1;
    }
    if (empty_disks(n, 1)) {
        return;
    }
    if (s->ret == 0) {
        s->error = 0;
    } else if (!s->e.msg[0]) {
        err_set(&s->e, 0, 0, "Cannot make active disk or hidden disk empty");
    }
    op_end(n, s->ret);
}

static int start_check(struct node *n, struct err *e)
{
    struct repl_state *s = rs(n);
    struct node *active = s->o.file;
    if (node_child(active, NODE_ROLE_BACKING) != s->o.hidden) {
        return err_set(e, 0, 0, "Active disk doesn't have backing file"), -EINVAL;
    }
    if (node_child(s->o.hidden, NODE_ROLE_BACKING) != s->o.secondary) {
        return err_set(e, 0, 0, "Hidden disk doesn't have backing file"), -EINVAL;
    }
    if (active->length != s->o.hidden->length || active->length != s->o.secondary->length) {
        return err_set(e, 0, 0, "Active disk, hidden disk, secondary disk's length are not "
                       "the same"), -EINVAL;
    }
    if (active->drv != &drv_overlay || s->o.hidden->drv != &drv_overlay) {
        return err_set(e, 0, 0, "Active disk or hidden disk doesn't support make_empty"),
               -EINVAL;
    }
    return 0;
}

void replication_start(struct node *n, repl_cb *cb, void *opaque)
{
    struct repl_state *s = rs(n);
    struct err e = { .file = NULL };
    if (s->stage == REPL_STAGE_DONE || s->stage == REPL_STAGE_FAILOVER) {
        post_end(n, cb, opaque, 0, NULL); /* promoted to primary: ignored */
        return;
    }
    if (s->stage != REPL_STAGE_NONE) {
        err_set(&e, 0, 0, "Block replication is running or done");
        post_end(n, cb, opaque, -EINVAL, &e);
        return;
    }
    if (s->o.mode == REPL_MODE_PRIMARY) {
        set_stage(s, REPL_STAGE_RUNNING);
        s->error = 0;
        post_end(n, cb, opaque, 0, NULL);
        return;
    }
    int ret = start_check(n, &e);
    if (ret < 0) {
        post_end(n, cb, opaque, ret, &e);
        return;
    }
    op_begin(n, STEP_START, cb, opaque);
    start_next(n);
}

static void checkpoint_next(struct node *n)
{
    struct repl_state *s = rs(n);
    if (s->phase == 0) {
        s->ret = checkpoint_prepare(n);
        s->phase = 1;
    }
    if (empty_disks(n, 1)) {
        return;
    }
    if (s->ret < 0 && !s->e.msg[0]) {
        err_set(&s->e, 0, 0, "Cannot make active disk or hidden disk empty");
    }
    op_end(n, s->ret);
}

void replication_do_checkpoint(struct node *n, repl_cb *cb, void *opaque)
{
    struct repl_state *s = rs(n);
    struct err e = { .file = NULL };
    if (seed_era(s) && s->stage != REPL_STAGE_RUNNING) {
        err_set(&e, 0, 0, "Block replication is not running");
        post_end(n, cb, opaque, -EIO, &e);
        return;
    }
    if (seed_era(s) && s->error) {
        err_set(&e, 0, 0, "I/O error occurs");
        post_end(n, cb, opaque, -EIO, &e);
        return;
    }
    if (s->stage == REPL_STAGE_DONE || s->stage == REPL_STAGE_FAILOVER ||
        s->o.mode == REPL_MODE_PRIMARY) {
        post_end(n, cb, opaque, 0, NULL);
        return;
    }
    op_begin(n, STEP_CHECKPOINT, cb, opaque);
    checkpoint_next(n);
}

int replication_get_error(const struct node *n, struct err *e)
{
    const struct repl_state *s = rs(n);
    if (s->stage == REPL_STAGE_NONE) {
        return err_set(e, 0, 0, "Block replication is not running"), -EIO;
    }
    if (s->error) {
        return err_set(e, 0, 0, "I/O error occurred"), -EIO;
    }
    return 0;
}

/* ---- stop and failover ---- */

static void cancel_backup(struct node *n)
{
    struct repl_state *s = rs(n);
    struct err e = { .file = NULL };
    int ret = job_cancel(s->backup, true, true, &e);
    ASSERT(ret == 0); /* a running job always takes a forced cancel */
}

static void commit_start(struct node *n)
{
    struct repl_state *s = rs(n);
    bool active_only = node_mutant(n, NODE_MUTANT_REPL_FAILOVER_ACTIVE_ONLY);
    struct mirror_opts mo = {
        .source = s->o.file, .target = s->o.secondary, .front = &s->file,
        .sync = MIRROR_SYNC_TOP, .base = active_only ? NULL : s->o.secondary,
        .on_source_error = JOB_ON_ERR_REPORT, .on_target_error = JOB_ON_ERR_REPORT,
        .type = JOB_TYPE_COMMIT, .job = { .auto_finalize = true, .auto_dismiss = true },
    };
    struct job *j;
    int ret = mirror_create(s->o.jobs, n->graph, REPL_COMMIT_JOB, &mo, &s->e, &j);
    if (ret < 0) {
        set_stage(s, REPL_STAGE_FAILOVER_FAILED);
        s->error = -EIO;
        op_end(n, ret);
        return;
    }
    job_start(j);
}

/* Phase 0: the backup job is being cancelled; 1: it is gone; 2 and 3:
 * emptying active and hidden (non-failover), or the commit runs (failover);
 * v4's non-failover stop empties them first, in phases 10 and 11. */
static void stop_next(struct node *n)
{
    struct repl_state *s = rs(n);
    if (s->phase >= 10) {
        if (!empty_disks(n, 10)) {
            s->phase = 0;
            cancel_backup(n);
        }
        return;
    }
    if (s->phase == 0) {
        return; /* replication_job_event moves on */
    }
    if (s->step == STEP_FAILOVER) {
        if (seed_era(s)) {
            op_end(n, 0); /* no commit: DONE already */
            return;
        }
        set_stage(s, REPL_STAGE_FAILOVER);
        s->phase = 2;
        commit_start(n);
        return;
    }
    /* Non-failover: the documented intent (spec §1.4): empty active and
     * hidden, discarding the secondary guest's writes; v12 found the job
     * gone and emptied nothing; v4 emptied them before the cancel. */
    if (s->o.variant == REPL_VARIANT_MODERN && empty_disks(n, 1)) {
        return;
    }
    if (s->stage == REPL_STAGE_RUNNING) {
        set_stage(s, REPL_STAGE_DONE);
    }
    op_end(n, s->ret);
}

static void step_next(struct node *n)
{
    switch (rs(n)->step) {
    case STEP_START:
        start_next(n);
        break;
    case STEP_CHECKPOINT:
        checkpoint_next(n);
        break;
    case STEP_STOP:
    case STEP_FAILOVER:
        stop_next(n);
        break;
    default:
        UNREACHABLE();
    }
}

void replication_stop(struct node *n, bool failover, repl_cb *cb, void *opaque)
{
    struct repl_state *s = rs(n);
    struct err e = { .file = NULL };
    if (s->stage == REPL_STAGE_DONE || s->stage == REPL_STAGE_FAILOVER) {
        post_end(n, cb, opaque, 0, NULL);
        return;
    }
    if (s->stage != REPL_STAGE_RUNNING) {
        err_set(&e, 0, 0, "Block replication is not running");
        post_end(n, cb, opaque, -EIO, &e);
        return;
    }
    if (s->o.mode == REPL_MODE_PRIMARY) {
        set_stage(s, REPL_STAGE_DONE);
        s->error = 0;
        post_end(n, cb, opaque, 0, NULL);
        return;
    }
    op_begin(n, failover ? STEP_FAILOVER : STEP_STOP, cb, opaque);
    if (seed_era(s)) {
        set_stage(s, REPL_STAGE_DONE); /* v12/v4 set DONE first: error stays clean */
    }
    if (!s->backup) {
        s->phase = 1;
        stop_next(n);
    } else if (s->o.variant == REPL_VARIANT_V4 && !failover) {
        s->phase = 10;
        stop_next(n);
    } else {
        cancel_backup(n);
    }
}

/* ---- the jobs' events ---- */


static void link_ev(void *opaque);

static void link_post(struct node *n)
{
    struct repl_state *s = rs(n);
    if (!s->link) {
        s->link = mem_alloc(sizeof(*s->link));
        s->link->n = n;
    }
    s->link->pending++;
    env_post(&n->graph->timer, 0, link_ev, s->link);
}

/* The backup is gone: go on with the stop; the commit reached READY:
 * complete it; the commit is gone: the failover's end. */
static void job_moved(struct node *n)
{
    struct repl_state *s = rs(n);
    if (s->want_complete) {
        s->want_complete = false;
        struct job *j = job_find(s->o.jobs, REPL_COMMIT_JOB);
        struct err e = { .file = NULL };
        if (j && job_complete(j, &e) < 0) {
            s->commit_failed = true;
        }
        return;
    }
    if (s->step == STEP_FAILOVER && s->phase == 2) {
        bool ok = !s->commit_failed;
        set_stage(s, ok ? REPL_STAGE_DONE : REPL_STAGE_FAILOVER_FAILED);
        s->error = ok ? 0 : -EIO;
        if (!ok) {
            err_set(&s->e, 0, 0, "failover commit failed: %s", s->commit_error);
        }
        op_end(n, ok ? 0 : -EIO);
        return;
    }
    if ((s->step == STEP_STOP || s->step == STEP_FAILOVER) && s->phase == 0) {
        s->phase = 1;
        stop_next(n);
    }
}

static void link_ev(void *opaque)
{
    struct repl_link *l = opaque;
    struct node *n = l->n;
    l->pending--;
    if (!n) {
        if (l->pending == 0) {
            mem_free(l, sizeof(*l));
        }
        return;
    }
    job_moved(n);
}

void replication_kill(struct node *n)
{
    struct repl_state *s = rs(n);
    s->backup = NULL; /* the job list goes with the host */
    s->want_complete = false;
    if (s->step != STEP_IDLE) {
        err_set(&s->e, 0, 0, "the host went down");
        op_end(n, BS_ECRASHED);
    }
}

void replication_job_event(struct node *n, const struct job_event *ev)
{
    struct repl_state *s = rs(n);
    if (s->o.mode != REPL_MODE_SECONDARY) {
        return;
    }
    bool gone = ev->kind == JOB_EV_STATUS_CHANGE && ev->status == JOB_STATUS_NULL;
    if (strcmp(ev->id, REPL_BACKUP_JOB) == 0 && gone && s->backup) {
        s->backup = NULL;
        /* QEMU's backup callback: the job ended while RUNNING (a failover
         * cancels it before FAILOVER; the intended stop does not count). */
        if (s->stage == REPL_STAGE_RUNNING && s->step != STEP_STOP) {
            s->error = -EIO;
        }
        link_post(n);
    } else if (strcmp(ev->id, REPL_COMMIT_JOB) == 0) {
        if (ev->kind == JOB_EV_READY) {
            s->want_complete = true;
            link_post(n);
        } else if (ev->kind == JOB_EV_COMPLETED && ev->error) {
            s->commit_failed = true;
            snprintf(s->commit_error, sizeof(s->commit_error), "%s", ev->error);
        } else if (ev->kind == JOB_EV_CANCELLED) {
            s->commit_failed = true;
            snprintf(s->commit_error, sizeof(s->commit_error), "cancelled");
        } else if (gone) {
            link_post(n);
        }
    }
}

const struct planted_bug replication_bugs[] = {
    { "repl-checkpoint-active-only", NODE_MUTANT_REPL_CHECKPOINT_ACTIVE_ONLY,
      "replication: a checkpoint empties the active disk but not the hidden disk" },
    { "repl-failover-active-only", NODE_MUTANT_REPL_FAILOVER_ACTIVE_ONLY,
      "replication: failover commits what the active disk holds, not the hidden disk" },
    { "repl-primary-returns-error", NODE_MUTANT_REPL_PRIMARY_RETURNS_ERROR,
      "replication: the primary returns a forwarding error instead of keeping it" },
    { "repl-checkpoint-no-reset", NODE_MUTANT_REPL_CHECKPOINT_NO_RESET,
      "replication: a checkpoint does not reset the backup's copy bitmap" },
};

const size_t replication_bugs_count = ARRAY_LEN(replication_bugs);
