/*
 * world_job: block jobs in the world: extra disks (a job's target), the
 *   `job` records, the jobs' events in the report, and the job checker.
 *
 * Jobs run on the guest's host and die with it. Like the other operator
 * actions, a job record waits for the guest's requests before it (QEMU
 * creates a job inside a drained section, so the backup checker's snapshot
 * of the source is exact); guest requests after it run while the job
 * runs. `job wait` holds the records after it until the job gets there (or
 * can no longer get there: concluded or gone).
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "../../ref/backup.h"
#include "../../ref/drv_file.h"
#include "../../ref/drv_overlay.h"
#include "../../ref/drv_nbd.h"
#include "../../ref/mirror.h"
#include "../../ref/nbd_server.h"
#include "../base/content.h"
#include "../topo/dial.h"
#include "../topo/serve.h"
#include "world_int.h"

#define WJ_EVENTS_MAX 256 /* a job's events kept for the report */

/* ---- extra disks ---- */

/* An extra disk on host @r's host= of its own: a new host that serves it
 * over NBD to the guest's host (one disk a host; no fleecing overlay, which
 * needs the guest's disk under it). */
static int extra_host(struct world *w, const struct trace_rec *r, int *out, struct err *e)
{
    const struct trace_cfg *c = r->cfg;
    for (unsigned h = 1; h < w->n_hosts; h++) {
        if (strcmp(w->hosts[h].name, c->host) == 0) {
            return err_set(e, r->line, 2, "disk %s: host %s already holds %s; an extra disk "
                           "on a host of its own needs a new host name", c->name, c->host,
                           w->hosts[h].serves >= 0 ? "an extra disk" : "a topology's disk");
        }
    }
    if (c->backing[0]) {
        return err_set(e, r->line, 2, "disk %s: backing=guest sits on the guest's host (%s), "
                       "not on host %s", c->name, w->hosts[WORLD_GUEST_HOST].name, c->host);
    }
    if (w->n_hosts == WORLD_HOSTS_MAX) {
        return err_set(e, r->line, 2, "disk %s: at most %u hosts", c->name, WORLD_HOSTS_MAX);
    }
    *out = (int)w->n_hosts++;
    snprintf(w->hosts[*out].name, sizeof(w->hosts[*out].name), "%s", c->host);
    return 0;
}

int world__extra_disk_rec(struct world *w, const struct trace_rec *r, struct err *e)
{
    const struct trace_cfg *c = r->cfg;
    if (!w->topo_ops->jobs) {
        return err_set(e, r->line, 2, "no disk '%s' in the %s topology (extra disks, for "
                       "jobs, need the plain or overlay topology)", c->name,
                       w->topo_ops->name);
    }
    if (c->backing[0] && (strcmp(c->backing, "guest") != 0 || !c->has_size || c->image)) {
        return err_set(e, r->line, 2, "disk %s: backing= takes 'guest' (an overlay over the "
                       "guest's disk, for image fleecing), with size= and without image=",
                       c->name);
    }
    if (!c->has_size && !c->image) {
        return err_set(e, r->line, 2, "disk %s is not in the %s topology: give size= (or "
                       "image=) to add it as an extra disk", c->name, w->topo_ops->name);
    }
    int h = WORLD_GUEST_HOST;
    if (c->host[0] && strcmp(c->host, w->hosts[WORLD_GUEST_HOST].name) != 0) {
        TRY(extra_host(w, r, &h, e));
    }
    if (w->n_disks == WORLD_DISKS_MAX) {
        return err_set(e, r->line, 2, "disk %s: at most %u disks", c->name, WORLD_DISKS_MAX);
    }
    uint64_t size = c->size;
    if (!c->has_size) { /* from its image: world__image_disk_rec reads it */
        TRY(world__image_size(w, r, &size, e));
    }
    unsigned i = w->n_disks++;
    if (c->backing[0]) { /* the disk holds the overlay: header, map, data */
        w->fleece_size[i] = size;
        size = overlay_file_size(size, OVERLAY_CLUSTER_DEFAULT);
    }
    disk_config_default(&w->dcfg[i], c->name, size);
    w->hosts[h].disk[i] = true;
    if (h != WORLD_GUEST_HOST) {
        w->hosts[h].serves = (int)i;
    }
    return 0;
}

/* The file node on disk @i in stack @s (an extra disk's, or the
 * topology's own "NAME-file"). */
static struct node *disk_node(const struct world *w, struct stack *s, unsigned i)
{
    if (s->extra[i]) {
        return s->extra[i];
    }
    char name[NODE_NAME_MAX];
    snprintf(name, sizeof(name), "%s-file", w->dcfg[i].name);
    struct node *n = graph_node_find(&s->g, name);
    ASSERT(n != NULL);
    return n;
}

int world__export_rec_check(const struct world *w, const struct trace_rec *r, bool up,
                            struct err *e)
{
    int d = world__disk_index(w, r->export);
    if (d < 0 || !w->fleece_size[d]) {
        return err_set(e, r->line, 4, "export=%s: not a fleecing target (an extra disk with "
                       "backing=guest)", r->export);
    }
    if (r->guest) {
        return err_set(e, r->line, 4, "export= is read by a backup tool, not a guest");
    }
    if (!up) {
        return err_set(e, r->line, 1, "'read' of an export while the host is down (add "
                       "'restart' first)");
    }
    if (r->offset + r->len > w->fleece_size[d]) {
        return err_set(e, r->line, 2, "read at %" PRIu64 "+%" PRIu64 " goes beyond the "
                       "%" PRIu64 "-byte export %s", r->offset, r->len, w->fleece_size[d],
                       r->export);
    }
    return 0;
}

