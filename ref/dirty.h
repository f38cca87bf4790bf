/*
 * dirty: named dirty bitmaps on a node, their states and QMP-like operations.
 *
 * Role: what block-dirty-bitmap-add/remove/clear/enable/disable/merge do, the
 *   successor dance of incremental backup, and the marking of every guest
 *   write, write-zeroes and discard (node.c calls dirty_mark).
 * Model: QEMU's BdrvDirtyBitmap (block/dirty-bitmap.c, blockdev.c;
 *   shared/spec/qemu-semantics.md §5.4): enabled or disabled, busy (owned by
 *   an operation), frozen (has a successor; busy too), readonly,
 *   inconsistent (loaded with in_use set: no data, disabled, only removal),
 *   persistent. Error texts follow QEMU's.
 * Invariants: names are unique and non-empty in a set; a frozen bitmap is
 *   busy and disabled; a successor is anonymous, not in the list, and has its
 *   parent's granularity and size; an inconsistent bitmap is disabled.
 * Ownership: a set owns its bitmaps; dirty_set_free frees them all.
 * Async contract: none; persistence is qbm.h's business.
 * Depends on: base, bitmap.
 */
#ifndef BLOCKSIM_DIRTY_H
#define BLOCKSIM_DIRTY_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/queue.h>

#include "base.h"
#include "bitmap.h"

#define DIRTY_NAME_MAX 64 /* bytes with the NUL; QEMU allows 1023 */
#define DIRTY_GRAN_DEFAULT 65536u

struct dirty_bitmap {
    char name[DIRTY_NAME_MAX];
    struct bitmap *bits;
    bool enabled;      /* records writes */
    bool busy;         /* owned by an operation (a job, an export) */
    bool readonly;     /* its image is read-only */
    bool inconsistent; /* found in use at load: no data, only removal */
    bool persistent;   /* stored with the image (qbm.h) */
    struct dirty_bitmap *successor; /* frozen while non-NULL */
    TAILQ_ENTRY(dirty_bitmap) link;
};

TAILQ_HEAD(dirty_list, dirty_bitmap);

struct dirty_set {
    uint64_t size;       /* bytes of the node */
    struct dirty_list list; /* creation order */
    unsigned n;
    bool drop_successor; /* planted bug: reclaim forgets the successor's bits */
};

enum {
    DIRTY_ADD_PERSISTENT = 1u << 0,
    DIRTY_ADD_DISABLED = 1u << 1,
    DIRTY_ADD_INCONSISTENT = 1u << 2, /* the loader's: no data, disabled */
};

struct dirty_set *dirty_set_new(uint64_t size);
void dirty_set_free(struct dirty_set *s); /* NULL is fine */

/* Mark [offset, offset + len) in every enabled bitmap and enabled successor. */
void dirty_mark(struct dirty_set *s, uint64_t offset, uint64_t len);

struct dirty_bitmap *dirty_find(const struct dirty_set *s, const char *name);

/* Add a bitmap (block-dirty-bitmap-add). @gran 0 means DIRTY_GRAN_DEFAULT.
 * Returns 0 and *out (may be NULL), or -EINVAL / -EEXIST with @e filled. */
int dirty_add(struct dirty_set *s, const char *name, uint64_t gran, unsigned flags,
              struct err *e, struct dirty_bitmap **out) WUR;

/* Each returns 0, or a negative errno with @e filled in QEMU's words:
 * -ENOENT (no such bitmap), -EBUSY (busy or frozen), -EPERM (readonly),
 * -EINVAL (inconsistent, or incompatible sizes for merge). */
int dirty_remove(struct dirty_set *s, const char *name, struct err *e) WUR;
int dirty_clear(struct dirty_set *s, const char *name, struct err *e) WUR;
int dirty_enable(struct dirty_set *s, const char *name, struct err *e) WUR;
int dirty_disable(struct dirty_set *s, const char *name, struct err *e) WUR;
/* dst |= src (any granularities, same size). */
int dirty_merge(struct dirty_set *s, const char *src, const char *dst, struct err *e) WUR;
/* The seed's block-dirty-bitmap-set-persistent. */
int dirty_persist(struct dirty_set *s, const char *name, bool persistent, struct err *e) WUR;

/* Incremental backup. create_successor: the parent turns busy and disabled,
 * an anonymous successor (enabled iff the parent was) takes new writes.
 * abdicate (the job succeeded): the successor takes the parent's name and
 * persistence, the parent's bits are dropped. reclaim (the job failed):
 * the parent gets the successor's bits back, enabled iff it was, not busy. */
int dirty_successor_create(struct dirty_set *s, const char *name, struct err *e) WUR;
int dirty_successor_abdicate(struct dirty_set *s, const char *name, struct err *e) WUR;
int dirty_successor_reclaim(struct dirty_set *s, const char *name, struct err *e) WUR;

/* QEMU's legacy status word: inconsistent > frozen > locked > disabled > active. */
const char *dirty_status(const struct dirty_bitmap *b);

/* Writes recorded: enabled, or frozen with an enabled successor. */
bool dirty_recording(const struct dirty_bitmap *b);

void dirty_set_check(const struct dirty_set *s);

/* This module's planted bugs (sim/trace/mutant gathers them). */
extern const struct planted_bug dirty_bugs[];
extern const size_t dirty_bugs_count;

#endif
