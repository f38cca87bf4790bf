/*
 * world_int: the world's internals, shared by sim/world/ and the topology
 *   modules of sim/topo/.
 *
 * Role: not a public interface; only the world's own files and topology
 *   modules include it. Functions named world__* cross between those files
 *   (STYLE.md rule 1).
 * Invariants, ownership: as world.h states for the world as a whole; the
 *   guest host's stack owns its graph, disk handles and QBM object; a
 *   topology module owns its state (world.tst).
 * Depends on: everything world.h does, plus files, the checkers, net and
 *   the topology interface (sim/topo/topo.h).
 */
#ifndef BLOCKSIM_WORLD_INT_H
#define BLOCKSIM_WORLD_INT_H

#include <xxhash.h>

#include "../../ref/node.h"
#include "../check/check_bitmap.h"
#include "../check/check_job.h"
#include "../check/check_quorum.h"
#include "../check/checker.h"
#include "../dev/files.h"
#include "../check/model_disk.h"
#include "../dev/net.h"
#include "../trace/trace.h"
#include "../base/rng.h"
#include "../topo/topo.h"
#include "world.h"

#define WORLD_STALL_DEFAULT (3600ull * 1000000000ull)
/* Memory the dirty bitmaps of one run may take (3 copies of a bit a
 * granule): a larger need is an input error, found before allocating. */
#define WORLD_BITMAP_MEM_MAX (4ull << 30)
#define WORLD_EVENTS_MAX (1ull << 40) /* loop bound: far beyond any real run */
#define WORLD_RECONNECT_NS (15ull * 1000000000ull) /* NBD clients to other hosts */

/* The guest's host runs the guest and its stack; other hosts (a quorum's
 * NBD servers s<i>) hold disks and serve them. Each crashes, restarts and
 * shuts down on its own; a record without host= acts on every host. */
#define WORLD_HOSTS_MAX (1 + WORLD_DISKS_MAX)
#define WORLD_GUEST_HOST 0

struct host {
    char name[TRACE_HOST_MAX];
    bool up;
    uint64_t crashes;              /* times this host lost power */
    uint64_t downs;                /* times it went down (crash or shutdown) */
    bool disk[WORLD_DISKS_MAX];    /* the disks it holds */
    int child;                     /* quorum: the child it serves, else -1 */
    int serves;                    /* a host of an extra disk's own: that disk, else -1 */
};

/* The guest host's stack. */
struct stack {
    struct world *w;
    struct graph g;
    struct disk_handle *h[WORLD_DISKS_MAX];
    struct node *root;
    struct qbm *qbm; /* the guest disk's persistent bitmaps, when bitmaps are on */
    bool dead;       /* killed: draining */
    struct stack_dialer *dial[WORLD_DISKS_MAX]; /* NBD clients' dialers (sim/topo/dial) */
    struct node *front;    /* where the guest submits while a job's filter sits above
                            * root (NULL: root) */
    struct node *extra[WORLD_DISKS_MAX]; /* file nodes on the extra disks */
    struct job_list jobs;  /* the host's block jobs */
    /* Fleecing targets exported over NBD (backing=guest disks), and the NBD
     * clients that read them (records `read ... export=DISK`). */
    struct nbd_server *xserve[WORLD_DISKS_MAX];
    struct node *xread[WORLD_DISKS_MAX];
};

#define WORLD_JOBS_MAX 16

/* A job as the report tells it (kept after the job is gone). */
struct world_job {
    char id[JOB_ID_MAX];
    enum job_type type;
    enum job_status status;
    uint64_t offset, len;
    char error[128];
    unsigned line;      /* the record that created it */
    int disk;           /* its target disk, else -1 */
    struct node *source; /* a mirror's source (valid while its host lives) */
    json_t *events;
    uint64_t events_dropped;
    char bitmap[TRACE_BITMAP_NAME_MAX]; /* an incremental backup's bitmap, or "" */
    bool bitmap_never;  /* bitmap-mode=never: reclaimed whatever happens */
    bool bitmap_always; /* bitmap-mode=always: abdicated whatever happens */
    uint64_t cluster;   /* a backup's cluster size */
};

