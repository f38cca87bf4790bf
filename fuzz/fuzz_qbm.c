/*
 * fuzz_qbm: the QBM loader. The input is split at NUL bytes: the first part
 * is descriptor slot 0's text, the second slot 1's, the next three are the
 * contents of guest.a.bitmap, guest.b.bitmap and guest.c.bitmap (zero padded
 * to 512 bytes; an empty part means no file). Whatever fails to load must
 * say why and leave the set empty; whatever loads must pass every invariant
 * check and survive a clean store and reload bit for bit.
 */
#include <string.h>

#include "../ref/qbm.h"
#include "../sim/dev/files.h"
#include "fuzz.h"

#define IMAGE_SIZE (1u << 20)

static const char *const files_named[] = { "guest.a.bitmap", "guest.b.bitmap",
                                           "guest.c.bitmap" };

static void file_put(struct files *f, const char *name, const uint8_t *p, size_t len,
                     uint64_t off, uint64_t size)
{
    struct env_files env = files_env(f);
    struct env_storage st;
    if (!files_disk(f, name)) {
        ASSERT(env.ops->create(env.ctx, name, size, &st) == 0);
        env.ops->close(env.ctx, &st);
    }
    disk_poke(files_disk(f, name), off, p, len);
}

/* Next NUL-separated part of the input. */
static const uint8_t *part_next(const uint8_t **data, size_t *size, size_t *len)
{
    const uint8_t *p = *data;
    const uint8_t *nul = memchr(p, 0, *size);
    *len = nul ? (size_t)(nul - p) : *size;
    *data += *len + (nul != NULL);
    *size -= *len + (nul != NULL);
    return p;
}

static void files_fill(struct files *f, const uint8_t *data, size_t size)
{
    for (unsigned slot = 0; slot < 2; slot++) {
        size_t len;
        const uint8_t *p = part_next(&data, &size, &len);
        len = len < QBM_SLOT_SIZE ? len : QBM_SLOT_SIZE;
        file_put(f, "guest.qbm", p, len, slot * QBM_SLOT_SIZE, QBM_DESC_SIZE);
    }
    for (size_t i = 0; i < ARRAY_LEN(files_named); i++) {
        size_t len;
        const uint8_t *p = part_next(&data, &size, &len);
        len = len < 65536 ? len : 65536;
        if (len) {
            file_put(f, files_named[i], p, len, 0, align_up(len, 512));
        }
    }
}

static int load(struct files *f, struct evq *q, struct dirty_set **set, struct qbm **out,
                struct err *e)
{
    *set = dirty_set_new(IMAGE_SIZE);
    struct qbm_opts o = { files_env(f), evq_timer(q), "guest", "raw", IMAGE_SIZE, 0 };
    int ret = qbm_open(&o, *set, e, out);
    if (ret < 0) {
        ASSERT(e->msg[0] != '\0');
        ASSERT((*set)->n == 0);
    }
    return ret;
}

static void store_done(void *opaque, int ret)
{
    *(int *)opaque = ret;
}

/* Store cleanly, reload, compare. */
static void roundtrip(struct files *f, struct evq *q, struct dirty_set *set, struct qbm *qbm)
{
    int ret = 1;
    qbm_store(qbm, store_done, &ret);
    while (evq_step(q, UINT64_MAX)) {
    }
    ASSERT(ret == 0);
    struct dirty_set *again;
    struct qbm *qbm2;
    struct err e = { .file = NULL };
    ASSERT(load(f, q, &again, &qbm2, &e) == 0);
    ASSERT(again->n == set->n);
    const struct dirty_bitmap *b;
    TAILQ_FOREACH(b, &set->list, link) {
        const struct dirty_bitmap *c = dirty_find(again, b->name);
        ASSERT(c && c->inconsistent == b->inconsistent && c->enabled == b->enabled);
        ASSERT(bitmap_equal(c->bits, b->bits));
    }
    qbm_close(qbm2);
    dirty_set_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t blocks = mem_blocks_live();
    struct evq q;
    struct fault_plan plan;
    evq_init(&q);
    fault_plan_init(&plan);
    struct files f;
    files_init(&f, &q, &plan, 1, 0);
    files_fill(&f, data, size);
    struct dirty_set *set;
    struct qbm *qbm;
    struct err e = { .file = NULL };
    if (load(&f, &q, &set, &qbm, &e) == 0) {
        dirty_set_check(set);
        const struct dirty_bitmap *b;
        TAILQ_FOREACH(b, &set->list, link) {
            bitmap_check(b->bits);
        }
        roundtrip(&f, &q, set, qbm);
        qbm_close(qbm);
    }
    dirty_set_free(set);
    files_fini(&f);
    fault_plan_fini(&plan);
    evq_fini(&q);
    fuzz_leak_check(blocks);
    return 0;
}
