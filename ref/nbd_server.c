/*
 * nbd_server: see nbd_server.h. Method: a session is a chain of receives:
 * greeting, client flags, then option header and data until the export is
 * chosen, then request header (and a write's payload) over and over. Each
 * request runs on the node with its own buffer; its reply is encoded into
 * one buffer and sent in one send, so replies never interleave.
 */
#include "nbd_server.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "dirty.h"

#define CTX_BASE_ID 1u
#define CTX_DIRTY_ID 2u /* + index of the bitmap in the selection */
#define CTX_DIRTY_MAX 4u
#define EXTENTS_MAX 1024u

struct nbd_server {
    struct nbd_server_opts o;
    char name[NBD_NAME_MAX];
    char description[NBD_NAME_MAX];
    unsigned sessions;
    bool closing;
    struct nbd_server_stats stats;
    char last_error[256];
    struct session *list; /* singly linked */
};

struct session {
    struct nbd_server *srv;
    struct session *next;
    struct env_transport t;
    bool dead;           /* connection closed; waiting for requests */
    bool disc;           /* the client said DISC */
    bool structured;
    bool no_zeroes;
    bool base_ctx;       /* base:allocation selected */
    unsigned n_dirty;    /* qemu:dirty-bitmap: contexts selected */
    char dirty[CTX_DIRTY_MAX][DIRTY_NAME_MAX];
    unsigned inflight;   /* node requests */
    bool reading;        /* a receive is outstanding */
    bool paused;         /* NBD_SERVER_QD requests run: no next header yet */
    bool transmission;   /* the handshake is over */
    bool timer_pending;  /* the handshake deadline has not fired yet */
    void (*recv_next)(struct session *s);
    uint8_t hdr[NBD_REQUEST_LEN > NBD_OPT_HDR_LEN ? NBD_REQUEST_LEN : NBD_OPT_HDR_LEN];
    struct nbd_opt_hdr opt;
    uint8_t *data;       /* option data or a write's payload */
    size_t data_len;
    struct nbd_request req;
};

struct sreq {
    struct session *s;
    struct nbd_request r;
    uint8_t *buf;     /* read data, or the write's payload */
    size_t buf_len;
};

static void session_read_request(struct session *s);
static void session_read_option(struct session *s);

/* ---- lifetime ---- */

static void server_maybe_free(struct nbd_server *srv)
{
    if (srv->closing && srv->sessions == 0) {
        mem_free(srv, sizeof(*srv));
    }
}

static void session_maybe_free(struct session *s)
{
    if (!s->dead || s->inflight || s->reading || s->timer_pending) {
        return;
    }
    struct nbd_server *srv = s->srv;
    for (struct session **p = &srv->list; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            break;
        }
    }
    mem_free(s->data, s->data_len);
    mem_free(s, sizeof(*s));
    srv->sessions--;
    server_maybe_free(srv);
}

static void session_end(struct session *s)
{
    if (!s->dead) {
        s->dead = true;
        s->reading = false; /* a closed end's callbacks never run */
        s->t.ops->close(s->t.conn);
    }
    session_maybe_free(s);
}

static void session_fail(struct session *s, const struct err *e)
{
    struct nbd_server *srv = s->srv;
    srv->stats.protocol_errors++;
    snprintf(srv->last_error, sizeof(srv->last_error), "%s", e->msg);
    if (srv->o.on_log) {
        srv->o.on_log(srv->o.opaque, e->msg);
    }
    session_end(s);
}

static void sent_cb(void *opaque, int ret)
{
    struct session *s = opaque;
    if (ret < 0) {
        session_end(s);
    }
}

static void send_buf(struct session *s, const uint8_t *buf, size_t len)
{
    if (!s->dead) {
        s->t.ops->send(s->t.conn, buf, len, sent_cb, s);
    }
}

/* Receive @len bytes into @buf, then @next; an error ends the session.
 * The step lives in the session: a closed transport never calls back, so
 * nothing is left to free. */
static void recv_cb(void *opaque, int ret)
{
    struct session *s = opaque;
    s->reading = false;
    if (ret < 0 || s->dead) {
        session_end(s);
        return;
    }
    s->recv_next(s);
}

