/*
 * check_rw: the read-your-writes and crash-consistency checker.
 *
 * Role: judge every guest read against the model disk, feed the model every
 *   guest completion, and tell a stack bug from an injected fault.
 * Model: model_disk; content tags from content.h.
 * Invariants: the first violation is kept and never overwritten; a mismatch
 *   on a sector an injected fault tainted counts as explained, not as a
 *   violation.
 * Ownership: the checker owns its models; the taint oracle is borrowed.
 * Async contract: none; called from completion events in event order.
 * Depends on: model_disk, content, base.
 */
#ifndef BLOCKSIM_CHECK_RW_H
#define BLOCKSIM_CHECK_RW_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "model_disk.h"

#define CHECK_EXPECT_MAX 4

struct violation {
    char property[32];      /* "read-your-writes", "crash-consistency", ... */
    uint64_t op_index;      /* the guest operation that observed it */
    unsigned line;          /* its trace line, 0 if none */
    uint64_t time_ns;
    uint64_t sector;
    uint64_t expected[CHECK_EXPECT_MAX]; /* tags the model allowed */
    unsigned n_expected;
    uint64_t actual;        /* tag read, CONTENT_TAG_ZERO or CONTENT_TAG_GARBAGE */
    uint64_t actual_home;   /* garbage that is another sector's data: that sector */
    char msg[320];
};

/* Says whether an injected fault explains a wrong value at guest @sector. */
typedef bool check_taint_fn(void *opaque, uint64_t sector);

struct check_rw {
    struct model_disk model;
    uint64_t seed;            /* content seed */
    bool crashed;             /* a crash happened: violations are crash-consistency */
    bool replicas;            /* the guest reads a vote over replicas (quorum): after a
                               * crash they may diverge, so a read does not narrow a
                               * sector's crash-possible values (the hazard of a
                               * quorum without resync) */
    bool data_elsewhere;      /* the guest's disk sits on another host (a mirror moved
                               * it there): the guest's host crashing loses no cache of
                               * it (that host's crash calls check_rw_crash itself) */
    bool failed;
    struct violation first;
    uint64_t sectors_checked;
    uint64_t explained;       /* mismatches explained by injected faults */
    check_taint_fn *taint;
    void *taint_opaque;
    const uint8_t *image;     /* the guest's starting image (borrowed), or NULL */
    uint64_t image_sectors;
};

void check_rw_init(struct check_rw *c, uint64_t seed, check_taint_fn *taint, void *opaque);
void check_rw_fini(struct check_rw *c);

/* The guest started from @image (@len bytes, borrowed for the run): a read
 * of a sector's exact image bytes is "the image's data" (the model was told
 * what the image holds), whatever else those bytes look like. */
void check_rw_image(struct check_rw *c, const uint8_t *image, uint64_t len);

/* Completions, in event order. @ok is ret == 0. */
void check_rw_write_done(struct check_rw *c, uint64_t sector, uint64_t n, uint64_t tag,
                         bool ok, bool fua);
void check_rw_discard_done(struct check_rw *c, uint64_t sector, uint64_t n);
uint64_t check_rw_flush_submit(struct check_rw *c);
void check_rw_flush_done(struct check_rw *c, uint64_t submit_seq, bool ok);

/* A write in flight when its host lost power: it may have landed. */
void check_rw_write_lost(struct check_rw *c, uint64_t sector, uint64_t n, uint64_t tag);
void check_rw_crash(struct check_rw *c);

/* Judge a successful read of @n sectors from @sector. Returns false on the
 * first violation (kept in c->first, with @op_index, @line and @now_ns). */
bool check_rw_read_done(struct check_rw *c, const uint8_t *buf, uint64_t sector, uint64_t n,
                        uint64_t op_index, unsigned line, uint64_t now_ns);

/* The same, from the sectors' content tags (content_identify of the bytes,
 * or what a described read answered); @buf the bytes, NULL if described. */
bool check_rw_read_tags(struct check_rw *c, const uint64_t *tags, const uint8_t *buf,
                        uint64_t sector, uint64_t n, uint64_t op_index, unsigned line,
                        uint64_t now_ns);

/* Start violation @v afresh: zeroed, of @property. */
void check_violation_begin(struct violation *v, const char *property);

/* A violation as a JSON object (property, message, where; for a wrong
 * value the sector, the values allowed and the one read). */
json_t *check_violation_json(const struct violation *v);

/* The checker's own section of the JSON report: what it judged, what
 * faults explained, its first violation. */
json_t *check_rw_json(const struct check_rw *c);

/* Assert the checker's invariants (cheap: the world calls it at every pump). */
void check_rw_check(const struct check_rw *c);

/* Describe a tag for humans: "write #12", "zeroes", "garbage". */
void check_tag_name(uint64_t tag, char *buf, size_t size);

#endif
