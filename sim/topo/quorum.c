/*
 * quorum: the quorum topology (the interface in topo.h, the record in trace.h).
 *
 * Method: the primary host runs a quorum node over one tap per child; a
 * local child is a file node on its disk, a remote one (the last nbd= of
 * them) an NBD client node that dials host s<i>, where a second graph
 * serves the child's disk with nbd_server over sim/net. The taps feed
 * check_quorum with every child's answer; the quorum's events feed it too.
 * Hosts: the primary (the guest, the quorum, local children) and one
 * server host s<i> per NBD child, each crashing and restarting on its own.
 * A server that goes down stops listening and resets its connections; the
 * primary's NBD client retries for the reconnect delay, then fails its
 * requests, and the quorum votes without that child; after `restart
 * host=s<i>` the client reconnects. When the primary goes down, its dead
 * stack's NBD clients can no longer dial, and what its taps and events
 * still report is ignored.
 * NBD children and the network: with every network rule transient (resets
 * bounded by times=, clogs, stalls and partitions that heal within half the
 * reconnect delay) and no fault on the child's disk, an NBD child must never
 * fail a request: the reconnect policy has to hide the network ("nbd-
 * reconnect").
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../../ref/drv_file.h"
#include "../../ref/drv_nbd.h"
#include "../../ref/drv_quorum.h"
#include "../base/content.h"
#include "../world/world_int.h"
#include "dial.h"
#include "serve.h"
#include "tap.h"
#include "topo.h"

#define QW_RECONNECT_NS (15ull * 1000000000ull)
#define QW_PRIMARY "primary"

struct quorum_state {
    struct trace_cfg cfg;           /* the topology record's options */
    struct check_quorum cq;         /* judges every quorum request */
    struct net *net;                /* when some children are NBD */
    bool net_transient;             /* every network rule heals within the delay */
    struct disk_server *srv[WORLD_DISKS_MAX]; /* NBD servers, NULL while down */
    uint64_t child_errors[WORLD_DISKS_MAX];
    /* Per child, the sectors where it may not hold what the guest was told
     * (a write of it failed, or its host lost power with the write cached):
     * with the disks' own taints, what exact fault attribution counts. */
    struct u64map stale[WORLD_DISKS_MAX];
    /* Per child, the sectors whose last read it failed (an injected error):
     * it did not vote for the truth there. */
    struct u64map mute[WORLD_DISKS_MAX];
    /* Each child judged as a disk of its own (redundancy must not hide a
     * replica's loss): what it acknowledged with FUA, or before a flush it
     * acknowledged, must survive its host's crash, whatever the vote shows. */
    struct check_rw replica[WORLD_DISKS_MAX];
    bool replica_failed;            /* replica_first is the replicas' first violation */
    struct violation replica_first;
    struct replica_ctx {
        struct world *w;
        unsigned child;
    } rctx[WORLD_DISKS_MAX];
    uint64_t *tags;                 /* scratch: a child request's content tags */
    uint64_t cap_tags;
};

static struct quorum_state *qs(const struct world *w)
{
    return w->tst;
}

static void quorum_setup(struct world *w, const struct trace_cfg *c)
{
    if (!w->tst) {
        w->tst = mem_alloc(sizeof(struct quorum_state));
    }
    qs(w)->cfg = *c;
    /* 0 means the default (trace.h), also for a record made in memory. */
    c = &qs(w)->cfg;
    qs(w)->cfg.children = c->children ? c->children : 3;
    qs(w)->cfg.threshold = c->threshold ? c->threshold : c->children / 2 + 1;
    w->n_disks = c->children;
    w->n_hosts = 1;
    for (unsigned i = 0; i < c->children; i++) {
        char name[16];
        snprintf(name, sizeof(name), "c%u", i);
        disk_config_default(&w->dcfg[i], name, w->size);
        if (i < c->children - c->nbd) {
            w->hosts[WORLD_GUEST_HOST].disk[i] = true;
            continue;
        }
        struct host *h = &w->hosts[w->n_hosts++];
        snprintf(h->name, sizeof(h->name), "s%u", i);
        h->disk[i] = true;
        h->child = (int)i;
    }
}

