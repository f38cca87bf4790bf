/*
 * check_quorum: the quorum checker, a naive model of the vote.
 *
 * Role: judge every request the quorum node completed against what each of
 *   its children answered (seen through sim/tap, not through the driver):
 *   the result, the data a read returned, the children reported
 *   (QUORUM_REPORT_BAD), QUORUM_FAILURE, and the repair of the minority
 *   under rewrite-corrupted.
 * Model: spec §2 written as plainly as possible: per request, count
 *   successes; group read buffers by their hash; the biggest group wins,
 *   ties to the group whose first child has the highest index (the same
 *   for error codes); compare the winner with the threshold. fifo: the
 *   first child that succeeded. It shares no code with ref/drv_quorum.
 * Invariants: the world never has two overlapping requests (nor a flush
 *   and anything) in flight on a quorum, so the child answers and events
 *   that match a request's operation and range are that request's; they
 *   are consumed when it is judged. The first violation is kept.
 * Ownership: the checker owns its logs.
 * Async contract: none; called from completion events in event order.
 * Depends on: ref/drv_quorum (event types), check_rw (struct violation).
 */
#ifndef BLOCKSIM_CHECK_QUORUM_H
#define BLOCKSIM_CHECK_QUORUM_H

#include <stdbool.h>
#include <stdint.h>

#include "../../ref/drv_quorum.h"
#include "check_rw.h"

struct cq_io {
    unsigned child;
    enum node_op op;
    uint64_t offset, len;
    int ret;
    uint64_t hash; /* reads and writes: of the bytes */
};

struct cq_ev {
    enum quorum_event_kind kind;
    enum node_op op;
    int error;
    unsigned child;
    uint64_t offset, len;
};

struct check_quorum {
    unsigned n;
    unsigned threshold;
    bool fifo;
    bool rewrite;
    unsigned ignore_mask;
    struct cq_io *io;
    size_t n_io, cap_io;
    struct cq_ev *ev;
    size_t n_ev, cap_ev;
    bool failed;
    struct violation first;
    uint64_t judged;   /* requests judged */
    uint64_t votes;    /* reads whose children disagreed */
    uint64_t repairs;  /* rewrites seen */
};

void check_quorum_init(struct check_quorum *c, unsigned n, unsigned threshold, bool fifo,
                       bool rewrite, unsigned ignore_mask);
void check_quorum_fini(struct check_quorum *c);

/* A child finished a request (@hash: of a read's data or a write's source,
 * as sim/base/content's content_hash makes it, or any hash that is equal
 * exactly for equal contents). */
void check_quorum_child(struct check_quorum *c, unsigned child, enum node_op op,
                        uint64_t offset, uint64_t len, int ret, uint64_t hash);

void check_quorum_event(struct check_quorum *c, const struct quorum_event *ev);

/* The quorum completed @op with @ret (@hash: of what a read returned, made
 * as the children's). @line, @op_index and @now_ns say where, for the
 * report. False on a violation. */
bool check_quorum_done(struct check_quorum *c, enum node_op op, uint64_t offset, uint64_t len,
                       int ret, uint64_t hash, unsigned line, uint64_t op_index,
                       uint64_t now_ns);

/* The host crashed: what its requests left behind is forgotten. */
void check_quorum_reset(struct check_quorum *c);

/* The checker's own section of the JSON report. */
json_t *check_quorum_json(const struct check_quorum *c);

/* Assert the checker's invariants (cheap; checked at every judgement). */
void check_quorum_check(const struct check_quorum *c);

#endif
