/*
 * drv_nbd: see drv_nbd.h. Method: the connection state (struct client) is
 * separate from the node so that posted events and a pending dial can
 * outlive it; each holds a reference. A connection is a chain of receives:
 * greeting, option replies, then reply headers, each followed by what its
 * header announces, read straight into the request's buffer.
 */
#include "drv_nbd.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "nbd_proto.h"

#define RETRY_DEFAULT_NS 100000000ull

enum cstate { C_IDLE, C_DIALING, C_HANDSHAKE, C_READY };

struct creq {
    struct req *req;
    struct nbd_request r;
    uint64_t deadline_ns; /* waiting: fail with -EIO from then on; 0: none yet */
    uint64_t sent_ns;
    int err;              /* from an error chunk */
    uint64_t covered;     /* read bytes the chunks delivered */
    uint64_t (*ranges)[2]; /* delivered read ranges, to refuse overlaps */
    size_t n_ranges, cap_ranges;
    uint8_t *zeroes;      /* WRITE_ZEROES sent as a WRITE */
    TAILQ_ENTRY(creq) link;
};

TAILQ_HEAD(creq_list, creq);

struct client {
    unsigned refs;    /* the node, posted events, a pending dial */
    bool closed;      /* the node is gone */
    struct node *node;
    struct env_timer timer;
    struct drv_nbd_opts o;
    char export[256];
    enum cstate state;
    uint64_t gen;         /* bumped by every connect and break */
    struct env_transport t;
    uint64_t phase_ns;    /* when dialing or the handshake began */
    int first;            /* drv_nbd_ready */
    bool structured;
    struct nbd_export_info info;
    uint64_t next_cookie;
    struct creq_list waiting;
    struct creq_list inflight;
    unsigned n_inflight;
    bool retry_armed, watchdog_armed;
    /* the receive in progress */
    void (*recv_next)(struct client *c);
    uint8_t hdr[NBD_CHUNK_HDR_LEN];
    uint8_t *payload;
    size_t payload_len;
    struct nbd_opt_reply orep;
    struct nbd_chunk chunk;
    struct creq *cur;
    uint64_t cur_off;     /* OFFSET_DATA: where its data goes */
    bool no_zeroes;       /* agreed: EXPORT_NAME's reply has no padding */
    bool no_retry;        /* NODE_MUTANT_NBD_NO_RETRY */
    struct drv_nbd_stats stats;
    char last_error[256];
};

static struct client *client_of(const struct node *n)
{
    return *(struct client **)n->state;
}

static void client_unref(struct client *c)
{
    ASSERT(c->refs > 0);
    if (--c->refs == 0) {
        ASSERT(c->closed && TAILQ_EMPTY(&c->waiting) && TAILQ_EMPTY(&c->inflight));
        mem_free(c->payload, c->payload_len);
        mem_free(c, sizeof(*c));
    }
}

struct cevent {
    struct client *c;
    void (*fn)(struct client *c);
};

static void cevent_run(void *opaque)
{
    struct cevent ev = *(struct cevent *)opaque;
    mem_free(opaque, sizeof(ev));
    if (!ev.c->closed) {
        ev.fn(ev.c);
    }
    client_unref(ev.c);
}

static void client_post(struct client *c, uint64_t delay, void (*fn)(struct client *c))
{
    struct cevent *ev = mem_alloc(sizeof(*ev));
    ev->c = c;
    ev->fn = fn;
    c->refs++;
    env_post(&c->timer, delay, cevent_run, ev);
}

static uint64_t now(const struct client *c)
{
    return env_now(&c->timer);
}

static void creq_free(struct creq *q)
{
    mem_free(q->ranges, q->cap_ranges * sizeof(*q->ranges));
    mem_free(q->zeroes, q->zeroes ? q->r.len : 0);
    mem_free(q, sizeof(*q));
}

static void creq_finish(struct creq *q, int ret)
{
    req_complete(q->req, ret);
    creq_free(q);
}

static void client_connect(struct client *c);
static void send_waiting(struct client *c);
static void read_reply(struct client *c);

