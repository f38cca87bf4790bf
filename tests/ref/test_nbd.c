/* Tests of ref/nbd_proto, ref/nbd_server and ref/drv_nbd over sim/net. */
#include <stdio.h>
#include <string.h>

#include "../../ref/drv_file.h"
#include "../../ref/drv_nbd.h"
#include "../../ref/nbd_proto.h"
#include "../../ref/nbd_server.h"
#include "../../sim/dev/net.h"
#include "../suites.h"
#include "../testlib.h"

#define NBD_T_SIZE (1u << 20)

/* A server host (disk, file node, server) and a client graph with an nbd node. */
struct nbd_fixture {
    struct tl_env env;
    struct net *net;
    struct disk *d;
    struct disk_handle *h;
    struct graph sg, cg;
    struct node *file, *nbd;
    struct nbd_server *srv;
    struct net_dialer dialer;
};

static void nbd_accept(void *opaque, struct env_transport t)
{
    struct nbd_fixture *x = opaque;
    nbd_server_attach(x->srv, t);
}

static void nbd_setup_opts(struct nbd_fixture *x, const char *faults, struct drv_nbd_opts *co,
                           bool server_simple)
{
    memset(x, 0, sizeof(*x));
    tl_env_init(&x->env);
    if (faults) {
        ck_assert_int_eq(fault_plan_parse_spec(&x->env.plan, faults, NULL), 0);
    }
    struct net_config nc;
    net_config_default(&nc);
    x->net = net_new(&x->env.q, &x->env.plan, 3, &nc);
    struct disk_config dc;
    disk_config_default(&dc, "s0", NBD_T_SIZE);
    x->d = disk_new(&dc, &x->env.q, &x->env.plan, 1, 0, 0);
    x->h = disk_handle_new(x->d);
    graph_init(&x->sg, evq_timer(&x->env.q), 0);
    struct drv_file_opts fo = { disk_storage(x->h) };
    ck_assert_int_eq(node_new(&x->sg, &drv_file, "s0-file", &fo, NULL, &x->file), 0);
    struct nbd_server_opts so = { .export = x->file, .name = "disk",
                                  .no_structured = server_simple };
    x->srv = nbd_server_new(&so);
    net_listen(x->net, "srv", "nbd", nbd_accept, x);
    snprintf(x->dialer.from, NET_NAME_MAX, "cli");
    snprintf(x->dialer.to, NET_NAME_MAX, "srv");
    snprintf(x->dialer.service, NET_NAME_MAX, "nbd");
    x->dialer.net = x->net;
    graph_init(&x->cg, evq_timer(&x->env.q), 0);
    co->dialer = net_dialer(&x->dialer);
    co->export_name = co->export_name ? co->export_name : "disk";
    ck_assert_int_eq(node_new(&x->cg, &drv_nbd, "nbd", co, NULL, &x->nbd), 0);
}

static void nbd_setup(struct nbd_fixture *x, const char *faults)
{
    struct drv_nbd_opts co = { .size = NBD_T_SIZE, .timeout_ns = 1000000000ull,
                               .reconnect_delay_ns = 5000000000ull };
    nbd_setup_opts(x, faults, &co, false);
}

static void nbd_teardown(struct nbd_fixture *x)
{
    graph_fini(&x->cg);
    nbd_server_close(x->srv);
    tl_run(&x->env.q);
    graph_fini(&x->sg);
    net_unlisten(x->net, "srv", "nbd");
    ck_assert_uint_eq(net_conns_live(x->net), 0);
    net_free(x->net);
    disk_handle_free(x->h);
    disk_free(x->d);
    tl_env_fini(&x->env);
}

/* Writes, a FUA write, zeroes, trim and flush through NBD; every read is
 * compared with the disk under the server. */
static void nbd_roundtrip(struct nbd_fixture *x)
{
    struct evq *q = &x->env.q;
    static uint8_t w[65536], r[65536], d[65536];
    tl_pattern(w, sizeof(w), 11);
    ck_assert_int_eq(tl_node_io(q, x->nbd, NODE_OP_WRITE, 4096, 65536, w, 0), 0);
    ck_assert_int_eq(tl_node_io(q, x->nbd, NODE_OP_WRITE, 131072, 512, w, NODE_REQ_FUA), 0);
    ck_assert_int_eq(tl_node_io(q, x->nbd, NODE_OP_WRITE_ZEROES, 8192, 4096, NULL, 0), 0);
    ck_assert_int_eq(tl_node_io(q, x->nbd, NODE_OP_DISCARD, 65536, 4096, NULL, 0), 0);
    ck_assert_int_eq(tl_node_io(q, x->nbd, NODE_OP_FLUSH, 0, 0, NULL, 0), 0);
    ck_assert_int_eq(tl_node_io(q, x->nbd, NODE_OP_READ, 4096, 65536, r, 0), 0);
    ck_assert_int_eq(tl_node_io(q, x->file, NODE_OP_READ, 4096, 65536, d, 0), 0);
    tl_assert_mem_eq(r, d, sizeof(r));
    memset(w + 4096, 0, 4096);
    tl_assert_mem_eq(r, w, 4096 + 4096); /* the zeroed range */
}

