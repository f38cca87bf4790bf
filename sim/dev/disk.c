/*
 * disk: see disk.h.
 *
 * Method: contents are one map of 4 KiB chunks (current state: what reads
 * see). Each completed write, discard or write-zeroes is applied to the
 * chunks at once and, when the disk has a cache, appended to the cache log
 * with a copy of the bytes it replaced. A flush completing removes from the
 * log every entry that completed before the flush was submitted (they are
 * durable); capacity pressure removes the oldest entries (written back).
 * A crash undoes the whole log, newest first, which yields exactly the
 * durable state, then redoes the entries the crash generator keeps, oldest
 * first. Injected faults never touch the log's notion of true data: they
 * taint the sectors whose contents they made untrue, so a checker can tell
 * a stack bug from an injected fault.
 *
 * Described writes (disk_describe) keep a chunk as its sectors' content
 * tags, 64 bytes instead of 4 KiB, when nothing needs the bytes: no fault
 * fired and no cache log keeps old data. Everything that does need bytes
 * (a byte write into part of the chunk, a peek, the log, a crash, a hash)
 * makes them from the tags with content_make, so a described chunk reads,
 * hashes and crashes exactly as its bytes would.
 */
#include "disk.h"

#include <string.h>
#include <xxhash.h>

#include "../../ref/base.h"
#include "../base/content.h"

enum disk_io { IO_READ, IO_WRITE, IO_FLUSH, IO_DISCARD, IO_ZEROES };

struct disk_op {
    struct disk_handle *h;
    uint64_t epoch;
    enum disk_io io;
    uint64_t offset;
    uint64_t len;
    uint8_t *buf;
    struct env_desc *desc; /* read: where to answer with tags; write: NULL */
    uint64_t tag;          /* described write: its sectors' tag; else 0 */
    unsigned flags;
    uint64_t flush_mark; /* flush: log entries with seq below it are durable */
    env_io_cb *cb;
    void *opaque;
};

static const char *const crash_mode_names[DISK_CRASH__COUNT] = {
    [DISK_CRASH_PREFIX] = "prefix",
    [DISK_CRASH_SUBSET] = "subset",
    [DISK_CRASH_TEAR] = "tear",
};

static const char *const taint_names[DISK_TAINT__COUNT] = {
    [DISK_TAINT_NONE] = "none",
    [DISK_TAINT_MISDIRECT_STALE] = "misdirected write never landed",
    [DISK_TAINT_MISDIRECT_CLOBBER] = "overwritten by a misdirected write",
    [DISK_TAINT_READ_CORRUPT] = "read corrupted in flight",
    [DISK_TAINT_TORN] = "torn by a crash",
    [DISK_TAINT_GARBAGE] = "garbage after a crash",
};

const char *disk_crash_mode_name(enum disk_crash_mode mode)
{
    ASSERT(mode < DISK_CRASH__COUNT);
    return crash_mode_names[mode];
}

int disk_crash_mode_parse(const char *s, enum disk_crash_mode *out)
{
    for (int m = 0; m < DISK_CRASH__COUNT; m++) {
        if (strcmp(s, crash_mode_names[m]) == 0) {
            *out = (enum disk_crash_mode)m;
            return 0;
        }
    }
    return -EINVAL;
}

const char *disk_taint_name(enum disk_taint t)
{
    ASSERT(t < DISK_TAINT__COUNT);
    return taint_names[t];
}

void disk_config_default(struct disk_config *c, const char *name, uint64_t size)
{
    memset(c, 0, sizeof(*c));
    ASSERT(strlen(name) < sizeof(c->name));
    memcpy(c->name, name, strlen(name) + 1);
    c->size = size;
    c->cache_bytes = 16u << 20;
    c->lat_min_ns = 20000;
    c->lat_max_ns = 200000;
    c->flush_ns = 500000;
    c->atomic_sector = true;
}

struct disk *disk_new(const struct disk_config *c, struct evq *q, struct fault_plan *plan,
                      uint64_t root_seed, unsigned id, unsigned mutants)
{
    ASSERT(c->size % DISK_SECTOR == 0);
    ASSERT(c->lat_min_ns <= c->lat_max_ns);
    struct disk *d = mem_alloc(sizeof(*d));
    d->cfg = *c;
    d->evq = q;
    d->plan = plan;
    d->mutants = mutants;
    rng_stream(&d->rng_latency, root_seed, "disk-latency", id, 0);
    rng_stream(&d->rng_fault, root_seed, "disk-fault", id, 0);
    rng_stream(&d->rng_crash, root_seed, "disk-crash", id, 0);
    u64map_init(&d->chunks);
    /* The chunk index of a disk up to 4 GiB is a flat array (8 MiB at most). */
    uint64_t chunks = (c->size + DISK_CHUNK - 1) / DISK_CHUNK;
    u64map_dense(&d->chunks, chunks <= U64MAP_DENSE_MAX ? chunks : 0);
    d->bytes.unit = DISK_CHUNK;
    d->tags.unit = DISK_CHUNK / DISK_SECTOR * sizeof(uint64_t);
    u64map_init(&d->taint);
    u64map_init(&d->latent);
    return d;
}

/* Slabs grow from 64 KiB to DISK_SLAB, so a small disk stays small. */
static uint64_t slab_bytes(uint64_t i)
{
    return i >= 5 ? DISK_SLAB : min_u64(DISK_SLAB, (64u << 10) << i);
}

