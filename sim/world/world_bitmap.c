/*
 * world_bitmap: the world's dirty bitmaps: the guest disk's named bitmaps,
 *   their QBM persistence on simulated files, bitmap records, clean
 *   shutdown, and the checker's hooks (world_int.h).
 *
 * Method: when a run uses bitmaps, every open of the host's stack gives the
 * guest node a dirty set and loads it from QBM; the checker then compares
 * what loaded with its durable image (bitmap-store, or bitmap-crash after a
 * crash), and a sync marks everything in use before the guest goes on (a
 * control op: the pump waits). A bitmap record drains the guest, runs on
 * ref/dirty and on the model, and both must agree on accepting it; then
 * every bitmap is compared. A shutdown reclaims frozen bitmaps (their jobs
 * die with the host), flushes the guest disk, stores the bitmaps and takes
 * the host down without a crash.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../../ref/qbm.h"
#include "world_int.h"

#define IMAGE_NAME "guest"

static const struct trace_rec setup_rec = { .kind = TRACE_RESTART };

/* QEMU's default: the cluster size clamped to [4 KiB, 64 KiB], 64 KiB when
 * the format has none (a plain disk). */
static uint64_t gran_default(const struct world *w)
{
    return w->topo_ops->bitmap_granularity ? w->topo_ops->bitmap_granularity(w)
                                           : DIRTY_GRAN_DEFAULT;
}

static struct cb_where where(const struct world *w, const struct trace_rec *rec)
{
    struct cb_where at = { rec ? rec->line : 0, w->q.now_ns, w->next_op };
    return at;
}

static void judge(struct world *w)
{
    if (w->cb.failed) {
        world__verdict_fail(w, &w->cb.first);
    }
}

int world__bitmap_open(struct world *w, struct stack *s, struct err *e)
{
    s->g.dirty_mark_early = w->o.dirty_mark_early;
    s->root->dirty = dirty_set_new(s->root->length);
    s->root->dirty->drop_successor = (w->o.node_mutants & NODE_MUTANT_DIRTY_RECLAIM_DROP) != 0;
    struct env_timer timer = s->g.timer;
    w->desc_flips_at = files_read_corrupts(&w->files, IMAGE_NAME QBM_DESC_SUFFIX);
    struct qbm_opts qo = { files_env(&w->files), timer, IMAGE_NAME,
                           w->topo_ops->image_format ? w->topo_ops->image_format : "raw",
                           s->root->length, w->o.node_mutants };
    return qbm_open(&qo, s->root->dirty, e, &s->qbm);
}

static void sync_done(void *opaque, int ret)
{
    struct control_op *c = opaque;
    if (!world__control_live(c)) {
        return;
    }
    struct world *w = c->w;
    world__observe(w, TRACE_BITMAP, TRACE_BM__COUNT, ret, w->live->qbm->generation, 0);
    if (ret < 0) {
        world__control_fail_ret(w, c->rec, "bitmap-store", "writing the bitmaps' QBM "
                                "descriptor", ret);
    } else {
        check_bitmap_synced(&w->cb);
    }
    world__control_end(c);
}

static void sync_start(struct world *w, const struct trace_rec *rec)
{
    qbm_sync(w->live->qbm, sync_done, world__control_new(w, rec));
}

/* Bytes one bitmap of @gran over the guest disk costs: the stack's copy,
 * the checker's model and the QBM file's buffer, each a bit per granule. */
static uint64_t bitmap_mem(const struct world *w, uint64_t gran)
{
    uint64_t bits = w->size / gran + 1;
    return 3 * (bits / 8 + 1);
}

