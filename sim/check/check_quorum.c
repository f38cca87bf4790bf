/*
 * check_quorum: see check_quorum.h. Method: at each quorum completion,
 * gather the children's answers for that request from the log, compute
 * what the model says (result, data hash, reported children, failure
 * event, rewrites), compare, and drop what was used.
 */
#include "check_quorum.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#define CQ_MAX NODE_CHILDREN_MAX

void check_quorum_init(struct check_quorum *c, unsigned n, unsigned threshold, bool fifo,
                       bool rewrite, unsigned ignore_mask)
{
    memset(c, 0, sizeof(*c));
    ASSERT(n >= 1 && n <= CQ_MAX);
    c->n = n;
    c->threshold = threshold;
    c->fifo = fifo;
    c->rewrite = rewrite && !fifo;
    c->ignore_mask = ignore_mask;
}

void check_quorum_fini(struct check_quorum *c)
{
    mem_free(c->io, c->cap_io * sizeof(*c->io));
    mem_free(c->ev, c->cap_ev * sizeof(*c->ev));
    memset(c, 0, sizeof(*c));
}

void check_quorum_reset(struct check_quorum *c)
{
    c->n_io = 0;
    c->n_ev = 0;
}

json_t *check_quorum_json(const struct check_quorum *c)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:i, s:b}", "judged", (json_int_t)c->judged,
                          "outvoted", (json_int_t)c->votes, "repairs", (json_int_t)c->repairs,
                          "threshold", (int)c->threshold, "failed", c->failed);
    if (c->failed) {
        json_object_set_new(o, "first", check_violation_json(&c->first));
    }
    return o;
}

void check_quorum_check(const struct check_quorum *c)
{
    ASSERT(c->n >= 1 && c->n <= CQ_MAX);
    ASSERT(c->threshold >= 1 && c->threshold <= c->n);
    ASSERT(!(c->fifo && c->rewrite));
    ASSERT(c->ignore_mask >> c->n == 0);
    ASSERT(c->n_io <= c->cap_io && c->n_ev <= c->cap_ev);
    ASSERT((c->io == NULL) == (c->cap_io == 0) && (c->ev == NULL) == (c->cap_ev == 0));
    for (size_t i = 0; i < c->n_io; i++) {
        ASSERT(c->io[i].child < c->n);
    }
    ASSERT(c->votes <= c->judged);
    ASSERT(!c->failed || strcmp(c->first.property, "quorum") == 0);
}

static void *grow(void *p, size_t *cap, size_t n, size_t elem)
{
    if (n < *cap) {
        return p;
    }
    size_t ncap = *cap ? 2 * *cap : 16;
    p = mem_realloc(p, *cap * elem, ncap * elem);
    *cap = ncap;
    return p;
}

void check_quorum_child(struct check_quorum *c, unsigned child, enum node_op op,
                        uint64_t offset, uint64_t len, int ret, uint64_t hash)
{
    c->io = grow(c->io, &c->cap_io, c->n_io, sizeof(*c->io));
    struct cq_io *io = &c->io[c->n_io++];
    io->child = child;
    io->op = op;
    io->offset = op == NODE_OP_FLUSH ? 0 : offset;
    io->len = op == NODE_OP_FLUSH ? 0 : len;
    io->ret = ret;
    io->hash = hash;
}

void check_quorum_event(struct check_quorum *c, const struct quorum_event *ev)
{
    c->ev = grow(c->ev, &c->cap_ev, c->n_ev, sizeof(*c->ev));
    struct cq_ev *e = &c->ev[c->n_ev++];
    e->kind = ev->kind;
    e->op = ev->op;
    e->error = ev->error;
    e->child = ev->child;
    e->offset = ev->sector_num * NODE_SECTOR;
    e->len = ev->sectors_count * NODE_SECTOR;
}

/* ---- what the children said ---- */

struct cq_answer {
    bool asked;
    int ret;
    uint64_t hash;
    bool rewritten;        /* got a write of the request's range during a read */
    uint64_t rewrite_hash;
};

static bool io_matches(const struct cq_io *io, enum node_op op, uint64_t off, uint64_t len)
{
    return io->op == op && io->offset == off && io->len == len;
}

/* Take the children's answers to this request out of the log. */
static void gather(struct check_quorum *c, enum node_op op, uint64_t off, uint64_t len,
                   struct cq_answer *ans)
{
    memset(ans, 0, CQ_MAX * sizeof(*ans));
    size_t keep = 0;
    for (size_t i = 0; i < c->n_io; i++) {
        const struct cq_io *io = &c->io[i];
        if (io->child < c->n && io_matches(io, op, off, len)) {
            ans[io->child].asked = true;
            ans[io->child].ret = io->ret;
            ans[io->child].hash = io->hash;
        } else if (io->child < c->n && op == NODE_OP_READ &&
                   io_matches(io, NODE_OP_WRITE, off, len)) {
            ans[io->child].rewritten = true;
            ans[io->child].rewrite_hash = io->hash;
        } else {
            c->io[keep++] = *io;
        }
    }
    c->n_io = keep;
}