/* A unit from the free list, else carved from the newest slab; zeroed
 * unless @whole (its caller writes all of it). */
static uint8_t *pool_get(struct disk_pool *p, bool whole)
{
    uint8_t *c;
    if (p->n_free > 0) {
        c = (uint8_t *)(uintptr_t)p->free[--p->n_free];
    } else {
        if (p->n_slabs == 0 || p->used == slab_bytes(p->n_slabs - 1) / p->unit) {
            if (p->n_slabs == p->cap_slabs) {
                uint64_t cap = p->cap_slabs ? 2 * p->cap_slabs : 8;
                p->slabs = mem_realloc(p->slabs, p->cap_slabs * sizeof(*p->slabs),
                                       cap * sizeof(*p->slabs));
                p->cap_slabs = cap;
            }
            p->slabs[p->n_slabs] = slab_bytes(p->n_slabs) == DISK_SLAB
                                       ? mem_alloc_huge(DISK_SLAB)
                                       : mem_alloc(slab_bytes(p->n_slabs));
            p->n_slabs++;
            p->used = 0;
        }
        c = p->slabs[p->n_slabs - 1] + p->used++ * p->unit;
    }
    if (!whole) {
        memset(c, 0, p->unit);
    }
    return c;
}

static void pool_put(struct disk_pool *p, void *c)
{
    if (p->n_free == p->cap_free) {
        uint64_t cap = p->cap_free ? 2 * p->cap_free : 64;
        p->free = mem_realloc(p->free, p->cap_free * sizeof(*p->free), cap * sizeof(*p->free));
        p->cap_free = cap;
    }
    p->free[p->n_free++] = (uint64_t)(uintptr_t)c;
}

static uint64_t pool_bytes(const struct disk_pool *p)
{
    uint64_t n = 0;
    for (uint64_t i = 0; i < p->n_slabs; i++) {
        n += slab_bytes(i);
    }
    return n;
}

static void pool_fini(struct disk_pool *p)
{
    for (uint64_t i = 0; i < p->n_slabs; i++) {
        mem_free(p->slabs[i], slab_bytes(i));
    }
    mem_free(p->slabs, p->cap_slabs * sizeof(*p->slabs));
    mem_free(p->free, p->cap_free * sizeof(*p->free));
}

static void log_entry_free(struct disk_log_entry *e)
{
    mem_free(e->old, e->len);
    mem_free(e->data, e->data ? e->len : 0);
    mem_free(e->taint, e->taint ? e->len / DISK_SECTOR : 0);
    memset(e, 0, sizeof(*e));
}

static struct disk_log_entry *log_at(const struct disk *d, uint64_t i)
{
    ASSERT(i < d->log_n);
    return &d->log[(d->log_head + i) % d->log_cap];
}

static void log_pop_oldest(struct disk *d)
{
    struct disk_log_entry *e = log_at(d, 0);
    d->log_bytes -= e->len;
    log_entry_free(e);
    d->log_head = (d->log_head + 1) % d->log_cap;
    d->log_n--;
}

void disk_free(struct disk *d)
{
    disk_check(d);
    ASSERT(d->inflight == 0);
    while (d->log_n > 0) {
        log_pop_oldest(d);
    }
    mem_free(d->log, d->log_cap * sizeof(*d->log));
    pool_fini(&d->bytes);
    pool_fini(&d->tags);
    u64map_fini(&d->chunks);
    u64map_fini(&d->taint);
    u64map_fini(&d->latent);
    if (d->track) {
        u64map_fini(&d->changed);
    }
    mem_free(d, sizeof(*d));
}

/* ---- contents ---- */

#define CHUNK_SECTORS (DISK_CHUNK / DISK_SECTOR)
#define CHUNK_DESCRIBED 1u /* low bit of a chunk map value */

/* The chunk map's value for @index: 0 (a hole), a byte chunk, or a
 * described chunk's tags | CHUNK_DESCRIBED. */
static uint64_t chunk_get(const struct disk *d, uint64_t index)
{
    const uint64_t *v = u64map_get(&d->chunks, index);
    return v ? *v : 0;
}

static uint8_t *chunk_bytes(uint64_t v)
{
    return (uint8_t *)(uintptr_t)v;
}

static uint64_t *chunk_tags(uint64_t v)
{
    return (uint64_t *)(uintptr_t)(v & ~(uint64_t)CHUNK_DESCRIBED);
}

/* The bytes of @n described sectors @first.. of the run of @tags that
 * starts at sector @sector0 (env_desc.make for this disk's answers). */
static void desc_make(const void *ctx, const uint64_t *tags, uint64_t sector0, uint64_t first,
                      uint64_t n, uint8_t *buf)
{
    const struct disk *d = ctx;
    uint64_t off = (d->mutants & DISK_MUTANT_DESC_MISPLACE) ? 1 : 0; /* planted bug */
    for (uint64_t k = first; k < first + n; k++) {
        content_make(buf + (k - first) * DISK_SECTOR, d->content_seed, tags[k],
                     sector0 + k + off);
    }
}