/* ---- breaking, retrying, expiring ---- */

static void fail_expired(struct client *c)
{
    struct creq *q = TAILQ_FIRST(&c->waiting);
    while (q) {
        struct creq *next = TAILQ_NEXT(q, link);
        if (q->deadline_ns && q->deadline_ns <= now(c)) {
            TAILQ_REMOVE(&c->waiting, q, link);
            creq_finish(q, -EIO);
        }
        q = next;
    }
}

static void expiry_ev(struct client *c)
{
    fail_expired(c);
}

static void retry_ev(struct client *c)
{
    c->retry_armed = false;
    fail_expired(c);
    if (c->state == C_IDLE && !TAILQ_EMPTY(&c->waiting)) {
        client_connect(c);
    }
}

/* Waiting requests get their deadline; retry while any is left. */
static void after_failure(struct client *c)
{
    struct creq *q;
    bool fresh = false; /* some request got its deadline now: one expiry for them */
    TAILQ_FOREACH(q, &c->waiting, link) {
        if (!q->deadline_ns) {
            q->deadline_ns = now(c) + c->o.reconnect_delay_ns;
            fresh = true;
        }
    }
    fail_expired(c);
    if (!TAILQ_EMPTY(&c->waiting)) {
        if (fresh && c->o.reconnect_delay_ns) {
            client_post(c, c->o.reconnect_delay_ns, expiry_ev);
        }
        if (!c->retry_armed) {
            c->retry_armed = true;
            client_post(c, c->o.retry_ns, retry_ev);
        }
    }
}

static void client_break(struct client *c, int err, const char *why)
{
    if (c->state == C_IDLE) {
        return;
    }
    snprintf(c->last_error, sizeof(c->last_error), "%s", why);
    if (c->state == C_READY) {
        c->stats.breaks++;
    } else {
        c->stats.connect_failures++;
        if (c->first == 0) { /* the first connection never came up */
            c->first = err < 0 ? err : -EIO;
        }
    }
    if (c->state != C_DIALING) {
        c->t.ops->close(c->t.conn);
    }
    c->state = C_IDLE;
    c->gen++;
    c->cur = NULL;
    /* In-flight requests go back to the front of the queue, in order. */
    struct creq *q;
    while ((q = TAILQ_LAST(&c->inflight, creq_list)) != NULL) {
        TAILQ_REMOVE(&c->inflight, q, link);
        c->n_inflight--;
        q->covered = 0;
        q->n_ranges = 0;
        q->err = 0;
        if (c->no_retry) {
            creq_finish(q, -EIO); /* planted bug: the request is not sent again */
            continue;
        }
        c->stats.retried++;
        TAILQ_INSERT_HEAD(&c->waiting, q, link);
    }
    after_failure(c);
}

static void protocol_error(struct client *c, const struct err *e)
{
    c->stats.protocol_errors++;
    client_break(c, BS_EPROTO, e->msg);
}

static void watchdog_ev(struct client *c)
{
    c->watchdog_armed = false;
    if (!c->o.timeout_ns || c->state == C_IDLE) {
        return;
    }
    uint64_t since = c->phase_ns;
    if (c->state == C_READY) {
        struct creq *oldest = TAILQ_FIRST(&c->inflight);
        if (!oldest) {
            return;
        }
        since = oldest->sent_ns;
    }
    if (since + c->o.timeout_ns <= now(c)) {
        c->stats.timeouts++;
        client_break(c, -ETIMEDOUT, "no reply within the timeout");
        return;
    }
    c->watchdog_armed = true;
    client_post(c, since + c->o.timeout_ns - now(c), watchdog_ev);
}

static void watchdog_arm(struct client *c)
{
    if (c->o.timeout_ns && !c->watchdog_armed) {
        c->watchdog_armed = true;
        client_post(c, c->o.timeout_ns, watchdog_ev);
    }
}

/* ---- receiving ---- */