/* Refuse, before anything is allocated, a run whose bitmaps cannot fit. */
static int bitmaps_mem_check(const struct world *w, struct err *e)
{
    uint64_t need = 0;
    unsigned line = 0;
    for (unsigned i = 0; i < w->o.n_bitmaps; i++) {
        uint64_t g = w->o.bitmaps[i].gran ? w->o.bitmaps[i].gran : gran_default(w);
        need += bitmap_mem(w, g);
    }
    for (size_t i = 0; i < w->t->n; i++) {
        const struct trace_rec *r = &w->t->recs[i];
        if (r->kind == TRACE_BITMAP && r->bm->op == TRACE_BM_ADD) {
            need += bitmap_mem(w, r->bm->gran ? r->bm->gran : gran_default(w));
            line = need > WORLD_BITMAP_MEM_MAX && !line ? r->line : line;
        }
    }
    if (need <= WORLD_BITMAP_MEM_MAX) {
        return 0;
    }
    return err_set(e, line, 0, "the dirty bitmaps over this %" PRIu64 "-byte disk need about "
                   "%" PRIu64 " MiB of memory, more than the %llu MiB a run may use: use a "
                   "coarser granularity or a smaller disk", w->size, need >> 20,
                   WORLD_BITMAP_MEM_MAX >> 20);
}

int world__bitmap_specs_check(const struct world *w, struct err *e)
{
    TRY(bitmaps_mem_check(w, e));
    for (unsigned i = 0; i < w->o.n_bitmaps; i++) {
        const struct world_bitmap_spec *b = &w->o.bitmaps[i];
        uint64_t g = b->gran;
        if (!trace_bitmap_name_ok(b->name, strlen(b->name)) ||
            (g && (!is_pow2(g) || g < BITMAP_GRAN_MIN || g > (1ull << BITMAP_GRAN_SHIFT_MAX)))) {
            return err_set(e, 0, 0, "bitmap option %u ('%s'): bad name or granularity", i + 1,
                           b->name);
        }
        for (unsigned k = 0; k < i; k++) {
            if (strcmp(w->o.bitmaps[k].name, b->name) == 0) {
                return err_set(e, 0, 0, "bitmap '%s' is given twice", b->name);
            }
        }
    }
    return 0;
}

/* --bitmap options: persistent bitmaps added at the first open. */
static void specs_add(struct world *w)
{
    for (unsigned i = 0; i < w->o.n_bitmaps; i++) {
        struct trace_bitmap op = { .op = TRACE_BM_ADD, .persistent = true };
        snprintf(op.name, sizeof(op.name), "%s", w->o.bitmaps[i].name);
        uint64_t gran = w->o.bitmaps[i].gran ? w->o.bitmaps[i].gran : gran_default(w);
        struct err e = { .file = NULL };
        int ret = dirty_add(w->live->root->dirty, op.name, gran, DIRTY_ADD_PERSISTENT, &e,
                            NULL);
        int want = check_bitmap_apply(&w->cb, &op, gran);
        ASSERT(ret == 0 && want == 0); /* world__bitmap_specs_check passed */
    }
}

void world__bitmap_ready(struct world *w, const struct trace_rec *rec, bool first)
{
    struct cb_where at = where(w, rec);
    /* Lost, undetectably or not: the newest descriptor write never landed,
     * or a flipped read made its slot fail its checksum (the loader rightly
     * falls back to the older slot). A bitmap file read flipped is not a
     * loss: its checksum must refuse it. */
    const char *desc = IMAGE_NAME QBM_DESC_SUFFIX;
    bool lost = files_stale(&w->files, desc) ||
                files_read_corrupts(&w->files, desc) > w->desc_flips_at;
    check_bitmap_loaded(&w->cb, w->live->root->dirty, &at, lost,
                        files_corruptions(&w->files) > 0);
    judge(w);
    if (first) {
        specs_add(w);
    }
    sync_start(w, rec ? rec : &setup_rec);
}

/* Run @op on the stack's dirty set: 0 or a negative errno with @e. */
static int dirty_run(struct dirty_set *s, const struct trace_bitmap *op, uint64_t gran,
                     struct err *e)
{
    switch (op->op) {
    case TRACE_BM_ADD:
        return dirty_add(s, op->name, gran, (op->persistent ? DIRTY_ADD_PERSISTENT : 0) |
                         (op->disabled ? DIRTY_ADD_DISABLED : 0), e, NULL);
    case TRACE_BM_REMOVE:
        return dirty_remove(s, op->name, e);
    case TRACE_BM_CLEAR:
        return dirty_clear(s, op->name, e);
    case TRACE_BM_ENABLE:
        return dirty_enable(s, op->name, e);
    case TRACE_BM_DISABLE:
        return dirty_disable(s, op->name, e);
    case TRACE_BM_MERGE:
        return dirty_merge(s, op->src, op->name, e);
    case TRACE_BM_PERSIST:
        return dirty_persist(s, op->name, true, e);
    case TRACE_BM_SUCCESSOR:
        return dirty_successor_create(s, op->name, e);
    case TRACE_BM_ABDICATE:
        return dirty_successor_abdicate(s, op->name, e);
    case TRACE_BM_RECLAIM:
        return dirty_successor_reclaim(s, op->name, e);
    default:
        UNREACHABLE();
    }
}

