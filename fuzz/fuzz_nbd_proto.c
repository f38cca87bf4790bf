/*
 * fuzz_nbd_proto: the NBD codec and both of its users, over arbitrary bytes.
 *
 * Input: the first byte picks the direction; the rest is what the peer
 * sends. Even: the bytes are a client's, fed to nbd_server exporting a small
 * disk. Odd: they are a server's, fed to drv_nbd while it has four reads
 * outstanding (512 bytes at 0, 512, 1024, 1536). Either way nothing may
 * crash, leak or hang, a request must complete exactly once, and every
 * fixed-size message the codec decodes from the input must re-encode to the
 * same bytes. Seeds: client bytes
 * captured from nbdinfo and qemu-io, and qemu-nbd's real handshake followed
 * by hand-made replies (data, hole, error, split chunks; simple replies).
 */
#include <string.h>

#include "../ref/dirty.h"
#include "../ref/drv_file.h"
#include "../ref/drv_nbd.h"
#include "../ref/nbd_proto.h"
#include "../ref/nbd_server.h"
#include "../sim/dev/disk.h"
#include "../sim/base/evq.h"
#include "fuzz.h"

#define EXPORT_SIZE (1u << 20)

/* A peer that sends the input and swallows everything else. */
struct feed {
    struct evq *q;
    const uint8_t *data;
    size_t size, pos;
    bool closed;
    bool dialed;
};

struct feed_done {
    struct feed *f;
    env_io_cb *cb;
    void *opaque;
    int ret;
};

static void feed_done_ev(void *opaque)
{
    struct feed_done d = *(struct feed_done *)opaque;
    mem_free(opaque, sizeof(d));
    if (!d.f->closed) {
        d.cb(d.opaque, d.ret);
    }
}

static void feed_post(struct feed *f, env_io_cb *cb, void *opaque, int ret)
{
    struct feed_done *d = mem_alloc(sizeof(*d));
    *d = (struct feed_done){ f, cb, opaque, ret };
    evq_post(f->q, 1000, feed_done_ev, d);
}

static void feed_send(void *conn, const uint8_t *buf, size_t len, env_io_cb *cb, void *opaque)
{
    (void)buf, (void)len;
    feed_post(conn, cb, opaque, 0);
}

static void feed_recv(void *conn, uint8_t *buf, size_t len, env_io_cb *cb, void *opaque)
{
    struct feed *f = conn;
    if (f->size - f->pos < len) {
        feed_post(f, cb, opaque, -ECONNRESET);
        return;
    }
    memcpy(buf, f->data + f->pos, len);
    f->pos += len;
    feed_post(f, cb, opaque, 0);
}

static void feed_close(void *conn)
{
    struct feed *f = conn;
    ASSERT(!f->closed);
    f->closed = true;
}

static const struct env_transport_ops feed_ops = { feed_send, feed_recv, feed_close };

struct dial_done {
    struct feed *f;
    env_connect_cb *cb;
    void *opaque;
};

static void dial_ev(void *opaque)
{
    struct dial_done d = *(struct dial_done *)opaque;
    mem_free(opaque, sizeof(d));
    struct env_transport t = { NULL, NULL };
    if (d.f->dialed) { /* one connection only: the input is spent */
        d.cb(d.opaque, -ECONNREFUSED, t);
        return;
    }
    d.f->dialed = true;
    t.ops = &feed_ops;
    t.conn = d.f;
    d.cb(d.opaque, 0, t);
}

static void feed_dial(void *ctx, env_connect_cb *cb, void *opaque)
{
    struct dial_done *d = mem_alloc(sizeof(*d));
    *d = (struct dial_done){ ctx, cb, opaque };
    evq_post(((struct feed *)ctx)->q, 1000, dial_ev, d);
}

static const struct env_dialer_ops feed_dialer_ops = { feed_dial };

static void run(struct evq *q)
{
    for (uint64_t i = 0; i < 10000000 && evq_step(q, UINT64_MAX); i++) {
    }
    ASSERT(evq_empty(q)); /* no hang */
}

