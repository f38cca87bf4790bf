/*
 * colo: the COLO block replication topology (spec §1; the record in
 *   trace.h; the interface in topo.h).
 *
 * Hosts and graphs (spec §1.1): host `primary` runs the guest over a quorum
 *   (vote-threshold=1, fifo) whose children.0 is the local disk
 *   primary-disk (through a tap that sees its failures) and children.1,
 *   attached once the secondary is ready, a replication node (primary)
 *   over an NBD client dialing host `secondary`. Host `secondary` serves
 *   secondary-disk over NBD (writable, through a redirect that follows the
 *   backup's copy-before-write filter), stacks hidden-disk (an overlay
 *   backed by secondary-disk) and active-disk (an overlay backed by the
 *   hidden one), and runs its own guest over a quorum of one child, the
 *   replication node (secondary) above the active disk.
 * Start: before the first record, replication starts on the secondary,
 *   the NBD child is attached, then the primary starts (COLO's order).
 * The pair: while it lasts (started in sync, neither host went down, no
 *   failover and no primary-alone) a checkpoint must leave the secondary
 *   disk equal to the primary disk (I2, I5). After a host went down the
 *   pair is broken for good: blocksim does not model COLO's resync.
 * Checker "colo": the secondary guest's reads against C + S (I1); at every
 *   checkpoint and failover the hidden disk against C (I3); after a
 *   checkpoint the disks against one another (I2, I5) and C taken anew;
 *   after a failover the secondary disk against C + S (I4); stage
 *   transitions are asserted by the driver (I6).
 * Fault attribution: a difference at a sector is excused only by a fault
 *   that touched that sector of primary-disk or secondary-disk (a taint,
 *   or a failed local write the quorum hid); faults on hidden-disk or
 *   active-disk excuse nothing but stop the view's and the hidden disk's
 *   judging (their data sit in overlay clusters; the report says so).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../../ref/drv_file.h"
#include "../../ref/drv_nbd.h"
#include "../../ref/drv_overlay.h"
#include "../../ref/drv_quorum.h"
#include "../../ref/nbd_server.h"
#include "../../ref/replication.h"
#include "../base/content.h"
#include "../check/check_colo.h"
#include "../world/world_int.h"
#include "dial.h"
#include "tap.h"
#include "topo.h"

#define CO_RECONNECT_NS (15ull * 1000000000ull)
#define CO_SECONDARY 1u /* the secondary's host index */
#define CO_EXPORT "colo-disk"
#define CO_CHUNK (1u << 20)
#define CO_HIDDEN_SCAN (16u << 20)

enum { D_PRIMARY, D_SECONDARY, D_HIDDEN, D_ACTIVE, D__COUNT };

static const char *const disk_names[D__COUNT] = { "primary-disk", "secondary-disk",
                                                  "hidden-disk", "active-disk" };

/* The secondary host's stack. */
struct colo_sec {
    struct world *w;
    struct graph g;
    struct disk_handle *h[D__COUNT];
    struct node *disk, *hidden, *active, *repl, *root;
    struct node *export_front; /* where the NBD server's writes enter */
    struct nbd_server *nbd;    /* NULL once stopped */
    bool listening;            /* the NBD server takes connections */
    struct job_list jobs;
};

struct colo_state {
    struct trace_cfg cfg;
    struct net *net;
    bool net_transient;       /* every network rule heals within half the delay */
    struct colo_sec *sec;     /* NULL while the secondary is down */
    struct node *prepl;       /* the primary's replication node, or NULL */
    bool attached;            /* it is the quorum's children.1 */
    struct stack_dialer *pdial; /* its NBD client's dialer */
    struct check_colo ck;
    struct u64map stale;      /* primary-disk sectors a failed local write missed */
    struct u64map carried[2]; /* sectors a fault touched on primary-disk and on
                               * secondary-disk (never cleared: copies of the
                               * data live on in the hidden disk, in C) */
    bool pair;                /* the secondary replicates the primary, in sync */
    bool lost;                /* the secondary went down while the pair lasted */
    bool full_scan;           /* the next look at the disks reads them whole */
    bool promoted;            /* failed over: the secondary's guest is judged as any
                               * guest on its disk (pc), across crashes too */
    struct check_rw pc;
    uint64_t lost_writes;     /* primary writes issued since and acknowledged */
    bool failed_over;
    uint64_t checkpoints, checkpoints_refused, failovers, view_unjudged_faults;
    json_t *history;          /* replication operations and their results */
    uint8_t *scratch[2];      /* the checkers' read buffers, scratch_len each */
    uint64_t scratch_len;
};

static struct colo_state *cs(const struct world *w)
{
    return w->tst;
}

/* Read buffer @i (0 or 1) for the disk scans: made once, not zeroed (each
 * scan fills what it looks at), as long as a scan reads at a time. */
static uint8_t *scratch(struct world *w, unsigned i)
{
    struct colo_state *c = cs(w);
    if (!c->scratch[i]) {
        c->scratch_len = min_u64(CO_CHUNK, w->size);
        c->scratch[i] = mem_alloc_raw(c->scratch_len);
    }
    return c->scratch[i];
}

static void colo_setup(struct world *w, const struct trace_cfg *c)
{
    if (!w->tst) {
        w->tst = mem_alloc(sizeof(struct colo_state));
    }
    cs(w)->cfg = *c;
    uint64_t cluster = c->has_cluster ? c->cluster : OVERLAY_CLUSTER_DEFAULT;
    w->n_disks = D__COUNT;
    w->n_hosts = 2;
    snprintf(w->hosts[CO_SECONDARY].name, sizeof(w->hosts[CO_SECONDARY].name), "secondary");
    w->hosts[CO_SECONDARY].child = -1;
    for (unsigned i = 0; i < D__COUNT; i++) {
        bool overlay = i == D_HIDDEN || i == D_ACTIVE;
        disk_config_default(&w->dcfg[i], disk_names[i],
                            overlay ? overlay_file_size(w->size, cluster) : w->size);
        w->hosts[i == D_PRIMARY ? WORLD_GUEST_HOST : CO_SECONDARY].disk[i] = true;
    }
}

/* The secondary's replication stage (DONE once promoted and restarted;
 * NONE while it is down). */
static enum repl_stage sec_stage(const struct colo_state *c)
{
    if (!c->sec) {
        return REPL_STAGE_NONE;
    }
    return c->sec->repl ? replication_stage(c->sec->repl) : REPL_STAGE_DONE;
}

static int colo_guest_disk(const struct world *w)
{
    (void)w;
    return -1; /* both sides start alike (zeroes) */
}

/* ---- fault attribution ---- */

