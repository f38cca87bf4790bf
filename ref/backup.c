/*
 * backup: see backup.h.
 *
 * Method: one byte of copy state per cluster (not in the copy set or
 *   copied, still to copy, being copied). A copy reads the cluster from the
 *   source (below the filter) and writes it to the target. A guest write
 *   through the filter first starts copies of every cluster of its range
 *   still to copy, then parks until none of its clusters is being copied;
 *   parked requests are retried, in arrival order, whenever a copy ends.
 *   The job walks the clusters with a cursor, one copy at a time, sleeping
 *   as the rate limit says.
 */
#include "backup.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

enum { CL_SKIP, CL_NEED, CL_BUSY };

/* The copy state: the filter node's state. */
struct cbw_state {
    struct node *source;
    struct node *target;
    uint64_t cluster;
    uint64_t n_clusters;
    uint8_t *cl;          /* per cluster: CL_* */
    struct req_fifo parked; /* guest writes waiting for copies */
    struct job *job;      /* NULL once the job is gone */
    bool detached;        /* the job ended: a plain pass-through */
    bool no_background;   /* sync=none */
};

/* The job's driver state. */
struct backup_job {
    struct node *filter;
    struct node **front;
    uint64_t cursor;      /* next cluster the background walk looks at */
    enum job_policy on_source_error, on_target_error;
    bool copying;         /* its own copy is in flight */
    struct dirty_set *dirty;  /* with a bitmap: its set, name and mode */
    char bitmap[DIRTY_NAME_MAX];
    enum backup_bitmap_mode bitmap_mode;
};

/* One cluster copy in flight. */
struct copy {
    struct node *filter;
    uint64_t c;           /* the cluster */
    uint64_t len;         /* bytes (the last cluster may be short) */
    uint8_t *buf;
    bool zero;            /* the source reads as zeroes there */
    bool by_job;
    int ret;
    bool read_failed;
};

static struct cbw_state *cbw(const struct node *n)
{
    return n->state;
}

/* ---- the filter ---- */

static int cbw_open(struct node *n, const void *opts, struct err *e)
{
    const struct backup_opts *o = opts;
    (void)e;
    struct cbw_state *s = cbw(n);
    s->source = o->source;
    s->target = o->target;
    s->cluster = o->cluster ? o->cluster : BACKUP_CLUSTER_DEFAULT;
    s->n_clusters = (o->source->length + s->cluster - 1) / s->cluster;
    s->cl = mem_alloc(s->n_clusters ? s->n_clusters : 1);
    s->no_background = o->sync == BACKUP_SYNC_NONE;
    n->length = o->source->length;
    node_child_attach(n, o->source, NODE_ROLE_FILE);
    return 0;
}

static void cbw_close(struct node *n)
{
    struct cbw_state *s = cbw(n);
    ASSERT(s->parked.head == NULL);
    mem_free(s->cl, s->n_clusters ? s->n_clusters : 1);
}

static void copy_start(struct node *filter, uint64_t c, bool by_job);

static void forward_done(void *opaque, int ret)
{
    req_complete(opaque, ret);
}

static void forward(struct cbw_state *s, struct req *req)
{
    node_submit(s->source, req->op, req->offset, req->len, req->buf, req->flags, forward_done,
                req);
}

static void cbw_read(struct node *n, struct req *req)
{
    forward(cbw(n), req);
}

/* The clusters of @req's range. */
static void req_clusters(const struct cbw_state *s, const struct req *req, uint64_t *first,
                         uint64_t *end)
{
    *first = req->offset / s->cluster;
    *end = (req->offset + req->len + s->cluster - 1) / s->cluster;
}

/* Start the copies @req needs; true when none of its clusters is busy and
 * it may go on to the source. */
static bool write_may_go(struct node *n, struct req *req)
{
    struct cbw_state *s = cbw(n);
    if (s->detached) {
        return true;
    }
    uint64_t first;
    uint64_t end;
    req_clusters(s, req, &first, &end);
    bool busy = false;
    for (uint64_t c = first; c < end; c++) {
        if (s->cl[c] == CL_NEED) {
            copy_start(n, c, false);
        }
        busy |= s->cl[c] == CL_BUSY;
    }
    return !busy;
}

/* Planted bug: the copy starts once the guest write is done. */
static void late_copy(void *opaque, int ret)
{
    struct req *req = opaque;
    (void)write_may_go(req->node, req);
    req_complete(req, ret);
}

