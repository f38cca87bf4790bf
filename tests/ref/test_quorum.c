/* Tests of ref/drv_quorum over stub children whose data and errors the test
 * sets directly. */
#include <stdio.h>
#include <string.h>

#include "../../ref/drv_quorum.h"
#include "../suites.h"
#include "../testlib.h"

#define QT_SIZE 65536u
#define QT_MAX 4

/* ---- a stub child: bytes in memory, an errno per operation kind ---- */

struct stub_opts {
    uint64_t length;
};

struct stub {
    uint8_t data[QT_SIZE];
    int fail[NODE_OP__COUNT];
    unsigned writes;
    int zero_status; /* block status answers ZERO */
};

static int stub_open(struct node *n, const void *opts, struct err *e)
{
    (void)e;
    n->length = ((const struct stub_opts *)opts)->length;
    return 0;
}

static void stub_io(struct node *n, struct req *req)
{
    struct stub *s = n->state;
    int ret = s->fail[req->op];
    if (ret == 0 && req->op == NODE_OP_READ) {
        memcpy(req->buf, s->data + req->offset, req->len);
    } else if (ret == 0 && req->op == NODE_OP_WRITE) {
        memcpy(s->data + req->offset, req->buf, req->len);
        s->writes++;
    } else if (ret == 0 && req->op == NODE_OP_WRITE_ZEROES) {
        memset(s->data + req->offset, 0, req->len);
    }
    req_complete(req, ret);
}

static int stub_status(struct node *n, uint64_t offset, uint64_t len, uint64_t *pnum)
{
    struct stub *s = n->state;
    (void)offset;
    *pnum = s->zero_status ? len / 2 : len / 4;
    return s->zero_status ? NODE_BS_ZERO : NODE_BS_DATA;
}

static const struct node_driver stub_drv = {
    .name = "stub",
    .state_size = sizeof(struct stub),
    .open = stub_open,
    .submit = { stub_io, stub_io, stub_io, stub_io, stub_io },
    .block_status = stub_status,
};

/* ---- fixture ---- */

struct qt_event {
    enum quorum_event_kind kind;
    enum node_op op;
    int error;
    unsigned child;
    uint64_t mismatch;
};

struct qt {
    struct tl_env env;
    struct graph g;
    struct node *c[QT_MAX];
    struct stub *s[QT_MAX];
    struct node *q;
    struct qt_event ev[16];
    unsigned n_ev;
    uint8_t buf[4096];
};

static void qt_on_event(void *opaque, const struct quorum_event *ev)
{
    struct qt *x = opaque;
    ck_assert_uint_lt(x->n_ev, 16);
    struct qt_event *e = &x->ev[x->n_ev++];
    e->kind = ev->kind;
    e->op = ev->op;
    e->error = ev->error;
    e->child = ev->child;
    e->mismatch = ev->mismatch;
}

static void qt_stubs(struct qt *x)
{
    memset(x, 0, sizeof(*x));
    tl_env_init(&x->env);
    graph_init(&x->g, evq_timer(&x->env.q), 0);
    struct stub_opts so = { QT_SIZE };
    for (unsigned i = 0; i < QT_MAX; i++) { /* spares for adding */
        char name[16];
        snprintf(name, sizeof(name), "c%u", i);
        ck_assert_int_eq(node_new(&x->g, &stub_drv, name, &so, NULL, &x->c[i]), 0);
        x->s[i] = x->c[i]->state;
        memset(x->s[i]->data, 0xAA, QT_SIZE);
    }
}

static void qt_opts(struct qt *x, unsigned n, unsigned threshold, struct drv_quorum_opts *o)
{
    memset(o, 0, sizeof(*o));
    for (unsigned i = 0; i < n; i++) {
        o->children[i] = x->c[i];
    }
    o->n_children = n;
    o->threshold = threshold;
    o->on_event = qt_on_event;
    o->opaque = x;
}

static void qt_open(struct qt *x, const struct drv_quorum_opts *o)
{
    struct err e = { .file = NULL };
    ck_assert_msg(node_new(&x->g, &drv_quorum, "q", o, &e, &x->q) == 0, "%s", e.msg);
}

