/*
 * drv_nbd: a node whose bytes live behind an NBD server (the primary's
 *   replication child in COLO).
 *
 * Role: protocol driver over a dialer (env.h): connects, negotiates (fixed
 *   newstyle, STRUCTURED_REPLY unless disabled, GO with INFO_BLOCK_SIZE),
 *   then sends each node request as an NBD command and matches replies to
 *   requests by cookie, simple or structured, in any order.
 * Model: QEMU's block/nbd.c: an in-flight table of at most DRV_NBD_QD
 *   requests; when the connection breaks, the requests in flight go back to
 *   waiting and are sent again once a new connection is up, for at most
 *   reconnect_delay_ns (QEMU's reconnect-delay); past that, or at once with
 *   a delay of 0, they fail with -EIO. A reply later than timeout_ns breaks
 *   the connection (QEMU has no such timeout; it stands for the TCP user
 *   timeout a real deployment sets). Reconnects are attempted only while
 *   requests wait, every retry_ns. A server whose export size differs from
 *   the node's (or whose replies break the protocol) fails the connection.
 * Invariants: a request completes exactly once; a reply whose cookie is not
 *   in flight, a read chunk outside its request or overlapping another, or
 *   a successful read not fully covered is a protocol error; block status
 *   is not asked over the wire: every run reads as allocated data.
 * Ownership: the driver's connection state lives on after the node closes
 *   until its last posted event ran (each event holds a reference).
 * Async contract: requests complete through req_complete.
 * Depends on: node, nbd_proto, env (dialer, transport, timer).
 */
#ifndef BLOCKSIM_DRV_NBD_H
#define BLOCKSIM_DRV_NBD_H

#include "node.h"

#define DRV_NBD_QD 64

struct drv_nbd_opts {
    struct env_dialer dialer;
    const char *export_name;     /* NULL: "" */
    uint64_t size;               /* the export's size; 0: learn it (node length 0
                                  * until drv_nbd_ready) */
    uint64_t timeout_ns;         /* 0: no reply timeout */
    uint64_t reconnect_delay_ns; /* how long requests wait for a new connection */
    uint64_t retry_ns;           /* between connect attempts; 0: 100 ms */
    bool simple_only;            /* do not ask for structured replies (seed era) */
};

struct drv_nbd_stats {
    uint64_t connects;         /* handshakes completed */
    uint64_t connect_failures; /* attempts that failed (dial or handshake) */
    uint64_t breaks;           /* established connections lost */
    uint64_t retried;          /* requests sent again on a new connection */
    uint64_t timeouts;         /* connections broken by an overdue reply */
    uint64_t protocol_errors;
};

extern const struct node_driver drv_nbd;

/* 1 once a connection was established (node->length is then the export's
 * size), 0 while the first one is being made, a negative errno if the first
 * attempt failed and nothing waits. */
int drv_nbd_ready(const struct node *n);

const struct drv_nbd_stats *drv_nbd_stats(const struct node *n);

/* The last protocol or connection error, as text ("" if none). */
const char *drv_nbd_last_error(const struct node *n);

/* This module's planted bugs (sim/trace/mutant gathers them). */
extern const struct planted_bug drv_nbd_bugs[];
extern const size_t drv_nbd_bugs_count;

#endif
