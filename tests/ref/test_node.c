/* Tests of ref/node: request lifecycle, serialisation, dead graphs. */
#include "../../ref/drv_file.h"
#include "../../ref/node.h"
#include "../suites.h"
#include "../testlib.h"

#include <string.h>

/* A driver that holds every request until the test releases it. */
struct hold_state {
    struct req *held[16];
    unsigned n;
    unsigned order[16]; /* dispatch order by request offset / 512 */
    unsigned dispatched;
};

static int hold_open(struct node *n, const void *opts, struct err *e)
{
    (void)opts;
    (void)e;
    n->length = 1 << 20;
    return 0;
}

static void hold_submit(struct node *n, struct req *req)
{
    struct hold_state *s = n->state;
    ck_assert_uint_lt(s->n, 16);
    s->held[s->n++] = req;
    s->order[s->dispatched++] = (unsigned)(req->offset / 512);
}

static uint64_t hold_serialise(const struct node *n, const struct req *req)
{
    (void)n;
    return req->op == NODE_OP_WRITE ? 4096 : 0;
}

static const struct node_driver drv_hold = {
    .name = "hold",
    .state_size = sizeof(struct hold_state),
    .open = hold_open,
    .submit = { hold_submit, hold_submit, hold_submit, hold_submit, hold_submit },
    .serialise_align = hold_serialise,
};

/* Release the held request at @offset. */
static void hold_release(struct node *n, uint64_t offset, int ret)
{
    struct hold_state *s = n->state;
    for (unsigned i = 0; i < s->n; i++) {
        if (s->held[i]->offset == offset) {
            req_complete(s->held[i], ret);
            s->held[i] = s->held[--s->n];
            return;
        }
    }
    ck_abort_msg("no held request at %llu", (unsigned long long)offset);
}

/* A graph holding one "hold" node. */
static struct node *hold_graph(struct tl_env *env, struct graph *g)
{
    tl_env_init(env);
    graph_init(g, evq_timer(&env->q), 0);
    struct node *n;
    ck_assert_int_eq(node_new(g, &drv_hold, "hold", NULL, NULL, &n), 0);
    return n;
}

START_TEST(test_serialising_overlaps_wait)
{
    struct tl_env env;
    struct graph g;
    struct node *n = hold_graph(&env, &g);
    struct hold_state *s = n->state;
    uint8_t buf[512];
    struct tl_count c[4] = { { 0, 0 } };
    node_write(n, 0, 512, buf, 0, tl_count_cb, &c[0]);     /* serialising 0..4K */
    node_write(n, 512, 512, buf, 0, tl_count_cb, &c[1]);   /* same 4K: waits */
    node_read(n, 1024, 512, buf, tl_count_cb, &c[2]);      /* overlaps: waits */
    node_read(n, 8192, 512, buf, tl_count_cb, &c[3]);      /* elsewhere: runs */
    ck_assert_uint_eq(s->dispatched, 2);
    ck_assert_uint_eq(s->order[1], 16);
    ck_assert_uint_eq(n->inflight, 4);
    node_check(n);
    hold_release(n, 0, 0);
    ck_assert_int_eq(c[0].calls, 0); /* completion is an event, not inline */
    tl_run(&env.q);
    ck_assert_int_eq(c[0].calls, 1);
    /* The second write went next; the read still waits for it. */
    ck_assert_uint_eq(s->dispatched, 3);
    ck_assert_uint_eq(s->order[2], 1);
    hold_release(n, 512, -EIO);
    tl_run(&env.q);
    ck_assert_int_eq(c[1].ret, -EIO);
    ck_assert_uint_eq(s->order[3], 2);
    hold_release(n, 1024, 0);
    hold_release(n, 8192, 0);
    tl_run(&env.q);
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(c[i].calls, 1);
    }
    graph_check(&g);
    graph_fini(&g);
    tl_env_fini(&env);
}
END_TEST

static void idle_cb(void *opaque)
{
    (*(int *)opaque)++;
}

START_TEST(test_dead_graph_fails_requests)
{
    struct tl_env env;
    struct graph g;
    struct node *n = hold_graph(&env, &g);
    uint8_t buf[512];
    struct tl_count held = { 0, 0 };
    node_read(n, 0, 512, buf, tl_count_cb, &held);
    int idle = 0;
    graph_kill(&g, idle_cb, &idle);
    struct tl_count late = { 0, 0 };
    node_read(n, 4096, 512, buf, tl_count_cb, &late);
    tl_run(&env.q);
    ck_assert_int_eq(late.ret, BS_ECRASHED);
    ck_assert_int_eq(idle, 0); /* one request still held */
    hold_release(n, 0, 0);
    tl_run(&env.q);
    ck_assert_int_eq(idle, 1);
    graph_fini(&g);
    tl_env_fini(&env);
}
END_TEST

START_TEST(test_node_names_and_children)
{
    struct tl_env env;
    tl_env_init(&env);
    struct graph g;
    graph_init(&g, evq_timer(&env.q), 0);
    struct node *a;
    struct node *b;
    struct err e = { .file = NULL };
    ck_assert_int_eq(node_new(&g, &drv_hold, "a", NULL, &e, &a), 0);
    ck_assert_int_eq(node_new(&g, &drv_hold, "a", NULL, &e, &b), BS_EPARSE);
    ck_assert(strstr(e.msg, "already used") != NULL);
    ck_assert_ptr_eq(graph_node_find(&g, "a"), a);
    ck_assert_ptr_null(graph_node_find(&g, "b"));
    ck_assert_int_eq(node_new(&g, &drv_file, "f", NULL, &e, &b), BS_EPARSE);
    ck_assert_uint_eq(g.n_nodes, 1);
    ck_assert_str_eq(node_op_name(NODE_OP_WRITE_ZEROES), "write-zeroes");
    graph_fini(&g);
    tl_env_fini(&env);
}
END_TEST

Suite *suite_node(void)
{
    const TTest *tests[] = {
        test_serialising_overlaps_wait,
        test_dead_graph_fails_requests,
        test_node_names_and_children,
    };
    return tl_suite("node", tests, ARRAY_LEN(tests));
}