/* The host serving extra disk @i. */
static unsigned disk_host(const struct world *w, unsigned i)
{
    for (unsigned h = 1; h < w->n_hosts; h++) {
        if (w->hosts[h].serves == (int)i) {
            return h;
        }
    }
    UNREACHABLE();
}

/* Extra disk @i on a host of its own: an NBD client to it (the reconnect
 * delay as the quorum's children have it). */
static int remote_disk(struct world *w, struct stack *s, unsigned i, struct err *e)
{
    s->dial[i] = mem_alloc(sizeof(*s->dial[i]));
    stack_dialer_init(s->dial[i], s, w->xnet, w->hosts[WORLD_GUEST_HOST].name,
                      w->hosts[disk_host(w, i)].name, "nbd");
    struct drv_nbd_opts no = { .dialer = stack_dialer(s->dial[i]),
                               .export_name = w->dcfg[i].name, .size = w->dcfg[i].size,
                               .reconnect_delay_ns = WORLD_RECONNECT_NS };
    return node_new(&s->g, &drv_nbd, w->dcfg[i].name, &no, e, &s->extra[i]);
}

int world__host_open(struct world *w, unsigned h, struct err *e)
{
    int i = w->hosts[h].serves;
    if (i < 0) {
        return w->topo_ops->host_open(w, h, e);
    }
    return disk_server_open(w, w->xnet, w->hosts[h].name, "nbd", (unsigned)i,
                            w->dcfg[i].name, e, &w->xsrv[i]);
}

void world__host_kill(struct world *w, unsigned h)
{
    int i = w->hosts[h].serves;
    if (i < 0) {
        w->topo_ops->host_kill(w, h);
        return;
    }
    disk_server_kill(w->xsrv[i]);
    w->xsrv[i] = NULL;
}

void world__xnet_start(struct world *w)
{
    bool fleece = false;
    for (unsigned i = 0; i < w->n_disks; i++) {
        fleece |= w->fleece_size[i] > 0; /* its export */
    }
    for (unsigned h = 1; h < w->n_hosts + fleece && !w->xnet; h++) {
        if (h == w->n_hosts || w->hosts[h].serves >= 0) {
            struct net_config nc;
            net_config_default(&nc);
            w->xnet = net_new(&w->q, &w->plan, w->seed, &nc);
        }
    }
}

void world__xnet_end(struct world *w)
{
    if (w->xnet) {
        w->r->net_segments += net_stats(w->xnet)->segments;
        w->r->net_resets += net_stats(w->xnet)->resets;
        net_free(w->xnet);
        w->xnet = NULL;
    }
}

static void export_service(const struct world *w, unsigned i, char *buf, size_t size)
{
    snprintf(buf, size, "nbd-%s", w->dcfg[i].name);
}

static void export_accept(void *opaque, struct env_transport t)
{
    nbd_server_attach(opaque, t);
}

/* A fleecing target is exported over NBD, as QEMU's nbd-server-add exports
 * it for a backup tool; `read ... export=DISK` reads it through an NBD
 * client of the same host (over the simulated network). */
static int fleece_export(struct world *w, struct stack *s, unsigned i, struct err *e)
{
    char svc[NET_NAME_MAX];
    export_service(w, i, svc, sizeof(svc));
    const char *host = w->hosts[WORLD_GUEST_HOST].name;
    struct nbd_server_opts so = { .export = s->extra[i], .name = w->dcfg[i].name,
                                  .read_only = true };
    s->xserve[i] = nbd_server_new(&so);
    net_listen(w->xnet, host, svc, export_accept, s->xserve[i]);
    s->dial[i] = mem_alloc(sizeof(*s->dial[i]));
    stack_dialer_init(s->dial[i], s, w->xnet, host, host, svc);
    struct drv_nbd_opts no = { .dialer = stack_dialer(s->dial[i]),
                               .export_name = w->dcfg[i].name, .size = w->fleece_size[i],
                               .reconnect_delay_ns = WORLD_RECONNECT_NS };
    char name[NODE_NAME_MAX];
    snprintf(name, sizeof(name), "%.20s-reader", w->dcfg[i].name);
    return node_new(&s->g, &drv_nbd, name, &no, e, &s->xread[i]);
}

/* File nodes on the extra disks, and the host's job list. */
int world__jobs_open(struct world *w, struct stack *s, struct err *e)
{
    for (unsigned i = w->n_topo_disks; i < w->n_disks; i++) {
        if (!w->hosts[WORLD_GUEST_HOST].disk[i]) { /* on a host of its own */
            TRY(remote_disk(w, s, i, e));
            continue;
        }
        struct drv_file_opts fo = { disk_storage(s->h[i]) };
        if (!w->fleece_size[i]) {
            TRY(node_new(&s->g, &drv_file, w->dcfg[i].name, &fo, e, &s->extra[i]));
            continue;
        }
        /* Image fleecing: an overlay over the guest's disk, on this one. */
        char name[NODE_NAME_MAX];
        struct node *file;
        snprintf(name, sizeof(name), "%s-file", w->dcfg[i].name);
        TRY(node_new(&s->g, &drv_file, name, &fo, e, &file));
        struct drv_overlay_opts oo = { file, s->root, w->fleece_size[i],
                                       OVERLAY_CLUSTER_DEFAULT };
        TRY(node_new(&s->g, &drv_overlay, w->dcfg[i].name, &oo, e, &s->extra[i]));
        TRY(fleece_export(w, s, i, e));
    }
    job_list_init(&s->jobs, world__timer(w), world__job_event, w);
    s->jobs.mutants = w->o.node_mutants;
    if (w->pivot_disk >= 0) { /* a mirror or commit moved the guest onto this disk */
        s->front = disk_node(w, s, (unsigned)w->pivot_disk);
    }
    return 0;
}