static bool disk_touched(const struct world *w, unsigned d, uint64_t sector)
{
    return disk_taint_get(w->disks[d], sector) != DISK_TAINT_NONE ||
           u64map_get(&cs(w)->carried[d == D_SECONDARY], sector) != NULL ||
           (d == D_PRIMARY && u64map_get(&cs(w)->stale, sector) != NULL);
}

/* A fault tainted sectors of a disk: on primary-disk and secondary-disk a
 * sector is a guest sector, and what it held may since have been copied
 * (the backup's copy into hidden, C at a checkpoint): touched for good. */
static void colo_taint_seen(struct world *w, unsigned disk, uint64_t first, uint64_t n)
{
    if (disk != D_PRIMARY && disk != D_SECONDARY) {
        return; /* the overlays: overlays_faulted */
    }
    for (uint64_t s = first; s < first + n; s++) {
        *u64map_put(&cs(w)->carried[disk == D_SECONDARY], s, NULL) = 1;
    }
}

static bool colo_explained(const struct world *w, uint64_t sector)
{
    return disk_touched(w, D_PRIMARY, sector);
}

/* Faults fired on disk @d. */
static uint64_t disk_faults(const struct world *w, unsigned d)
{
    return fault_counts_add(NULL, w->disks[d]->stats.faults);
}

/* Could the overlays hold damage that a guest sector cannot name? */
static bool overlays_faulted(const struct world *w)
{
    return disk_faults(w, D_HIDDEN) + disk_faults(w, D_ACTIVE) > 0;
}

static bool sec_explained(void *opaque, uint64_t sector)
{
    return disk_touched(opaque, D_SECONDARY, sector);
}

static bool pair_explained(void *opaque, uint64_t sector)
{
    return disk_touched(opaque, D_SECONDARY, sector) || disk_touched(opaque, D_PRIMARY, sector);
}

/* ---- the primary ---- */

static void local_seen(void *opaque, unsigned id, const struct req *req, int ret,
                       const uint8_t *buf)
{
    struct stack *s = opaque;
    (void)id;
    (void)buf;
    if (s->dead || req->op == NODE_OP_READ || req->op == NODE_OP_FLUSH) {
        return;
    }
    struct u64map *m = &cs(s->w)->stale;
    for (uint64_t sec = req->offset / 512; sec < (req->offset + req->len) / 512; sec++) {
        if (ret < 0) {
            *u64map_put(m, sec, NULL) = 1;
        } else if (m->n) {
            u64map_del(m, sec);
        }
    }
}

static int colo_guest_open(struct world *w, struct stack *s, struct err *e)
{
    struct drv_file_opts fo = { disk_storage(s->h[D_PRIMARY]) };
    struct node *file;
    struct node *tap;
    TRY(node_new(&s->g, &drv_file, "primary-disk", &fo, e, &file));
    struct tap_opts to = { file, 0, local_seen, s, NULL };
    TRY(node_new(&s->g, &drv_tap, "children.0", &to, e, &tap));
    struct drv_quorum_opts qo = { .n_children = 1, .threshold = 1,
                                  .read_pattern = QUORUM_READ_FIFO };
    qo.children[0] = tap;
    cs(w)->prepl = NULL;
    return node_new(&s->g, &drv_quorum, "colo-quorum", &qo, e, &s->root);
}

/* x-blockdev-change: the NBD client and the replication node above it
 * become the quorum's children.1. */
static int primary_attach(struct world *w, struct err *e)
{
    struct colo_state *c = cs(w);
    struct stack *s = w->live;
    c->pdial = mem_alloc(sizeof(*c->pdial));
    s->dial[0] = c->pdial;
    stack_dialer_init(c->pdial, s, c->net, "primary", "secondary", "nbd");
    struct drv_nbd_opts no = { .dialer = stack_dialer(c->pdial), .export_name = CO_EXPORT,
                               .size = w->size, .reconnect_delay_ns = CO_RECONNECT_NS };
    struct node *nbd;
    TRY(node_new(&s->g, &drv_nbd, "colo-nbd", &no, e, &nbd));
    struct drv_replication_opts ro = { .mode = REPL_MODE_PRIMARY,
                                       .variant = (enum repl_variant)c->cfg.variant,
                                       .file = nbd };
    TRY(node_new(&s->g, &drv_replication, "colo-repl-primary", &ro, e, &c->prepl));
    TRY(quorum_child_add(s->root, c->prepl, false, e));
    c->attached = true;
    return 0;
}

static void colo_guest_kill(struct world *w, struct stack *s)
{
    (void)s;
    cs(w)->prepl = NULL;
    cs(w)->attached = false;
    cs(w)->pair = false;
    net_host_reset(cs(w)->net, "primary");
}

static void colo_guest_free(struct world *w, struct stack *s)
{
    (void)w;
    mem_free(s->dial[0], s->dial[0] ? sizeof(*s->dial[0]) : 0);
    s->dial[0] = NULL;
}

/* ---- the secondary ---- */

static void sec_accept(void *opaque, struct env_transport t)
{
    struct colo_sec *sec = opaque;
    if (sec->nbd) {
        nbd_server_attach(sec->nbd, t);
    }
}

static void sec_job_event(void *opaque, const struct job_event *ev)
{
    struct colo_sec *sec = opaque;
    if (sec->repl) {
        replication_job_event(sec->repl, ev);
    }
    world__observe(sec->w, TRACE_JOB, ev->kind, (int32_t)ev->status, ev->offset, ev->len);
}

/* I3 as it happens: every copy the backup writes into the hidden disk
 * carries C, the contents at the last checkpoint. */
static void copy_seen(void *opaque, unsigned id, const struct req *req, int ret,
                      const uint8_t *buf)
{
    struct world *w = opaque;
    struct colo_state *c = cs(w);
    (void)id;
    if (req->op != NODE_OP_WRITE || ret < 0 || !c->ck.synced || overlays_faulted(w) ||
        c->ck.failed) {
        return;
    }
    c->ck.hidden_checked += req->len / 512;
    (void)check_colo_compare(&c->ck, "colo-hidden", "a copy into the hidden disk", buf,
                             req->offset / 512, req->len / 512, false, sec_explained, w,
                             w->q.now_ns);
}

