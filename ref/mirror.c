/*
 * mirror: see mirror.h.
 *
 * Method: the filter forwards guest I/O to the source; a write, when done,
 *   marks its granules dirty and kicks the job (background mode), or is
 *   written to the target as well (write-blocking). The job, each time it
 *   runs, issues copies of contiguous dirty granules not in flight (their
 *   bits cleared first) up to the buffer, sleeps as the rate limit says,
 *   and when the bitmap is clean with nothing in flight flushes the target:
 *   the first time it is READY, after complete or a soft cancel it is done.
 */
#include "mirror.h"
#include "bitmap.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

struct mirror_job;

/* The filter's state: the bitmap and everything in flight. */
struct mtop_state {
    struct node *source;
    struct node *target;
    uint64_t gran;
    uint64_t n_gran;
    struct bitmap *dirty;    /* granules to copy (ref/bitmap: counts, finds the next) */
    uint64_t n_busy;         /* granules being copied */
    uint8_t *busy;           /* per granule: a copy of it is in flight */
    uint16_t *active;        /* per granule: write-blocking guest writes in flight */
    unsigned copies;         /* copy ops in flight */
    unsigned guest_writes;   /* guest writes in flight through the filter */
    struct req_fifo parked;  /* write-blocking writes waiting for copies */
    bool write_blocking;
    bool detached;           /* the job ended: a plain pass-through */
    struct job *job;         /* NULL once the job is gone */
};

struct mirror_job {
    struct node *filter;
    struct node **front;
    uint64_t buf_size;
    uint64_t cursor;         /* granule the next search starts at */
    enum job_policy on_source_error, on_target_error;
    bool should_complete;
    bool flushing;
    bool synced;             /* READY reached */
    bool pivoted;
    int error;               /* a copy failed under report: the job ends with it */
};

struct mcopy {
    struct node *filter;
    uint64_t first, n;       /* granules */
    uint64_t offset, len;    /* bytes */
    uint8_t *buf;
    bool read_failed;
};

static struct mirror_job *mj(const struct job *j)
{
    return j->drv_state;
}

static struct mtop_state *mt(const struct node *n)
{
    return n->state;
}

static uint64_t gran_bytes(const struct mtop_state *s, uint64_t g, uint64_t n)
{
    uint64_t off = g * s->gran;
    return min_u64(n * s->gran, s->source->length - off);
}

static void mark_dirty(struct mtop_state *s, uint64_t offset, uint64_t len)
{
    if (len > 0) {
        bitmap_set(s->dirty, offset, min_u64(len, s->source->length - offset));
    }
}

static bool dirty_at(const struct mtop_state *s, uint64_t g)
{
    return bitmap_get(s->dirty, g * s->gran);
}

static void clear_dirty(struct mtop_state *s, uint64_t g, uint64_t n)
{
    bitmap_reset(s->dirty, g * s->gran, gran_bytes(s, g, n));
}

/* ---- the filter ---- */

static int mtop_open(struct node *n, const void *opts, struct err *e)
{
    const struct mirror_opts *o = opts;
    (void)e;
    struct mtop_state *s = mt(n);
    s->source = o->source;
    s->target = o->target;
    s->gran = o->granularity ? o->granularity : MIRROR_GRANULARITY_DEFAULT;
    s->n_gran = (o->source->length + s->gran - 1) / s->gran;
    s->dirty = bitmap_new(o->source->length ? o->source->length : 1, s->gran);
    s->busy = mem_alloc(s->n_gran ? s->n_gran : 1);
    s->active = mem_alloc((s->n_gran ? s->n_gran : 1) * sizeof(*s->active));
    s->write_blocking = o->write_blocking;
    n->length = o->source->length;
    node_child_attach(n, o->source, NODE_ROLE_FILE);
    return 0;
}

static void mtop_close(struct node *n)
{
    struct mtop_state *s = mt(n);
    ASSERT(s->parked.head == NULL && s->copies == 0);
    bitmap_free(s->dirty);
    mem_free(s->busy, s->n_gran ? s->n_gran : 1);
    mem_free(s->active, (s->n_gran ? s->n_gran : 1) * sizeof(*s->active));
}

