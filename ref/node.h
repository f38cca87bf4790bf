/*
 * node: the block node graph, its driver vtable and the request lifecycle.
 *
 * Role: a graph owns nodes; a node runs one driver over its children; every
 *   I/O is a struct req that the node tracks from submission to completion.
 * Model: QEMU's BlockDriverState / BdrvChild / BlockDriver (block_int-common.h)
 *   and its tracked requests (block/io.c): a request that must see a stable
 *   range (copy-up read-modify-write) is "serialising", and overlapping
 *   requests wait for it, in submission order.
 * Invariants: node->inflight counts tracked plus waiting requests; a request
 *   waits only for requests submitted before it; graph->inflight is the sum
 *   over its nodes; a dead graph accepts requests only to fail them.
 * Ownership: the graph owns its nodes (graph_free frees them, parents first);
 *   a node owns its driver state; node_submit allocates the req and frees it
 *   after the completion callback returned. Buffers are borrowed.
 * Async contract: node_submit never completes inline: the callback always
 *   runs from an event posted on the graph's timer, with 0 or a negative
 *   errno (BS_ECRASHED once the graph was killed).
 * Dirty bitmaps: every write, write-zeroes and discard marks the node's
 *   enabled bitmaps as it completes, whatever its result, before its callback
 *   runs (QEMU's write-request finish); graph->dirty_mark_early switches to
 *   marking at submission (the 2016 QBM series).
 * Depends on: base, env (timer), dirty.
 */
#ifndef BLOCKSIM_NODE_H
#define BLOCKSIM_NODE_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "base.h"
#include "env.h"

#define NODE_SECTOR 512u
#define NODE_CHILDREN_MAX 8
#define NODE_NAME_MAX 32

enum node_op {
    NODE_OP_READ,
    NODE_OP_WRITE,
    NODE_OP_FLUSH,
    NODE_OP_DISCARD,
    NODE_OP_WRITE_ZEROES,
    NODE_OP__COUNT,
};

enum {
    NODE_REQ_FUA = 1u << 0, /* write/write-zeroes: durable on completion */
};

/* Block status flags (QEMU's BDRV_BLOCK_*): a run's data is in this node
 * (ALLOCATED), reads as zeroes (ZERO), or has data (DATA). */
enum {
    NODE_BS_DATA = 1 << 0,
    NODE_BS_ZERO = 1 << 1,
    NODE_BS_ALLOCATED = 1 << 2,
};

enum node_role {
    NODE_ROLE_FILE,    /* the protocol node that holds this node's bytes */
    NODE_ROLE_BACKING, /* copy-on-write source */
    NODE_ROLE_CHILD,   /* a peer child (quorum) */
};

/* Planted bugs, switched on per graph at run time, so a test can prove that
 * a checker catches them (no #ifdef: the build is the same). A set of them
 * is a mask of 64 bits, one per bug, whichever module it is in;
 * each module lists its own by name (struct planted_bug). */