static int sec_nodes(struct world *w, struct colo_sec *sec, struct err *e)
{
    struct node *file[D__COUNT];
    for (unsigned i = D_SECONDARY; i < D__COUNT; i++) {
        struct drv_file_opts fo = { disk_storage(sec->h[i]) };
        TRY(node_new(&sec->g, &drv_file, disk_names[i], &fo, e, &file[i]));
    }
    uint64_t cluster = cs(w)->cfg.has_cluster ? cs(w)->cfg.cluster : 0;
    sec->disk = file[D_SECONDARY];
    struct drv_overlay_opts ho = { file[D_HIDDEN], sec->disk, w->size, cluster };
    TRY(node_new(&sec->g, &drv_overlay, "hidden", &ho, e, &sec->hidden));
    struct tap_opts to = { sec->hidden, 0, copy_seen, w, NULL };
    struct node *copies;
    TRY(node_new(&sec->g, &drv_tap, "hidden-copies", &to, e, &copies));
    struct drv_overlay_opts ao = { file[D_ACTIVE], sec->hidden, w->size, cluster };
    TRY(node_new(&sec->g, &drv_overlay, "active", &ao, e, &sec->active));
    sec->export_front = sec->disk;
    struct redirect_opts xo = { &sec->export_front };
    struct node *front;
    TRY(node_new(&sec->g, &drv_redirect, "colo-export", &xo, e, &front));
    struct nbd_server_opts so = { .export = front, .name = CO_EXPORT };
    sec->nbd = nbd_server_new(&so);
    job_list_init(&sec->jobs, world__timer(w), sec_job_event, sec);
    sec->jobs.mutants = w->o.node_mutants;
    struct drv_replication_opts ro = {
        .mode = REPL_MODE_SECONDARY, .variant = (enum repl_variant)cs(w)->cfg.variant,
        .file = sec->active, .hidden = sec->hidden, .backup_target = copies,
        .secondary = sec->disk,
        .export_front = &sec->export_front, .jobs = &sec->jobs,
        .backup_cluster = cs(w)->cfg.backup_cluster,
    };
    TRY(node_new(&sec->g, &drv_replication, "colo-repl-secondary", &ro, e, &sec->repl));
    struct drv_quorum_opts qo = { .n_children = 1, .threshold = 1,
                                  .read_pattern = QUORUM_READ_FIFO };
    qo.children[0] = sec->repl;
    return node_new(&sec->g, &drv_quorum, "colo-quorum-secondary", &qo, e, &sec->root);
}

/* After a failover the secondary is a primary of its own: a restart opens
 * its guest on the secondary disk alone (no replication, no NBD). */
static int promoted_nodes(struct world *w, struct colo_sec *sec, struct err *e)
{
    struct drv_file_opts fo = { disk_storage(sec->h[D_SECONDARY]) };
    job_list_init(&sec->jobs, world__timer(w), sec_job_event, sec);
    TRY(node_new(&sec->g, &drv_file, disk_names[D_SECONDARY], &fo, e, &sec->disk));
    struct drv_quorum_opts qo = { .n_children = 1, .threshold = 1,
                                  .read_pattern = QUORUM_READ_FIFO };
    qo.children[0] = sec->disk;
    return node_new(&sec->g, &drv_quorum, "colo-quorum-secondary", &qo, e, &sec->root);
}

static void sec_free(struct colo_sec *sec)
{
    if (sec->nbd) {
        nbd_server_close(sec->nbd);
    }
    graph_fini(&sec->g);
    for (unsigned i = D_SECONDARY; i < D__COUNT; i++) {
        disk_handle_free(sec->h[i]);
    }
    mem_free(sec, sizeof(*sec));
}

static void sec_listen(struct world *w, struct colo_sec *sec)
{
    if (!sec->listening && sec->nbd) {
        net_listen(cs(w)->net, "secondary", "nbd", sec_accept, sec);
        sec->listening = true;
    }
}

static int colo_host_open(struct world *w, unsigned h, struct err *e)
{
    ASSERT(h == CO_SECONDARY && cs(w)->sec == NULL);
    struct colo_sec *sec = mem_alloc(sizeof(*sec));
    sec->w = w;
    graph_init(&sec->g, world__timer(w), w->o.node_mutants);
    for (unsigned i = D_SECONDARY; i < D__COUNT; i++) {
        sec->h[i] = disk_handle_new(w->disks[i]);
    }
    int ret = cs(w)->promoted ? promoted_nodes(w, sec, e) : sec_nodes(w, sec, e);
    if (ret < 0) {
        job_list_fini(&sec->jobs);
        sec_free(sec);
        return -EINVAL;
    }
    cs(w)->sec = sec;
    if (w->hosts[h].downs == 0) { /* a restarted one serves from its replication start */
        sec_listen(w, sec);
    }
    return 0;
}

/* Stop serving: the primary's forwarded writes fail from here on. */
static void sec_nbd_stop(struct world *w, struct colo_sec *sec)
{
    if (!sec->nbd) {
        return;
    }
    if (sec->listening) {
        net_unlisten(cs(w)->net, "secondary", "nbd");
    }
    nbd_server_close(sec->nbd);
    sec->nbd = NULL;
    net_host_reset(cs(w)->net, "secondary");
}

static void sec_idle(void *opaque)
{
    sec_free(opaque);
}

static void colo_host_kill(struct world *w, unsigned h)
{
    struct colo_sec *sec = cs(w)->sec;
    ASSERT(h == CO_SECONDARY && sec != NULL);
    cs(w)->sec = NULL;
    cs(w)->lost |= cs(w)->pair && cs(w)->prepl != NULL;
    cs(w)->pair = false;
    cs(w)->ck.synced = false; /* its disks resolve their caches: the view is unknown */
    cs(w)->full_scan = true;
    sec_nbd_stop(w, sec);
    if (sec->repl) {
        replication_kill(sec->repl); /* an operation in progress ends */
    }
    job_list_fini(&sec->jobs); /* its jobs die with it */
    graph_kill(&sec->g, sec_idle, sec);
}

static unsigned colo_guest_host(const struct world *w, unsigned guest)
{
    (void)w;
    ASSERT(guest == 1);
    return CO_SECONDARY;
}

static struct node *colo_guest_front(struct world *w, unsigned guest)
{
    ASSERT(guest == 1 && cs(w)->sec != NULL);
    return cs(w)->sec->root;
}

/* ---- the checker "colo" (self: the world) ---- */

/* A primary write issued after the secondary's loss: its forward must fail
 * and be kept for get-error (cookie 1). */
static uint64_t ck_io_submit(void *self, const struct checker_io *io)
{
    struct world *w = self;
    bool fwd = cs(w)->prepl && replication_stage(cs(w)->prepl) == REPL_STAGE_RUNNING;
    return io->guest && io->rec && io->rec->guest == 0 && cs(w)->lost && fwd &&
           (io->op == NODE_OP_WRITE || io->op == NODE_OP_WRITE_ZEROES);
}