static void recv_cb(void *opaque, int ret)
{
    struct client *c = opaque;
    if (ret < 0) {
        client_break(c, ret, ret == -ETIMEDOUT ? "connection timed out" :
                     "connection reset or closed by the server");
        return;
    }
    c->recv_next(c);
}

static void recv_into(struct client *c, uint8_t *buf, size_t len, void (*next)(struct client *c))
{
    c->recv_next = next;
    c->t.ops->recv(c->t.conn, buf, len, recv_cb, c);
}

static void recv_payload(struct client *c, size_t len, void (*next)(struct client *c))
{
    mem_free(c->payload, c->payload_len);
    c->payload = len ? mem_alloc(len) : NULL;
    c->payload_len = len;
    if (len == 0) {
        next(c);
        return;
    }
    recv_into(c, c->payload, len, next);
}

static void send_cb(void *opaque, int ret)
{
    struct client *c = opaque;
    if (ret < 0) {
        client_break(c, ret, "send failed: connection reset");
    }
}

static void send_bytes(struct client *c, const uint8_t *buf, size_t len)
{
    c->t.ops->send(c->t.conn, buf, len, send_cb, c);
}

/* ---- handshake ---- */

static void send_option(struct client *c, uint32_t opt, const uint8_t *data, size_t len)
{
    uint8_t *buf = mem_alloc(NBD_OPT_HDR_LEN + len);
    struct nbd_opt_hdr h = { opt, (uint32_t)len };
    nbd_enc_opt_hdr(buf, &h);
    if (len) {
        memcpy(buf + NBD_OPT_HDR_LEN, data, len);
    }
    send_bytes(c, buf, NBD_OPT_HDR_LEN + len);
    mem_free(buf, NBD_OPT_HDR_LEN + len);
}

static void handshake_done(struct client *c)
{
    struct err e = { .file = NULL };
    uint64_t want = c->node ? c->node->length : 0;
    if (c->o.size && c->info.size != want) {
        err_set(&e, 0, 0, "export '%s' is %" PRIu64 " bytes, the node %" PRIu64, c->export,
                c->info.size, want);
        protocol_error(c, &e);
        return;
    }
    if (!c->o.size) {
        c->o.size = c->info.size;
        c->node->length = align_down(c->info.size, NODE_SECTOR);
    }
    c->state = C_READY;
    c->stats.connects++;
    c->first = 1;
    read_reply(c);
    send_waiting(c);
}

static void export_name_reply_done(struct client *c)
{
    nbd_dec_export_name_reply(c->payload, &c->info);
    handshake_done(c);
}

static void send_export_name(struct client *c)
{
    send_option(c, NBD_OPT_EXPORT_NAME, (const uint8_t *)c->export, strlen(c->export));
    size_t len = NBD_EXPORT_NAME_REPLY_LEN + (c->no_zeroes ? 0 : NBD_EXPORT_NAME_PAD);
    recv_payload(c, len, export_name_reply_done);
}

static void go_reply_hdr(struct client *c);

static void go_reply_payload(struct client *c)
{
    struct err e = { .file = NULL };
    uint16_t type;
    if (c->orep.opt != NBD_OPT_GO) {
        err_set(&e, 0, 0, "reply to option %s while GO was asked", nbd_opt_name(c->orep.opt));
        protocol_error(c, &e);
    } else if (c->orep.type == NBD_REP_INFO) {
        if (nbd_dec_info(c->payload, c->payload_len, &type, &c->info, &e) < 0) {
            protocol_error(c, &e);
            return;
        }
        recv_into(c, c->hdr, NBD_OPT_REPLY_HDR_LEN, go_reply_hdr);
    } else if (c->orep.type == NBD_REP_ACK) {
        handshake_done(c);
    } else if (c->orep.type == NBD_REP_ERR_UNSUP) {
        send_export_name(c); /* a server from before GO (QEMU < 2.10) */
    } else if (c->orep.type & NBD_REP_ERR_BIT) {
        err_set(&e, 0, 0, "server refused export '%s': %s %.*s", c->export,
                nbd_rep_name(c->orep.type), (int)c->payload_len, (const char *)c->payload);
        protocol_error(c, &e);
    } else {
        recv_into(c, c->hdr, NBD_OPT_REPLY_HDR_LEN, go_reply_hdr); /* unknown: skip */
    }
}