void disk_peek(const struct disk *d, uint64_t offset, uint8_t *buf, uint64_t len)
{
    ASSERT(offset + len <= d->cfg.size);
    while (len > 0) {
        uint64_t in = offset % DISK_CHUNK;
        uint64_t n = min_u64(len, DISK_CHUNK - in);
        uint64_t v = chunk_get(d, offset / DISK_CHUNK);
        if (v & CHUNK_DESCRIBED) {
            desc_make(d, chunk_tags(v), offset / DISK_CHUNK * CHUNK_SECTORS, in / DISK_SECTOR,
                      n / DISK_SECTOR, buf);
        } else if (v) {
            memcpy(buf, chunk_bytes(v) + in, n);
        } else {
            memset(buf, 0, n);
        }
        buf += n;
        offset += n;
        len -= n;
    }
}

/* The tags of [offset, offset + len) into @tags, if no byte chunk is in it. */
static bool peek_tags(const struct disk *d, uint64_t offset, uint64_t len, uint64_t *tags)
{
    while (len > 0) {
        uint64_t in = offset % DISK_CHUNK;
        uint64_t n = min_u64(len, DISK_CHUNK - in);
        uint64_t v = chunk_get(d, offset / DISK_CHUNK);
        if (v && !(v & CHUNK_DESCRIBED)) {
            return false;
        }
        if (v) {
            memcpy(tags, chunk_tags(v) + in / DISK_SECTOR, n / DISK_SECTOR * sizeof(*tags));
        } else {
            memset(tags, 0, n / DISK_SECTOR * sizeof(*tags));
        }
        tags += n / DISK_SECTOR;
        offset += n;
        len -= n;
    }
    return true;
}

void disk_peek_durable(const struct disk *d, uint64_t offset, uint8_t *buf, uint64_t len)
{
    ASSERT(!d->cfg.no_log); /* its owner said nobody would ask */
    disk_peek(d, offset, buf, len);
    /* Undo the volatile cache, newest entry first: what a power loss that
     * kept nothing of it would leave. */
    for (uint64_t i = d->log_n; i > 0; i--) {
        const struct disk_log_entry *e = log_at(d, i - 1);
        uint64_t lo = max_u64(offset, e->offset);
        uint64_t hi = min_u64(offset + len, e->offset + e->len);
        if (lo < hi) {
            memcpy(buf + (lo - offset), e->old + (lo - e->offset), hi - lo);
        }
    }
}

static void chunk_set(struct disk *d, uint64_t index, uint64_t v)
{
    *u64map_put(&d->chunks, index, NULL) = v;
}

/* Chunk @index's old value @v is replaced or dropped: release its memory. */
static void chunk_release(struct disk *d, uint64_t v)
{
    if (v & CHUNK_DESCRIBED) {
        pool_put(&d->tags, chunk_tags(v));
    } else if (v) {
        pool_put(&d->bytes, chunk_bytes(v));
    }
}

/* Chunk @index as bytes, made from its tags if it was described. */
static uint8_t *chunk_to_bytes(struct disk *d, uint64_t index, uint64_t v)
{
    uint8_t *c = pool_get(&d->bytes, true);
    desc_make(d, chunk_tags(v), index * CHUNK_SECTORS, 0, CHUNK_SECTORS, c);
    chunk_release(d, v);
    chunk_set(d, index, (uint64_t)(uintptr_t)c);
    return c;
}

/* Write @src (NULL: zeroes), or the sectors of described write @tag, into
 * the chunks. */
static void store(struct disk *d, uint64_t offset, const uint8_t *src, uint64_t tag,
                  uint64_t len)
{
    ASSERT(offset + len <= d->cfg.size);
    while (len > 0) {
        uint64_t index = offset / DISK_CHUNK;
        uint64_t in = offset % DISK_CHUNK;
        uint64_t n = min_u64(len, DISK_CHUNK - in);
        bool whole = n == DISK_CHUNK;
        uint64_t v = chunk_get(d, index);
        if (d->track) {
            *u64map_put(&d->changed, index, NULL) = 1;
        }
        if (!src && !tag && whole) { /* zeroes over all of it: a hole */
            if (v) {
                chunk_release(d, v);
                u64map_del(&d->chunks, index);
            }
        } else if (tag && (!v || whole || (v & CHUNK_DESCRIBED))) {
            uint64_t *t = (v & CHUNK_DESCRIBED) ? chunk_tags(v) : NULL;
            if (!t) {
                chunk_release(d, v);
                t = (uint64_t *)(void *)pool_get(&d->tags, whole);
                chunk_set(d, index, (uint64_t)(uintptr_t)t | CHUNK_DESCRIBED);
            }
            for (uint64_t k = in / DISK_SECTOR; k < (in + n) / DISK_SECTOR; k++) {
                t[k] = tag;
            }
        } else if (tag) { /* into part of a byte chunk: its bytes */
            content_fill(chunk_bytes(v) + in, d->content_seed, tag, offset / DISK_SECTOR,
                         n / DISK_SECTOR);
        } else if (!src) {
            if (v & CHUNK_DESCRIBED) {
                memset(chunk_tags(v) + in / DISK_SECTOR, 0, n / DISK_SECTOR * sizeof(uint64_t));
            } else if (v) {
                memset(chunk_bytes(v) + in, 0, n);
            }
        } else {
            uint8_t *c;
            if (whole) {
                chunk_release(d, v);
                c = pool_get(&d->bytes, true);
                chunk_set(d, index, (uint64_t)(uintptr_t)c);
            } else if (v & CHUNK_DESCRIBED) {
                c = chunk_to_bytes(d, index, v);
            } else if (v) {
                c = chunk_bytes(v);
            } else {
                c = pool_get(&d->bytes, false);
                chunk_set(d, index, (uint64_t)(uintptr_t)c);
            }
            memcpy(c + in, src, n);
            src += n;
        }
        offset += n;
        len -= n;
    }
}