static void ck_io_done(void *self, const struct checker_io *io)
{
    struct world *w = self;
    struct check_colo *ck = &cs(w)->ck;
    if (io->cookie && io->ret == 0) {
        cs(w)->lost_writes++;
    }
    if (!io->guest || !io->rec || io->rec->guest == 0 || cs(w)->promoted) {
        return; /* promoted: the checker "promoted" judges the secondary guest */
    }
    switch (io->op) {
    case NODE_OP_WRITE:
    case NODE_OP_WRITE_ZEROES:
        check_colo_write(ck, io->sector, io->n, io->tag, io->ret == 0);
        break;
    case NODE_OP_DISCARD: /* the sectors may read as before or as zeroes */
        check_colo_write(ck, io->sector, io->n, CONTENT_TAG_ZERO, false);
        break;
    case NODE_OP_READ:
        if (io->ret == 0 && !overlays_faulted(w)) {
            bool any = false;
            for (uint64_t k = 0; k < io->n && !any; k++) {
                any = disk_touched(w, D_SECONDARY, io->sector + k);
            }
            if (!any) {
                ASSERT(io->data != NULL); /* the secondary's guest reads bytes */
                (void)check_colo_read(ck, io->data, io->sector, io->n, io->index,
                                      io->rec->line, io->now_ns);
            }
        } else if (io->ret == 0) {
            cs(w)->view_unjudged_faults++;
        }
        break;
    default:
        break;
    }
}

static void ck_io_lost(void *self, const struct checker_io *io)
{
    struct world *w = self;
    if (io->rec && io->rec->guest && !cs(w)->promoted && io->op != NODE_OP_READ &&
        io->op != NODE_OP_FLUSH) {
        check_colo_write(&cs(w)->ck, io->sector, io->n, io->tag, false);
    }
}

static const struct violation *ck_violation(const void *self)
{
    const struct check_colo *ck = &cs(self)->ck;
    return ck->failed ? &ck->first : NULL;
}

static void ck_check(const void *self)
{
    const struct colo_state *c = cs(self);
    check_colo_check(&c->ck);
    ASSERT(!c->pair || (c->sec != NULL && c->prepl != NULL));
    if (c->sec) {
        ASSERT(c->sec->root != NULL && (c->sec->repl != NULL || c->promoted));
    }
}

static json_t *ck_json(const void *self)
{
    const struct colo_state *c = cs(self);
    json_t *o = check_colo_json(&c->ck);
    json_object_set_new(o, "reads_unjudged_overlay_faults",
                        json_integer((json_int_t)c->view_unjudged_faults));
    return o;
}

static void ck_fini(void *self)
{
    check_colo_fini(&cs(self)->ck);
}

static const struct checker_ops colo_checker = {
    .name = "colo",
    .other_guests = true,
    .io_submit = ck_io_submit,
    .io_done = ck_io_done,
    .io_lost = ck_io_lost,
    .violation = ck_violation,
    .check = ck_check,
    .json = ck_json,
    .fini = ck_fini,
};

/* "promoted": after a failover the secondary's guest on its disk, judged as
 * the world judges its own guest (check_rw: what every sector may hold,
 * across crashes of its host), from the disk's contents at the failover,
 * all durable (the commit flushed them). */
static bool promoted_taint(void *opaque, uint64_t sector)
{
    return disk_touched(opaque, D_SECONDARY, sector);
}

static bool pc_hears(const struct world *w, const struct checker_io *io)
{
    return cs(w)->promoted && io->guest && io->rec && io->rec->guest == 1;
}

static uint64_t pc_io_submit(void *self, const struct checker_io *io)
{
    return pc_hears(self, io) ? check_rw_io_submit(&cs(self)->pc, io) : 0;
}

static void pc_io_done(void *self, const struct checker_io *io)
{
    if (pc_hears(self, io)) {
        check_rw_io_done(&cs(self)->pc, io);
    }
}

static void pc_io_lost(void *self, const struct checker_io *io)
{
    if (pc_hears(self, io)) {
        check_rw_io_lost(&cs(self)->pc, io);
    }
}

static void pc_crash(void *self, unsigned host, bool guest, int mode)
{
    (void)guest;
    (void)mode;
    if (cs(self)->promoted && host == CO_SECONDARY) {
        check_rw_crash(&cs(self)->pc);
    }
}

static const struct violation *pc_violation(const void *self)
{
    return cs(self)->pc.failed ? &cs(self)->pc.first : NULL;
}

static void pc_check(const void *self)
{
    check_rw_check(&cs(self)->pc);
}

static json_t *pc_json(const void *self)
{
    json_t *o = check_rw_json(&cs(self)->pc);
    json_object_set_new(o, "active", json_boolean(cs(self)->promoted));
    return o;
}

static void pc_fini(void *self)
{
    check_rw_fini(&cs(self)->pc);
}

static const struct checker_ops promoted_checker = {
    .name = "promoted",
    .other_guests = true,
    .io_submit = pc_io_submit,
    .io_done = pc_io_done,
    .io_lost = pc_io_lost,
    .crash = pc_crash,
    .violation = pc_violation,
    .check = pc_check,
    .json = pc_json,
    .fini = pc_fini,
};

/* The failover succeeded: from here the secondary guest's disk is judged
 * by "promoted", starting from what it holds now, all durable. */
static void promote(struct world *w)
{
    struct colo_state *c = cs(w);
    uint8_t *buf = scratch(w, 0);
    (void)model_disk_tick(&c->pc.model);
    for (uint64_t off = 0; off < w->size; off += CO_CHUNK) {
        uint64_t len = min_u64(CO_CHUNK, w->size - off);
        disk_peek(w->disks[D_SECONDARY], off, buf, len);
        for (uint64_t k = 0; k < len / 512; k++) {
            uint64_t tag = content_identify(buf + k * 512, w->seed, off / 512 + k, NULL);
            if (tag != CONTENT_TAG_ZERO) {
                model_disk_write(&c->pc.model, off / 512 + k, 1, tag, MODEL_DURABLE);
            }
        }
    }
    c->promoted = true;
}

static void colo_start(struct world *w)
{
    struct colo_state *c = cs(w);
    check_colo_init(&c->ck, w->seed, w->size / 512);
    world__check_rw_init(w, &c->pc, promoted_taint, w);
    u64map_init(&c->stale);
    disk_track(w->disks[D_PRIMARY]); /* both start zeroed: C is known */
    disk_track(w->disks[D_SECONDARY]);
    u64map_init(&c->carried[0]);
    u64map_init(&c->carried[1]);
    c->history = json_array();
    world__checker_add(w, &colo_checker, w);
    world__checker_add(w, &promoted_checker, w);
    c->net_transient = true;
    for (size_t i = 0; i < w->plan.n; i++) {
        c->net_transient &= fault_rule_transient(&w->plan.rules[i], CO_RECONNECT_NS / 2);
    }
    struct net_config nc;
    net_config_default(&nc);
    c->net = net_new(&w->q, &w->plan, w->seed, &nc);
}

