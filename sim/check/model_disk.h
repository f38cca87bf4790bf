/*
 * model_disk: what a guest may read from each sector, now and after a crash.
 *
 * Role: the reference model of the read-your-writes and crash-consistency
 *   checker; far simpler than the stack it judges.
 * Model: flush and FUA semantics as QEMU states them for guest-visible
 *   devices: a completed flush makes durable every write that completed
 *   before the flush was submitted; a completed FUA write is durable.
 * Invariants: each sector keeps its candidates in completion order: the
 *   first is the durable base (the value known to survive a crash); every
 *   later one is a value that may have reached media. The values a read may
 *   return now ("current set") run from the last definite candidate to the
 *   end; a MAYBE candidate (failed write, discard) widens the set instead of
 *   replacing it. A sector with no entry holds zeroes, durably.
 * Ownership: the model owns its sector table and candidate arrays.
 * Async contract: none; the checker feeds it completions in event order.
 * Depends on: base, u64map.
 */
#ifndef BLOCKSIM_MODEL_DISK_H
#define BLOCKSIM_MODEL_DISK_H

#include <stdbool.h>
#include <stdint.h>

#include "../base/u64map.h"

enum {
    MODEL_MAYBE = 1u << 0,   /* may or may not have replaced what came before */
    MODEL_DURABLE = 1u << 1, /* on media: nothing before it survives a crash */
    MODEL_CRASHED = 1u << 2, /* a crash left it as one possible value */
};

struct model_cand {
    uint64_t tag;       /* content tag; 0 = zeroes */
    uint64_t seq : 56;  /* model sequence number at completion */
    uint64_t flags : 8; /* MODEL_* */
};

#define MODEL_CHUNK_SECTORS 8 /* sectors per index entry (4 KiB) */

/* 24 bytes: a 4 KiB chunk's eight sectors take three cache lines. One
 * candidate (the common case) is held inline; more move to the heap. */
struct model_sector {
    union {
        struct model_cand one;   /* cap 1 */
        struct model_cand *heap; /* cap > 1 */
    } c;
    uint32_t n;
    uint32_t cap;
};

struct model_chunk {
    struct model_sector s[MODEL_CHUNK_SECTORS];
};

struct model_disk {
    struct u64map index;      /* chunk number -> position in chunks[] */
    struct model_chunk *chunks;
    uint64_t n_chunks;
    uint64_t cap_chunks;
    uint64_t last_chunk;      /* one-entry lookup cache: chunk number ... */
    uint64_t last_pos;        /* ... and its position, or UINT64_MAX */
    uint64_t seq;             /* bumped at every completion */
    uint64_t durable_seq;     /* completions below it are durable */
    bool crash_free;          /* no crash can come in this run (its owner says so):
                               * only the current set is kept, since older values
                               * are seen only after a crash */
};

void model_disk_init(struct model_disk *m);
/* The disk has @sectors (a hint, on an empty model: the index of a disk
 * up to 4 GiB becomes a flat array). */
void model_disk_size(struct model_disk *m, uint64_t sectors);

void model_disk_fini(struct model_disk *m);

/* A new sequence number for a completion (or a flush's submission). */
uint64_t model_disk_tick(struct model_disk *m);

/* The disk starts from image @img (@len bytes): each sector holds its
 * bytes, durably (zeroes, a pattern, or CONTENT_TAG_IMAGE). */
void model_disk_image(struct model_disk *m, const uint8_t *img, uint64_t len);

/* Record a completed write of @tag over sectors [first, first + n); @flags is
 * MODEL_MAYBE (failed or advisory) and/or MODEL_DURABLE (FUA). */
void model_disk_write(struct model_disk *m, uint64_t first, uint64_t n, uint64_t tag,
                      uint32_t flags);

/* A flush submitted at @submit_seq completed. */
void model_disk_flush(struct model_disk *m, uint64_t submit_seq);

/* Power loss: every value that may be on media becomes possible. */
void model_disk_crash(struct model_disk *m);

/* Is @tag a value sector @s may hold now? If so, narrow the sector to it
 * (what was read is what is there). If not, the current set is written to
 * @expect (at most @max tags) and its size to *n_expect (else 0). */
bool model_disk_read(struct model_disk *m, uint64_t s, uint64_t tag, uint64_t *expect,
                     unsigned max, unsigned *n_expect);

/* Replicas: is @tag in sector @s's current set while that set still holds
 * a value a crash left possible? Then each replica may hold a different one
 * of them and a whole-request vote may return any, read after read: no
 * narrowing. False otherwise (model_disk_read decides). */
bool model_disk_holds_crashed(const struct model_disk *m, uint64_t s, uint64_t tag);

/* The current set of sector @s without narrowing. */
unsigned model_disk_current(const struct model_disk *m, uint64_t s, uint64_t *expect,
                            unsigned max);

/* Make @dst's sectors hold @src's current values, durably (overlay commit
 * copies the view into the backing node; make-empty the reverse). */
void model_disk_assign(struct model_disk *dst, const struct model_disk *src);

void model_disk_check(const struct model_disk *m);

#endif