/* A replica's own wrong value is explained only by a fault on its disk at
 * that very sector. */
static bool replica_taint(void *opaque, uint64_t sector)
{
    const struct replica_ctx *c = opaque;
    return disk_taint_get(c->w->disks[c->child], sector) != DISK_TAINT_NONE;
}

static const struct checker_ops quorum_checker, replicas_checker;

static void quorum_start(struct world *w)
{
    for (unsigned i = 0; i < WORLD_DISKS_MAX; i++) {
        u64map_init(&qs(w)->stale[i]);
        u64map_init(&qs(w)->mute[i]);
        qs(w)->rctx[i] = (struct replica_ctx){ w, i };
        world__check_rw_init(w, &qs(w)->replica[i], replica_taint, &qs(w)->rctx[i]);
    }
    check_quorum_init(&qs(w)->cq, qs(w)->cfg.children, qs(w)->cfg.threshold, qs(w)->cfg.fifo,
                      qs(w)->cfg.rewrite, qs(w)->cfg.ignore_mask);
    qs(w)->replica_failed = false;
    world__checker_add(w, &quorum_checker, w);
    world__checker_add(w, &replicas_checker, w);
    qs(w)->net_transient = true;
    for (size_t i = 0; i < w->plan.n; i++) {
        qs(w)->net_transient &= fault_rule_transient(&w->plan.rules[i], QW_RECONNECT_NS / 2);
    }
    if (qs(w)->cfg.nbd) {
        struct net_config nc;
        net_config_default(&nc);
        qs(w)->net = net_new(&w->q, &w->plan, w->seed, &nc);
    }
}

/* ---- observers ---- */

static bool child_remote(const struct world *w, unsigned i)
{
    return i >= qs(w)->cfg.children - qs(w)->cfg.nbd;
}

/* The host serving @child (0 when it is local). */
static unsigned child_host(const struct world *w, unsigned child)
{
    for (unsigned h = 1; h < w->n_hosts; h++) {
        if (w->hosts[h].child == (int)child) {
            return h;
        }
    }
    return WORLD_GUEST_HOST;
}

static void nbd_judge(struct world *w, unsigned child, const struct req *req, int ret)
{
    /* A server host that went down explains its child's failures. */
    if (!qs(w)->net_transient || fault_counts_add(NULL, w->disks[child]->stats.faults) > 0 ||
        w->hosts[child_host(w, child)].downs > 0) {
        return;
    }
    char msg[300];
    snprintf(msg, sizeof(msg), "children.%u (NBD from host s%u) failed %s %" PRIu64 "+%"
             PRIu64 " with %s, though every network fault heals within the reconnect "
             "delay (%" PRIu64 " s) and its disk had none", child, child,
             node_op_name(req->op), req->offset, req->len, blocksim_strerror(ret),
             (uint64_t)(QW_RECONNECT_NS / 1000000000ull));
    world__violation(w, "nbd-reconnect", msg);
}

/* Sectors [off, off + len) of @m: marked (@on) or cleared. */
static void sectors_mark(struct u64map *m, uint64_t off, uint64_t len, bool on)
{
    for (uint64_t s = off / 512; s < (off + len) / 512; s++) {
        if (on) {
            *u64map_put(m, s, NULL) = 1;
        } else if (m->n) {
            u64map_del(m, s);
        }
    }
}

/* Child @child's sectors [off, off + len) missed a write (@missed) or got it. */
static void stale_mark(struct world *w, unsigned child, uint64_t off, uint64_t len, bool missed)
{
    sectors_mark(&qs(w)->stale[child], off, len, missed);
    if (!missed) {
        sectors_mark(&qs(w)->mute[child], off, len, false);
    }
}