/* ---- what the checkpoint and the failover leave behind ---- */

static void history_add(struct world *w, const struct trace_rec *rec, const char *op,
                        const char *host, int ret, const struct err *e)
{
    json_t *o = json_pack("{s:i, s:I, s:s, s:s}", "line", rec ? (int)rec->line : 0, "t_ns",
                          (json_int_t)w->q.now_ns, "op", op, "host", host);
    json_object_set_new(o, "result", ret < 0 ? json_string(e && e->msg[0] ? e->msg :
                                                           blocksim_strerror(ret))
                                             : json_string("ok"));
    json_array_append_new(cs(w)->history, o);
}

/* I3 afterwards: every cluster the hidden disk holds is still C (each
 * copy was checked as it was written: copy_seen). At a failover always; at
 * a checkpoint while it holds at most CO_HIDDEN_SCAN bytes (the scan costs
 * what the hidden disk holds, at every checkpoint). */
static void hidden_check(struct world *w, unsigned line, bool always)
{
    struct colo_state *c = cs(w);
    if (!c->ck.synced || overlays_faulted(w) || !c->sec) {
        return;
    }
    uint64_t cluster = c->cfg.has_cluster ? c->cfg.cluster : OVERLAY_CLUSTER_DEFAULT;
    if (!always && overlay_clusters_allocated(c->sec->hidden) * cluster > CO_HIDDEN_SCAN) {
        return;
    }
    struct node *hidden = c->sec->hidden;
    uint8_t *buf = scratch(w, 0);
    for (uint64_t off = 0; off < w->size && !c->ck.failed;) {
        uint64_t pnum = 0;
        uint64_t len = min_u64(CO_CHUNK, w->size - off);
        int bs = node_block_status(hidden, off, len, &pnum);
        pnum = pnum ? min_u64(pnum, len) : len;
        if (bs >= 0 && (bs & NODE_BS_ALLOCATED)) {
            int ret = node_pread_sync(hidden, off, buf, pnum);
            ASSERT(ret == 0); /* the overlay's own data, on a disk without faults */
            c->ck.hidden_checked += pnum / 512;
            if (!check_colo_compare(&c->ck, "colo-hidden", "the hidden disk", buf, off / 512,
                                    pnum / 512, false, sec_explained, w, w->q.now_ns)) {
                c->ck.first.line = line;
            }
        }
        off += pnum;
    }
}

/* The parts of the disks a checkpoint or failover must look at: where
 * primary-disk or secondary-disk changed since the last look (elsewhere
 * both still hold C), or everything after the view was lost. Runs of
 * changed DISK_CHUNK chunks, at most CO_CHUNK long. */
struct runs {
    uint64_t (*r)[2]; /* offset, length */
    size_t n;
};

static void runs_add(struct runs *x, size_t *cap, uint64_t off, uint64_t len)
{
    if (x->n && x->r[x->n - 1][0] + x->r[x->n - 1][1] == off &&
        x->r[x->n - 1][1] + len <= CO_CHUNK) {
        x->r[x->n - 1][1] += len;
        return;
    }
    if (x->n == *cap) {
        size_t ncap = *cap ? 2 * *cap : 64;
        x->r = mem_realloc(x->r, *cap * sizeof(*x->r), ncap * sizeof(*x->r));
        *cap = ncap;
    }
    x->r[x->n][0] = off;
    x->r[x->n][1] = len;
    x->n++;
}

static struct runs changed_runs(struct world *w, size_t *cap)
{
    struct runs x = { NULL, 0 };
    *cap = 0;
    size_t na;
    size_t nb;
    uint64_t *a = disk_changed_take(w->disks[D_PRIMARY], &na);
    uint64_t *b = disk_changed_take(w->disks[D_SECONDARY], &nb);
    bool full = cs(w)->full_scan;
    cs(w)->full_scan = false;
    for (uint64_t off = 0; full && off < w->size; off += CO_CHUNK) {
        runs_add(&x, cap, off, min_u64(CO_CHUNK, w->size - off));
    }
    for (size_t i = 0, j = 0; !full && (i < na || j < nb);) { /* merge, unique */
        uint64_t c = j == nb || (i < na && a[i] <= b[j]) ? a[i] : b[j];
        i += i < na && a[i] == c;
        j += j < nb && b[j] == c;
        runs_add(&x, cap, c * DISK_CHUNK, DISK_CHUNK);
    }
    mem_free(a, na * sizeof(*a));
    mem_free(b, nb * sizeof(*b));
    return x;
}

static void runs_free(struct runs *x, size_t cap)
{
    mem_free(x->r, cap * sizeof(*x->r));
}

/* I2 and I5 over @x: the secondary disk equals the primary disk. */
static void pair_check(struct world *w, const struct runs *x, unsigned line)
{
    uint8_t *a = scratch(w, 0);
    uint8_t *b = scratch(w, 1);
    for (size_t r = 0; r < x->n && !cs(w)->ck.failed; r++) {
        uint64_t off = x->r[r][0];
        uint64_t len = x->r[r][1];
        disk_peek(w->disks[D_PRIMARY], off, a, len);
        disk_peek(w->disks[D_SECONDARY], off, b, len);
        bool differ = memcmp(a, b, len) != 0;
        for (uint64_t k = 0; k < len / 512 && differ; k++) {
            uint64_t sec = off / 512 + k;
            if (memcmp(a + k * 512, b + k * 512, 512) == 0 || pair_explained(w, sec)) {
                continue;
            }
            uint64_t pt = content_identify(a + k * 512, w->seed, sec, NULL);
            uint64_t st = content_identify(b + k * 512, w->seed, sec, NULL);
            char pn[48];
            char sn[48];
            char msg[400];
            check_tag_name(pt, pn, sizeof(pn));
            check_tag_name(st, sn, sizeof(sn));
            snprintf(msg, sizeof(msg), "after the checkpoint at line %u the secondary disk "
                     "differs from the primary disk at sector %" PRIu64 ": primary holds %s, "
                     "secondary %s, and get-error reported no error (I2, I5: an acknowledged "
                     "primary write must reach the secondary or be reported)", line, sec, pn, sn);
            check_colo_fail(&cs(w)->ck, "colo-checkpoint", sec, pt, st, w->q.now_ns, msg);
            cs(w)->ck.first.line = line;
            break;
        }
    }
}

/* C becomes what the secondary disk holds over @x (elsewhere it is C
 * still); S empties. */
static void model_take(struct world *w, const struct runs *x, bool whole)
{
    struct check_colo *ck = &cs(w)->ck;
    uint8_t *buf = scratch(w, 0);
    check_colo_checkpoint_begin(ck, whole);
    for (size_t r = 0; r < x->n; r++) {
        disk_peek(w->disks[D_SECONDARY], x->r[r][0], buf, x->r[r][1]);
        check_colo_checkpoint_data(ck, buf, x->r[r][0] / 512, x->r[r][1] / 512);
    }
}

