/*
 * gen: see gen.h.
 *
 * Method: choice_range reads ceil(log256(span)) bytes big-endian and folds
 * them into the range with a modulo: lower bytes mean smaller values, so the
 * shrinker's "zero or lower a byte" moves toward simpler scenarios. The
 * scenario decoder is model-based: it tracks whether the host is up and
 * which ranges were written, so it only emits records that are valid where
 * they stand, and it ends with a flush and a read of every written range, so
 * a wrong value anywhere is observed.
 */
#include "gen.h"

#include <stdio.h>
#include <string.h>

#include "../ref/base.h"
#include "../sim/dev/disk.h"

void choices_init_bytes(struct choices *c, const uint8_t *data, size_t len)
{
    memset(c, 0, sizeof(*c));
    c->cap = len ? len : 1;
    c->buf = mem_alloc(c->cap);
    memcpy(c->buf, data, len);
    c->len = len;
}

void choices_init_record(struct choices *c, struct rng *r)
{
    memset(c, 0, sizeof(*c));
    c->cap = 256;
    c->buf = mem_alloc(c->cap);
    c->extend = r;
}

void choices_fini(struct choices *c)
{
    mem_free(c->buf, c->cap);
    memset(c, 0, sizeof(*c));
}

static uint8_t choice_byte(struct choices *c)
{
    if (c->pos < c->len) {
        return c->buf[c->pos++];
    }
    if (!c->extend) {
        c->pos++;
        return 0;
    }
    if (c->len == c->cap) {
        c->buf = mem_realloc(c->buf, c->cap, 2 * c->cap);
        c->cap *= 2;
    }
    c->buf[c->len++] = (uint8_t)rng_next(c->extend);
    return c->buf[c->pos++];
}

uint64_t choice_range(struct choices *c, uint64_t lo, uint64_t hi)
{
    ASSERT(lo <= hi);
    uint64_t span = hi - lo;
    if (span == 0) {
        return lo;
    }
    uint64_t x = 0;
    for (uint64_t s = span; s > 0; s >>= 8) {
        x = (x << 8) | choice_byte(c);
    }
    return span == UINT64_MAX ? x : lo + x % (span + 1);
}

unsigned choice_weighted(struct choices *c, const unsigned *weights, unsigned n)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < n; i++) {
        total += weights[i];
    }
    ASSERT(total > 0);
    uint64_t x = choice_range(c, 0, total - 1);
    for (unsigned i = 0; i < n; i++) {
        if (x < weights[i]) {
            return i;
        }
        x -= weights[i];
    }
    UNREACHABLE();
}

void choice_span_begin(struct choices *c)
{
    c->open_span = c->pos;
}

void choice_span_end(struct choices *c)
{
    if (c->n_spans < GEN_SPANS_MAX && c->pos > c->open_span) {
        c->spans[c->n_spans].start = c->open_span;
        c->spans[c->n_spans].end = c->pos;
        c->n_spans++;
    }
}

/* ---- the scenario decoder ---- */

enum gen_op {
    G_WRITE, G_READ, G_FLUSH, G_ZERO, G_DISCARD, G_CRASH, G_COMMIT, G_EMPTY, G_BITMAP,
    G_SHUTDOWN, G_JOB, G_COLO, G__COUNT
};

#define GEN_SIZE (1u << 20)
#define GEN_HOT_SECTORS 256u
#define GEN_WRITTEN_MAX 64u

struct gen_state {
    struct choices *c;
    const struct gen_opts *o;
    struct trace *t;
    bool overlay;
    unsigned weights[G__COUNT];
    unsigned children; /* quorum topology */
    unsigned nbd;
    uint64_t written[GEN_WRITTEN_MAX][3]; /* offset, length, guest */
    unsigned n_written;
    bool flush_crash;  /* a crash with at-flush= was emitted (one a trace) */
    unsigned jobs;     /* jobs created (ids j0, j1, ...) */
    bool job_live;     /* the last one may still run (no crash since) */
    bool job_none;     /* it is a sync=none backup (runs until cancelled) */
    enum trace_job_op job_op; /* its kind */
    bool failed_over;  /* colo: the secondary took over */
    bool sec_down;     /* colo: the secondary host is down */
    bool sec_lost;     /* colo: it went down once (its guest's I/O may fail since) */
    bool fleece;       /* jobs: a fleecing target 'fl' exists (read over NBD) */
    bool fleece_used;  /* ...and one backup took it (one a trace) */
};