static void fuzz_server(struct feed *f)
{
    struct fault_plan plan;
    fault_plan_init(&plan);
    struct disk_config dc;
    disk_config_default(&dc, "d0", EXPORT_SIZE);
    struct disk *d = disk_new(&dc, f->q, &plan, 1, 0, 0);
    struct disk_handle *h = disk_handle_new(d);
    struct graph g;
    graph_init(&g, evq_timer(f->q), 0);
    struct drv_file_opts fo = { disk_storage(h) };
    struct node *file = NULL;
    ASSERT(node_new(&g, &drv_file, "f", &fo, NULL, &file) == 0);
    file->dirty = dirty_set_new(EXPORT_SIZE);
    ASSERT(dirty_add(file->dirty, "b0", 65536, 0, NULL, NULL) == 0);
    struct nbd_server_opts so = { .export = file, .name = "" };
    struct nbd_server *srv = nbd_server_new(&so);
    struct env_transport t = { &feed_ops, f };
    nbd_server_attach(srv, t);
    run(f->q);
    ASSERT(f->closed); /* the input ran out: the session ended */
    ASSERT(nbd_server_sessions(srv) == 0);
    nbd_server_close(srv);
    dirty_set_free(file->dirty);
    file->dirty = NULL;
    graph_fini(&g);
    disk_handle_free(h);
    disk_free(d);
    fault_plan_fini(&plan);
}

struct count {
    int calls[4];
};

static void read_done(void *opaque, int ret)
{
    int *calls = opaque;
    (void)ret;
    (*calls)++;
}

static void fuzz_client(struct feed *f)
{
    struct graph g;
    graph_init(&g, evq_timer(f->q), 0);
    struct env_dialer dl = { &feed_dialer_ops, f };
    struct drv_nbd_opts o = { .dialer = dl, .size = 32u << 20, .timeout_ns = 1000000000ull };
    struct node *n = NULL;
    ASSERT(node_new(&g, &drv_nbd, "nbd", &o, NULL, &n) == 0);
    static uint8_t bufs[4][512];
    struct count c = { { 0 } };
    for (int i = 0; i < 4; i++) {
        node_read(n, 512ull * (uint64_t)i, 512, bufs[i], read_done, &c.calls[i]);
    }
    run(f->q);
    for (int i = 0; i < 4; i++) {
        ASSERT(c.calls[i] == 1); /* exactly once */
    }
    graph_fini(&g);
}

/* Decode every fixed-size message at the start of @p; re-encode; compare. */
static void codec_roundtrip(const uint8_t *p, size_t len)
{
    uint8_t out[NBD_REQUEST_LEN];
    struct nbd_request r;
    if (len >= NBD_REQUEST_LEN && nbd_dec_request(p, &r, NULL) == 0) {
        nbd_enc_request(out, &r);
        ASSERT(memcmp(out, p, NBD_REQUEST_LEN) == 0);
    }
    struct nbd_chunk c;
    if (len >= NBD_CHUNK_HDR_LEN && nbd_dec_chunk(p, &c, NULL) == 0) {
        nbd_enc_chunk(out, &c);
        ASSERT(memcmp(out, p, NBD_CHUNK_HDR_LEN) == 0);
    }
    struct nbd_opt_hdr h;
    if (len >= NBD_OPT_HDR_LEN && nbd_dec_opt_hdr(p, &h, NULL) == 0) {
        nbd_enc_opt_hdr(out, &h);
        ASSERT(memcmp(out, p, NBD_OPT_HDR_LEN) == 0);
    }
    struct nbd_opt_meta m;
    uint8_t big[NBD_OPT_DATA_MAX];
    if (len <= sizeof(big) && nbd_dec_opt_meta(p, len, &m, NULL) == 0) {
        ASSERT(nbd_enc_opt_meta(big, sizeof(big), &m) == len && memcmp(big, p, len) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) {
        return 0;
    }
    int64_t before = mem_blocks_live();
    codec_roundtrip(data + 1, size - 1);
    struct evq q;
    evq_init(&q);
    struct feed f = { &q, data + 1, size - 1, 0, false, false };
    if (data[0] & 1) {
        fuzz_client(&f);
    } else {
        fuzz_server(&f);
    }
    evq_fini(&q);
    fuzz_leak_check(before);
    return 0;
}