/* The secondary's view is its disk again (a checkpoint, a stop). */
static void view_reset(struct world *w, bool pair, unsigned line)
{
    size_t cap;
    bool whole = cs(w)->full_scan;
    struct runs x = changed_runs(w, &cap);
    if (pair) {
        pair_check(w, &x, line);
    }
    model_take(w, &x, whole);
    runs_free(&x, cap);
}

/* A secondary checkpoint succeeded (colo checkpoint or replication
 * checkpoint): I2's emptiness, the pair's equality, C taken anew. */
static void after_checkpoint(struct world *w, const struct trace_rec *rec)
{
    struct colo_state *c = cs(w);
    unsigned line = rec ? rec->line : 0;
    uint64_t held = overlay_clusters_allocated(c->sec->active) +
                    overlay_clusters_allocated(c->sec->hidden);
    if (held && !overlays_faulted(w)) {
        char msg[200];
        snprintf(msg, sizeof(msg), "after the checkpoint at line %u the active and hidden "
                 "disks still hold %" PRIu64 " cluster(s); a checkpoint must empty both (I2)",
                 line, held);
        check_colo_fail(&c->ck, "colo-checkpoint", 0, 0, 0, w->q.now_ns, msg);
        c->ck.first.line = line;
    }
    view_reset(w, c->pair && w->live && !c->ck.failed, line);
    c->checkpoints++;
}

/* I4 over [off, off + len): the secondary disk is C + S there. */
static bool failover_compare(struct world *w, uint8_t *buf, uint64_t off, uint64_t len)
{
    disk_peek(w->disks[D_SECONDARY], off, buf, len);
    return check_colo_compare(&cs(w)->ck, "colo-failover", "the secondary disk after failover",
                              buf, off / 512, len / 512, true, sec_explained, w, w->q.now_ns);
}

/* I4: after a successful failover the secondary disk is C + S: where it
 * changed since the last checkpoint and where S wrote (elsewhere it is C,
 * and so is the view). */
static void after_failover(struct world *w, const struct trace_rec *rec)
{
    struct colo_state *c = cs(w);
    uint8_t *buf = scratch(w, 0);
    size_t cap;
    struct runs x = changed_runs(w, &cap);
    bool stop = overlays_faulted(w); /* their damage cannot be named by sector */
    for (size_t r = 0; r < x.n && !stop; r++) {
        stop = !failover_compare(w, buf, x.r[r][0], x.r[r][1]);
    }
    uint64_t *keys = u64map_keys(&c->ck.s);
    size_t n = c->ck.s.n;
    for (size_t i = 0; i < n && !stop; i++) {
        stop = !failover_compare(w, buf, keys[i] * 512, 512);
    }
    mem_free(keys, n * sizeof(*keys));
    if (c->ck.failed) {
        c->ck.first.line = rec ? rec->line : 0;
    }
    runs_free(&x, cap);
    check_colo_failover(&c->ck);
    c->pair = false;
    c->failed_over = true;
    c->failovers++;
    promote(w);
}

/* ---- control records ---- */

/* A replication or colo record in progress: on the hosts in order
 * (secondary, then primary), one step each. */
struct colo_op {
    struct world *w;
    struct control_op *ctl;
    const struct trace_rec *rec;
    enum trace_repl_op op;
    bool failover;
    bool hosts[2];      /* still to act on: [0] secondary, [1] primary */
    bool initial;       /* the start before the first record */
    bool started[2];
    uint64_t sec_downs; /* the secondary's incarnation when it began */
};

/* Did the secondary go down since @op began? Its operation then ended
 * with its host (an injected crash inside it: crash exploration). */
static bool sec_lost_during(const struct colo_op *op)
{
    return op->w->hosts[CO_SECONDARY].downs != op->sec_downs;
}

static const struct trace_rec initial_start = { .kind = TRACE_REPLICATION,
                                                .sub = TRACE_REPL_START };

static void colo_op_end_ev(void *opaque)
{
    struct colo_op *op = opaque;
    struct world *w = op->w;
    if (op->initial && op->started[0] && op->started[1]) {
        cs(w)->pair = true; /* both started from zeroed disks: in sync */
    }
    if (world__control_live(op->ctl)) {
        world__control_end(op->ctl);
    }
    mem_free(op, sizeof(*op));
}

/* The record is done: the pump goes on from a fresh event (never inline:
 * the record may have been run by the pump itself). */
static void colo_op_end(struct colo_op *op)
{
    evq_post(&op->w->q, 0, colo_op_end_ev, op);
}

/* In a callback: false (and @op freed) when the primary went down meanwhile. */
static bool colo_op_live(struct colo_op *op)
{
    if (world__control_live(op->ctl)) {
        return true;
    }
    mem_free(op, sizeof(*op));
    return false;
}

static void repl_next(struct colo_op *op);

/* The operation on the secondary (@sec) or the primary ended. */
static void repl_step_done(struct colo_op *op, bool sec, int ret, const struct err *e)
{
    struct world *w = op->w;
    history_add(w, op->rec, trace_repl_op_name(op->op), sec ? "secondary" : "primary", ret, e);
    world__observe(w, TRACE_REPLICATION, op->op, ret, sec, 0);
    op->started[sec ? 0 : 1] |= op->op == TRACE_REPL_START && ret == 0;
    struct colo_state *c = cs(w);
    if (ret == 0 && sec && c->sec && !sec_lost_during(op)) {
        enum repl_stage st = sec_stage(c);
        if (op->op == TRACE_REPL_START) {
            sec_listen(w, c->sec);
        }
        if (op->op == TRACE_REPL_CHECKPOINT && st == REPL_STAGE_RUNNING) {
            after_checkpoint(w, op->rec);
        } else if (op->op == TRACE_REPL_STOP && op->failover && st == REPL_STAGE_DONE) {
            after_failover(w, op->rec);
        } else if (op->op == TRACE_REPL_STOP && !op->failover) {
            c->pair = false;
            view_reset(w, false, op->rec->line); /* S discarded: the view is the disk */
        }
    }
    if (!sec && op->op == TRACE_REPL_STOP) {
        c->pair = false;
    }
    repl_next(op);
}

static void repl_sec_cb(void *opaque, int ret, const struct err *e)
{
    struct colo_op *op = opaque;
    if (colo_op_live(op)) {
        repl_step_done(op, true, ret, e);
    }
}

static void repl_pri_cb(void *opaque, int ret, const struct err *e)
{
    struct colo_op *op = opaque;
    if (colo_op_live(op)) {
        repl_step_done(op, false, ret, e);
    }
}