/* The host died (or shut down): its jobs die with it, no events. */
void world__jobs_kill(struct stack *s)
{
    job_list_fini(&s->jobs);
    struct world *w = s->w;
    bool any = false;
    for (unsigned i = 0; i < WORLD_DISKS_MAX; i++) {
        if (s->xserve[i]) { /* the exports go with the host */
            char svc[NET_NAME_MAX];
            export_service(w, i, svc, sizeof(svc));
            net_unlisten(w->xnet, w->hosts[WORLD_GUEST_HOST].name, svc);
            nbd_server_close(s->xserve[i]);
            s->xserve[i] = NULL;
            any = true;
        }
    }
    if (any) {
        net_host_reset(w->xnet, w->hosts[WORLD_GUEST_HOST].name);
    }
}

/* ---- validation ---- */

int world__job_validate(const struct world *w, const struct trace_rec *r, bool guest_up,
                        struct err *e)
{
    const struct trace_job *j = r->job;
    if (!guest_up) {
        return err_set(e, r->line, 1, "'job %s' while the host is down (add 'restart' first)",
                       trace_job_op_name(j->op));
    }
    if (!w->topo_ops->jobs) {
        return err_set(e, r->line, 1, "jobs need the plain or overlay topology (the %s "
                       "topology does not run them yet)", w->topo_ops->name);
    }
    if (j->op == TRACE_JOB_COMMIT && w->topo != TRACE_TOPO_OVERLAY) {
        return err_set(e, r->line, 2, "'job commit' (active commit) needs the overlay "
                       "topology: it commits the overlay into its base");
    }
    if (j->op == TRACE_JOB_MIRROR && j->has_sync && j->sync == TRACE_SYNC_TOP &&
        w->topo == TRACE_TOPO_OVERLAY) {
        return err_set(e, r->line, 4, "mirror sync=top copies only the overlay's own clusters "
                       "and needs a target backed by the overlay's backing; blocksim's extra "
                       "disks have no backing (use sync=full)");
    }
    if ((j->op == TRACE_JOB_MIRROR || j->op == TRACE_JOB_COMMIT) && w->bitmaps) {
        return err_set(e, r->line, 2, "'job %s' with dirty bitmaps is not modelled yet "
                       "(after the pivot the guest writes where its bitmaps are not)",
                       trace_job_op_name(j->op));
    }
    if (j->op != TRACE_JOB_BACKUP && j->op != TRACE_JOB_MIRROR) {
        return 0;
    }
    int t = world__disk_index(w, j->target);
    if (t < 0 || (unsigned)t < w->n_topo_disks) {
        return err_set(e, r->line, 3, "%s target '%s' must be an extra disk (a 'disk %s "
                       "size=S' record)%s", trace_job_op_name(j->op), j->target, j->target,
                       t >= 0 ? ": it is one of the topology's own" : "");
    }
    if (w->fleece_size[t]) { /* QEMU's fleecing image is made anew for each backup */
        for (size_t i = 0; i < w->t->n && &w->t->recs[i] != r; i++) {
            const struct trace_rec *o = &w->t->recs[i];
            if (o->kind == TRACE_JOB && o->job->target[0] &&
                strcmp(o->job->target, j->target) == 0) {
                return err_set(e, r->line, 3, "disk %s (backing=guest) is a fleecing target "
                               "for one backup; line %u used it already", j->target, o->line);
            }
        }
        if (j->op != TRACE_JOB_BACKUP) {
            return err_set(e, r->line, 3, "disk %s (backing=guest) is a fleecing target: "
                           "only a backup writes to it", j->target);
        }
    }
    return 0;
}

/* ---- the report's record of each job ---- */

static struct world_job *wj_find(const struct world *w, const char *id)
{
    for (unsigned i = w->n_wjobs; i-- > 0;) { /* the latest job of that id */
        if (strcmp(w->wjobs[i].id, id) == 0) {
            return (struct world_job *)&w->wjobs[i];
        }
    }
    return NULL;
}

static json_t *event_json(const struct world *w, const struct job_event *ev)
{
    json_t *o = json_pack("{s:I, s:s}", "t_ns", (json_int_t)w->q.now_ns, "event",
                          job_event_name(ev->kind));
    if (ev->kind == JOB_EV_STATUS_CHANGE) {
        json_object_set_new(o, "status", json_string(job_status_name(ev->status)));
    }
    if (ev->kind == JOB_EV_COMPLETED || ev->kind == JOB_EV_CANCELLED ||
        ev->kind == JOB_EV_READY) {
        json_object_set_new(o, "offset", json_integer((json_int_t)ev->offset));
        json_object_set_new(o, "len", json_integer((json_int_t)ev->len));
    }
    if (ev->error) {
        json_object_set_new(o, "error", json_string(ev->error));
    }
    if (ev->kind == JOB_EV_ERROR) {
        json_object_set_new(o, "operation", json_string(ev->read ? "read" : "write"));
        json_object_set_new(o, "action", json_string(job_action_name(ev->action)));
    }
    return o;
}