/* @n stubs, a quorum over them with @threshold, mutants @m. */
static void qt_setup(struct qt *x, unsigned n, unsigned threshold, unsigned m)
{
    qt_stubs(x);
    x->g.mutants = m;
    struct drv_quorum_opts o;
    qt_opts(x, n, threshold, &o);
    qt_open(x, &o);
}

static void qt_fini(struct qt *x)
{
    graph_fini(&x->g);
    tl_env_fini(&x->env);
}

static int qt_read(struct qt *x)
{
    x->n_ev = 0;
    memset(x->buf, 0, sizeof(x->buf));
    return tl_node_io(&x->env.q, x->q, NODE_OP_READ, 0, sizeof(x->buf), x->buf, 0);
}

static unsigned qt_count(const struct qt *x, enum quorum_event_kind k)
{
    unsigned n = 0;
    for (unsigned i = 0; i < x->n_ev; i++) {
        n += x->ev[i].kind == k;
    }
    return n;
}

/* ---- tests ---- */

static void qt_open_fails(struct qt *x, const struct drv_quorum_opts *o, const char *msg)
{
    struct err e = { .file = NULL };
    struct node *n;
    ck_assert_int_lt(node_new(&x->g, &drv_quorum, "bad", o, &e, &n), 0);
    ck_assert_msg(strstr(e.msg, msg) != NULL, "'%s' lacks '%s'", e.msg, msg);
}

START_TEST(test_quorum_options_are_validated)
{
    struct qt x;
    qt_stubs(&x);
    struct drv_quorum_opts o;
    qt_opts(&x, 3, 0, &o);
    qt_open_fails(&x, &o, "'vote-threshold' expects a value >= 1");
    o.threshold = 4;
    qt_open_fails(&x, &o, "threshold may not exceed children count");
    o.threshold = 2;
    o.blkverify = true;
    qt_open_fails(&x, &o, "exactly two files and vote-threshold is 2");
    qt_opts(&x, 2, 2, &o);
    o.blkverify = o.rewrite_corrupted = true;
    qt_open_fails(&x, &o, "cannot be used with blkverify");
    o.read_pattern = QUORUM_READ_FIFO; /* QEMU ignores both with fifo */
    qt_open(&x, &o);
    struct stub_opts small = { QT_SIZE / 2 };
    struct node *odd;
    ck_assert_int_eq(node_new(&x.g, &stub_drv, "odd", &small, NULL, &odd), 0);
    qt_opts(&x, 2, 1, &o);
    o.children[1] = odd;
    qt_open_fails(&x, &o, "differ in length");
    qt_fini(&x);
}
END_TEST

START_TEST(test_quorum_read_agreement_and_minority)
{
    struct qt x;
    qt_setup(&x, 3, 2, 0);
    ck_assert_int_eq(qt_read(&x), 0);
    ck_assert_uint_eq(x.n_ev, 0); /* the fast path: no events */
    ck_assert_uint_eq(quorum_stats(x.q)->votes, 0);
    x.s[2]->data[100] ^= 1; /* a bit flip on one child */
    ck_assert_int_eq(qt_read(&x), 0);
    ck_assert_uint_eq(x.buf[100], 0xAA);
    ck_assert_uint_eq(x.n_ev, 1);
    ck_assert_int_eq(x.ev[0].kind, QUORUM_REPORT_BAD);
    ck_assert_int_eq(x.ev[0].op, NODE_OP_READ);
    ck_assert_int_eq(x.ev[0].error, 0);
    ck_assert_uint_eq(x.ev[0].child, 2);
    ck_assert_uint_eq(x.s[2]->writes, 0); /* no rewrite without rewrite-corrupted */
    x.s[1]->data[7] ^= 0x80; /* now three versions, none has two votes */
    ck_assert_int_eq(qt_read(&x), -EIO);
    ck_assert_uint_eq(qt_count(&x, QUORUM_FAILURE), 1);
    qt_fini(&x);
}
END_TEST

/* Threshold 1, three versions: the tie goes to the highest child index,
 * and the planted bug picks the lowest. */