/* What the quorum emitted for this request. */
struct cq_seen {
    bool reported[CQ_MAX];
    int error[CQ_MAX];
    unsigned failures;
};

static void gather_events(struct check_quorum *c, enum node_op op, uint64_t off, uint64_t len,
                          struct cq_seen *seen)
{
    memset(seen, 0, sizeof(*seen));
    enum node_op evop = op == NODE_OP_WRITE_ZEROES ? NODE_OP_WRITE : op;
    size_t keep = 0;
    for (size_t i = 0; i < c->n_ev; i++) {
        const struct cq_ev *e = &c->ev[i];
        bool mine = e->op == evop && e->offset == off && e->len == len;
        if (mine && e->kind == QUORUM_REPORT_BAD && e->child < c->n) {
            seen->reported[e->child] = true;
            seen->error[e->child] = e->error;
        } else if (mine && e->kind == QUORUM_FAILURE) {
            seen->failures++;
        } else if (!mine || e->kind != QUORUM_VERIFY_MISMATCH) {
            c->ev[keep++] = c->ev[i];
        }
    }
    c->n_ev = keep;
}

/* ---- the model ---- */

struct cq_expect {
    int ret;
    bool has_hash;
    uint64_t hash;
    bool reported[CQ_MAX];
    int error[CQ_MAX];
    bool failure;
    bool rewrite[CQ_MAX];
    bool split; /* the successful children disagreed */
};

/* Groups of equal keys: the biggest wins; equal sizes go to the group whose
 * first member has the highest child index. Returns the group's key. */
static uint64_t biggest_group(const uint64_t *key, const bool *member, unsigned n,
                              unsigned *size)
{
    uint64_t best = 0;
    unsigned best_size = 0;
    for (unsigned i = 0; i < n; i++) {
        bool first = member[i];
        for (unsigned j = 0; j < i && first; j++) {
            first = !(member[j] && key[j] == key[i]);
        }
        if (!first) {
            continue;
        }
        unsigned k = 0;
        for (unsigned j = i; j < n; j++) {
            k += member[j] && key[j] == key[i];
        }
        if (k >= best_size) { /* later first member wins a tie */
            best = key[i];
            best_size = k;
        }
    }
    *size = best_size;
    return best;
}

static bool ignored(const struct check_quorum *c, unsigned i)
{
    return (c->ignore_mask >> i) & 1;
}

/* Failed children are reported (unless they ignore errors); returns the
 * number of successes and the error vote in *err. */
static unsigned count_results(const struct check_quorum *c, const struct cq_answer *ans,
                              struct cq_expect *x, int *err)
{
    uint64_t codes[CQ_MAX] = { 0 };
    bool failed[CQ_MAX] = { false };
    unsigned ok = 0;
    for (unsigned i = 0; i < c->n; i++) {
        failed[i] = ans[i].ret < 0;
        codes[i] = (uint64_t)(int64_t)ans[i].ret;
        ok += !failed[i];
        if (failed[i] && !ignored(c, i)) {
            x->reported[i] = true;
            x->error[i] = ans[i].ret;
        }
    }
    unsigned size;
    *err = (int)(int64_t)biggest_group(codes, failed, c->n, &size);
    return ok;
}

static void expect_quorum_read(const struct check_quorum *c, const struct cq_answer *ans,
                               struct cq_expect *x)
{
    int err;
    unsigned ok = count_results(c, ans, x, &err);
    if (ok < c->threshold) {
        x->ret = err;
        x->failure = true;
        return;
    }
    uint64_t keys[CQ_MAX] = { 0 };
    bool good[CQ_MAX] = { false };
    for (unsigned i = 0; i < c->n; i++) {
        keys[i] = ans[i].hash;
        good[i] = ans[i].ret == 0;
    }
    unsigned votes;
    uint64_t win = biggest_group(keys, good, c->n, &votes);
    if (votes < c->threshold) {
        x->ret = -EIO;
        x->failure = true;
        return;
    }
    x->has_hash = true;
    x->hash = win;
    for (unsigned i = 0; i < c->n; i++) {
        bool loser = good[i] && keys[i] != win;
        x->split |= loser;
        x->reported[i] |= loser;
        x->rewrite[i] = loser && c->rewrite;
    }
}

static void expect_fifo_read(const struct check_quorum *c, const struct cq_answer *ans,
                             struct cq_expect *x)
{
    x->ret = -EIO;
    for (unsigned i = 0; i < c->n; i++) {
        x->ret = ans[i].ret;
        if (ans[i].ret == 0) {
            x->has_hash = true;
            x->hash = ans[i].hash;
            return;
        }
        if (!ignored(c, i)) {
            x->reported[i] = true;
            x->error[i] = ans[i].ret;
        }
    }
}

static void expect_other(const struct check_quorum *c, enum node_op op, struct cq_answer *ans,
                         struct cq_expect *x)
{
    if (op == NODE_OP_FLUSH) {
        for (unsigned i = 0; i < c->n; i++) {
            ans[i].ret = ignored(c, i) ? 0 : ans[i].ret;
        }
    }
    int err;
    unsigned ok = count_results(c, ans, x, &err);
    if (ok < c->threshold) {
        x->ret = err;
        x->failure = op != NODE_OP_FLUSH;
    }
}

