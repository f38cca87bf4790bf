/*
 * check_bitmap: the dirty bitmap checker, a naive model of every named
 *   bitmap on the guest disk and of what its persistence holds.
 *
 * Role: judge ref/dirty and ref/qbm during a run. Four properties:
 *   bitmap-coverage: when a write, write-zeroes or discard is acknowledged,
 *     every enabled bitmap (and enabled successor) covers its range;
 *   bitmap-store: a cleanly stored bitmap loads back bit for bit, with its
 *     granularity and enabled state;
 *   bitmap-crash: a bitmap that was in use when the host crashed loads as
 *     inconsistent, never with trusted bits;
 *   bitmap-successor: after successor create, abdicate and reclaim (and
 *     every other operation) the bitmaps hold exactly the model's bits, so
 *     no write is lost across the backup dance.
 * Model: shared/spec/qemu-semantics.md §5.4 and §6.2, re-stated naively: one
 *   byte per group, QEMU's refusal rules, the qcow2 in-use lifecycle. The
 *   model never calls ref/ to decide anything; it only reads ref/'s state.
 * Invariants: the durable image is what the last successful sync or store
 *   made durable (the world never crashes during one).
 * Ownership: the checker owns its model; the dirty sets it reads are
 *   borrowed for the call.
 * Async contract: none.
 * Depends on: ref/dirty, check_rw (struct violation), trace (bitmap ops).
 */
#ifndef BLOCKSIM_CHECK_BITMAP_H
#define BLOCKSIM_CHECK_BITMAP_H

#include <stdbool.h>
#include <stdint.h>

#include "../../ref/dirty.h"
#include "check_rw.h"
#include "../trace/trace.h"

struct cb_map;
struct cb_stored;

struct check_bitmap {
    uint64_t size;
    struct cb_map *maps;       /* the live bitmaps, creation order */
    size_t n;
    size_t cap;
    struct cb_stored *stored;  /* the durable image */
    size_t n_stored;
    size_t cap_stored;
    bool crashed;              /* the host went down by a crash since the last load */
    bool failed;
    struct violation first;
    uint64_t checks;           /* coverage checks made */
    uint64_t explained;        /* loads that differed, explained by injected faults */
};

/* Where a check happens, for the violation record. */
struct cb_where {
    unsigned line;
    uint64_t time_ns;
    uint64_t op_index;
};

void check_bitmap_init(struct check_bitmap *c, uint64_t size);
void check_bitmap_fini(struct check_bitmap *c);

/* The model's answer to @op: 0 when it is accepted (and applied to the
 * model), else the negative errno QEMU refuses it with. @gran is the
 * resolved granularity of an add. */
int check_bitmap_apply(struct check_bitmap *c, const struct trace_bitmap *op, uint64_t gran);

/* Does the model's bitmap @name have a dirty bit in [offset, offset + len)?
 * (What an incremental backup must copy, as the model sees it.) */
bool check_bitmap_model_dirty(const struct check_bitmap *c, const char *name, uint64_t offset,
                              uint64_t len);

/* A backup with bitmap-mode=always failed: it abdicated bitmap @name and
 * merged in what it did not copy. The model abdicates too; then @real's
 * bitmap must hold every bit of the successor and every range @must (one
 * byte a @gran range) says the job certainly did not copy, and nothing
 * beyond the successor and its copy set @may (unless guest writes are in
 * flight: the stack may have marked them already); within those bounds the
 * stack's bits become the model's (what it copied is its choice). */
void check_bitmap_abdicate_merged(struct check_bitmap *c, const struct dirty_set *real,
                                  const char *name, const uint8_t *must, const uint8_t *may,
                                  uint64_t gran, bool writes_in_flight,
                                  const struct cb_where *at);

/* The frozen bitmaps' operations failed with the host going down: reclaim. */
void check_bitmap_reclaim_all(struct check_bitmap *c);

/* A write-like request on [offset, offset + len) completed: mark the model,
 * then check that @real covers it in every recording bitmap. */
void check_bitmap_write_done(struct check_bitmap *c, const struct dirty_set *real,
                             uint64_t offset, uint64_t len, const struct cb_where *at);

/* Compare every bitmap of @real with the model (names, granularity,
 * states, bits); @property names what a difference violates. */
void check_bitmap_compare(struct check_bitmap *c, const struct dirty_set *real,
                          const char *property, const struct cb_where *at);

/* The persistence reached disk: a sync (every persistent bitmap in use) or
 * a clean store. */
void check_bitmap_synced(struct check_bitmap *c);
void check_bitmap_stored(struct check_bitmap *c);

/* The host went down: cleanly (after a store) or by a crash. */
void check_bitmap_down(struct check_bitmap *c, bool crash);

/* The stack reloaded its bitmaps into @real: compare them with what was
 * stored. @lost: an injected fault made the newest descriptor write never
 * land (undetectable: an older, self-consistent state may load), or made
 * its slot fail its checksum when read back (the loader rightly falls back
 * to the older slot), so any difference is explained. @corrupted: faults
 * damaged the files in ways the QBM checksums cover: a bitmap the loader
 * refused (inconsistent or missing) is explained, but one it loaded as
 * consistent must be the stored one, bit for bit (a loader that skips a
 * checksum is caught). */
void check_bitmap_loaded(struct check_bitmap *c, const struct dirty_set *real,
                         const struct cb_where *at, bool lost, bool corrupted);

/* The checker's own section of the JSON report. */
json_t *check_bitmap_json(const struct check_bitmap *c);

/* Assert the model's invariants: unique names, power-of-two granularities,
 * a successor only while frozen, one bit value per group byte. O(bits). */
void check_bitmap_check(const struct check_bitmap *c);

#endif