static void go_reply_hdr(struct client *c)
{
    struct err e = { .file = NULL };
    if (nbd_dec_opt_reply(c->hdr, &c->orep, &e) < 0) {
        protocol_error(c, &e);
        return;
    }
    recv_payload(c, c->orep.len, go_reply_payload);
}

static void send_go(struct client *c)
{
    uint8_t buf[4 + sizeof(c->export) + 4];
    struct nbd_opt_go g = { { (const uint8_t *)c->export, (uint32_t)strlen(c->export) }, 1,
                            { NBD_INFO_BLOCK_SIZE } };
    size_t len = nbd_enc_opt_go(buf, sizeof(buf), &g);
    send_option(c, NBD_OPT_GO, buf, len);
    recv_into(c, c->hdr, NBD_OPT_REPLY_HDR_LEN, go_reply_hdr);
}

static void structured_payload(struct client *c)
{
    c->structured = c->orep.type == NBD_REP_ACK;
    send_go(c);
}

static void structured_hdr(struct client *c)
{
    struct err e = { .file = NULL };
    if (nbd_dec_opt_reply(c->hdr, &c->orep, &e) < 0) {
        protocol_error(c, &e);
        return;
    }
    if (c->orep.opt != NBD_OPT_STRUCTURED_REPLY ||
        (c->orep.type != NBD_REP_ACK && !(c->orep.type & NBD_REP_ERR_BIT))) {
        err_set(&e, 0, 0, "unexpected reply %s to STRUCTURED_REPLY", nbd_rep_name(c->orep.type));
        protocol_error(c, &e);
        return;
    }
    recv_payload(c, c->orep.len, structured_payload);
}

static void greeting_done(struct client *c)
{
    struct err e = { .file = NULL };
    uint16_t hs;
    if (nbd_dec_greeting(c->hdr, &hs, &e) < 0) {
        protocol_error(c, &e);
        return;
    }
    uint8_t flags[NBD_CLIENT_FLAGS_LEN];
    uint32_t cf = NBD_FLAG_C_FIXED_NEWSTYLE | (hs & NBD_FLAG_NO_ZEROES ? NBD_FLAG_C_NO_ZEROES : 0);
    nbd_enc_client_flags(flags, cf);
    send_bytes(c, flags, sizeof(flags));
    memset(&c->info, 0, sizeof(c->info));
    c->no_zeroes = cf & NBD_FLAG_C_NO_ZEROES;
    c->structured = false;
    if (c->o.simple_only) {
        send_go(c);
        return;
    }
    send_option(c, NBD_OPT_STRUCTURED_REPLY, NULL, 0);
    recv_into(c, c->hdr, NBD_OPT_REPLY_HDR_LEN, structured_hdr);
}

struct dial {
    struct client *c;
    uint64_t gen;
};

static void dial_cb(void *opaque, int ret, struct env_transport t)
{
    struct dial d = *(struct dial *)opaque;
    struct client *c = d.c;
    mem_free(opaque, sizeof(d));
    if (c->closed || d.gen != c->gen) { /* closed, or given up on (timeout) */
        if (ret == 0) {
            t.ops->close(t.conn);
        }
        client_unref(c);
        return;
    }
    if (ret < 0) {
        char why[64];
        snprintf(why, sizeof(why), "connect failed: %s", blocksim_strerror(ret));
        client_break(c, ret, why);
    } else {
        c->t = t;
        c->state = C_HANDSHAKE;
        recv_into(c, c->hdr, NBD_GREETING_LEN, greeting_done);
    }
    client_unref(c);
}

static void client_connect(struct client *c)
{
    ASSERT(c->state == C_IDLE);
    c->state = C_DIALING;
    c->gen++;
    c->phase_ns = now(c);
    watchdog_arm(c);
    c->refs++;
    struct dial *d = mem_alloc(sizeof(*d));
    d->c = c;
    d->gen = c->gen;
    c->o.dialer.ops->connect(c->o.dialer.ctx, dial_cb, d);
}


