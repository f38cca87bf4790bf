/*
 * dial: the dialer an NBD client node of a host's stack uses to reach
 *   another host over sim/net.
 *
 * Role: once the stack it belongs to died (its host crashed), the client
 *   draining its requests dials nobody: each attempt is refused with
 *   EHOSTDOWN, from a posted event; else it dials through the network.
 * Model: a dead host's sockets; QEMU's NBD client over TCP.
 * Invariants: a refusal never completes inline.
 * Ownership: the caller owns the struct; the stack outlives its graph's
 *   requests (graph_kill drains them first).
 * Async contract: env_dialer's (ref/env.h).
 * Depends on: world_int (struct stack), net.
 */
#ifndef BLOCKSIM_DIAL_H
#define BLOCKSIM_DIAL_H

#include "../world/world_int.h"

struct stack_dialer {
    struct stack *s;
    struct net_dialer nd;
};

/* A dialer for @s from host @from to @to's service @service over @net. */
void stack_dialer_init(struct stack_dialer *d, struct stack *s, struct net *net,
                       const char *from, const char *to, const char *service);
struct env_dialer stack_dialer(struct stack_dialer *d);

#endif
