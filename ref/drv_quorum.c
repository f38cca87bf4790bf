/*
 * drv_quorum: see drv_quorum.h. Method: a request copies the child list,
 * issues one child request per child (fifo reads: one at a time) and
 * decides once every child answered. Versions are found by comparing
 * buffers with each version's first buffer, which is what QEMU's SHA-256
 * grouping computes, without the hash. Described reads (ref/env.h): each
 * child answers in tags or bytes; two answers in tags compare by their
 * tags, anything else by bytes (an answer in tags made into bytes first).
 */
#include "drv_quorum.h"

#include <stdio.h>
#include <string.h>

struct quorum_state {
    unsigned index[NODE_CHILDREN_MAX];   /* children.N of n->children[i] */
    bool ignore[NODE_CHILDREN_MAX];
    unsigned next_index;
    unsigned threshold;
    enum quorum_read_pattern pattern;
    bool rewrite;
    bool blkverify;
    bool flush_vote_all;
    quorum_event_cb *on_event;
    void *opaque;
    struct quorum_stats stats;
};

struct qreq;

struct qio {
    struct qreq *qr;
    int ret;
    uint8_t *buf; /* quorum reads: this child's private copy */
    struct env_desc desc; /* quorum reads described: this child's answer */
};

struct qreq {
    struct req *req;
    struct node *n;
    unsigned n_ch;
    struct node *child[NODE_CHILDREN_MAX];
    unsigned index[NODE_CHILDREN_MAX];
    bool ignore[NODE_CHILDREN_MAX];
    struct qio io[NODE_CHILDREN_MAX];
    unsigned pending;
    uint64_t buf_len; /* of each qio's buf */
    unsigned next;  /* fifo: the child tried now */
    int ret;        /* the verdict, once voted (rewrites still pending) */
};

static struct quorum_state *qstate(const struct node *n)
{
    return n->state;
}

const char *quorum_event_name(enum quorum_event_kind k)
{
    static const char *const names[] = { "QUORUM_REPORT_BAD", "QUORUM_FAILURE",
                                         "QUORUM_VERIFY_MISMATCH" };
    return (unsigned)k < ARRAY_LEN(names) ? names[k] : "?";
}

/* ---- events ---- */

static void emit(struct qreq *qr, struct quorum_event *ev)
{
    struct quorum_state *s = qstate(qr->n);
    bool flush = qr->req->op == NODE_OP_FLUSH;
    ev->op = qr->req->op == NODE_OP_WRITE_ZEROES ? NODE_OP_WRITE : qr->req->op;
    ev->sector_num = flush ? 0 : qr->req->offset / NODE_SECTOR;
    ev->sectors_count = flush ? 0 : qr->req->len / NODE_SECTOR;
    s->stats.reports += ev->kind == QUORUM_REPORT_BAD;
    s->stats.failures += ev->kind == QUORUM_FAILURE;
    s->stats.mismatches += ev->kind == QUORUM_VERIFY_MISMATCH;
    if (s->on_event) {
        s->on_event(s->opaque, ev);
    }
}

static void report_bad(struct qreq *qr, unsigned slot, int error)
{
    struct quorum_event ev = { .kind = QUORUM_REPORT_BAD, .error = error,
                               .child = qr->index[slot],
                               .node_name = qr->child[slot]->name };
    emit(qr, &ev);
}

static void report_global(struct qreq *qr, enum quorum_event_kind kind, uint64_t mismatch)
{
    struct quorum_event ev = { .kind = kind, .child = UINT32_MAX,
                               .node_name = qr->n->name, .mismatch = mismatch };
    emit(qr, &ev);
}

/* Every failing child that does not ignore errors is reported. */
static void report_failures(struct qreq *qr)
{
    for (unsigned i = 0; i < qr->n_ch; i++) {
        if (qr->io[i].ret < 0 && !qr->ignore[i]) {
            report_bad(qr, i, qr->io[i].ret);
        }
    }
}

/* ---- votes ---- */

/* The version with the most votes. Versions are numbered in order of first
 * appearance; a tie goes to the newest (QEMU scans its newest-first list for
 * the first strictly greater count). */