static void cbw_write(struct node *n, struct req *req)
{
    struct cbw_state *s = cbw(n);
    if (node_mutant(n, NODE_MUTANT_BACKUP_CBW_LATE) && !s->detached) {
        /* Planted bug: the guest write goes first and its clusters are
         * copied after it, so the target gets the new data, not the old. */
        node_submit(s->source, req->op, req->offset, req->len, req->buf, req->flags, late_copy,
                    req);
        return;
    }
    if (write_may_go(n, req)) {
        forward(s, req);
        return;
    }
    req_fifo_push(&s->parked, req);
}

/* A copy ended: retry every parked write (in order); a write whose copy
 * failed fails with that error. */
static void unpark(struct node *n, uint64_t c, int ret)
{
    struct cbw_state *s = cbw(n);
    struct req *list = req_fifo_take(&s->parked);
    while (list) {
        struct req *req = list;
        list = req->drv_ptr;
        uint64_t first;
        uint64_t end;
        req_clusters(s, req, &first, &end);
        if (ret < 0 && c >= first && c < end) {
            req_complete(req, ret); /* on-cbw-error=break-guest-write */
        } else if (write_may_go(n, req)) {
            forward(s, req);
        } else {
            req_fifo_push(&s->parked, req);
        }
    }
}

static void cbw_flush(struct node *n, struct req *req)
{
    forward(cbw(n), req);
}

static int cbw_block_status(struct node *n, uint64_t offset, uint64_t len, uint64_t *pnum)
{
    return node_block_status(cbw(n)->source, offset, len, pnum);
}

static void cbw_check(const struct node *n)
{
    const struct cbw_state *s = cbw(n);
    ASSERT(s->source != NULL && s->target != NULL && is_pow2(s->cluster));
    ASSERT(n->n_children == 1 && n->children[0].node == s->source);
}

const struct node_driver drv_cbw = {
    .name = "copy-before-write",
    .state_size = sizeof(struct cbw_state),
    .open = cbw_open,
    .close = cbw_close,
    .submit = {
        [NODE_OP_READ] = cbw_read,
        [NODE_OP_WRITE] = cbw_write,
        [NODE_OP_FLUSH] = cbw_flush,
        [NODE_OP_DISCARD] = cbw_write,
        [NODE_OP_WRITE_ZEROES] = cbw_write,
    },
    .block_status = cbw_block_status,
    .check = cbw_check,
};

/* ---- copying one cluster ---- */

static void copy_end(struct copy *cp);

static void copy_written(void *opaque, int ret)
{
    struct copy *cp = opaque;
    cp->ret = ret;
    copy_end(cp);
}

static void copy_read(void *opaque, int ret)
{
    struct copy *cp = opaque;
    struct cbw_state *s = cbw(cp->filter);
    if (ret < 0) {
        cp->ret = ret;
        cp->read_failed = true;
        copy_end(cp);
        return;
    }
    node_write(s->target, cp->c * s->cluster, cp->len, cp->buf, 0, copy_written, cp);
}

static void copy_start(struct node *filter, uint64_t c, bool by_job)
{
    struct cbw_state *s = cbw(filter);
    ASSERT(s->cl[c] == CL_NEED);
    s->cl[c] = CL_BUSY;
    struct copy *cp = mem_alloc(sizeof(*cp));
    cp->filter = filter;
    cp->c = c;
    cp->len = min_u64(s->cluster, s->source->length - c * s->cluster);
    cp->by_job = by_job;
    uint64_t pnum = 0;
    int bs = node_block_status(s->source, c * s->cluster, cp->len, &pnum);
    cp->zero = bs >= 0 && (bs & NODE_BS_ZERO) && pnum == cp->len; /* spec 4.4 */
    if (cp->zero) {
        node_submit(s->target, NODE_OP_WRITE_ZEROES, c * s->cluster, cp->len, NULL, 0,
                    copy_written, cp);
        return;
    }
    cp->buf = mem_alloc(cp->len);
    node_read(s->source, c * s->cluster, cp->len, cp->buf, copy_read, cp);
}

static void job_copy_done(struct backup_job *b, struct copy *cp);

static void copy_end(struct copy *cp)
{
    struct node *filter = cp->filter;
    struct cbw_state *s = cbw(filter);
    ASSERT(s->cl[cp->c] == CL_BUSY);
    s->cl[cp->c] = cp->ret < 0 ? CL_NEED : CL_SKIP;
    if (cp->ret == 0 && s->job) {
        s->job->offset += cp->len;
    }
    struct backup_job *b = s->job ? s->job->drv_state : NULL;
    if (cp->by_job && b) {
        job_copy_done(b, cp);
    } else if (b && !b->copying) {
        job_kick(s->job); /* a job waiting on this cluster goes on */
    }
    unpark(filter, cp->c, cp->by_job ? 0 : cp->ret);
    mem_free(cp->buf, cp->buf ? cp->len : 0);
    mem_free(cp, sizeof(*cp));
}

