/*
 * check_bitmap: see check_bitmap.h.
 *
 * Method: every model bitmap is a byte per group. Operations are decided
 * by re-stating QEMU's rules (lookup, then the busy / inconsistent checks
 * in the order each QMP command makes them) and applied only when
 * accepted. Marking, merging and reclaiming work on byte ranges, so a
 * merge between granularities is "every destination group that any dirty
 * source byte falls in". The durable image is a list of stored entries,
 * each either clean (with a copy of the bits) or in use.
 */
#include "check_bitmap.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

struct cb_map {
    char name[DIRTY_NAME_MAX];
    uint64_t gran;
    bool enabled;
    bool persistent;
    bool inconsistent;
    bool busy;          /* frozen: has a successor */
    bool succ_enabled;
    uint8_t *bits;      /* one byte per group */
    uint8_t *succ;      /* the successor's, while frozen */
};

struct cb_stored {
    char name[DIRTY_NAME_MAX];
    uint64_t gran;
    bool in_use;
    bool enabled;
    uint8_t *bits;      /* clean entries: the stored bits */
};

static uint64_t groups(const struct check_bitmap *c, uint64_t gran)
{
    return (c->size + gran - 1) / gran;
}

void check_bitmap_init(struct check_bitmap *c, uint64_t size)
{
    memset(c, 0, sizeof(*c));
    c->size = size;
}

static void map_free(const struct check_bitmap *c, struct cb_map *m)
{
    mem_free(m->bits, groups(c, m->gran));
    mem_free(m->succ, m->succ ? groups(c, m->gran) : 0);
}

static void maps_clear(struct check_bitmap *c)
{
    for (size_t i = 0; i < c->n; i++) {
        map_free(c, &c->maps[i]);
    }
    c->n = 0;
}

static void stored_clear(struct check_bitmap *c)
{
    for (size_t i = 0; i < c->n_stored; i++) {
        struct cb_stored *s = &c->stored[i];
        mem_free(s->bits, s->bits ? groups(c, s->gran) : 0);
    }
    c->n_stored = 0;
}

void check_bitmap_fini(struct check_bitmap *c)
{
    maps_clear(c);
    stored_clear(c);
    mem_free(c->maps, c->cap * sizeof(*c->maps));
    mem_free(c->stored, c->cap_stored * sizeof(*c->stored));
}

json_t *check_bitmap_json(const struct check_bitmap *c)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:I, s:b}", "bitmaps", (json_int_t)c->n,
                          "stored", (json_int_t)c->n_stored, "coverage_checks",
                          (json_int_t)c->checks, "explained_by_faults",
                          (json_int_t)c->explained, "failed", c->failed);
    if (c->failed) {
        json_object_set_new(o, "first", check_violation_json(&c->first));
    }
    return o;
}

void check_bitmap_check(const struct check_bitmap *c)
{
    ASSERT(c->n <= c->cap && c->n_stored <= c->cap_stored);
    ASSERT(!c->failed || c->first.property[0] != '\0');
    for (size_t i = 0; i < c->n; i++) {
        const struct cb_map *m = &c->maps[i];
        ASSERT(is_pow2(m->gran) && m->bits != NULL);
        ASSERT((m->succ != NULL) == m->busy);       /* a successor only while frozen */
        ASSERT(!m->inconsistent || !m->enabled);    /* never recording into untrusted bits */
        for (size_t k = 0; k < i; k++) {
            ASSERT(strcmp(c->maps[k].name, m->name) != 0);
        }
        for (uint64_t g = 0; g < groups(c, m->gran); g++) {
            ASSERT(m->bits[g] <= 1 && (!m->succ || m->succ[g] <= 1));
        }
    }
    for (size_t i = 0; i < c->n_stored; i++) {
        const struct cb_stored *s = &c->stored[i];
        ASSERT(is_pow2(s->gran));
        ASSERT(!s->in_use || s->bits == NULL); /* an entry in use stores no bits */
    }
}

static void fail(struct check_bitmap *c, const char *property, const struct cb_where *at,
                 const char *fmt, ...) PRINTF_LIKE(4, 5);

