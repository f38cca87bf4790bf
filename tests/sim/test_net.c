/* Tests of sim/net: delivery, ordering, timing, and its fault rules. */
#include <string.h>

#include "../../sim/dev/net.h"
#include "../suites.h"
#include "../testlib.h"

struct net_fixture {
    struct tl_env env;
    struct net *net;
    struct env_transport server; /* accepted end */
    int accepts;
    struct env_transport client;
    int connect_ret;
    int connects;
};

static void accept_cb(void *opaque, struct env_transport t)
{
    struct net_fixture *x = opaque;
    x->server = t;
    x->accepts++;
}

static void connect_cb(void *opaque, int ret, struct env_transport t)
{
    struct net_fixture *x = opaque;
    x->connect_ret = ret;
    x->client = t;
    x->connects++;
}

static void net_setup(struct net_fixture *x, const char *faults, uint64_t bandwidth)
{
    memset(x, 0, sizeof(*x));
    tl_env_init(&x->env);
    if (faults) {
        ck_assert_int_eq(fault_plan_parse_spec(&x->env.plan, faults, NULL), 0);
    }
    struct net_config cfg;
    net_config_default(&cfg);
    cfg.bandwidth = bandwidth;
    x->net = net_new(&x->env.q, &x->env.plan, 7, &cfg);
    net_listen(x->net, "srv", "nbd", accept_cb, x);
}

static void net_teardown(struct net_fixture *x)
{
    tl_run(&x->env.q);
    ck_assert_uint_eq(net_conns_live(x->net), 0);
    net_unlisten(x->net, "srv", "nbd");
    net_free(x->net);
    tl_env_fini(&x->env);
}

static void net_connect_run(struct net_fixture *x)
{
    net_connect(x->net, "cli", "srv", "nbd", connect_cb, x);
    ck_assert_int_eq(x->connects, 0); /* never inline */
    tl_run(&x->env.q);
    ck_assert_int_eq(x->connects, 1);
}

START_TEST(test_net_stream_in_order)
{
    struct net_fixture x;
    net_setup(&x, "clog prob=50% delay=5ms", 0);
    net_connect_run(&x);
    ck_assert_int_eq(x.connect_ret, 0);
    ck_assert_int_eq(x.accepts, 1);
    uint8_t out[4000], in[4000];
    tl_pattern(out, sizeof(out), 5);
    struct tl_count sent = { 0, 0 }, got = { 0, 0 };
    for (int i = 0; i < 40; i++) { /* 40 segments, some clogged: still in order */
        x.client.ops->send(x.client.conn, out + 100 * i, 100, tl_count_cb, &sent);
    }
    x.server.ops->recv(x.server.conn, in, sizeof(in), tl_count_cb, &got);
    tl_run(&x.env.q);
    ck_assert_int_eq(sent.calls, 40);
    ck_assert_int_eq(got.calls, 1);
    ck_assert_int_eq(got.ret, 0);
    tl_assert_mem_eq(out, in, sizeof(in));
    ck_assert_uint_gt(net_stats(x.net)->clogged, 0);
    /* The server closes: the client's next recv sees the end of the stream. */
    x.server.ops->close(x.server.conn);
    x.client.ops->recv(x.client.conn, in, 1, tl_count_cb, &got);
    tl_run(&x.env.q);
    ck_assert_int_eq(got.calls, 2);
    ck_assert_int_eq(got.ret, -ECONNRESET);
    x.client.ops->close(x.client.conn);
    net_teardown(&x);
}
END_TEST

START_TEST(test_net_bandwidth_and_latency)
{
    struct net_fixture x;
    net_setup(&x, NULL, 1000000); /* 1 MB/s: 100 KB take 100 ms */
    net_connect_run(&x);
    static uint8_t buf[100000];
    struct tl_count got = { 0, 0 };
    uint64_t start = x.env.q.now_ns;
    x.client.ops->send(x.client.conn, buf, sizeof(buf), tl_count_cb, &got);
    x.server.ops->recv(x.server.conn, buf, sizeof(buf), tl_count_cb, &got);
    tl_run(&x.env.q);
    ck_assert_int_eq(got.calls, 2);
    uint64_t took = x.env.q.now_ns - start;
    ck_assert_uint_ge(took, 100000000ull + 50000);
    ck_assert_uint_le(took, 100000000ull + 150000);
    x.client.ops->close(x.client.conn);
    x.server.ops->close(x.server.conn);
    net_teardown(&x);
}
END_TEST

START_TEST(test_net_connect_failures)
{
    struct net_fixture x;
    net_setup(&x, "partition host=far", 0);
    net_connect(x.net, "cli", "nobody", "nbd", connect_cb, &x);
    tl_run(&x.env.q);
    ck_assert_int_eq(x.connect_ret, -ECONNREFUSED);
    ck_assert_ptr_null(x.client.ops);
    net_listen(x.net, "far", "nbd", accept_cb, &x);
    net_connect(x.net, "cli", "far", "nbd", connect_cb, &x);
    tl_run(&x.env.q);
    ck_assert_int_eq(x.connect_ret, -ETIMEDOUT);
    ck_assert_uint_eq(x.env.q.now_ns >= 3000000000ull, 1);
    ck_assert_uint_eq(net_stats(x.net)->connect_failures, 2);
    net_unlisten(x.net, "far", "nbd");
    net_teardown(&x);
}
END_TEST

