/* Tests of ref/drv_file over a simulated disk. */
#include "../../ref/drv_file.h"
#include "../suites.h"
#include "../testlib.h"

/* A 1 MiB disk under a file node in its own graph. */
struct file_fixture {
    struct tl_env env;
    struct disk *d;
    struct disk_handle *h;
    struct graph g;
    struct node *f;
};

static void file_setup(struct file_fixture *x, unsigned mutants)
{
    tl_env_init(&x->env);
    struct disk_config cfg;
    disk_config_default(&cfg, "d0", 1 << 20);
    x->d = disk_new(&cfg, &x->env.q, &x->env.plan, 1, 0, 0);
    x->h = disk_handle_new(x->d);
    graph_init(&x->g, evq_timer(&x->env.q), mutants);
    struct drv_file_opts fo = { disk_storage(x->h) };
    ck_assert_int_eq(node_new(&x->g, &drv_file, "f", &fo, NULL, &x->f), 0);
}

static void file_teardown(struct file_fixture *x)
{
    graph_fini(&x->g);
    disk_handle_free(x->h);
    disk_free(x->d);
    tl_env_fini(&x->env);
}

START_TEST(test_file_io_and_status)
{
    struct file_fixture x;
    file_setup(&x, 0);
    struct evq *q = &x.env.q;
    struct node *f = x.f;
    ck_assert_uint_eq(f->length, 1 << 20);
    uint8_t w[8192];
    uint8_t r[8192];
    tl_pattern(w, sizeof(w), 3);
    ck_assert_int_eq(tl_node_io(q, f, NODE_OP_WRITE, 8192, 8192, w, NODE_REQ_FUA), 0);
    ck_assert_int_eq(tl_node_io(q, f, NODE_OP_READ, 8192, 8192, r, 0), 0);
    tl_assert_mem_eq(w, r, sizeof(w));
    uint64_t pnum;
    ck_assert_int_eq(node_block_status(f, 0, 1 << 20, &pnum),
                     NODE_BS_ALLOCATED | NODE_BS_ZERO);
    ck_assert_uint_eq(pnum, 8192);
    ck_assert_int_eq(node_block_status(f, 8192, 1 << 20, &pnum),
                     NODE_BS_ALLOCATED | NODE_BS_DATA);
    ck_assert_uint_eq(pnum, 8192);
    ck_assert_int_eq(tl_node_io(q, f, NODE_OP_WRITE_ZEROES, 8192, 4096, NULL, 0), 0);
    ck_assert_int_eq(tl_node_io(q, f, NODE_OP_FLUSH, 0, 0, NULL, 0), 0);
    ck_assert_int_eq(tl_node_io(q, f, NODE_OP_DISCARD, 12288, 4096, NULL, 0), 0);
    ck_assert_int_eq(node_pread_sync(f, 8192, r, 8192), 0);
    for (int i = 0; i < 8192; i++) {
        ck_assert_uint_eq(r[i], 0);
    }
    file_teardown(&x);
}
END_TEST

START_TEST(test_file_fua_reaches_disk)
{
    /* A FUA write survives a crash; with the drop-fua mutant the disk never
     * learns it was FUA. */
    for (int mutant = 0; mutant < 2; mutant++) {
        struct file_fixture x;
        file_setup(&x, mutant ? NODE_MUTANT_FILE_DROP_FUA : 0);
        uint8_t w[4096];
        uint8_t r[4096];
        tl_pattern(w, sizeof(w), 9);
        ck_assert_int_eq(tl_node_io(&x.env.q, x.f, NODE_OP_WRITE, 0, 4096, w, NODE_REQ_FUA), 0);
        ck_assert_uint_eq(x.d->log_n, 1);
        ck_assert_int_eq(x.d->log[x.d->log_head].fua, !mutant);
        disk_crash(x.d, DISK_CRASH_PREFIX, NULL);
        disk_peek(x.d, 0, r, sizeof(r));
        if (!mutant) {
            tl_assert_mem_eq(w, r, sizeof(w));
        }
        file_teardown(&x);
    }
}
END_TEST

Suite *suite_drv_file(void)
{
    const TTest *tests[] = {
        test_file_io_and_status,
        test_file_fua_reaches_disk,
    };
    return tl_suite("drv_file", tests, ARRAY_LEN(tests));
}
