/*
 * tap: a pass-through node that tells an observer how each request ended.
 *
 * Role: sits between the quorum and each of its children in the simulated
 *   world, so that the quorum checker sees what every child answered (its
 *   result and, for reads, its bytes) without trusting the quorum driver.
 * Model: none of QEMU's; a filter node like blkdebug without the faults.
 * Invariants: every request goes to the child unchanged; the observer runs
 *   exactly once per request, after the child completed and before the
 *   parent's callback is posted.
 * Ownership: the child belongs to the graph; the observer is borrowed.
 * Async contract: requests complete through req_complete.
 * Depends on: ref/node.
 */
#ifndef BLOCKSIM_TAP_H
#define BLOCKSIM_TAP_H

#include "../../ref/node.h"

/* @buf holds a read's bytes or a write's source (NULL for other operations,
 * and for described data: then req->desc says what it is, ref/env.h). */
typedef void tap_cb(void *opaque, unsigned id, const struct req *req, int ret,
                    const uint8_t *buf);

/* Optional: as a request is submitted; it may keep a number in
 * req->drv_u64[0] (the tap leaves its scratch to the observer). */
typedef void tap_submit_cb(void *opaque, unsigned id, struct req *req);

struct tap_opts {
    struct node *child;
    unsigned id;    /* passed to @on_done: which child this is */
    tap_cb *on_done;
    void *opaque;
    tap_submit_cb *on_submit;
};

extern const struct node_driver drv_tap;

/* redirect: a pass-through to whatever node *target names when a request
 * arrives (an NBD server's export while a job's filter comes and goes
 * above the disk, as a BlockBackend follows its root). */
struct redirect_opts {
    struct node **target;
};

extern const struct node_driver drv_redirect;

#endif