START_TEST(test_nbd_structured_and_simple)
{
    for (int mode = 0; mode < 3; mode++) {
        struct nbd_fixture x;
        struct drv_nbd_opts co = { .size = NBD_T_SIZE, .simple_only = mode == 1 };
        nbd_setup_opts(&x, NULL, &co, mode == 2);
        nbd_roundtrip(&x);
        ck_assert_int_eq(drv_nbd_ready(x.nbd), 1);
        ck_assert_uint_eq(drv_nbd_stats(x.nbd)->connects, 1);
        ck_assert_uint_eq(nbd_server_stats(x.srv)->protocol_errors, 0);
        nbd_teardown(&x);
    }
}
END_TEST

START_TEST(test_nbd_errors_travel)
{
    struct nbd_fixture x;
    nbd_setup(&x, "read-eio disk=s0 range=0-4096");
    uint8_t b[4096];
    ck_assert_int_eq(tl_node_io(&x.env.q, x.nbd, NODE_OP_READ, 0, 4096, b, 0), -EIO);
    ck_assert_int_eq(tl_node_io(&x.env.q, x.nbd, NODE_OP_READ, 4096, 4096, b, 0), 0);
    ck_assert_uint_eq(nbd_server_stats(x.srv)->io_errors, 1);
    nbd_teardown(&x);
}
END_TEST

START_TEST(test_nbd_reset_retries_within_delay)
{
    /* After the handshake, every 3rd request segment resets the connection
     * (twice): the requests in flight are sent again on a new connection. */
    struct nbd_fixture x;
    nbd_setup(&x, "net-reset host=srv oneway after=5ms nth=3 times=2");
    tl_run_for(&x.env.q, 10000000);
    nbd_roundtrip(&x);
    ck_assert_uint_ge(drv_nbd_stats(x.nbd)->breaks, 1);
    ck_assert_uint_ge(drv_nbd_stats(x.nbd)->retried, 1);
    ck_assert_uint_ge(drv_nbd_stats(x.nbd)->connects, 2);
    nbd_teardown(&x);
}
END_TEST

START_TEST(test_nbd_reset_without_delay_fails_cleanly)
{
    struct nbd_fixture x;
    struct drv_nbd_opts co = { .size = NBD_T_SIZE };
    nbd_setup_opts(&x, "net-reset host=cli after=10ms", &co, false);
    tl_run(&x.env.q); /* connected before the rule starts */
    ck_assert_int_eq(drv_nbd_ready(x.nbd), 1);
    tl_run_for(&x.env.q, 20000000); /* past the rule's start */
    uint8_t b[4096];
    struct tl_count c = { 0, 0 };
    for (int i = 0; i < 4; i++) {
        node_read(x.nbd, 4096 * (uint64_t)i, 4096, b, tl_count_cb, &c);
    }
    tl_run(&x.env.q);
    ck_assert_int_eq(c.calls, 4);
    ck_assert_int_eq(c.ret, -EIO);
    nbd_teardown(&x);
}
END_TEST

START_TEST(test_nbd_partition_times_out)
{
    /* A partition that never heals: the reply timeout breaks the connection,
     * reconnects fail, and after reconnect_delay the request fails. */
    struct nbd_fixture x;
    nbd_setup(&x, "partition host=srv after=50ms");
    tl_run_for(&x.env.q, 60000000);
    uint8_t b[4096];
    ck_assert_int_eq(tl_node_io(&x.env.q, x.nbd, NODE_OP_READ, 0, 4096, b, 0), -EIO);
    ck_assert_uint_ge(x.env.q.now_ns, 5000000000ull);
    ck_assert_uint_ge(drv_nbd_stats(x.nbd)->timeouts, 1);
    ck_assert_uint_ge(drv_nbd_stats(x.nbd)->connect_failures, 1);
    nbd_teardown(&x);
}
END_TEST