static struct trace_rec *emit(struct gen_state *g, enum trace_kind kind)
{
    return trace_append(g->t, kind);
}

/* The quorum topology: 2 to 4 children (zero bytes: 2, threshold 1). */
static void gen_quorum(struct gen_state *g)
{
    struct trace_rec *r = emit(g, TRACE_TOPOLOGY);
    struct trace_cfg *c = r->cfg = trace_cfg_new();
    c->topology = TRACE_TOPO_QUORUM;
    c->size = GEN_SIZE;
    c->has_size = true;
    c->children = (unsigned)choice_range(g->c, 2, 4);
    c->threshold = (unsigned)choice_range(g->c, 1, c->children);
    c->fifo = choice_range(g->c, 0, 3) == 3;
    c->rewrite = choice_range(g->c, 0, 1) == 1;
    c->nbd = g->o->net ? (unsigned)choice_range(g->c, 1, c->children) : 0;
    if (choice_range(g->c, 0, 7) == 7) {
        c->ignore_mask = 1u << choice_range(g->c, 0, c->children - 1);
    }
    g->children = c->children;
    g->nbd = c->nbd;
    static const uint64_t caches[] = { 0, 64u << 10 };
    for (unsigned d = 0; d < c->children; d++) {
        struct trace_rec *dr = emit(g, TRACE_DISK);
        dr->cfg = trace_cfg_new();
        snprintf(dr->cfg->name, sizeof(dr->cfg->name), "c%u", d);
        dr->cfg->cache = caches[choice_range(g->c, 0, 1)];
        dr->cfg->has_cache = true;
    }
}

/* The colo topology: small overlay clusters, any backup cluster. */
static void gen_colo_topology(struct gen_state *g)
{
    struct trace_cfg *c = emit(g, TRACE_TOPOLOGY)->cfg = trace_cfg_new();
    static const uint64_t backup[] = { 0, 4096, 16384 };
    c->topology = TRACE_TOPO_COLO;
    c->size = GEN_SIZE;
    c->has_size = true;
    c->cluster = 4096;
    c->has_cluster = true;
    c->backup_cluster = backup[choice_range(g->c, 0, 2)];
    static const char *const disks[] = { "primary-disk", "secondary-disk" };
    for (unsigned d = 0; d < 2; d++) {
        struct trace_rec *dr = emit(g, TRACE_DISK);
        dr->cfg = trace_cfg_new();
        snprintf(dr->cfg->name, sizeof(dr->cfg->name), "%s", disks[d]);
        dr->cfg->cache = choice_range(g->c, 0, 1) ? 1u << 20 : 0;
        dr->cfg->has_cache = true;
    }
}