static void wj_event(struct world *w, struct world_job *x, json_t *ev)
{
    if (json_array_size(x->events) < WJ_EVENTS_MAX) {
        json_array_append_new(x->events, ev);
    } else {
        x->events_dropped++;
        json_decref(ev);
    }
    (void)w;
}

void world__job_event(void *opaque, const struct job_event *ev)
{
    struct world *w = opaque;
    if (w->o.on_event) {
        char text[96];
        snprintf(text, sizeof(text), "%s %s%s%s", ev->id, job_event_name(ev->kind),
                 ev->kind == JOB_EV_STATUS_CHANGE ? " " : "",
                 ev->kind == JOB_EV_STATUS_CHANGE ? job_status_name(ev->status) : "");
        struct world_event we = { .kind = WORLD_EV_JOB, .line = w->job_line, .rec = TRACE_JOB,
                                  .text = text };
        world__event(w, &we);
    }
    struct world_job *x = wj_find(w, ev->id);
    if (ev->kind == JOB_EV_STATUS_CHANGE && ev->status == JOB_STATUS_CREATED) {
        ASSERT(w->n_wjobs < WORLD_JOBS_MAX);
        x = &w->wjobs[w->n_wjobs++];
        memset(x, 0, sizeof(*x));
        snprintf(x->id, sizeof(x->id), "%s", ev->id);
        x->type = ev->type;
        x->events = json_array();
        x->line = w->job_line;
        x->disk = w->job_disk;
        x->source = w->job_source;
    }
    ASSERT(x != NULL);
    x->status = ev->status;
    x->offset = ev->offset;
    x->len = ev->len;
    if (ev->error) {
        snprintf(x->error, sizeof(x->error), "%s", ev->error);
    }
    wj_event(w, x, event_json(w, ev));
    world__observe(w, TRACE_JOB, ev->kind, (int32_t)ev->status, ev->offset, ev->len);
    world__checkers_job(w, ev);
    if (w->job_waiting) {
        w->job_waiting = false;
        world__pump_soon(w);
    }
}

/* Count a refused command and keep the first one's text for the report. */
static void refusal_note(struct world *w, const char *fmt, ...) PRINTF_LIKE(2, 3);

static void refusal_note(struct world *w, const char *fmt, ...)
{
    w->r->job_refusals++;
    if (!w->r->job_refusal[0]) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(w->r->job_refusal, sizeof(w->r->job_refusal), fmt, ap);
        va_end(ap);
    }
}

/* A verb the job refused (QEMU's error reply): in the report, not a failure. */
static void refused(struct world *w, const struct trace_rec *rec, const struct err *e)
{
    struct world_job *x = wj_find(w, rec->job->id);
    refusal_note(w, "line %u: job %s %s: %.120s", rec->line, trace_job_op_name(rec->job->op),
                 rec->job->id, e->msg);
    if (x) {
        wj_event(w, x, json_pack("{s:I, s:s, s:s, s:s}", "t_ns", (json_int_t)w->q.now_ns,
                                 "event", "refused", "verb", trace_job_op_name(rec->job->op),
                                 "message", e->msg));
    }
}

bool world__job_owns_bitmap(const struct world *w, const char *name)
{
    for (const struct job *j = w->live ? w->live->jobs.head : NULL; j; j = j->next) {
        const struct world_job *x = wj_find(w, j->id);
        if (x && strcmp(x->bitmap, name) == 0 && j->status != JOB_STATUS_CONCLUDED) {
            return true;
        }
    }
    return false;
}

bool world__job_wait_stuck(struct world *w)
{
    const struct trace_rec *rec = w->next < w->t->n ? &w->t->recs[w->next] : NULL;
    if (!rec || rec->kind != TRACE_JOB || rec->job->op != TRACE_JOB_WAIT || !w->live) {
        return false;
    }
    const struct job *j = job_find(&w->live->jobs, rec->job->id);
    if (!j) {
        return false;
    }
    w->r->ended_early = true;
    snprintf(w->r->note, sizeof(w->r->note), "line %u: job wait %s %s: the job is %s and %s; "
             "the rest did not run", rec->line, rec->job->id,
             trace_job_state_name(rec->job->state), job_status_name(j->status),
             j->user_paused ? "paused by the user (add 'job resume')"
                            : "waits for a command (sync=none runs until 'job cancel')");
    return true;
}

bool world__jobs_block(struct world *w, const struct trace_rec *rec)
{
    const struct job *busy = NULL;
    for (const struct job *j = w->live ? w->live->jobs.head : NULL; j && !busy; j = j->next) {
        busy = j->work_done ? NULL : j;
    }
    const char *what = trace_kind_name(rec->kind);
    if (busy) { /* QEMU's op blocker text [mem] */
        refusal_note(w, "line %u: %s: Node '%s' is busy: block device is in use by block job: "
                     "%s", rec->line, what, w->live->root->name, job_type_name(busy->drv->type));
    } else if (w->committed) {
        refusal_note(w, "line %u: %s: after an active commit wrote into the base, blocksim's "
                     "model of the base no longer holds (not modelled yet)", rec->line, what);
    } else if (w->pivot_disk >= 0) {
        refusal_note(w, "line %u: %s: the guest runs on disk %s since a pivot, not on the %s "
                     "topology's disks", rec->line, what, w->dcfg[w->pivot_disk].name,
                     w->topo_ops->name);
    } else {
        return false;
    }
    return true;
}