/* ---- judging ---- */

static void describe(const struct check_quorum *c, const struct cq_answer *ans, char *buf,
                     size_t size)
{
    size_t at = 0;
    buf[0] = '\0';
    for (unsigned i = 0; i < c->n && at < size; i++) {
        int n;
        if (!ans[i].asked) {
            n = snprintf(buf + at, size - at, "%sc%u -", i ? ", " : "", i);
        } else if (ans[i].ret < 0) {
            n = snprintf(buf + at, size - at, "%sc%u %s", i ? ", " : "", i,
                         blocksim_strerror(ans[i].ret));
        } else {
            n = snprintf(buf + at, size - at, "%sc%u ok#%08" PRIx64, i ? ", " : "", i,
                         ans[i].hash >> 32);
        }
        at += n > 0 ? (size_t)n : 0;
    }
}

static const char *ret_text(int ret)
{
    return ret == 0 ? "success" : blocksim_strerror(ret);
}

/* The first difference between model and quorum, as text; "" if none. */
static void compare(const struct check_quorum *c, const struct cq_expect *x, int ret,
                    uint64_t hash, const struct cq_seen *seen, const struct cq_answer *ans,
                    char *why, size_t size)
{
    why[0] = '\0';
    if (ret != x->ret) {
        snprintf(why, size, "returned %s, the vote says %s", ret_text(ret), ret_text(x->ret));
    } else if (ret == 0 && x->has_hash && hash != x->hash) {
        snprintf(why, size, "returned data #%08" PRIx64 ", the winning version is #%08"
                 PRIx64, hash >> 32, x->hash >> 32);
    } else if ((seen->failures > 0) != x->failure) {
        snprintf(why, size, "%s QUORUM_FAILURE", x->failure ? "did not emit" : "emitted");
    }
    for (unsigned i = 0; i < c->n && !why[0]; i++) {
        if (seen->reported[i] != x->reported[i]) {
            snprintf(why, size, "%s children.%u", x->reported[i] ? "did not report" :
                     "reported", i);
        } else if (x->reported[i] && seen->error[i] != x->error[i]) {
            snprintf(why, size, "reported children.%u with %s, not %s", i,
                     blocksim_strerror(seen->error[i]), blocksim_strerror(x->error[i]));
        } else if (x->rewrite[i] && (!ans[i].rewritten || ans[i].rewrite_hash != x->hash)) {
            snprintf(why, size, "did not rewrite children.%u with the winning version", i);
        } else if (!x->rewrite[i] && ans[i].rewritten) {
            snprintf(why, size, "rewrote children.%u, which was not in a losing version", i);
        }
    }
}

static bool fail(struct check_quorum *c, const char *what, const char *why,
                 const struct cq_answer *ans, unsigned line, uint64_t op_index,
                 uint64_t now_ns)
{
    if (c->failed) {
        return false;
    }
    c->failed = true;
    char kids[160];
    describe(c, ans, kids, sizeof(kids));
    struct violation *v = &c->first;
    check_violation_begin(v, "quorum");
    snprintf(v->msg, sizeof(v->msg), "%.60s (children answered: %.140s; threshold %u): the "
             "quorum %.60s", what, kids, c->threshold, why);
    v->line = line;
    v->op_index = op_index;
    v->time_ns = now_ns;
    return false;
}

bool check_quorum_done(struct check_quorum *c, enum node_op op, uint64_t offset, uint64_t len,
                       int ret, uint64_t hash, unsigned line, uint64_t op_index,
                       uint64_t now_ns)
{
    if (op == NODE_OP_DISCARD) {
        return true; /* the children never see it */
    }
    if (op == NODE_OP_FLUSH) {
        offset = len = 0;
    }
    struct cq_answer ans[CQ_MAX];
    struct cq_seen seen;
    gather(c, op, offset, len, ans);
    gather_events(c, op, offset, len, &seen);
    c->judged++;
    char what[96];
    snprintf(what, sizeof(what), "%s %" PRIu64 "+%" PRIu64, node_op_name(op), offset, len);
    for (unsigned i = 0; i < c->n; i++) {
        bool must = !(c->fifo && op == NODE_OP_READ);
        if (must && !ans[i].asked) {
            return fail(c, what, "never asked this child", ans, line, op_index, now_ns);
        }
        c->repairs += ans[i].rewritten;
    }
    struct cq_expect x = { 0 };
    if (op == NODE_OP_READ && c->fifo) {
        expect_fifo_read(c, ans, &x);
    } else if (op == NODE_OP_READ) {
        expect_quorum_read(c, ans, &x);
    } else {
        expect_other(c, op, ans, &x);
    }
    c->votes += x.split;
    hash = ret == 0 ? hash : 0;
    char why[200];
    compare(c, &x, ret, hash, &seen, ans, why, sizeof(why));
    check_quorum_check(c);
    return why[0] ? fail(c, what, why, ans, line, op_index, now_ns) : true;
}
