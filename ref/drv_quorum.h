/*
 * drv_quorum: a node that keeps N copies of its bytes on N children and
 *   votes on what it reads back (the primary's guest disk in COLO).
 *
 * Role: writes, write-zeroes and flushes go to every child; a read either
 *   votes over every child's data (read-pattern quorum) or takes the first
 *   child that answers (fifo). Children can be added and removed while the
 *   node runs (x-blockdev-change).
 * Model: QEMU's block/quorum.c (spec §2), with the 2015 COLO series'
 *   per-child ignore-errors (§2.8) and, as a switch, its flush that voted
 *   over every return code (§2.5):
 *   - writes: success iff at least vote-threshold children succeeded, else
 *     the most frequent error (QUORUM_FAILURE); each failing child is
 *     reported. A write that reached fewer than all children still succeeds:
 *     the children silently diverge.
 *   - quorum reads: failing children are reported; fewer successes than the
 *     threshold fail with the most frequent error; if every success holds
 *     the same bytes they are returned; otherwise equal buffers form
 *     versions, the version with the most votes wins and must have at least
 *     vote-threshold of them (else -EIO and QUORUM_FAILURE); children in a
 *     losing version are reported (no error) and, with rewrite-corrupted,
 *     rewritten with the winner before the read completes.
 *   - ties, between versions and between error codes, go to the one first
 *     seen at the highest child index (QEMU keeps versions newest-first).
 *   - blkverify (two children, threshold two): a mismatch is reported with
 *     the first differing byte. QEMU then exits the process; here the read
 *     fails with -EIO so that a run can go on and judge it.
 *   - fifo reads: children in order, first success wins; each failure is
 *     reported; all failing returns the last child's error.
 *   - flush: failures are reported (sector range 0+0), success iff at least
 *     vote-threshold children succeeded (an ignore-errors child's failure
 *     counts as success); no QUORUM_FAILURE.
 *   - discard: QEMU's quorum has no discard callback, so the block layer
 *     answers 0 without touching the children; so does this driver.
 *   - block status: ZERO only when every child says zero (shortest zero
 *     run), else DATA (longest data run); a child error counts as data.
 *   - ignore-errors: a failing ignored child is not reported and still does
 *     not count as a success, but its errno still takes part in the error
 *     vote; at open, an ignored child of length 0 (an NBD child not yet
 *     connected) is left out of the length check.
 *   - with read-pattern fifo, blkverify and rewrite-corrupted are ignored,
 *     as QEMU only parses them for the quorum pattern.
 *   Events go to a callback; QEMU's monitor throttles them to one a second
 *   per type, which is the monitor's business, not the driver's.
 * Invariants: n->children[i] is the child named children.<index[i]>; every
 *   request takes its own copy of the child list at submission, so adding
 *   or removing children never touches requests in flight; a request
 *   completes only after every child request it issued (reads, rewrites).
 * Ownership: children belong to the graph; a removed child stays in the
 *   graph, detached. Per-request buffers are the driver's.
 * Async contract: requests complete through req_complete; the event
 *   callback runs inside the completion path, before the request completes.
 * Depends on: node.
 */
#ifndef BLOCKSIM_DRV_QUORUM_H
#define BLOCKSIM_DRV_QUORUM_H

#include "node.h"

enum quorum_read_pattern { QUORUM_READ_QUORUM, QUORUM_READ_FIFO };

enum quorum_event_kind {
    QUORUM_REPORT_BAD,     /* a child failed or disagreed */
    QUORUM_FAILURE,        /* not enough children agreed or succeeded */
    QUORUM_VERIFY_MISMATCH, /* blkverify: the two children differ */
};

struct quorum_event {
    enum quorum_event_kind kind;
    enum node_op op;       /* REPORT_BAD: read, write (also write-zeroes), flush */
    int error;             /* REPORT_BAD: the child's errno, 0 for a losing version */
    unsigned child;        /* REPORT_BAD: N of children.N; else UINT32_MAX */
    const char *node_name; /* REPORT_BAD: the child node; FAILURE: the quorum */
    uint64_t sector_num;   /* the request, in 512-byte sectors (flush: 0) */
    uint64_t sectors_count;
    uint64_t mismatch;     /* VERIFY_MISMATCH: byte offset of the first difference */
};

typedef void quorum_event_cb(void *opaque, const struct quorum_event *ev);

struct drv_quorum_opts {
    struct node *children[NODE_CHILDREN_MAX];
    bool ignore_errors[NODE_CHILDREN_MAX];
    unsigned n_children;
    unsigned threshold;            /* vote-threshold */
    enum quorum_read_pattern read_pattern;
    bool rewrite_corrupted;
    bool blkverify;
    bool flush_vote_all;           /* the 2015 series: flush votes over every code */
    quorum_event_cb *on_event;     /* NULL: events are only counted */
    void *opaque;
};

struct quorum_stats {
    uint64_t votes;      /* reads that took the slow path (children differed) */
    uint64_t reports;    /* QUORUM_REPORT_BAD events */
    uint64_t failures;   /* QUORUM_FAILURE events */
    uint64_t rewrites;   /* child writes issued by rewrite-corrupted */
    uint64_t mismatches; /* blkverify mismatches */
};

extern const struct node_driver drv_quorum;

/* x-blockdev-change add: attach @child as children.<next index>. Refused in
 * blkverify mode, past NODE_CHILDREN_MAX, or when the child's length differs
 * (unless it is 0 and @ignore_errors). */
int quorum_child_add(struct node *n, struct node *child, bool ignore_errors,
                     struct err *e) WUR;

/* x-blockdev-change del of the child named @name ("children.N"). Refused
 * when the children would be fewer than the threshold. */
int quorum_child_del(struct node *n, const char *name, struct err *e) WUR;

/* N of children.N for the child at position @slot of n->children. */
unsigned quorum_child_index(const struct node *n, unsigned slot);

const struct quorum_stats *quorum_stats(const struct node *n);

const char *quorum_event_name(enum quorum_event_kind k);

/* This module's planted bugs (sim/trace/mutant gathers them). */
extern const struct planted_bug drv_quorum_bugs[];
extern const size_t drv_quorum_bugs_count;

#endif