static void gen_topology(struct gen_state *g)
{
    const struct gen_opts *o = g->o;
    if (o->quorum) {
        gen_quorum(g);
        return;
    }
    if (o->colo) {
        gen_colo_topology(g);
        return;
    }
    g->overlay = o->overlay && (!o->plain || choice_range(g->c, 0, 1));
    struct trace_rec *r = emit(g, TRACE_TOPOLOGY);
    r->cfg = trace_cfg_new();
    r->cfg->topology = g->overlay ? TRACE_TOPO_OVERLAY : TRACE_TOPO_PLAIN;
    r->cfg->size = GEN_SIZE;
    r->cfg->has_size = true;
    if (g->overlay) {
        r->cfg->cluster = 4096;
        r->cfg->has_cluster = true;
    }
    static const uint64_t caches[] = { 0, 64u << 10, 1u << 20 };
    const char *name = g->overlay ? "base" : "d0";
    for (unsigned d = 0; d < (g->overlay ? 2u : 1u); d++) {
        struct trace_rec *dr = emit(g, TRACE_DISK);
        dr->cfg = trace_cfg_new();
        snprintf(dr->cfg->name, sizeof(dr->cfg->name), "%s", d ? "top" : name);
        dr->cfg->cache = caches[choice_range(g->c, 0, 2)];
        dr->cfg->has_cache = true;
        if (o->torn && choice_range(g->c, 0, 1)) {
            dr->cfg->atomic = false;
            dr->cfg->has_atomic = true;
        }
    }
    if (o->jobs) { /* the jobs' target: on the guest's host, or over NBD on its own */
        struct trace_rec *dr = emit(g, TRACE_DISK);
        dr->cfg = trace_cfg_new();
        snprintf(dr->cfg->name, sizeof(dr->cfg->name), "tgt");
        dr->cfg->size = GEN_SIZE;
        dr->cfg->has_size = true;
        if (choice_range(g->c, 0, 2) == 2) {
            snprintf(dr->cfg->host, sizeof(dr->cfg->host), "vault");
        }
    }
    if ((o->jobs & GEN_JOB_BACKUP) && !o->jobs_bitmap && choice_range(g->c, 0, 3) == 3) {
        struct trace_rec *fr = emit(g, TRACE_DISK); /* image fleecing, read over NBD */
        fr->cfg = trace_cfg_new();
        snprintf(fr->cfg->name, sizeof(fr->cfg->name), "fl");
        fr->cfg->size = GEN_SIZE;
        fr->cfg->has_size = true;
        snprintf(fr->cfg->backing, sizeof(fr->cfg->backing), "guest");
        g->fleece = true;
    }
}

/* Swarm: each seed enables a subset of operation kinds with skewed weights. */
static void gen_swarm(struct gen_state *g)
{
    static const unsigned skew[] = { 0, 1, 3, 9 };
    for (int k = 0; k < G__COUNT; k++) {
        /* Without jobs no byte is drawn for them: other properties' seeds
         * keep the scenarios they had before jobs existed. */
        bool drawn = (k != G_JOB || g->o->jobs) && (k != G_COLO || g->o->colo);
        g->weights[k] = drawn ? skew[choice_range(g->c, 0, 3)] : 0;
    }
    g->weights[G_WRITE] += 1; /* writes always possible */
    g->weights[G_READ] += 1;
    if (!g->o->crashes) {
        g->weights[G_CRASH] = 0;
    }
    if (!g->overlay) {
        g->weights[G_COMMIT] = g->weights[G_EMPTY] = 0;
    }
    g->weights[G_BITMAP] = g->o->bitmaps ? g->weights[G_BITMAP] + 2 : 0;
    g->weights[G_COLO] += g->o->colo ? 2 : 0;
    if (!g->o->shutdowns) {
        g->weights[G_SHUTDOWN] = 0;
    }
    if (g->o->flush_crashes) { /* the races live between flushes and new data */
        g->weights[G_FLUSH] += 3;
        g->weights[G_CRASH] += 1;
        g->weights[G_EMPTY] += g->overlay ? 2 : 0;
        g->weights[G_COMMIT] += g->overlay ? 2 : 0;
    }
}

/* A network rule that heals well within the NBD reconnect delay: bounded
 * resets, clogs, and stalls and partitions of at most 5 s. */