/* Is a guest read over [off, off + len) in flight? Guest requests on a
 * quorum never overlap, so a child write under it is a repair
 * (rewrite-corrupted). */
static bool guest_read_over(const struct world *w, uint64_t off, uint64_t len)
{
    for (unsigned i = 0; i < w->n_inflight; i++) {
        const struct trace_rec *r = w->inflight[i]->rec;
        if (r->kind == TRACE_READ && ranges_overlap(r->offset, r->len, off, len)) {
            return true;
        }
    }
    return false;
}

static bool child_touched(const struct world *w, unsigned i, uint64_t sector);

/* A repair copied the winning version onto @child: where another child was
 * touched by a fault, the copy may carry the fault's data with it, so the
 * repaired child counts as touched there too (attribution follows the
 * data); elsewhere it now holds the truth. */
static void repair_seen(struct world *w, unsigned child, uint64_t off, uint64_t len)
{
    for (uint64_t sec = off / 512; sec < (off + len) / 512; sec++) {
        bool carried = false;
        for (unsigned i = 0; i < w->n_disks && !carried; i++) {
            carried = i != child && child_touched(w, i, sec);
        }
        stale_mark(w, child, sec * 512, 512, carried);
    }
}

static void tap_submit_seen(void *opaque, unsigned child, struct req *req)
{
    struct stack *s = opaque;
    if (req->op == NODE_OP_FLUSH) {
        req->drv_u64[0] = check_rw_flush_submit(&qs(s->w)->replica[child]);
    }
}

/* The guest request in flight over [off, off + len), or NULL. */
static const struct guest_op *guest_op_over(const struct world *w, uint64_t off, uint64_t len)
{
    for (unsigned i = 0; i < w->n_inflight; i++) {
        const struct trace_rec *r = w->inflight[i]->rec;
        if (r->kind == TRACE_FLUSH || ranges_overlap(r->offset, r->len, off, len)) {
            return w->inflight[i];
        }
    }
    return NULL;
}

/* The content tags of a child's read or write: as described (ref/env.h),
 * or identified from @buf; *known: none is garbage. */
static const uint64_t *child_tags(struct world *w, const struct req *req, const uint8_t *buf,
                                  bool *known)
{
    uint64_t n = req->len / CONTENT_SECTOR;
    *known = true;
    if (!buf && req->op == NODE_OP_READ) {
        return req->desc->tags;
    }
    if (n > qs(w)->cap_tags) {
        mem_free(qs(w)->tags, qs(w)->cap_tags * sizeof(*qs(w)->tags));
        qs(w)->cap_tags = max_u64(n, 2 * qs(w)->cap_tags);
        qs(w)->tags = mem_alloc_raw(qs(w)->cap_tags * sizeof(*qs(w)->tags));
    }
    uint64_t *tags = qs(w)->tags;
    if (!buf) { /* a described write */
        for (uint64_t k = 0; k < n; k++) {
            tags[k] = req->desc->tag;
        }
        return tags;
    }
    *known = content_identify_run(buf, w->seed, req->offset / CONTENT_SECTOR, n, tags);
    return tags;
}

/* Feed replica @child's model with what it answered to @req (@tags: of a
 * read or write's sectors; @buf: their bytes, NULL if described). */
