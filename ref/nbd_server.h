/*
 * nbd_server: exports one node over NBD, one session a connection.
 *
 * Role: the secondary's NBD server in COLO, `blocksim nbd-serve`, and the
 *   peer of drv_nbd in the simulated world.
 * Model: qemu-nbd / QEMU's nbd/server.c as seen on the wire: fixed newstyle
 *   only; options EXPORT_NAME, GO, INFO, LIST, ABORT, STRUCTURED_REPLY,
 *   LIST_META_CONTEXT, SET_META_CONTEXT (base:allocation and
 *   qemu:dirty-bitmap:NAME for the export node's bitmaps); commands READ,
 *   WRITE (FUA), FLUSH, TRIM, WRITE_ZEROES, BLOCK_STATUS and DISC. Requests
 *   run concurrently (up to NBD_SERVER_QD a session); replies go out as they
 *   complete. Requests must be aligned to 512 bytes (advertised through
 *   INFO_BLOCK_SIZE); a misaligned one fails with EINVAL. Writes past the
 *   end fail with ENOSPC, other commands past the end with EINVAL.
 * Invariants: a malformed message ends its session (the connection is
 *   closed), never the process; a session is freed only once none of its
 *   node requests is in flight.
 * Ownership: the server owns its sessions and their transports; the export
 *   node is borrowed and must outlive every request (the graph's kill waits
 *   for them). nbd_server_close frees the server once its sessions drained.
 * Async contract: everything runs from transport and node callbacks.
 * Depends on: nbd_proto, node, dirty, env (transport).
 */
#ifndef BLOCKSIM_NBD_SERVER_H
#define BLOCKSIM_NBD_SERVER_H

#include <stdbool.h>
#include <stdint.h>

#include "env.h"
#include "nbd_proto.h"
#include "node.h"

#define NBD_SERVER_QD 64
#define NBD_NAME_MAX 256

struct nbd_server_stats {
    uint64_t sessions;        /* accepted */
    uint64_t protocol_errors; /* sessions ended by a malformed message */
    uint64_t requests;
    uint64_t rejected;        /* requests answered with an error before running */
    uint64_t io_errors;       /* requests the node failed */
    uint64_t handshake_timeouts; /* sessions closed for a handshake too slow */
};

struct nbd_server_opts {
    struct node *export;     /* served node; its dirty set gives the bitmaps */
    const char *name;        /* export name; NULL: "" */
    const char *description; /* NULL: none */
    bool read_only;
    bool no_structured;      /* the seed era's servers: simple replies only */
    /* A session that has not finished its handshake (reached transmission)
     * this long after it was attached is closed: idle clients cannot keep
     * others out (qemu-nbd and nbdkit do the same). 0 or no timer: never. */
    uint64_t handshake_timeout_ns;
    struct env_timer timer;
    /* Called with a line of text when a session ends on an error (a
     * protocol error, a handshake timeout); NULL: silent. */
    void (*on_log)(void *opaque, const char *msg);
    /* Called for every request the server runs, with a write's payload. */
    void (*on_request)(void *opaque, const struct nbd_request *r, const uint8_t *payload);
    void *opaque;
};

struct nbd_server;

struct nbd_server *nbd_server_new(const struct nbd_server_opts *o);

/* Start a session on @t (an accepted connection). */
void nbd_server_attach(struct nbd_server *s, struct env_transport t);

/* Close every session's connection; the server frees itself once the last
 * session's requests completed (possibly before this returns). */
void nbd_server_close(struct nbd_server *s);

/* Sessions not yet freed. */
unsigned nbd_server_sessions(const struct nbd_server *s);

const struct nbd_server_stats *nbd_server_stats(const struct nbd_server *s);

/* Why the last session that failed did (protocol error text), or "". */
const char *nbd_server_last_error(const struct nbd_server *s);

/* This module's planted bugs (sim/trace/mutant gathers them). */
extern const struct planted_bug nbd_server_bugs[];
extern const size_t nbd_server_bugs_count;

#endif