static void gen_net_rule(struct gen_state *g, struct fault_rule *f)
{
    static const enum fault_kind kinds[] = { FAULT_NET_RESET, FAULT_NET_CLOG, FAULT_NET_STALL,
                                             FAULT_NET_PARTITION };
    f->kind = kinds[choice_range(g->c, 0, ARRAY_LEN(kinds) - 1)];
    f->range_end = UINT64_MAX;
    f->before_ns = UINT64_MAX;
    if (choice_range(g->c, 0, 1)) {
        if (g->o->colo) {
            snprintf(f->disk, sizeof(f->disk), "%s",
                     choice_range(g->c, 0, 1) ? "primary" : "secondary");
        } else {
            snprintf(f->disk, sizeof(f->disk), "s%u",
                     (unsigned)choice_range(g->c, g->children - g->nbd, g->children - 1));
        }
        f->oneway = f->kind == FAULT_NET_PARTITION && choice_range(g->c, 0, 1);
    }
    if (f->kind == FAULT_NET_STALL || f->kind == FAULT_NET_PARTITION) {
        f->after_ns = choice_range(g->c, 0, 20) * 1000000ull;
        f->before_ns = f->after_ns + choice_range(g->c, 1, 5000) * 1000000ull;
        if ((g->o->colo & GEN_COLO_NET) && choice_range(g->c, 0, 1)) {
            f->before_ns = UINT64_MAX; /* the link is lost for good */
        }
        return;
    }
    f->prob_set = true;
    f->prob = (UINT64_MAX / 100) * choice_range(g->c, 2, 30);
    f->times = choice_range(g->c, 1, 4);
    if (f->kind == FAULT_NET_CLOG) {
        f->delay_ns = choice_range(g->c, 1, 1000) * 1000000ull;
    }
}

static const enum fault_kind default_kinds[] = {
    FAULT_READ_EIO, FAULT_WRITE_EIO, FAULT_FLUSH_EIO, FAULT_ENOSPC,
    FAULT_LATENT,   FAULT_MISDIRECT, FAULT_READ_CORRUPT,
};

static enum fault_kind gen_disk_kind(struct gen_state *g)
{
    enum fault_kind kinds[FAULT__COUNT];
    unsigned n = 0;
    for (unsigned k = 0; k < FAULT__COUNT; k++) {
        if ((g->o->fault_kinds >> k) & 1) {
            kinds[n++] = (enum fault_kind)k;
        }
    }
    if (n == 0) {
        return default_kinds[choice_range(g->c, 0, ARRAY_LEN(default_kinds) - 1)];
    }
    return kinds[choice_range(g->c, 0, n - 1)];
}

static void gen_faults(struct gen_state *g)
{
    bool net = g->o->net || (g->o->colo & (GEN_COLO_NET | GEN_COLO_NET_TRANSIENT));
    bool any = g->o->faults || net || (g->o->colo & GEN_COLO_DISK);
    unsigned n = any ? (unsigned)choice_range(g->c, net && g->o->colo ? 1 : 0, 2) : 0;
    for (unsigned i = 0; i < n; i++) {
        struct trace_rec *r = emit(g, TRACE_FAULT);
        r->cfg = trace_cfg_new();
        struct fault_rule *f = &r->cfg->fault;
        if (net) {
            gen_net_rule(g, f);
            continue;
        }
        f->kind = gen_disk_kind(g);
        if (g->o->colo) { /* the primary's or the secondary's disk */
            snprintf(f->disk, sizeof(f->disk), "%s",
                     choice_range(g->c, 0, 1) ? "secondary-disk" : "primary-disk");
        } else if (g->children) { /* a quorum: one child's disk */
            snprintf(f->disk, sizeof(f->disk), "c%u",
                     (unsigned)choice_range(g->c, 0, g->children - 1));
        } else if (g->o->qbm_faults) { /* the loader's few reads: nth small */
            snprintf(f->disk, sizeof(f->disk), "qbm");
        }
        f->range_end = UINT64_MAX;
        f->before_ns = UINT64_MAX;
        f->nth = g->o->qbm_faults ? choice_range(g->c, 1, 6) : choice_range(g->c, 2, 20);
        f->times = choice_range(g->c, 1, 4);
        if (f->kind == FAULT_MISDIRECT) {
            f->delta = 64u << 10;
        }
    }
}