#define NODE_MUTANT(n) (UINT64_C(1) << (n))
#define NODE_MUTANT_OVERLAY_NO_COPYUP NODE_MUTANT(0) /* partial write skips copy-up */
#define NODE_MUTANT_OVERLAY_NO_SERIALISE NODE_MUTANT(1) /* copy-up races other writes */
#define NODE_MUTANT_FILE_DROP_FUA NODE_MUTANT(2) /* FUA flag not passed down */
#define NODE_MUTANT_FILE_EARLY_ACK NODE_MUTANT(3) /* write acked before the disk has it */
#define NODE_MUTANT_OVERLAY_MAP_FIRST NODE_MUTANT(4) /* map persisted before its data */
#define NODE_MUTANT_DIRTY_LATE_MARK NODE_MUTANT(5) /* bitmaps marked after the ack */
#define NODE_MUTANT_DIRTY_RECLAIM_DROP NODE_MUTANT(6) /* reclaim loses the successor's bits */
#define NODE_MUTANT_QBM_NO_IN_USE NODE_MUTANT(7) /* open leaves bitmaps marked clean */
#define NODE_MUTANT_QBM_SHORT_STORE NODE_MUTANT(8) /* store drops a bitmap's last word */
#define NODE_MUTANT_QUORUM_THRESHOLD NODE_MUTANT(9) /* a read version wins with one vote short */
#define NODE_MUTANT_QUORUM_WRITE_ANY NODE_MUTANT(10) /* a write succeeds if any child did */
#define NODE_MUTANT_QUORUM_NO_REWRITE NODE_MUTANT(11) /* rewrite-corrupted repairs nothing */
#define NODE_MUTANT_QUORUM_TIE_LOW NODE_MUTANT(12) /* ties go to the lowest child index */
#define NODE_MUTANT_NBD_NO_RETRY NODE_MUTANT(13) /* requests in flight at a break fail */
#define NODE_MUTANT_OVERLAY_COMMIT_FAIL NODE_MUTANT(14) /* commit says EIO though it copied */
#define NODE_MUTANT_NBD_SERVER_DROP_FUA NODE_MUTANT(15) /* the server drops the FUA flag */
#define NODE_MUTANT_OVERLAY_SNAPSHOT_LATE NODE_MUTANT(16) /* map snapshot after the data flush */
#define NODE_MUTANT_QBM_SKIP_CHECKSUM NODE_MUTANT(17) /* loader trusts a bitmap file unchecked */
#define NODE_MUTANT_BACKUP_CBW_LATE NODE_MUTANT(18) /* guest write before its copy */
#define NODE_MUTANT_MIRROR_EARLY_COMPLETE NODE_MUTANT(19) /* pivot before the drain */
#define NODE_MUTANT_MIRROR_CANCEL_FORCED NODE_MUTANT(20) /* soft cancel made forced */
#define NODE_MUTANT_MIRROR_LOST_DIRTY NODE_MUTANT(21) /* guest write not marked dirty */
#define NODE_MUTANT_JOB_READY_RESENT NODE_MUTANT(22) /* READY sent again after standby */
#define NODE_MUTANT_BACKUP_ABDICATE_ALWAYS NODE_MUTANT(23) /* bitmap kept on failure */
#define NODE_MUTANT_BACKUP_ALWAYS_NO_MERGE NODE_MUTANT(24) /* uncopied not merged */
#define NODE_MUTANT_REPL_CHECKPOINT_ACTIVE_ONLY NODE_MUTANT(25) /* hidden kept */
#define NODE_MUTANT_REPL_FAILOVER_ACTIVE_ONLY NODE_MUTANT(26) /* hidden not committed */
#define NODE_MUTANT_REPL_PRIMARY_RETURNS_ERROR NODE_MUTANT(27) /* error not kept */
#define NODE_MUTANT_REPL_CHECKPOINT_NO_RESET NODE_MUTANT(28) /* copy bitmap not reset */
#define NODE_MUTANT_MIRROR_NO_TARGET_FLUSH NODE_MUTANT(29) /* done without flushing */

struct node;
struct req;

struct node_driver {
    const char *name;
    size_t state_size;
    /* Set node->length, attach children. @opts is the driver's own struct. */
    int (*open)(struct node *n, const void *opts, struct err *e);
    void (*close)(struct node *n);
    /* One entry per enum node_op; each completes @req with req_complete. */
    void (*submit[NODE_OP__COUNT])(struct node *n, struct req *req);
    /* Alignment of the serialising range of a request, 0 if it needs none. */
    uint64_t (*serialise_align)(const struct node *n, const struct req *req);
    /* NODE_BS_* flags of the run at @offset, its length in *pnum (<= @len). */
    int (*block_status)(struct node *n, uint64_t offset, uint64_t len, uint64_t *pnum);
    /* Synchronous read for open-time metadata of parents. */
    int (*pread_sync)(struct node *n, uint64_t offset, uint8_t *buf, uint64_t len);
    /* Optional: true if its reads and writes forward a description (env.h
     * struct env_desc) to storage; no other driver ever gets one. */
    bool (*takes_desc)(const struct node *n);
    void (*check)(const struct node *n);
};

struct node_child {
    struct node *node;
    enum node_role role;
};

TAILQ_HEAD(req_list, req);

struct graph {
    struct env_timer timer;
    struct node **nodes; /* creation order: children before parents */
    size_t n_nodes;
    size_t cap_nodes;
    uint64_t inflight;    /* requests not yet completed, all nodes */
    uint64_t next_seq;    /* submission order of requests */
    uint64_t mutants;     /* planted bugs switched on (NODE_MUTANT_*) */
    bool dead;            /* killed: new requests fail with BS_ECRASHED */
    bool dirty_mark_early; /* the 2016 QBM series: mark dirty bitmaps when a
                            * write is issued, not when it completes */
    env_cb *idle_cb;      /* posted once dead and idle */
    void *idle_opaque;
};

struct node {
    const struct node_driver *drv;
    struct graph *graph;
    char name[NODE_NAME_MAX];
    uint64_t length; /* bytes, a multiple of NODE_SECTOR */
    void *state;     /* drv->state_size bytes, zeroed at open */
    struct node_child children[NODE_CHILDREN_MAX];
    size_t n_children;
    struct req_list tracked; /* dispatched, not completed; submission order */
    unsigned n_serialising;  /* of tracked and waiting, those with a serialising range */
    struct req_list waiting; /* blocked by a serialising overlap */
    uint64_t inflight;
    struct dirty_set *dirty; /* named dirty bitmaps (dirty.h), or NULL */
};