static unsigned vote_winner(const struct node *n, const unsigned *counts, unsigned nv)
{
    unsigned best = 0;
    unsigned max = 0;
    if (node_mutant(n, NODE_MUTANT_QUORUM_TIE_LOW)) {
        for (unsigned v = 0; v < nv; v++) {
            if (counts[v] > max) {
                max = counts[v];
                best = v;
            }
        }
        return best;
    }
    for (unsigned v = nv; v-- > 0;) {
        if (counts[v] > max) {
            max = counts[v];
            best = v;
        }
    }
    return best;
}

/* The most frequent error code among children that failed (0 if none). */
static int vote_errors(const struct qreq *qr, bool all_codes)
{
    int codes[NODE_CHILDREN_MAX];
    unsigned counts[NODE_CHILDREN_MAX];
    unsigned nv = 0;
    for (unsigned i = 0; i < qr->n_ch; i++) {
        int ret = qr->io[i].ret;
        if (ret == 0 && !all_codes) {
            continue;
        }
        unsigned v = 0;
        while (v < nv && codes[v] != ret) {
            v++;
        }
        if (v == nv) {
            codes[nv] = ret;
            counts[nv++] = 0;
        }
        counts[v]++;
    }
    return nv ? codes[vote_winner(qr->n, counts, nv)] : 0;
}

static unsigned successes(const struct qreq *qr)
{
    unsigned k = 0;
    for (unsigned i = 0; i < qr->n_ch; i++) {
        k += qr->io[i].ret == 0;
    }
    return k;
}

/* ---- request life ---- */

static void qreq_finish(struct qreq *qr, int ret)
{
    for (unsigned i = 0; i < qr->n_ch; i++) {
        mem_free(qr->io[i].buf, qr->io[i].buf ? qr->buf_len : 0);
    }
    req_complete(qr->req, ret);
    mem_free(qr, sizeof(*qr));
}

static struct qreq *qreq_new(struct node *n, struct req *req)
{
    struct qreq *qr = mem_alloc(sizeof(*qr));
    qr->req = req;
    qr->n = n;
    qr->n_ch = (unsigned)n->n_children;
    for (unsigned i = 0; i < qr->n_ch; i++) {
        qr->child[i] = n->children[i].node;
        qr->index[i] = qstate(n)->index[i];
        qr->ignore[i] = qstate(n)->ignore[i];
        qr->io[i].qr = qr;
    }
    return qr;
}

static void quorum_read_voted(struct qreq *qr);

/* Flush: every child; an ignored child's error counts as success (the
 * seed); the seed era voted over every return code. */
static int flush_verdict(struct qreq *qr)
{
    struct quorum_state *s = qstate(qr->n);
    for (unsigned i = 0; i < qr->n_ch; i++) {
        if (qr->io[i].ret < 0 && qr->ignore[i]) {
            qr->io[i].ret = 0;
        }
    }
    report_failures(qr);
    if (s->flush_vote_all) {
        return vote_errors(qr, true);
    }
    return successes(qr) < s->threshold ? vote_errors(qr, false) : 0;
}

static int write_verdict(struct qreq *qr)
{
    report_failures(qr);
    unsigned need = node_mutant(qr->n, NODE_MUTANT_QUORUM_WRITE_ANY) ? 1
                                                                     : qstate(qr->n)->threshold;
    if (successes(qr) >= need) {
        return 0;
    }
    report_global(qr, QUORUM_FAILURE, 0);
    return vote_errors(qr, false);
}

static void child_done(void *opaque, int ret)
{
    struct qio *io = opaque;
    io->ret = ret;
    struct qreq *qr = io->qr;
    ASSERT(qr->pending > 0);
    if (--qr->pending > 0) {
        return;
    }
    if (qr->req->op != NODE_OP_READ) {
        qreq_finish(qr, qr->req->op == NODE_OP_FLUSH ? flush_verdict(qr) : write_verdict(qr));
    } else if (qr->ret != INT32_MIN) {
        qreq_finish(qr, qr->ret); /* the rewrites are done */
    } else {
        quorum_read_voted(qr);
    }
}