/* A range in the hot area (most of the time) or anywhere on the disk. */
static void gen_range(struct gen_state *g, struct trace_rec *r)
{
    uint64_t sectors = GEN_SIZE / 512;
    bool hot = choice_range(g->c, 0, 3) != 0;
    uint64_t first = choice_range(g->c, 0, (hot ? GEN_HOT_SECTORS : sectors) - 1);
    uint64_t n = choice_range(g->c, 1, 16);
    if (first + n > sectors) {
        n = sectors - first;
    }
    r->offset = first * 512;
    r->len = n * 512;
}

static void gen_remember(struct gen_state *g, const struct trace_rec *r)
{
    if (g->n_written < GEN_WRITTEN_MAX) {
        g->written[g->n_written][0] = r->offset;
        g->written[g->n_written][1] = r->len;
        g->written[g->n_written][2] = r->guest;
        g->n_written++;
    }
}

/* colo: which guest issues an I/O (the secondary's only while it is up). */
static void gen_guest(struct gen_state *g, struct trace_rec *r)
{
    if (g->o->colo && !g->sec_down && choice_range(g->c, 0, 1)) {
        r->guest = 1;
    }
}

/* colo: a checkpoint (most often), the failover (once), or the secondary's
 * loss: a crash (and restart) or the primary going on alone. */
static void gen_colo(struct gen_state *g)
{
    unsigned w[4] = { 6, 0, 0, 0 };
    bool fo = (g->o->colo & GEN_COLO_FAILOVER) && !g->failed_over && !g->sec_lost;
    w[1] = fo ? 2 : 0;
    w[2] = (g->o->colo & GEN_COLO_LOSS) && !g->sec_down ? 1 : 0;
    w[3] = (g->o->colo & GEN_COLO_LOSS) && g->sec_down ? 3 : 0;
    unsigned k = choice_weighted(g->c, w, 4);
    if (k == 2) {
        struct trace_rec *r = emit(g, TRACE_CRASH);
        snprintf(r->host, sizeof(r->host), "secondary");
        g->sec_down = g->sec_lost = true;
        if (choice_range(g->c, 0, 1)) {
            emit(g, TRACE_COLO)->sub = TRACE_COLO_PRIMARY_ALONE;
        }
        return;
    }
    if (k == 3) {
        struct trace_rec *r = emit(g, TRACE_RESTART);
        snprintf(r->host, sizeof(r->host), "secondary");
        g->sec_down = false;
        return;
    }
    emit(g, TRACE_COLO)->sub = k == 1 ? TRACE_COLO_FAILOVER : TRACE_COLO_CHECKPOINT;
    g->failed_over |= k == 1;
}

static const enum trace_kind op_kinds[G__COUNT] = {
    [G_WRITE] = TRACE_WRITE, [G_READ] = TRACE_READ, [G_FLUSH] = TRACE_FLUSH,
    [G_ZERO] = TRACE_ZERO, [G_DISCARD] = TRACE_DISCARD, [G_CRASH] = TRACE_CRASH,
    [G_COMMIT] = TRACE_COMMIT, [G_EMPTY] = TRACE_MAKE_EMPTY, [G_BITMAP] = TRACE_BITMAP,
    [G_SHUTDOWN] = TRACE_SHUTDOWN, [G_JOB] = TRACE_JOB,
};

/* A bitmap operation on one of three names; the stack may refuse it (the
 * model must agree), so no state is tracked here. */
