/*
 * world: see world.h.
 *
 * Method: world_run validates the trace into a scenario (sizes, disks,
 * faults, host up/down order), builds the disks and the first stack, and
 * pumps: the pump walks trace records in order, applies settings, submits
 * guest operations while the queue depth allows and no overlap forbids,
 * and runs control records (crash, restart, commit, make-empty) at their
 * place. Every completion feeds the checker and the digest, then pumps
 * again. A crash kills the live stack (it frees itself once its last
 * request has drained), resolves each disk's cache and tells the model;
 * requests of the old stack that still complete are counted as lost.
 */
#include "world.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "../../ref/drv_file.h"
#include "../../ref/node.h"
#include "../../ref/qbm.h"
#include "../base/content.h"
#include "../trace/mutant.h"
#include "../topo/dial.h"
#include "world_int.h"

/* ---- timer ops for the stack, with BUGGIFY ---- */

static uint64_t wt_now(void *ctx)
{
    return ((struct world *)ctx)->q.now_ns;
}

static void wt_post(void *ctx, uint64_t delay_ns, env_cb *cb, void *opaque)
{
    evq_post(&((struct world *)ctx)->q, delay_ns, cb, opaque);
}

/* A site is enabled for the whole run with probability 1/4 (from a stream
 * named by the site, so sites do not shift each other), then fires one call
 * in 20. Sites are found by name, in first-use order: no pointer order. */
static bool wt_buggify(void *ctx, const char *site)
{
    struct world *w = ctx;
    if (!w->buggify) {
        return false;
    }
    unsigned i = 0;
    while (i < w->n_sites && strcmp(w->sites[i].name, site) != 0) {
        i++;
    }
    if (i == w->n_sites) {
        ASSERT(w->n_sites < WORLD_BUGGIFY_SITES);
        struct rng r;
        rng_stream(&r, w->seed, site, 0, 0);
        w->sites[i].name = site;
        w->sites[i].enabled = rng_below(&r, 4) == 0;
        w->n_sites++;
    }
    bool fire = w->sites[i].enabled && rng_below(&w->buggify_rng, 20) == 0;
    w->r->buggified += fire;
    return fire;
}

static const struct env_timer_ops world_timer_ops = {
    .now_ns = wt_now,
    .post = wt_post,
    .buggify = wt_buggify,
};

struct env_timer world__timer(struct world *w)
{
    struct env_timer t = { &world_timer_ops, w };
    return t;
}

/* ---- observations and digest ---- */

/* Hash the observations buffered so far (one call for many: the
 * streaming hash's cost is per call as much as per byte). */
static void digest_flush(struct world *w)
{
    XXH3_64bits_update(w->digest, w->digest_buf, w->digest_len);
    w->digest_len = 0;
}

void world__observe(struct world *w, uint32_t kind, uint64_t index, int32_t ret, uint64_t a,
                    uint64_t b)
{
    if (w->digest_len + 40 > sizeof(w->digest_buf)) {
        digest_flush(w);
    }
    uint8_t *rec = w->digest_buf + w->digest_len;
    put_le64(rec, w->q.now_ns);
    put_le64(rec + 8, index);
    put_le32(rec + 16, kind);
    put_le32(rec + 20, (uint32_t)ret);
    put_le64(rec + 24, a);
    put_le64(rec + 32, b);
    w->digest_len += 40;
}

/* ---- the host's stack ---- */

static int stack_open(struct world *w, struct err *e)
{
    struct stack *s = mem_alloc(sizeof(*s));
    s->w = w;
    graph_init(&s->g, world__timer(w), w->o.node_mutants);
    for (unsigned i = 0; i < w->n_disks; i++) {
        if (w->hosts[WORLD_GUEST_HOST].disk[i]) {
            s->h[i] = disk_handle_new(w->disks[i]);
        }
    }
    int ret = w->topo_ops->guest_open(w, s, e);
    if (ret == 0 && w->topo_ops->jobs) {
        ret = world__jobs_open(w, s, e);
    }
    if (ret == 0 && w->bitmaps) {
        ret = world__bitmap_open(w, s, e);
    }
    if (ret < 0) {
        world__stack_free(s);
        return ret;
    }
    w->live = s;
    return 0;
}

void world__stack_free(struct stack *s)
{
    world__jobs_kill(s);
    qbm_close(s->qbm);
    graph_fini(&s->g);
    if (s->w->topo_ops->guest_free) {
        s->w->topo_ops->guest_free(s->w, s);
    }
    for (unsigned i = 0; i < s->w->n_disks; i++) {
        if (s->h[i]) {
            disk_handle_free(s->h[i]);
        }
    }
    for (unsigned i = s->w->n_topo_disks; i < s->w->n_disks; i++) { /* extra disks' clients */
        mem_free(s->dial[i], s->dial[i] ? sizeof(*s->dial[i]) : 0);
    }
    mem_free(s, sizeof(*s));
}

static void stack_idle(void *opaque)
{
    struct stack *s = opaque;
    if (s->qbm && s->qbm->op) {
        /* A sync or store is still writing: it ends in bounded time. */
        evq_post(&s->w->q, 100000, stack_idle, s);
        return;
    }
    world__stack_free(s);
}

static void stack_kill(struct world *w)
{
    struct stack *s = w->live;
    w->live = NULL;
    s->dead = true;
    world__jobs_kill(s); /* the host's jobs die with it */
    if (w->topo_ops->guest_kill) {
        w->topo_ops->guest_kill(w, s);
    }
    graph_kill(&s->g, stack_idle, s);
}

/* ---- guest operations ---- */


static void inflight_remove(struct world *w, struct guest_op *op)
{
    for (unsigned i = 0; i < w->n_inflight; i++) {
        if (w->inflight[i] == op) {
            w->inflight[i] = w->inflight[--w->n_inflight];
            return;
        }
    }
    UNREACHABLE();
}

static bool op_writes(enum trace_kind k)
{
    return k == TRACE_WRITE || k == TRACE_ZERO || k == TRACE_DISCARD;
}

/* Must @rec wait for operations in flight of its own guest? Overlapping
 * writes wait, flushes wait for writes, and the topology may ask for more. */
static bool op_conflicts(const struct world *w, const struct trace_rec *rec)
{
    for (unsigned i = 0; i < w->n_inflight; i++) {
        const struct trace_rec *o = w->inflight[i]->rec;
        if (o->guest != rec->guest || o->export[0] != rec->export[0] ||
            (o->export[0] && strcmp(o->export, rec->export) != 0)) {
            continue; /* another host's guest, or a backup tool reading an export */
        }
        if (w->topo_ops->conflict && w->topo_ops->conflict(rec, o)) {
            return true;
        }
        if (rec->kind == TRACE_FLUSH) {
            if (op_writes(o->kind)) {
                return true;
            }
        } else if (o->kind != TRACE_FLUSH && (op_writes(rec->kind) || op_writes(o->kind)) &&
                   ranges_overlap(rec->offset, rec->len, o->offset, o->len)) {
            return true;
        }
    }
    return false;
}

static const enum node_op node_ops[TRACE__COUNT] = {
    [TRACE_READ] = NODE_OP_READ,
    [TRACE_WRITE] = NODE_OP_WRITE,
    [TRACE_FLUSH] = NODE_OP_FLUSH,
    [TRACE_DISCARD] = NODE_OP_DISCARD,
    [TRACE_ZERO] = NODE_OP_WRITE_ZEROES,
};

/* The content tag a write record's sectors carry. */
static uint64_t write_tag(const struct trace_rec *rec, uint64_t index)
{
    return rec->has_pattern ? content_pattern_tag(rec->pattern) : index + 1;
}