static void recv_into(struct session *s, uint8_t *buf, size_t len,
                      void (*next)(struct session *s))
{
    ASSERT(!s->reading && !s->dead);
    s->recv_next = next;
    s->reading = true;
    s->t.ops->recv(s->t.conn, buf, len, recv_cb, s);
}

static void data_alloc(struct session *s, size_t len)
{
    mem_free(s->data, s->data_len);
    s->data = len ? mem_alloc(len) : NULL;
    s->data_len = len;
}

/* ---- handshake ---- */

static void opt_reply(struct session *s, uint32_t type, const uint8_t *payload, size_t len)
{
    uint8_t *buf = mem_alloc(NBD_OPT_REPLY_HDR_LEN + len);
    struct nbd_opt_reply r = { s->opt.opt, type, (uint32_t)len };
    nbd_enc_opt_reply(buf, &r);
    if (len) {
        memcpy(buf + NBD_OPT_REPLY_HDR_LEN, payload, len);
    }
    send_buf(s, buf, NBD_OPT_REPLY_HDR_LEN + len);
    mem_free(buf, NBD_OPT_REPLY_HDR_LEN + len);
}

static void opt_error(struct session *s, uint32_t type, const char *msg)
{
    opt_reply(s, type, (const uint8_t *)msg, strlen(msg));
}

static uint16_t tflags(const struct session *s)
{
    uint16_t f = NBD_TFLAG_HAS_FLAGS | NBD_TFLAG_SEND_FLUSH | NBD_TFLAG_SEND_FUA |
                 NBD_TFLAG_SEND_TRIM | NBD_TFLAG_SEND_WRITE_ZEROES;
    if (s->srv->o.read_only) {
        f |= NBD_TFLAG_READ_ONLY;
    }
    if (s->structured) {
        f |= NBD_TFLAG_SEND_DF;
    }
    return f;
}

static bool name_is_export(const struct session *s, struct nbd_str n)
{
    return n.len == strlen(s->srv->name) && (n.len == 0 || memcmp(n.p, s->srv->name, n.len) == 0);
}

static void enter_transmission(struct session *s)
{
    s->transmission = true;
    data_alloc(s, 0);
    session_read_request(s);
}

static void opt_export_name(struct session *s)
{
    struct nbd_str n = { s->data, (uint32_t)s->data_len };
    if (!name_is_export(s, n)) {
        struct err e;
        err_set(&e, 0, 0, "EXPORT_NAME: no export '%.*s'", (int)n.len, (const char *)n.p);
        session_fail(s, &e); /* the only way to refuse EXPORT_NAME */
        return;
    }
    uint8_t buf[NBD_EXPORT_NAME_REPLY_LEN + NBD_EXPORT_NAME_PAD];
    size_t len = nbd_enc_export_name_reply(buf, s->srv->o.export->length, tflags(s),
                                           !s->no_zeroes);
    send_buf(s, buf, len);
    enter_transmission(s);
}

static void opt_info_go(struct session *s)
{
    struct nbd_opt_go g;
    struct err e = { .file = NULL };
    if (nbd_dec_opt_go(s->data, s->data_len, &g, &e) < 0) {
        opt_error(s, NBD_REP_ERR_INVALID, e.msg);
        session_read_option(s);
        return;
    }
    if (!name_is_export(s, g.name)) {
        opt_error(s, NBD_REP_ERR_UNKNOWN, "no such export");
        session_read_option(s);
        return;
    }
    uint8_t buf[2 + NBD_NAME_MAX];
    opt_reply(s, NBD_REP_INFO, buf,
              nbd_enc_info_export(buf, sizeof(buf), s->srv->o.export->length, tflags(s)));
    for (unsigned i = 0; i < g.n_info; i++) {
        const char *str = g.info[i] == NBD_INFO_NAME ? s->srv->name :
                          g.info[i] == NBD_INFO_DESCRIPTION ? s->srv->description : NULL;
        if (str && (g.info[i] == NBD_INFO_NAME || str[0])) {
            struct nbd_str v = { (const uint8_t *)str, (uint32_t)strlen(str) };
            opt_reply(s, NBD_REP_INFO, buf, nbd_enc_info_string(buf, sizeof(buf), g.info[i], v));
        }
    }
    opt_reply(s, NBD_REP_INFO, buf, nbd_enc_info_block_size(buf, sizeof(buf), NODE_SECTOR,
                                                           4096, NBD_PAYLOAD_MAX));
    opt_reply(s, NBD_REP_ACK, NULL, 0);
    if (s->opt.opt == NBD_OPT_GO) {
        enter_transmission(s);
    } else {
        session_read_option(s);
    }
}

