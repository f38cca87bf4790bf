/*
 * net: see net.h. Method: a send computes its delivery time at once (link
 * serialisation, latency, clog, stall and partition windows, never before
 * the previous delivery) and posts one delivery event; a delivery appends
 * to the receiver's buffer and completes its recv when enough arrived. Every
 * posted event holds a reference on its connection; a closed end's
 * callbacks are dropped where they would have run.
 */
#include "net.h"

#include <string.h>
#include <sys/queue.h>

#define NET_LISTENERS_MAX 16

struct net_end {
    struct net_conn *conn;
    unsigned side;
    char host[NET_NAME_MAX];
    bool closed;
    bool eof;          /* the peer closed and everything it sent arrived */
    uint8_t *rx;       /* arrived, not yet received: rx[rx_off, rx_len) */
    size_t rx_off, rx_len, rx_cap;
    bool rpending;
    uint8_t *rbuf;
    size_t rlen;
    env_io_cb *rcb;
    void *ropaque;
    uint64_t link_free_ns;     /* this end's outgoing link is busy until then */
    uint64_t last_delivery_ns; /* of this end's outgoing bytes */
};

struct net_conn {
    struct net *net;
    struct net_end end[2]; /* 0: the client's, 1: the server's */
    int reset_err;         /* 0, or how it died */
    unsigned refs;         /* posted events that refer to it */
    LIST_ENTRY(net_conn) link;
};

struct net_listener {
    char host[NET_NAME_MAX];
    char service[NET_NAME_MAX];
    net_accept_cb *cb;
    void *opaque;
};

struct net {
    struct evq *q;
    struct fault_plan *plan;
    struct rng rng;       /* latency and jitter */
    struct rng fault_rng; /* rules' draws */
    struct net_config cfg;
    struct net_stats stats;
    struct net_listener listeners[NET_LISTENERS_MAX];
    unsigned n_listeners;
    LIST_HEAD(, net_conn) conns;
    uint64_t live;
};

void net_config_default(struct net_config *c)
{
    c->lat_min_ns = 50000;
    c->lat_max_ns = 150000;
    c->bandwidth = 1250000000ull;
    c->user_timeout_ns = 30ull * 1000000000ull;
    c->connect_timeout_ns = 3ull * 1000000000ull;
}

struct net *net_new(struct evq *q, struct fault_plan *plan, uint64_t seed,
                    const struct net_config *cfg)
{
    struct net *n = mem_alloc(sizeof(*n));
    n->q = q;
    n->plan = plan;
    n->cfg = *cfg;
    ASSERT(cfg->lat_min_ns <= cfg->lat_max_ns);
    rng_stream(&n->rng, seed, "net", 0, 0);
    rng_stream(&n->fault_rng, seed, "net-fault", 0, 0);
    LIST_INIT(&n->conns);
    return n;
}

void net_free(struct net *n)
{
    if (!n) {
        return;
    }
    ASSERT(LIST_EMPTY(&n->conns));
    mem_free(n, sizeof(*n));
}

const struct net_stats *net_stats(const struct net *n)
{
    return &n->stats;
}

uint64_t net_conns_live(const struct net *n)
{
    return n->live;
}

static void copy_name(char dst[NET_NAME_MAX], const char *src)
{
    size_t len = strlen(src);
    ASSERT(len > 0 && len < NET_NAME_MAX);
    memcpy(dst, src, len + 1);
}

/* ---- connection lifetime ---- */

static void conn_maybe_free(struct net_conn *c)
{
    if (c->refs || !c->end[0].closed || !c->end[1].closed) {
        return;
    }
    LIST_REMOVE(c, link);
    c->net->live--;
    for (unsigned i = 0; i < 2; i++) {
        mem_free(c->end[i].rx, c->end[i].rx_cap);
    }
    mem_free(c, sizeof(*c));
}

static void conn_put(struct net_conn *c)
{
    ASSERT(c->refs > 0);
    c->refs--;
    conn_maybe_free(c);
}

/* A callback for an end, dropped if the end is closed by then. */
struct net_done {
    struct net_end *end;
    env_io_cb *cb;
    void *opaque;
    int ret;
};

static void done_ev(void *opaque)
{
    struct net_done d = *(struct net_done *)opaque;
    mem_free(opaque, sizeof(d));
    if (!d.end->closed) {
        d.cb(d.opaque, d.ret);
    }
    conn_put(d.end->conn);
}