/* @op as the checkers see it. */
static struct checker_io op_io(const struct world *w, const struct guest_op *op, int ret)
{
    const struct trace_rec *rec = op->rec;
    bool flush = rec->kind == TRACE_FLUSH;
    return (struct checker_io){
        .op = node_ops[rec->kind], .rec = rec, .guest = true, .index = op->index,
        .sector = flush ? 0 : rec->offset / CONTENT_SECTOR,
        .n = flush ? 0 : rec->len / CONTENT_SECTOR,
        .tag = rec->kind == TRACE_WRITE ? write_tag(rec, op->index) : CONTENT_TAG_ZERO,
        .fua = rec->fua, .ret = ret, .data = op->desc.described ? NULL : op->buf,
        .tags = op->tags, .read_hash = op->read_hash, .now_ns = w->q.now_ns,
    };
}

static uint64_t faults_count(const struct world *w, uint64_t counts[FAULT__COUNT]);

void world__event(struct world *w, struct world_event *ev)
{
    if (!w->o.on_event) {
        return;
    }
    ev->t_ns = w->q.now_ns;
    uint64_t now[FAULT__COUNT] = { 0 };
    (void)faults_count(w, now);
    for (unsigned k = 0; k < FAULT__COUNT; k++) {
        if (now[k] > w->ev_faults[k]) {
            struct world_event f = { .kind = WORLD_EV_FAULT, .t_ns = w->q.now_ns,
                                     .host = ev->host, .index = now[k] - w->ev_faults[k],
                                     .text = fault_kind_name((enum fault_kind)k) };
            w->ev_faults[k] = now[k];
            w->o.on_event(w->o.event_opaque, &f);
        }
    }
    w->o.on_event(w->o.event_opaque, ev);
}

/* Guest operation @op ended with @ret (or was lost with its host). */
static void op_event(struct world *w, const struct guest_op *op, int ret)
{
    const struct trace_rec *r = op->rec;
    struct world_event ev = { .kind = WORLD_EV_OP, .t_start_ns = op->t_submit,
                              .host = op->host, .line = r->line, .rec = r->kind,
                              .index = op->index, .offset = r->offset, .len = r->len,
                              .ret = ret };
    world__event(w, &ev);
}

static void op_free(struct guest_op *op)
{
    mem_free(op->buf, op->buf_len);
    mem_free(op, sizeof(*op));
}

uint64_t world__host_epoch(const struct world *w, unsigned h)
{
    return h == WORLD_GUEST_HOST ? w->epoch : w->hosts[h].downs;
}

/* A read that succeeded: its sectors' tags into op->tags (as described, or
 * identified from its bytes), and its content hash (what the digest and
 * the quorum checker see of it): a run has the same digest with or without
 * described I/O. */
static uint64_t read_identify(const struct world *w, struct guest_op *op)
{
    uint64_t n = op->rec->len / CONTENT_SECTOR;
    bool known = op->desc.described ||
                 content_identify_run(op->buf, w->seed, op->rec->offset / CONTENT_SECTOR, n,
                                      op->tags);
    return content_hash(op->tags, known, op->buf, n);
}

static void op_done(void *opaque, int ret)
{
    struct guest_op *op = opaque;
    struct world *w = op->w;
    if (op->epoch != world__host_epoch(w, op->host)) {
        op_free(op); /* its host crashed: already counted as lost */
        return;
    }
    inflight_remove(w, op);
    w->progress_ns = w->q.now_ns;
    uint64_t data = 0;
    if (ret == 0 && op->rec->kind == TRACE_READ) {
        data = op->read_hash = read_identify(w, op);
        w->r->bytes_read += op->rec->len;
        w->r->described_reads += op->desc.described;
    } else if (ret == 0 && op->rec->kind == TRACE_WRITE) {
        w->r->bytes_written += op->rec->len;
    }
    world__observe(w, op->rec->kind, op->index, ret, data, 0);
    w->r->ops[op->rec->kind]++;
    w->r->errors[op->rec->kind] += ret < 0;
    w->judging = op->rec;
    struct checker_io io = op_io(w, op, ret);
    world__checkers_done(w, &io, op->cookie);
    w->judging = NULL;
    op_event(w, op, ret);
    op_free(op);
    world__pump(w);
}


static void op_submit(struct world *w, const struct trace_rec *rec)
{
    struct guest_op *op = mem_alloc(sizeof(*op));
    op->w = w;
    op->rec = rec;
    op->index = w->next_op++;
    op->host = rec->guest ? w->topo_ops->guest_host(w, rec->guest) : WORLD_GUEST_HOST;
    op->epoch = world__host_epoch(w, op->host);
    op->t_submit = w->q.now_ns;
    unsigned flags = rec->fua ? NODE_REQ_FUA : 0;
    uint64_t len = rec->kind == TRACE_FLUSH ? 0 : rec->len;
    struct node *front = w->live->front ? w->live->front : w->live->root;
    if (rec->guest) {
        front = w->topo_ops->guest_front(w, rec->guest);
    } else if (rec->export[0]) { /* a backup tool reading a fleecing export */
        front = w->live->xread[world__disk_index(w, rec->export)];
    }
    /* A disk right below the guest takes the data described (ref/env.h):
     * a write's tag instead of its bytes, a read's tags if it has them. */
    bool data = rec->kind == TRACE_READ || (rec->kind == TRACE_WRITE && !rec->has_pattern);
    bool use_desc = data && node_takes_desc(front);
    /* A write's buffer is filled whole below; a read's starts zeroed, so a
     * stack that fails to fill it shows zeroes, never a stale buffer's data
     * (a disk that takes a description fills it whole or answers in tags). */
    if (rec->kind == TRACE_READ) {
        uint64_t tags = rec->len / CONTENT_SECTOR * sizeof(*op->tags);
        op->buf_len = rec->len + tags;
        op->buf = use_desc ? mem_alloc_raw(op->buf_len) : mem_alloc(op->buf_len);
        op->tags = (uint64_t *)(void *)(op->buf + rec->len);
        op->desc.tags = op->tags;
    } else if (rec->kind == TRACE_WRITE && use_desc) {
        op->desc.tag = op->index + 1;
    } else if (rec->kind == TRACE_WRITE) {
        op->buf_len = rec->len;
        op->buf = mem_alloc_raw(rec->len);
    }
    if (rec->kind == TRACE_WRITE && rec->has_pattern) {
        memset(op->buf, rec->pattern, rec->len);
    } else if (rec->kind == TRACE_WRITE && !use_desc) {
        content_fill(op->buf, w->seed, op->index + 1, rec->offset / CONTENT_SECTOR,
                     rec->len / CONTENT_SECTOR);
    }
    struct checker_io io = op_io(w, op, 0);
    world__checkers_submit(w, &io, op->cookie);
    if (w->n_inflight == w->cap_inflight) {
        unsigned cap = w->cap_inflight ? 2 * w->cap_inflight : 16;
        w->inflight = mem_realloc(w->inflight, w->cap_inflight * sizeof(*w->inflight),
                                  cap * sizeof(*w->inflight));
        w->cap_inflight = cap;
    }
    w->inflight[w->n_inflight++] = op;
    node_submit_desc(front, node_ops[rec->kind], rec->offset, len, op->buf,
                     use_desc ? &op->desc : NULL, flags, op_done, op);
}

/* ---- control records ---- */

/* The hosts a crash, restart or shutdown acts on (bit i: hosts[i]): the one
 * it names, or every host; of those, the ones @up. */
static unsigned rec_hosts(const struct world *w, const struct trace_rec *rec, bool up)
{
    unsigned mask = 0;
    for (unsigned h = 0; h < w->n_hosts; h++) {
        bool named = !rec->host[0] || strcmp(rec->host, w->hosts[h].name) == 0;
        mask |= named && w->hosts[h].up == up ? 1u << h : 0;
    }
    return mask;
}