static void fail(struct check_bitmap *c, const char *property, const struct cb_where *at,
                 const char *fmt, ...)
{
    if (c->failed) {
        return;
    }
    c->failed = true;
    struct violation *v = &c->first;
    check_violation_begin(v, property);
    v->line = at->line;
    v->time_ns = at->time_ns;
    v->op_index = at->op_index;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->msg, sizeof(v->msg), fmt, ap);
    va_end(ap);
}

static struct cb_map *find(const struct check_bitmap *c, const char *name)
{
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->maps[i].name, name) == 0) {
            return &c->maps[i];
        }
    }
    return NULL;
}

/* Set the groups of @gran covering [offset, offset + len) in @bits. */
static void mark(const struct check_bitmap *c, uint8_t *bits, uint64_t gran, uint64_t offset,
                 uint64_t len)
{
    ASSERT(offset + len <= c->size);
    for (uint64_t g = offset / gran; len && g <= (offset + len - 1) / gran; g++) {
        bits[g] = 1;
    }
}

/* dst |= src across granularities. */
static void merge(const struct check_bitmap *c, uint8_t *dst, uint64_t dgran,
                  const uint8_t *src, uint64_t sgran)
{
    for (uint64_t g = 0; g < groups(c, sgran); g++) {
        if (src[g]) {
            mark(c, dst, dgran, g * sgran, min_u64(sgran, c->size - g * sgran));
        }
    }
}

static struct cb_map *add(struct check_bitmap *c, const char *name, uint64_t gran)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? 2 * c->cap : 8;
        c->maps = mem_realloc(c->maps, c->cap * sizeof(*c->maps), cap * sizeof(*c->maps));
        c->cap = cap;
    }
    struct cb_map *m = &c->maps[c->n++];
    memset(m, 0, sizeof(*m));
    snprintf(m->name, sizeof(m->name), "%s", name);
    m->gran = gran;
    m->bits = mem_alloc(groups(c, gran));
    return m;
}

/* QEMU's lookup-and-check: busy, then inconsistent (no readonly images). */
static int lookup(const struct check_bitmap *c, const char *name, bool busy_ok,
                  bool inconsistent_ok, struct cb_map **out)
{
    struct cb_map *m = find(c, name);
    if (!m) {
        return -ENOENT;
    }
    if (!busy_ok && m->busy) {
        return -EBUSY;
    }
    if (!inconsistent_ok && m->inconsistent) {
        return -EINVAL;
    }
    *out = m;
    return 0;
}

static int apply_frozen(struct check_bitmap *c, const struct trace_bitmap *op)
{
    struct cb_map *m = find(c, op->name);
    if (!m) {
        return -ENOENT;
    }
    if (!m->succ) {
        return -EINVAL;
    }
    if (op->op == TRACE_BM_ABDICATE) {
        memcpy(m->bits, m->succ, groups(c, m->gran));
    } else {
        merge(c, m->bits, m->gran, m->succ, m->gran);
    }
    mem_free(m->succ, groups(c, m->gran));
    m->succ = NULL;
    m->enabled = m->succ_enabled;
    m->busy = false;
    return 0;
}

static int apply_remove(struct check_bitmap *c, const char *name)
{
    struct cb_map *m;
    TRY(lookup(c, name, false, true, &m));
    map_free(c, m);
    size_t i = (size_t)(m - c->maps);
    memmove(m, m + 1, (c->n - i - 1) * sizeof(*m));
    c->n--;
    return 0;
}

static int apply_merge(struct check_bitmap *c, const struct trace_bitmap *op)
{
    struct cb_map *dst;
    struct cb_map *src;
    TRY(lookup(c, op->name, false, false, &dst));
    TRY(lookup(c, op->src, false, false, &src));
    merge(c, dst->bits, dst->gran, src->bits, src->gran);
    return 0;
}