START_TEST(test_net_partition_heals_or_times_out)
{
    /* Oneway into srv from 1 ms to 2 s: data waits for the heal. */
    struct net_fixture x;
    net_setup(&x, "partition host=srv oneway after=1ms before=2s", 0);
    net_connect_run(&x);
    uint8_t b[16] = "hello, world 123";
    uint8_t in[16];
    struct tl_count got = { 0, 0 }, back = { 0, 0 };
    tl_run_for(&x.env.q, 2000000); /* into the partition */
    x.client.ops->send(x.client.conn, b, 16, tl_count_cb, &got);
    x.server.ops->recv(x.server.conn, in, 16, tl_count_cb, &got);
    x.server.ops->send(x.server.conn, b, 16, tl_count_cb, &back);
    x.client.ops->recv(x.client.conn, in, 16, tl_count_cb, &back);
    uint64_t start = x.env.q.now_ns;
    while (back.calls < 2) {
        ck_assert(evq_step(&x.env.q, UINT64_MAX));
    }
    ck_assert_uint_lt(x.env.q.now_ns - start, 1000000); /* the other way is open */
    tl_run(&x.env.q);
    ck_assert_int_eq(got.calls, 2);
    ck_assert_int_eq(got.ret, 0);
    ck_assert_uint_ge(x.env.q.now_ns, 2000000000ull);
    ck_assert_uint_eq(net_stats(x.net)->stalled, 1);
    x.client.ops->close(x.client.conn);
    x.server.ops->close(x.server.conn);
    net_teardown(&x);

    /* A partition that never heals: the connection times out. */
    net_setup(&x, "partition host=srv after=1ms", 0);
    net_connect_run(&x);
    tl_run_for(&x.env.q, 2000000);
    struct tl_count r = { 0, 0 };
    x.client.ops->send(x.client.conn, b, 16, tl_count_cb, &r);
    x.client.ops->recv(x.client.conn, in, 16, tl_count_cb, &r);
    tl_run(&x.env.q);
    ck_assert_int_eq(r.calls, 2);
    ck_assert_int_eq(r.ret, -ETIMEDOUT);
    ck_assert_uint_eq(net_stats(x.net)->resets, 1);
    x.client.ops->close(x.client.conn);
    x.server.ops->close(x.server.conn);
    net_teardown(&x);
}
END_TEST

START_TEST(test_net_reset_rule_and_closed_end)
{
    struct net_fixture x;
    net_setup(&x, "net-reset host=cli nth=3", 0);
    net_connect_run(&x);
    uint8_t b[8] = { 0 };
    struct tl_count s = { 0, 0 }, r = { 0, 0 };
    x.server.ops->recv(x.server.conn, b, 8, tl_count_cb, &r);
    for (int i = 0; i < 3; i++) {
        x.client.ops->send(x.client.conn, b, 2, tl_count_cb, &s);
    }
    tl_run(&x.env.q);
    ck_assert_int_eq(s.calls, 3);
    ck_assert_int_eq(s.ret, -ECONNRESET);
    ck_assert_int_eq(r.calls, 1);
    ck_assert_int_eq(r.ret, -ECONNRESET);
    ck_assert_uint_eq(net_stats(x.net)->faults[FAULT_NET_RESET], 1);
    /* A closed end's pending callbacks never run. */
    struct tl_count none = { 0, 0 };
    x.client.ops->recv(x.client.conn, b, 8, tl_count_cb, &none);
    x.client.ops->close(x.client.conn);
    x.server.ops->close(x.server.conn);
    tl_run(&x.env.q);
    ck_assert_int_eq(none.calls, 0);
    net_teardown(&x);
}
END_TEST

START_TEST(test_net_fault_rules_parse)
{
    static const struct tl_bad_case bad[] = {
        { "net-stall host=a", 0, 0, "net-stall needs before=" },
        { "partition prob=1%", 0, 0, "is a time window" },
        { "clog", 0, 0, "clog needs delay=DUR" },
        { "net-reset range=0-4096", 0, 0, "takes no range" },
        { "read-eio oneway", 0, 0, "takes no oneway" },
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct fault_rule r;
        struct err e = { .file = NULL };
        ck_assert_int_eq(fault_rule_parse(bad[i].text, &r, &e), BS_EPARSE);
        ck_assert_msg(strstr(e.msg, bad[i].msg), "%s: %s", bad[i].text, e.msg);
    }
    struct fault_rule r;
    ck_assert_int_eq(fault_rule_parse("partition host=s1 oneway after=1s before=2s", &r, NULL),
                     0);
    char text[128];
    fault_rule_format(&r, text, sizeof(text));
    ck_assert_str_eq(text, "partition host=s1 oneway after=1000000000ns before=2000000000ns");
    ck_assert_int_eq(fault_rule_parse("clog host=x prob=10% delay=3ms", &r, NULL), 0);
    fault_rule_format(&r, text, sizeof(text));
    ck_assert_str_eq(text, "clog host=x prob=0.10000000000000001 delay=3000000ns");
}
END_TEST

Suite *suite_net(void)
{
    const TTest *tests[] = {
        test_net_stream_in_order,      test_net_bandwidth_and_latency,
        test_net_connect_failures,     test_net_partition_heals_or_times_out,
        test_net_reset_rule_and_closed_end, test_net_fault_rules_parse,
    };
    return tl_suite("net", tests, ARRAY_LEN(tests));
}