START_TEST(test_quorum_ties_favour_highest_index)
{
    for (unsigned m = 0; m < 2; m++) {
        struct qt x;
        qt_setup(&x, 3, 1, m ? NODE_MUTANT_QUORUM_TIE_LOW : 0);
        for (unsigned i = 0; i < 3; i++) {
            x.s[i]->data[0] = (uint8_t)(0x10 + i);
        }
        ck_assert_int_eq(qt_read(&x), 0);
        ck_assert_uint_eq(x.buf[0], m ? 0x10 : 0x12);
        ck_assert_uint_eq(qt_count(&x, QUORUM_REPORT_BAD), 2);
        /* Errors are voted on too: the most frequent wins. */
        x.s[0]->fail[NODE_OP_WRITE] = -EIO;
        x.s[1]->fail[NODE_OP_WRITE] = -ENOSPC;
        x.s[2]->fail[NODE_OP_WRITE] = -EIO;
        int ret = tl_node_io(&x.env.q, x.q, NODE_OP_WRITE, 0, 512, x.buf, 0);
        ck_assert_int_eq(ret, -EIO); /* two EIO beat one ENOSPC */
        qt_fini(&x);
    }
}
END_TEST

START_TEST(test_quorum_error_vote)
{
    struct qt x;
    qt_setup(&x, 3, 2, 0);
    x.s[0]->fail[NODE_OP_READ] = -EIO;
    x.s[1]->fail[NODE_OP_READ] = -ENOSPC;
    ck_assert_int_eq(qt_read(&x), -ENOSPC); /* 1 success < 2; EIO vs ENOSPC: highest */
    ck_assert_uint_eq(qt_count(&x, QUORUM_REPORT_BAD), 2);
    ck_assert_uint_eq(qt_count(&x, QUORUM_FAILURE), 1);
    ck_assert_int_eq(x.ev[0].error, -EIO);
    x.s[1]->fail[NODE_OP_READ] = 0;
    ck_assert_int_eq(qt_read(&x), 0); /* two agree: enough */
    ck_assert_uint_eq(x.n_ev, 1);
    ck_assert_uint_eq(x.ev[0].child, 0);
    qt_fini(&x);
}
END_TEST

START_TEST(test_quorum_rewrite_corrupted)
{
    for (unsigned m = 0; m < 2; m++) {
        struct qt x;
        qt_stubs(&x);
        x.g.mutants = m ? NODE_MUTANT_QUORUM_NO_REWRITE : 0;
        struct drv_quorum_opts o;
        qt_opts(&x, 3, 2, &o);
        o.rewrite_corrupted = true;
        qt_open(&x, &o);
        x.s[0]->data[513] = 0x55;
        x.s[2]->fail[NODE_OP_READ] = -EIO; /* a failed child is not rewritten */
        x.s[2]->data[0] = 0x66;
        ck_assert_int_eq(qt_read(&x), -EIO); /* two versions of one vote: below 2 */
        x.s[2]->fail[NODE_OP_READ] = 0;
        x.s[2]->data[0] = 0xAA;
        ck_assert_int_eq(qt_read(&x), 0);
        ck_assert_uint_eq(x.buf[513], 0xAA);
        ck_assert_uint_eq(x.s[0]->data[513], m ? 0x55 : 0xAA);
        ck_assert_uint_eq(x.s[0]->writes, m ? 0 : 1);
        ck_assert_uint_eq(x.s[1]->writes + x.s[2]->writes, 0);
        ck_assert_uint_eq(quorum_stats(x.q)->rewrites, m ? 0 : 1);
        qt_fini(&x);
    }
}
END_TEST

START_TEST(test_quorum_write_threshold)
{
    for (unsigned m = 0; m < 2; m++) {
        struct qt x;
        qt_setup(&x, 3, 3, m ? NODE_MUTANT_QUORUM_WRITE_ANY : 0);
        x.s[1]->fail[NODE_OP_WRITE] = -EIO;
        memset(x.buf, 0x42, sizeof(x.buf));
        x.n_ev = 0;
        int ret = tl_node_io(&x.env.q, x.q, NODE_OP_WRITE, 0, 4096, x.buf, 0);
        ck_assert_int_eq(ret, m ? 0 : -EIO);
        ck_assert_uint_eq(qt_count(&x, QUORUM_REPORT_BAD), 1);
        ck_assert_uint_eq(qt_count(&x, QUORUM_FAILURE), m ? 0 : 1);
        ck_assert_uint_eq(x.s[0]->data[0], 0x42); /* the others have it anyway */
        ck_assert_uint_eq(x.s[1]->data[0], 0xAA);
        qt_fini(&x);
    }
    struct qt x;
    qt_setup(&x, 3, 2, 0); /* 2 of 3 succeed: acknowledged, children diverge */
    x.s[1]->fail[NODE_OP_WRITE_ZEROES] = -EIO;
    ck_assert_int_eq(tl_node_io(&x.env.q, x.q, NODE_OP_WRITE_ZEROES, 0, 512, NULL, 0), 0);
    ck_assert_int_eq(x.ev[0].op, NODE_OP_WRITE);
    ck_assert_uint_eq(x.s[0]->data[0], 0);
    ck_assert_uint_eq(x.s[1]->data[0], 0xAA);
    qt_fini(&x);
}
END_TEST