/* Described I/O passes through when every child takes it. */
static bool quorum_takes_desc(const struct node *n)
{
    for (size_t i = 0; i < n->n_children; i++) {
        if (!node_takes_desc(n->children[i].node)) {
            return false;
        }
    }
    return n->n_children > 0;
}

static void quorum_fanout(struct node *n, struct req *req)
{
    struct qreq *qr = qreq_new(n, req);
    qr->ret = INT32_MIN;
    qr->pending = qr->n_ch;
    /* A read's private copies: zeroed, or with room for the tags of a
     * described answer (then filled whole or answered in tags). */
    ASSERT(!req->desc || quorum_takes_desc(n)); /* no child came since it was asked */
    qr->buf_len = req->len + (req->desc ? req->len / NODE_SECTOR * sizeof(uint64_t) : 0);
    for (unsigned i = 0; i < qr->n_ch; i++) {
        struct qio *io = &qr->io[i];
        uint8_t *buf = req->buf;
        struct env_desc *desc = req->desc;
        if (req->op == NODE_OP_READ) {
            buf = io->buf = req->desc ? mem_alloc_raw(qr->buf_len) : mem_alloc(qr->buf_len);
            if (req->desc) {
                io->desc.tags = (uint64_t *)(void *)(buf + req->len);
                desc = &io->desc;
            }
        }
        node_submit_desc(qr->child[i], req->op, req->offset, req->len, buf, desc, req->flags,
                         child_done, io);
    }
}

/* A child's answer as bytes in io->buf (made from its tags if described). */
static void qio_bytes(const struct qreq *qr, struct qio *io)
{
    if (io->desc.described) {
        env_desc_bytes(&io->desc, qr->req->offset, qr->req->len, io->buf);
        io->desc.described = false;
    }
}

/* Did children @a and @b answer alike? Equal tags are equal bytes. */
static bool qio_same(const struct qreq *qr, struct qio *a, struct qio *b)
{
    if (a->desc.described && b->desc.described) {
        return memcmp(a->desc.tags, b->desc.tags,
                      qr->req->len / NODE_SECTOR * sizeof(uint64_t)) == 0;
    }
    qio_bytes(qr, a);
    qio_bytes(qr, b);
    return memcmp(a->buf, b->buf, qr->req->len) == 0;
}

/* Hand child @io's answer to the request: its tags to a described read
 * (as the child's storage answered them), else its bytes. */
static void qio_give(const struct qreq *qr, struct qio *io)
{
    struct req *req = qr->req;
    if (req->desc && io->desc.described) {
        memcpy(req->desc->tags, io->desc.tags, req->len / NODE_SECTOR * sizeof(uint64_t));
        req->desc->described = true;
        req->desc->make = io->desc.make;
        req->desc->make_ctx = io->desc.make_ctx;
        return;
    }
    qio_bytes(qr, io);
    memcpy(req->buf, io->buf, req->len);
}

/* ---- quorum reads ---- */

/* Group successful buffers into versions; ver[i] for child i (UINT32_MAX if
 * it failed), rep[v] the first child of version v. Returns the count. */
static unsigned read_versions(struct qreq *qr, unsigned *ver, unsigned *rep,
                              unsigned *counts)
{
    unsigned nv = 0;
    for (unsigned i = 0; i < qr->n_ch; i++) {
        ver[i] = UINT32_MAX;
        if (qr->io[i].ret < 0) {
            continue;
        }
        unsigned v = 0;
        while (v < nv && !qio_same(qr, &qr->io[rep[v]], &qr->io[i])) {
            v++;
        }
        if (v == nv) {
            rep[nv] = i;
            counts[nv++] = 0;
        }
        counts[v]++;
        ver[i] = v;
    }
    return nv;
}

static uint64_t first_difference(const uint8_t *a, const uint8_t *b, uint64_t len)
{
    uint64_t i = 0;
    while (i < len && a[i] == b[i]) {
        i++;
    }
    return i;
}

/* Report the losers, hand out the winner and, with rewrite-corrupted,
 * rewrite the losers before completing. */