static void replica_seen(struct world *w, unsigned child, const struct req *req, int ret,
                         const uint64_t *tags, const uint8_t *buf)
{
    struct check_rw *c = &qs(w)->replica[child];
    uint64_t first = req->offset / 512;
    uint64_t n = req->len / 512;
    bool fua = (req->flags & NODE_REQ_FUA) != 0;
    if (req->op == NODE_OP_WRITE) {
        for (uint64_t k = 0, run; k < n; k += run) { /* runs of one tag */
            for (run = 1; k + run < n && tags[k + run] == tags[k]; run++) {
            }
            check_rw_write_done(c, first + k, run, tags[k], ret == 0, fua);
        }
    } else if (req->op == NODE_OP_WRITE_ZEROES) {
        check_rw_write_done(c, first, n, CONTENT_TAG_ZERO, ret == 0, fua);
    } else if (req->op == NODE_OP_FLUSH) {
        check_rw_flush_done(c, req->drv_u64[0], ret == 0);
    } else if (req->op == NODE_OP_READ && ret == 0) {
        bool had_failed = c->failed;
        if (!check_rw_read_tags(c, tags, buf, first, n, 0, 0, w->q.now_ns)) {
            if (!had_failed) { /* its first violation: which guest read it was for */
                const struct guest_op *g = guest_op_over(w, req->offset, req->len);
                c->first.op_index = g ? g->index : 0;
                c->first.line = g ? g->rec->line : 0;
            }
            struct violation *v = &qs(w)->replica_first;
            if (!qs(w)->replica_failed) {
                qs(w)->replica_failed = true;
                *v = c->first;
                snprintf(v->property, sizeof(v->property), "replica");
                snprintf(v->msg, sizeof(v->msg), "children.%u (disk c%u), which the vote may "
                         "hide: %.250s", child, child, c->first.msg);
            }
            world__verdict_fail(w, v); /* a child's request, not a guest's: report it now */
        }
    }
}

static void tap_seen(void *opaque, unsigned child, const struct req *req, int ret,
                     const uint8_t *buf)
{
    struct stack *s = opaque;
    struct world *w = s->w;
    if (s->dead) {
        return; /* a crashed host's stack draining */
    }
    const uint64_t *tags = NULL;
    uint64_t hash = 0; /* what the quorum checker compares: content_hash */
    bool known;
    if (req->op == NODE_OP_WRITE || (req->op == NODE_OP_READ && ret == 0)) {
        tags = child_tags(w, req, buf, &known);
        hash = content_hash(tags, known, buf, req->len / CONTENT_SECTOR);
    }
    check_quorum_child(&qs(w)->cq, child, req->op, req->offset, req->len, ret, hash);
    replica_seen(w, child, req, ret, tags, buf);
    if ((req->op == NODE_OP_WRITE || req->op == NODE_OP_WRITE_ZEROES) && ret == 0 &&
        guest_read_over(w, req->offset, req->len)) {
        repair_seen(w, child, req->offset, req->len);
    } else if (req->op == NODE_OP_WRITE || req->op == NODE_OP_WRITE_ZEROES) {
        stale_mark(w, child, req->offset, req->len, ret < 0);
    } else if (req->op == NODE_OP_READ) {
        sectors_mark(&qs(w)->mute[child], req->offset, req->len, ret < 0);
    }
    if (ret < 0) {
        qs(w)->child_errors[child]++;
        if (child_remote(w, child) && ret != BS_ECRASHED) {
            nbd_judge(w, child, req, ret);
        }
    }
}

static void quorum_seen(void *opaque, const struct quorum_event *ev)
{
    struct stack *s = opaque;
    if (!s->dead) {
        check_quorum_event(&qs(s->w)->cq, ev);
        s->w->r->quorum_events[ev->kind]++;
    }
}

/* ---- the topology's checkers (checker.h); self: the world ---- */

/* "quorum": every guest request judged against the children's answers. */
static void cq_io_done(void *self, const struct checker_io *io)
{
    struct world *w = self;
    if (io->guest) {
        uint64_t len = io->op == NODE_OP_FLUSH ? 0 : io->rec->len;
        (void)check_quorum_done(&qs(w)->cq, io->op, io->rec->offset, len, io->ret,
                                io->read_hash, io->rec->line, io->index, io->now_ns);
    }
}

static const struct violation *cq_violation(const void *self)
{
    const struct world *w = self;
    return qs(w)->cq.failed ? &qs(w)->cq.first : NULL;
}