static void pass_done(void *opaque, int ret)
{
    req_complete(opaque, ret);
}

static void mtop_pass(struct node *n, struct req *req)
{
    node_submit(mt(n)->source, req->op, req->offset, req->len, req->buf, req->flags, pass_done,
                req);
}

static void kick(struct mtop_state *s)
{
    if (s->job) {
        job_kick(s->job);
    }
}

/* Granules [*first, *end) of @req's range. */
static void req_granules(const struct mtop_state *s, const struct req *req, uint64_t *first,
                         uint64_t *end)
{
    *first = req->offset / s->gran;
    *end = min_u64((req->offset + req->len + s->gran - 1) / s->gran, s->n_gran);
}

/* A write-blocking write is in flight over its granules (a copy must not
 * run beside it: it could land on the target after the write did). */
static void active_mark(struct mtop_state *s, struct req *req, int delta)
{
    uint64_t first;
    uint64_t end;
    req_granules(s, req, &first, &end);
    for (uint64_t g = first; g < end; g++) {
        ASSERT(delta > 0 || s->active[g] > 0);
        s->active[g] = (uint16_t)(s->active[g] + delta);
    }
}

/* A guest write through the filter is done (on the source, and with
 * write-blocking on the target too). */
static void guest_write_end(struct req *req, int ret)
{
    struct mtop_state *s = mt(req->node);
    ASSERT(s->guest_writes > 0);
    s->guest_writes--;
    if (req->drv_u64[1]) {
        active_mark(s, req, -1);
    }
    kick(s);
    req_complete(req, ret);
}

static void bg_write_done(void *opaque, int ret)
{
    struct req *req = opaque;
    struct mtop_state *s = mt(req->node);
    if (!s->detached && !node_mutant(req->node, NODE_MUTANT_MIRROR_LOST_DIRTY)) {
        mark_dirty(s, req->offset, req->len);
    }
    guest_write_end(req, ret);
}

static void active_target_done(void *opaque, int ret)
{
    struct req *req = opaque;
    struct mtop_state *s = mt(req->node);
    if (ret < 0) { /* the guest's write still succeeds; the range is copied later */
        mark_dirty(s, req->offset, req->len);
        if (s->job && !s->detached) {
            (void)job_error(s->job, mj(s->job)->on_target_error, false, ret);
        }
    } else if (!s->detached) { /* whole granules it covered are in step */
        uint64_t first = (req->offset + s->gran - 1) / s->gran;
        uint64_t end = (req->offset + req->len) / s->gran;
        if (req->offset + req->len == s->source->length) {
            end = s->n_gran;
        }
        for (uint64_t g = first; g < end; g++) {
            if (!s->busy[g]) {
                clear_dirty(s, g, 1);
            }
        }
    }
    guest_write_end(req, 0);
}

static void active_source_done(void *opaque, int ret)
{
    struct req *req = opaque;
    struct mtop_state *s = mt(req->node);
    if (ret < 0 || s->detached) { /* a failed source write skips the target */
        if (!s->detached) {
            mark_dirty(s, req->offset, req->len);
        }
        guest_write_end(req, ret);
        return;
    }
    node_submit(s->target, req->op, req->offset, req->len, req->buf, req->flags,
                active_target_done, req);
}

static bool overlaps_copy(const struct mtop_state *s, const struct req *req)
{
    uint64_t end = (req->offset + req->len + s->gran - 1) / s->gran;
    for (uint64_t g = req->offset / s->gran; g < end && g < s->n_gran; g++) {
        if (s->busy[g]) {
            return true;
        }
    }
    return false;
}