int check_bitmap_apply(struct check_bitmap *c, const struct trace_bitmap *op, uint64_t gran)
{
    struct cb_map *m;
    switch (op->op) {
    case TRACE_BM_ADD:
        if (find(c, op->name)) {
            return -EEXIST;
        }
        m = add(c, op->name, gran);
        m->enabled = !op->disabled;
        m->persistent = op->persistent;
        return 0;
    case TRACE_BM_REMOVE:
        return apply_remove(c, op->name);
    case TRACE_BM_MERGE:
        return apply_merge(c, op);
    case TRACE_BM_ABDICATE:
    case TRACE_BM_RECLAIM:
        return apply_frozen(c, op);
    default:
        break;
    }
    bool toggle = op->op == TRACE_BM_ENABLE || op->op == TRACE_BM_DISABLE;
    TRY(lookup(c, op->name, false, false, &m));
    if (op->op == TRACE_BM_CLEAR) {
        memset(m->bits, 0, groups(c, m->gran));
    } else if (toggle) {
        m->enabled = op->op == TRACE_BM_ENABLE;
    } else if (op->op == TRACE_BM_PERSIST) {
        m->persistent = true;
    } else {
        ASSERT(op->op == TRACE_BM_SUCCESSOR);
        m->succ = mem_alloc(groups(c, m->gran));
        m->succ_enabled = m->enabled;
        m->enabled = false;
        m->busy = true;
    }
    return 0;
}

void check_bitmap_reclaim_all(struct check_bitmap *c)
{
    for (size_t i = 0; i < c->n; i++) {
        if (c->maps[i].succ) {
            struct trace_bitmap op = { .op = TRACE_BM_RECLAIM };
            snprintf(op.name, sizeof(op.name), "%s", c->maps[i].name);
            ASSERT(apply_frozen(c, &op) == 0);
        }
    }
}

/* The first byte offset of a group of @real that covers [off, off+len)
 * badly, or -1: a clean group where the model says dirty. */
static int64_t first_clean(const struct bitmap *real, uint64_t offset, uint64_t len)
{
    uint64_t gran = bitmap_granularity(real);
    for (uint64_t g = offset / gran; len && g <= (offset + len - 1) / gran; g++) {
        if (!bitmap_get(real, g * gran)) {
            return (int64_t)(g * gran);
        }
    }
    return -1;
}

void check_bitmap_write_done(struct check_bitmap *c, const struct dirty_set *real,
                             uint64_t offset, uint64_t len, const struct cb_where *at)
{
    for (size_t i = 0; i < c->n; i++) {
        struct cb_map *m = &c->maps[i];
        const struct dirty_bitmap *b = dirty_find(real, m->name);
        bool on = m->enabled || (m->succ && m->succ_enabled);
        if (m->enabled) {
            mark(c, m->bits, m->gran, offset, len);
        }
        if (m->succ && m->succ_enabled) {
            mark(c, m->succ, m->gran, offset, len);
        }
        if (!on || !b) {
            continue; /* a missing bitmap is the full compare's to report */
        }
        c->checks++;
        const struct bitmap *bits = m->enabled ? b->bits : b->successor ? b->successor->bits
                                                                        : b->bits;
        int64_t hole = first_clean(bits, offset, len);
        if (hole >= 0) {
            fail(c, "bitmap-coverage", at, "write %" PRIu64 "+%" PRIu64 " was acknowledged "
                 "but bitmap '%s'%s is clean at byte %" PRId64 ": the write is not recorded",
                 offset, len, m->name, m->enabled ? "" : " (its successor)", hole);
        }
    }
}

/* Compare one group array with a real bitmap: -1 or the first differing group. */
static int64_t bits_diff(const struct check_bitmap *c, const uint8_t *model, uint64_t gran,
                         const struct bitmap *real)
{
    if (bitmap_granularity(real) != gran) {
        return 0;
    }
    for (uint64_t g = 0; g < groups(c, gran); g++) {
        if ((model[g] != 0) != bitmap_get(real, g * gran)) {
            return (int64_t)g;
        }
    }
    return -1;
}