START_TEST(test_nbd_size_mismatch_and_unknown_export)
{
    struct nbd_fixture x;
    struct drv_nbd_opts co = { .size = NBD_T_SIZE * 2 };
    nbd_setup_opts(&x, NULL, &co, false);
    tl_run(&x.env.q);
    ck_assert_int_lt(drv_nbd_ready(x.nbd), 0);
    ck_assert_ptr_nonnull(strstr(drv_nbd_last_error(x.nbd), "is 1048576 bytes"));
    nbd_teardown(&x);
    struct drv_nbd_opts co2 = { .size = 0, .export_name = "other" };
    nbd_setup_opts(&x, NULL, &co2, false);
    tl_run(&x.env.q);
    ck_assert_int_lt(drv_nbd_ready(x.nbd), 0);
    ck_assert_ptr_nonnull(strstr(drv_nbd_last_error(x.nbd), "ERR_UNKNOWN"));
    nbd_teardown(&x);
    struct drv_nbd_opts co3 = { .size = 0 }; /* learn the size */
    nbd_setup_opts(&x, NULL, &co3, false);
    tl_run(&x.env.q);
    ck_assert_int_eq(drv_nbd_ready(x.nbd), 1);
    ck_assert_uint_eq(x.nbd->length, NBD_T_SIZE);
    nbd_teardown(&x);
}
END_TEST

START_TEST(test_nbd_codec_roundtrip)
{
    uint8_t b[256];
    struct err e = { .file = NULL };
    struct nbd_request r = { NBD_CMD_FLAG_FUA, NBD_CMD_WRITE, 0x1122334455667788ull, 4096,
                             512 }, r2;
    nbd_enc_request(b, &r);
    ck_assert_int_eq(nbd_dec_request(b, &r2, &e), 0);
    ck_assert(r.flags == r2.flags && r.type == r2.type && r.cookie == r2.cookie &&
              r.offset == r2.offset && r.len == r2.len);
    b[0] ^= 1;
    ck_assert_int_eq(nbd_dec_request(b, &r2, &e), BS_EPROTO);
    ck_assert_ptr_nonnull(strstr(e.msg, "bad magic"));
    struct nbd_opt_meta m = { { (const uint8_t *)"disk", 4 }, 2,
                              { { (const uint8_t *)"base:allocation", 15 },
                                { (const uint8_t *)"qemu:dirty-bitmap:b0", 20 } } }, m2;
    size_t n = nbd_enc_opt_meta(b, sizeof(b), &m);
    ck_assert_uint_eq(n, 4 + 4 + 4 + 4 + 15 + 4 + 20);
    ck_assert_int_eq(nbd_dec_opt_meta(b, n, &m2, &e), 0);
    ck_assert_uint_eq(m2.n_queries, 2);
    ck_assert_int_eq(memcmp(m2.queries[1].p, "qemu:dirty-bitmap:b0", 20), 0);
    ck_assert_int_eq(nbd_dec_opt_meta(b, n - 1, &m2, &e), BS_EPROTO);
    ck_assert_int_eq(nbd_dec_opt_meta(b, n + 1, &m2, &e), BS_EPROTO);
    struct nbd_extent ext[2] = { { 4096, NBD_STATE_HOLE | NBD_STATE_ZERO }, { 512, 0 } };
    n = nbd_enc_block_status(b, sizeof(b), 7, ext, 2);
    uint32_t id;
    size_t count;
    ck_assert_int_eq(nbd_dec_block_status(b, n, &id, &count, &e), 0);
    ck_assert_uint_eq(id, 7);
    ck_assert_uint_eq(count, 2);
    ck_assert_uint_eq(nbd_block_status_extent(b, 1).len, 512);
    put_be32(b + 4, 0);
    ck_assert_int_eq(nbd_dec_block_status(b, n, &id, &count, &e), BS_EPROTO);
    struct nbd_chunk c = { 0, NBD_CHUNK_NONE, 1, 0 }, c2;
    nbd_enc_chunk(b, &c);
    ck_assert_int_eq(nbd_dec_chunk(b, &c2, &e), BS_EPROTO); /* NONE without DONE */
    c.flags = NBD_CHUNK_FLAG_DONE;
    nbd_enc_chunk(b, &c);
    ck_assert_int_eq(nbd_dec_chunk(b, &c2, &e), 0);
    uint16_t hs;
    nbd_enc_greeting(b, NBD_FLAG_NO_ZEROES); /* not fixed newstyle */
    ck_assert_int_eq(nbd_dec_greeting(b, &hs, &e), BS_EPROTO);
    uint32_t cf;
    nbd_enc_client_flags(b, NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES);
    ck_assert_int_eq(nbd_dec_client_flags(b, NBD_FLAG_FIXED_NEWSTYLE, &cf, &e), BS_EPROTO);
    ck_assert_int_eq(nbd_errno_from_wire(12345), -EINVAL);
    ck_assert_uint_eq(nbd_errno_to_wire(-ENOSPC), NBD_ENOSPC);
    ck_assert_uint_eq(nbd_errno_to_wire(BS_ECRASHED), NBD_EIO);
}
END_TEST