static void store_write(struct disk *d, uint64_t offset, const uint8_t *src, uint64_t len)
{
    store(d, offset, src, 0, len);
}

void disk_poke(struct disk *d, uint64_t offset, const uint8_t *buf, uint64_t len)
{
    store_write(d, offset, buf, len);
}

static void taint_range(struct disk *d, uint64_t offset, uint64_t len, enum disk_taint t)
{
    d->stats.corruptions++;
    for (uint64_t s = offset / DISK_SECTOR; s < (offset + len) / DISK_SECTOR; s++) {
        *u64map_put(&d->taint, s, NULL) = t;
    }
    if (d->taint_hook) {
        d->taint_hook(d->taint_hook_opaque, d, offset / DISK_SECTOR, len / DISK_SECTOR);
    }
}

/* A clean write makes its sectors true again and readable. */
static void untaint_range(struct disk *d, uint64_t offset, uint64_t len)
{
    if (d->taint.n == 0 && d->latent.n == 0) {
        return;
    }
    for (uint64_t s = offset / DISK_SECTOR; s < (offset + len) / DISK_SECTOR; s++) {
        u64map_del(&d->taint, s);
        u64map_del(&d->latent, s);
    }
}

enum disk_taint disk_taint_get(const struct disk *d, uint64_t sector)
{
    const uint64_t *v = u64map_get(&d->taint, sector);
    return v ? (enum disk_taint)*v : DISK_TAINT_NONE;
}

/* ---- the cache log ---- */

static void log_append(struct disk *d, uint64_t offset, const uint8_t *src, uint64_t len,
                       bool fua)
{
    if (d->log_n == d->log_cap) {
        uint64_t cap = d->log_cap ? 2 * d->log_cap : 64;
        struct disk_log_entry *log = mem_alloc(cap * sizeof(*log));
        for (uint64_t i = 0; i < d->log_n; i++) {
            log[i] = *log_at(d, i);
        }
        mem_free(d->log, d->log_cap * sizeof(*d->log));
        d->log = log;
        d->log_cap = cap;
        d->log_head = 0;
    }
    struct disk_log_entry *e = &d->log[(d->log_head + d->log_n) % d->log_cap];
    d->log_n++;
    e->seq = d->next_seq++;
    e->offset = offset;
    e->len = len;
    e->fua = fua && !(d->mutants & DISK_MUTANT_FUA_VOLATILE);
    e->old = mem_alloc(len);
    disk_peek(d, offset, e->old, len);
    e->data = NULL;
    if (src) {
        e->data = mem_alloc(len);
        memcpy(e->data, src, len);
    }
    /* The write will clear its sectors' taint; a crash that undoes it must
     * bring the taint back with the untrue bytes. */
    e->taint = NULL;
    for (uint64_t i = 0; d->taint.n > 0 && i < len / DISK_SECTOR; i++) {
        enum disk_taint t = disk_taint_get(d, offset / DISK_SECTOR + i);
        if (t != DISK_TAINT_NONE && !e->taint) {
            e->taint = mem_alloc(len / DISK_SECTOR);
        }
        if (e->taint) {
            e->taint[i] = (uint8_t)t;
        }
    }
    d->log_bytes += len;
    while (d->log_n > 1 && d->log_bytes > d->cfg.cache_bytes) {
        log_pop_oldest(d);
        d->stats.written_back++;
    }
}

/* Does the disk keep a log of what a crash would lose? */
static bool disk_logs(const struct disk *d)
{
    return d->cfg.cache_bytes > 0 && !d->cfg.no_log;
}

/* Apply a write that completed without fault: log it, then store it. */
static void disk_apply(struct disk *d, uint64_t offset, const uint8_t *src, uint64_t len,
                       bool fua)
{
    if (disk_logs(d)) {
        log_append(d, offset, src, len, fua);
    }
    store_write(d, offset, src, len);
    untaint_range(d, offset, len);
}

/* ---- requests ---- */

static uint64_t draw_latency(struct disk *d, enum disk_io io)
{
    uint64_t ns = rng_range(&d->rng_latency, d->cfg.lat_min_ns, d->cfg.lat_max_ns);
    return io == IO_FLUSH ? ns + d->cfg.flush_ns : ns;
}