/* Host @h goes down: what its guest had in flight is lost (writes may or
 * may not have reached the media); their completions will see the old
 * epoch. */
static void host_ops_lost(struct world *w, unsigned h)
{
    for (unsigned i = 0; i < w->n_inflight;) {
        const struct guest_op *op = w->inflight[i];
        if (op->host != h) {
            i++;
            continue;
        }
        struct checker_io io = op_io(w, op, BS_ECRASHED);
        world__checkers_lost(w, &io, op->cookie);
        op_event(w, op, BS_ECRASHED);
        w->r->lost++;
        w->inflight[i] = w->inflight[--w->n_inflight];
    }
}

/* The guest's host goes down. */
static void guest_host_down(struct world *w)
{
    host_ops_lost(w, WORLD_GUEST_HOST);
    stack_kill(w);
    w->epoch++;
}

/* Disk @i, the @k-th of the disks this crash takes down, loses power (the
 * explorer's plan, the record's, or @mode). */
static void crash_disk(struct world *w, const struct trace_rec *rec, unsigned i, unsigned k,
                       enum disk_crash_mode mode)
{
    bool first = w->r->crashes == w->o.crash_plan_at; /* the one explored */
    const struct trace_crash_plan *own = rec->plan && rec->plan->n_disks ? rec->plan : NULL;
    struct disk_crash_report rep;
    if (first && w->o.crash_plans) {
        disk_crash_planned(w->disks[i], &w->o.crash_plans[i], &rep);
    } else if (own) { /* the record names the exact outcome */
        struct disk_crash_plan plan = { NULL, 0, own->tear_seed };
        if (k < own->n_disks) { /* the record's fates name the crashing disks in order */
            plan.keep = own->fates[k];
            plan.n = own->n[k];
        }
        disk_crash_planned(w->disks[i], &plan, &rep);
    } else {
        disk_crash(w->disks[i], mode, &rep);
    }
    world__observe(w, TRACE_CRASH, i, (int32_t)mode, rep.kept, rep.pending);
}

/* The crash the explorer explores: its hook sees every disk the crash
 * takes down (hosts in @mask), then its branch may hand this process the
 * plans to resolve it with. */
static void crash_explored(struct world *w, unsigned mask)
{
    for (unsigned i = 0; i < w->n_disks && w->o.crash_hook; i++) {
        for (unsigned h = 0; h < w->n_hosts; h++) {
            if ((mask & (1u << h)) && w->hosts[h].disk[i]) {
                w->o.crash_hook(w->o.crash_hook_opaque, i, w->disks[i]);
            }
        }
    }
    const struct disk_crash_plan *plans =
        w->o.crash_branch ? w->o.crash_branch(w->o.crash_hook_opaque) : NULL;
    if (plans) {
        w->o.crash_plans = plans;
    }
}

/* Hosts in @mask go down: their stacks die, and with @power_lost their
 * disks lose what their caches held (else it is kept: a clean shutdown). */
static void hosts_down(struct world *w, const struct trace_rec *rec, unsigned mask,
                       bool power_lost)
{
    if (mask & (1u << WORLD_GUEST_HOST)) {
        guest_host_down(w);
    }
    for (unsigned h = 1; h < w->n_hosts; h++) {
        if (mask & (1u << h)) {
            host_ops_lost(w, h);
            world__host_kill(w, h);
        }
    }
    enum disk_crash_mode mode = rec->has_mode ? rec->mode
                                              : (enum disk_crash_mode)rng_below(
                                                    &w->crash_rng, DISK_CRASH__COUNT);
    if (power_lost && w->r->crashes == w->o.crash_plan_at) { /* the one explored */
        crash_explored(w, mask);
    }
    unsigned k = 0;
    for (unsigned i = 0; i < w->n_disks; i++) {
        for (unsigned h = 0; h < w->n_hosts; h++) {
            if (!(mask & (1u << h)) || !w->hosts[h].disk[i]) {
                continue;
            }
            if (power_lost) {
                crash_disk(w, rec, i, k++, mode);
            } else { /* flushed: every cached write stays */
                struct disk_crash_plan keep_all = { NULL, 0, 0 };
                disk_crash_planned(w->disks[i], &keep_all, NULL);
            }
        }
    }
    for (unsigned h = 0; h < w->n_hosts; h++) {
        if (mask & (1u << h)) {
            w->hosts[h].up = false;
            w->hosts[h].downs++;
            w->hosts[h].crashes += power_lost;
            if (power_lost && h == WORLD_GUEST_HOST && w->bitmaps) {
                world__bitmap_crash(w, mode); /* the QBM files lose their caches */
            }
            if (power_lost) {
                world__checkers_crash(w, h, (int)mode);
            }
            if (power_lost && h != WORLD_GUEST_HOST && w->pivot_disk >= 0 &&
                w->hosts[h].disk[w->pivot_disk]) {
                check_rw_crash(&w->check); /* the guest's disk since a pivot lost its cache */
            }
        }
    }
}

void world__guest_shut(struct world *w, const struct trace_rec *rec)
{
    struct stack *s = w->live;
    w->live = NULL;
    world__stack_free(s);
    w->hosts[WORLD_GUEST_HOST].up = false;
    w->hosts[WORLD_GUEST_HOST].downs++;
    hosts_down(w, rec, rec_hosts(w, rec, true), false); /* its servers, if named */
}

static void do_crash(struct world *w, const struct trace_rec *rec)
{
    hosts_down(w, rec, rec_hosts(w, rec, true), true);
    w->r->crashes++;
    world_check(w);
}

/* Faults fired on every disk and file; each kind added to @counts. */
static uint64_t faults_count(const struct world *w, uint64_t counts[FAULT__COUNT])
{
    uint64_t n = 0;
    for (unsigned i = 0; i < w->n_disks; i++) {
        n += fault_counts_add(counts, w->disks[i]->stats.faults);
    }
    if (w->topo_ops->faults) {
        n += w->topo_ops->faults(w, counts);
    }
    n += w->xnet ? fault_counts_add(counts, net_stats(w->xnet)->faults) : 0;
    return n + (w->r->bitmaps_on ? files_faults(&w->files, counts) : 0);
}

static uint64_t faults_fired(const struct world *w)
{
    uint64_t counts[FAULT__COUNT] = { 0 };
    return faults_count(w, counts);
}

/* Did an injected fault touch what the operator action now running
 * depends on: a fault fired during it (on its own I/O: the guest is
 * drained), or one left the stack's own persistent state (the topology's
 * metadata, the bitmap files, unreadable sectors of the guest host's disks)
 * damaged? */
static bool control_touched(const struct world *w)
{
    if (faults_fired(w) > w->control_faults_at) {
        return true;
    }
    if (w->topo_ops->state_touched && w->topo_ops->state_touched(w)) {
        return true;
    }
    if (w->r->bitmaps_on && files_faults(&w->files, NULL) > 0) {
        return true;
    }
    for (unsigned i = 0; i < w->n_disks; i++) {
        if (w->hosts[WORLD_GUEST_HOST].disk[i] && w->disks[i]->latent.n > 0) {
            return true;
        }
    }
    return false;
}

/* An operator action (restart, commit, make-empty, a bitmap's sync or
 * store, a shutdown) failed. When an injected fault touched what it depends
 * on, that is an outcome, not a bug: the run ends early and says so. Else
 * the stack failed on its own: a violation, whatever faults fired
 * elsewhere. */
void world__control_fail(struct world *w, const struct trace_rec *rec, const char *prop,
                         const char *msg)
{
    if (w->r->verdict == WORLD_FAIL || w->r->ended_early) {
        return;
    }
    if (control_touched(w)) {
        w->r->ended_early = true;
        snprintf(w->r->note, sizeof(w->r->note), "line %u: %.140s (after injected faults; "
                 "the rest did not run)", rec->line, msg);
        return;
    }
    world__violation_at(w, prop, msg, rec->line);
}