static void post_done(struct net_end *end, uint64_t delay, env_io_cb *cb, void *opaque,
                      int ret)
{
    struct net_done *d = mem_alloc(sizeof(*d));
    *d = (struct net_done){ end, cb, opaque, ret };
    end->conn->refs++;
    evq_post(end->conn->net->q, delay, done_ev, d);
}

/* Complete the pending recv of @end if it can be: enough bytes, or never. */
static void end_try_recv(struct net_end *end)
{
    if (!end->rpending || end->closed) {
        return;
    }
    int err = end->conn->reset_err;
    size_t avail = end->rx_len - end->rx_off;
    if (!err && avail < end->rlen && !end->eof) {
        return;
    }
    end->rpending = false;
    int ret = 0;
    if (!err && avail >= end->rlen) {
        memcpy(end->rbuf, end->rx + end->rx_off, end->rlen);
        end->rx_off += end->rlen;
    } else {
        ret = err ? err : -ECONNRESET;
    }
    post_done(end, 0, end->rcb, end->ropaque, ret);
}

static void conn_reset(struct net_conn *c, int err)
{
    if (c->reset_err) {
        return;
    }
    c->reset_err = err;
    c->net->stats.resets++;
    for (unsigned i = 0; i < 2; i++) {
        end_try_recv(&c->end[i]);
    }
}

/* ---- sending ---- */

struct net_seg {
    struct net_end *to;
    size_t len;
    bool fin;      /* end of stream instead of data */
    uint8_t data[];
};

static void rx_append(struct net_end *end, const uint8_t *data, size_t len)
{
    if (end->rx_off == end->rx_len) {
        end->rx_off = end->rx_len = 0;
    }
    if (end->rx_cap - end->rx_len < len) {
        size_t used = end->rx_len - end->rx_off;
        if (used) {
            memmove(end->rx, end->rx + end->rx_off, used);
        }
        end->rx_off = 0;
        end->rx_len = used;
        if (end->rx_cap - used < len) {
            size_t cap = end->rx_cap ? end->rx_cap : 4096;
            while (cap - used < len) {
                cap *= 2;
            }
            end->rx = mem_realloc(end->rx, end->rx_cap, cap);
            end->rx_cap = cap;
        }
    }
    memcpy(end->rx + end->rx_len, data, len);
    end->rx_len += len;
}

static void deliver_ev(void *opaque)
{
    struct net_seg *s = opaque;
    struct net_end *to = s->to;
    struct net_conn *c = to->conn;
    if (!c->reset_err && !to->closed) {
        if (s->fin) {
            to->eof = true;
        } else {
            rx_append(to, s->data, s->len);
        }
        end_try_recv(to);
    }
    mem_free(s, sizeof(*s) + s->len);
    conn_put(c);
}

static void timeout_ev(void *opaque)
{
    struct net_conn *c = opaque;
    conn_reset(c, -ETIMEDOUT);
    conn_put(c);
}

static uint64_t latency(struct net *n)
{
    return rng_range(&n->rng, n->cfg.lat_min_ns, n->cfg.lat_max_ns);
}

/* Push @*at past every stall and partition window it falls in. False when
 * the data cannot get through before the user timeout (or ever). */
static bool apply_windows(struct net *n, const char *src, const char *dst, uint64_t now,
                          uint64_t *at, uint64_t timeout)
{
    for (unsigned round = 0; round <= n->plan->n; round++) {
        bool moved = false;
        for (size_t i = 0; i < n->plan->n; i++) {
            struct fault_rule *r = &n->plan->rules[i];
            if ((r->kind != FAULT_NET_STALL && r->kind != FAULT_NET_PARTITION) ||
                !fault_rule_matches_hosts(r, src, dst) || *at < r->after_ns ||
                *at >= r->before_ns) {
                continue;
            }
            r->matched++;
            r->fired++;
            n->stats.faults[r->kind]++;
            if (r->kind == FAULT_NET_PARTITION &&
                (r->before_ns == UINT64_MAX || r->before_ns - now > timeout)) {
                return false;
            }
            if (r->before_ns > UINT64_MAX / 2) { /* a stall that never ends */
                return false;
            }
            *at = r->before_ns + n->cfg.lat_min_ns;
            moved = true;
        }
        if (!moved) {
            return true;
        }
    }
    return true;
}

/* When a segment of @len bytes sent now from @from arrives; false if it
 * never does (the connection must time out). */