START_TEST(test_quorum_fifo)
{
    struct qt x;
    qt_stubs(&x);
    struct drv_quorum_opts o;
    qt_opts(&x, 3, 3, &o);
    o.read_pattern = QUORUM_READ_FIFO;
    o.ignore_errors[1] = true;
    qt_open(&x, &o);
    x.s[0]->fail[NODE_OP_READ] = -EIO;
    x.s[1]->fail[NODE_OP_READ] = -ENOSPC;
    x.s[2]->data[0] = 0x77;
    ck_assert_int_eq(qt_read(&x), 0);
    ck_assert_uint_eq(x.buf[0], 0x77); /* no vote: the first success */
    ck_assert_uint_eq(x.n_ev, 1);       /* child 1 ignores errors: not reported */
    ck_assert_uint_eq(x.ev[0].child, 0);
    x.s[2]->fail[NODE_OP_READ] = -EROFS;
    ck_assert_int_eq(qt_read(&x), -EROFS); /* the last child's error */
    qt_fini(&x);
}
END_TEST

START_TEST(test_quorum_flush_and_ignore_errors)
{
    struct qt x;
    qt_stubs(&x);
    struct drv_quorum_opts o;
    qt_opts(&x, 3, 3, &o);
    o.ignore_errors[2] = true;
    qt_open(&x, &o);
    x.s[2]->fail[NODE_OP_FLUSH] = -EIO; /* ignored: counts as success */
    ck_assert_int_eq(tl_node_io(&x.env.q, x.q, NODE_OP_FLUSH, 0, 0, NULL, 0), 0);
    ck_assert_uint_eq(x.n_ev, 0);
    x.s[1]->fail[NODE_OP_FLUSH] = -ENOSPC;
    ck_assert_int_eq(tl_node_io(&x.env.q, x.q, NODE_OP_FLUSH, 0, 0, NULL, 0), -ENOSPC);
    ck_assert_uint_eq(x.n_ev, 1);
    ck_assert_int_eq(x.ev[0].op, NODE_OP_FLUSH);
    ck_assert_uint_eq(qt_count(&x, QUORUM_FAILURE), 0);
    /* An ignored child's read error is not reported, and not a success. */
    x.s[2]->fail[NODE_OP_READ] = -EIO;
    ck_assert_int_eq(qt_read(&x), -EIO);
    ck_assert_uint_eq(qt_count(&x, QUORUM_REPORT_BAD), 0);
    ck_assert_uint_eq(qt_count(&x, QUORUM_FAILURE), 1);
    qt_fini(&x);
    /* The 2015 flush voted over every code: one OK and one EIO tie, EIO is
     * newer. */
    qt_stubs(&x);
    qt_opts(&x, 2, 1, &o);
    o.flush_vote_all = true;
    qt_open(&x, &o);
    x.s[1]->fail[NODE_OP_FLUSH] = -EIO;
    ck_assert_int_eq(tl_node_io(&x.env.q, x.q, NODE_OP_FLUSH, 0, 0, NULL, 0), -EIO);
    qt_fini(&x);
}
END_TEST

