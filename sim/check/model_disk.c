/*
 * model_disk: see model_disk.h. Method: candidates are pruned lazily when a
 * sector is touched: the durable base is the last definite candidate that is
 * MODEL_DURABLE or completed before durable_seq; everything before it can
 * never be seen again and is dropped.
 */
#include "model_disk.h"

#include <string.h>

#include "../../ref/base.h"
#include "../base/content.h"

#define MODEL_CANDS_MAX 4096u /* a sector rewritten this often unflushed is a bug */

void model_disk_init(struct model_disk *m)
{
    memset(m, 0, sizeof(*m));
    u64map_init(&m->index);
    m->last_pos = UINT64_MAX;
}

static struct model_cand *cands(struct model_sector *sec)
{
    return sec->cap > 1 ? sec->c.heap : &sec->c.one;
}

static const struct model_cand *cands_c(const struct model_sector *sec)
{
    return sec->cap > 1 ? sec->c.heap : &sec->c.one;
}

STATIC_ASSERT(sizeof(struct model_sector) == 24);

void model_disk_size(struct model_disk *m, uint64_t sectors)
{
    uint64_t chunks = (sectors + MODEL_CHUNK_SECTORS - 1) / MODEL_CHUNK_SECTORS;
    u64map_dense(&m->index, chunks <= U64MAP_DENSE_MAX ? chunks : 0);
}

void model_disk_fini(struct model_disk *m)
{
    for (uint64_t i = 0; i < m->n_chunks; i++) {
        for (unsigned k = 0; k < MODEL_CHUNK_SECTORS; k++) {
            struct model_sector *sec = &m->chunks[i].s[k];
            if (sec->cap > 1) {
                mem_free(sec->c.heap, sec->cap * sizeof(struct model_cand));
            }
        }
    }
    mem_free(m->chunks, m->cap_chunks * sizeof(*m->chunks));
    u64map_fini(&m->index);
    memset(m, 0, sizeof(*m));
}

STATIC_ASSERT(sizeof(struct model_cand) == 16); /* four to a cache line */

uint64_t model_disk_tick(struct model_disk *m)
{
    ASSERT(m->seq + 1 < (1ull << 56)); /* it fits model_cand.seq */
    return ++m->seq;
}

static uint64_t chunk_pos(const struct model_disk *m, uint64_t chunk)
{
    if (m->last_pos != UINT64_MAX && m->last_chunk == chunk) {
        return m->last_pos;
    }
    const uint64_t *v = u64map_get(&m->index, chunk);
    if (!v) {
        return UINT64_MAX;
    }
    /* The cache is a pure memo of the index: safe to update on reads. */
    ((struct model_disk *)m)->last_chunk = chunk;
    ((struct model_disk *)m)->last_pos = *v;
    return *v;
}

static struct model_sector *sector_get(const struct model_disk *m, uint64_t s)
{
    uint64_t pos = chunk_pos(m, s / MODEL_CHUNK_SECTORS);
    return pos == UINT64_MAX ? NULL : &m->chunks[pos].s[s % MODEL_CHUNK_SECTORS];
}

static uint64_t chunk_add(struct model_disk *m, uint64_t chunk)
{
    if (m->n_chunks == m->cap_chunks) {
        uint64_t cap = m->cap_chunks ? 2 * m->cap_chunks : 16;
        m->chunks = mem_realloc(m->chunks, m->cap_chunks * sizeof(*m->chunks),
                                cap * sizeof(*m->chunks));
        m->cap_chunks = cap;
    }
    uint64_t pos = m->n_chunks++;
    *u64map_put(&m->index, chunk, NULL) = pos;
    struct model_chunk *c = &m->chunks[pos];
    memset(c, 0, sizeof(*c));
    /* The implicit initial value of every sector: zeroes, durable. */
    struct model_cand init = { 0u, 0, MODEL_DURABLE };
    for (unsigned k = 0; k < MODEL_CHUNK_SECTORS; k++) {
        c->s[k].cap = 1;
        c->s[k].c.one = init;
        c->s[k].n = 1;
    }
    m->last_chunk = chunk;
    m->last_pos = pos;
    return pos;
}

static struct model_sector *sector_put(struct model_disk *m, uint64_t s)
{
    uint64_t chunk = s / MODEL_CHUNK_SECTORS;
    uint64_t pos = chunk_pos(m, chunk);
    if (pos == UINT64_MAX) {
        pos = chunk_add(m, chunk);
    }
    return &m->chunks[pos].s[s % MODEL_CHUNK_SECTORS];
}

