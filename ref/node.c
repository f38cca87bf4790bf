/*
 * node: see node.h.
 *
 * Method: node_submit allocates a request, gives it the next sequence number
 * and, if the driver asks for a serialising range, widens it to that
 * alignment. A request waits while an earlier tracked request overlaps it
 * and either of the two is serialising; otherwise it is dispatched through
 * the driver's table. req_complete posts an event that untracks the request,
 * wakes waiters that are no longer blocked (in submission order), runs the
 * callback and frees the request. Because a request only ever waits for
 * earlier ones, waiting cannot deadlock.
 */
#include "node.h"

#include <string.h>

#include "dirty.h"

static const char *const op_names[NODE_OP__COUNT] = {
    [NODE_OP_READ] = "read",
    [NODE_OP_WRITE] = "write",
    [NODE_OP_FLUSH] = "flush",
    [NODE_OP_DISCARD] = "discard",
    [NODE_OP_WRITE_ZEROES] = "write-zeroes",
};

const char *node_op_name(enum node_op op)
{
    ASSERT(op < NODE_OP__COUNT);
    return op_names[op];
}

void graph_init(struct graph *g, struct env_timer timer, uint64_t mutants)
{
    memset(g, 0, sizeof(*g));
    g->timer = timer;
    g->mutants = mutants;
}

static void node_free(struct node *n)
{
    node_check(n);
    ASSERT(n->inflight == 0);
    if (n->drv->close) {
        n->drv->close(n);
    }
    dirty_set_free(n->dirty);
    mem_free(n->state, n->drv->state_size);
    mem_free(n, sizeof(*n));
}

void graph_fini(struct graph *g)
{
    graph_check(g);
    ASSERT(g->inflight == 0);
    for (size_t i = g->n_nodes; i > 0; i--) {
        node_free(g->nodes[i - 1]);
    }
    mem_free(g->nodes, g->cap_nodes * sizeof(*g->nodes));
    g->nodes = NULL;
    g->n_nodes = g->cap_nodes = 0;
}

static void graph_idle_maybe(struct graph *g)
{
    if (g->dead && g->inflight == 0 && g->idle_cb) {
        env_cb *cb = g->idle_cb;
        g->idle_cb = NULL;
        env_post(&g->timer, 0, cb, g->idle_opaque);
    }
}

void graph_kill(struct graph *g, env_cb *idle_cb, void *opaque)
{
    ASSERT(!g->dead);
    g->dead = true;
    g->idle_cb = idle_cb;
    g->idle_opaque = opaque;
    graph_idle_maybe(g);
}

int node_new(struct graph *g, const struct node_driver *drv, const char *name,
             const void *opts, struct err *e, struct node **out)
{
    ASSERT(drv->open);
    ASSERT(strlen(name) < NODE_NAME_MAX);
    if (graph_node_find(g, name)) {
        return err_set(e, 0, 0, "node name '%s' is already used", name);
    }
    struct node *n = mem_alloc(sizeof(*n));
    n->drv = drv;
    n->graph = g;
    memcpy(n->name, name, strlen(name) + 1);
    n->state = mem_alloc(drv->state_size);
    TAILQ_INIT(&n->tracked);
    TAILQ_INIT(&n->waiting);
    int ret = drv->open(n, opts, e);
    if (ret < 0) {
        mem_free(n->state, drv->state_size);
        mem_free(n, sizeof(*n));
        return ret;
    }
    ASSERT(n->length % NODE_SECTOR == 0);
    if (g->n_nodes == g->cap_nodes) {
        size_t cap = g->cap_nodes ? 2 * g->cap_nodes : 4;
        g->nodes = mem_realloc(g->nodes, g->cap_nodes * sizeof(*g->nodes),
                               cap * sizeof(*g->nodes));
        g->cap_nodes = cap;
    }
    g->nodes[g->n_nodes++] = n;
    node_check(n);
    *out = n;
    return 0;
}

void node_child_attach(struct node *parent, struct node *child, enum node_role role)
{
    ASSERT(parent->n_children < NODE_CHILDREN_MAX);
    ASSERT(child->graph == parent->graph);
    ASSERT(child != parent);
    parent->children[parent->n_children].node = child;
    parent->children[parent->n_children].role = role;
    parent->n_children++;
}

void node_child_detach(struct node *parent, size_t slot)
{
    ASSERT(slot < parent->n_children);
    memmove(&parent->children[slot], &parent->children[slot + 1],
            (parent->n_children - slot - 1) * sizeof(parent->children[0]));
    parent->n_children--;
}