static int read_faults(struct disk *d, struct disk_op *op, struct fault_rule **corrupt)
{
    struct fault_rule *r = fault_plan_fire(d->plan, &d->rng_fault, d->cfg.name, FAULT_IO_READ,
                                           op->offset, op->len, d->evq->now_ns);
    if (r && r->kind == FAULT_LATENT) {
        d->stats.faults[FAULT_LATENT]++;
        uint64_t lo = max_u64(op->offset, r->range_start) / DISK_SECTOR;
        uint64_t hi = (min_u64(op->offset + op->len, r->range_end) - 1) / DISK_SECTOR;
        *u64map_put(&d->latent, rng_range(&d->rng_fault, lo, hi), NULL) = 1;
    } else if (r && r->kind == FAULT_READ_EIO) {
        d->stats.faults[FAULT_READ_EIO]++;
        return -EIO;
    } else if (r) {
        ASSERT(r->kind == FAULT_READ_CORRUPT);
        *corrupt = r;
    }
    if (d->latent.n > 0) {
        for (uint64_t s = op->offset / DISK_SECTOR; s < (op->offset + op->len) / DISK_SECTOR;
             s++) {
            if (u64map_get(&d->latent, s)) {
                return -EIO;
            }
        }
    }
    return 0;
}

static int do_read(struct disk *d, struct disk_op *op)
{
    struct fault_rule *corrupt = NULL;
    TRY(read_faults(d, op, &corrupt));
    d->stats.bytes_read += op->len;
    if (op->desc && !corrupt && peek_tags(d, op->offset, op->len, op->desc->tags)) {
        op->desc->described = true;
        op->desc->make = desc_make;
        op->desc->make_ctx = d;
        return 0;
    }
    disk_peek(d, op->offset, op->buf, op->len);
    if (corrupt) {
        d->stats.faults[FAULT_READ_CORRUPT]++;
        uint64_t at = rng_below(&d->rng_fault, op->len);
        op->buf[at] ^= (uint8_t)(1u << rng_below(&d->rng_fault, 8));
        taint_range(d, align_down(op->offset + at, DISK_SECTOR), DISK_SECTOR,
                    DISK_TAINT_READ_CORRUPT);
    }
    return 0;
}

static void do_misdirect(struct disk *d, struct disk_op *op, const struct fault_rule *r,
                         const uint8_t *src)
{
    uint64_t span = d->cfg.size - op->len + DISK_SECTOR;
    uint64_t target = align_down((op->offset + r->delta) % span, DISK_SECTOR);
    d->stats.faults[FAULT_MISDIRECT]++;
    disk_apply(d, target, src, op->len, op->flags & ENV_IO_FUA);
    taint_range(d, target, op->len, DISK_TAINT_MISDIRECT_CLOBBER);
    if (!ranges_overlap(target, op->len, op->offset, op->len) || target != op->offset) {
        /* The intended sectors the write did not cover keep stale data. */
        for (uint64_t s = op->offset; s < op->offset + op->len; s += DISK_SECTOR) {
            if (!ranges_overlap(s, DISK_SECTOR, target, op->len)) {
                taint_range(d, s, DISK_SECTOR, DISK_TAINT_MISDIRECT_STALE);
            }
        }
    }
}

static int do_write_bytes(struct disk *d, struct disk_op *op, const uint8_t *src,
                          struct fault_rule *r)
{
    if (r && r->kind == FAULT_ENOSPC) {
        d->stats.faults[FAULT_ENOSPC]++;
        return -ENOSPC;
    }
    if (r && r->kind == FAULT_WRITE_EIO) {
        /* A failed write may have landed in part: some leading sectors. */
        d->stats.faults[FAULT_WRITE_EIO]++;
        uint64_t sectors = rng_below(&d->rng_fault, op->len / DISK_SECTOR);
        if (sectors) {
            disk_apply(d, op->offset, src, sectors * DISK_SECTOR, false);
        }
        return -EIO;
    }
    if (r) {
        ASSERT(r->kind == FAULT_MISDIRECT);
        do_misdirect(d, op, r, src);
        return 0;
    }
    disk_apply(d, op->offset, src, op->len, op->flags & ENV_IO_FUA);
    d->stats.bytes_written += op->len;
    return 0;
}

static int do_write(struct disk *d, struct disk_op *op)
{
    const uint8_t *src = op->io == IO_ZEROES ? NULL : op->buf;
    struct fault_rule *r = fault_plan_fire(d->plan, &d->rng_fault, d->cfg.name,
                                           FAULT_IO_WRITE, op->offset, op->len,
                                           d->evq->now_ns);
    if (!op->tag) {
        return do_write_bytes(d, op, src, r);
    }
    if (!r && !disk_logs(d)) { /* nothing needs its bytes */
        store(d, op->offset, NULL, op->tag, op->len);
        untaint_range(d, op->offset, op->len);
        d->stats.bytes_written += op->len;
        return 0;
    }
    uint8_t *made = mem_alloc_raw(op->len);
    content_fill(made, d->content_seed, op->tag, op->offset / DISK_SECTOR,
                 op->len / DISK_SECTOR);
    int ret = do_write_bytes(d, op, made, r);
    mem_free(made, op->len);
    return ret;
}

static int do_flush(struct disk *d, struct disk_op *op)
{
    if (fault_plan_fire(d->plan, &d->rng_fault, d->cfg.name, FAULT_IO_FLUSH, 0, 0,
                        d->evq->now_ns)) {
        d->stats.faults[FAULT_FLUSH_EIO]++;
        return -EIO;
    }
    if (d->mutants & DISK_MUTANT_FLUSH_NOOP) {
        return 0;
    }
    while (d->log_n > 0 && log_at(d, 0)->seq < op->flush_mark) {
        log_pop_oldest(d);
    }
    return 0;
}