static void run_on(struct colo_op *op, struct node *n, repl_cb *cb)
{
    switch (op->op) {
    case TRACE_REPL_START:
        replication_start(n, cb, op);
        break;
    case TRACE_REPL_CHECKPOINT:
        replication_do_checkpoint(n, cb, op);
        break;
    case TRACE_REPL_STOP:
        replication_stop(n, op->failover, cb, op);
        break;
    default: { /* get-error: synchronous */
        struct err e = { .file = NULL };
        int ret = replication_get_error(n, &e);
        cb(op, ret, &e);
    }
    }
}

/* A host without a replication node: refused as QMP would (no such node). */
static void no_node(struct colo_op *op, bool sec)
{
    struct err e = { .file = NULL };
    err_set(&e, 0, 0, "no replication node on the %s (host down or not attached)",
            sec ? "secondary" : "primary");
    repl_step_done(op, sec, -ENODEV, &e);
}

static void repl_next(struct colo_op *op)
{
    struct world *w = op->w;
    struct colo_state *c = cs(w);
    if (op->hosts[0]) {
        op->hosts[0] = false;
        if (c->sec && c->sec->repl) {
            run_on(op, c->sec->repl, repl_sec_cb);
        } else {
            no_node(op, true);
        }
        return;
    }
    if (op->hosts[1]) {
        op->hosts[1] = false;
        struct err e = { .file = NULL };
        if (!c->prepl && op->op == TRACE_REPL_START && w->live && primary_attach(w, &e) < 0) {
            repl_step_done(op, false, -EINVAL, &e);
        } else if (!c->prepl) {
            no_node(op, false);
        } else {
            run_on(op, c->prepl, repl_pri_cb);
        }
        return;
    }
    colo_op_end(op);
}

static struct colo_op *colo_op_new(struct world *w, const struct trace_rec *rec)
{
    struct colo_op *op = mem_alloc(sizeof(*op));
    op->w = w;
    op->rec = rec;
    op->ctl = world__control_new(w, rec);
    op->op = (enum trace_repl_op)rec->sub;
    op->failover = rec->failover;
    op->hosts[0] = !rec->host[0] || strcmp(rec->host, "secondary") == 0;
    op->hosts[1] = !rec->host[0] || strcmp(rec->host, "primary") == 0;
    op->sec_downs = w->hosts[CO_SECONDARY].downs;
    return op;
}


/* colo checkpoint: drained already (the world drains both guests before a
 * topology's record); the primary flushes, the HA manager asks get-error,
 * the secondary checkpoints. */
static void cp_done(void *opaque, int ret, const struct err *e)
{
    struct colo_op *op = opaque;
    if (!colo_op_live(op)) {
        return;
    }
    struct world *w = op->w;
    history_add(w, op->rec, "checkpoint", "secondary", ret, e);
    bool judged = !sec_lost_during(op); /* else it went down inside: nothing to judge */
    if (judged && ret == 0) {
        after_checkpoint(w, op->rec);
    } else if (judged && disk_faults(w, D_SECONDARY) == 0 && !overlays_faulted(w)) {
        char msg[300];
        snprintf(msg, sizeof(msg), "the secondary's checkpoint failed (%.200s) though no fault "
                 "touched its disks", e ? e->msg : "");
        world__violation_at(w, "colo-checkpoint", msg, op->rec->line);
    }
    colo_op_end(op);
}

static void cp_refused(struct colo_op *op, const char *why)
{
    struct err e = { .file = NULL };
    err_set(&e, 0, 0, "%s", why);
    cs(op->w)->checkpoints_refused++;
    history_add(op->w, op->rec, "colo-checkpoint", "primary", -EIO, &e);
    colo_op_end(op);
}

static void cp_flushed(void *opaque, int ret)
{
    struct colo_op *op = opaque;
    if (!colo_op_live(op)) {
        return;
    }
    struct world *w = op->w;
    struct colo_state *c = cs(w);
    struct err e = { .file = NULL };
    if (ret < 0) {
        cp_refused(op, "the primary's flush failed");
        return;
    }
    if (replication_get_error(c->prepl, &e) < 0) {
        /* Liveness: with every network fault healing within the reconnect
         * delay and no fault on the disks, forwarding must never fail. */
        if (c->pair && c->net_transient && disk_faults(w, D_SECONDARY) == 0 &&
            !overlays_faulted(w)) {
            char msg[400];
            snprintf(msg, sizeof(msg), "get-error on the primary reported '%.60s' though every "
                     "network fault heals within the reconnect delay (%" PRIu64 " s) and no "
                     "disk of the secondary had a fault: the checkpoint cannot succeed", e.msg,
                     (uint64_t)(CO_RECONNECT_NS / 1000000000ull));
            world__violation_at(w, "colo-liveness", msg, op->rec->line);
        }
        cp_refused(op, e.msg);
        return;
    }
    if (c->lost && c->lost_writes > 0) {
        char msg[300];
        snprintf(msg, sizeof(msg), "the secondary went down, %" PRIu64 " primary write(s) "
                 "issued since were acknowledged, yet get-error on the primary reported no "
                 "error: their forwarding failed unseen (I5)", c->lost_writes);
        world__violation_at(w, "colo-secondary-loss", msg, op->rec->line);
    }
    if (sec_stage(c) != REPL_STAGE_RUNNING) {
        cp_refused(op, "replication is not running on the secondary");
        return;
    }
    hidden_check(w, op->rec->line, false);
    replication_do_checkpoint(c->sec->repl, cp_done, op);
}

static void fo_done(void *opaque, int ret, const struct err *e)
{
    struct colo_op *op = opaque;
    if (!colo_op_live(op)) {
        return;
    }
    struct world *w = op->w;
    history_add(w, op->rec, "failover", "secondary", ret, e);
    bool judged = !sec_lost_during(op); /* else it went down inside: nothing to judge */
    if (judged && ret == 0) {
        after_failover(w, op->rec);
    } else if (judged && disk_faults(w, D_SECONDARY) == 0 && !overlays_faulted(w)) {
        char msg[300];
        snprintf(msg, sizeof(msg), "failover failed (%.200s) though no fault touched the "
                 "secondary's disks", e ? e->msg : "");
        world__violation_at(w, "colo-failover", msg, op->rec->line);
    }
    colo_op_end(op);
}