static void gen_bitmap(struct gen_state *g, struct trace_rec *r)
{
    static const char *const names[] = { "a", "b", "c" };
    static const uint64_t grans[] = { 65536, 512, 4096, 131072 };
    unsigned w[TRACE_BM__COUNT] = { 2, 1, 2, 1, 1, 2, 1, 2, 2, 2 };
    if (g->o->dance) {
        w[TRACE_BM_SUCCESSOR] = w[TRACE_BM_ABDICATE] = w[TRACE_BM_RECLAIM] = 8;
    }
    struct trace_bitmap *b = r->bm = trace_bitmap_new();
    b->op = (enum trace_bitmap_op)choice_weighted(g->c, w, TRACE_BM__COUNT);
    snprintf(b->name, sizeof(b->name), "%s", names[choice_range(g->c, 0, 2)]);
    if (b->op == TRACE_BM_MERGE) {
        snprintf(b->src, sizeof(b->src), "%s", names[choice_range(g->c, 0, 2)]);
    } else if (b->op == TRACE_BM_ADD) {
        b->gran = grans[choice_range(g->c, 0, 3)];
        b->persistent = choice_range(g->c, 0, 3) != 3;
        b->disabled = choice_range(g->c, 0, 3) == 3;
    }
}

static struct trace_job *job_rec(struct gen_state *g, enum trace_job_op op, unsigned id)
{
    struct trace_rec *r = emit(g, TRACE_JOB);
    struct trace_job *j = r->job = mem_alloc(sizeof(*j));
    j->op = op;
    j->auto_finalize = j->auto_dismiss = true;
    snprintf(j->id, sizeof(j->id), "j%u", id);
    return j;
}

static const uint64_t gen_speeds[] = { 0, 256u << 10, 1u << 20 };

static void gen_backup(struct gen_state *g, struct trace_job *j)
{
    static const uint64_t clusters[] = { 0, 4096, 128u << 10 };
    snprintf(j->target, sizeof(j->target), "tgt");
    if (g->fleece && !g->fleece_used && choice_range(g->c, 0, 1)) {
        snprintf(j->target, sizeof(j->target), "fl"); /* fleecing: sync=none, once */
        j->sync = TRACE_SYNC_NONE;
        j->has_sync = true;
        g->fleece_used = true;
        g->job_none = true;
        return;
    }
    j->sync = (enum trace_job_sync)choice_range(g->c, TRACE_SYNC_FULL, TRACE_SYNC_NONE);
    j->has_sync = true;
    j->cluster = clusters[choice_range(g->c, 0, 2)];
    j->has_cluster = j->cluster != 0;
    if (g->o->jobs_bitmap && choice_range(g->c, 0, 3) != 0) {
        /* Incremental: the bitmap's clusters; or full/top recording into it. */
        static const enum trace_job_sync syncs[] = { TRACE_SYNC_INCREMENTAL, TRACE_SYNC_BITMAP,
                                                     TRACE_SYNC_FULL, TRACE_SYNC_TOP };
        j->sync = syncs[choice_range(g->c, 0, 3)];
        snprintf(j->bitmap, sizeof(j->bitmap), "a");
        j->has_bitmap_mode = j->sync != TRACE_SYNC_INCREMENTAL || choice_range(g->c, 0, 1);
        static const enum trace_bitmap_mode modes[] = { TRACE_BMODE_ON_SUCCESS,
                                                        TRACE_BMODE_ALWAYS, TRACE_BMODE_NEVER };
        unsigned k = (unsigned)choice_range(g->c, 0, j->sync == TRACE_SYNC_BITMAP ? 2 : 1);
        j->bitmap_mode = j->sync == TRACE_SYNC_INCREMENTAL ? TRACE_BMODE_ON_SUCCESS : modes[k];
    }
    g->job_none = j->sync == TRACE_SYNC_NONE;
}

static void gen_mirror(struct gen_state *g, struct trace_job *j)
{
    static const uint64_t grans[] = { 0, 4096, 65536 };
    snprintf(j->target, sizeof(j->target), "tgt");
    j->sync = TRACE_SYNC_FULL; /* top needs a target with the source's backing */
    j->has_sync = choice_range(g->c, 0, 1);
    j->granularity = grans[choice_range(g->c, 0, 2)];
    j->has_granularity = j->granularity != 0;
    j->copy_mode = (enum trace_copy_mode)choice_range(g->c, 0, 1);
    j->has_copy_mode = true;
}

/* A new job, or a verb on the last one (which may be refused: that is
 * QEMU's behaviour to check too). */