/* ---- the job ---- */

static struct backup_job *bj(const struct job *j)
{
    return j->drv_state;
}

static void backup_run(struct job *j)
{
    struct backup_job *b = bj(j);
    struct cbw_state *s = cbw(b->filter);
    if (s->no_background) {
        job_wait(j); /* only the guest's writes copy; runs until cancelled */
        return;
    }
    bool busy = false;
    for (; b->cursor < s->n_clusters; b->cursor++) {
        if (s->cl[b->cursor] == CL_NEED) {
            b->copying = true;
            copy_start(b->filter, b->cursor, true);
            return;
        }
        busy |= s->cl[b->cursor] == CL_BUSY;
        if (busy) {
            break; /* a guest write's copy of it is in flight: wait for it */
        }
    }
    if (busy) {
        job_wait(j);
        return;
    }
    job_work_done(j, 0);
}

static void job_copy_done(struct backup_job *b, struct copy *cp)
{
    struct cbw_state *s = cbw(b->filter);
    struct job *j = s->job;
    b->copying = false;
    if (cp->ret == 0) {
        b->cursor = cp->c + 1;
        job_sleep(j, job_ratelimit(j, cp->len));
        return;
    }
    enum job_policy p = cp->read_failed ? b->on_source_error : b->on_target_error;
    if (job_error(j, p, cp->read_failed, cp->ret) == JOB_ACTION_REPORT) {
        job_work_done(j, cp->ret);
        return;
    }
    job_yield(j); /* stop: pauses here and retries after resume; ignore: retries */
}

/* The bitmap at the end (QEMU's backup_cleanup_sync_bitmap): abdicated
 * when the job succeeded with on-success, else reclaimed. */
static void bitmap_end(struct backup_job *b, bool success)
{
    if (!b->bitmap[0]) {
        return;
    }
    bool always = b->bitmap_mode == BACKUP_BMODE_ALWAYS;
    int ret = (success || always) && b->bitmap_mode != BACKUP_BMODE_NEVER
                  ? dirty_successor_abdicate(b->dirty, b->bitmap, NULL)
                  : dirty_successor_reclaim(b->dirty, b->bitmap, NULL);
    ASSERT(ret == 0); /* the job owns the frozen bitmap */
    if (success || !always || node_mutant(b->filter, NODE_MUTANT_BACKUP_ALWAYS_NO_MERGE)) {
        return; /* (planted bug: the clusters it did not copy are not merged in) */
    }
    /* Failed under always: merge in the clusters it did not copy. */
    const struct cbw_state *s = cbw(b->filter);
    struct dirty_bitmap *bm = dirty_find(b->dirty, b->bitmap);
    for (uint64_t c = 0; c < s->n_clusters; c++) {
        if (s->cl[c] != CL_SKIP) {
            bitmap_set(bm->bits, c * s->cluster,
                       min_u64(s->cluster, s->source->length - c * s->cluster));
        }
    }
}

static void backup_commit(struct job *j)
{
    bitmap_end(bj(j), true);
}

static void backup_abort(struct job *j)
{
    /* Planted bug: the failed job's successor replaces the bitmap, so the
     * writes before the job are lost from it. */
    bitmap_end(bj(j), node_mutant(bj(j)->filter, NODE_MUTANT_BACKUP_ABDICATE_ALWAYS));
}

/* The job's end, either way: the guest goes back to the source. */
static void backup_clean(struct job *j)
{
    struct backup_job *b = bj(j);
    struct cbw_state *s = cbw(b->filter);
    job_filter_drop(b->front, b->filter, s->source);
    /* New guest writes pass straight through; a parked one still waits
     * for the copies it started (as QEMU drains the filter before it drops
     * it), so no copy lands on the target after a later job started. */
    s->detached = true;
}

static void backup_free(struct job *j)
{
    struct backup_job *b = bj(j);
    struct cbw_state *s = cbw(b->filter);
    s->job = NULL;
    s->detached = true; /* the host died, or the job was dismissed */
    mem_free(b, sizeof(*b));
}