static void disk_op_done(void *opaque)
{
    struct disk_op *op = opaque;
    struct disk *d = op->h->disk;
    int ret;
    ASSERT(d->inflight > 0);
    d->inflight--;
    if (op->epoch != d->epoch) {
        ret = BS_ECRASHED;
    } else if (op->io == IO_READ) {
        ret = do_read(d, op);
    } else if (op->io == IO_WRITE || op->io == IO_ZEROES) {
        ret = do_write(d, op);
    } else if (op->io == IO_FLUSH) {
        ret = do_flush(d, op);
    } else {
        ASSERT(op->io == IO_DISCARD);
        disk_apply(d, op->offset, NULL, op->len, false);
        ret = 0;
    }
    op->cb(op->opaque, ret);
    mem_free(op, sizeof(*op));
}

static struct disk_op *disk_submit(struct disk_handle *h, enum disk_io io, uint64_t offset,
                                    uint64_t len, uint8_t *buf, unsigned flags,
                                    env_io_cb *cb, void *opaque)
{
    struct disk *d = h->disk;
    if (io != IO_FLUSH) {
        ASSERT(offset % DISK_SECTOR == 0);
        ASSERT(len % DISK_SECTOR == 0 && len > 0);
        ASSERT(offset + len <= d->cfg.size);
    }
    struct disk_op *op = mem_alloc(sizeof(*op));
    op->h = h;
    op->epoch = h->epoch;
    op->io = io;
    op->offset = offset;
    op->len = len;
    op->buf = buf;
    op->flags = flags;
    op->flush_mark = d->next_seq;
    op->cb = cb;
    op->opaque = opaque;
    d->stats.ops[io]++;
    d->inflight++;
    evq_post(d->evq, draw_latency(d, io), disk_op_done, op);
    if (io == IO_FLUSH && d->flush_hook) {
        d->flush_hook(d->flush_hook_opaque);
    }
    return op; /* its completion is a later event: the caller may still add to it */
}

static void st_read(void *dev, uint64_t offset, uint8_t *buf, uint64_t len, env_io_cb *cb,
                    void *opaque)
{
    disk_submit(dev, IO_READ, offset, len, buf, 0, cb, opaque);
}

static void st_write(void *dev, uint64_t offset, const uint8_t *buf, uint64_t len,
                     unsigned flags, env_io_cb *cb, void *opaque)
{
    disk_submit(dev, IO_WRITE, offset, len, (uint8_t *)buf, flags, cb, opaque);
}

static bool st_describes(void *dev)
{
    return ((struct disk_handle *)dev)->disk->describe;
}

static void st_read_desc(void *dev, uint64_t offset, uint8_t *buf, uint64_t len,
                         struct env_desc *desc, env_io_cb *cb, void *opaque)
{
    ASSERT(st_describes(dev));
    disk_submit(dev, IO_READ, offset, len, buf, 0, cb, opaque)->desc = desc;
}

static void st_write_desc(void *dev, uint64_t offset, const struct env_desc *desc,
                          uint64_t len, unsigned flags, env_io_cb *cb, void *opaque)
{
    ASSERT(st_describes(dev));
    ASSERT(desc->tag != CONTENT_TAG_ZERO && desc->tag < CONTENT_TAG_SPECIAL); /* a write's */
    disk_submit(dev, IO_WRITE, offset, len, NULL, flags, cb, opaque)->tag = desc->tag;
}

static void st_flush(void *dev, env_io_cb *cb, void *opaque)
{
    disk_submit(dev, IO_FLUSH, 0, 0, NULL, 0, cb, opaque);
}

static void st_discard(void *dev, uint64_t offset, uint64_t len, env_io_cb *cb,
                       void *opaque)
{
    disk_submit(dev, IO_DISCARD, offset, len, NULL, 0, cb, opaque);
}

static void st_write_zeroes(void *dev, uint64_t offset, uint64_t len, unsigned flags,
                            env_io_cb *cb, void *opaque)
{
    disk_submit(dev, IO_ZEROES, offset, len, NULL, flags, cb, opaque);
}

static uint64_t st_length(void *dev)
{
    return ((struct disk_handle *)dev)->disk->cfg.size;
}

static int st_allocated(void *dev, uint64_t offset, uint64_t len, uint64_t *run)
{
    const struct disk *d = ((struct disk_handle *)dev)->disk;
    uint64_t end = offset + len;
    bool first = chunk_get(d, offset / DISK_CHUNK) != 0;
    uint64_t at = align_down(offset, DISK_CHUNK) + DISK_CHUNK;
    while (at < end && (chunk_get(d, at / DISK_CHUNK) != 0) == first) {
        at += DISK_CHUNK;
    }
    *run = min_u64(at, end) - offset;
    return first;
}

static int st_read_sync(void *dev, uint64_t offset, uint8_t *buf, uint64_t len)
{
    struct disk_handle *h = dev;
    if (h->epoch != h->disk->epoch) {
        return BS_ECRASHED;
    }
    if (h->disk->cfg.sync_read_faults) {
        struct disk_op op = { .h = h, .io = IO_READ, .offset = offset, .len = len, .buf = buf };
        return do_read(h->disk, &op);
    }
    disk_peek(h->disk, offset, buf, len);
    return 0;
}