static void gen_job(struct gen_state *g)
{
    if (!g->job_live || choice_range(g->c, 0, 3) == 0) {
        enum trace_job_op kinds[3];
        unsigned n = 0;
        if (g->o->jobs & GEN_JOB_BACKUP) {
            kinds[n++] = TRACE_JOB_BACKUP;
        }
        if (g->o->jobs & GEN_JOB_MIRROR) {
            kinds[n++] = TRACE_JOB_MIRROR;
        }
        if ((g->o->jobs & GEN_JOB_COMMIT) && g->overlay) {
            kinds[n++] = TRACE_JOB_COMMIT;
        }
        if (n == 0) {
            return;
        }
        enum trace_job_op op = kinds[choice_range(g->c, 0, n - 1)];
        struct trace_job *j = job_rec(g, op, g->jobs++);
        g->job_none = false;
        if (op == TRACE_JOB_BACKUP) {
            gen_backup(g, j);
        } else if (op == TRACE_JOB_MIRROR) {
            gen_mirror(g, j);
        }
        j->speed = gen_speeds[choice_range(g->c, 0, 2)];
        j->has_speed = j->speed != 0;
        g->job_live = true;
        g->job_op = op;
        return;
    }
    static const enum trace_job_op verbs[] = { TRACE_JOB_PAUSE, TRACE_JOB_RESUME,
                                               TRACE_JOB_CANCEL, TRACE_JOB_SET_SPEED,
                                               TRACE_JOB_WAIT, TRACE_JOB_COMPLETE };
    struct trace_job *j = job_rec(g, verbs[choice_range(g->c, 0, ARRAY_LEN(verbs) - 1)],
                                  g->jobs - 1);
    if (j->op == TRACE_JOB_SET_SPEED) {
        j->speed = gen_speeds[choice_range(g->c, 0, 2)];
        j->has_speed = true;
    }
    if (j->op == TRACE_JOB_CANCEL) {
        j->force = choice_range(g->c, 0, 1);
        g->job_live = false;
    }
    if (j->op == TRACE_JOB_WAIT) {
        bool converges = g->job_op != TRACE_JOB_BACKUP;
        j->state = converges ? TRACE_WAIT_READY : TRACE_WAIT_CONCLUDED;
        g->job_live = g->job_none || converges; /* these wait for a command */
    }
}

/* The last job ends before the final read sweep, so its checker judges it:
 * a sync=none backup is cancelled; a mirror or commit is waited for until
 * READY, then completed (or cancelled softly); every job is waited for. */
static void gen_jobs_end(struct gen_state *g)
{
    if (!g->job_live) {
        return;
    }
    unsigned id = g->jobs - 1;
    job_rec(g, TRACE_JOB_RESUME, id); /* refused unless paused */
    if (g->job_none) {
        job_rec(g, TRACE_JOB_CANCEL, id);
    } else if (g->job_op != TRACE_JOB_BACKUP) {
        job_rec(g, TRACE_JOB_WAIT, id)->state = TRACE_WAIT_READY;
        job_rec(g, g->o->jobs_cancel ? TRACE_JOB_CANCEL : TRACE_JOB_COMPLETE, id);
    }
    job_rec(g, TRACE_JOB_WAIT, id)->state = TRACE_WAIT_CONCLUDED;
}