struct node *node_child(const struct node *n, enum node_role role)
{
    for (size_t i = 0; i < n->n_children; i++) {
        if (n->children[i].role == role) {
            return n->children[i].node;
        }
    }
    return NULL;
}

struct node *graph_node_find(const struct graph *g, const char *name)
{
    for (size_t i = 0; i < g->n_nodes; i++) {
        if (strcmp(g->nodes[i]->name, name) == 0) {
            return g->nodes[i];
        }
    }
    return NULL;
}

/* Does @req have to wait for @other (submitted earlier, still tracked)? */
static bool req_blocked_by(const struct req *req, const struct req *other)
{
    if (req->ser_len == 0 && other->ser_len == 0) {
        return false;
    }
    uint64_t a = req->ser_len ? req->ser_offset : req->offset;
    uint64_t alen = req->ser_len ? req->ser_len : req->len;
    uint64_t b = other->ser_len ? other->ser_offset : other->offset;
    uint64_t blen = other->ser_len ? other->ser_len : other->len;
    return ranges_overlap(a, alen, b, blen);
}

static bool req_blocked(const struct req *req)
{
    if (req->ser_len == 0 && req->node->n_serialising == 0) {
        return false; /* only serialising ranges block: none here (the common case) */
    }
    const struct req *other;
    TAILQ_FOREACH(other, &req->node->tracked, link) {
        if (other->seq > req->seq) {
            break; /* later requests never block earlier ones */
        }
        if (req_blocked_by(req, other)) {
            return true;
        }
    }
    /* Earlier requests still waiting are not tracked yet but come first. */
    TAILQ_FOREACH(other, &req->node->waiting, link) {
        if (other->seq >= req->seq) {
            break;
        }
        if (req_blocked_by(req, other)) {
            return true;
        }
    }
    return false;
}

static void req_dispatch(struct req *req)
{
    struct node *n = req->node;
    /* Keep the tracked list in submission order: a woken waiter may be
     * older than requests dispatched while it waited. */
    struct req *pos = TAILQ_LAST(&n->tracked, req_list);
    while (pos && pos->seq > req->seq) {
        pos = TAILQ_PREV(pos, req_list, link);
    }
    if (pos) {
        TAILQ_INSERT_AFTER(&n->tracked, pos, req, link);
    } else {
        TAILQ_INSERT_HEAD(&n->tracked, req, link);
    }
    ASSERT(n->drv->submit[req->op]);
    n->drv->submit[req->op](n, req);
}

static void node_waiters_wake(struct node *n)
{
    struct req *req = TAILQ_FIRST(&n->waiting);
    while (req) {
        struct req *next = TAILQ_NEXT(req, link);
        if (!req_blocked(req)) {
            TAILQ_REMOVE(&n->waiting, req, link);
            req_dispatch(req);
        }
        req = next;
    }
}

static bool op_dirties(enum node_op op)
{
    return op == NODE_OP_WRITE || op == NODE_OP_WRITE_ZEROES || op == NODE_OP_DISCARD;
}

static void req_mark_dirty(const struct req *req)
{
    if (req->node->dirty && op_dirties(req->op)) {
        dirty_mark(req->node->dirty, req->offset, req->len);
    }
}

static void req_done_ev(void *opaque)
{
    struct req *req = opaque;
    struct node *n = req->node;
    struct graph *g = n->graph;
    TAILQ_REMOVE(&n->tracked, req, link);
    if (req->ser_len) {
        ASSERT(n->n_serialising > 0);
        n->n_serialising--;
    }
    ASSERT(n->inflight > 0);
    ASSERT(g->inflight > 0);
    n->inflight--;
    g->inflight--;
    node_waiters_wake(n);
    bool late = node_mutant(n, NODE_MUTANT_DIRTY_LATE_MARK);
    if (!g->dirty_mark_early && !late) {
        req_mark_dirty(req); /* before the caller hears of it */
    }
    /* The request is no longer counted: its callback may find the node
     * quiesced and start an operator action (make-empty, commit). */
    req->cb(req->opaque, req->ret);
    if (!g->dirty_mark_early && late) {
        req_mark_dirty(req);
    }
    mem_free(req, sizeof(*req));
    graph_idle_maybe(g);
}

void req_complete(struct req *req, int ret)
{
    ASSERT(ret <= 0);
    req->ret = ret;
    const struct env_timer *t = &req->node->graph->timer;
    /* BUGGIFY: a completion may arrive late, after later ones. */
    uint64_t delay = env_buggify(t, "node: late completion") ? 50000 : 0;
    env_post(t, delay, req_done_ev, req);
}