static bool str_is(struct nbd_str q, const char *lit)
{
    return q.len == strlen(lit) && (q.len == 0 || memcmp(q.p, lit, q.len) == 0);
}

static bool str_has_prefix(struct nbd_str q, const char *lit)
{
    return q.len >= strlen(lit) && (strlen(lit) == 0 || memcmp(q.p, lit, strlen(lit)) == 0);
}

/* Answer one meta context (and select it for SET). */
static void meta_one(struct session *s, bool set, uint32_t id, const char *name)
{
    uint8_t buf[4 + sizeof(NBD_CTX_DIRTY_PREFIX) + DIRTY_NAME_MAX];
    struct nbd_str n = { (const uint8_t *)name, (uint32_t)strlen(name) };
    opt_reply(s, NBD_REP_META_CONTEXT, buf, nbd_enc_meta_context(buf, sizeof(buf), id, n));
    if (!set) {
        return;
    }
    if (id == CTX_BASE_ID) {
        s->base_ctx = true;
    } else if (s->n_dirty < CTX_DIRTY_MAX) {
        const char *bitmap = name + strlen(NBD_CTX_DIRTY_PREFIX);
        size_t len = strlen(bitmap);
        ASSERT(len < DIRTY_NAME_MAX); /* a bitmap's name: meta_query built it */
        memcpy(s->dirty[s->n_dirty++], bitmap, len + 1);
    }
}

/* The contexts a query names: base:allocation, and the export's bitmaps. */
static void meta_query(struct session *s, bool set, struct nbd_str q, bool all)
{
    bool list = !set;
    if (all || str_is(q, NBD_CTX_BASE_ALLOCATION) || (list && str_is(q, "base:"))) {
        meta_one(s, set, CTX_BASE_ID, NBD_CTX_BASE_ALLOCATION);
    }
    struct dirty_set *ds = s->srv->o.export->dirty;
    if (!ds) {
        return;
    }
    bool every = all || (list && (str_is(q, "qemu:") || str_is(q, NBD_CTX_DIRTY_PREFIX)));
    unsigned index = 0;
    struct dirty_bitmap *b;
    TAILQ_FOREACH(b, &ds->list, link) {
        char full[sizeof(NBD_CTX_DIRTY_PREFIX) + DIRTY_NAME_MAX];
        snprintf(full, sizeof(full), "%s%s", NBD_CTX_DIRTY_PREFIX, b->name);
        bool named = str_has_prefix(q, NBD_CTX_DIRTY_PREFIX) && str_is(q, full);
        if (!b->inconsistent && (every || named)) {
            meta_one(s, set, CTX_DIRTY_ID + (set ? s->n_dirty : index), full);
        }
        index++;
    }
}

static void opt_meta(struct session *s)
{
    bool set = s->opt.opt == NBD_OPT_SET_META_CONTEXT;
    struct nbd_opt_meta m;
    struct err e = { .file = NULL };
    int ret = s->structured ? nbd_dec_opt_meta(s->data, s->data_len, &m, &e) : 0;
    if (!s->structured || ret < 0 || !name_is_export(s, m.name)) {
        opt_error(s, !s->structured ? NBD_REP_ERR_INVALID : ret == -E2BIG ? NBD_REP_ERR_TOO_BIG :
                     ret < 0 ? NBD_REP_ERR_INVALID : NBD_REP_ERR_UNKNOWN,
                  !s->structured ? "meta contexts need structured replies" :
                  ret < 0 ? e.msg : "no such export");
        session_read_option(s); /* an error reply, then the next option */
        return;
    }
    if (set) {
        s->base_ctx = false;
        s->n_dirty = 0;
    }
    for (uint32_t i = 0; i < m.n_queries; i++) {
        meta_query(s, set, m.queries[i], false);
    }
    if (!set && m.n_queries == 0) { /* LIST without queries: every context */
        struct nbd_str any = { NULL, 0 };
        meta_query(s, false, any, true);
    }
    opt_reply(s, NBD_REP_ACK, NULL, 0);
    session_read_option(s);
}