void world__verdict_fail(struct world *w, const struct violation *v)
{
    ASSERT(v != NULL);
    if (w->r->verdict == WORLD_FAIL) {
        return; /* the first violation in event order stands */
    }
    w->r->verdict = WORLD_FAIL;
    w->r->first = *v;
}

void world__violation_at(struct world *w, const char *prop, const char *msg, unsigned line)
{
    struct violation v;
    memset(&v, 0, sizeof(v));
    snprintf(v.property, sizeof(v.property), "%s", prop);
    snprintf(v.msg, sizeof(v.msg), "%s", msg);
    v.line = line;
    v.time_ns = w->q.now_ns;
    v.op_index = w->next_op;
    world__verdict_fail(w, &v);
}

void world__violation(struct world *w, const char *prop, const char *msg)
{
    world__violation_at(w, prop, msg, w->next < w->t->n ? w->t->recs[w->next].line : 0);
}

void world__control_fail_ret(struct world *w, const struct trace_rec *rec, const char *prop,
                             const char *what, int ret)
{
    char msg[200];
    snprintf(msg, sizeof(msg), "%.120s failed: %s", what, blocksim_strerror(ret));
    world__control_fail(w, rec, prop, msg);
}

/* Hosts come back up: servers first, so that the guest's clients find them. */
static void do_restart(struct world *w, const struct trace_rec *rec)
{
    unsigned mask = rec_hosts(w, rec, false);
    for (unsigned h = 1; h < w->n_hosts; h++) {
        if (mask & (1u << h)) {
            struct err e = { .file = NULL };
            int ret = world__host_open(w, h, &e);
            ASSERT(ret == 0); /* a server's stack is a file node: it always opens */
            w->hosts[h].up = true;
            world__checkers_restart(w, h);
        }
    }
    w->r->restarts++;
    w->control_faults_at = faults_fired(w);
    if (!(mask & (1u << WORLD_GUEST_HOST))) {
        world__observe(w, TRACE_RESTART, mask, 0, 0, 0);
        return;
    }
    struct err e = { .file = NULL };
    int ret = stack_open(w, &e);
    world__observe(w, TRACE_RESTART, 0, ret, 0, 0);
    if (ret < 0) {
        char msg[300];
        snprintf(msg, sizeof(msg), "the host's images did not reopen: %.200s",
                 e.msg);
        world__control_fail(w, rec, "restart", msg);
        return;
    }
    w->hosts[WORLD_GUEST_HOST].up = true;
    world__checkers_restart(w, WORLD_GUEST_HOST);
    if (w->bitmaps) {
        world__bitmap_ready(w, rec, false);
    }
}

struct control_op *world__control_new(struct world *w, const struct trace_rec *rec)
{
    ASSERT(!w->control_busy);
    w->control_faults_at = faults_fired(w);
    struct control_op *c = mem_alloc(sizeof(*c));
    c->w = w;
    c->rec = rec;
    c->epoch = w->epoch;
    w->control_busy = true;
    return c;
}

bool world__control_live(struct control_op *c)
{
    if (c->epoch == c->w->epoch) {
        return true;
    }
    mem_free(c, sizeof(*c));
    return false;
}

void world__control_end(struct control_op *c)
{
    struct world *w = c->w;
    w->control_busy = false;
    mem_free(c, sizeof(*c));
    world__pump(w);
}

/* ---- crashes injected at a device flush (crash exploration) ---- */

/* The crash record an injected crash acts as: the trace's with at-flush=,
 * else the next crash record (the explorer's point), else every host's. */
static const struct trace_rec *at_flush_crash(const struct world *w)
{
    static const struct trace_rec every = { .kind = TRACE_CRASH };
    if (w->at_flush_rec) {
        return w->at_flush_rec;
    }
    for (size_t i = w->next; i < w->t->n; i++) {
        if (w->t->recs[i].kind == TRACE_CRASH) {
            return &w->t->recs[i];
        }
    }
    return &every;
}

static void injected_crash_ev(void *opaque)
{
    struct world *w = opaque;
    const struct trace_rec *rec = at_flush_crash(w);
    unsigned mask = rec_hosts(w, rec, true);
    /* The guest's host never crashes inside its own operator action; another
     * host may (a COLO secondary inside a checkpoint or failover: the action
     * hears of it and ends). */
    bool guest = (mask & (1u << WORLD_GUEST_HOST)) != 0;
    if (!mask || (guest && w->control_busy) || w->r->verdict != WORLD_PASS) {
        return;
    }
    do_crash(w, rec);
    world__checkers_control(w, rec);
    /* The rest of the workload never ran: go on at the next restart. */
    while (w->next < w->t->n && w->t->recs[w->next].kind != TRACE_RESTART) {
        w->next++;
    }
    w->waited = false;
    world__pump(w);
}

static void taint_seen(void *opaque, const struct disk *d, uint64_t first, uint64_t n)
{
    struct world *w = opaque;
    for (unsigned i = 0; i < w->n_disks && w->topo_ops->taint_seen; i++) {
        if (w->disks[i] == d) {
            w->topo_ops->taint_seen(w, i, first, n);
        }
    }
}

static bool trace_has(const struct trace *t, enum trace_kind kind)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->recs[i].kind == kind) {
            return true;
        }
    }
    return false;
}

/* Can no power loss come in this run? Only 'crash' records and the options
 * crash_at_flush and the explorer's hooks take power away (do_crash). */
static bool crash_free(const struct world *w)
{
    if (w->o.crash_at_flush || w->o.crash_hook || w->o.crash_branch || w->o.crash_plans) {
        return false;
    }
    return !trace_has(w->t, TRACE_CRASH);
}

void world__check_rw_init(struct world *w, struct check_rw *c, check_taint_fn *taint,
                          void *opaque)
{
    check_rw_init(c, w->seed, taint, opaque);
    c->model.crash_free = w->crash_free;
    model_disk_size(&c->model, w->size / CONTENT_SECTOR);
}

static void flush_seen(void *opaque)
{
    struct world *w = opaque;
    w->r->device_flushes++;
    if (w->o.crash_at_flush && w->r->device_flushes == w->o.crash_at_flush) {
        evq_post(&w->q, 0, injected_crash_ev, w);
    }
}

/* ---- the pump ---- */

static void pump_timer(void *opaque)
{
    struct world *w = opaque;
    w->timer_armed = false;
    world__pump(w);
}

static void pump_soon_ev(void *opaque)
{
    struct world *w = opaque;
    if (!w->closing) {
        world__pump(w);
    }
}

void world__pump_soon(struct world *w)
{
    evq_post(&w->q, 0, pump_soon_ev, w);
}

/* Is @rec's @TIME still in the future? Then arm a timer for it. */
static bool pump_too_early(struct world *w, const struct trace_rec *rec)
{
    if (!rec->has_at || rec->at_ns <= w->q.now_ns) {
        return false;
    }
    if (!w->timer_armed) {
        w->timer_armed = true;
        evq_post(&w->q, rec->at_ns - w->q.now_ns, pump_timer, w);
    }
    w->wait_until_ns = max_u64(w->wait_until_ns, rec->at_ns); /* idle, not stalled */
    return true;
}