static void cq_check(const void *self)
{
    check_quorum_check(&qs(self)->cq);
}

static json_t *cq_json(const void *self)
{
    return check_quorum_json(&qs(self)->cq);
}

static void cq_fini(void *self)
{
    check_quorum_fini(&qs(self)->cq);
}

static const struct checker_ops quorum_checker = {
    .name = "quorum",
    .io_done = cq_io_done,
    .violation = cq_violation,
    .check = cq_check,
    .json = cq_json,
    .fini = cq_fini,
};

/* "replicas": each child judged as a disk of its own, fed by the requests
 * the quorum sends it (replica_seen). */
static void replicas_crash(void *self, unsigned host, bool guest, int mode)
{
    struct world *w = self;
    (void)guest;
    (void)mode;
    for (unsigned i = 0; i < w->n_disks; i++) {
        if (w->hosts[host].disk[i]) { /* that child's disk lost its cache */
            check_rw_crash(&qs(w)->replica[i]);
        }
    }
}

static const struct violation *replicas_violation(const void *self)
{
    const struct quorum_state *q = qs(self);
    return q->replica_failed ? &q->replica_first : NULL;
}

static void replicas_check(const void *self)
{
    const struct quorum_state *q = qs(self);
    for (unsigned i = 0; i < q->cfg.children; i++) {
        check_rw_check(&q->replica[i]);
    }
    ASSERT(!q->replica_failed || strcmp(q->replica_first.property, "replica") == 0);
}

static json_t *replicas_json(const void *self)
{
    const struct quorum_state *q = qs(self);
    json_t *replicas = json_array();
    for (unsigned i = 0; i < q->cfg.children; i++) {
        json_t *one = check_rw_json(&q->replica[i]);
        json_object_set_new(one, "child", json_integer(i));
        json_array_append_new(replicas, one);
    }
    return replicas;
}

static void replicas_fini(void *self)
{
    for (unsigned i = 0; i < WORLD_DISKS_MAX; i++) {
        check_rw_fini(&qs(self)->replica[i]);
    }
}

static const struct checker_ops replicas_checker = {
    .name = "replicas",
    .crash = replicas_crash,
    .violation = replicas_violation,
    .check = replicas_check,
    .json = replicas_json,
    .fini = replicas_fini,
};

/* Is child @i touched at guest @sector: an injected fault left its mark on
 * that very sector of its disk, the child missed a write there (a failed
 * request, or its host lost power with the write cached), or it failed its
 * last read there (so it did not vote for the truth)? */
static bool child_touched(const struct world *w, unsigned i, uint64_t sector)
{
    return disk_taint_get(w->disks[i], sector) != DISK_TAINT_NONE ||
           u64map_get(&qs(w)->stale[i], sector) != NULL ||
           u64map_get(&qs(w)->mute[i], sector) != NULL;
}

/* Could the untouched children have split their votes over the read being
 * judged? Only when a crash left some sector of it with several possible
 * values: then each may hold another (the vote is over whole requests). */
static bool honest_split(const struct world *w, uint64_t sector)
{
    const struct trace_rec *r = w->judging;
    uint64_t first = r ? r->offset / 512 : sector;
    uint64_t end = r ? (r->offset + r->len) / 512 : sector + 1;
    for (uint64_t s = first; s < end; s++) {
        uint64_t set[2];
        if (model_disk_current(&w->check.model, s, set, 2) > 1) {
            return true;
        }
    }
    return false;
}

/* Is child @i touched anywhere in the request being judged (or at @sector
 * when none is)? Such a child's version of the request is its own. */
static bool child_touched_in_request(const struct world *w, unsigned i, uint64_t sector)
{
    const struct trace_rec *r = w->judging;
    uint64_t first = r ? r->offset / 512 : sector;
    uint64_t end = r ? (r->offset + r->len) / 512 : sector + 1;
    for (uint64_t s = first; s < end; s++) {
        if (child_touched(w, i, s)) {
            return true;
        }
    }
    return false;
}