void world__jobs_json(struct world *w)
{
    if (w->n_wjobs == 0) {
        return;
    }
    json_t *a = json_array();
    for (unsigned i = 0; i < w->n_wjobs; i++) {
        struct world_job *x = &w->wjobs[i];
        json_t *o = json_pack("{s:s, s:s, s:s, s:I, s:I, s:i}", "id", x->id, "type",
                              job_type_name(x->type), "status", job_status_name(x->status),
                              "offset", (json_int_t)x->offset, "len", (json_int_t)x->len,
                              "line", (int)x->line);
        json_object_set_new(o, "error", x->error[0] ? json_string(x->error) : json_null());
        json_object_set(o, "events", x->events);
        if (x->events_dropped) {
            json_object_set_new(o, "events_dropped", json_integer((json_int_t)x->events_dropped));
        }
        json_array_append_new(a, o);
    }
    w->r->jobs = a;
}

void world__jobs_fini(struct world *w)
{
    for (unsigned i = 0; i < w->n_wjobs; i++) {
        json_decref(w->wjobs[i].events);
    }
    w->n_wjobs = 0;
}

/* ---- running the records ---- */

static enum job_policy policy(enum trace_policy p, bool has)
{
    return has ? (enum job_policy)p : JOB_ON_ERR_REPORT;
}

#define WJ_CHUNK (1u << 20) /* the checker reads disks a chunk at a time */

/* What target node @tgt on disk @t holds at @at: through the node when the
 * disk is on the guest's host, else the disk itself (behind NBD). */
static void target_read(struct world *w, struct node *tgt, unsigned t, uint64_t at,
                        uint8_t *buf, uint64_t n)
{
    if (!w->hosts[WORLD_GUEST_HOST].disk[t]) {
        disk_peek(w->disks[t], at, buf, n);
        return;
    }
    int ret = node_pread_sync(tgt, at, buf, n);
    ASSERT(ret == 0); /* a file node or an overlay on a disk of the host */
}

/* What the guest's disk (source node @src, the guest's front) holds at @at:
 * through the node, or the disk itself when a mirror moved the guest onto a
 * disk of another host (behind NBD). */
static void source_read(struct world *w, struct node *src, uint64_t at, uint8_t *buf,
                        uint64_t n)
{
    if (w->check.data_elsewhere) {
        disk_peek(w->disks[w->pivot_disk], at, buf, n);
        return;
    }
    int ret = node_pread_sync(src, at, buf, n);
    ASSERT(ret == 0); /* plain and overlay read their disks' contents synchronously */
}

/* Tell the checker what backup @id must copy from @src (drained, before
 * the job runs): its bytes, and for sync=top what the source layer
 * allocates (block status). */
static void backup_snapshot(struct world *w, const struct world_job *x, struct node *src,
                            bool top, bool by_bitmap, bool none, bool fleece)
{
    const char *id = x->id;
    uint64_t len = src->length;
    check_job_backup_start(&w->cj, id, len / CONTENT_SECTOR, none, fleece);
    uint8_t *buf = mem_alloc(WJ_CHUNK);
    bool sparse = top || by_bitmap;
    uint8_t *in_set = sparse ? mem_alloc(WJ_CHUNK / CONTENT_SECTOR) : NULL;
    for (uint64_t at = 0; at < len; at += WJ_CHUNK) {
        uint64_t n = min_u64(WJ_CHUNK, len - at);
        source_read(w, src, at, buf, n);
        for (uint64_t off = at; top && off < at + n;) {
            uint64_t pnum = 0;
            int bs = node_block_status(src, off, at + n - off, &pnum);
            pnum = pnum ? min_u64(pnum, at + n - off) : CONTENT_SECTOR;
            bool alloc = bs < 0 || (bs & NODE_BS_ALLOCATED);
            memset(in_set + (off - at) / CONTENT_SECTOR, alloc, pnum / CONTENT_SECTOR);
            off += pnum;
        }
        for (uint64_t off = at; by_bitmap && off < at + n; off += CONTENT_SECTOR) {
            uint64_t c0 = off / x->cluster * x->cluster; /* the sector's cluster */
            in_set[(off - at) / CONTENT_SECTOR] = check_bitmap_model_dirty(
                &w->cb, x->bitmap, c0, min_u64(x->cluster, len - c0));
        }
        check_job_backup_snap(&w->cj, id, at / CONTENT_SECTOR, buf, n, in_set);
    }
    mem_free(in_set, in_set ? WJ_CHUNK / CONTENT_SECTOR : 0);
    mem_free(buf, WJ_CHUNK);
}

STATIC_ASSERT((int)BACKUP_SYNC_INCREMENTAL == (int)TRACE_SYNC_INCREMENTAL &&
              (int)BACKUP_SYNC_BITMAP == (int)TRACE_SYNC_BITMAP &&
              (int)BACKUP_SYNC_NONE == (int)TRACE_SYNC_NONE &&
              (int)BACKUP_BMODE_ALWAYS == (int)TRACE_BMODE_ALWAYS);

