/*
 * check_colo: the model behind COLO replication's invariants (spec §1.6).
 *
 * Role: knows C, the contents at the last checkpoint, and S, the secondary
 *   guest's writes since, sector by sector, as content tags; judges what
 *   the secondary guest reads (I1: C + S), what the hidden disk holds (I3:
 *   C), and the secondary disk after a failover (I4: C + S). What the disks
 *   are compared with one another at a checkpoint (I2, I5) is the colo
 *   topology's to read; this module names the violation.
 * Model: spec §1.2 (what each disk holds) and §1.6 (I1-I6).
 * Invariants: S and unsure hold sectors below `sectors`; after a
 *   checkpoint S is empty.
 * Ownership: the checker owns its maps.
 * Async contract: none.
 * Depends on: check_rw (struct violation), content, u64map.
 */
#ifndef BLOCKSIM_CHECK_COLO_H
#define BLOCKSIM_CHECK_COLO_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "../base/u64map.h"
#include "check_rw.h"

struct check_colo {
    uint64_t seed;
    uint64_t sectors;
    struct u64map c;      /* sector -> tag at the last checkpoint (absent: zeroes) */
    struct u64map s;      /* sector -> the secondary guest's tag since */
    struct u64map unsure; /* sectors a failed or lost secondary write may have changed */
    bool synced;          /* C is known: the pair started, or checkpointed, in sync */
    uint64_t reads_judged;
    uint64_t sectors_judged;
    uint64_t hidden_checked;   /* hidden clusters compared with C */
    uint64_t checkpoints_checked;
    uint64_t failovers_checked;
    bool failed;
    struct violation first;
};

void check_colo_init(struct check_colo *c, uint64_t seed, uint64_t sectors);
void check_colo_fini(struct check_colo *c);

/* The secondary guest's write of @n sectors at @first with @tag ended (@ok),
 * or was lost with its host (!@ok and @lost). */
void check_colo_write(struct check_colo *c, uint64_t first, uint64_t n, uint64_t tag, bool ok);

/* I1: the secondary guest read @data (@n sectors at @first); false and the
 * violation "colo-view" when a sector is neither S nor C. */
bool check_colo_read(struct check_colo *c, const uint8_t *data, uint64_t first, uint64_t n,
                     uint64_t op_index, unsigned line, uint64_t now_ns);

/* The view (C + S) at @sector: its tag; false when unsure. */
bool check_colo_view(const struct check_colo *c, uint64_t sector, uint64_t *tag);
/* C at @sector. */
uint64_t check_colo_c(const struct check_colo *c, uint64_t sector);

/* I3 and I4: @n sectors at @first read from @what hold @data; each must
 * be C (@view false) or C + S (@view true). False and a violation of
 * @property, naming @what, when one is not. @explained, if given, excuses
 * a sector an injected fault touched. */
bool check_colo_compare(struct check_colo *c, const char *property, const char *what,
                        const uint8_t *data, uint64_t first, uint64_t n, bool view,
                        bool (*explained)(void *opaque, uint64_t sector), void *opaque,
                        uint64_t now_ns);

/* A checkpoint completed: S empties, and C (all of it when @whole) becomes
 * what check_colo_checkpoint_data tells next: @n sectors at @first hold
 * @data (C keeps its other sectors). */
void check_colo_checkpoint_begin(struct check_colo *c, bool whole);
void check_colo_checkpoint_data(struct check_colo *c, const uint8_t *data, uint64_t first,
                                uint64_t n);
/* A failover completed: the secondary disk is the view; C becomes it. */
void check_colo_failover(struct check_colo *c);

/* A violation found by the topology (I2, I5, I6, liveness). */
void check_colo_fail(struct check_colo *c, const char *property, uint64_t sector,
                     uint64_t expected, uint64_t actual, uint64_t now_ns, const char *msg);

void check_colo_check(const struct check_colo *c);
json_t *check_colo_json(const struct check_colo *c);

#endif
