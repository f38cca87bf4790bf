/* Tests of ref/dirty: QMP-like operations and their refusals in QEMU's
 * words, states, the successor dance, and marking through a node. */
#include "../../ref/dirty.h"
#include "../../ref/drv_file.h"
#include "../suites.h"
#include "../testlib.h"

#include <string.h>

#define MIB (1u << 20)

static void expect_err(int got, int want, const struct err *e, const char *msg)
{
    ck_assert_int_eq(got, want);
    ck_assert_msg(strstr(e->msg, msg) != NULL, "message '%s' lacks '%s'", e->msg, msg);
}

START_TEST(test_dirty_add_and_refusals)
{
    struct dirty_set *s = dirty_set_new(MIB);
    struct err e = { .file = NULL };
    struct dirty_bitmap *b;
    expect_err(dirty_add(s, "", 0, 0, &e, NULL), -EINVAL, &e, "Bitmap name cannot be empty");
    expect_err(dirty_add(s, "a", 1000, 0, &e, NULL), -EINVAL, &e,
               "Granularity must be power of 2 and at least 512");
    expect_err(dirty_add(s, "a", 256, 0, &e, NULL), -EINVAL, &e, "at least 512");
    ck_assert_int_eq(dirty_add(s, "a", 0, DIRTY_ADD_PERSISTENT, &e, &b), 0);
    ck_assert_uint_eq(bitmap_granularity(b->bits), DIRTY_GRAN_DEFAULT);
    ck_assert(b->persistent && b->enabled);
    ck_assert_str_eq(dirty_status(b), "active");
    expect_err(dirty_add(s, "a", 512, 0, &e, NULL), -EEXIST, &e, "Bitmap already exists: a");
    ck_assert_int_eq(dirty_add(s, "off", 4096, DIRTY_ADD_DISABLED, &e, &b), 0);
    ck_assert_str_eq(dirty_status(b), "disabled");
    dirty_mark(s, 0, 512);
    ck_assert(bitmap_empty(b->bits));
    ck_assert(bitmap_get(dirty_find(s, "a")->bits, 0));
    /* Disabled bitmaps still take merge and clear. */
    ck_assert_int_eq(dirty_merge(s, "a", "off", &e), 0);
    ck_assert_uint_eq(bitmap_count(b->bits), 65536); /* a 64 KiB group, finer */
    ck_assert_int_eq(dirty_clear(s, "off", &e), 0);
    ck_assert(bitmap_empty(b->bits));
    expect_err(dirty_remove(s, "nope", &e), -ENOENT, &e, "'nope' not found");
    /* Readonly refuses clear but allows enable and being a merge source. */
    b->readonly = true;
    expect_err(dirty_clear(s, "off", &e), -EPERM, &e, "is readonly and cannot be modified");
    ck_assert_int_eq(dirty_enable(s, "off", &e), 0);
    ck_assert_int_eq(dirty_merge(s, "off", "a", &e), 0);
    /* Inconsistent: only removal. */
    ck_assert_int_eq(dirty_add(s, "bad", 512, DIRTY_ADD_INCONSISTENT, &e, &b), 0);
    ck_assert(!b->enabled);
    ck_assert_str_eq(dirty_status(b), "inconsistent");
    expect_err(dirty_enable(s, "bad", &e), -EINVAL, &e, "is inconsistent and cannot be used");
    expect_err(dirty_merge(s, "bad", "a", &e), -EINVAL, &e, "inconsistent");
    ck_assert_int_eq(dirty_remove(s, "bad", &e), 0);
    ck_assert_uint_eq(s->n, 2);
    dirty_set_check(s);
    dirty_set_free(s);
}
END_TEST