static void read_winner(struct qreq *qr, const unsigned *ver, unsigned win)
{
    struct quorum_state *s = qstate(qr->n);
    struct qio *winner = NULL;
    for (unsigned i = 0; i < qr->n_ch; i++) {
        if (ver[i] == win && !winner) {
            winner = &qr->io[i];
        } else if (ver[i] != win && ver[i] != UINT32_MAX) {
            report_bad(qr, i, 0);
        }
    }
    qio_give(qr, winner);
    qr->ret = 0;
    if (!s->rewrite || node_mutant(qr->n, NODE_MUTANT_QUORUM_NO_REWRITE)) {
        qreq_finish(qr, 0);
        return;
    }
    /* There is a loser (the children disagreed); child_done finishes the
     * read after the last rewrite, whose completions are never inline.
     * Errors of the rewrite are ignored, as in QEMU. */
    qio_bytes(qr, winner);
    const uint8_t *data = winner->buf;
    for (unsigned i = 0; i < qr->n_ch; i++) {
        if (ver[i] != win && ver[i] != UINT32_MAX) {
            qr->pending++;
            s->stats.rewrites++;
            node_write(qr->child[i], qr->req->offset, qr->req->len, data, 0, child_done,
                       &qr->io[i]);
        }
    }
    ASSERT(qr->pending > 0);
}

static void quorum_read_voted(struct qreq *qr)
{
    struct quorum_state *s = qstate(qr->n);
    report_failures(qr);
    if (successes(qr) < s->threshold) {
        int ret = vote_errors(qr, false);
        report_global(qr, QUORUM_FAILURE, 0);
        qreq_finish(qr, ret);
        return;
    }
    unsigned ver[NODE_CHILDREN_MAX], rep[NODE_CHILDREN_MAX], counts[NODE_CHILDREN_MAX];
    unsigned nv = read_versions(qr, ver, rep, counts);
    if (nv == 1) { /* QEMU's fast path: everybody agrees, no events */
        qio_give(qr, &qr->io[rep[0]]);
        qreq_finish(qr, 0);
        return;
    }
    s->stats.votes++;
    if (s->blkverify) {
        qio_bytes(qr, &qr->io[rep[0]]);
        qio_bytes(qr, &qr->io[rep[1]]);
        report_global(qr, QUORUM_VERIFY_MISMATCH,
                      qr->req->offset + first_difference(qr->io[rep[0]].buf,
                                                         qr->io[rep[1]].buf, qr->req->len));
        qreq_finish(qr, -EIO);
        return;
    }
    unsigned win = vote_winner(qr->n, counts, nv);
    unsigned need = s->threshold - node_mutant(qr->n, NODE_MUTANT_QUORUM_THRESHOLD);
    if (counts[win] < need) {
        report_global(qr, QUORUM_FAILURE, 0);
        qreq_finish(qr, -EIO);
        return;
    }
    read_winner(qr, ver, win);
}

/* ---- fifo reads ---- */

static void fifo_done(void *opaque, int ret);

static void fifo_try(struct qreq *qr)
{
    node_submit_desc(qr->child[qr->next], NODE_OP_READ, qr->req->offset, qr->req->len,
                     qr->req->buf, qr->req->desc, 0, fifo_done, &qr->io[qr->next]);
}

static void fifo_done(void *opaque, int ret)
{
    struct qio *io = opaque;
    struct qreq *qr = io->qr;
    io->ret = ret;
    if (ret == 0) {
        qreq_finish(qr, 0);
        return;
    }
    if (!qr->ignore[qr->next]) {
        report_bad(qr, qr->next, ret);
    }
    if (++qr->next == qr->n_ch) {
        qreq_finish(qr, ret); /* the last child's error */
        return;
    }
    fifo_try(qr);
}

/* ---- node driver ---- */

static void quorum_read(struct node *n, struct req *req)
{
    if (qstate(n)->pattern == QUORUM_READ_FIFO) {
        struct qreq *qr = qreq_new(n, req);
        fifo_try(qr);
        return;
    }
    quorum_fanout(n, req);
}

static void quorum_discard(struct node *n, struct req *req)
{
    (void)n;
    req_complete(req, 0); /* no discard in QEMU's quorum: the block layer says 0 */
}