START_TEST(test_quorum_children_added_and_removed)
{
    struct qt x;
    qt_setup(&x, 2, 2, 0);
    struct err e = { .file = NULL };
    ck_assert_int_lt(quorum_child_del(x.q, "children.1", &e), 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "cannot be lower than the vote threshold 2"));
    ck_assert_int_eq(quorum_child_add(x.q, x.c[2], false, &e), 0);
    ck_assert_int_lt(quorum_child_add(x.q, x.c[2], false, &e), 0);
    ck_assert_uint_eq(quorum_child_index(x.q, 2), 2);
    ck_assert_int_lt(quorum_child_del(x.q, "children.7", &e), 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "does not have child 'children.7'"));
    ck_assert_int_eq(quorum_child_del(x.q, "children.0", &e), 0);
    ck_assert_uint_eq(quorum_child_index(x.q, 0), 1); /* order kept */
    ck_assert_int_eq(quorum_child_add(x.q, x.c[3], false, &e), 0);
    ck_assert_uint_eq(quorum_child_index(x.q, 2), 3);
    ck_assert_int_eq(quorum_child_del(x.q, "children.3", &e), 0);
    ck_assert_int_eq(quorum_child_add(x.q, x.c[0], false, &e), 0);
    ck_assert_uint_eq(quorum_child_index(x.q, 2), 3); /* the highest was reused */
    /* A read in flight keeps the children it started with. */
    struct tl_count cnt = { 0, 0 };
    node_read(x.q, 0, 4096, x.buf, tl_count_cb, &cnt);
    ck_assert_int_eq(quorum_child_del(x.q, "children.1", &e), 0);
    x.s[1]->data[0] = 1;
    tl_run(&x.env.q);
    ck_assert_int_eq(cnt.calls, 1);
    ck_assert_int_eq(cnt.ret, 0);
    ck_assert_int_eq(qt_read(&x), 0); /* c1 is gone: c2 and c0 agree */
    ck_assert_uint_eq(x.n_ev, 0);
    node_check(x.q);
    qt_fini(&x);
    struct drv_quorum_opts o;
    qt_stubs(&x);
    qt_opts(&x, 2, 2, &o);
    o.blkverify = true;
    qt_open(&x, &o);
    ck_assert_int_lt(quorum_child_add(x.q, x.c[2], false, &e), 0);
    ck_assert_ptr_nonnull(strstr(e.msg, "blkverify"));
    x.s[1]->data[300] = 0;
    ck_assert_int_eq(qt_read(&x), -EIO);
    ck_assert_int_eq(x.ev[0].kind, QUORUM_VERIFY_MISMATCH);
    ck_assert_uint_eq(x.ev[0].mismatch, 300);
    qt_fini(&x);
}
END_TEST

START_TEST(test_quorum_threshold_mutant_and_misc)
{
    for (unsigned m = 0; m < 2; m++) {
        struct qt x;
        qt_setup(&x, 3, 3, m ? NODE_MUTANT_QUORUM_THRESHOLD : 0);
        x.s[0]->data[1] = 0;
        ck_assert_int_eq(qt_read(&x), m ? 0 : -EIO); /* 2 of 3 agree, 3 needed */
        qt_fini(&x);
    }
    struct qt x;
    qt_setup(&x, 2, 1, 0);
    memset(x.buf, 0x11, sizeof(x.buf));
    ck_assert_int_eq(tl_node_io(&x.env.q, x.q, NODE_OP_DISCARD, 0, 4096, NULL, 0), 0);
    ck_assert_uint_eq(x.s[0]->data[0], 0xAA); /* discard leaves the children alone */
    uint64_t pnum = 0;
    ck_assert_int_eq(node_block_status(x.q, 0, 4096, &pnum), NODE_BS_DATA);
    ck_assert_uint_eq(pnum, 1024);
    x.s[0]->zero_status = x.s[1]->zero_status = 1;
    ck_assert_int_eq(node_block_status(x.q, 0, 4096, &pnum), NODE_BS_ZERO);
    ck_assert_uint_eq(pnum, 2048);
    ck_assert_str_eq(quorum_event_name(QUORUM_FAILURE), "QUORUM_FAILURE");
    qt_fini(&x);
}
END_TEST

Suite *suite_quorum(void)
{
    const TTest *tests[] = {
        test_quorum_options_are_validated, test_quorum_read_agreement_and_minority,
        test_quorum_ties_favour_highest_index, test_quorum_error_vote,
        test_quorum_rewrite_corrupted, test_quorum_write_threshold, test_quorum_fifo,
        test_quorum_flush_and_ignore_errors, test_quorum_children_added_and_removed,
        test_quorum_threshold_mutant_and_misc,
    };
    return tl_suite("quorum", tests, ARRAY_LEN(tests));
}