struct req {
    struct node *node;
    enum node_op op;
    uint64_t offset;
    uint64_t len;
    uint8_t *buf;  /* read: filled; write: source; others: NULL */
    struct env_desc *desc; /* read, write on a node that takes one: the data
                            * described (a write's buf is then NULL); else NULL */
    unsigned flags;
    uint64_t seq;
    uint64_t ser_offset; /* serialising range; ser_len 0 if none */
    uint64_t ser_len;
    int ret;
    env_io_cb *cb;
    void *opaque;
    TAILQ_ENTRY(req) link;
    /* Scratch for the driver that runs the request. */
    void *drv_ptr;
    uint64_t drv_u64[4];
};

/* Requests a driver holds back, in arrival order (linked through drv_ptr). */
struct req_fifo {
    struct req *head;
    struct req *tail;
};

static inline void req_fifo_push(struct req_fifo *f, struct req *r)
{
    r->drv_ptr = NULL;
    if (f->tail) {
        f->tail->drv_ptr = r;
    } else {
        f->head = r;
    }
    f->tail = r;
}

/* Empty @f; its requests, in order, as a list linked through drv_ptr. */
static inline struct req *req_fifo_take(struct req_fifo *f)
{
    struct req *list = f->head;
    f->head = f->tail = NULL;
    return list;
}

/* Initialise an empty graph on @timer. */
void graph_init(struct graph *g, struct env_timer timer, uint64_t mutants);

/* Free every node, parents first. The graph must be idle. */
void graph_fini(struct graph *g);

/* Stop the graph: new requests fail with BS_ECRASHED and, once no request is
 * in flight, @idle_cb is posted (it may then call graph_fini). */
void graph_kill(struct graph *g, env_cb *idle_cb, void *opaque);

/* Create and open a node in @g. Returns 0 and *out, or a negative errno with
 * @e filled; on failure nothing was added to the graph. */
int node_new(struct graph *g, const struct node_driver *drv, const char *name,
             const void *opts, struct err *e, struct node **out) WUR;

/* For drivers' open: attach @child in @role. */
void node_child_attach(struct node *parent, struct node *child, enum node_role role);

/* Detach the child at position @slot; later children move up one place. The
 * child stays in the graph. */
void node_child_detach(struct node *parent, size_t slot);

/* The first child in @role, or NULL. */
struct node *node_child(const struct node *n, enum node_role role);

struct node *graph_node_find(const struct graph *g, const char *name);

/* Submit one request. @offset and @len are multiples of NODE_SECTOR and
 * within the node (ignored for flush). Completes through @cb, never inline. */
void node_submit(struct node *n, enum node_op op, uint64_t offset, uint64_t len,
                 uint8_t *buf, unsigned flags, env_io_cb *cb, void *opaque);

/* Whether @n's reads and writes may carry a description. */
bool node_takes_desc(const struct node *n);

/* node_submit with a description, on a node that takes one: a write's data
 * is @desc (@buf NULL); a read fills @buf or answers in @desc. */
void node_submit_desc(struct node *n, enum node_op op, uint64_t offset, uint64_t len,
                      uint8_t *buf, struct env_desc *desc, unsigned flags, env_io_cb *cb,
                      void *opaque);

static inline void node_read(struct node *n, uint64_t offset, uint64_t len, uint8_t *buf,
                             env_io_cb *cb, void *opaque)
{
    node_submit(n, NODE_OP_READ, offset, len, buf, 0, cb, opaque);
}

static inline void node_write(struct node *n, uint64_t offset, uint64_t len,
                              const uint8_t *buf, unsigned flags, env_io_cb *cb,
                              void *opaque)
{
    node_submit(n, NODE_OP_WRITE, offset, len, (uint8_t *)buf, flags, cb, opaque);
}

static inline void node_flush(struct node *n, env_io_cb *cb, void *opaque)
{
    node_submit(n, NODE_OP_FLUSH, 0, 0, NULL, 0, cb, opaque);
}

/* Drivers: finish @req with @ret (0 or negative errno). The callback runs
 * from a posted event; the request is freed after it. */
void req_complete(struct req *req, int ret);

int node_block_status(struct node *n, uint64_t offset, uint64_t len, uint64_t *pnum) WUR;
int node_pread_sync(struct node *n, uint64_t offset, uint8_t *buf, uint64_t len) WUR;

static inline bool node_mutant(const struct node *n, uint64_t m)
{
    return (n->graph->mutants & m) != 0;
}

const char *node_op_name(enum node_op op);

void node_check(const struct node *n);
void graph_check(const struct graph *g);

#endif