/* Run or submit record @rec; false when it has to wait. */
static bool pump_one(struct world *w, const struct trace_rec *rec)
{
    if (trace_kind_is_op(rec->kind)) {
        if (w->n_inflight >= w->qd || pump_too_early(w, rec)) {
            return false;
        }
        if (op_conflicts(w, rec)) {
            w->r->serialised += !w->waited;
            w->waited = true;
            return false;
        }
        op_submit(w, rec);
        return true;
    }
    switch (rec->kind) {
    case TRACE_QD:
        w->qd = w->o.qd ? w->o.qd : (unsigned)rec->value;
        return true;
    case TRACE_CRASH:
        /* Without @TIME a crash is a clean cut in the operation stream:
         * earlier operations complete first. With @TIME it strikes then,
         * whatever is in flight. */
        if (pump_too_early(w, rec) || (!rec->has_at && w->n_inflight > 0)) {
            return false;
        }
        do_crash(w, rec);
        return true;
    case TRACE_RESTART:
        if (pump_too_early(w, rec)) {
            return false;
        }
        do_restart(w, rec);
        return true;
    case TRACE_BITMAP:
        if (w->n_inflight > 0) {
            return false; /* drain the guest first */
        }
        world__bitmap_rec(w, rec);
        return true;
    case TRACE_JOB:
        return world__job_rec(w, rec);
    case TRACE_SHUTDOWN:
        if (pump_too_early(w, rec) || w->n_inflight > 0) {
            return false;
        }
        if (rec_hosts(w, rec, true) & (1u << WORLD_GUEST_HOST)) {
            world__shutdown(w, rec); /* the servers follow: world__guest_shut */
        } else {
            hosts_down(w, rec, rec_hosts(w, rec, true), false);
        }
        return true;
    default:
        if (!(w->topo_ops->controls & (1u << rec->kind))) {
            return true; /* settings, comments, expectations */
        }
        if (w->n_inflight > 0) {
            return false; /* the topology's operator actions drain the guest first */
        }
        if (!world__jobs_block(w, rec)) {
            w->topo_ops->control(w, rec);
        }
        return true;
    }
}

/* Control record @rec ran (on the host it names, or the guest's). */
static void control_event(struct world *w, const struct trace_rec *rec)
{
    unsigned host = WORLD_GUEST_HOST;
    for (unsigned h = 0; h < w->n_hosts && rec->host[0]; h++) {
        host = strcmp(rec->host, w->hosts[h].name) == 0 ? h : host;
    }
    struct world_event ev = { .kind = WORLD_EV_CONTROL, .host = host, .line = rec->line,
                              .rec = rec->kind, .text = rec->host[0] ? rec->host : "" };
    world__event(w, &ev);
}

/* Does @rec act on the world (rather than being a guest request, a setting,
 * a comment or an expectation)? */
static bool rec_is_control(const struct world *w, const struct trace_rec *rec)
{
    switch (rec->kind) {
    case TRACE_CRASH:
    case TRACE_RESTART:
    case TRACE_BITMAP:
    case TRACE_SHUTDOWN:
    case TRACE_JOB:
        return true;
    default:
        return (w->topo_ops->controls & (1u << rec->kind)) != 0;
    }
}

void world_check(const struct world *w)
{
    ASSERT(w->n_hosts >= 1 && w->n_hosts <= WORLD_HOSTS_MAX);
    ASSERT(w->n_disks >= 1 && w->n_disks <= WORLD_DISKS_MAX);
    ASSERT(w->topo_ops != NULL);
    /* The guest's stack lives exactly while its host is up. */
    ASSERT((w->live != NULL) == w->hosts[WORLD_GUEST_HOST].up);
    ASSERT(w->n_inflight <= 1024); /* the largest queue depth (a qd record may lower it
                                    * below what is in flight) */
    for (unsigned i = 0; i < w->n_inflight; i++) { /* a host that is down has none */
        ASSERT(w->hosts[w->inflight[i]->host].up);
    }
    /* Every disk sits on exactly one host. */
    for (unsigned i = 0; i < w->n_disks; i++) {
        unsigned holders = 0;
        for (unsigned h = 0; h < w->n_hosts; h++) {
            holders += w->hosts[h].disk[i];
        }
        ASSERT(holders == 1);
    }
    for (unsigned h = 0; h < w->n_hosts; h++) {
        ASSERT(w->hosts[h].crashes <= w->hosts[h].downs);
    }
    ASSERT(w->next <= w->t->n);
    for (const struct job *j = w->live ? w->live->jobs.head : NULL; j; j = j->next) {
        job_check(j);
    }
    world__checkers_check(w);
}

void world__pump(struct world *w)
{
    world_check(w);
    while (w->next < w->t->n && !w->control_busy && w->r->verdict == WORLD_PASS &&
           !w->r->ended_early) {
        const struct trace_rec *rec = &w->t->recs[w->next];
        if (!pump_one(w, rec)) {
            return;
        }
        if (rec_is_control(w, rec)) {
            world__checkers_control(w, rec);
            control_event(w, rec);
        }
        w->next++;
        w->waited = false;
        w->progress_ns = w->q.now_ns;
    }
}

/* ---- scenario validation and set-up ---- */

uint64_t world_trace_size(const struct trace *t)
{
    uint64_t end = 0;
    for (size_t i = 0; i < t->n; i++) {
        const struct trace_rec *r = &t->recs[i];
        if (r->kind == TRACE_TOPOLOGY && r->cfg->has_size) {
            return r->cfg->size;
        }
        if (trace_kind_is_op(r->kind) && r->kind != TRACE_FLUSH) {
            end = max_u64(end, r->offset + r->len);
        }
    }
    return max_u64(align_up(end, 1u << 20), 1u << 20);
}

static int setup_disk_rec(struct world *w, const struct trace_rec *r, struct err *e)
{
    const struct trace_cfg *c = r->cfg;
    for (unsigned i = 0; i < w->n_disks; i++) {
        struct disk_config *d = &w->dcfg[i];
        if (strcmp(d->name, c->name) != 0) {
            continue;
        }
        if (w->disk_rec_line[i]) {
            return err_set(e, r->line, 2, "disk %s is configured twice (first on line %u): "
                           "give all its settings in one record", d->name,
                           w->disk_rec_line[i]);
        }
        w->disk_rec_line[i] = r->line ? r->line : UINT32_MAX;
        if (c->host[0] && i < w->n_topo_disks) {
            return err_set(e, r->line, 2, "disk %s belongs to the %s topology: host= is for "
                           "extra disks", d->name, trace_topology_name(w->topo));
        }
        if (c->image) {
            TRY(world__image_disk_rec(w, i, r, e));
        }
        bool fleece = w->fleece_size[i] > 0; /* size= is its overlay's, set already */
        if (c->has_size && c->size < d->size && !fleece) {
            return err_set(e, r->line, 3, "disk %s needs at least %" PRIu64 " bytes",
                           d->name, d->size);
        }
        d->size = c->has_size && !fleece ? c->size : d->size;
        d->cache_bytes = c->has_cache ? c->cache : d->cache_bytes;
        d->lat_min_ns = c->has_latency ? c->lat_min_ns : d->lat_min_ns;
        d->lat_max_ns = c->has_latency ? c->lat_max_ns : d->lat_max_ns;
        d->flush_ns = c->has_flush ? c->flush_ns : d->flush_ns;
        d->atomic_sector = c->has_atomic ? c->atomic : d->atomic_sector;
        return 0;
    }
    if (w->topo_ops->jobs) { /* an extra disk: add it, then configure it as any */
        TRY(world__extra_disk_rec(w, r, e));
        return setup_disk_rec(w, r, e);
    }
    char names[WORLD_DISKS_MAX * 8] = "";
    for (unsigned i = 0; i < w->n_disks; i++) {
        size_t at = strlen(names);
        snprintf(names + at, sizeof(names) - at, "%s%s", i ? " " : "", w->dcfg[i].name);
    }
    return err_set(e, r->line, 2, "no disk '%s' in the %s topology (it has %s)", c->name,
                   trace_topology_name(w->topo), names);
}