struct guest_op {
    struct world *w;
    const struct trace_rec *rec;
    uint64_t index;    /* guest operation index (content tag - 1) */
    unsigned host;     /* the host whose guest issued it */
    uint64_t t_submit; /* virtual time it was submitted */
    uint64_t epoch;    /* host incarnation it was issued in (world__host_epoch) */
    uint64_t cookie[CHECKERS_MAX]; /* what each checker's io_submit returned */
    uint8_t *buf;      /* a read's room for bytes, then its tags; a write's bytes
                        * unless described */
    uint64_t buf_len;
    uint64_t *tags;    /* a read: its sectors' content tags once done */
    uint64_t read_hash; /* a read, done: content_hash of what it read */
    struct env_desc desc; /* described I/O (ref/env.h) */
};

#define WORLD_BUGGIFY_SITES 32

struct buggify_site {
    const char *name; /* a string literal of ref/ */
    bool enabled;
};

struct world {
    const struct trace *t;
    struct world_opts o;
    struct world_result *r;
    uint64_t seed;
    struct evq q;
    struct rng root;
    struct rng crash_rng;
    struct fault_plan plan;
    enum trace_topology topo;
    const struct topo_ops *topo_ops; /* the topology's module (sim/topo) */
    void *tst;                       /* its state */
    uint64_t size;
    struct disk_config dcfg[WORLD_DISKS_MAX];
    unsigned n_disks;
    struct disk *disks[WORLD_DISKS_MAX];
    struct host hosts[WORLD_HOSTS_MAX];
    unsigned n_hosts;
    struct stack *live;   /* the guest host's stack; NULL while it is down */
    uint64_t epoch;       /* the guest host's incarnation */
    unsigned qd;
    size_t next;          /* next trace record */
    uint64_t next_op;
    struct guest_op **inflight;
    unsigned n_inflight;
    unsigned cap_inflight;
    bool control_busy;
    bool crash_free; /* no power loss can come in this run: models keep only
                      * what a read may return now */
    uint64_t control_faults_at; /* faults fired when the running control action began */
    bool timer_armed;
    unsigned disk_rec_line[WORLD_DISKS_MAX]; /* the disk record that configured it */
    const struct trace_rec *at_flush_rec; /* the crash record with at-flush=, if any */
    const char *image_path[WORLD_DISKS_MAX]; /* disk record's image=, borrowed */
    uint8_t *image[WORLD_DISKS_MAX];        /* loaded image bytes (owned) */
    uint64_t image_len[WORLD_DISKS_MAX];
    uint64_t progress_ns;   /* virtual time of the last record run or op done */
    uint64_t wait_until_ns; /* the latest @TIME the pump waited for */
    bool waited;
    const struct trace_rec *judging; /* the guest request check_rw is judging */
    struct check_rw check;           /* the guest's read-your-writes checker */
    struct checker checkers[CHECKERS_MAX]; /* every checker, in dispatch order */
    unsigned n_checkers;
    XXH3_state_t *digest;
    uint8_t digest_buf[40 * 64]; /* observations not yet hashed (the hash of the
                                  * concatenation is the same however fed) */
    unsigned digest_len;
    bool buggify;
    struct rng buggify_rng;
    struct buggify_site sites[WORLD_BUGGIFY_SITES];
    unsigned n_sites;
    bool bitmaps;       /* the run uses dirty bitmaps (records or options) */
    struct files files; /* QBM descriptor and bitmap files */
    struct check_bitmap cb;
    uint64_t desc_flips_at; /* the descriptor's flipped reads when the stack opened */
    unsigned n_topo_disks;  /* the topology's own disks; extra disks follow */
    struct check_job cj;    /* the jobs' checker */
    struct world_job wjobs[WORLD_JOBS_MAX];
    unsigned n_wjobs;
    unsigned job_line;      /* the job record running now */
    int job_disk;           /* its target disk */
    struct node *job_source; /* its source node */
    bool job_waiting;       /* a 'job wait' holds the pump */
    bool closing;           /* world_fini is draining the events */
    bool has_jobs;          /* the trace has job records */
    int pivot_disk;         /* the disk a mirror moved the guest onto, or -1 */
    uint64_t fleece_size[WORLD_DISKS_MAX]; /* an extra disk with backing=guest: the
                                            * virtual size of its overlay, else 0 */
    bool committed;         /* an active commit ran: the overlay's base model is stale */
    struct net *xnet;       /* the network to extra disks on hosts of their own and to
                             * fleecing exports, or NULL */
    uint64_t fleece_reads;  /* export reads judged against a running backup */
    uint64_t ev_faults[FAULT__COUNT]; /* faults already told to on_event */
    struct disk_server *xsrv[WORLD_DISKS_MAX]; /* their NBD servers while up */
};