static void opt_simple(struct session *s)
{
    switch (s->opt.opt) {
    case NBD_OPT_ABORT:
        opt_reply(s, NBD_REP_ACK, NULL, 0);
        session_end(s);
        return;
    case NBD_OPT_LIST: {
        if (s->data_len) {
            opt_error(s, NBD_REP_ERR_INVALID, "LIST takes no data");
            break;
        }
        uint8_t buf[4 + NBD_NAME_MAX];
        struct nbd_str n = { (const uint8_t *)s->srv->name, (uint32_t)strlen(s->srv->name) };
        opt_reply(s, NBD_REP_SERVER, buf, nbd_enc_rep_server(buf, sizeof(buf), n));
        opt_reply(s, NBD_REP_ACK, NULL, 0);
        break;
    }
    case NBD_OPT_STRUCTURED_REPLY:
        if (s->data_len || s->structured) {
            opt_error(s, NBD_REP_ERR_INVALID, s->data_len ? "STRUCTURED_REPLY takes no data" :
                      "structured replies already negotiated");
        } else if (s->srv->o.no_structured) {
            opt_error(s, NBD_REP_ERR_UNSUP, "this server sends simple replies only");
        } else {
            s->structured = true;
            opt_reply(s, NBD_REP_ACK, NULL, 0);
        }
        break;
    default:
        opt_error(s, NBD_REP_ERR_UNSUP, "option not supported");
        break;
    }
    session_read_option(s);
}

static void option_data_done(struct session *s)
{
    switch (s->opt.opt) {
    case NBD_OPT_EXPORT_NAME:
        opt_export_name(s);
        return;
    case NBD_OPT_INFO:
    case NBD_OPT_GO:
        opt_info_go(s);
        return;
    case NBD_OPT_LIST_META_CONTEXT:
    case NBD_OPT_SET_META_CONTEXT:
        opt_meta(s);
        return;
    default:
        opt_simple(s);
        return;
    }
}

static void option_header_done(struct session *s)
{
    struct err e = { .file = NULL };
    if (nbd_dec_opt_hdr(s->hdr, &s->opt, &e) < 0) {
        session_fail(s, &e);
        return;
    }
    data_alloc(s, s->opt.len);
    if (s->opt.len == 0) {
        option_data_done(s);
        return;
    }
    recv_into(s, s->data, s->data_len, option_data_done);
}

static void session_read_option(struct session *s)
{
    if (!s->dead) {
        recv_into(s, s->hdr, NBD_OPT_HDR_LEN, option_header_done);
    } else {
        session_maybe_free(s);
    }
}

static void client_flags_done(struct session *s)
{
    uint32_t flags;
    struct err e = { .file = NULL };
    if (nbd_dec_client_flags(s->hdr, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES, &flags,
                             &e) < 0) {
        session_fail(s, &e);
        return;
    }
    s->no_zeroes = flags & NBD_FLAG_C_NO_ZEROES;
    session_read_option(s);
}

struct nbd_server *nbd_server_new(const struct nbd_server_opts *o)
{
    ASSERT(o->export != NULL);
    struct nbd_server *srv = mem_alloc(sizeof(*srv));
    srv->o = *o;
    snprintf(srv->name, sizeof(srv->name), "%s", o->name ? o->name : "");
    snprintf(srv->description, sizeof(srv->description), "%s",
             o->description ? o->description : "");
    srv->o.name = srv->name;
    srv->o.description = srv->description;
    return srv;
}

static void handshake_deadline(void *opaque)
{
    struct session *s = opaque;
    s->timer_pending = false;
    if (!s->transmission && !s->dead) {
        struct err e = { .file = NULL };
        err_set(&e, 0, 0, "handshake not finished within %" PRIu64 " ms: connection closed",
                s->srv->o.handshake_timeout_ns / 1000000);
        s->srv->stats.handshake_timeouts++;
        session_fail(s, &e);
        return;
    }
    session_maybe_free(s);
}