static const struct job_driver backup_driver = {
    .type = JOB_TYPE_BACKUP,
    .run = backup_run,
    .commit = backup_commit,
    .abort = backup_abort,
    .clean = backup_clean,
    .free = backup_free,
};

/* sync=top: only clusters the source layer itself allocates. */
static void copy_set_top(struct cbw_state *s)
{
    for (uint64_t c = 0; c < s->n_clusters; c++) {
        uint64_t off = c * s->cluster;
        uint64_t len = min_u64(s->cluster, s->source->length - off);
        bool alloc = false;
        while (len > 0 && !alloc) {
            uint64_t pnum = 0;
            int bs = node_block_status(s->source, off, len, &pnum);
            alloc = bs < 0 || (bs & NODE_BS_ALLOCATED); /* unknown: copy it */
            pnum = pnum ? min_u64(pnum, len) : len;
            off += pnum;
            len -= pnum;
        }
        s->cl[c] = alloc ? CL_NEED : CL_SKIP;
    }
}

/* sync=bitmap: the clusters with a dirty bit. */
static void copy_set_bitmap(struct cbw_state *s, const struct dirty_bitmap *bm)
{
    for (uint64_t c = 0; c < s->n_clusters; c++) {
        uint64_t off = c * s->cluster;
        uint64_t len = min_u64(s->cluster, s->source->length - off);
        s->cl[c] = bitmap_next_dirty(bm->bits, off, len) >= 0 ? CL_NEED : CL_SKIP;
    }
}

/* QEMU's checks of a backup's bitmap options (blockdev.c do_backup_common,
 * texts [mem]); @sync may be turned from incremental into bitmap. */
static int bitmap_opts_check(const struct backup_opts *o, enum backup_sync *sync,
                             const struct dirty_bitmap **bm, struct err *e)
{
    static const char *const sync_names[] = { "full", "top", "none", "incremental", "bitmap" };
    static const char *const mode_names[] = { "on-success", "never", "always" };
    *bm = NULL;
    if ((*sync == BACKUP_SYNC_BITMAP || *sync == BACKUP_SYNC_INCREMENTAL) && !o->bitmap) {
        return err_set(e, 0, 0, "must provide a valid bitmap name for '%s' sync mode",
                       sync_names[*sync]), -EINVAL;
    }
    enum backup_bitmap_mode mode = o->bitmap_mode;
    bool has_mode = o->has_bitmap_mode;
    if (*sync == BACKUP_SYNC_INCREMENTAL) {
        if (has_mode && mode != BACKUP_BMODE_ON_SUCCESS) {
            return err_set(e, 0, 0, "Bitmap sync mode must be 'on-success' when using sync "
                           "mode 'incremental'"), -EINVAL;
        }
        *sync = BACKUP_SYNC_BITMAP;
        has_mode = true;
        mode = BACKUP_BMODE_ON_SUCCESS;
    }
    if (!o->bitmap) {
        if (has_mode) {
            return err_set(e, 0, 0, "Cannot specify bitmap sync mode without a bitmap"),
                   -EINVAL;
        }
        return 0;
    }
    *bm = o->dirty ? dirty_find(o->dirty, o->bitmap) : NULL;
    if (!*bm) {
        return err_set(e, 0, 0, "Bitmap '%s' could not be found", o->bitmap), -ENOENT;
    }
    if (!has_mode) {
        return err_set(e, 0, 0, "Bitmap sync mode must be given when providing a bitmap"),
               -EINVAL;
    }
    if ((*bm)->busy || (*bm)->successor) {
        return err_set(e, 0, 0, "Bitmap '%s' is currently in use by another operation and "
                       "cannot be used", o->bitmap), -EBUSY;
    }
    if ((*bm)->inconsistent) {
        return err_set(e, 0, 0, "Bitmap '%s' is inconsistent and cannot be used", o->bitmap),
               -EINVAL;
    }
    if (*sync == BACKUP_SYNC_NONE) {
        return err_set(e, 0, 0, "sync mode 'none' does not produce meaningful bitmap "
                       "outputs"), -EINVAL;
    }
    if (mode == BACKUP_BMODE_NEVER && *sync != BACKUP_SYNC_BITMAP) {
        return err_set(e, 0, 0, "Bitmap sync mode '%s' has no meaningful effect when combined "
                       "with sync mode '%s'", mode_names[mode], sync_names[*sync]), -EINVAL;
    }
    return 0;
}