static const struct env_storage_ops disk_storage_ops = {
    .read = st_read,
    .write = st_write,
    .flush = st_flush,
    .discard = st_discard,
    .write_zeroes = st_write_zeroes,
    .length = st_length,
    .allocated = st_allocated,
    .read_sync = st_read_sync,
    .describes = st_describes,
    .read_desc = st_read_desc,
    .write_desc = st_write_desc,
};

void disk_describe(struct disk *d, uint64_t seed)
{
    d->describe = true;
    d->content_seed = seed;
}

struct disk_handle *disk_handle_new(struct disk *d)
{
    struct disk_handle *h = mem_alloc(sizeof(*h));
    h->disk = d;
    h->epoch = d->epoch;
    return h;
}

void disk_handle_free(struct disk_handle *h)
{
    mem_free(h, sizeof(*h));
}

struct env_storage disk_storage(struct disk_handle *h)
{
    struct env_storage st = { &disk_storage_ops, h };
    return st;
}

/* ---- crash resolution (see Method) ---- */

enum sector_fate { FATE_DROP, FATE_KEEP, FATE_TORN, FATE_GARBAGE };

/* Redo one sector of @e with @fate. */
static void redo_sector(struct disk *d, const struct disk_log_entry *e, uint64_t at,
                        enum sector_fate fate, struct disk_crash_report *rep)
{
    const uint8_t *src = e->data ? e->data + at : NULL;
    uint64_t offset = e->offset + at;
    uint8_t buf[DISK_SECTOR];
    switch (fate) {
    case FATE_DROP:
        break;
    case FATE_KEEP:
        store_write(d, offset, src, DISK_SECTOR);
        break;
    case FATE_TORN: {
        /* The sector's leading part is new, the rest old. */
        uint64_t cut = rng_range(&d->rng_crash, 1, DISK_SECTOR - 1);
        disk_peek(d, offset, buf, DISK_SECTOR);
        if (src) {
            memcpy(buf, src, cut);
        } else {
            memset(buf, 0, cut);
        }
        store_write(d, offset, buf, DISK_SECTOR);
        taint_range(d, offset, DISK_SECTOR, DISK_TAINT_TORN);
        rep->torn_sectors++;
        break;
    }
    case FATE_GARBAGE:
        for (size_t i = 0; i < DISK_SECTOR; i += 8) {
            put_le64(buf + i, rng_next(&d->rng_crash));
        }
        store_write(d, offset, buf, DISK_SECTOR);
        taint_range(d, offset, DISK_SECTOR, DISK_TAINT_GARBAGE);
        rep->garbage_sectors++;
        break;
    default:
        UNREACHABLE();
    }
}

static enum sector_fate tear_fate(struct disk *d)
{
    if (d->cfg.atomic_sector) {
        return rng_below(&d->rng_crash, 2) ? FATE_KEEP : FATE_DROP;
    }
    /* Mostly whole sectors; torn and garbage sectors are the rare tail. */
    uint64_t x = rng_below(&d->rng_crash, 16);
    return x < 7 ? FATE_KEEP : x < 14 ? FATE_DROP : x == 14 ? FATE_TORN : FATE_GARBAGE;
}

static void redo_entry_torn(struct disk *d, const struct disk_log_entry *e,
                            struct disk_crash_report *rep)
{
    uint64_t kept = 0;
    for (uint64_t at = 0; at < e->len; at += DISK_SECTOR) {
        enum sector_fate fate = tear_fate(d);
        kept += fate == FATE_KEEP;
        redo_sector(d, e, at, fate, rep);
    }
    if (kept == e->len / DISK_SECTOR) {
        rep->kept++;
    } else if (kept > 0) {
        rep->partial++;
    }
}

/* Which entries survive whole (prefix and subset generators). */
static bool entry_kept(struct disk *d, enum disk_crash_mode mode, uint64_t i,
                       uint64_t prefix_len)
{
    const struct disk_log_entry *e = log_at(d, i);
    if (mode == DISK_CRASH_PREFIX) {
        return i < prefix_len;
    }
    return e->fua || rng_below(&d->rng_crash, 2);
}

static uint64_t prefix_draw(struct disk *d)
{
    uint64_t min_len = 0;
    for (uint64_t i = 0; i < d->log_n; i++) {
        if (log_at(d, i)->fua) {
            min_len = i + 1;
        }
    }
    return rng_range(&d->rng_crash, min_len, d->log_n);
}

/* Newest first: undo yields the durable state exactly, taint included. */
static void crash_undo(struct disk *d)
{
    for (uint64_t i = d->log_n; i > 0; i--) {
        const struct disk_log_entry *e = log_at(d, i - 1);
        store_write(d, e->offset, e->old, e->len);
        for (uint64_t k = 0; e->taint && k < e->len / DISK_SECTOR; k++) {
            if (e->taint[k] != DISK_TAINT_NONE) {
                *u64map_put(&d->taint, e->offset / DISK_SECTOR + k, NULL) = e->taint[k];
            }
        }
    }
}

static void crash_finish(struct disk *d, const struct disk_crash_report *rep,
                         struct disk_crash_report *out)
{
    while (d->log_n > 0) {
        log_pop_oldest(d);
    }
    d->epoch++;
    d->stats.crashes++;
    if (out) {
        *out = *rep;
    }
    disk_check(d);
}

