/*
 * net: simulated stream connections between named hosts.
 *
 * Role: what NBD runs on in the simulated world. A host listens under a
 *   service name; another host connects; each side gets an env_transport
 *   (ref/env.h): a reliable, ordered byte stream until it resets.
 * Model: TCP as an application sees it. Each direction of a connection is a
 *   link with a bandwidth (bytes leave one after another), a latency and a
 *   jitter (delivery never overtakes earlier bytes). Faults are rules of the
 *   scenario (fault.h): net-reset, clog (FoundationDB's clogging: extra
 *   delay), net-stall and partition (time windows, symmetric or oneway,
 *   healing or not). Data sent into a partition waits for the heal, as TCP
 *   retransmits it; when the heal is further away than the user timeout (or
 *   never comes) the connection resets with -ETIMEDOUT. A connect into a
 *   partition fails with -ETIMEDOUT after the connect timeout; to a host
 *   nobody listens on, with -ECONNREFUSED after one round trip.
 * Invariants: every completion is posted on the queue, never run inline;
 *   bytes arrive in order and exactly once, or the connection has reset;
 *   once an end is closed, none of its callbacks runs again; a connection
 *   is freed when both ends are closed and no event refers to it.
 * Ownership: the net owns its connections and listeners; a transport's
 *   buffers are borrowed until its callback runs (send copies at once).
 * Async contract: send completes once its bytes left the host (the link is
 *   free again); recv when exactly len bytes arrived; both with -ECONNRESET
 *   or -ETIMEDOUT once the connection is gone, and recv with -ECONNRESET at
 *   end of stream (the peer closed).
 * Depends on: evq, rng, fault.
 */
#ifndef BLOCKSIM_NET_H
#define BLOCKSIM_NET_H

#include <stdbool.h>
#include <stdint.h>

#include "../../ref/env.h"
#include "../base/evq.h"
#include "fault.h"
#include "../base/rng.h"

#define NET_NAME_MAX 32

struct net_config {
    uint64_t lat_min_ns;     /* one-way latency, uniform in [min, max] */
    uint64_t lat_max_ns;
    uint64_t bandwidth;      /* bytes per second and direction; 0: unlimited */
    uint64_t user_timeout_ns; /* data unacknowledged this long resets */
    uint64_t connect_timeout_ns;
};

/* 50-150 us, 1.25 GB/s (10 Gbit/s), 30 s user timeout, 3 s connect timeout. */
void net_config_default(struct net_config *c);

struct net_stats {
    uint64_t connects;
    uint64_t connect_failures;
    uint64_t segments;        /* sends */
    uint64_t bytes;
    uint64_t resets;          /* connections reset by a rule or a timeout */
    uint64_t clogged;         /* segments a clog rule delayed */
    uint64_t stalled;         /* segments a stall or a healing partition held */
    uint64_t faults[FAULT__COUNT]; /* rules that fired, by kind */
};

/* Accepts a new connection; @t is the server's end. */
typedef void net_accept_cb(void *opaque, struct env_transport t);

struct net;

struct net *net_new(struct evq *q, struct fault_plan *plan, uint64_t seed,
                    const struct net_config *cfg);
/* Every connection must be closed on both ends and idle. */
void net_free(struct net *n);

/* Accept connections to (@host, @service). At most one listener each. */
void net_listen(struct net *n, const char *host, const char *service, net_accept_cb *cb,
                void *opaque);
void net_unlisten(struct net *n, const char *host, const char *service);

/* Connect from @from to (@to, @service): @cb gets 0 and the client's end,
 * or a negative errno and a transport with NULL ops. */
void net_connect(struct net *n, const char *from, const char *to, const char *service,
                 env_connect_cb *cb, void *opaque);

/* A dialer (env.h) bound to one (from, to, service): what drv_nbd gets. */
struct net_dialer {
    struct net *net;
    char from[NET_NAME_MAX];
    char to[NET_NAME_MAX];
    char service[NET_NAME_MAX];
};

struct env_dialer net_dialer(struct net_dialer *d);

/* Reset every open connection that touches @host (it crashed). */
void net_host_reset(struct net *n, const char *host);

const struct net_stats *net_stats(const struct net *n);

/* Live connections (not yet freed). */
uint64_t net_conns_live(const struct net *n);

void net_check(const struct net *n);

#endif