static void backup_new(struct world *w, const struct trace_rec *rec)
{
    const struct trace_job *tj = rec->job;
    struct stack *s = w->live;
    int t = world__disk_index(w, tj->target);
    ASSERT(t >= 0 && s->extra[t] != NULL);
    struct backup_opts o = {
        .source = s->front ? s->front : s->root, .target = s->extra[t], .front = &s->front,
        .sync = (enum backup_sync)tj->sync, /* the same order (asserted below) */
        .dirty = s->root->dirty, .bitmap = tj->bitmap[0] ? tj->bitmap : NULL,
        .bitmap_mode = (enum backup_bitmap_mode)tj->bitmap_mode,
        .has_bitmap_mode = tj->has_bitmap_mode,
        .cluster = tj->has_cluster ? tj->cluster : 0,
        .on_source_error = policy(tj->on_source_error, tj->has_on_source_error),
        .on_target_error = policy(tj->on_target_error, tj->has_on_target_error),
        .job = { .auto_finalize = tj->auto_finalize, .auto_dismiss = tj->auto_dismiss,
                 .speed = tj->has_speed ? (int64_t)tj->speed : 0 },
    };
    if (w->n_wjobs == WORLD_JOBS_MAX) {
        struct err e = { .file = NULL };
        err_set(&e, 0, 0, "too many jobs in one run (at most %d)", WORLD_JOBS_MAX);
        refused(w, rec, &e);
        return;
    }
    struct err e = { .file = NULL };
    struct job *j;
    w->job_line = rec->line;
    w->job_disk = t;
    if (backup_create(&s->jobs, &s->g, tj->id, &o, &e, &j) < 0) {
        refused(w, rec, &e);
        return;
    }
    if (o.bitmap) { /* the job froze it: the model follows */
        struct world_job *x = wj_find(w, tj->id);
        snprintf(x->bitmap, sizeof(x->bitmap), "%s", o.bitmap);
        x->bitmap_never = tj->has_bitmap_mode && tj->bitmap_mode == TRACE_BMODE_NEVER;
        x->bitmap_always = tj->has_bitmap_mode && tj->bitmap_mode == TRACE_BMODE_ALWAYS;
        x->cluster = o.cluster ? o.cluster : BACKUP_CLUSTER_DEFAULT;
        world__bitmap_job_op(w, TRACE_BM_SUCCESSOR, o.bitmap, rec->line);
    }
    /* What it must copy, as the checker works it out (top: what the source
     * layer allocates, by block status before any guest write; bitmap: the
     * clusters the model's bitmap has dirty). */
    bool by_bitmap = tj->sync == TRACE_SYNC_BITMAP || tj->sync == TRACE_SYNC_INCREMENTAL;
    backup_snapshot(w, wj_find(w, tj->id), o.source, o.sync == BACKUP_SYNC_TOP, by_bitmap,
                    o.sync == BACKUP_SYNC_NONE, w->fleece_size[t] > 0);
    job_start(j);
}

/* A mirror, or an active commit: a mirror of the overlay into its base
 * (disk "base"), copying what the overlay allocates, that moves the guest
 * onto the base when completed. */
static void mirror_new(struct world *w, const struct trace_rec *rec)
{
    const struct trace_job *tj = rec->job;
    struct stack *s = w->live;
    bool commit = tj->op == TRACE_JOB_COMMIT;
    int t = world__disk_index(w, commit ? "base" : tj->target);
    ASSERT(t >= 0);
    struct mirror_opts o = {
        .source = s->front ? s->front : s->root, .target = disk_node(w, s, (unsigned)t),
        .front = &s->front,
        .sync = commit || tj->sync == TRACE_SYNC_TOP ? MIRROR_SYNC_TOP : MIRROR_SYNC_FULL,
        .granularity = tj->has_granularity ? tj->granularity : 0,
        .buf_size = tj->has_buf_size ? tj->buf_size : 0,
        .write_blocking = tj->has_copy_mode && tj->copy_mode == TRACE_COPY_WRITE_BLOCKING,
        .on_source_error = policy(tj->on_source_error, tj->has_on_source_error),
        .on_target_error = policy(tj->on_target_error, tj->has_on_target_error),
        .type = commit ? JOB_TYPE_COMMIT : JOB_TYPE_MIRROR,
        .job = { .auto_finalize = tj->auto_finalize, .auto_dismiss = tj->auto_dismiss,
                 .speed = tj->has_speed ? (int64_t)tj->speed : 0 },
    };
    struct err e = { .file = NULL };
    if (w->n_wjobs == WORLD_JOBS_MAX) {
        err_set(&e, 0, 0, "too many jobs in one run (at most %d)", WORLD_JOBS_MAX);
        refused(w, rec, &e);
        return;
    }
    struct job *j;
    w->job_line = rec->line;
    w->job_disk = t;
    w->job_source = o.source;
    if (mirror_create(&s->jobs, &s->g, tj->id, &o, &e, &j) < 0) {
        refused(w, rec, &e);
        return;
    }
    w->committed |= commit; /* it will write into the base */
    job_start(j);
}

/* Has job @id reached @state, or can it no longer? */
static bool wait_done(const struct world *w, const struct trace_job *tj)
{
    struct job *j = w->live ? job_find(&w->live->jobs, tj->id) : NULL;
    if (!j) {
        return true; /* gone (dismissed, or died with its host) */
    }
    enum job_status s = j->status;
    if (s == JOB_STATUS_CONCLUDED || s == JOB_STATUS_NULL) {
        return true;
    }
    switch (tj->state) {
    case TRACE_WAIT_READY:
        return s == JOB_STATUS_READY || s == JOB_STATUS_STANDBY || s == JOB_STATUS_WAITING ||
               s == JOB_STATUS_PENDING || s == JOB_STATUS_ABORTING;
    case TRACE_WAIT_PENDING:
        return s == JOB_STATUS_PENDING || s == JOB_STATUS_ABORTING;
    default:
        return false;
    }
}