static bool seg_arrival(struct net_end *from, size_t len, uint64_t *at, uint64_t *left)
{
    struct net *n = from->conn->net;
    struct net_end *to = &from->conn->end[!from->side];
    uint64_t now = n->q->now_ns;
    uint64_t tx = n->cfg.bandwidth ? (uint64_t)len * 1000000000ull / n->cfg.bandwidth : 0;
    from->link_free_ns = max_u64(now, from->link_free_ns) + tx;
    *left = from->link_free_ns - now;
    uint64_t t = from->link_free_ns + latency(n);
    struct fault_rule *clog = fault_plan_fire_net(n->plan, &n->fault_rng,
                                                  1u << FAULT_NET_CLOG, from->host,
                                                  to->host, now);
    if (clog) {
        t += rng_below(&n->fault_rng, clog->delay_ns + 1);
        n->stats.clogged++;
        n->stats.faults[FAULT_NET_CLOG]++;
    }
    uint64_t before = t;
    if (!apply_windows(n, from->host, to->host, now, &t, n->cfg.user_timeout_ns)) {
        return false;
    }
    n->stats.stalled += t != before;
    *at = max_u64(t, from->last_delivery_ns);
    from->last_delivery_ns = *at;
    return true;
}

static void post_seg(struct net_end *from, const uint8_t *buf, size_t len, bool fin,
                     uint64_t *left)
{
    struct net_conn *c = from->conn;
    struct net *n = c->net;
    uint64_t at;
    if (!seg_arrival(from, len, &at, left)) {
        c->refs++;
        evq_post(n->q, n->cfg.user_timeout_ns, timeout_ev, c);
        return;
    }
    struct net_seg *s = mem_alloc(sizeof(*s) + len);
    s->to = &c->end[!from->side];
    s->len = len;
    s->fin = fin;
    if (len) {
        memcpy(s->data, buf, len);
    }
    c->refs++;
    evq_post(n->q, at - n->q->now_ns, deliver_ev, s);
}

static void end_send(void *conn, const uint8_t *buf, size_t len, env_io_cb *cb, void *opaque)
{
    struct net_end *end = conn;
    struct net_conn *c = end->conn;
    struct net *n = c->net;
    ASSERT(!end->closed);
    n->stats.segments++;
    n->stats.bytes += len;
    if (!c->reset_err && fault_plan_fire_net(n->plan, &n->fault_rng, 1u << FAULT_NET_RESET,
                                             end->host, c->end[!end->side].host,
                                             n->q->now_ns)) {
        n->stats.faults[FAULT_NET_RESET]++;
        conn_reset(c, -ECONNRESET);
    }
    if (c->reset_err) {
        post_done(end, 0, cb, opaque, c->reset_err);
        return;
    }
    uint64_t left = 0;
    post_seg(end, buf, len, false, &left);
    post_done(end, left, cb, opaque, 0);
}

static void end_recv(void *conn, uint8_t *buf, size_t len, env_io_cb *cb, void *opaque)
{
    struct net_end *end = conn;
    ASSERT(!end->closed && !end->rpending);
    end->rpending = true;
    end->rbuf = buf;
    end->rlen = len;
    end->rcb = cb;
    end->ropaque = opaque;
    end_try_recv(end);
}

static void end_close(void *conn)
{
    struct net_end *end = conn;
    struct net_conn *c = end->conn;
    ASSERT(!end->closed);
    if (!c->reset_err && !c->end[!end->side].closed) {
        uint64_t left;
        post_seg(end, NULL, 0, true, &left); /* FIN after the data */
    }
    end->closed = true;
    end->rpending = false;
    conn_maybe_free(c);
}

static const struct env_transport_ops net_transport_ops = {
    .send = end_send,
    .recv = end_recv,
    .close = end_close,
};

/* ---- listening and connecting ---- */

static struct net_listener *listener_find(struct net *n, const char *host, const char *service)
{
    for (unsigned i = 0; i < n->n_listeners; i++) {
        struct net_listener *l = &n->listeners[i];
        if (strcmp(l->host, host) == 0 && strcmp(l->service, service) == 0) {
            return l;
        }
    }
    return NULL;
}

void net_listen(struct net *n, const char *host, const char *service, net_accept_cb *cb,
                void *opaque)
{
    ASSERT(!listener_find(n, host, service) && n->n_listeners < NET_LISTENERS_MAX);
    struct net_listener *l = &n->listeners[n->n_listeners++];
    copy_name(l->host, host);
    copy_name(l->service, service);
    l->cb = cb;
    l->opaque = opaque;
}

void net_unlisten(struct net *n, const char *host, const char *service)
{
    struct net_listener *l = listener_find(n, host, service);
    ASSERT(l != NULL);
    *l = n->listeners[--n->n_listeners];
}