static bool op_changes_persistence(enum trace_bitmap_op op)
{
    return op == TRACE_BM_ADD || op == TRACE_BM_REMOVE || op == TRACE_BM_PERSIST;
}

void world__bitmap_rec(struct world *w, const struct trace_rec *rec)
{
    const struct trace_bitmap *op = rec->bm;
    struct dirty_set *set = w->live->root->dirty;
    uint64_t gran = op->gran ? op->gran : gran_default(w);
    struct err e = { .file = NULL };
    bool dance = op->op == TRACE_BM_SUCCESSOR || op->op == TRACE_BM_ABDICATE ||
                 op->op == TRACE_BM_RECLAIM;
    if (dance && world__job_owns_bitmap(w, op->name)) {
        /* A backup froze it: the dance is the job's (QEMU has no command for
         * it; its bitmap commands refuse a busy bitmap so). */
        w->r->ops[TRACE_BITMAP]++;
        w->r->errors[TRACE_BITMAP]++;
        if (w->r->refusal[0] == '\0') {
            snprintf(w->r->refusal, sizeof(w->r->refusal), "line %u: bitmap %s %s: Bitmap '%s' "
                     "is currently in use by another operation and cannot be used", rec->line,
                     trace_bitmap_op_name(op->op), op->name, op->name);
        }
        return;
    }
    int ret = dirty_run(set, op, gran, &e);
    int want = check_bitmap_apply(&w->cb, op, gran);
    world__observe(w, TRACE_BITMAP, op->op, ret, set->n, 0);
    w->r->ops[TRACE_BITMAP]++;
    w->r->errors[TRACE_BITMAP] += ret < 0;
    if (ret < 0 && w->r->refusal[0] == '\0') {
        snprintf(w->r->refusal, sizeof(w->r->refusal), "line %u: bitmap %s %s: %.120s",
                 rec->line, trace_bitmap_op_name(op->op), op->name, e.msg);
    }
    struct cb_where at = where(w, rec);
    const char *prop = dance ? "bitmap-successor" : "bitmap-ops";
    if (ret != want) {
        char msg[300];
        snprintf(msg, sizeof(msg), "bitmap %s %s: the stack answered %s (%.100s), QEMU's rules "
                 "answer %s", trace_bitmap_op_name(op->op), op->name, blocksim_strerror(ret),
                 ret < 0 ? e.msg : "accepted", want < 0 ? blocksim_strerror(want) : "accepted");
        world__control_fail(w, rec, prop, msg);
        return;
    }
    check_bitmap_compare(&w->cb, set, prop, &at);
    judge(w);
    if (ret == 0 && op_changes_persistence(op->op) && w->r->verdict == WORLD_PASS) {
        sync_start(w, rec);
    }
}

void world__bitmap_job_op(struct world *w, enum trace_bitmap_op op, const char *name,
                          unsigned line)
{
    struct trace_bitmap bop = { .op = op };
    snprintf(bop.name, sizeof(bop.name), "%s", name);
    struct trace_rec rec = { .kind = TRACE_BITMAP, .line = line, .bm = &bop };
    int want = check_bitmap_apply(&w->cb, &bop, gran_default(w));
    struct cb_where at = where(w, &rec);
    if (want != 0) { /* the stack did it; QEMU's rules would have refused it */
        char msg[200];
        snprintf(msg, sizeof(msg), "the job ran bitmap %s %s, which QEMU's rules refuse (%s)",
                 trace_bitmap_op_name(op), name, blocksim_strerror(want));
        world__violation_at(w, "bitmap-successor", msg, line);
        return;
    }
    /* Guest writes in flight may already be marked in the stack's bitmap
     * and not yet in the model (it learns of a write when the guest does):
     * compare now only with none in flight; later compares (bitmap records,
     * the end of the run) see them settled either way. */
    if (w->n_inflight == 0) {
        check_bitmap_compare(&w->cb, w->live->root->dirty, "bitmap-successor", &at);
        judge(w);
    }
}

