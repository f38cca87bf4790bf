/*
 * dial: see dial.h.
 */
#include "dial.h"

#include <errno.h>
#include <stdio.h>

struct refusal {
    env_connect_cb *cb;
    void *opaque;
};

static void refusal_ev(void *opaque)
{
    struct refusal r = *(struct refusal *)opaque;
    mem_free(opaque, sizeof(r));
    struct env_transport none = { NULL, NULL };
    r.cb(r.opaque, -EHOSTDOWN, none);
}

static void dial_connect(void *ctx, env_connect_cb *cb, void *opaque)
{
    struct stack_dialer *d = ctx;
    if (d->s->dead) { /* the host crashed: its client dials nobody */
        struct refusal *r = mem_alloc(sizeof(*r));
        r->cb = cb;
        r->opaque = opaque;
        evq_post(&d->s->w->q, 0, refusal_ev, r);
        return;
    }
    struct env_dialer nd = net_dialer(&d->nd);
    nd.ops->connect(nd.ctx, cb, opaque);
}

static const struct env_dialer_ops dial_ops = { .connect = dial_connect };

void stack_dialer_init(struct stack_dialer *d, struct stack *s, struct net *net,
                       const char *from, const char *to, const char *service)
{
    d->s = s;
    d->nd.net = net;
    snprintf(d->nd.from, NET_NAME_MAX, "%s", from);
    snprintf(d->nd.to, NET_NAME_MAX, "%s", to);
    snprintf(d->nd.service, NET_NAME_MAX, "%s", service);
}

struct env_dialer stack_dialer(struct stack_dialer *d)
{
    return (struct env_dialer){ &dial_ops, d };
}