/* ---- transmission ---- */

static struct creq *inflight_find(struct client *c, uint64_t cookie)
{
    struct creq *q;
    TAILQ_FOREACH(q, &c->inflight, link) {
        if (q->r.cookie == cookie) {
            return q;
        }
    }
    return NULL;
}

static void complete_inflight(struct client *c, struct creq *q, int ret)
{
    TAILQ_REMOVE(&c->inflight, q, link);
    c->n_inflight--;
    creq_finish(q, ret);
    send_waiting(c);
}

/* What the server cannot do is done here or refused: 1 if @q was finished. */
static bool adapt_to_server(struct client *c, struct creq *q)
{
    uint16_t tf = c->info.tflags;
    uint32_t max = c->info.has_block_size ? c->info.max_block : NBD_PAYLOAD_MAX;
    int ret = 1;
    if (q->r.len > max && q->r.type != NBD_CMD_TRIM && q->r.type != NBD_CMD_WRITE_ZEROES) {
        ret = -EINVAL;
    } else if ((q->r.flags & NBD_CMD_FLAG_FUA) && !(tf & NBD_TFLAG_SEND_FUA)) {
        ret = -ENOTSUP;
    } else if ((q->r.type == NBD_CMD_WRITE || q->r.type == NBD_CMD_TRIM ||
                q->r.type == NBD_CMD_WRITE_ZEROES) && (tf & NBD_TFLAG_READ_ONLY)) {
        ret = -EROFS;
    } else if ((q->r.type == NBD_CMD_TRIM && !(tf & NBD_TFLAG_SEND_TRIM)) ||
               (q->r.type == NBD_CMD_FLUSH && !(tf & NBD_TFLAG_SEND_FLUSH))) {
        ret = 0; /* advisory, or nothing to flush */
    } else if (q->r.type == NBD_CMD_WRITE_ZEROES && !(tf & NBD_TFLAG_SEND_WRITE_ZEROES)) {
        if (q->r.len > max) {
            ret = -EINVAL;
        } else {
            q->r.type = NBD_CMD_WRITE;
            q->zeroes = mem_alloc(q->r.len);
        }
    }
    if (ret <= 0) {
        creq_finish(q, ret);
        return true;
    }
    return false;
}

static void send_request(struct client *c, struct creq *q)
{
    q->r.cookie = ++c->next_cookie;
    q->sent_ns = now(c);
    size_t plen = q->r.type == NBD_CMD_WRITE ? q->r.len : 0;
    uint8_t *buf = mem_alloc(NBD_REQUEST_LEN + plen);
    nbd_enc_request(buf, &q->r);
    if (plen) {
        memcpy(buf + NBD_REQUEST_LEN, q->zeroes ? q->zeroes : q->req->buf, plen);
    }
    TAILQ_INSERT_TAIL(&c->inflight, q, link);
    c->n_inflight++;
    send_bytes(c, buf, NBD_REQUEST_LEN + plen);
    mem_free(buf, NBD_REQUEST_LEN + plen);
    watchdog_arm(c);
}

static void send_waiting(struct client *c)
{
    struct creq *q;
    while (c->state == C_READY && c->n_inflight < DRV_NBD_QD &&
           (q = TAILQ_FIRST(&c->waiting)) != NULL) {
        TAILQ_REMOVE(&c->waiting, q, link);
        if (!adapt_to_server(c, q)) {
            send_request(c, q);
        }
    }
}

static void chunk_end(struct client *c)
{
    struct creq *q = c->cur;
    c->cur = NULL;
    if (c->chunk.flags & NBD_CHUNK_FLAG_DONE) {
        if (!q->err && q->r.type == NBD_CMD_READ && q->covered != q->r.len) {
            struct err e;
            err_set(&e, 0, 0, "READ at %" PRIu64 "+%" PRIu32 " done with %" PRIu64
                    " bytes delivered", q->r.offset, q->r.len, q->covered);
            protocol_error(c, &e);
            return;
        }
        complete_inflight(c, q, q->err);
    }
    read_reply(c);
}