/* Exact attribution: a wrong value at @sector is explained only when the
 * children touched at that very sector could have won the vote: a winning
 * version is held by identical children, so a wrong one at @sector comes
 * from touched children only; there must be at least vote-threshold of
 * them, and no fewer than the honest group (the children touched nowhere in
 * the request, who hold identical truths, unless a crash let them differ:
 * honest_split, and then one touched child can win a tie). A fifo read
 * believes the first child that answers: one touched child can explain it. */
static bool quorum_explained(const struct world *w, uint64_t sector)
{
    unsigned touched = 0;
    unsigned honest = 0;
    for (unsigned i = 0; i < w->n_disks; i++) {
        touched += child_touched(w, i, sector);
        honest += !child_touched_in_request(w, i, sector);
    }
    if (qs(w)->cfg.fifo) {
        return touched > 0;
    }
    honest = honest_split(w, sector) ? 1 : honest;
    return touched > 0 && touched >= qs(w)->cfg.threshold && touched >= honest;
}

/* ---- building and tearing down ---- */

static int quorum_host_open(struct world *w, unsigned h, struct err *e)
{
    unsigned i = (unsigned)w->hosts[h].child;
    ASSERT(w->hosts[h].child >= 0 && !qs(w)->srv[i]);
    return disk_server_open(w, qs(w)->net, w->hosts[h].name, "nbd", i, "child", e,
                            &qs(w)->srv[i]);
}

/* The host goes down: its server, then whatever its disk still caches may
 * be lost with the power: the guest was told those writes succeeded. (A
 * clean shutdown loses nothing, but marking it costs no exactness that
 * matters.) */
static void quorum_host_kill(struct world *w, unsigned h)
{
    unsigned i = (unsigned)w->hosts[h].child;
    ASSERT(qs(w)->srv[i] != NULL);
    disk_server_kill(qs(w)->srv[i]);
    qs(w)->srv[i] = NULL;
    const struct disk *d = w->disks[i];
    for (uint64_t k = 0; k < d->log_n; k++) {
        const struct disk_log_entry *e = &d->log[(d->log_head + k) % d->log_cap];
        stale_mark(w, i, e->offset, e->len, true);
    }
}

static int child_open(struct world *w, struct stack *s, unsigned i, struct node **out,
                      struct err *e)
{
    char name[NODE_NAME_MAX];
    struct node *leaf;
    if (child_remote(w, i)) {
        char to[NET_NAME_MAX];
        snprintf(to, sizeof(to), "s%u", i);
        s->dial[i] = mem_alloc(sizeof(*s->dial[i]));
        stack_dialer_init(s->dial[i], s, qs(w)->net, QW_PRIMARY, to, "nbd");
        struct env_dialer dialer = stack_dialer(s->dial[i]);
        struct drv_nbd_opts no = { .dialer = dialer, .export_name = "child", .size = w->size,
                                   .reconnect_delay_ns = QW_RECONNECT_NS };
        snprintf(name, sizeof(name), "c%u-nbd", i);
        TRY(node_new(&s->g, &drv_nbd, name, &no, e, &leaf));
    } else {
        struct drv_file_opts fo = { disk_storage(s->h[i]) };
        snprintf(name, sizeof(name), "c%u-file", i);
        TRY(node_new(&s->g, &drv_file, name, &fo, e, &leaf));
    }
    struct tap_opts to = { leaf, i, tap_seen, s, tap_submit_seen };
    snprintf(name, sizeof(name), "c%u", i);
    return node_new(&s->g, &drv_tap, name, &to, e, out);
}