/*
 * The durable base is the last definite candidate that completed before
 * durable_seq (a definite MODEL_DURABLE one is always made the base where it
 * appears: sector_push, model_disk_read). Sequence numbers never decrease
 * along the list, so the candidates before durable_seq are a prefix and the
 * walk stops at the first that is not: O(1) while nothing was flushed.
 */
static void sector_prune(const struct model_disk *m, struct model_sector *sec)
{
    struct model_cand *c = cands(sec);
    uint32_t base = 0;
    for (uint32_t i = 1; i < sec->n && c[i].seq < m->durable_seq; i++) {
        if (!(c[i].flags & MODEL_MAYBE)) {
            base = i;
        }
    }
    if (base > 0) {
        memmove(c, c + base, (sec->n - base) * sizeof(*c));
        sec->n -= base;
    }
    ASSERT(sec->n >= 1);
}

static void sector_push(struct model_disk *m, struct model_sector *sec,
                        struct model_cand cand)
{
    if (!(cand.flags & MODEL_MAYBE) && (cand.flags & MODEL_DURABLE || m->crash_free)) {
        sec->n = 0; /* nothing before a durable definite value survives (nor
                     * before a definite one, where no crash can come) */
    }
    if (sec->n == sec->cap) {
        ASSERT(sec->cap < MODEL_CANDS_MAX);
        uint32_t cap = 2 * sec->cap;
        if (sec->cap == 1) {
            struct model_cand *heap = mem_alloc(cap * sizeof(*heap));
            heap[0] = sec->c.one;
            sec->c.heap = heap;
        } else {
            sec->c.heap = mem_realloc(sec->c.heap, sec->cap * sizeof(*sec->c.heap),
                                      cap * sizeof(*sec->c.heap));
        }
        sec->cap = cap;
    }
    cands(sec)[sec->n++] = cand;
    sector_prune(m, sec);
}

void model_disk_write(struct model_disk *m, uint64_t first, uint64_t n, uint64_t tag,
                      uint32_t flags)
{
    ASSERT(!(flags & MODEL_CRASHED));
    struct model_cand cand = { tag, m->seq, flags };
    for (uint64_t s = first; s < first + n; s++) {
        sector_push(m, sector_put(m, s), cand);
    }
}

void model_disk_flush(struct model_disk *m, uint64_t submit_seq)
{
    ASSERT(submit_seq <= m->seq);
    if (submit_seq > m->durable_seq) {
        m->durable_seq = submit_seq;
    }
}

void model_disk_crash(struct model_disk *m)
{
    ASSERT(!m->crash_free); /* its owner said no crash could come */
    for (uint64_t i = 0; i < m->n_chunks; i++) {
        for (unsigned j = 0; j < MODEL_CHUNK_SECTORS; j++) {
            struct model_sector *sec = &m->chunks[i].s[j];
            sector_prune(m, sec);
            /* The base stays definite; everything after it may or may not
             * be what the media kept. */
            for (uint32_t k = 1; k < sec->n; k++) {
                cands(sec)[k].flags |= MODEL_MAYBE | MODEL_CRASHED;
            }
        }
    }
}

/* Index of the first candidate of the current set. */
static uint32_t current_start(const struct model_sector *sec)
{
    const struct model_cand *c = cands_c(sec);
    for (uint32_t i = sec->n; i > 0; i--) {
        if (!(c[i - 1].flags & MODEL_MAYBE)) {
            return i - 1;
        }
    }
    UNREACHABLE();
}

unsigned model_disk_current(const struct model_disk *m, uint64_t s, uint64_t *expect,
                            unsigned max)
{
    const struct model_sector *sec = sector_get(m, s);
    if (!sec) {
        if (max > 0) {
            expect[0] = 0u;
        }
        return 1;
    }
    unsigned count = 0;
    const struct model_cand *c = cands_c(sec);
    for (uint32_t i = current_start(sec); i < sec->n; i++) {
        if (count < max) {
            expect[count] = c[i].tag;
        }
        count++;
    }
    return count;
}

bool model_disk_holds_crashed(const struct model_disk *m, uint64_t s, uint64_t tag)
{
    const struct model_sector *sec = sector_get(m, s);
    if (!sec) {
        return false;
    }
    const struct model_cand *c = cands_c(sec);
    bool found = false;
    bool crashed = false;
    for (uint32_t i = current_start(sec); i < sec->n; i++) {
        found |= c[i].tag == tag;
        crashed |= (c[i].flags & MODEL_CRASHED) != 0;
    }
    return found && crashed;
}