/* A read chunk's range must lie inside its request and overlap no other. */
static bool read_range_ok(struct creq *q, uint64_t off, uint64_t len, struct err *e)
{
    if (q->r.type != NBD_CMD_READ || len == 0 || off < q->r.offset ||
        off - q->r.offset > q->r.len || len > q->r.offset + q->r.len - off) {
        err_set(e, 0, 0, "read chunk %" PRIu64 "+%" PRIu64 " outside %s %" PRIu64 "+%" PRIu32,
                off, len, nbd_cmd_name(q->r.type), q->r.offset, q->r.len);
        return false;
    }
    for (size_t i = 0; i < q->n_ranges; i++) {
        if (ranges_overlap(off, len, q->ranges[i][0], q->ranges[i][1])) {
            err_set(e, 0, 0, "read chunk %" PRIu64 "+%" PRIu64 " overlaps an earlier one", off,
                    len);
            return false;
        }
    }
    if (q->n_ranges == q->cap_ranges) {
        size_t cap = q->cap_ranges ? 2 * q->cap_ranges : 4;
        q->ranges = mem_realloc(q->ranges, q->cap_ranges * sizeof(*q->ranges),
                                cap * sizeof(*q->ranges));
        q->cap_ranges = cap;
    }
    q->ranges[q->n_ranges][0] = off;
    q->ranges[q->n_ranges++][1] = len;
    q->covered += len;
    return true;
}

static void data_offset_done(struct client *c)
{
    struct err e;
    struct creq *q = c->cur;
    uint64_t off = nbd_dec_chunk_offset(c->hdr);
    uint64_t len = c->chunk.len - 8;
    if (!read_range_ok(q, off, len, &e)) {
        protocol_error(c, &e);
        return;
    }
    recv_into(c, q->req->buf + (off - q->r.offset), len, chunk_end);
}

static void hole_done(struct client *c)
{
    struct err e;
    struct creq *q = c->cur;
    uint64_t off;
    uint32_t len;
    if (nbd_dec_chunk_hole(c->hdr, &off, &len, &e) < 0 || !read_range_ok(q, off, len, &e)) {
        protocol_error(c, &e);
        return;
    }
    memset(q->req->buf + (off - q->r.offset), 0, len);
    chunk_end(c);
}

static void error_chunk_done(struct client *c)
{
    struct err e;
    struct nbd_chunk_error ce;
    ASSERT(c->chunk.type & NBD_CHUNK_ERR_BIT);
    if (c->chunk.type == NBD_CHUNK_ERROR || c->chunk.type == NBD_CHUNK_ERROR_OFFSET) {
        if (nbd_dec_chunk_error(c->payload, c->payload_len, c->chunk.type, &ce, &e) < 0) {
            protocol_error(c, &e);
            return;
        }
        c->cur->err = nbd_errno_from_wire(ce.error);
    } else {
        c->cur->err = -EIO; /* an unknown error type: the request failed */
    }
    chunk_end(c);
}

static void chunk_hdr_done(struct client *c)
{
    struct err e = { .file = NULL };
    if (nbd_dec_chunk(c->hdr, &c->chunk, &e) < 0) {
        protocol_error(c, &e);
        return;
    }
    c->cur = inflight_find(c, c->chunk.cookie);
    if (!c->structured || !c->cur) {
        err_set(&e, 0, 0, "structured chunk for cookie %" PRIu64 " %s", c->chunk.cookie,
                c->structured ? "that is not in flight" : "without structured replies");
        protocol_error(c, &e);
        return;
    }
    switch (c->chunk.type) {
    case NBD_CHUNK_NONE:
        chunk_end(c);
        return;
    case NBD_CHUNK_OFFSET_DATA:
        recv_into(c, c->hdr, 8, data_offset_done);
        return;
    case NBD_CHUNK_OFFSET_HOLE:
        recv_into(c, c->hdr, 12, hole_done);
        return;
    default:
        if (c->chunk.type & NBD_CHUNK_ERR_BIT) {
            if (c->chunk.len > NBD_OPT_DATA_MAX) {
                err_set(&e, 0, 0, "error chunk of %" PRIu32 " bytes", c->chunk.len);
                protocol_error(c, &e);
                return;
            }
            recv_payload(c, c->chunk.len, error_chunk_done);
            return;
        }
        err_set(&e, 0, 0, "unexpected chunk type %u", c->chunk.type);
        protocol_error(c, &e);
        return;
    }
}