static void colo_record(struct world *w, const struct trace_rec *rec)
{
    struct colo_state *c = cs(w);
    struct colo_op *op = colo_op_new(w, rec);
    bool running = sec_stage(c) == REPL_STAGE_RUNNING;
    switch ((enum trace_colo_op)rec->sub) {
    case TRACE_COLO_CHECKPOINT:
        if (!c->prepl || replication_stage(c->prepl) != REPL_STAGE_RUNNING) {
            cp_refused(op, "replication is not running on the primary");
            return;
        }
        node_flush(w->live->root, cp_flushed, op);
        return;
    case TRACE_COLO_FAILOVER:
        if (!running) {
            struct err e = { .file = NULL };
            err_set(&e, 0, 0, "replication is not running on the secondary");
            history_add(w, rec, "failover", "secondary", -EIO, &e);
            colo_op_end(op);
            return;
        }
        sec_nbd_stop(w, c->sec); /* the primary is gone: nothing more may arrive */
        hidden_check(w, op->rec->line, true);
        replication_stop(c->sec->repl, true, fo_done, op);
        return;
    default: /* primary-alone: stop forwarding, drop children.1 */
        op->op = TRACE_REPL_STOP;
        op->hosts[0] = false;
        if (c->attached) {
            struct err e = { .file = NULL };
            int ret = quorum_child_del(w->live->root, "children.1", &e);
            ASSERT(ret == 0); /* children.0 stays: the threshold (1) holds */
            c->attached = false;
        }
        repl_next(op);
        return;
    }
}

static void colo_control(struct world *w, const struct trace_rec *rec)
{
    if (rec->kind == TRACE_COLO) {
        colo_record(w, rec);
    } else {
        repl_next(colo_op_new(w, rec));
    }
}

/* Before the first record: secondary, then primary (COLO's order). */
static void colo_ready(struct world *w)
{
    struct colo_op *op = colo_op_new(w, &initial_start);
    op->initial = true;
    repl_next(op);
}

/* ---- the end ---- */

static json_t *stage_json(const struct node *repl)
{
    if (!repl) {
        return json_null();
    }
    json_t *o = json_pack("{s:s}", "stage", repl_stage_name(replication_stage(repl)));
    json_object_set_new(o, "error", json_integer(replication_error(repl)));
    return o;
}

static void colo_end(struct world *w)
{
    struct colo_state *c = cs(w);
    w->r->net_segments = net_stats(c->net)->segments;
    w->r->net_resets = net_stats(c->net)->resets;
    if (!w->o.want_checks) {
        return; /* world_result.replication comes with the checks */
    }
    json_t *o = json_object();
    json_object_set_new(o, "variant", json_string(trace_variant_name(c->cfg.variant)));
    json_object_set_new(o, "primary", stage_json(c->prepl));
    json_object_set_new(o, "secondary", stage_json(c->sec ? c->sec->repl : NULL));
    json_object_set_new(o, "promoted", json_boolean(c->promoted));
    json_object_set_new(o, "checkpoints", json_integer((json_int_t)c->checkpoints));
    json_object_set_new(o, "checkpoints_refused",
                        json_integer((json_int_t)c->checkpoints_refused));
    json_object_set_new(o, "failovers", json_integer((json_int_t)c->failovers));
    json_object_set_new(o, "in_sync", json_boolean(c->pair));
    if (c->sec && c->sec->active) { /* what the overlays hold at the end */
        json_object_set_new(o, "active_clusters",
                            json_integer((json_int_t)overlay_clusters_allocated(c->sec->active)));
        json_object_set_new(o, "hidden_clusters",
                            json_integer((json_int_t)overlay_clusters_allocated(c->sec->hidden)));
    }
    json_object_set(o, "history", c->history);
    json_decref(w->r->replication);
    w->r->replication = o;
}

static void colo_fini(struct world *w)
{
    struct colo_state *c = cs(w);
    ASSERT(c->sec == NULL); /* the secondary was taken down */
    net_free(c->net);
    u64map_fini(&c->stale);
    u64map_fini(&c->carried[0]);
    u64map_fini(&c->carried[1]);
    json_decref(c->history);
    for (unsigned i = 0; i < 2; i++) {
        mem_free(c->scratch[i], c->scratch[i] ? c->scratch_len : 0);
    }
    mem_free(w->tst, sizeof(struct colo_state));
    w->tst = NULL;
}

/* What an overlay holds of its own: its clusters' data, zeroes elsewhere. */
static int layer_read(struct node *ovl, uint64_t off, uint8_t *buf, uint64_t len)
{
    memset(buf, 0, len);
    for (uint64_t at = off; at < off + len;) {
        uint64_t pnum = 0;
        int bs = node_block_status(ovl, at, off + len - at, &pnum);
        pnum = pnum ? min_u64(pnum, off + len - at) : off + len - at;
        if (bs < 0) {
            return bs;
        }
        if (bs & NODE_BS_DATA) {
            TRY(node_pread_sync(ovl, at, buf + (at - off), pnum));
        }
        at += pnum;
    }
    return 0;
}

/* --export secondary-guest (what the secondary guest reads), hidden-layer
 * and active-layer (what each overlay holds of its own). */
static int colo_export_read(struct world *w, const char *name, uint64_t off, uint8_t *buf,
                            uint64_t len)
{
    struct colo_sec *sec = cs(w)->sec;
    if (!sec) {
        return -EHOSTDOWN;
    }
    if (strcmp(name, "secondary-guest") == 0) {
        return world__node_read(w, sec->root, off, buf, len);
    }
    if (!sec->hidden) {
        return -ENODEV; /* promoted and restarted: no overlays */
    }
    return layer_read(strcmp(name, "hidden-layer") == 0 ? sec->hidden : sec->active, off, buf,
                      len);
}

static uint64_t colo_faults(const struct world *w, uint64_t counts[FAULT__COUNT])
{
    return fault_counts_add(counts, net_stats(cs(w)->net)->faults);
}

static bool colo_conflict(const struct trace_rec *rec, const struct trace_rec *o)
{
    (void)rec;
    (void)o;
    return false; /* the overlap rule applies per guest (world.c) */
}

const struct topo_ops topo_colo = {
    .name = "colo",
    .setup = colo_setup,
    .guest_disk = colo_guest_disk,
    .start = colo_start,
    .ready = colo_ready,
    .guest_open = colo_guest_open,
    .guest_kill = colo_guest_kill,
    .guest_free = colo_guest_free,
    .guest_host = colo_guest_host,
    .guest_front = colo_guest_front,
    .host_open = colo_host_open,
    .host_kill = colo_host_kill,
    .conflict = colo_conflict,
    .explained = colo_explained,
    .taint_seen = colo_taint_seen,
    .controls = 1u << TRACE_REPLICATION | 1u << TRACE_COLO,
    .control = colo_control,
    .faults = colo_faults,
    .export_names = "secondary-guest,hidden-layer,active-layer",
    .export_read = colo_export_read,
    .end = colo_end,
    .fini = colo_fini,
};