struct net_connecting {
    struct net *n;
    char from[NET_NAME_MAX];
    char to[NET_NAME_MAX];
    char service[NET_NAME_MAX];
    env_connect_cb *cb;
    void *opaque;
    int ret;
    struct net_conn *conn;
};

static void connect_finish_ev(void *opaque)
{
    struct net_connecting *k = opaque;
    struct env_transport t = { NULL, NULL };
    if (k->ret == 0) {
        t.ops = &net_transport_ops;
        t.conn = &k->conn->end[0];
        conn_put(k->conn);
    } else {
        k->n->stats.connect_failures++;
    }
    env_connect_cb *cb = k->cb;
    void *cb_opaque = k->opaque;
    int ret = k->ret;
    mem_free(k, sizeof(*k));
    cb(cb_opaque, ret, t);
}

static struct net_conn *conn_new(struct net *n, const char *client, const char *server)
{
    struct net_conn *c = mem_alloc(sizeof(*c));
    c->net = n;
    for (unsigned i = 0; i < 2; i++) {
        c->end[i].conn = c;
        c->end[i].side = i;
        copy_name(c->end[i].host, i ? server : client);
        c->end[i].link_free_ns = n->q->now_ns;
    }
    LIST_INSERT_HEAD(&n->conns, c, link);
    n->live++;
    n->stats.connects++;
    return c;
}

/* The SYN arrived at the server's host. */
static void connect_syn_ev(void *opaque)
{
    struct net_connecting *k = opaque;
    struct net *n = k->n;
    struct net_listener *l = listener_find(n, k->to, k->service);
    uint64_t back = latency(n);
    if (!l) {
        k->ret = -ECONNREFUSED;
        evq_post(n->q, back, connect_finish_ev, k);
        return;
    }
    uint64_t at = n->q->now_ns + back;
    if (!apply_windows(n, k->to, k->from, n->q->now_ns, &at, n->cfg.connect_timeout_ns)) {
        k->ret = -ETIMEDOUT;
        evq_post(n->q, n->cfg.connect_timeout_ns, connect_finish_ev, k);
        return;
    }
    k->conn = conn_new(n, k->from, k->to);
    k->conn->refs++; /* until the client has its end */
    k->conn->end[0].last_delivery_ns = at;
    k->conn->end[1].last_delivery_ns = at;
    evq_post(n->q, at - n->q->now_ns, connect_finish_ev, k);
    struct env_transport t = { &net_transport_ops, &k->conn->end[1] };
    l->cb(l->opaque, t);
}

void net_connect(struct net *n, const char *from, const char *to, const char *service,
                 env_connect_cb *cb, void *opaque)
{
    struct net_connecting *k = mem_alloc(sizeof(*k));
    k->n = n;
    copy_name(k->from, from);
    copy_name(k->to, to);
    copy_name(k->service, service);
    k->cb = cb;
    k->opaque = opaque;
    uint64_t now = n->q->now_ns;
    uint64_t at = now + latency(n);
    if (!apply_windows(n, from, to, now, &at, n->cfg.connect_timeout_ns)) {
        k->ret = -ETIMEDOUT;
        evq_post(n->q, n->cfg.connect_timeout_ns, connect_finish_ev, k);
        return;
    }
    evq_post(n->q, at - now, connect_syn_ev, k);
}

static void dialer_connect(void *ctx, env_connect_cb *cb, void *opaque)
{
    struct net_dialer *d = ctx;
    net_connect(d->net, d->from, d->to, d->service, cb, opaque);
}

static const struct env_dialer_ops net_dialer_ops = { dialer_connect };

struct env_dialer net_dialer(struct net_dialer *d)
{
    struct env_dialer dl = { &net_dialer_ops, d };
    return dl;
}

void net_host_reset(struct net *n, const char *host)
{
    struct net_conn *c;
    LIST_FOREACH(c, &n->conns, link) {
        if (strcmp(c->end[0].host, host) == 0 || strcmp(c->end[1].host, host) == 0) {
            conn_reset(c, -ECONNRESET);
        }
    }
}

void net_check(const struct net *n)
{
    uint64_t count = 0;
    const struct net_conn *c;
    LIST_FOREACH(c, &n->conns, link) {
        count++;
        for (unsigned i = 0; i < 2; i++) {
            const struct net_end *e = &c->end[i];
            ASSERT(e->conn == c && e->side == i);
            ASSERT(e->rx_off <= e->rx_len && e->rx_len <= e->rx_cap);
            ASSERT(!(e->closed && e->rpending));
        }
    }
    ASSERT(count == n->live);
    ASSERT(n->n_listeners <= NET_LISTENERS_MAX);
}