static void simple_read_done(struct client *c)
{
    struct creq *q = c->cur;
    c->cur = NULL;
    complete_inflight(c, q, 0);
    read_reply(c);
}

static void simple_hdr_done(struct client *c)
{
    struct err e = { .file = NULL };
    struct nbd_simple_reply r;
    if (nbd_dec_simple_reply(c->hdr, &r, &e) < 0) {
        protocol_error(c, &e);
        return;
    }
    struct creq *q = inflight_find(c, r.cookie);
    if (!q) {
        err_set(&e, 0, 0, "reply for cookie %" PRIu64 " that is not in flight", r.cookie);
        protocol_error(c, &e);
        return;
    }
    if (r.error || q->r.type != NBD_CMD_READ) {
        complete_inflight(c, q, r.error ? nbd_errno_from_wire(r.error) : 0);
        read_reply(c);
        return;
    }
    if (c->structured) {
        err_set(&e, 0, 0, "simple reply with data to READ after structured replies");
        protocol_error(c, &e);
        return;
    }
    c->cur = q;
    recv_into(c, q->req->buf, q->r.len, simple_read_done);
}

static void reply_magic_done(struct client *c)
{
    struct err e = { .file = NULL };
    uint32_t magic;
    if (nbd_dec_reply_magic(c->hdr, &magic, &e) < 0) {
        protocol_error(c, &e);
    } else if (magic == NBD_SIMPLE_REPLY_MAGIC) {
        simple_hdr_done(c);
    } else {
        recv_into(c, c->hdr + NBD_SIMPLE_REPLY_LEN, NBD_CHUNK_HDR_LEN - NBD_SIMPLE_REPLY_LEN,
                  chunk_hdr_done);
    }
}

static void read_reply(struct client *c)
{
    recv_into(c, c->hdr, NBD_SIMPLE_REPLY_LEN, reply_magic_done);
}

/* ---- the node driver ---- */

static void nbd_submit(struct node *n, struct req *req, uint16_t cmd)
{
    struct client *c = client_of(n);
    struct creq *q = mem_alloc(sizeof(*q));
    q->req = req;
    q->r.type = cmd;
    q->r.offset = cmd == NBD_CMD_FLUSH ? 0 : req->offset;
    q->r.len = cmd == NBD_CMD_FLUSH ? 0 : (uint32_t)req->len;
    q->r.flags = (req->flags & NODE_REQ_FUA) && cmd != NBD_CMD_READ ? NBD_CMD_FLAG_FUA : 0;
    if (req->len > UINT32_MAX) {
        creq_finish(q, -EINVAL);
        return;
    }
    TAILQ_INSERT_TAIL(&c->waiting, q, link);
    if (c->state == C_READY) {
        send_waiting(c);
    } else if (c->state == C_IDLE) {
        q->deadline_ns = now(c) + c->o.reconnect_delay_ns;
        client_post(c, c->o.reconnect_delay_ns, expiry_ev);
        if (!c->retry_armed) {
            client_connect(c);
        }
    }
}

static void nbd_read(struct node *n, struct req *req)
{
    nbd_submit(n, req, NBD_CMD_READ);
}

static void nbd_write(struct node *n, struct req *req)
{
    nbd_submit(n, req, NBD_CMD_WRITE);
}

static void nbd_flush(struct node *n, struct req *req)
{
    nbd_submit(n, req, NBD_CMD_FLUSH);
}

static void nbd_discard(struct node *n, struct req *req)
{
    nbd_submit(n, req, NBD_CMD_TRIM);
}