static int open_check(const struct drv_quorum_opts *o, const char *name, struct err *e)
{
    if (o->n_children < 1 || o->n_children > NODE_CHILDREN_MAX) {
        return err_set(e, 0, 0, "quorum '%s': needs 1 to %u children, got %u", name,
                       NODE_CHILDREN_MAX, o->n_children);
    }
    if (o->threshold < 1) {
        return err_set(e, 0, 0, "quorum '%s': Parameter 'vote-threshold' expects a value "
                       ">= 1", name);
    }
    if (o->threshold > o->n_children) {
        return err_set(e, 0, 0, "quorum '%s': threshold may not exceed children count",
                       name);
    }
    bool quorum = o->read_pattern == QUORUM_READ_QUORUM;
    if (quorum && o->blkverify && (o->n_children != 2 || o->threshold != 2)) {
        return err_set(e, 0, 0, "quorum '%s': blkverify=on can only be set if there are "
                       "exactly two files and vote-threshold is 2", name);
    }
    if (quorum && o->blkverify && o->rewrite_corrupted) {
        return err_set(e, 0, 0, "quorum '%s': rewrite-corrupted=on cannot be used with "
                       "blkverify=on", name);
    }
    return 0;
}

/* All children the same length, except ignored children of length 0. */
static int open_length(const struct drv_quorum_opts *o, const char *name, uint64_t *len,
                       struct err *e)
{
    bool seen = false;
    for (unsigned i = 0; i < o->n_children; i++) {
        uint64_t l = o->children[i]->length;
        if (l == 0 && o->ignore_errors[i]) {
            continue;
        }
        if (seen && l != *len) {
            return err_set(e, 0, 0, "quorum '%s': children differ in length (%s is %llu "
                           "bytes, %s %llu)", name, o->children[0]->name,
                           (unsigned long long)*len, o->children[i]->name,
                           (unsigned long long)l);
        }
        *len = l;
        seen = true;
    }
    if (!seen) {
        return err_set(e, 0, 0, "quorum '%s': no child has a length yet", name);
    }
    return 0;
}

static int quorum_open(struct node *n, const void *opts, struct err *e)
{
    const struct drv_quorum_opts *o = opts;
    if (!o) {
        return err_set(e, 0, 0, "quorum '%s' needs options", n->name);
    }
    TRY(open_check(o, n->name, e));
    uint64_t len = 0;
    TRY(open_length(o, n->name, &len, e));
    struct quorum_state *s = qstate(n);
    bool quorum = o->read_pattern == QUORUM_READ_QUORUM;
    s->threshold = o->threshold;
    s->pattern = o->read_pattern;
    s->rewrite = quorum && o->rewrite_corrupted;
    s->blkverify = quorum && o->blkverify;
    s->flush_vote_all = o->flush_vote_all;
    s->on_event = o->on_event;
    s->opaque = o->opaque;
    for (unsigned i = 0; i < o->n_children; i++) {
        node_child_attach(n, o->children[i], NODE_ROLE_CHILD);
        s->index[i] = i;
        s->ignore[i] = o->ignore_errors[i];
    }
    s->next_index = o->n_children;
    n->length = len;
    return 0;
}

int quorum_child_add(struct node *n, struct node *child, bool ignore_errors, struct err *e)
{
    struct quorum_state *s = qstate(n);
    ASSERT(n->drv == &drv_quorum);
    if (s->blkverify) {
        return err_set(e, 0, 0, "Cannot add a child to a quorum in blkverify mode");
    }
    if (n->n_children == NODE_CHILDREN_MAX) {
        return err_set(e, 0, 0, "quorum '%s' already has %u children", n->name,
                       NODE_CHILDREN_MAX);
    }
    if (child->length != n->length && !(child->length == 0 && ignore_errors)) {
        return err_set(e, 0, 0, "cannot add '%s' (%llu bytes) to quorum '%s' (%llu bytes)",
                       child->name, (unsigned long long)child->length, n->name,
                       (unsigned long long)n->length);
    }
    for (size_t i = 0; i < n->n_children; i++) {
        if (n->children[i].node == child) {
            return err_set(e, 0, 0, "'%s' is already a child of '%s'", child->name, n->name);
        }
    }
    size_t slot = n->n_children;
    node_child_attach(n, child, NODE_ROLE_CHILD);
    s->index[slot] = s->next_index++;
    s->ignore[slot] = ignore_errors;
    return 0;
}