bool model_disk_read(struct model_disk *m, uint64_t s, uint64_t tag, uint64_t *expect,
                     unsigned max, unsigned *n_expect)
{
    struct model_sector *sec = sector_get(m, s);
    *n_expect = 0;
    if (!sec) {
        if (tag == 0u) {
            return true;
        }
        *n_expect = model_disk_current(m, s, expect, max);
        return false;
    }
    uint32_t start = current_start(sec);
    for (uint32_t i = sec->n; i > start; i--) {
        struct model_cand *c = &cands(sec)[i - 1];
        if (c->tag != tag) {
            continue;
        }
        /* Later candidates did not land on this sector: drop them. A value
         * read back after a crash is on media. */
        sec->n = i;
        bool crashed = c->flags & MODEL_CRASHED;
        c->flags &= ~(uint32_t)(MODEL_MAYBE | MODEL_CRASHED);
        if (crashed) {
            c->flags |= MODEL_DURABLE;
        }
        if (c->flags & MODEL_DURABLE || m->crash_free) { /* on media now (or a FUA
                                                           * that was MAYBE), or
                                                           * no crash can come */
            cands(sec)[0] = *c;
            sec->n = 1;
            return true;
        }
        sector_prune(m, sec);
        return true;
    }
    *n_expect = model_disk_current(m, s, expect, max);
    return false;
}

void model_disk_assign(struct model_disk *dst, const struct model_disk *src)
{
    /* Sectors dst knows but src does not: src holds zeroes there. */
    struct model_cand zero = { 0u, dst->seq, MODEL_DURABLE };
    for (uint64_t i = 0; i < dst->n_chunks; i++) {
        for (unsigned k = 0; k < MODEL_CHUNK_SECTORS; k++) {
            struct model_sector *sec = &dst->chunks[i].s[k];
            sec->n = 0;
            sector_push(dst, sec, zero);
        }
    }
    uint64_t *keys = u64map_keys(&src->index);
    for (uint64_t j = 0; j < src->index.n; j++) {
        for (unsigned k = 0; k < MODEL_CHUNK_SECTORS; k++) {
            uint64_t s = keys[j] * MODEL_CHUNK_SECTORS + k;
            const struct model_sector *from = sector_get(src, s);
            struct model_sector *to = sector_put(dst, s);
            const struct model_cand *c = cands_c(from);
            uint32_t start = current_start(from);
            to->n = 0;
            for (uint32_t i = start; i < from->n; i++) {
                uint32_t flags = i == start ? MODEL_DURABLE : MODEL_MAYBE | MODEL_CRASHED;
                struct model_cand cand = { c[i].tag, dst->seq, flags };
                sector_push(dst, to, cand);
            }
        }
    }
    mem_free(keys, src->index.n * sizeof(*keys));
}

void model_disk_check(const struct model_disk *m)
{
    ASSERT(m->index.n == m->n_chunks);
    ASSERT(m->durable_seq <= m->seq + 1);
    for (uint64_t i = 0; i < m->n_chunks; i++) {
        for (unsigned j = 0; j < MODEL_CHUNK_SECTORS; j++) {
            const struct model_sector *sec = &m->chunks[i].s[j];
            const struct model_cand *c = cands_c(sec);
            ASSERT(sec->n >= 1);
            ASSERT(sec->n <= sec->cap);
            ASSERT(!(c[0].flags & MODEL_MAYBE));
            for (uint32_t k = 1; k < sec->n; k++) {
                ASSERT(c[k].seq >= c[k - 1].seq);
                /* a definite durable value is always the base */
                ASSERT(!(c[k].flags & MODEL_DURABLE) || (c[k].flags & MODEL_MAYBE));
            }
        }
    }
}

/* The model tag of an image sector: zeroes, a pattern, or the image's own. */
static uint64_t image_tag(const uint8_t *sector)
{
    uint64_t tag = content_identify(sector, 0, 0, NULL);
    if (tag == CONTENT_TAG_ZERO || content_tag_is_pattern(tag)) {
        return tag;
    }
    return CONTENT_TAG_IMAGE;
}

void model_disk_image(struct model_disk *m, const uint8_t *img, uint64_t len)
{
    model_disk_tick(m);
    uint64_t sectors = len / CONTENT_SECTOR;
    for (uint64_t s = 0; s < sectors;) {
        uint64_t tag = image_tag(img + s * CONTENT_SECTOR);
        uint64_t n = 1;
        while (s + n < sectors && image_tag(img + (s + n) * CONTENT_SECTOR) == tag) {
            n++;
        }
        if (tag != CONTENT_TAG_ZERO) {
            model_disk_write(m, s, n, tag, MODEL_DURABLE);
        }
        s += n;
    }
}