static void nbd_write_zeroes(struct node *n, struct req *req)
{
    nbd_submit(n, req, NBD_CMD_WRITE_ZEROES);
}

static int nbd_open(struct node *n, const void *opts, struct err *e)
{
    const struct drv_nbd_opts *o = opts;
    if (!o || !o->dialer.ops) {
        return err_set(e, 0, 0, "nbd node '%s' needs a dialer", n->name);
    }
    const char *name = o->export_name ? o->export_name : "";
    struct client *c = mem_alloc(sizeof(*c));
    if (strlen(name) >= sizeof(c->export)) {
        mem_free(c, sizeof(*c));
        return err_set(e, 0, 0, "nbd node '%s': export name too long", n->name);
    }
    memcpy(c->export, name, strlen(name) + 1);
    c->refs = 1;
    c->node = n;
    c->timer = n->graph->timer;
    c->o = *o;
    c->o.export_name = c->export;
    c->o.retry_ns = o->retry_ns ? o->retry_ns : RETRY_DEFAULT_NS;
    c->no_retry = node_mutant(n, NODE_MUTANT_NBD_NO_RETRY);
    TAILQ_INIT(&c->waiting);
    TAILQ_INIT(&c->inflight);
    *(struct client **)n->state = c;
    n->length = align_down(o->size, NODE_SECTOR);
    client_connect(c);
    return 0;
}

static void nbd_close(struct node *n)
{
    struct client *c = client_of(n);
    ASSERT(TAILQ_EMPTY(&c->waiting) && TAILQ_EMPTY(&c->inflight));
    if (c->state == C_HANDSHAKE || c->state == C_READY) {
        c->t.ops->close(c->t.conn);
    }
    c->state = C_IDLE;
    c->closed = true;
    c->node = NULL;
    client_unref(c);
}

static int nbd_block_status(struct node *n, uint64_t offset, uint64_t len, uint64_t *pnum)
{
    (void)n;
    (void)offset;
    *pnum = len;
    return NODE_BS_DATA | NODE_BS_ALLOCATED;
}

static int nbd_pread_sync(struct node *n, uint64_t offset, uint8_t *buf, uint64_t len)
{
    (void)n, (void)offset, (void)buf, (void)len;
    return -ENOTSUP; /* nothing synchronous crosses a network */
}

static void nbd_check(const struct node *n)
{
    const struct client *c = client_of(n);
    ASSERT(c->node == n && !c->closed && c->refs >= 1);
    unsigned count = 0;
    const struct creq *q;
    TAILQ_FOREACH(q, &c->inflight, link) {
        count++;
        ASSERT(q->covered <= q->r.len);
    }
    ASSERT(count == c->n_inflight && count <= DRV_NBD_QD);
    ASSERT(c->state == C_READY || count == 0);
}

int drv_nbd_ready(const struct node *n)
{
    return client_of(n)->first;
}

const struct drv_nbd_stats *drv_nbd_stats(const struct node *n)
{
    return &client_of(n)->stats;
}

const char *drv_nbd_last_error(const struct node *n)
{
    return client_of(n)->last_error;
}

const struct node_driver drv_nbd = {
    .name = "nbd",
    .state_size = sizeof(struct client *),
    .open = nbd_open,
    .close = nbd_close,
    .submit = {
        [NODE_OP_READ] = nbd_read,
        [NODE_OP_WRITE] = nbd_write,
        [NODE_OP_FLUSH] = nbd_flush,
        [NODE_OP_DISCARD] = nbd_discard,
        [NODE_OP_WRITE_ZEROES] = nbd_write_zeroes,
    },
    .block_status = nbd_block_status,
    .pread_sync = nbd_pread_sync,
    .check = nbd_check,
};

const struct planted_bug drv_nbd_bugs[] = {
    { "nbd-no-retry", NODE_MUTANT_NBD_NO_RETRY,
      "NBD client: requests in flight when the connection breaks fail at once" },
};

const size_t drv_nbd_bugs_count = ARRAY_LEN(drv_nbd_bugs);