/* A control record in progress (a sync, a shutdown), tied to its host. */
struct control_op {
    struct world *w;
    const struct trace_rec *rec;
    uint64_t epoch;
    uint64_t cookie[CHECKERS_MAX]; /* its flush, for the checkers */
};

/* world.c */
/* Tell world_opts.on_event of @ev (its time set here), and of any faults
 * that fired since the last event. */
void world__event(struct world *w, struct world_event *ev);
/* Assert every invariant of the world: hosts, disks, the guest's stack. */
void world_check(const struct world *w);
void world__pump(struct world *w);
/* Pump from a fresh event (from inside a stack's callback). */
void world__pump_soon(struct world *w);
struct env_timer world__timer(struct world *w);
void world__observe(struct world *w, uint32_t kind, uint64_t index, int32_t ret, uint64_t a,
                    uint64_t b);
void world__control_fail(struct world *w, const struct trace_rec *rec, const char *prop,
                         const char *msg);
/* The same, for a step that failed with @ret: "WHAT failed: ERRNO TEXT". */
void world__control_fail_ret(struct world *w, const struct trace_rec *rec, const char *prop,
                             const char *what, int ret);
void world__stack_free(struct stack *s);
/* Host @h's incarnation: changes each time it goes down. */
uint64_t world__host_epoch(const struct world *w, unsigned h);
/* A shutdown of the guest's host finished: it is down, and so are the other
 * hosts @rec names (cleanly). */
void world__guest_shut(struct world *w, const struct trace_rec *rec);
/* A checker found @v: the verdict is the first violation in event order. */
void world__verdict_fail(struct world *w, const struct violation *v);
/* A violation, whatever faults were injected (the first one wins), at the
 * next record's line, or at @line. */
void world__violation(struct world *w, const char *prop, const char *msg);
void world__violation_at(struct world *w, const char *prop, const char *msg, unsigned line);
/* Start a control op: the pump waits until world__control_end. */
struct control_op *world__control_new(struct world *w, const struct trace_rec *rec);
/* In a control op's callback: false (and @c freed) when its host is gone. */
bool world__control_live(struct control_op *c);
void world__control_end(struct control_op *c);

/* world_checkers.c: the checkers (checker.h), called in registration order;
 * after each hook a checker's first violation may become the verdict. */
void world__checker_add(struct world *w, const struct checker_ops *ops, void *self);
void world__checkers_submit(struct world *w, const struct checker_io *io,
                            uint64_t cookie[CHECKERS_MAX]);
void world__checkers_done(struct world *w, struct checker_io *io,
                          const uint64_t cookie[CHECKERS_MAX]);
void world__checkers_lost(struct world *w, struct checker_io *io,
                          const uint64_t cookie[CHECKERS_MAX]);
void world__checkers_control(struct world *w, const struct trace_rec *rec);
void world__checkers_crash(struct world *w, unsigned host, int mode);
void world__checkers_job(struct world *w, const struct job_event *ev);
void world__checkers_restart(struct world *w, unsigned host);
void world__checkers_end(struct world *w);
void world__checkers_check(const struct world *w);
json_t *world__checkers_json(const struct world *w);
void world__checkers_fini(struct world *w);