static void write_go(struct mtop_state *s, struct req *req)
{
    /* A discard leaves the source reading as zeroes or its old data: it is
     * not repeated on the target but copied from the source like any
     * dirty range, so the two stay equal byte for byte. */
    bool active = s->write_blocking && !s->detached && req->op != NODE_OP_DISCARD;
    req->drv_u64[1] = active;
    if (active) {
        active_mark(s, req, 1);
    }
    node_submit(s->source, req->op, req->offset, req->len, req->buf, req->flags,
                active ? active_source_done : bg_write_done, req);
}

static void mtop_write(struct node *n, struct req *req)
{
    struct mtop_state *s = mt(n);
    s->guest_writes++;
    if (s->write_blocking && !s->detached && overlaps_copy(s, req)) {
        req_fifo_push(&s->parked, req); /* waits for the copies it overlaps */
        return;
    }
    write_go(s, req);
}

static void unpark(struct mtop_state *s)
{
    struct req *list = req_fifo_take(&s->parked);
    while (list) {
        struct req *req = list;
        list = req->drv_ptr;
        if (!s->detached && s->write_blocking && overlaps_copy(s, req)) {
            req_fifo_push(&s->parked, req);
        } else {
            write_go(s, req);
        }
    }
}

static int mtop_block_status(struct node *n, uint64_t offset, uint64_t len, uint64_t *pnum)
{
    return node_block_status(mt(n)->source, offset, len, pnum);
}

static void mtop_check(const struct node *n)
{
    const struct mtop_state *s = mt(n);
    ASSERT(s->source != NULL && s->target != NULL && is_pow2(s->gran));
    ASSERT(s->copies <= MIRROR_OPS_MAX);
}

const struct node_driver drv_mirror_top = {
    .name = "mirror_top",
    .state_size = sizeof(struct mtop_state),
    .open = mtop_open,
    .close = mtop_close,
    .submit = {
        [NODE_OP_READ] = mtop_pass,
        [NODE_OP_WRITE] = mtop_write,
        [NODE_OP_FLUSH] = mtop_pass,
        [NODE_OP_DISCARD] = mtop_write,
        [NODE_OP_WRITE_ZEROES] = mtop_write,
    },
    .block_status = mtop_block_status,
    .check = mtop_check,
};

/* ---- copies ---- */

static void copy_end(struct mcopy *cp, int ret)
{
    struct mtop_state *s = mt(cp->filter);
    for (uint64_t g = cp->first; g < cp->first + cp->n; g++) {
        s->busy[g] = 0;
    }
    ASSERT(s->copies > 0 && s->n_busy >= cp->n);
    s->n_busy -= cp->n;
    s->copies--;
    if (ret < 0) {
        mark_dirty(s, cp->offset, cp->len); /* re-marked before the policy */
    } else if (s->job) {
        s->job->offset += cp->len;
    }
    if (ret < 0 && s->job && !s->detached) {
        struct mirror_job *m = mj(s->job);
        enum job_policy p = cp->read_failed ? m->on_source_error : m->on_target_error;
        if (job_error(s->job, p, cp->read_failed, ret) == JOB_ACTION_REPORT && !m->error) {
            m->error = ret; /* the job ends with it when its copies are done */
        }
    }
    mem_free(cp->buf, cp->buf ? cp->len : 0);
    mem_free(cp, sizeof(*cp));
    unpark(s);
    kick(s);
}

static void copy_written(void *opaque, int ret)
{
    copy_end(opaque, ret);
}

static void copy_read(void *opaque, int ret)
{
    struct mcopy *cp = opaque;
    struct mtop_state *s = mt(cp->filter);
    if (ret < 0) {
        cp->read_failed = true;
        copy_end(cp, ret);
        return;
    }
    node_write(s->target, cp->offset, cp->len, cp->buf, 0, copy_written, cp);
}

