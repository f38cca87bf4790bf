/*
 * dirty: see dirty.h.
 *
 * Method: a list of named bitmaps. Every QMP-like operation looks the name
 * up and runs QEMU's permission check (busy, readonly, inconsistent, in the
 * combination that operation uses) before touching anything, so a refused
 * operation changes nothing. A successor hangs off its parent and is marked
 * instead of it while the parent is frozen.
 */
#include "dirty.h"
#include "node.h"

#include <stdio.h>
#include <string.h>

/* Which states refuse an operation (QEMU's BDRV_BITMAP_* check flags). */
enum {
    REFUSE_BUSY = 1u << 0,
    REFUSE_RO = 1u << 1,
    REFUSE_INCONSISTENT = 1u << 2,
    REFUSE_DEFAULT = REFUSE_BUSY | REFUSE_RO | REFUSE_INCONSISTENT,
    REFUSE_ALLOW_RO = REFUSE_BUSY | REFUSE_INCONSISTENT,
};

struct dirty_set *dirty_set_new(uint64_t size)
{
    ASSERT(size > 0);
    struct dirty_set *s = mem_alloc(sizeof(*s));
    s->size = size;
    TAILQ_INIT(&s->list);
    return s;
}

static void bitmap_destroy(struct dirty_bitmap *b)
{
    if (b->successor) {
        bitmap_destroy(b->successor);
    }
    bitmap_free(b->bits);
    mem_free(b, sizeof(*b));
}

void dirty_set_free(struct dirty_set *s)
{
    if (!s) {
        return;
    }
    struct dirty_bitmap *b;
    while ((b = TAILQ_FIRST(&s->list)) != NULL) {
        TAILQ_REMOVE(&s->list, b, link);
        bitmap_destroy(b);
    }
    mem_free(s, sizeof(*s));
}

void dirty_mark(struct dirty_set *s, uint64_t offset, uint64_t len)
{
    struct dirty_bitmap *b;
    TAILQ_FOREACH(b, &s->list, link) {
        if (b->enabled) {
            bitmap_set(b->bits, offset, len);
        }
        if (b->successor && b->successor->enabled) {
            bitmap_set(b->successor->bits, offset, len);
        }
    }
}

struct dirty_bitmap *dirty_find(const struct dirty_set *s, const char *name)
{
    struct dirty_bitmap *b;
    TAILQ_FOREACH(b, &s->list, link) {
        if (strcmp(b->name, name) == 0) {
            return b;
        }
    }
    return NULL;
}

static int name_check(const char *name, struct err *e)
{
    if (name[0] == '\0') {
        return err_set(e, 0, 0, "Bitmap name cannot be empty");
    }
    if (strlen(name) >= DIRTY_NAME_MAX) {
        return err_set(e, 0, 0, "Bitmap name is too long (at most %d bytes)",
                       DIRTY_NAME_MAX - 1);
    }
    return 0;
}

static struct dirty_bitmap *bitmap_make(const struct dirty_set *s, const char *name,
                                        uint64_t gran)
{
    struct dirty_bitmap *b = mem_alloc(sizeof(*b));
    snprintf(b->name, sizeof(b->name), "%s", name);
    b->bits = bitmap_new(s->size, gran);
    return b;
}

int dirty_add(struct dirty_set *s, const char *name, uint64_t gran, unsigned flags,
              struct err *e, struct dirty_bitmap **out)
{
    if (name_check(name, e) < 0) {
        return -EINVAL;
    }
    gran = gran ? gran : DIRTY_GRAN_DEFAULT;
    if (!is_pow2(gran) || gran < BITMAP_GRAN_MIN) {
        err_set(e, 0, 0, "Granularity must be power of 2 and at least 512");
        return -EINVAL;
    }
    if (gran > (1ull << BITMAP_GRAN_SHIFT_MAX)) {
        err_set(e, 0, 0, "Granularity must be at most 2 GiB");
        return -EINVAL;
    }
    if (dirty_find(s, name)) {
        err_set(e, 0, 0, "Bitmap already exists: %s", name);
        return -EEXIST;
    }
    struct dirty_bitmap *b = bitmap_make(s, name, gran);
    b->persistent = (flags & DIRTY_ADD_PERSISTENT) != 0;
    b->inconsistent = (flags & DIRTY_ADD_INCONSISTENT) != 0;
    b->enabled = !(flags & (DIRTY_ADD_DISABLED | DIRTY_ADD_INCONSISTENT));
    TAILQ_INSERT_TAIL(&s->list, b, link);
    s->n++;
    if (out) {
        *out = b;
    }
    return 0;
}

/* Look @name up and apply QEMU's check for an operation refusing @refuse. */
static int lookup(const struct dirty_set *s, const char *name, unsigned refuse, struct err *e,
                  struct dirty_bitmap **out)
{
    struct dirty_bitmap *b = dirty_find(s, name);
    if (!b) {
        err_set(e, 0, 0, "Dirty bitmap '%s' not found", name);
        return -ENOENT;
    }
    if ((refuse & REFUSE_BUSY) && b->busy) {
        err_set(e, 0, 0, "Bitmap '%s' is currently in use by another operation and cannot "
                "be used", name);
        return -EBUSY;
    }
    if ((refuse & REFUSE_RO) && b->readonly) {
        err_set(e, 0, 0, "Bitmap '%s' is readonly and cannot be modified", name);
        return -EPERM;
    }
    if ((refuse & REFUSE_INCONSISTENT) && b->inconsistent) {
        err_set(e, 0, 0, "Bitmap '%s' is inconsistent and cannot be used (try "
                "block-dirty-bitmap-remove to delete it)", name);
        return -EINVAL;
    }
    *out = b;
    return 0;
}

