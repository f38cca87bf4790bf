/*
 * checker: every checker behind one interface, as an observer of the world.
 *
 * Role: the world tells each registered checker what happens, in event
 *   order: a guest request submitted and completed (or lost when its host
 *   went down), a control record run, a host that lost power or came back,
 *   the end of the run. A checker answers with the first violation it found,
 *   its invariants and its section of the JSON report. The world itself
 *   never looks inside a checker: a new one is a struct checker_ops and a
 *   world__checker_add call (or world_opts.checkers, from outside the
 *   world).
 * Model: the verdict is the first violation in event order, whichever
 *   checker saw it: after each hook the world asks the checker for its first
 *   violation and keeps the earliest one it heard of.
 * Invariants: a checker's violation, once reported, never changes; every
 *   hook but name and violation is optional.
 * Ownership: the checker owns its state (self); fini frees it.
 * Async contract: none; hooks run from the world's event loop.
 * Depends on: check_rw (struct violation), node (request kinds), trace.
 *
 * A checker that is also an oracle (the bitmap checker answers what QEMU
 * would return for a bitmap command) is asked directly by the code that
 * runs the command; this interface is for what it observes.
 */
#ifndef BLOCKSIM_CHECKER_H
#define BLOCKSIM_CHECKER_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "../../ref/job.h"
#include "../../ref/node.h"
#include "../trace/trace.h"
#include "check_rw.h"

#define CHECKERS_MAX 8

/* One request through the guest's root node. */
struct checker_io {
    enum node_op op;
    const struct trace_rec *rec; /* the guest request, or the control record
                                  * (sync, shutdown) a flush was issued for */
    bool guest;                  /* a guest request (else the stack's own flush) */
    uint64_t index;              /* guest operation index */
    uint64_t sector, n;          /* range in sectors (0, 0 for a flush) */
    uint64_t tag;                /* content tag of the sectors a write carries */
    bool fua;
    int ret;                     /* done: its status */
    const uint8_t *data;         /* done: a read's bytes, a write's buffer; NULL
                                  * when described (guest I/O, struct env_desc) */
    const uint64_t *tags;        /* done: a guest read's content tags, one a sector */
    uint64_t read_hash;          /* done: a guest read's content_hash */
    uint64_t cookie;             /* done, lost: what io_submit returned */
    uint64_t now_ns;
};

struct checker_ops {
    const char *name; /* its section of the JSON report's "checks" */
    /* It also hears the requests of guests other than the world's own
     * (io->rec->guest > 0: colo's secondary guest); else it never does. */
    bool other_guests;
    /* A request is submitted; the value returned comes back as io->cookie. */
    uint64_t (*io_submit)(void *self, const struct checker_io *io);
    void (*io_done)(void *self, const struct checker_io *io);
    /* A request was in flight when its host went down: it may or may not
     * have reached the media. */
    void (*io_lost)(void *self, const struct checker_io *io);
    /* A control record (crash, restart, bitmap, topology action) starts. */
    void (*control)(void *self, const struct trace_rec *rec);
    /* Host @host lost power; its disks resolved their caches by @mode
     * (enum disk_crash_mode); @guest: it ran the guest. */
    void (*crash)(void *self, unsigned host, bool guest, int mode);
    /* A block job's event (ref/job.h), as it happens. */
    void (*job_event)(void *self, const struct job_event *ev);
    /* Host @host is up again. */
    void (*restart)(void *self, unsigned host, bool guest);
    /* The run is over: judge what is still pending. */
    void (*end)(void *self);
    /* Its first violation, or NULL. */
    const struct violation *(*violation)(const void *self);
    void (*check)(const void *self); /* assert its invariants */
    json_t *(*json)(const void *self);
    void (*fini)(void *self);
};

struct checker {
    const struct checker_ops *ops;
    void *self;
};

/* check_rw as a checker of the guest's requests. */
extern const struct checker_ops check_rw_ops;

/* Its hooks, for a checker that judges another guest with a check_rw of
 * its own (colo's promoted secondary). */
uint64_t check_rw_io_submit(struct check_rw *c, const struct checker_io *io);
void check_rw_io_done(struct check_rw *c, const struct checker_io *io);
void check_rw_io_lost(struct check_rw *c, const struct checker_io *io);

#endif