/* world_bitmap.c */
/* world_opts.bitmaps: valid names and granularities, no name twice. */
int world__bitmap_specs_check(const struct world *w, struct err *e);
int world__bitmap_open(struct world *w, struct stack *s, struct err *e);
void world__bitmap_ready(struct world *w, const struct trace_rec *rec, bool first);
void world__bitmap_rec(struct world *w, const struct trace_rec *rec);
extern const struct checker_ops world__bitmap_checker; /* self: the world */
void world__bitmap_crash(struct world *w, enum disk_crash_mode mode);
void world__bitmap_end(struct world *w);
void world__shutdown(struct world *w, const struct trace_rec *rec);
/* A job ran bitmap operation @op on bitmap @name (successor, abdicate,
 * reclaim): apply it to the model and compare (bitmap-successor). */
void world__bitmap_job_op(struct world *w, enum trace_bitmap_op op, const char *name,
                          unsigned line);
/* A backup failed under bitmap-mode=always (check_bitmap_abdicate_merged). */
void world__bitmap_job_merged(struct world *w, const char *name, const uint8_t *must,
                              const uint8_t *may, uint64_t gran, unsigned line);

/* world_job.c */
int world__extra_disk_rec(struct world *w, const struct trace_rec *r, struct err *e);
/* `read ... export=DISK`: DISK is a fleecing target, the range within it,
 * the guest's host up. */
int world__export_rec_check(const struct world *w, const struct trace_rec *r, bool up,
                            struct err *e);
/* Another host than the guest's comes up or goes down: the topology's, or
 * one an extra disk sits on (served over NBD to the guest's host). */
int world__host_open(struct world *w, unsigned h, struct err *e);
void world__host_kill(struct world *w, unsigned h);
/* The network to extra disks on hosts of their own (made when one is). */
void world__xnet_start(struct world *w);
void world__xnet_end(struct world *w);
int world__jobs_open(struct world *w, struct stack *s, struct err *e);
void world__jobs_kill(struct stack *s);
int world__job_validate(const struct world *w, const struct trace_rec *r, bool guest_up,
                        struct err *e);
void world__job_event(void *opaque, const struct job_event *ev);
/* Run job record @rec; false when it has to wait. */
bool world__job_rec(struct world *w, const struct trace_rec *rec);
void world__jobs_json(struct world *w);
/* Nothing can happen any more and a 'job wait' holds the pump: the job is
 * paused by the user or waits to be cancelled. The run ends early with a
 * note saying so (a scenario that waits for what cannot happen, as it
 * would hang QEMU's user too). */
bool world__job_wait_stuck(struct world *w);
/* Does a job of the live host own (froze) bitmap @name? */
bool world__job_owns_bitmap(const struct world *w, const char *name);
/* Does a running job block operator action @rec (commit, make-empty)? Then
 * it is refused as QEMU's op blockers refuse it, and reported. */
bool world__jobs_block(struct world *w, const struct trace_rec *rec);
void world__jobs_fini(struct world *w);
extern const struct checker_ops world__job_checker; /* self: the world */

/* world_image.c */
/* The index of the disk called @name, or -1. */
int world__disk_index(const struct world *w, const char *name);
/* check_rw_init for a checker of this run (its model keeps only the current
 * set when no crash can come). */
void world__check_rw_init(struct world *w, struct check_rw *c, check_taint_fn *taint,
                          void *opaque);
/* Tell model @m what an image of @len bytes holds, sector by sector. */
void world__image_to_model(struct model_disk *m, const uint8_t *image, uint64_t len);
/* The size of disk record @r's image= file. */
int world__image_size(const struct world *w, const struct trace_rec *r, uint64_t *size,
                      struct err *e);
/* The guest size an image on the guest disk implies (0 when none). */
int world__image_guest_size(const struct world *w, uint64_t *size, struct err *e);
/* A disk record with image=: check it against disk @i. */
int world__image_disk_rec(struct world *w, unsigned i, const struct trace_rec *r,
                          struct err *e);
/* Read the images into their disks and tell the checker what they hold. */
int world__images_load(struct world *w, struct err *e);
int world__exports_check(const struct world *w, struct err *e);
/* Read @len bytes at @off through node @n, running the world's events
 * until the read is done (after the run: exports). */
int world__node_read(struct world *w, struct node *n, uint64_t off, uint8_t *buf, uint64_t len);
void world__exports_write(struct world *w);
void world__images_fini(struct world *w);

#endif
