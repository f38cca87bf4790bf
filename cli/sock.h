/*
 * sock: the transport and dialer interfaces (ref/env.h) over real sockets,
 *   and a poll loop that runs ref/ in real time.
 *
 * Role: lets the same NBD server and client that run in the simulated
 *   world talk to real NBD peers (qemu-nbd, nbdkit, libnbd tools).
 * Model: a libuv-style single-threaded loop: poll(2) on the sockets, timers
 *   from an evq whose clock is set to CLOCK_MONOTONIC before each round.
 * Invariants: callbacks run from the loop only; a closed connection's
 *   callbacks never run; sockets are non-blocking.
 * Ownership: the loop owns its connections and the listening socket.
 * Async contract: send copies the bytes and completes once they were
 *   written; recv completes with exactly len bytes or -ECONNRESET at end of
 *   stream or error.
 * Depends on: sim/evq (as a timer heap), ref/env.
 */
#ifndef BLOCKSIM_SOCK_H
#define BLOCKSIM_SOCK_H

#include <stdbool.h>
#include <stdint.h>

#include "../ref/env.h"
#include "../sim/base/evq.h"

struct sock_loop;

typedef void sock_accept_cb(void *opaque, struct env_transport t);
typedef void sock_log_cb(void *opaque, const char *msg);

struct sock_loop *sock_loop_new(void);
/* Closes every connection and the listener. */
void sock_loop_free(struct sock_loop *l);

struct env_timer sock_loop_timer(struct sock_loop *l);

/* The loop's timer heap, for sim/ parts run in real time (a disk). */
struct evq *sock_loop_evq(struct sock_loop *l);

/* Listen on a Unix socket @path or on 127.0.0.1:@port (when @path is NULL).
 * An existing @path is replaced only when it is a stale socket (nobody
 * listening); a file, a directory or a live socket is refused. 0, or
 * -errno with @why filled. */
int sock_listen(struct sock_loop *l, const char *path, unsigned port, sock_accept_cb *cb,
                void *opaque, char *why, size_t why_len);

/* A dialer to a Unix socket @path or 127.0.0.1:@port (copied). */
struct env_dialer sock_dialer(struct sock_loop *l, const char *path, unsigned port);

/* Run one round: wait up to @max_wait_ns for a socket or the next timer,
 * then run what is ready. */
void sock_loop_run_once(struct sock_loop *l, uint64_t max_wait_ns);

/* Connections open (not yet closed by their owner). */
unsigned sock_loop_conns(const struct sock_loop *l);

/* Where the loop reports what its owner should log: connections refused by
 * the limit, running out of file descriptors. */
void sock_loop_set_log(struct sock_loop *l, sock_log_cb *cb, void *opaque);

/* At most @max connections open at once (the default, and the ceiling: the
 * file descriptor limit less a reserve); the loop accepts and closes the
 * ones beyond it, with a log line. */
void sock_loop_set_max_conns(struct sock_loop *l, unsigned max);
unsigned sock_loop_max_conns(const struct sock_loop *l);

#endif