static void copy_start(struct node *filter, uint64_t first, uint64_t n)
{
    struct mtop_state *s = mt(filter);
    struct mcopy *cp = mem_alloc(sizeof(*cp));
    cp->filter = filter;
    cp->first = first;
    cp->n = n;
    cp->offset = first * s->gran;
    cp->len = gran_bytes(s, first, n);
    clear_dirty(s, first, n); /* before the read: a guest write now dirties it again */
    for (uint64_t g = first; g < first + n; g++) {
        s->busy[g] = 1;
    }
    s->n_busy += n;
    s->copies++;
    uint64_t pnum = 0;
    int bs = node_block_status(s->source, cp->offset, cp->len, &pnum);
    if (bs >= 0 && (bs & NODE_BS_ZERO) && !(bs & NODE_BS_DATA) && pnum >= cp->len) {
        node_submit(s->target, NODE_OP_WRITE_ZEROES, cp->offset, cp->len, NULL, 0,
                    copy_written, cp);
        return;
    }
    cp->buf = mem_alloc(cp->len);
    node_read(s->source, cp->offset, cp->len, cp->buf, copy_read, cp);
}

/* ---- the job ---- */

/* Issue copies of dirty granules not in flight, up to the buffer; the
 * bytes issued. */
static uint64_t issue(struct mirror_job *m)
{
    struct mtop_state *s = mt(m->filter);
    uint64_t op_max = max_u64(m->buf_size / MIRROR_OPS_MAX, 1u << 20);
    uint64_t issued = 0;
    uint64_t size = s->source->length;
    /* From the cursor to the end, then from the start: the dirty bitmap
     * finds the next dirty granule without walking clean ones. */
    for (unsigned pass = 0; pass < 2 && s->copies < MIRROR_OPS_MAX && issued < m->buf_size;
         pass++) {
        uint64_t at = pass == 0 ? m->cursor * s->gran : 0;
        uint64_t end = pass == 0 ? size : m->cursor * s->gran;
        while (at < end && s->copies < MIRROR_OPS_MAX && issued < m->buf_size) {
            int64_t next = bitmap_next_dirty(s->dirty, at, end - at);
            if (next < 0) {
                break;
            }
            uint64_t g = (uint64_t)next / s->gran;
            if (s->busy[g] || s->active[g]) {
                at = (g + 1) * s->gran;
                continue;
            }
            uint64_t n = 1;
            while (g + n < s->n_gran && dirty_at(s, g + n) && !s->busy[g + n] &&
                   !s->active[g + n] && (n + 1) * s->gran <= op_max) {
                n++;
            }
            copy_start(m->filter, g, n);
            issued += n * s->gran;
            at = (g + n) * s->gran;
            m->cursor = (g + n) % s->n_gran;
        }
    }
    return issued;
}

static bool clean(const struct mtop_state *s)
{
    return !s->copies && !s->guest_writes && bitmap_empty(s->dirty);
}

/* QEMU's progress: len is what was done plus what is dirty or in flight. */
static void progress(struct job *j, const struct mtop_state *s)
{
    /* Dirty and busy granules are disjoint (a copy clears its bits first;
     * a write during it sets them again: then counted twice, as QEMU's
     * in-flight bytes and dirty count are). */
    j->len = j->offset + bitmap_count(s->dirty) + s->n_busy * s->gran;
}

static void target_flushed(void *opaque, int ret)
{
    struct mtop_state *s = mt(opaque);
    if (!s->job) {
        return; /* the job died with its host during the flush */
    }
    struct job *j = s->job;
    struct mirror_job *m = mj(j);
    m->flushing = false;
    progress(j, mt(m->filter));
    if (ret < 0) { /* a failing target flush counts as a write error */
        if (job_error(j, m->on_target_error, false, ret) == JOB_ACTION_REPORT) {
            job_work_done(j, ret);
            return;
        }
        job_yield(j);
        return;
    }
    if (!m->synced) {
        m->synced = true;
        job_ready(j);
    }
    if ((m->should_complete || job_cancel_requested(j)) && clean(mt(m->filter))) {
        job_work_done(j, 0); /* still clean after the flush: done */
        return;
    }
    if (m->should_complete || job_cancel_requested(j)) {
        job_yield(j); /* the guest wrote during the flush: once more */
        return;
    }
    job_wait(j); /* in step: until the guest writes, complete or cancel */
}

