/*
 * fault: fault rules as data, and the plan that holds a run's rules.
 *
 * Role: describe when a simulated disk misbehaves: which kind of fault, on
 *   which disk, over which byte range, in which time window, and how often
 *   (probability, every nth matching request, at most some times).
 * Model: the kernel's fault-injection knobs (probability, interval, times)
 *   and QEMU's blkdebug rules; SQLite's test VFS as a shim over storage.
 * Invariants: range_end > range_start; before_ns > after_ns when set;
 *   fired <= times when times is set (sticky rules stop counting once stuck).
 * Ownership: a plan owns its rules array.
 * Async contract: none.
 * Depends on: base, rng.
 *
 * Text form (one rule; the trace's "fault" line and --faults use it):
 *   KIND [disk=NAME] [range=START-END] [after=DUR] [before=DUR]
 *        [prob=P|P%] [nth=N] [times=N] [sticky] [delta=SIZE]
 *   NETKIND [host=NAME] [oneway] [after=DUR] [before=DUR] [prob=P] [nth=N]
 *        [times=N] [delay=DUR]
 * KIND: read-eio write-eio flush-eio enospc latent misdirect read-corrupt.
 * The read kinds also hit the synchronous reads of disks that ask for it
 * (the QBM files, whose loader reads them at open).
 * NETKIND (sim/net; host= matches traffic from or to that host, with oneway
 * only traffic to it):
 *   net-reset  a segment resets its connection (prob/nth/times per segment)
 *   clog       a segment is held up to delay= longer (FoundationDB's clogging)
 *   net-stall  in the window, delivery waits for its end (no reset)
 *   partition  in the window nothing gets through and connects fail; data
 *              waits for the heal, or the connection times out when the heal
 *              is too far (or never: no before=)
 * Without prob and nth a rule fires on every matching request.
 */
#ifndef BLOCKSIM_FAULT_H
#define BLOCKSIM_FAULT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "../../ref/base.h"
#include "../base/rng.h"

enum fault_kind {
    FAULT_READ_EIO,     /* a read fails with -EIO */
    FAULT_WRITE_EIO,    /* a write fails with -EIO; a prefix may have landed */
    FAULT_FLUSH_EIO,    /* a flush fails with -EIO; nothing becomes durable */
    FAULT_ENOSPC,       /* a write fails with -ENOSPC; nothing landed */
    FAULT_LATENT,       /* one sector in range turns unreadable until rewritten */
    FAULT_MISDIRECT,    /* a write lands at offset + delta instead */
    FAULT_READ_CORRUPT, /* a read returns one flipped byte; media unchanged */
    FAULT_NET_RESET,    /* sim/net: a segment resets its connection */
    FAULT_NET_CLOG,     /* sim/net: a segment is delayed up to delay_ns more */
    FAULT_NET_STALL,    /* sim/net: delivery waits for the window's end */
    FAULT_NET_PARTITION, /* sim/net: no traffic and no connects in the window */
    FAULT__COUNT,
};

enum fault_io {
    FAULT_IO_READ,
    FAULT_IO_WRITE, /* write and write-zeroes */
    FAULT_IO_FLUSH,
    FAULT_IO_DISCARD,
    FAULT_IO_NET,   /* a network segment or connect */
};

#define FAULT_NAME_MAX 32

struct fault_rule {
    enum fault_kind kind;
    char disk[FAULT_NAME_MAX]; /* "" matches every disk; net kinds: the host */
    uint64_t range_start;      /* bytes */
    uint64_t range_end;        /* exclusive; UINT64_MAX: to the end */
    uint64_t after_ns;
    uint64_t before_ns;        /* exclusive; UINT64_MAX: forever */
    uint64_t prob;             /* threshold out of 2^64; 0 when unset */
    uint64_t nth;              /* 0 when unset */
    uint64_t times;            /* 0: unlimited */
    uint64_t delta;            /* misdirect distance in bytes */
    uint64_t delay_ns;         /* clog: the most extra delay */
    bool sticky;               /* EIO kinds: once fired, the range keeps failing */
    bool oneway;               /* net kinds: only traffic to the host */
    bool prob_set;
    /* Run state. */
    uint64_t matched;
    uint64_t fired;
    bool stuck;
};

struct fault_plan {
    struct fault_rule *rules;
    size_t n;
    size_t cap;
    bool paused;  /* no rule fires (the run is over: exports read the truth) */
};

const char *fault_kind_name(enum fault_kind kind);

/* Parse one rule from @text. On error fills @e (field = 1-based word). */
int fault_rule_parse(const char *text, struct fault_rule *out, struct err *e) WUR;

/* Canonical text of @r (what fault_rule_parse reads back to the same rule). */
void fault_rule_format(const struct fault_rule *r, char *buf, size_t size);

void fault_plan_init(struct fault_plan *p);
void fault_plan_fini(struct fault_plan *p);
void fault_plan_add(struct fault_plan *p, const struct fault_rule *r);

/* Parse "RULE;RULE;..." and add each rule. */
int fault_plan_parse_spec(struct fault_plan *p, const char *spec, struct err *e) WUR;

/* The first rule of @p that fires for this request, or NULL. Rules are tried
 * in order; each matching rule counts the request and may draw from @r. */
struct fault_rule *fault_plan_fire(struct fault_plan *p, struct rng *r, const char *disk,
                                   enum fault_io io, uint64_t offset, uint64_t len,
                                   uint64_t now_ns);

/* The network's variant: the first rule of a per-segment net kind in @mask
 * (a bit mask of 1 << kind: net-reset, clog) that fires for a segment from
 * @src to @dst. The window kinds (stall, partition) are sim/net's to apply. */
struct fault_rule *fault_plan_fire_net(struct fault_plan *p, struct rng *r, unsigned mask,
                                       const char *src, const char *dst, uint64_t now_ns);

static inline bool fault_kind_is_net(enum fault_kind k)
{
    return k >= FAULT_NET_RESET && k <= FAULT_NET_PARTITION;
}

/* True if @r (a stall or partition) covers traffic @src -> @dst at all. */
/* Add per-kind counters @fired to @counts (NULL: only sum); returns their sum. */
uint64_t fault_counts_add(uint64_t *counts, const uint64_t fired[FAULT__COUNT]);

/* Does rule @r stop harming within @limit_ns: a network reset bounded by
 * times=, a clog of at most @limit_ns, a stall or partition whose window is
 * at most that long? Disk rules count as transient (they touch no link). */
bool fault_rule_transient(const struct fault_rule *r, uint64_t limit_ns);

bool fault_rule_matches_hosts(const struct fault_rule *r, const char *src, const char *dst);

void fault_rule_check(const struct fault_rule *r);

#endif