static int quorum_guest_open(struct world *w, struct stack *s, struct err *e)
{
    struct drv_quorum_opts qo = {
        .n_children = qs(w)->cfg.children, .threshold = qs(w)->cfg.threshold,
        .read_pattern = qs(w)->cfg.fifo ? QUORUM_READ_FIFO : QUORUM_READ_QUORUM,
        .rewrite_corrupted = qs(w)->cfg.rewrite, .on_event = quorum_seen, .opaque = s,
    };
    for (unsigned i = 0; i < qs(w)->cfg.children; i++) {
        TRY(child_open(w, s, i, &qo.children[i], e));
        qo.ignore_errors[i] = (qs(w)->cfg.ignore_mask >> i) & 1;
    }
    return node_new(&s->g, &drv_quorum, "guest", &qo, e, &s->root);
}

/* The guest host's stack dies: the primary's connections reset. */
static void quorum_guest_kill(struct world *w, struct stack *s)
{
    (void)s;
    check_quorum_reset(&qs(w)->cq);
    if (qs(w)->net) {
        net_host_reset(qs(w)->net, QW_PRIMARY);
    }
}

static void quorum_guest_free(struct world *w, struct stack *s)
{
    (void)w;
    for (unsigned i = 0; i < WORLD_DISKS_MAX; i++) {
        mem_free(s->dial[i], s->dial[i] ? sizeof(*s->dial[i]) : 0);
    }
}

static void quorum_end(struct world *w)
{
    for (unsigned i = 0; i < w->n_disks; i++) {
        w->r->child_errors += qs(w)->child_errors[i];
    }
    if (qs(w)->net) {
        w->r->net_segments = net_stats(qs(w)->net)->segments;
        w->r->net_resets = net_stats(qs(w)->net)->resets;
    }
    w->r->quorum_judged = qs(w)->cq.judged;
    w->r->quorum_votes = qs(w)->cq.votes;
    w->r->quorum_repairs = qs(w)->cq.repairs;
}

static void quorum_fini(struct world *w)
{
    for (unsigned i = 0; i < WORLD_DISKS_MAX; i++) {
        ASSERT(qs(w)->srv[i] == NULL); /* every server host was taken down */
    }
    if (qs(w)->net) {
        net_free(qs(w)->net);
        qs(w)->net = NULL;
    }
    for (unsigned i = 0; i < WORLD_DISKS_MAX; i++) { /* its checkers were freed already */
        u64map_fini(&qs(w)->stale[i]);
        u64map_fini(&qs(w)->mute[i]);
    }
    mem_free(qs(w)->tags, qs(w)->cap_tags * sizeof(*qs(w)->tags));
    mem_free(w->tst, sizeof(struct quorum_state));
    w->tst = NULL;
}

static uint64_t quorum_faults(const struct world *w, uint64_t counts[FAULT__COUNT])
{
    return qs(w)->net ? fault_counts_add(counts, net_stats(qs(w)->net)->faults) : 0;
}

static int quorum_guest_disk(const struct world *w)
{
    (void)w;
    return -1; /* each child starts alike: no single disk is the guest's */
}

static bool quorum_conflict(const struct trace_rec *rec, const struct trace_rec *o)
{
    /* The quorum checker tells requests apart only when overlapping reads
     * and flushes wait too (check_quorum.h). */
    return rec->kind == TRACE_FLUSH || o->kind == TRACE_FLUSH ||
           ranges_overlap(rec->offset, rec->len, o->offset, o->len);
}

const struct topo_ops topo_quorum = {
    .name = "quorum",
    .setup = quorum_setup,
    .guest_disk = quorum_guest_disk,
    .start = quorum_start,
    .guest_open = quorum_guest_open,
    .guest_kill = quorum_guest_kill,
    .guest_free = quorum_guest_free,
    .host_open = quorum_host_open,
    .host_kill = quorum_host_kill,
    .conflict = quorum_conflict,
    .explained = quorum_explained,
    .faults = quorum_faults,
    .end = quorum_end,
    .fini = quorum_fini,
    .replicas = true,
};