int quorum_child_del(struct node *n, const char *name, struct err *e)
{
    struct quorum_state *s = qstate(n);
    unsigned slot = 0;
    while (slot < n->n_children) {
        char cname[32];
        snprintf(cname, sizeof(cname), "children.%u", s->index[slot]);
        if (strcmp(cname, name) == 0) {
            break;
        }
        slot++;
    }
    if (slot == n->n_children) {
        return err_set(e, 0, 0, "Node '%s' does not have child '%s'", n->name, name);
    }
    if (n->n_children <= s->threshold) {
        return err_set(e, 0, 0, "The number of children cannot be lower than the vote "
                       "threshold %u", s->threshold);
    }
    if (s->index[slot] == s->next_index - 1) {
        s->next_index--;
    }
    node_child_detach(n, slot);
    size_t rest = n->n_children - slot;
    memmove(&s->index[slot], &s->index[slot + 1], rest * sizeof(s->index[0]));
    memmove(&s->ignore[slot], &s->ignore[slot + 1], rest * sizeof(s->ignore[0]));
    return 0;
}

unsigned quorum_child_index(const struct node *n, unsigned slot)
{
    ASSERT(slot < n->n_children);
    return qstate(n)->index[slot];
}

const struct quorum_stats *quorum_stats(const struct node *n)
{
    ASSERT(n->drv == &drv_quorum);
    return &qstate(n)->stats;
}

static int quorum_block_status(struct node *n, uint64_t offset, uint64_t len, uint64_t *pnum)
{
    uint64_t zero = len;
    uint64_t data = 0;
    for (size_t i = 0; i < n->n_children; i++) {
        uint64_t p = 0;
        int ret = node_block_status(n->children[i].node, offset, len, &p);
        if (ret < 0) {
            data = len; /* an error counts as data */
        } else if (ret & NODE_BS_ZERO) {
            zero = min_u64(zero, p);
        } else {
            data = max_u64(data, p);
        }
    }
    *pnum = data ? data : zero;
    return data ? NODE_BS_DATA : NODE_BS_ZERO;
}

static void quorum_check(const struct node *n)
{
    const struct quorum_state *s = qstate(n);
    ASSERT(n->n_children >= 1);
    ASSERT(s->threshold >= 1);
    for (size_t i = 0; i < n->n_children; i++) {
        ASSERT(n->children[i].role == NODE_ROLE_CHILD);
        ASSERT(s->index[i] < s->next_index);
    }
}

const struct node_driver drv_quorum = {
    .name = "quorum",
    .state_size = sizeof(struct quorum_state),
    .open = quorum_open,
    .submit = {
        [NODE_OP_READ] = quorum_read,
        [NODE_OP_WRITE] = quorum_fanout,
        [NODE_OP_FLUSH] = quorum_fanout,
        [NODE_OP_DISCARD] = quorum_discard,
        [NODE_OP_WRITE_ZEROES] = quorum_fanout,
    },
    .block_status = quorum_block_status,
    .takes_desc = quorum_takes_desc,
    .check = quorum_check,
};

const struct planted_bug drv_quorum_bugs[] = {
    { "quorum-threshold", NODE_MUTANT_QUORUM_THRESHOLD,
      "quorum: a read version wins with one vote fewer than vote-threshold" },
    { "quorum-write-any", NODE_MUTANT_QUORUM_WRITE_ANY,
      "quorum: a write succeeds when any child succeeded" },
    { "quorum-no-rewrite", NODE_MUTANT_QUORUM_NO_REWRITE,
      "quorum: rewrite-corrupted repairs nothing" },
    { "quorum-tie-low", NODE_MUTANT_QUORUM_TIE_LOW,
      "quorum: ties between versions go to the lowest child index" },
};

const size_t drv_quorum_bugs_count = ARRAY_LEN(drv_quorum_bugs);