static void compare_one(struct check_bitmap *c, const struct cb_map *m,
                        const struct dirty_bitmap *b, const char *property,
                        const struct cb_where *at)
{
    if (bitmap_granularity(b->bits) != m->gran) {
        fail(c, property, at, "bitmap '%s' has granularity %" PRIu64 ", expected %" PRIu64,
             m->name, bitmap_granularity(b->bits), m->gran);
        return;
    }
    if (b->enabled != m->enabled || b->persistent != m->persistent ||
        b->inconsistent != m->inconsistent || b->busy != m->busy ||
        (b->successor != NULL) != (m->succ != NULL)) {
        fail(c, property, at, "bitmap '%s' is %s%s, expected %s%s%s", m->name, dirty_status(b),
             b->persistent ? " and persistent" : "", m->inconsistent ? "inconsistent"
             : m->succ ? "frozen" : m->enabled ? "active" : "disabled",
             m->persistent ? " and persistent" : "",
             c->crashed && !b->inconsistent && m->inconsistent ?
             " (it was in use when the host crashed: its bits must not be trusted)" : "");
        return;
    }
    int64_t g = bits_diff(c, m->bits, m->gran, b->bits);
    if (g < 0 && m->succ) {
        g = bits_diff(c, m->succ, m->gran, b->successor->bits);
    }
    if (g >= 0) {
        uint64_t off = (uint64_t)g * m->gran;
        fail(c, property, at, "bitmap '%s' differs from the model at byte %" PRIu64 ": %s "
             "there, expected %s", m->name, off, bitmap_get(b->bits, off) ? "dirty" : "clean",
             m->bits[g] ? "dirty" : "clean");
    }
}

void check_bitmap_compare(struct check_bitmap *c, const struct dirty_set *real,
                          const char *property, const struct cb_where *at)
{
    dirty_set_check(real);
    check_bitmap_check(c);
    for (size_t i = 0; i < c->n && !c->failed; i++) {
        const struct dirty_bitmap *b = dirty_find(real, c->maps[i].name);
        if (!b) {
            fail(c, property, at, "bitmap '%s' is missing", c->maps[i].name);
            return;
        }
        compare_one(c, &c->maps[i], b, property, at);
    }
    if (!c->failed && real->n != c->n) {
        const struct dirty_bitmap *b;
        TAILQ_FOREACH(b, &real->list, link) {
            if (!find(c, b->name)) {
                fail(c, property, at, "bitmap '%s' exists but should not", b->name);
                return;
            }
        }
    }
}

static void store_image(struct check_bitmap *c, bool clean)
{
    stored_clear(c);
    for (size_t i = 0; i < c->n; i++) {
        const struct cb_map *m = &c->maps[i];
        if (!m->persistent) {
            continue;
        }
        if (c->n_stored == c->cap_stored) {
            size_t cap = c->cap_stored ? 2 * c->cap_stored : 8;
            c->stored = mem_realloc(c->stored, c->cap_stored * sizeof(*c->stored),
                                    cap * sizeof(*c->stored));
            c->cap_stored = cap;
        }
        struct cb_stored *s = &c->stored[c->n_stored++];
        memset(s, 0, sizeof(*s));
        memcpy(s->name, m->name, sizeof(s->name));
        s->gran = m->gran;
        s->in_use = !clean || m->inconsistent;
        s->enabled = m->enabled;
        if (!s->in_use) {
            s->bits = mem_alloc(groups(c, m->gran));
            memcpy(s->bits, m->bits, groups(c, m->gran));
        }
    }
}

void check_bitmap_synced(struct check_bitmap *c)
{
    store_image(c, false);
}

void check_bitmap_stored(struct check_bitmap *c)
{
    store_image(c, true);
}

void check_bitmap_down(struct check_bitmap *c, bool crash)
{
    maps_clear(c);
    c->crashed = crash;
}

/* The model becomes a copy of @real. */
static void adopt(struct check_bitmap *c, const struct dirty_set *real)
{
    maps_clear(c);
    const struct dirty_bitmap *b;
    TAILQ_FOREACH(b, &real->list, link) {
        struct cb_map *m = add(c, b->name, bitmap_granularity(b->bits));
        m->enabled = b->enabled;
        m->persistent = b->persistent;
        m->inconsistent = b->inconsistent;
        ASSERT(!b->successor && !b->busy); /* nothing owns a bitmap at load */
        for (uint64_t g = 0; g < groups(c, m->gran); g++) {
            m->bits[g] = bitmap_get(b->bits, g * m->gran);
        }
    }
}