static void flush_skipped(void *opaque)
{
    target_flushed(opaque, 0);
}

static void mirror_run(struct job *j)
{
    struct mirror_job *m = mj(j);
    struct mtop_state *s = mt(m->filter);
    progress(j, s);
    if (m->error < 0) { /* a copy failed under report */
        if (s->copies) {
            job_wait(j);
            return;
        }
        job_work_done(j, m->error);
        return;
    }
    bool finishing = m->synced && (m->should_complete || job_cancel_requested(j));
    bool early = node_mutant(m->filter, NODE_MUTANT_MIRROR_EARLY_COMPLETE);
    if (finishing && early) {
        /* Planted bug: completes at once, without draining what is dirty
         * or in flight. */
        job_work_done(j, 0);
        return;
    }
    uint64_t issued = issue(m);
    if (issued) {
        job_sleep(j, job_ratelimit(j, issued));
        return;
    }
    if (!clean(s)) {
        job_wait(j); /* copies or guest writes in flight: their end kicks it */
        return;
    }
    m->flushing = true;
    if (node_mutant(m->filter, NODE_MUTANT_MIRROR_NO_TARGET_FLUSH)) {
        /* planted bug: converged, nothing made durable */
        env_post(&m->filter->graph->timer, 0, flush_skipped, m->filter);
        return;
    }
    node_flush(s->target, target_flushed, m->filter);
}

/* A cancel without force in READY stays soft (spec 10.4). */
static bool mirror_cancel(struct job *j, bool force)
{
    if (node_mutant(mj(j)->filter, NODE_MUTANT_MIRROR_CANCEL_FORCED)) {
        return true; /* planted bug: every cancel is forced */
    }
    return force || (j->status != JOB_STATUS_READY && j->status != JOB_STATUS_STANDBY);
}

static void mirror_complete(struct job *j)
{
    mj(j)->should_complete = true;
}

/* Finalize: after complete, the guest moves onto the target. */
static int mirror_prepare(struct job *j)
{
    struct mirror_job *m = mj(j);
    struct mtop_state *s = mt(m->filter);
    if (m->should_complete && !job_cancel_requested(j)) {
        *m->front = s->target;
        m->pivoted = true;
    }
    return 0;
}

static void mirror_clean(struct job *j)
{
    struct mirror_job *m = mj(j);
    struct mtop_state *s = mt(m->filter);
    job_filter_drop(m->front, m->filter, s->source);
    s->detached = true;
}

static void mirror_free(struct job *j)
{
    struct mirror_job *m = mj(j);
    struct mtop_state *s = mt(m->filter);
    s->job = NULL;
    s->detached = true;
    job_filter_drop(m->front, m->filter, s->source); /* the host died with the job */
    mem_free(m, sizeof(*m));
}

static bool mirror_busy(const struct job *j)
{
    return mt(mj(j)->filter)->copies > 0 || mj(j)->flushing;
}

bool mirror_pivoted(const struct job *j)
{
    return (j->drv->type == JOB_TYPE_MIRROR || j->drv->type == JOB_TYPE_COMMIT) &&
           mj(j)->pivoted;
}

static const struct job_driver mirror_driver = {
    .type = JOB_TYPE_MIRROR,
    .run = mirror_run,
    .prepare = mirror_prepare,
    .clean = mirror_clean,
    .cancel = mirror_cancel,
    .complete = mirror_complete,
    .busy = mirror_busy,
    .free = mirror_free,
};

static const struct job_driver commit_driver = {
    .type = JOB_TYPE_COMMIT,
    .run = mirror_run,
    .prepare = mirror_prepare,
    .clean = mirror_clean,
    .cancel = mirror_cancel,
    .complete = mirror_complete,
    .busy = mirror_busy,
    .free = mirror_free,
};

/* Does some layer from @top down to @base (excluded; NULL: @top alone)
 * allocate a byte of [off, off + len)? An unknown status counts as yes. */