void world__bitmap_job_merged(struct world *w, const char *name, const uint8_t *must,
                              const uint8_t *may, uint64_t gran, unsigned line)
{
    struct trace_rec rec = { .kind = TRACE_BITMAP, .line = line };
    struct cb_where at = where(w, &rec);
    /* As for the other job operations, a guest write still in flight may be
     * marked in the stack and not yet in the model: then a bit the model
     * lacks is allowed (it is in both once the write settles). */
    check_bitmap_abdicate_merged(&w->cb, w->live->root->dirty, name, must, may, gran,
                                 w->n_inflight > 0, &at);
    judge(w);
}

void world__bitmap_crash(struct world *w, enum disk_crash_mode mode)
{
    files_crash(&w->files, mode);
}

/* ---- the bitmap checker as an observer (it is an oracle too: the bitmap
 * records above ask it what QEMU would answer) ---- */

/* A guest write, write-zeroes or discard marks what it covers. */
static void cb_io_done(void *self, const struct checker_io *io)
{
    struct world *w = self;
    if (io->guest && io->op != NODE_OP_READ && io->op != NODE_OP_FLUSH) {
        struct cb_where at = where(w, io->rec);
        check_bitmap_write_done(&w->cb, w->live->root->dirty, io->rec->offset, io->rec->len,
                                &at);
    }
}

static void cb_crash(void *self, unsigned host, bool guest, int mode)
{
    struct world *w = self;
    (void)host;
    (void)mode;
    if (guest) {
        check_bitmap_down(&w->cb, true);
    }
}

static const struct violation *cb_violation(const void *self)
{
    const struct world *w = self;
    return w->cb.failed ? &w->cb.first : NULL;
}

static json_t *cb_json(const void *self)
{
    const struct world *w = self;
    return check_bitmap_json(&w->cb);
}

static void cb_fini(void *self)
{
    struct world *w = self;
    check_bitmap_fini(&w->cb);
}

const struct checker_ops world__bitmap_checker = {
    .name = "bitmap",
    .io_done = cb_io_done,
    .crash = cb_crash,
    .violation = cb_violation,
    /* no .check: check_bitmap_check walks every bit, so it runs at each
     * compare rather than at every pump */
    .json = cb_json,
    .fini = cb_fini,
};

/* ---- the report's snapshot ---- */

static void snapshot_free(struct world_result *r)
{
    for (unsigned i = 0; i < r->n_bitmaps; i++) {
        struct world_bitmap *b = &r->bitmaps[i];
        mem_free(b->extents, b->n_extents * sizeof(*b->extents));
    }
    mem_free(r->bitmaps, r->n_bitmaps * sizeof(*r->bitmaps));
    r->bitmaps = NULL;
    r->n_bitmaps = 0;
}

void world_result_fini(struct world_result *r)
{
    snapshot_free(r);
    json_decref(r->checks);
    r->checks = NULL;
    json_decref(r->jobs);
    r->jobs = NULL;
    json_decref(r->replication);
    r->replication = NULL;
}

static void extents_take(struct world_bitmap *out, const struct bitmap *bits)
{
    uint64_t off = 0;
    uint64_t len = 0;
    size_t cap = 0;
    while (bitmap_next_extent(bits, UINT64_MAX, &off, &len)) {
        if (out->n_extents == cap) {
            size_t ncap = cap ? 2 * cap : 8;
            out->extents = mem_realloc(out->extents, cap * sizeof(*out->extents),
                                       ncap * sizeof(*out->extents));
            cap = ncap;
        }
        out->extents[out->n_extents][0] = off;
        out->extents[out->n_extents][1] = len;
        out->n_extents++;
        off += len;
    }
    out->extents = mem_realloc(out->extents, cap * sizeof(*out->extents),
                               out->n_extents * sizeof(*out->extents));
}