/* A verb on a live job; QEMU's refusal is reported. */
static void job_verb(struct world *w, const struct trace_rec *rec)
{
    const struct trace_job *tj = rec->job;
    struct job *j = job_find(&w->live->jobs, tj->id);
    struct err e = { .file = NULL };
    if (!j) { /* QMP's "Job not found" (job-*), as a refusal */
        err_set(&e, 0, 0, "Block job '%s' not found", tj->id);
        refused(w, rec, &e);
        return;
    }
    w->job_line = rec->line;
    int ret = 0;
    switch (tj->op) {
    case TRACE_JOB_PAUSE:
        ret = job_user_pause(j, &e);
        break;
    case TRACE_JOB_RESUME:
        ret = job_user_resume(j, &e);
        break;
    case TRACE_JOB_COMPLETE:
        ret = job_complete(j, &e);
        break;
    case TRACE_JOB_FINALIZE:
        ret = job_finalize(j, &e);
        break;
    case TRACE_JOB_DISMISS:
        ret = job_dismiss(j, &e);
        break;
    case TRACE_JOB_CANCEL: { /* block-job-cancel [force] */
        enum job_status at = j->status;
        ret = job_cancel(j, tj->force, true, &e);
        if (ret == 0) {
            check_job_cancelled(&w->cj, tj->id, tj->force, at);
        }
        break;
    }
    case TRACE_JOB_SET_SPEED:
        ret = job_set_speed(j, (int64_t)tj->speed, &e);
        break;
    default:
        UNREACHABLE();
    }
    if (ret < 0) {
        refused(w, rec, &e);
    }
}

bool world__job_rec(struct world *w, const struct trace_rec *rec)
{
    const struct trace_job *tj = rec->job;
    if (tj->op != TRACE_JOB_WAIT && w->n_inflight > 0) {
        return false; /* an operator action: the guest's requests before it complete first
                       * (and a job is created inside a drained section, as in QEMU) */
    }
    if (tj->op == TRACE_JOB_WAIT && !wait_done(w, tj)) {
        w->job_waiting = true;
        return false;
    }
    if (!w->live || tj->op == TRACE_JOB_WAIT) {
        return true; /* the host is down: its jobs died with it */
    }
    if (tj->op == TRACE_JOB_BACKUP) {
        backup_new(w, rec);
    } else if (tj->op == TRACE_JOB_MIRROR || tj->op == TRACE_JOB_COMMIT) {
        mirror_new(w, rec);
    } else {
        job_verb(w, rec);
    }
    return true;
}

/* ---- the job checker as an observer (self: the world) ---- */

/* The target disk a verification reads, for its fault attribution. */
struct target_ctx {
    struct world *w;
    unsigned disk;
};

static bool target_taint(void *opaque, uint64_t sector)
{
    const struct target_ctx *t = opaque;
    struct world *w = t->w;
    const struct disk *d = w->disks[t->disk];
    uint64_t vsize = w->fleece_size[t->disk];
    if (vsize) { /* a fleecing overlay: the sector's slot, or its header and map */
        uint64_t data = overlay_file_size(vsize, OVERLAY_CLUSTER_DEFAULT) -
                        align_up(vsize, OVERLAY_CLUSTER_DEFAULT);
        for (uint64_t m = 0; m < data / CONTENT_SECTOR; m++) {
            if (disk_taint_get(d, m) != DISK_TAINT_NONE) {
                return true;
            }
        }
        return disk_taint_get(d, data / CONTENT_SECTOR + sector) != DISK_TAINT_NONE ||
               w->topo_ops->explained(w, sector);
    }
    return disk_taint_get(d, sector) != DISK_TAINT_NONE || w->topo_ops->explained(w, sector);
}


/* A mirror ended in step (COMPLETED, no error): its target equals its
 * source now, whether it pivoted (complete) or not (a soft cancel). */
static void mirror_end(struct world *w, const struct world_job *x, const struct job_event *ev)
{
    struct job *j = job_find(&w->live->jobs, ev->id);
    ASSERT(j != NULL && x->disk >= 0);
    struct node *tgt = disk_node(w, w->live, (unsigned)x->disk);
    uint64_t len = tgt->length;
    uint8_t *src = mem_alloc(WJ_CHUNK);
    uint8_t *dst = mem_alloc(WJ_CHUNK);
    struct target_ctx ctx = { w, (unsigned)x->disk };
    bool pivoted = mirror_pivoted(j);
    for (uint64_t at = 0; at < len && !w->cj.failed; at += WJ_CHUNK) {
        uint64_t n = min_u64(WJ_CHUNK, len - at);
        source_read(w, x->source, at, src, n);
        target_read(w, tgt, (unsigned)x->disk, at, dst, n);
        (void)check_job_mirror_verify(&w->cj, ev->id, at / CONTENT_SECTOR, src, dst, n, pivoted,
                                      target_taint, &ctx, x->line, w->q.now_ns);
    }
    if (pivoted) {
        w->pivot_disk = x->disk; /* the guest's disk from now on, across restarts too */
        w->check.data_elsewhere = !w->hosts[WORLD_GUEST_HOST].disk[x->disk];
    }
    mem_free(src, WJ_CHUNK);
    mem_free(dst, WJ_CHUNK);
}

/* A backup with bitmap-mode=always failed: it abdicated and merged in what
 * it did not copy. Which clusters it copied is its own business, within
 * bounds: those whose target differs from the source at the start it
 * certainly did not copy (read from the target here). */