static void topology_disks(struct world *w, const struct trace_cfg *topo)
{
    memset(w->hosts, 0, sizeof(w->hosts));
    for (unsigned h = 0; h < WORLD_HOSTS_MAX; h++) {
        w->hosts[h].child = -1;
        w->hosts[h].serves = -1;
    }
    snprintf(w->hosts[WORLD_GUEST_HOST].name, TRACE_HOST_MAX, "primary");
    w->n_hosts = 1;
    w->topo_ops->setup(w, topo);
    w->n_topo_disks = w->n_disks;
}

/* Topology first: it names the disks that disk records then configure. */
static int setup_topology(struct world *w, struct err *e)
{
    w->topo = TRACE_TOPO_PLAIN;
    const struct trace_cfg *topo = NULL;
    unsigned seen = 0;
    for (size_t i = 0; i < w->t->n; i++) {
        const struct trace_rec *r = &w->t->recs[i];
        if (r->kind != TRACE_TOPOLOGY) {
            continue;
        }
        if (seen++) {
            return err_set(e, r->line, 1, "a trace has at most one topology record");
        }
        w->topo = r->cfg->topology;
        topo = r->cfg;
    }
    w->topo_ops = topo_find(w->topo);
    w->size = w->o.size ? w->o.size : world_trace_size(w->t);
    topology_disks(w, topo);
    uint64_t image = 0;
    TRY(world__image_guest_size(w, &image, e));
    if (image && image != w->size && !w->o.size && !(topo && topo->has_size)) {
        w->size = image; /* the guest disk's size comes from its image */
        topology_disks(w, topo);
    }
    return 0;
}

static int check_op_rec(const struct world *w, const struct trace_rec *r, bool up,
                        struct err *e)
{
    if (!up) {
        return err_set(e, r->line, 1, "'%s' while the host is down (add 'restart' first)",
                       trace_kind_name(r->kind));
    }
    if (r->kind != TRACE_FLUSH && r->offset + r->len > w->size) {
        return err_set(e, r->line, 2, "%s at %" PRIu64 "+%" PRIu64 " goes beyond the "
                       "%" PRIu64 "-byte disk", trace_kind_name(r->kind), r->offset, r->len,
                       w->size);
    }
    return 0;
}

/* Does fault rule @f name something this world has? A rule naming a disk or
 * host that does not exist would never fire: an input error, with the names
 * that exist in @known. */
static bool fault_target_ok(const struct world *w, const struct fault_rule *f, char *known,
                            size_t size)
{
    bool net = f->kind >= FAULT_NET_RESET;
    size_t at = 0;
    known[0] = '\0';
    bool found = !f->disk[0];
    if (net) {
        at += (size_t)snprintf(known + at, size - at, "hosts:");
        for (unsigned h = 0; h < w->n_hosts && at < size; h++) {
            found |= strcmp(f->disk, w->hosts[h].name) == 0;
            at += (size_t)snprintf(known + at, size - at, "%s %s", h ? "," : "",
                                   w->hosts[h].name);
        }
        return found;
    }
    at += (size_t)snprintf(known + at, size - at, "disks:");
    for (unsigned i = 0; i < w->n_disks && at < size; i++) {
        found |= strcmp(f->disk, w->dcfg[i].name) == 0;
        at += (size_t)snprintf(known + at, size - at, "%s %s", i ? "," : "", w->dcfg[i].name);
    }
    /* The QBM files of dirty bitmaps are disks named "qbm" (sim/files). */
    found |= strcmp(f->disk, FILES_DISK_NAME) == 0;
    if (at < size) {
        snprintf(known + at, size - at, "; bitmap files: %s", FILES_DISK_NAME);
    }
    return found;
}

/* The --faults rules, after the trace's own (numbered from @first). */
static int faults_opt_validate(const struct world *w, size_t first, struct err *e)
{
    for (size_t i = first; i < w->plan.n; i++) {
        char known[256];
        const struct fault_rule *f = &w->plan.rules[i];
        if (!fault_target_ok(w, f, known, sizeof(known))) {
            return err_set(e, 0, 0, "--faults rule %zu names %s '%s', which this topology "
                           "does not have (%s)", i - first + 1,
                           f->kind >= FAULT_NET_RESET ? "host" : "disk", f->disk, known);
        }
    }
    return 0;
}

/* A crash, restart or shutdown names a host there is, in a state that
 * allows it; @up follows what the records do to each host. */
static int host_rec_check(const struct world *w, const struct trace_rec *r, bool *up,
                          struct err *e)
{
    enum trace_kind k = r->kind;
    bool restart = k == TRACE_RESTART;
    unsigned named = 0;
    unsigned acted = 0;
    char names[WORLD_HOSTS_MAX * (TRACE_HOST_MAX + 2)] = "";
    for (unsigned h = 0; h < w->n_hosts; h++) {
        size_t at = strlen(names);
        snprintf(names + at, sizeof(names) - at, "%s%s", h ? ", " : "", w->hosts[h].name);
        if (r->host[0] && strcmp(r->host, w->hosts[h].name) != 0) {
            continue;
        }
        named++;
        acted += up[h] != restart;
    }
    if (named == 0) {
        return err_set(e, r->line, 2, "no host '%s' in the %s topology (hosts: %s)", r->host,
                       trace_topology_name(w->topo), names);
    }
    bool guest_named = !r->host[0] || strcmp(r->host, w->hosts[WORLD_GUEST_HOST].name) == 0;
    if (acted == 0 || (!r->host[0] && !restart && !up[WORLD_GUEST_HOST]) ||
        (guest_named && r->host[0] && up[WORLD_GUEST_HOST] == restart)) {
        return err_set(e, r->line, 1, restart ? "restart while the host is up" :
                       "'%s' while the host is down", trace_kind_name(k));
    }
    for (unsigned h = 0; h < w->n_hosts; h++) {
        if (!r->host[0] || strcmp(r->host, w->hosts[h].name) == 0) {
            up[h] = restart;
        }
    }
    return 0;
}

/* Settings before the first operation; host up/down order; sizes. */
/* Does @rec name a host other than the guest's? */
static bool host_rec_other(const struct world *w, const struct trace_rec *rec)
{
    return rec->host[0] && strcmp(rec->host, w->hosts[WORLD_GUEST_HOST].name) != 0;
}

static bool host_named(const struct world *w, const char *name)
{
    for (unsigned h = 0; h < w->n_hosts; h++) {
        if (strcmp(w->hosts[h].name, name) == 0) {
            return true;
        }
    }
    return false;
}

/* A bitmap record or a topology's operator action: its topology runs it,
 * on a host that is up (colo reports a host that is down at run time). */
static int control_rec_check(const struct world *w, const struct trace_rec *r, bool guest_up,
                             struct err *e)
{
    enum trace_kind k = r->kind;
    if (k == TRACE_BITMAP && !guest_up) {
        return err_set(e, r->line, 1, "'bitmap' while the host is down (add 'restart' first)");
    }
    if ((k == TRACE_REPLICATION || k == TRACE_COLO) && !(w->topo_ops->controls & (1u << k))) {
        return err_set(e, r->line, 1, "'%s' needs the colo topology", trace_kind_name(k));
    }
    if (k == TRACE_REPLICATION && r->host[0] && !host_named(w, r->host)) {
        return err_set(e, r->line, 2, "no host '%s' in the colo topology (hosts: primary, "
                       "secondary)", r->host);
    }
    if ((k == TRACE_COMMIT || k == TRACE_MAKE_EMPTY) &&
        (!(w->topo_ops->controls & (1u << k)) || !guest_up)) {
        return err_set(e, r->line, 1, "'%s' needs a topology that runs it (overlay) and a host "
                       "that is up", trace_kind_name(k));
    }
    return 0;
}