static void snapshot(struct world *w)
{
    struct world_result *r = w->r;
    if (!w->o.want_bitmaps) {
        return;
    }
    snapshot_free(r);
    const struct dirty_set *set = w->live->root->dirty;
    r->bitmaps = mem_alloc(set->n * sizeof(*r->bitmaps));
    const struct dirty_bitmap *b;
    TAILQ_FOREACH(b, &set->list, link) {
        struct world_bitmap *o = &r->bitmaps[r->n_bitmaps++];
        snprintf(o->name, sizeof(o->name), "%s", b->name);
        o->granularity = bitmap_granularity(b->bits);
        o->state = dirty_status(b);
        o->persistent = b->persistent;
        o->recording = dirty_recording(b);
        o->count = bitmap_count(b->bits);
        extents_take(o, b->bits);
    }
}

void world__bitmap_end(struct world *w)
{
    bool finished = w->next >= w->t->n && w->n_inflight == 0 && !w->control_busy;
    if (w->live && finished && w->r->verdict == WORLD_PASS && !w->r->ended_early) {
        struct cb_where at = where(w, NULL);
        check_bitmap_compare(&w->cb, w->live->root->dirty, "bitmap-ops", &at);
        judge(w);
    }
    if (w->live) {
        snapshot(w);
    }
    w->r->bitmaps_lost = !w->live && w->cb.crashed;
}

/* ---- clean shutdown ---- */

static void shutdown_stored(void *opaque, int ret)
{
    struct control_op *c = opaque;
    if (!world__control_live(c)) {
        return;
    }
    struct world *w = c->w;
    world__observe(w, TRACE_SHUTDOWN, 1, ret, 0, 0);
    if (ret < 0) {
        world__control_fail_ret(w, c->rec, "bitmap-store", "storing the bitmaps at shutdown",
                                ret);
        world__control_end(c);
        return;
    }
    if (w->bitmaps) {
        check_bitmap_stored(&w->cb);
        snapshot(w);
        check_bitmap_down(&w->cb, false);
    }
    world__guest_shut(w, c->rec);
    world__control_end(c);
}

/* The shutdown's flush, as the checkers see it. */
static struct checker_io shutdown_io(const struct world *w, const struct trace_rec *rec,
                                     int ret)
{
    return (struct checker_io){ .op = NODE_OP_FLUSH, .rec = rec, .index = w->next_op,
                                .ret = ret, .now_ns = w->q.now_ns };
}

static void shutdown_flushed(void *opaque, int ret)
{
    struct control_op *c = opaque;
    if (!world__control_live(c)) {
        return;
    }
    struct world *w = c->w;
    struct checker_io io = shutdown_io(w, c->rec, ret);
    world__checkers_done(w, &io, c->cookie);
    world__observe(w, TRACE_SHUTDOWN, 0, ret, 0, 0);
    if (ret < 0) {
        world__control_fail_ret(w, c->rec, "shutdown", "the flush at shutdown", ret);
        world__control_end(c);
        return;
    }
    if (w->live->qbm) {
        qbm_store(w->live->qbm, shutdown_stored, c);
    } else {
        shutdown_stored(c, 0);
    }
}

void world__shutdown(struct world *w, const struct trace_rec *rec)
{
    struct control_op *c = world__control_new(w, rec);
    if (w->bitmaps) {
        /* A job owning a bitmap dies with the host: it is reclaimed. */
        struct dirty_bitmap *b;
        TAILQ_FOREACH(b, &w->live->root->dirty->list, link) {
            if (b->successor) {
                int ret = dirty_successor_reclaim(w->live->root->dirty, b->name, NULL);
                ASSERT(ret == 0);
            }
        }
        check_bitmap_reclaim_all(&w->cb);
    }
    w->r->ops[TRACE_SHUTDOWN]++;
    struct checker_io io = shutdown_io(w, rec, 0);
    world__checkers_submit(w, &io, c->cookie);
    node_flush(w->live->root, shutdown_flushed, c);
}