static void always_failed(struct world *w, const struct world_job *x)
{
    struct node *tgt = w->live->extra[x->disk];
    uint64_t n_cl = (tgt->length + x->cluster - 1) / x->cluster;
    uint8_t *must = mem_alloc(n_cl);
    uint8_t *may = mem_alloc(n_cl);
    uint8_t *buf = mem_alloc(WJ_CHUNK);
    for (uint64_t at = 0; at < tgt->length; at += WJ_CHUNK) {
        uint64_t n = min_u64(WJ_CHUNK, tgt->length - at);
        target_read(w, tgt, (unsigned)x->disk, at, buf, n);
        check_job_backup_uncopied(&w->cj, x->id, at / CONTENT_SECTOR, buf, n, x->cluster, must,
                                  may);
    }
    world__bitmap_job_merged(w, x->bitmap, must, may, x->cluster, x->line);
    mem_free(buf, WJ_CHUNK);
    mem_free(may, n_cl);
    mem_free(must, n_cl);
}

static void cj_job_event(void *self, const struct job_event *ev)
{
    struct world *w = self;
    struct world_job *x = wj_find(w, ev->id);
    check_job_event(&w->cj, ev, x ? x->line : 0, w->q.now_ns);
    bool done = ev->kind == JOB_EV_COMPLETED || ev->kind == JOB_EV_CANCELLED;
    bool success = ev->kind == JOB_EV_COMPLETED && !ev->error;
    if (!done || !w->live || !x) {
        return;
    }
    if (x->type == JOB_TYPE_MIRROR || x->type == JOB_TYPE_COMMIT) {
        if (success) {
            mirror_end(w, x, ev);
        }
        return;
    }
    if (x->bitmap[0] && !success && x->bitmap_always) {
        always_failed(w, x);
    } else if (x->bitmap[0]) { /* the job abdicated or reclaimed it: the model follows */
        bool abdicate = (success || x->bitmap_always) && !x->bitmap_never;
        world__bitmap_job_op(w, abdicate ? TRACE_BM_ABDICATE : TRACE_BM_RECLAIM, x->bitmap,
                             x->line);
    }
    const struct cj_job *cj = check_job_find(&w->cj, ev->id);
    if (!cj || !cj->backup || (!cj->none && !success)) {
        return;
    }
    /* The target as the job left it. */
    ASSERT(x->disk >= 0);
    unsigned t = (unsigned)x->disk;
    struct node *tgt = w->live->extra[t];
    uint8_t *buf = mem_alloc(WJ_CHUNK);
    struct target_ctx ctx = { w, t };
    for (uint64_t at = 0; at < tgt->length && !w->cj.failed; at += WJ_CHUNK) {
        uint64_t n = min_u64(WJ_CHUNK, tgt->length - at);
        target_read(w, tgt, t, at, buf, n);
        (void)check_job_backup_verify(&w->cj, ev->id, at / CONTENT_SECTOR, buf, n,
                                      target_taint, &ctx, x->line, w->q.now_ns);
    }
    mem_free(buf, WJ_CHUNK);
}

/* A read of fleecing target @d's export while its backup runs: the
 * source as it was when the job started (after the job, guest writes reach
 * the source unguarded: nothing is promised). */
static void fleece_read(struct world *w, const struct checker_io *io)
{
    int d = world__disk_index(w, io->rec->export);
    for (unsigned k = 0; k < w->n_wjobs && io->ret == 0; k++) {
        const struct world_job *x = &w->wjobs[k];
        const struct job *j = w->live ? job_find(&w->live->jobs, x->id) : NULL;
        if (x->disk != d || x->type != JOB_TYPE_BACKUP || !j || j->status == JOB_STATUS_CONCLUDED ||
            j->status == JOB_STATUS_NULL || j->status == JOB_STATUS_ABORTING) {
            continue;
        }
        struct target_ctx ctx = { w, (unsigned)d };
        w->fleece_reads++;
        ASSERT(io->data != NULL); /* export reads are never described */
        (void)check_job_backup_verify(&w->cj, x->id, io->sector, io->data, io->n * 512,
                                      target_taint, &ctx, io->rec->line, io->now_ns);
    }
}

static void cj_io_done(void *self, const struct checker_io *io)
{
    struct world *w = self;
    if (io->rec && io->rec->export[0]) {
        fleece_read(w, io);
    } else if (io->guest && io->ret == 0 && io->op != NODE_OP_READ && io->op != NODE_OP_FLUSH &&
               (!io->rec || io->rec->guest == 0)) {
        check_job_guest_wrote(&w->cj, io->sector, io->n);
    }
}

static const struct violation *cj_violation(const void *self)
{
    const struct world *w = self;
    return w->cj.failed ? &w->cj.first : NULL;
}

static void cj_check(const void *self)
{
    const struct world *w = self;
    check_job_check(&w->cj);
}

static json_t *cj_json(const void *self)
{
    const struct world *w = self;
    json_t *o = check_job_json(&w->cj);
    json_object_set_new(o, "export_reads_judged", json_integer((json_int_t)w->fleece_reads));
    return o;
}

static void cj_fini(void *self)
{
    struct world *w = self;
    check_job_fini(&w->cj);
}

const struct checker_ops world__job_checker = {
    .name = "jobs",
    .other_guests = true, /* the fleecing exports' reads (it ignores colo's) */
    .io_done = cj_io_done,
    .job_event = cj_job_event,
    .violation = cj_violation,
    .check = cj_check,
    .json = cj_json,
    .fini = cj_fini,
};
