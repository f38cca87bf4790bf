/*
 * model_disk: see model_disk.h. Method: candidates are pruned lazily when a
 * sector is touched: the durable base is the last definite candidate that is
 * MODEL_DURABLE or completed before durable_seq; everything before it can
 * never be seen again and is dropped.
 */
#include "model_disk.h"

#include <string.h>

#include "../ref/base.h"

#define MODEL_CANDS_MAX 4096u /* a sector rewritten this often unflushed is a bug */

void model_disk_init(struct model_disk *m)
{
    memset(m, 0, sizeof(*m));
    u64map_init(&m->index);
}

void model_disk_fini(struct model_disk *m)
{
    for (uint64_t i = 0; i < m->n_sectors; i++) {
        struct model_sector *sec = &m->sectors[i];
        if (sec->c != sec->inline_c) {
            mem_free(sec->c, sec->cap * sizeof(struct model_cand));
        }
    }
    mem_free(m->sectors, m->cap_sectors * sizeof(*m->sectors));
    u64map_fini(&m->index);
    memset(m, 0, sizeof(*m));
}

uint64_t model_disk_tick(struct model_disk *m)
{
    return ++m->seq;
}

static struct model_sector *sector_get(const struct model_disk *m, uint64_t s)
{
    const uint64_t *v = u64map_get(&m->index, s);
    return v ? &m->sectors[*v] : NULL;
}

/* The sectors array moved: inline candidate pointers must follow. */
static void sectors_rebase(struct model_disk *m, struct model_sector *old_base)
{
    for (uint64_t i = 0; i < m->n_sectors; i++) {
        struct model_sector *sec = &m->sectors[i];
        if (sec->c == old_base[i].inline_c) {
            sec->c = sec->inline_c;
        }
    }
}

static struct model_sector *sector_put(struct model_disk *m, uint64_t s)
{
    bool created;
    uint64_t *v = u64map_put(&m->index, s, &created);
    if (!created) {
        return &m->sectors[*v];
    }
    if (m->n_sectors == m->cap_sectors) {
        uint64_t cap = m->cap_sectors ? 2 * m->cap_sectors : 1024;
        struct model_sector *old = m->sectors;
        m->sectors = mem_realloc(m->sectors, m->cap_sectors * sizeof(*m->sectors),
                                 cap * sizeof(*m->sectors));
        m->cap_sectors = cap;
        if (m->sectors != old) {
            sectors_rebase(m, old);
        }
    }
    *v = m->n_sectors;
    struct model_sector *sec = &m->sectors[m->n_sectors++];
    memset(sec, 0, sizeof(*sec));
    /* The implicit initial value: zeroes, durable. */
    struct model_cand init = { 0u, 0, MODEL_DURABLE };
    sec->cap = MODEL_INLINE;
    sec->c = sec->inline_c;
    sec->c[sec->n++] = init;
    return sec;
}

static bool cand_durable(const struct model_disk *m, const struct model_cand *c)
{
    if (c->flags & MODEL_MAYBE) {
        return false;
    }
    return (c->flags & MODEL_DURABLE) || c->seq < m->durable_seq;
}

static void sector_prune(const struct model_disk *m, struct model_sector *sec)
{
    uint32_t base = 0;
    for (uint32_t i = sec->n; i > 0; i--) {
        if (cand_durable(m, &sec->c[i - 1])) {
            base = i - 1;
            break;
        }
    }
    if (base > 0) {
        memmove(sec->c, sec->c + base, (sec->n - base) * sizeof(*sec->c));
        sec->n -= base;
    }
    ASSERT(sec->n >= 1);
}

static void sector_push(struct model_disk *m, struct model_sector *sec,
                        struct model_cand cand)
{
    if (cand.flags & MODEL_DURABLE && !(cand.flags & MODEL_MAYBE)) {
        sec->n = 0; /* nothing before a durable definite value survives */
    }
    if (sec->n == sec->cap) {
        ASSERT(sec->cap < MODEL_CANDS_MAX);
        uint32_t cap = 2 * sec->cap;
        if (sec->c == sec->inline_c) {
            sec->c = mem_alloc(cap * sizeof(*sec->c));
            memcpy(sec->c, sec->inline_c, sizeof(sec->inline_c));
        } else {
            sec->c = mem_realloc(sec->c, sec->cap * sizeof(*sec->c), cap * sizeof(*sec->c));
        }
        sec->cap = cap;
    }
    sec->c[sec->n++] = cand;
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
    for (uint64_t i = 0; i < m->n_sectors; i++) {
        struct model_sector *sec = &m->sectors[i];
        sector_prune(m, sec);
        /* The base stays definite; everything after it may or may not be
         * what the media kept. */
        for (uint32_t k = 1; k < sec->n; k++) {
            sec->c[k].flags |= MODEL_MAYBE | MODEL_CRASHED;
        }
    }
}

/* Index of the first candidate of the current set. */
static uint32_t current_start(const struct model_sector *sec)
{
    for (uint32_t i = sec->n; i > 0; i--) {
        if (!(sec->c[i - 1].flags & MODEL_MAYBE)) {
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
    for (uint32_t i = current_start(sec); i < sec->n; i++) {
        if (count < max) {
            expect[count] = sec->c[i].tag;
        }
        count++;
    }
    return count;
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
        struct model_cand *c = &sec->c[i - 1];
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
        sector_prune(m, sec);
        return true;
    }
    *n_expect = model_disk_current(m, s, expect, max);
    return false;
}

void model_disk_assign(struct model_disk *dst, const struct model_disk *src)
{
    /* Sectors dst knows but src does not: src holds zeroes there. */
    for (uint64_t i = 0; i < dst->n_sectors; i++) {
        struct model_sector *sec = &dst->sectors[i];
        sec->n = 0;
        struct model_cand zero = { 0u, dst->seq, MODEL_DURABLE };
        sector_push(dst, sec, zero);
    }
    uint64_t *keys = u64map_keys(&src->index);
    for (uint64_t k = 0; k < src->index.n; k++) {
        const struct model_sector *from = sector_get(src, keys[k]);
        struct model_sector *to = sector_put(dst, keys[k]);
        uint32_t start = current_start(from);
        to->n = 0;
        for (uint32_t i = start; i < from->n; i++) {
            uint32_t flags = i == start ? MODEL_DURABLE : MODEL_MAYBE | MODEL_CRASHED;
            struct model_cand c = { from->c[i].tag, dst->seq, flags };
            sector_push(dst, to, c);
        }
    }
    mem_free(keys, src->index.n * sizeof(*keys));
}

void model_disk_check(const struct model_disk *m)
{
    ASSERT(m->index.n == m->n_sectors);
    ASSERT(m->durable_seq <= m->seq + 1);
    for (uint64_t i = 0; i < m->n_sectors; i++) {
        const struct model_sector *sec = &m->sectors[i];
        ASSERT(sec->n >= 1);
        ASSERT(sec->n <= sec->cap);
        ASSERT(!(sec->c[0].flags & MODEL_MAYBE));
        for (uint32_t k = 1; k < sec->n; k++) {
            ASSERT(sec->c[k].seq >= sec->c[k - 1].seq);
        }
    }
}