static int setup_validate(struct world *w, struct err *e)
{
    bool ops_started = false;
    bool jobs_seen = false;
    bool up[WORLD_HOSTS_MAX];
    for (unsigned h = 0; h < WORLD_HOSTS_MAX; h++) {
        up[h] = true;
    }
    for (size_t i = 0; i < w->t->n; i++) {
        const struct trace_rec *r = &w->t->recs[i];
        enum trace_kind k = r->kind;
        bool setting = k == TRACE_SEED || k == TRACE_TOPOLOGY || k == TRACE_DISK ||
                       k == TRACE_FAULT || k == TRACE_BUGGIFY || k == TRACE_MUTANT;
        bool guest_up = up[WORLD_GUEST_HOST];
        w->buggify |= k == TRACE_BUGGIFY;
        if (k == TRACE_MUTANT) {
            w->o.node_mutants |= mutant_get(r->value).node;
            w->o.disk_mutants |= mutant_get(r->value).disk;
        }
        w->bitmaps |= k == TRACE_BITMAP;
        if (setting && ops_started) {
            return err_set(e, r->line, 1, "'%s' must come before the first operation",
                           trace_kind_name(k));
        }
        if (k == TRACE_DISK) {
            TRY(setup_disk_rec(w, r, e));
        } else if (k == TRACE_FAULT) {
            char known[256];
            if (!fault_target_ok(w, &r->cfg->fault, known, sizeof(known))) {
                return err_set(e, r->line, 2, "the fault rule names %s '%s', which this "
                               "topology does not have (%s)", r->cfg->fault.kind >=
                               FAULT_NET_RESET ? "host" : "disk", r->cfg->fault.disk, known);
            }
            fault_plan_add(&w->plan, &r->cfg->fault);
        } else if (r->export[0]) {
            TRY(world__export_rec_check(w, r, up[WORLD_GUEST_HOST], e));
        } else if (trace_kind_is_op(k) && r->guest && !w->topo_ops->guest_host) {
            return err_set(e, r->line, 1, "guest=secondary needs the colo topology");
        } else if (trace_kind_is_op(k)) {
            TRY(check_op_rec(w, r, up[r->guest ? w->topo_ops->guest_host(w, r->guest)
                                               : WORLD_GUEST_HOST], e));
        } else if (k == TRACE_CRASH && r->plan && r->plan->at_flush) {
            if (w->at_flush_rec) {
                return err_set(e, r->line, 2, "a second crash with at-flush= (the first is on "
                               "line %u)", w->at_flush_rec->line);
            }
            w->at_flush_rec = r;
            w->o.crash_at_flush = w->o.crash_at_flush ? w->o.crash_at_flush
                                                       : r->plan->at_flush;
        }
        if (k == TRACE_SHUTDOWN && jobs_seen && !host_rec_other(w, r)) {
            return err_set(e, r->line, 1, "'shutdown' after a 'job' record: blocksim does not "
                           "model jobs across a clean shutdown yet (crash instead)");
        }
        if (k == TRACE_CRASH || k == TRACE_RESTART || k == TRACE_SHUTDOWN) {
            TRY(host_rec_check(w, r, up, e));
        } else if (k == TRACE_JOB) {
            TRY(world__job_validate(w, r, guest_up, e));
            jobs_seen = w->has_jobs = true;
        } else {
            TRY(control_rec_check(w, r, guest_up, e));
        }
        ops_started |= !setting && k != TRACE_BLANK && k != TRACE_HEADER;
    }
    return 0;
}

static uint64_t trace_seed(const struct trace *t)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->recs[i].kind == TRACE_SEED) {
            return t->recs[i].value;
        }
    }
    return 1;
}

static bool world_taint(void *opaque, uint64_t sector)
{
    const struct world *w = opaque;
    if (w->pivot_disk >= 0 &&
        disk_taint_get(w->disks[w->pivot_disk], sector) != DISK_TAINT_NONE) {
        return true; /* the guest's data lives there since a mirror's pivot */
    }
    return w->topo_ops->explained(w, sector);
}

static int world_setup(struct world *w, struct err *e)
{
    w->pivot_disk = w->job_disk = -1;
    fault_plan_init(&w->plan);
    TRY(setup_topology(w, e));
    TRY(setup_validate(w, e));
    TRY(world__bitmap_specs_check(w, e));
    size_t trace_rules = w->plan.n;
    if (w->o.faults && fault_plan_parse_spec(&w->plan, w->o.faults, e) < 0) {
        e->line = 0;
        return BS_EPARSE;
    }
    TRY(faults_opt_validate(w, trace_rules, e));
    TRY(world__exports_check(w, e));
    w->crash_free = crash_free(w);
    bool no_log = w->crash_free && !w->o.n_exports && !trace_has(w->t, TRACE_SHUTDOWN);
    for (unsigned i = 0; i < w->n_disks; i++) {
        w->dcfg[i].no_log = no_log;
        w->disks[i] = disk_new(&w->dcfg[i], &w->q, &w->plan, w->seed, i, w->o.disk_mutants);
        if (!w->o.bytes) {
            disk_describe(w->disks[i], w->seed);
        }
        w->disks[i]->flush_hook = flush_seen;
        w->disks[i]->flush_hook_opaque = w;
        w->disks[i]->taint_hook = taint_seen;
        w->disks[i]->taint_hook_opaque = w;
    }
    world__check_rw_init(w, &w->check, world_taint, w);
    w->check.replicas = w->topo_ops->replicas;
    world__checker_add(w, &check_rw_ops, &w->check);
    if (w->topo_ops->start) {
        w->topo_ops->start(w); /* adds the topology's checkers */
    }
    TRY(world__images_load(w, e));
    w->digest = XXH3_createState();
    ASSERT(w->digest != NULL);
    XXH3_64bits_reset_withSeed(w->digest, w->seed);
    w->bitmaps |= w->o.n_bitmaps > 0;
    w->r->bitmaps_on = w->bitmaps;
    if (w->bitmaps) {
        files_init(&w->files, &w->q, &w->plan, w->seed, w->o.disk_mutants);
        check_bitmap_init(&w->cb, w->size);
        world__checker_add(w, &world__bitmap_checker, w);
    }
    if (w->has_jobs) {
        check_job_init(&w->cj, w->seed);
        world__checker_add(w, &world__job_checker, w);
    }
    for (unsigned i = 0; i < w->o.n_checkers; i++) {
        world__checker_add(w, w->o.checkers[i].ops, w->o.checkers[i].self);
    }
    world__xnet_start(w);
    for (unsigned h = 1; h < w->n_hosts; h++) {
        TRY(world__host_open(w, h, e));
        w->hosts[h].up = true;
    }
    TRY(stack_open(w, e));
    w->hosts[WORLD_GUEST_HOST].up = true;
    if (w->bitmaps) {
        world__bitmap_ready(w, NULL, true);
    }
    if (w->topo_ops->ready) {
        w->topo_ops->ready(w);
    }
    return 0;
}

/* ---- run and tear down ---- */

static void world_panic_context(void *opaque, char *buf, size_t size)
{
    const struct world *w = opaque;
    snprintf(buf, size, "(seed %" PRIu64 ", virtual time %" PRIu64 " ns, record %zu)",
             w->seed, w->q.now_ns, w->next);
}

static void world_fini(struct world *w)
{
    w->closing = true; /* the drain below runs no more records */
    if (w->live) {
        stack_kill(w);
    }
    for (unsigned h = 1; h < w->n_hosts; h++) {
        if (w->hosts[h].up) {
            world__host_kill(w, h);
            w->hosts[h].up = false;
            w->hosts[h].downs++;
        }
    }
    w->epoch++; /* completions from here on are ignored */
    /* Drain: every request still in flight completes (with an error or not)
     * and every dead stack frees itself. Bounded by the events pending. */
    for (uint64_t i = 0; i < WORLD_EVENTS_MAX && evq_step(&w->q, UINT64_MAX); i++) {
    }
    world__xnet_end(w);
    world__checkers_fini(w); /* before the topology: its checkers live in its state */
    world__jobs_fini(w);
    if (w->topo_ops && w->topo_ops->fini) {
        w->topo_ops->fini(w);
    }
    world__images_fini(w);
    for (unsigned i = 0; i < w->n_disks; i++) {
        if (w->disks[i]) {
            disk_free(w->disks[i]);
        }
    }
    if (w->r->bitmaps_on) {
        files_fini(&w->files);
    }
    if (w->digest) {
        XXH3_freeState(w->digest);
    }
    mem_free(w->inflight, w->cap_inflight * sizeof(*w->inflight));
    fault_plan_fini(&w->plan);
    evq_fini(&w->q);
    base_panic_hook_set(NULL, NULL);
}