static bool allocated_above(struct node *top, struct node *base, uint64_t off, uint64_t len)
{
    for (struct node *n = top; n && n != base; n = base ? node_child(n, NODE_ROLE_BACKING) : NULL) {
        for (uint64_t o = off, left = len; left > 0;) {
            uint64_t pnum = 0;
            int bs = node_block_status(n, o, left, &pnum);
            if (bs < 0 || (bs & NODE_BS_ALLOCATED)) {
                return true;
            }
            pnum = pnum ? min_u64(pnum, left) : left;
            o += pnum;
            left -= pnum;
        }
    }
    return false;
}

/* sync=full: everything; top: what the layers above the base allocate. */
static void initial_dirty(struct mtop_state *s, enum mirror_sync sync, struct node *base)
{
    for (uint64_t g = 0; g < s->n_gran; g++) {
        uint64_t len = gran_bytes(s, g, 1);
        if (sync == MIRROR_SYNC_FULL || allocated_above(s->source, base, g * s->gran, len)) {
            mark_dirty(s, g * s->gran, len);
        }
    }
}

int mirror_create(struct job_list *l, struct graph *g, const char *id,
                  const struct mirror_opts *o, struct err *e, struct job **out)
{
    if (o->source == o->target) {
        return err_set(e, 0, 0, "Can't mirror node into itself"), -EINVAL;
    }
    if (o->source->length != o->target->length) {
        return err_set(e, 0, 0, "Source and target image have different sizes"), -EINVAL;
    }
    if (o->granularity && (!is_pow2(o->granularity) || o->granularity < 512 ||
                           o->granularity > (64u << 20))) {
        return err_set(e, 0, 0, "Invalid parameter 'granularity'"), -EINVAL; /* [mem] */
    }
    struct node *mine[] = { o->source, o->target };
    TRY(job_nodes_free(l, mine, 2, e));
    if (job_find(l, id)) {
        return err_set(e, 0, 0, "Job ID '%s' already in use", id), -EEXIST;
    }
    char name[NODE_NAME_MAX];
    snprintf(name, sizeof(name), "mirror-top-%.16s", id);
    struct node *filter;
    TRY(node_new(g, &drv_mirror_top, name, o, e, &filter));
    struct mtop_state *s = mt(filter);
    struct mirror_job *m = mem_alloc(sizeof(*m));
    m->filter = filter;
    m->front = o->front;
    uint64_t buf = o->buf_size ? o->buf_size : MIRROR_BUF_DEFAULT;
    m->buf_size = (buf + s->gran - 1) / s->gran * s->gran; /* rounded up */
    m->on_source_error = o->on_source_error;
    m->on_target_error = o->on_target_error;
    struct job_opts jo = o->job;
    jo.hold[0] = o->source;
    jo.hold[1] = o->target;
    jo.hold[2] = filter;
    struct job *j;
    int ret = job_create(l, id, o->type == JOB_TYPE_COMMIT ? &commit_driver : &mirror_driver,
                         m, &jo, e, &j);
    if (ret < 0) {
        mem_free(m, sizeof(*m));
        s->detached = true;
        return ret;
    }
    s->job = j;
    initial_dirty(s, o->sync, o->base);
    progress(j, s);
    *o->front = filter;
    *out = j;
    return 0;
}

const struct planted_bug mirror_bugs[] = {
    { "mirror-early-complete", NODE_MUTANT_MIRROR_EARLY_COMPLETE,
      "mirror: complete pivots without draining what is dirty or in flight" },
    { "mirror-cancel-forced", NODE_MUTANT_MIRROR_CANCEL_FORCED,
      "mirror: a cancel in READY without force is forced (CANCELLED, not COMPLETED)" },
    { "mirror-lost-dirty", NODE_MUTANT_MIRROR_LOST_DIRTY,
      "mirror: a guest write does not mark the bitmap dirty" },
    { "mirror-no-target-flush", NODE_MUTANT_MIRROR_NO_TARGET_FLUSH,
      "mirror: completes (and commit fails over) without flushing the target" },
};

const size_t mirror_bugs_count = ARRAY_LEN(mirror_bugs);