void disk_crash(struct disk *d, enum disk_crash_mode mode, struct disk_crash_report *out)
{
    ASSERT(!d->cfg.no_log); /* its owner said none would come */
    disk_check(d);
    struct disk_crash_report rep = { .mode = mode, .pending = d->log_n };
    crash_undo(d);
    uint64_t prefix_len = mode == DISK_CRASH_PREFIX ? prefix_draw(d) : 0;
    for (uint64_t i = 0; i < d->log_n; i++) {
        const struct disk_log_entry *e = log_at(d, i);
        if (mode == DISK_CRASH_TEAR && !e->fua) {
            redo_entry_torn(d, e, &rep);
        } else if (entry_kept(d, mode, i, prefix_len)) {
            store_write(d, e->offset, e->data, e->len);
            rep.kept++;
        }
    }
    crash_finish(d, &rep, out);
}

void disk_crash_planned(struct disk *d, const struct disk_crash_plan *plan,
                        struct disk_crash_report *out)
{
    ASSERT(!d->cfg.no_log); /* its owner said none would come */
    disk_check(d);
    struct disk_crash_report rep = { .mode = DISK_CRASH_SUBSET, .pending = d->log_n };
    crash_undo(d);
    struct rng saved = d->rng_crash;
    rng_seed(&d->rng_crash, plan->tear_seed);
    for (uint64_t i = 0; i < d->log_n; i++) {
        const struct disk_log_entry *e = log_at(d, i);
        /* A FUA write is on media once acknowledged: no plan drops it. */
        uint8_t fate = e->fua ? 1 : i < plan->n ? plan->keep[i] : 1;
        if (fate == 2) {
            rep.mode = DISK_CRASH_TEAR;
            redo_entry_torn(d, e, &rep);
        } else if (fate == 1) {
            store_write(d, e->offset, e->data, e->len);
            rep.kept++;
        }
    }
    d->rng_crash = saved;
    crash_finish(d, &rep, out);
}

static bool chunk_is_zero(const uint8_t *c)
{
    return c[0] == 0 && memcmp(c, c + 1, DISK_CHUNK - 1) == 0; /* libc's vector compare */
}

uint64_t disk_content_hash(const struct disk *d)
{
    XXH3_state_t *st = XXH3_createState();
    ASSERT(st != NULL);
    XXH3_64bits_reset_withSeed(st, d->cfg.size);
    uint64_t *keys = u64map_keys(&d->chunks);
    for (size_t i = 0; i < d->chunks.n; i++) {
        uint64_t v = chunk_get(d, keys[i]);
        uint8_t made[DISK_CHUNK];
        const uint8_t *c = chunk_bytes(v);
        if (v & CHUNK_DESCRIBED) {
            desc_make(d, chunk_tags(v), keys[i] * CHUNK_SECTORS, 0, CHUNK_SECTORS, made);
            c = made;
        }
        if (chunk_is_zero(c)) {
            continue;
        }
        uint8_t idx[8];
        put_le64(idx, keys[i]);
        XXH3_64bits_update(st, idx, sizeof(idx));
        XXH3_64bits_update(st, c, DISK_CHUNK);
    }
    mem_free(keys, d->chunks.n * sizeof(*keys));
    uint64_t h = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return h;
}

uint64_t disk_mem_bytes(const struct disk *d)
{
    uint64_t chunks = pool_bytes(&d->bytes) + pool_bytes(&d->tags);
    uint64_t index = u64map_bytes(&d->chunks);
    uint64_t log = 0;
    for (uint64_t i = 0; i < d->log_n; i++) {
        const struct disk_log_entry *e = log_at(d, i);
        log += e->len + (e->data ? e->len : 0);
    }
    return chunks + index + log;
}

void disk_check(const struct disk *d)
{
    ASSERT(d->log_n <= d->log_cap);
    ASSERT(d->cfg.size % DISK_SECTOR == 0);
    uint64_t bytes = 0;
    for (uint64_t i = 0; i < d->log_n; i++) {
        const struct disk_log_entry *e = log_at(d, i);
        bytes += e->len;
        ASSERT(e->old != NULL);
        if (i > 0) {
            ASSERT(e->seq > log_at(d, i - 1)->seq);
        }
    }
    ASSERT(bytes == d->log_bytes);
    if (d->log_n > 1) {
        ASSERT(d->log_bytes <= d->cfg.cache_bytes || d->cfg.cache_bytes == 0);
    }
}

const struct planted_bug disk_bugs[] = {
    { "disk-fua-volatile", DISK_MUTANT_FUA_VOLATILE,
      "disk: acknowledges FUA writes but keeps them in its volatile cache" },
    { "disk-flush-noop", DISK_MUTANT_FLUSH_NOOP,
      "disk: flush succeeds without making anything durable" },
    { "disk-desc-misplace", DISK_MUTANT_DESC_MISPLACE,
      "disk: makes a described sector's bytes as the next sector's (a lost home)" },
};

const size_t disk_bugs_count = ARRAY_LEN(disk_bugs);

void disk_track(struct disk *d)
{
    if (!d->track) {
        d->track = true;
        u64map_init(&d->changed);
    }
}

uint64_t *disk_changed_take(struct disk *d, size_t *n)
{
    ASSERT(d->track);
    *n = d->changed.n;
    uint64_t *keys = u64map_keys(&d->changed);
    u64map_fini(&d->changed);
    u64map_init(&d->changed);
    return keys;
}