int backup_do_checkpoint(struct job *j, struct err *e)
{
    if (j->drv != &backup_driver) {
        return err_set(e, 0, 0, "Job '%s' is not a backup job", j->id), -EINVAL;
    }
    struct cbw_state *s = cbw(bj(j)->filter);
    if (!s->no_background) { /* [mem] */
        return err_set(e, 0, 0, "The backup job only supports block checkpoint in "
                       "sync=none mode"), -EINVAL;
    }
    for (uint64_t c = 0; c < s->n_clusters; c++) {
        ASSERT(s->cl[c] != CL_BUSY);
        s->cl[c] = CL_NEED;
    }
    return 0;
}

int backup_create(struct job_list *l, struct graph *g, const char *id,
                  const struct backup_opts *o, struct err *e, struct job **out)
{
    enum backup_sync sync = o->sync;
    const struct dirty_bitmap *bm;
    TRY(bitmap_opts_check(o, &sync, &bm, e));
    /* Texts of QEMU's backup_job_create [mem]. */
    if (o->source == o->target) {
        return err_set(e, 0, 0, "Source and target cannot be the same"), -EINVAL;
    }
    if (o->source->length != o->target->length) {
        return err_set(e, 0, 0, "Source (%llu) and target (%llu) have different sizes",
                       (unsigned long long)o->source->length,
                       (unsigned long long)o->target->length), -EINVAL;
    }
    if (o->cluster && (!is_pow2(o->cluster) || o->cluster < NODE_SECTOR)) {
        return err_set(e, 0, 0, "cluster size must be a power of two of at least 512"),
               -EINVAL;
    }
    struct node *mine[] = { o->source, o->target };
    TRY(job_nodes_free(l, mine, 2, e));
    if (job_find(l, id)) { /* before the filter exists */
        return err_set(e, 0, 0, "Job ID '%s' already in use", id), -EEXIST;
    }
    char name[NODE_NAME_MAX];
    snprintf(name, sizeof(name), "cbw-%.20s", id);
    struct node *filter;
    TRY(node_new(g, &drv_cbw, name, o, e, &filter));
    struct cbw_state *s = cbw(filter);
    struct backup_job *b = mem_alloc(sizeof(*b));
    b->filter = filter;
    b->front = o->front;
    b->on_source_error = o->on_source_error;
    b->on_target_error = o->on_target_error;
    struct job_opts jo = o->job;
    jo.hold[0] = o->source;
    jo.hold[1] = o->target;
    jo.hold[2] = filter;
    struct job *j;
    int ret = job_create(l, id, &backup_driver, b, &jo, e, &j);
    if (ret < 0) {
        mem_free(b, sizeof(*b));
        s->detached = true; /* the filter stays in the graph, unused */
        return ret;
    }
    s->job = j;
    if (sync == BACKUP_SYNC_TOP) {
        copy_set_top(s);
    } else if (sync == BACKUP_SYNC_BITMAP) {
        copy_set_bitmap(s, bm);
    } else {
        memset(s->cl, CL_NEED, s->n_clusters);
    }
    if (bm) { /* frozen: guest writes go to its successor until the end */
        b->dirty = o->dirty;
        snprintf(b->bitmap, sizeof(b->bitmap), "%s", o->bitmap);
        b->bitmap_mode = o->has_bitmap_mode ? o->bitmap_mode : BACKUP_BMODE_ON_SUCCESS;
        int ret2 = dirty_successor_create(o->dirty, o->bitmap, NULL);
        ASSERT(ret2 == 0); /* checked above */
    }
    /* Progress: the bytes of the copy set (sync=none too: QEMU counts the
     * whole disk, of which the guest's writes copy some). */
    for (uint64_t c = 0; c < s->n_clusters; c++) {
        j->len += s->cl[c] == CL_NEED ? min_u64(s->cluster, filter->length - c * s->cluster) : 0;
    }
    *o->front = filter;
    *out = j;
    return 0;
}

const struct planted_bug backup_bugs[] = {
    { "backup-cbw-late", NODE_MUTANT_BACKUP_CBW_LATE,
      "backup: a guest write reaches the source before its cluster is copied" },
    { "backup-abdicate-always", NODE_MUTANT_BACKUP_ABDICATE_ALWAYS,
      "backup: a failed or cancelled incremental backup abdicates its bitmap (bits lost)" },
    { "backup-always-no-merge", NODE_MUTANT_BACKUP_ALWAYS_NO_MERGE,
      "backup: bitmap-mode=always on failure does not merge in what was not copied" },
};

const size_t backup_bugs_count = ARRAY_LEN(backup_bugs);