static void world_loop(struct world *w)
{
    /* Liveness is judged by stalls, not by a total: a trace may span any
     * length of virtual time; the stack may not sit on pending work for
     * stall_ns with nothing completing. */
    uint64_t stall = w->o.stall_ns ? w->o.stall_ns : WORLD_STALL_DEFAULT;
    uint64_t limit = 0;
    world__pump(w);
    for (uint64_t i = 0; i < WORLD_EVENTS_MAX && w->r->verdict == WORLD_PASS; i++) {
        uint64_t base = max_u64(w->progress_ns, w->wait_until_ns);
        limit = base > UINT64_MAX - stall ? UINT64_MAX : base + stall;
        if (!evq_step(&w->q, limit)) {
            break;
        }
    }
    bool unfinished = w->next < w->t->n || w->n_inflight > 0 || w->control_busy;
    if (w->r->verdict == WORLD_PASS && unfinished && !w->r->ended_early && evq_empty(&w->q) &&
        world__job_wait_stuck(w)) {
        return; /* the scenario waits for what cannot happen: not the stack's fault */
    }
    if (w->r->verdict == WORLD_PASS && unfinished && !w->r->ended_early) {
        const struct trace_rec *rec = &w->t->recs[w->next < w->t->n ? w->next : w->t->n - 1];
        char msg[200];
        snprintf(msg, sizeof(msg), "the stack made no progress for %.3f s of virtual time "
                 "(from %.3f s on): %u operations in flight%s (--stall sets the limit)",
                 (double)stall / 1e9,
                 (double)(limit - stall) / 1e9, w->n_inflight,
                 w->control_busy ? ", an operator action pending" : "");
        world__control_fail(w, rec, "liveness", msg);
    }
}

static uint64_t disks_content_hash(const struct world *w)
{
    uint64_t h[WORLD_DISKS_MAX];
    for (unsigned i = 0; i < w->n_disks; i++) {
        h[i] = disk_content_hash(w->disks[i]);
    }
    return XXH3_64bits(h, w->n_disks * sizeof(h[0]));
}

bool world_described_differs(const struct world_result *a, const struct world_result *b,
                             char *msg, size_t size)
{
    const char *what = a->verdict != b->verdict                  ? "verdict"
                       : a->digest != b->digest                  ? "digest"
                       : a->content_hash != b->content_hash      ? "content hash"
                       : strcmp(a->first.msg, b->first.msg) != 0 ? "first violation"
                                                                 : NULL;
    if (what) {
        snprintf(msg, size, "described I/O changed the run's %s (%" PRIu64 " reads described): "
                 "%s, digest %016" PRIx64 "%s%.150s; with --bytes %s, digest %016" PRIx64
                 "%s%.150s", what, a->described_reads, a->verdict == WORLD_PASS ? "pass" : "fail",
                 a->digest, a->first.msg[0] ? ", " : "", a->first.msg,
                 b->verdict == WORLD_PASS ? "pass" : "fail", b->digest,
                 b->first.msg[0] ? ", " : "", b->first.msg);
    }
    return what != NULL;
}

static void result_fill(struct world *w)
{
    struct world_result *r = w->r;
    r->seed = w->seed;
    r->sim_ns = w->q.now_ns;
    r->events = w->q.executed;
    bool hash = !w->o.skip_content_hash;
    for (size_t i = 0; i < w->t->n && !hash; i++) {
        hash = w->t->recs[i].kind == TRACE_EXPECT && w->t->recs[i].expect == TRACE_EXPECT_CONTENT;
    }
    r->content_hash = hash ? disks_content_hash(w) : 0;
    digest_flush(w);
    r->digest = XXH3_64bits_digest(w->digest) ^ rng_next(&w->root);
    r->sectors_checked = w->check.sectors_checked;
    r->explained = w->check.explained + (w->r->bitmaps_on ? w->cb.explained : 0);
    r->topology = trace_topology_name(w->topo);
    r->n_disks = w->n_disks;
    STATIC_ASSERT(WORLD_RESULT_HOSTS >= WORLD_HOSTS_MAX);
    r->n_hosts = w->n_hosts;
    for (unsigned h = 0; h < w->n_hosts; h++) {
        const struct host *x = &w->hosts[h];
        struct world_host *y = &r->hosts[h];
        snprintf(y->name, sizeof(y->name), "%s", x->name);
        y->up = x->up;
        y->crashes = x->crashes;
        y->downs = x->downs;
    }
    (void)faults_count(w, r->faults);
    if (w->topo_ops->end) {
        w->topo_ops->end(w);
    }
    /* r->first is the first violation in event order: world__verdict_fail
     * took it as it happened, whichever checker saw it. */
    world__checkers_end(w);
    if (w->o.want_checks) {
        world__jobs_json(w); /* each checker writes its own section */
        r->checks = world__checkers_json(w);
    }
}

static void expect_check(const struct trace *t, struct world_result *r)
{
    for (size_t i = 0; i < t->n && !r->expect_failed; i++) {
        const struct trace_rec *rec = &t->recs[i];
        if (rec->kind != TRACE_EXPECT) {
            continue;
        }
        r->expects++;
        uint64_t got = rec->expect == TRACE_EXPECT_DIGEST ? r->digest
                       : rec->expect == TRACE_EXPECT_CONTENT ? r->content_hash
                       : (uint64_t)(r->verdict == WORLD_PASS);
        if (got == rec->value) {
            continue;
        }
        r->expect_failed = true;
        if (rec->expect == TRACE_EXPECT_VERDICT) {
            snprintf(r->expect_msg, sizeof(r->expect_msg), "line %u: expected verdict %s, "
                     "got %s", rec->line, rec->value ? "pass" : "fail",
                     got ? "pass" : "fail");
        } else {
            snprintf(r->expect_msg, sizeof(r->expect_msg), "line %u: expected %s %016" PRIx64
                     ", got %016" PRIx64, rec->line, rec->expect == TRACE_EXPECT_DIGEST ?
                     "digest" : "content", rec->value, got);
        }
    }
}

int world_run(const struct trace *t, const struct world_opts *o, struct world_result *r,
              struct err *e)
{
    struct world *w = mem_alloc(sizeof(*w));
    memset(r, 0, sizeof(*r));
    w->t = t;
    w->o = *o;
    w->r = r;
    w->seed = o->has_seed ? o->seed : trace_seed(t);
    w->qd = o->qd ? o->qd : 1;
    evq_init(&w->q);
    rng_stream(&w->root, w->seed, "root", 0, 0);
    rng_stream(&w->crash_rng, w->seed, "crash-mode", 0, 0);
    rng_stream(&w->buggify_rng, w->seed, "buggify", 0, 0);
    w->buggify = o->buggify;
    base_panic_hook_set(world_panic_context, w);
    int ret = world_setup(w, e);
    if (ret == 0) {
        world_loop(w);
        if (w->bitmaps) {
            world__bitmap_end(w);
        }
        result_fill(w);
        expect_check(t, r);
        world__exports_write(w);
    }
    world_fini(w);
    mem_free(w, sizeof(*w));
    return ret;
}