void nbd_server_attach(struct nbd_server *srv, struct env_transport t)
{
    ASSERT(!srv->closing);
    struct session *s = mem_alloc(sizeof(*s));
    s->srv = srv;
    s->t = t;
    s->next = srv->list;
    srv->list = s;
    srv->sessions++;
    srv->stats.sessions++;
    if (srv->o.handshake_timeout_ns && srv->o.timer.ops) {
        s->timer_pending = true;
        env_post(&srv->o.timer, srv->o.handshake_timeout_ns, handshake_deadline, s);
    }
    uint8_t greeting[NBD_GREETING_LEN];
    nbd_enc_greeting(greeting, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
    send_buf(s, greeting, sizeof(greeting));
    recv_into(s, s->hdr, NBD_CLIENT_FLAGS_LEN, client_flags_done);
}

void nbd_server_close(struct nbd_server *srv)
{
    struct session *s = srv->list;
    while (s) {
        struct session *next = s->next;
        session_end(s);
        s = next;
    }
    srv->closing = true; /* only now: the loop must not free the server */
    server_maybe_free(srv);
}

unsigned nbd_server_sessions(const struct nbd_server *srv)
{
    return srv->sessions;
}

const struct nbd_server_stats *nbd_server_stats(const struct nbd_server *srv)
{
    return &srv->stats;
}

const char *nbd_server_last_error(const struct nbd_server *srv)
{
    return srv->last_error;
}


/* ---- transmission ---- */

static void reply_simple(struct session *s, const struct nbd_request *r, uint32_t error,
                         const uint8_t *data)
{
    size_t dlen = (r->type == NBD_CMD_READ && !error) ? r->len : 0;
    uint8_t *buf = mem_alloc(NBD_SIMPLE_REPLY_LEN + dlen);
    struct nbd_simple_reply h = { error, r->cookie };
    nbd_enc_simple_reply(buf, &h);
    if (dlen) {
        memcpy(buf + NBD_SIMPLE_REPLY_LEN, data, dlen);
    }
    send_buf(s, buf, NBD_SIMPLE_REPLY_LEN + dlen);
    mem_free(buf, NBD_SIMPLE_REPLY_LEN + dlen);
}

static void reply_chunk(struct session *s, uint64_t cookie, uint16_t type, bool done,
                        const uint8_t *head, size_t head_len, const uint8_t *data,
                        size_t data_len)
{
    size_t len = NBD_CHUNK_HDR_LEN + head_len + data_len;
    uint8_t *buf = mem_alloc(len);
    struct nbd_chunk c = { done ? NBD_CHUNK_FLAG_DONE : 0, type, cookie,
                           (uint32_t)(head_len + data_len) };
    nbd_enc_chunk(buf, &c);
    memcpy(buf + NBD_CHUNK_HDR_LEN, head, head_len);
    if (data_len) {
        memcpy(buf + NBD_CHUNK_HDR_LEN + head_len, data, data_len);
    }
    send_buf(s, buf, len);
    mem_free(buf, len);
}

static void reply_error(struct session *s, const struct nbd_request *r, uint32_t error,
                        const char *msg)
{
    if (!s->structured || (r->type != NBD_CMD_READ && r->type != NBD_CMD_BLOCK_STATUS)) {
        reply_simple(s, r, error, NULL);
        return;
    }
    struct nbd_chunk_error ce = { error, { (const uint8_t *)msg, (uint32_t)strlen(msg) },
                                  false, 0 };
    uint8_t head[6 + 256];
    size_t n = nbd_enc_chunk_error(head, sizeof(head), &ce);
    ASSERT(n > 0);
    reply_chunk(s, r->cookie, NBD_CHUNK_ERROR, true, head, n, NULL, 0);
}

static void reply_read(struct session *s, const struct nbd_request *r, const uint8_t *data)
{
    if (!s->structured) {
        reply_simple(s, r, 0, data);
        return;
    }
    uint8_t head[8];
    nbd_enc_chunk_offset(head, r->offset);
    reply_chunk(s, r->cookie, NBD_CHUNK_OFFSET_DATA, true, head, 8, data, r->len);
}

/* Extents of one context over the request, merged; *n of them. */
static int extents_base(struct node *n, const struct nbd_request *r, struct nbd_extent *ext,
                        size_t max, size_t *count)
{
    uint64_t off = r->offset, end = r->offset + r->len;
    *count = 0;
    while (off < end && *count < max) {
        uint64_t pnum = 0;
        int ret = node_block_status(n, off, end - off, &pnum);
        if (ret < 0) {
            return ret;
        }
        ASSERT(pnum > 0 && pnum <= end - off);
        uint32_t flags = ((ret & NODE_BS_DATA) ? 0 : NBD_STATE_HOLE) |
                         ((ret & NODE_BS_ZERO) ? NBD_STATE_ZERO : 0);
        if (*count && ext[*count - 1].flags == flags) {
            ext[*count - 1].len += (uint32_t)pnum;
        } else {
            ext[(*count)++] = (struct nbd_extent){ (uint32_t)pnum, flags };
        }
        off += pnum;
    }
    return 0;
}

static int extents_dirty(struct node *n, const char *name, const struct nbd_request *r,
                         struct nbd_extent *ext, size_t max, size_t *count)
{
    struct dirty_bitmap *b = n->dirty ? dirty_find(n->dirty, name) : NULL;
    if (!b || b->inconsistent) {
        return -EINVAL;
    }
    uint64_t off = r->offset, end = r->offset + r->len;
    *count = 0;
    while (off < end && *count < max) {
        bool dirty = bitmap_get(b->bits, off);
        int64_t next = dirty ? bitmap_next_zero(b->bits, off, end - off)
                             : bitmap_next_dirty(b->bits, off, end - off);
        uint64_t stop = next < 0 ? end : min_u64((uint64_t)next, end);
        ext[(*count)++] = (struct nbd_extent){ (uint32_t)(stop - off),
                                               dirty ? NBD_STATE_DIRTY : 0 };
        off = stop;
    }
    return 0;
}

static void reply_block_status(struct session *s, const struct nbd_request *r)
{
    unsigned n_ctx = (s->base_ctx ? 1u : 0u) + s->n_dirty;
    size_t max = (r->flags & NBD_CMD_FLAG_REQ_ONE) ? 1 : EXTENTS_MAX;
    struct nbd_extent *ext = mem_alloc(EXTENTS_MAX * sizeof(*ext));
    uint8_t *buf = mem_alloc(4 + 8 * EXTENTS_MAX);
    unsigned sent = 0;
    for (unsigned i = 0; i < 1 + s->n_dirty; i++) {
        if (i == 0 && !s->base_ctx) {
            continue;
        }
        size_t count = 0;
        int ret = i == 0 ? extents_base(s->srv->o.export, r, ext, max, &count)
                         : extents_dirty(s->srv->o.export, s->dirty[i - 1], r, ext, max, &count);
        if (ret < 0) {
            s->srv->stats.io_errors++;
            reply_error(s, r, nbd_errno_to_wire(ret), blocksim_strerror(ret));
            break;
        }
        uint32_t id = i == 0 ? CTX_BASE_ID : CTX_DIRTY_ID + i - 1;
        size_t len = nbd_enc_block_status(buf, 4 + 8 * EXTENTS_MAX, id, ext, count);
        reply_chunk(s, r->cookie, NBD_CHUNK_BLOCK_STATUS, ++sent == n_ctx, buf, len, NULL, 0);
    }
    mem_free(buf, 4 + 8 * EXTENTS_MAX);
    mem_free(ext, EXTENTS_MAX * sizeof(*ext));
}

static void sreq_free(struct sreq *q)
{
    mem_free(q->buf, q->buf_len);
    mem_free(q, sizeof(*q));
}

static void session_after_request(struct session *s)
{
    if (s->dead) {
        session_maybe_free(s);
    } else if (s->disc && s->inflight == 0) {
        session_end(s);
    } else if (s->paused && s->inflight < NBD_SERVER_QD) {
        s->paused = false;
        session_read_request(s);
    }
}

static void sreq_done(void *opaque, int ret)
{
    struct sreq *q = opaque;
    struct session *s = q->s;
    s->inflight--;
    if (!s->dead) {
        if (ret < 0) {
            s->srv->stats.io_errors++;
            reply_error(s, &q->r, nbd_errno_to_wire(ret), blocksim_strerror(ret));
        } else if (q->r.type == NBD_CMD_READ) {
            reply_read(s, &q->r, q->buf);
        } else {
            reply_simple(s, &q->r, 0, NULL);
        }
    }
    sreq_free(q);
    session_after_request(s);
}

static void dispatch(struct session *s, struct sreq *q)
{
    struct node *n = s->srv->o.export;
    const struct nbd_request *r = &q->r;
    unsigned fua = (r->flags & NBD_CMD_FLAG_FUA) ? NODE_REQ_FUA : 0;
    if (node_mutant(n, NODE_MUTANT_NBD_SERVER_DROP_FUA)) {
        fua = 0; /* planted: the FUA the client asked for never reaches the disk */
    }
    if (s->srv->o.on_request) {
        s->srv->o.on_request(s->srv->o.opaque, r, q->buf);
    }
    if (r->type == NBD_CMD_BLOCK_STATUS) { /* synchronous: answered at once */
        reply_block_status(s, r);
        sreq_free(q);
        return;
    }
    s->inflight++;
    switch (r->type) {
    case NBD_CMD_READ:
        q->buf_len = r->len;
        q->buf = mem_alloc(r->len);
        node_read(n, r->offset, r->len, q->buf, sreq_done, q);
        return;
    case NBD_CMD_WRITE:
        node_write(n, r->offset, r->len, q->buf, fua, sreq_done, q);
        return;
    case NBD_CMD_FLUSH:
        node_flush(n, sreq_done, q);
        return;
    case NBD_CMD_TRIM:
        node_submit(n, NODE_OP_DISCARD, r->offset, r->len, NULL, 0, sreq_done, q);
        return;
    case NBD_CMD_WRITE_ZEROES:
        node_submit(n, NODE_OP_WRITE_ZEROES, r->offset, r->len, NULL, fua, sreq_done, q);
        return;
    default:
        UNREACHABLE();
    }
}

/* A request (with its payload) has been read: run it or refuse it. */
static void request_ready(struct session *s, struct sreq *q)
{
    struct err e = { .file = NULL };
    s->srv->stats.requests++;
    uint32_t bad = nbd_request_check(&q->r, s->srv->o.export->length, tflags(s), NODE_SECTOR,
                                     s->structured, s->base_ctx || s->n_dirty > 0, &e);
    if (bad) {
        s->srv->stats.rejected++;
        reply_error(s, &q->r, bad, e.msg);
        sreq_free(q);
    } else {
        dispatch(s, q);
    }
    session_read_request(s);
}

static void payload_done(struct session *s)
{
    struct sreq *q = mem_alloc(sizeof(*q));
    q->s = s;
    q->r = s->req;
    q->buf = s->data;
    q->buf_len = s->data_len;
    s->data = NULL;
    s->data_len = 0;
    request_ready(s, q);
}

static void request_header_done(struct session *s)
{
    struct err e = { .file = NULL };
    if (nbd_dec_request(s->hdr, &s->req, &e) < 0) {
        session_fail(s, &e);
        return;
    }
    if (s->req.type == NBD_CMD_DISC) {
        s->disc = true;
        session_after_request(s);
        return;
    }
    if (s->req.type == NBD_CMD_WRITE) {
        if (s->req.len > NBD_PAYLOAD_MAX) {
            err_set(&e, 0, 0, "WRITE of %" PRIu32 " bytes: payload over 32 MiB", s->req.len);
            session_fail(s, &e); /* the stream cannot be resynchronised */
            return;
        }
        data_alloc(s, s->req.len);
        if (s->req.len) {
            recv_into(s, s->data, s->data_len, payload_done);
            return;
        }
    }
    payload_done(s);
}

static void session_read_request(struct session *s)
{
    if (s->dead || s->disc) {
        session_after_request(s);
        return;
    }
    if (s->inflight >= NBD_SERVER_QD) {
        s->paused = true;
        return;
    }
    recv_into(s, s->hdr, NBD_REQUEST_LEN, request_header_done);
}

const struct planted_bug nbd_server_bugs[] = {
    { "nbd-server-drop-fua", NODE_MUTANT_NBD_SERVER_DROP_FUA,
      "NBD server: acknowledges FUA writes without passing FUA down" },
};

const size_t nbd_server_bugs_count = ARRAY_LEN(nbd_server_bugs);