START_TEST(test_dirty_successor_dance)
{
    struct dirty_set *s = dirty_set_new(MIB);
    struct err e = { .file = NULL };
    struct dirty_bitmap *b;
    ck_assert_int_eq(dirty_add(s, "inc", 65536, DIRTY_ADD_PERSISTENT, &e, &b), 0);
    dirty_mark(s, 0, 4096);
    expect_err(dirty_successor_abdicate(s, "inc", &e), -EINVAL, &e, "has no successor");
    ck_assert_int_eq(dirty_successor_create(s, "inc", &e), 0);
    ck_assert_str_eq(dirty_status(b), "frozen");
    ck_assert(dirty_recording(b) && !b->enabled && b->busy);
    expect_err(dirty_successor_create(s, "inc", &e), -EBUSY, &e, "currently in use");
    expect_err(dirty_clear(s, "inc", &e), -EBUSY, &e, "currently in use");
    expect_err(dirty_remove(s, "inc", &e), -EBUSY, &e, "currently in use");
    dirty_mark(s, 65536 * 3, 512); /* goes to the successor only */
    ck_assert(!bitmap_get(b->bits, 65536 * 3));
    /* The job failed: reclaim brings both writes back. */
    ck_assert_int_eq(dirty_successor_reclaim(s, "inc", &e), 0);
    ck_assert(bitmap_get(b->bits, 0) && bitmap_get(b->bits, 65536 * 3));
    ck_assert(b->enabled && !b->busy);
    /* Again; the job succeeds: only the write during the job remains. */
    ck_assert_int_eq(dirty_successor_create(s, "inc", &e), 0);
    dirty_mark(s, 65536 * 5, 512);
    ck_assert_int_eq(dirty_successor_abdicate(s, "inc", &e), 0);
    b = dirty_find(s, "inc");
    ck_assert(b->persistent && b->enabled && !b->busy);
    ck_assert_uint_eq(bitmap_count(b->bits), 65536);
    ck_assert(bitmap_get(b->bits, 65536 * 5));
    dirty_set_check(s);
    /* The planted bug: reclaim forgets the successor. */
    s->drop_successor = true;
    ck_assert_int_eq(dirty_successor_create(s, "inc", &e), 0);
    dirty_mark(s, 0, 512);
    ck_assert_int_eq(dirty_successor_reclaim(s, "inc", &e), 0);
    ck_assert(!bitmap_get(dirty_find(s, "inc")->bits, 0));
    /* A successor of a disabled bitmap is disabled too. */
    ck_assert_int_eq(dirty_add(s, "d", 512, DIRTY_ADD_DISABLED, &e, &b), 0);
    ck_assert_int_eq(dirty_successor_create(s, "d", &e), 0);
    ck_assert(!dirty_recording(b));
    dirty_set_free(s); /* frees the frozen bitmap's successor too */
}
END_TEST

struct mark_probe {
    const struct bitmap *bits;
    uint64_t offset;
    int seen_marked;
};

static void mark_probe_cb(void *opaque, int ret)
{
    struct mark_probe *p = opaque;
    ck_assert_int_eq(ret, 0);
    p->seen_marked = bitmap_get(p->bits, p->offset);
}

static int mark_run(unsigned mutants, bool early, enum node_op op)
{
    struct tl_env env;
    tl_env_init(&env);
    struct disk_config cfg;
    disk_config_default(&cfg, "d0", MIB);
    struct disk *d = disk_new(&cfg, &env.q, &env.plan, 1, 0, 0);
    struct disk_handle *h = disk_handle_new(d);
    struct graph g;
    graph_init(&g, evq_timer(&env.q), mutants);
    g.dirty_mark_early = early;
    struct drv_file_opts fo = { disk_storage(h) };
    struct node *f;
    ck_assert_int_eq(node_new(&g, &drv_file, "f", &fo, NULL, &f), 0);
    f->dirty = dirty_set_new(f->length);
    struct dirty_bitmap *b;
    ck_assert_int_eq(dirty_add(f->dirty, "b", 4096, 0, NULL, &b), 0);
    uint8_t buf[1024] = { 0 };
    struct mark_probe p = { b->bits, 8192 + 3584, -1 };
    node_submit(f, op, 8192 + 3584, 1024, op == NODE_OP_WRITE ? buf : NULL, 0,
                mark_probe_cb, &p);
    tl_run(&env.q);
    /* Rounded outward: both groups the write touches. */
    ck_assert_uint_eq(bitmap_count(b->bits), 8192);
    graph_fini(&g);
    disk_handle_free(h);
    disk_free(d);
    tl_env_fini(&env);
    return p.seen_marked;
}

START_TEST(test_dirty_marked_before_ack)
{
    ck_assert_int_eq(mark_run(0, false, NODE_OP_WRITE), 1);
    ck_assert_int_eq(mark_run(0, false, NODE_OP_WRITE_ZEROES), 1);
    ck_assert_int_eq(mark_run(0, false, NODE_OP_DISCARD), 1);
    ck_assert_int_eq(mark_run(0, true, NODE_OP_WRITE), 1);
    /* The planted bug marks after the callback: the probe sees no bit. */
    ck_assert_int_eq(mark_run(NODE_MUTANT_DIRTY_LATE_MARK, false, NODE_OP_WRITE), 0);
}
END_TEST

Suite *suite_dirty(void)
{
    const TTest *tests[] = {
        test_dirty_add_and_refusals,
        test_dirty_successor_dance,
        test_dirty_marked_before_ack,
    };
    return tl_suite("dirty", tests, ARRAY_LEN(tests));
}