void check_bitmap_loaded(struct check_bitmap *c, const struct dirty_set *real,
                         const struct cb_where *at, bool lost, bool corrupted)
{
    maps_clear(c);
    for (size_t i = 0; i < c->n_stored; i++) {
        const struct cb_stored *s = &c->stored[i];
        struct cb_map *m = add(c, s->name, s->gran);
        m->persistent = true;
        m->inconsistent = s->in_use;
        m->enabled = !s->in_use && s->enabled;
        if (s->bits) {
            memcpy(m->bits, s->bits, groups(c, s->gran));
        }
    }
    if (lost || corrupted) {
        /* A shallow copy: compare reads the maps and writes only the verdict. */
        struct check_bitmap probe = *c;
        probe.failed = false;
        check_bitmap_compare(&probe, real, "bitmap-store", at);
        for (size_t i = 0; i < c->n && !lost && probe.failed && !c->failed; i++) {
            const struct dirty_bitmap *b = dirty_find(real, c->maps[i].name);
            if (b && !b->inconsistent && !c->maps[i].inconsistent) {
                compare_one(c, &c->maps[i], b, "bitmap-store", at); /* must be exact */
            }
        }
        c->explained += probe.failed && !c->failed;
        if (!c->failed) {
            adopt(c, real);
        }
    } else {
        check_bitmap_compare(c, real, c->crashed ? "bitmap-crash" : "bitmap-store", at);
    }
    c->crashed = false;
}

bool check_bitmap_model_dirty(const struct check_bitmap *c, const char *name, uint64_t offset,
                              uint64_t len)
{
    const struct cb_map *m = find(c, name);
    ASSERT(m != NULL);
    uint64_t end = (offset + len + m->gran - 1) / m->gran;
    for (uint64_t g = offset / m->gran; g < end && g < groups(c, m->gran); g++) {
        if (m->bits[g]) {
            return true;
        }
    }
    return false;
}

void check_bitmap_abdicate_merged(struct check_bitmap *c, const struct dirty_set *real,
                                  const char *name, const uint8_t *must, const uint8_t *may,
                                  uint64_t gran, bool writes_in_flight,
                                  const struct cb_where *at)
{
    struct cb_map *m = find(c, name);
    ASSERT(m != NULL && m->busy);
    uint64_t n = groups(c, m->gran);
    struct trace_bitmap op = { .op = TRACE_BM_ABDICATE };
    snprintf(op.name, sizeof(op.name), "%s", name);
    int ret = check_bitmap_apply(c, &op, 0);
    ASSERT(ret == 0);
    m = find(c, name); /* the successor took its place */
    const struct dirty_bitmap *b = dirty_find(real, name);
    for (uint64_t g = 0; g < n && b && !c->failed; g++) {
        uint64_t off = g * m->gran;
        bool r = bitmap_get(b->bits, off);
        uint64_t last = min_u64(off + m->gran, c->size) - 1; /* the group's ranges */
        bool uncopied = false;
        bool copyable = false;
        for (uint64_t k = off / gran; k <= last / gran; k++) {
            uncopied |= must[k] != 0;
            copyable |= may[k] != 0;
        }
        if ((m->bits[g] || uncopied) && !r) {
            fail(c, "bitmap-successor", at, "bitmap '%s' after a failed backup with "
                 "bitmap-mode=always: group at byte %llu is clean, but %s", name,
                    (unsigned long long)off, m->bits[g] ? "the guest wrote there during the "
                    "job" : "the job never copied it (the target differs from the source "
                    "at the start)");
        } else if (r && !m->bits[g] && !copyable && !writes_in_flight) {
            fail(c, "bitmap-successor", at, "bitmap '%s' after a failed backup with "
                 "bitmap-mode=always: group at byte %llu is dirty, but the job had nothing "
                 "to copy there and no write since marked it", name, (unsigned long long)off);
        }
        m->bits[g] = r; /* within the bounds: the stack's choice of what it copied */
    }
}