static void gen_op(struct gen_state *g)
{
    enum gen_op op = (enum gen_op)choice_weighted(g->c, g->weights, G__COUNT);
    if (op == G_JOB) {
        gen_job(g); /* its own records */
        return;
    }
    if (op == G_COLO) {
        gen_colo(g);
        return;
    }
    struct trace_rec *r = emit(g, op_kinds[op]);
    switch (op) {
    case G_WRITE:
    case G_ZERO:
        gen_range(g, r);
        r->fua = choice_range(g->c, 0, 7) == 7; /* zero bytes: no FUA */
        gen_guest(g, r);
        gen_remember(g, r);
        break;
    case G_READ:
    case G_DISCARD:
        gen_range(g, r);
        gen_guest(g, r);
        if (op == G_READ && g->fleece && choice_range(g->c, 0, 2) == 2) {
            snprintf(r->export, sizeof(r->export), "fl"); /* a backup tool reads it */
        }
        break;
    case G_CRASH:
        r->has_mode = true;
        r->mode = (enum disk_crash_mode)choice_range(g->c, 0, DISK_CRASH__COUNT - 1);
        if (g->o->flush_crashes && r->mode == DISK_CRASH_PREFIX) {
            r->mode = DISK_CRASH_SUBSET; /* out of order: a later metadata write kept,
                                          * the data before it lost */
        }
        /* Sometimes the crash strikes as the disks receive their Nth flush,
         * inside the stack's own flush sequences with writes in flight (where
         * a driver's ordering between data and metadata matters). */
        if (!g->flush_crash && (g->o->flush_crashes || choice_range(g->c, 0, 2) == 2)) {
            r->plan = trace_crash_plan_new();
            r->plan->at_flush = choice_range(g->c, 1, 12);
            g->flush_crash = true;
        }
        emit(g, TRACE_RESTART);
        g->job_live = false; /* the job died with its host */
        break;
    case G_BITMAP:
        gen_bitmap(g, r);
        break;

    case G_SHUTDOWN:
        emit(g, TRACE_RESTART);
        break;
    case G_FLUSH:
        gen_guest(g, r);
        break;
    case G_COMMIT:
    case G_EMPTY:
        break;
    default:
        UNREACHABLE();
    }
}

void gen_scenario(struct choices *c, const struct gen_opts *o, struct trace *t)
{
    struct gen_state g = { .c = c, .o = o, .t = t };
    trace_init(t);
    emit(&g, TRACE_HEADER)->value = TRACE_VERSION;
    emit(&g, TRACE_SEED)->value = choice_range(c, 0, 0xffff);
    gen_topology(&g);
    gen_faults(&g);
    if (choice_range(c, 0, 1)) {
        emit(&g, TRACE_BUGGIFY);
    }
    gen_swarm(&g);
    emit(&g, TRACE_QD)->value = choice_range(c, o->flush_crashes ? 2 : 1, 8);
    if (o->bitmaps) {
        struct trace_bitmap *b = emit(&g, TRACE_BITMAP)->bm = trace_bitmap_new();
        b->op = TRACE_BM_ADD;
        b->persistent = true;
        b->gran = choice_range(c, 0, 1) ? 4096 : 65536;
        snprintf(b->name, sizeof(b->name), "a");
    }
    for (unsigned i = 0; i < o->max_ops; i++) {
        choice_span_begin(c);
        bool more = choice_range(c, 0, 15) != 0; /* zero bytes: stop */
        if (more) {
            gen_op(&g);
        }
        choice_span_end(c);
        if (!more) {
            break;
        }
    }
    gen_jobs_end(&g);
    emit(&g, TRACE_FLUSH);
    for (unsigned i = 0; i < g.n_written; i++) {
        for (unsigned guest = 0; guest < (o->colo && !g.sec_down ? 2u : 1u); guest++) {
            struct trace_rec *r = emit(&g, TRACE_READ);
            r->offset = g.written[i][0];
            r->len = g.written[i][1];
            r->guest = (uint8_t)guest;
        }
    }
}

size_t gen_trace_ops(const struct trace *t)
{
    size_t n = 0;
    for (size_t i = 0; i < t->n; i++) {
        n += trace_kind_is_op(t->recs[i].kind) || t->recs[i].kind == TRACE_CRASH ||
             t->recs[i].kind == TRACE_COMMIT || t->recs[i].kind == TRACE_MAKE_EMPTY ||
             t->recs[i].kind == TRACE_BITMAP || t->recs[i].kind == TRACE_SHUTDOWN ||
             t->recs[i].kind == TRACE_JOB || t->recs[i].kind == TRACE_COLO;
    }
    return n;
}