int dirty_remove(struct dirty_set *s, const char *name, struct err *e)
{
    struct dirty_bitmap *b;
    TRY(lookup(s, name, REFUSE_BUSY, e, &b));
    TAILQ_REMOVE(&s->list, b, link);
    s->n--;
    bitmap_destroy(b);
    return 0;
}

int dirty_clear(struct dirty_set *s, const char *name, struct err *e)
{
    struct dirty_bitmap *b;
    TRY(lookup(s, name, REFUSE_DEFAULT, e, &b));
    bitmap_reset_all(b->bits);
    return 0;
}

static int enabled_set(struct dirty_set *s, const char *name, bool on, struct err *e)
{
    struct dirty_bitmap *b;
    TRY(lookup(s, name, REFUSE_ALLOW_RO, e, &b));
    b->enabled = on;
    return 0;
}

int dirty_enable(struct dirty_set *s, const char *name, struct err *e)
{
    return enabled_set(s, name, true, e);
}

int dirty_disable(struct dirty_set *s, const char *name, struct err *e)
{
    return enabled_set(s, name, false, e);
}

int dirty_merge(struct dirty_set *s, const char *src, const char *dst, struct err *e)
{
    struct dirty_bitmap *from;
    struct dirty_bitmap *to;
    TRY(lookup(s, dst, REFUSE_DEFAULT, e, &to));
    TRY(lookup(s, src, REFUSE_ALLOW_RO, e, &from));
    if (bitmap_merge(to->bits, from->bits) < 0) {
        err_set(e, 0, 0, "Bitmaps are of different sizes (destination %s, source %s) and "
                "can't be merged", dst, src);
        return -EINVAL;
    }
    return 0;
}

int dirty_persist(struct dirty_set *s, const char *name, bool persistent, struct err *e)
{
    struct dirty_bitmap *b;
    TRY(lookup(s, name, REFUSE_DEFAULT, e, &b));
    b->persistent = persistent;
    return 0;
}

int dirty_successor_create(struct dirty_set *s, const char *name, struct err *e)
{
    struct dirty_bitmap *b;
    TRY(lookup(s, name, REFUSE_DEFAULT, e, &b));
    ASSERT(!b->successor); /* a frozen bitmap is busy */
    b->successor = bitmap_make(s, "", bitmap_granularity(b->bits));
    b->successor->enabled = b->enabled;
    b->enabled = false;
    b->busy = true;
    return 0;
}

static int frozen_lookup(const struct dirty_set *s, const char *name, struct err *e,
                         struct dirty_bitmap **out)
{
    struct dirty_bitmap *b = dirty_find(s, name);
    if (!b) {
        err_set(e, 0, 0, "Dirty bitmap '%s' not found", name);
        return -ENOENT;
    }
    if (!b->successor) {
        err_set(e, 0, 0, "Bitmap '%s' has no successor (no operation owns it)", name);
        return -EINVAL;
    }
    *out = b;
    return 0;
}

int dirty_successor_abdicate(struct dirty_set *s, const char *name, struct err *e)
{
    struct dirty_bitmap *b;
    TRY(frozen_lookup(s, name, e, &b));
    struct dirty_bitmap *succ = b->successor;
    b->successor = NULL;
    memcpy(succ->name, b->name, sizeof(succ->name));
    succ->persistent = b->persistent;
    TAILQ_INSERT_AFTER(&s->list, b, succ, link);
    TAILQ_REMOVE(&s->list, b, link);
    bitmap_destroy(b);
    return 0;
}

int dirty_successor_reclaim(struct dirty_set *s, const char *name, struct err *e)
{
    struct dirty_bitmap *b;
    TRY(frozen_lookup(s, name, e, &b));
    struct dirty_bitmap *succ = b->successor;
    b->successor = NULL;
    if (!s->drop_successor) {
        int ret = bitmap_merge(b->bits, succ->bits);
        ASSERT(ret == 0); /* same size and granularity by construction */
    }
    b->enabled = succ->enabled;
    b->busy = false;
    bitmap_destroy(succ);
    return 0;
}

const char *dirty_status(const struct dirty_bitmap *b)
{
    return b->inconsistent ? "inconsistent"
           : b->successor  ? "frozen"
           : b->busy       ? "locked"
           : b->enabled    ? "active"
                           : "disabled";
}

bool dirty_recording(const struct dirty_bitmap *b)
{
    return b->enabled || (b->successor && b->successor->enabled);
}

void dirty_set_check(const struct dirty_set *s)
{
    unsigned n = 0;
    const struct dirty_bitmap *b;
    TAILQ_FOREACH(b, &s->list, link) {
        n++;
        ASSERT(b->name[0] != '\0');
        ASSERT(b->bits->size == s->size);
        if (b->successor) {
            ASSERT(b->busy && !b->enabled);
            ASSERT(b->successor->bits->gran_shift == b->bits->gran_shift);
            ASSERT(!b->successor->successor);
        }
        ASSERT(!b->inconsistent || !b->enabled);
        const struct dirty_bitmap *o = TAILQ_NEXT(b, link);
        for (; o; o = TAILQ_NEXT(o, link)) {
            ASSERT(strcmp(o->name, b->name) != 0);
        }
    }
    ASSERT(n == s->n);
}

const struct planted_bug dirty_bugs[] = {
    { "dirty-late-mark", NODE_MUTANT_DIRTY_LATE_MARK,
      "dirty bitmaps: a write marks them after its completion was reported" },
    { "dirty-reclaim-drop", NODE_MUTANT_DIRTY_RECLAIM_DROP,
      "dirty bitmaps: reclaim forgets the writes its successor recorded" },
};

const size_t dirty_bugs_count = ARRAY_LEN(dirty_bugs);