static void req_check_range(const struct node *n, enum node_op op, uint64_t offset,
                            uint64_t len, bool data)
{
    if (op == NODE_OP_FLUSH) {
        ASSERT(len == 0);
        return;
    }
    ASSERT(offset % NODE_SECTOR == 0);
    ASSERT(len % NODE_SECTOR == 0);
    ASSERT(len > 0);
    ASSERT(offset <= n->length);
    ASSERT(len <= n->length - offset);
    if (op == NODE_OP_READ || op == NODE_OP_WRITE) {
        ASSERT(data); /* bytes, or a description */
    }
}

bool node_takes_desc(const struct node *n)
{
    return n->drv->takes_desc && n->drv->takes_desc(n);
}

void node_submit_desc(struct node *n, enum node_op op, uint64_t offset, uint64_t len,
                      uint8_t *buf, struct env_desc *desc, unsigned flags, env_io_cb *cb,
                      void *opaque)
{
    ASSERT(op < NODE_OP__COUNT);
    ASSERT(cb != NULL);
    if (desc) {
        ASSERT(node_takes_desc(n));
        ASSERT(op == NODE_OP_READ ? buf != NULL && desc->tags != NULL
                                  : op == NODE_OP_WRITE && buf == NULL);
        desc->described = false;
    }
    req_check_range(n, op, offset, len, buf || desc);
    struct graph *g = n->graph;
    struct req *req = mem_alloc(sizeof(*req));
    req->node = n;
    req->op = op;
    req->offset = offset;
    req->len = len;
    req->buf = buf;
    req->desc = desc;
    req->flags = flags;
    req->seq = g->next_seq++;
    req->cb = cb;
    req->opaque = opaque;
    n->inflight++;
    g->inflight++;
    if (g->dirty_mark_early && !g->dead) {
        req_mark_dirty(req);
    }
    if (g->dead) {
        TAILQ_INSERT_TAIL(&n->tracked, req, link);
        req_complete(req, BS_ECRASHED);
        return;
    }
    uint64_t align = n->drv->serialise_align ? n->drv->serialise_align(n, req) : 0;
    if (align) {
        ASSERT(is_pow2(align));
        req->ser_offset = align_down(offset, align);
        req->ser_len = align_up(offset + len, align) - req->ser_offset;
        n->n_serialising++;
    }
    if (req_blocked(req)) {
        TAILQ_INSERT_TAIL(&n->waiting, req, link);
        return;
    }
    req_dispatch(req);
}

void node_submit(struct node *n, enum node_op op, uint64_t offset, uint64_t len,
                 uint8_t *buf, unsigned flags, env_io_cb *cb, void *opaque)
{
    node_submit_desc(n, op, offset, len, buf, NULL, flags, cb, opaque);
}

int node_block_status(struct node *n, uint64_t offset, uint64_t len, uint64_t *pnum)
{
    ASSERT(offset < n->length);
    ASSERT(len > 0);
    len = min_u64(len, n->length - offset);
    int ret = n->drv->block_status(n, offset, len, pnum);
    if (ret >= 0) {
        ASSERT(*pnum > 0);
        ASSERT(*pnum <= len);
    }
    return ret;
}

int node_pread_sync(struct node *n, uint64_t offset, uint8_t *buf, uint64_t len)
{
    ASSERT(n->drv->pread_sync);
    ASSERT(offset + len <= n->length);
    return n->drv->pread_sync(n, offset, buf, len);
}

void node_check(const struct node *n)
{
    ASSERT(n->drv != NULL);
    ASSERT(n->graph != NULL);
    ASSERT(n->n_children <= NODE_CHILDREN_MAX);
    ASSERT(n->length % NODE_SECTOR == 0);
    uint64_t count = 0;
    uint64_t serialising = 0;
    uint64_t last = 0;
    const struct req *req;
    TAILQ_FOREACH(req, &n->tracked, link) {
        if (count > 0) {
            ASSERT(req->seq > last);
        }
        last = req->seq;
        count++;
        serialising += req->ser_len > 0;
    }
    TAILQ_FOREACH(req, &n->waiting, link) {
        count++;
        serialising += req->ser_len > 0;
    }
    ASSERT(count == n->inflight);
    ASSERT(serialising == n->n_serialising);
    if (n->drv->check) {
        n->drv->check(n);
    }
}

void graph_check(const struct graph *g)
{
    uint64_t sum = 0;
    for (size_t i = 0; i < g->n_nodes; i++) {
        ASSERT(g->nodes[i]->graph == g);
        sum += g->nodes[i]->inflight;
    }
    ASSERT(sum == g->inflight);
    ASSERT(g->n_nodes <= g->cap_nodes);
}