START_TEST(test_nbd_request_check)
{
    struct err e = { .file = NULL };
    uint16_t tf = NBD_TFLAG_HAS_FLAGS | NBD_TFLAG_SEND_FLUSH | NBD_TFLAG_SEND_FUA |
                  NBD_TFLAG_SEND_TRIM | NBD_TFLAG_SEND_WRITE_ZEROES;
    static const struct {
        struct nbd_request r;
        uint16_t extra;
        uint32_t want;
    } cases[] = {
        { { 0, NBD_CMD_READ, 1, 0, 4096 }, 0, 0 },
        { { 0, NBD_CMD_READ, 1, 0, 100 }, 0, NBD_EINVAL },          /* misaligned */
        { { 0, NBD_CMD_WRITE, 1, 1 << 20, 512 }, 0, NBD_ENOSPC },   /* past the end */
        { { 0, NBD_CMD_READ, 1, 1 << 20, 512 }, 0, NBD_EINVAL },
        { { 0, NBD_CMD_WRITE, 1, 0, 512 }, NBD_TFLAG_READ_ONLY, NBD_EPERM },
        { { NBD_CMD_FLAG_DF, NBD_CMD_READ, 1, 0, 512 }, 0, NBD_EINVAL }, /* not structured */
        { { 0, NBD_CMD_CACHE, 1, 0, 512 }, 0, NBD_EINVAL },         /* not advertised */
        { { 0, 99, 1, 0, 512 }, 0, NBD_EINVAL },
        { { NBD_CMD_FLAG_FAST_ZERO, NBD_CMD_WRITE_ZEROES, 1, 0, 512 }, 0, NBD_EINVAL },
        { { 0, NBD_CMD_BLOCK_STATUS, 1, 0, 512 }, 0, NBD_EINVAL }, /* no context */
        { { 0, NBD_CMD_FLUSH, 1, 0, 0 }, 0, 0 },
        /* FUA is valid on every command once SEND_FUA was advertised. */
        { { NBD_CMD_FLAG_FUA, NBD_CMD_READ, 1, 0, 512 }, 0, 0 },
        { { NBD_CMD_FLAG_FUA, NBD_CMD_FLUSH, 1, 0, 0 }, 0, 0 },
        { { NBD_CMD_FLAG_FUA, NBD_CMD_TRIM, 1, 0, 512 }, 0, 0 },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        uint32_t got = nbd_request_check(&cases[i].r, 1 << 20, tf | cases[i].extra, 512, false,
                                         false, &e);
        ck_assert_msg(got == cases[i].want, "case %zu: %u, want %u (%s)", i, got,
                      cases[i].want, e.msg);
    }
    /* ...and refused on any command when it was not. */
    struct nbd_request fua_read = { NBD_CMD_FLAG_FUA, NBD_CMD_READ, 1, 0, 512 };
    ck_assert_uint_eq(nbd_request_check(&fua_read, 1 << 20, tf & ~NBD_TFLAG_SEND_FUA, 512,
                                        false, false, &e), NBD_EINVAL);
    /* Block status with FUA and a context selected. */
    struct nbd_request fua_bs = { NBD_CMD_FLAG_FUA, NBD_CMD_BLOCK_STATUS, 1, 0, 512 };
    ck_assert_uint_eq(nbd_request_check(&fua_bs, 1 << 20, tf, 512, true, true, &e), 0);
}
END_TEST

Suite *suite_nbd(void)
{
    const TTest *tests[] = {
        test_nbd_codec_roundtrip,
        test_nbd_request_check,
        test_nbd_structured_and_simple,
        test_nbd_errors_travel,
        test_nbd_reset_retries_within_delay,
        test_nbd_reset_without_delay_fails_cleanly,
        test_nbd_partition_times_out,
        test_nbd_size_mismatch_and_unknown_export,
    };
    return tl_suite("nbd", tests, ARRAY_LEN(tests));
}
