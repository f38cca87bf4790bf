/* Tests of ref/drv_overlay: backing reads, copy-up, zero clusters,
 * make-empty, commit, persistence across reopen and crash, bad headers. */
#include "../../ref/drv_file.h"
#include "../../ref/drv_overlay.h"
#include "../suites.h"
#include "../testlib.h"

#include <string.h>

#define CL 4096u
#define SIZE (256u * 1024)

struct ovl_fixture {
    struct tl_env env;
    struct disk *base;
    struct disk *top;
    struct disk_handle *hb;
    struct disk_handle *ht;
    struct graph g;
    struct node *ovl;
};

static int ovl_open(struct ovl_fixture *f, unsigned mutants, struct err *e)
{
    graph_init(&f->g, evq_timer(&f->env.q), mutants);
    f->hb = disk_handle_new(f->base);
    f->ht = disk_handle_new(f->top);
    struct drv_file_opts fb = { disk_storage(f->hb) };
    struct drv_file_opts ft = { disk_storage(f->ht) };
    struct node *nb;
    struct node *nt;
    ck_assert_int_eq(node_new(&f->g, &drv_file, "base", &fb, NULL, &nb), 0);
    ck_assert_int_eq(node_new(&f->g, &drv_file, "top", &ft, NULL, &nt), 0);
    struct drv_overlay_opts oo = { nt, nb, SIZE, CL };
    return node_new(&f->g, &drv_overlay, "ovl", &oo, e, &f->ovl);
}

static void ovl_close(struct ovl_fixture *f)
{
    tl_run(&f->env.q);
    graph_fini(&f->g);
    disk_handle_free(f->hb);
    disk_handle_free(f->ht);
}

static void ovl_setup(struct ovl_fixture *f, unsigned mutants)
{
    tl_env_init(&f->env);
    struct disk_config cb;
    struct disk_config ct;
    disk_config_default(&cb, "base", SIZE);
    disk_config_default(&ct, "top", overlay_file_size(SIZE, CL));
    f->base = disk_new(&cb, &f->env.q, &f->env.plan, 1, 0, 0);
    f->top = disk_new(&ct, &f->env.q, &f->env.plan, 1, 1, 0);
    uint8_t pat[SIZE];
    tl_pattern(pat, SIZE, 77);
    disk_poke(f->base, 0, pat, SIZE);
    ck_assert_int_eq(ovl_open(f, mutants, NULL), 0);
}

static void ovl_teardown(struct ovl_fixture *f)
{
    ovl_close(f);
    disk_free(f->base);
    disk_free(f->top);
    tl_env_fini(&f->env);
}

static int io(struct ovl_fixture *f, enum node_op op, uint64_t off, uint64_t len, uint8_t *b,
              unsigned flags)
{
    return tl_node_io(&f->env.q, f->ovl, op, off, len, b, flags);
}

START_TEST(test_backing_read_and_copy_up)
{
    struct ovl_fixture f;
    ovl_setup(&f, 0);
    uint8_t base[SIZE];
    tl_pattern(base, SIZE, 77);
    uint8_t r[3 * CL];
    ck_assert_int_eq(io(&f, NODE_OP_READ, CL, sizeof(r), r, 0), 0);
    tl_assert_mem_eq(r, base + CL, sizeof(r));
    uint8_t w[512];
    memset(w, 0xab, sizeof(w));
    ck_assert_int_eq(io(&f, NODE_OP_WRITE, CL + 1024, 512, w, 0), 0);
    ck_assert_uint_eq(overlay_clusters_allocated(f.ovl), 1);
    uint8_t expect[3 * CL];
    memcpy(expect, base + CL, sizeof(expect));
    memset(expect + 1024, 0xab, 512);
    ck_assert_int_eq(io(&f, NODE_OP_READ, CL, sizeof(r), r, 0), 0);
    tl_assert_mem_eq(r, expect, sizeof(r));
    uint64_t pnum;
    ck_assert_int_eq(node_block_status(f.ovl, CL, 3 * CL, &pnum),
                     NODE_BS_ALLOCATED | NODE_BS_DATA);
    ck_assert_uint_eq(pnum, CL);
    ck_assert_int_eq(node_block_status(f.ovl, 2 * CL, CL, &pnum), 0);
    /* The backing node was never written. */
    uint8_t b[SIZE];
    disk_peek(f.base, 0, b, SIZE);
    tl_assert_mem_eq(b, base, SIZE);
    ovl_teardown(&f);
}
END_TEST

START_TEST(test_no_copyup_mutant_is_visible)
{
    struct ovl_fixture f;
    ovl_setup(&f, NODE_MUTANT_OVERLAY_NO_COPYUP);
    uint8_t base[SIZE];
    tl_pattern(base, SIZE, 77);
    uint8_t w[512] = { 1 };
    uint8_t r[CL];
    ck_assert_int_eq(io(&f, NODE_OP_WRITE, 0, 512, w, 0), 0);
    ck_assert_int_eq(io(&f, NODE_OP_READ, 0, CL, r, 0), 0);
    /* Without copy-up the rest of the cluster is not the backing data. */
    ck_assert_int_ne(memcmp(r + 512, base + 512, CL - 512), 0);
    ovl_teardown(&f);
}
END_TEST

START_TEST(test_zero_clusters_and_discard)
{
    struct ovl_fixture f;
    ovl_setup(&f, 0);
    uint8_t base[SIZE];
    tl_pattern(base, SIZE, 77);
    uint8_t r[2 * CL];
    ck_assert_int_eq(io(&f, NODE_OP_WRITE_ZEROES, 0, 2 * CL, NULL, 0), 0);
    ck_assert_int_eq(io(&f, NODE_OP_READ, 0, 2 * CL, r, 0), 0);
    for (unsigned i = 0; i < 2 * CL; i++) {
        ck_assert_uint_eq(r[i], 0);
    }
    uint64_t pnum;
    ck_assert_int_eq(node_block_status(f.ovl, 0, SIZE, &pnum),
                     NODE_BS_ALLOCATED | NODE_BS_ZERO);
    ck_assert_uint_eq(pnum, 2 * CL);
    /* Partial write-zeroes copies up; a partial discard changes nothing. */
    ck_assert_int_eq(io(&f, NODE_OP_WRITE_ZEROES, 4 * CL + 512, 512, NULL, 0), 0);
    ck_assert_int_eq(io(&f, NODE_OP_DISCARD, 5 * CL, 1024, NULL, 0), 0);
    ck_assert_int_eq(io(&f, NODE_OP_READ, 4 * CL, 2 * CL, r, 0), 0);
    tl_assert_mem_eq(r, base + 4 * CL, 512);
    for (unsigned i = 512; i < 1024; i++) {
        ck_assert_uint_eq(r[i], 0);
    }
    tl_assert_mem_eq(r + 1024, base + 4 * CL + 1024, 2 * CL - 1024);
    ovl_teardown(&f);
}
END_TEST

START_TEST(test_make_empty_and_commit)
{
    struct ovl_fixture f;
    ovl_setup(&f, 0);
    uint8_t base[SIZE];
    tl_pattern(base, SIZE, 77);
    uint8_t w[CL + 512];
    tl_pattern(w, sizeof(w), 5);
    uint8_t r[SIZE];
    ck_assert_int_eq(io(&f, NODE_OP_WRITE, 3 * CL, sizeof(w), w, 0), 0);
    ck_assert_int_eq(io(&f, NODE_OP_WRITE_ZEROES, 10 * CL, CL, NULL, 0), 0);
    ck_assert_int_eq(io(&f, NODE_OP_READ, 0, SIZE, r, 0), 0);
    uint8_t view[SIZE];
    memcpy(view, r, SIZE);
    struct tl_count c = { 0, 1 };
    overlay_commit(f.ovl, tl_count_cb, &c);
    tl_run(&f.env.q);
    ck_assert_int_eq(c.calls, 1);
    ck_assert_int_eq(c.ret, 0);
    ck_assert_uint_eq(overlay_clusters_allocated(f.ovl), 0);
    uint8_t b[SIZE];
    disk_peek(f.base, 0, b, SIZE);
    tl_assert_mem_eq(b, view, SIZE);
    ck_assert_int_eq(io(&f, NODE_OP_READ, 0, SIZE, r, 0), 0);
    tl_assert_mem_eq(r, view, SIZE);
    /* Now diverge, then make-empty: the view falls back to the backing. */
    ck_assert_int_eq(io(&f, NODE_OP_WRITE, 0, 512, w, 0), 0);
    c.calls = 0;
    overlay_make_empty(f.ovl, tl_count_cb, &c);
    tl_run(&f.env.q);
    ck_assert_int_eq(c.calls, 1);
    ck_assert_int_eq(io(&f, NODE_OP_READ, 0, SIZE, r, 0), 0);
    tl_assert_mem_eq(r, view, SIZE);
    ovl_teardown(&f);
}
END_TEST

START_TEST(test_persistence_reopen_and_crash)
{
    struct ovl_fixture f;
    ovl_setup(&f, 0);
    uint8_t base[SIZE];
    tl_pattern(base, SIZE, 77);
    uint8_t w[CL];
    tl_pattern(w, CL, 6);
    uint8_t r[CL];
    ck_assert_int_eq(io(&f, NODE_OP_WRITE, 0, CL, w, 0), 0);
    ck_assert_int_eq(io(&f, NODE_OP_FLUSH, 0, 0, NULL, 0), 0);
    ck_assert_int_eq(io(&f, NODE_OP_WRITE, 8 * CL, 512, w, 0), 0); /* never flushed */
    ovl_close(&f);
    disk_crash(f.top, DISK_CRASH_PREFIX, NULL);
    disk_crash(f.base, DISK_CRASH_PREFIX, NULL);
    ck_assert_int_eq(ovl_open(&f, 0, NULL), 0);
    ck_assert_int_eq(io(&f, NODE_OP_READ, 0, CL, r, 0), 0);
    tl_assert_mem_eq(r, w, CL);
    /* The unflushed allocation is gone: the backing shows through. */
    ck_assert_int_eq(io(&f, NODE_OP_READ, 8 * CL, CL, r, 0), 0);
    tl_assert_mem_eq(r, base + 8 * CL, CL);
    ck_assert_uint_eq(overlay_clusters_allocated(f.ovl), 1);
    ovl_teardown(&f);
}
END_TEST

START_TEST(test_bad_headers_fail_to_open)
{
    struct ovl_fixture f;
    ovl_setup(&f, 0);
    ck_assert_int_eq(io(&f, NODE_OP_FLUSH, 0, 0, NULL, 0), 0); /* header written */
    ovl_close(&f);
    uint8_t hdr[512];
    disk_peek(f.top, 0, hdr, 512);
    hdr[20] ^= 1; /* size field: checksum no longer matches */
    disk_poke(f.top, 0, hdr, 512);
    struct err e = { .file = NULL };
    ck_assert_int_eq(ovl_open(&f, 0, &e), BS_ECORRUPT);
    ck_assert(strstr(e.msg, "checksum") != NULL);
    ovl_close(&f);
    hdr[0] = 'X';
    disk_poke(f.top, 0, hdr, 512);
    ck_assert_int_eq(ovl_open(&f, 0, &e), BS_EFORMAT);
    ck_assert(strstr(e.msg, "no overlay header") != NULL);
    ovl_close(&f);
    memset(hdr, 0, sizeof(hdr));
    disk_poke(f.top, 0, hdr, 512);
    ck_assert_int_eq(ovl_open(&f, 0, NULL), 0); /* blank again: a fresh overlay */
    ovl_teardown(&f);
}
END_TEST

/* A fresh overlay over a file whose map area holds stale bytes (an earlier
 * incarnation's failed flush) must not let them come back once its header
 * lands (found by fuzz_scenario). */
START_TEST(test_fresh_overlay_ignores_stale_map)
{
    struct ovl_fixture f;
    ovl_setup(&f, 0);
    ovl_close(&f);
    uint8_t stale[512];
    memset(stale, 1, sizeof(stale)); /* "DATA" for clusters 0..511 */
    disk_poke(f.top, OVERLAY_MAP_OFFSET, stale, sizeof(stale));
    uint8_t junk[CL];
    memset(junk, 0xee, sizeof(junk));
    disk_poke(f.top, overlay_file_size(SIZE, CL) - SIZE, junk, sizeof(junk));
    ck_assert_int_eq(ovl_open(&f, 0, NULL), 0); /* blank header: fresh */
    ck_assert_uint_eq(overlay_clusters_allocated(f.ovl), 0);
    ck_assert_int_eq(io(&f, NODE_OP_FLUSH, 0, 0, NULL, 0), 0);
    ovl_close(&f);
    ck_assert_int_eq(ovl_open(&f, 0, NULL), 0); /* now an existing overlay */
    ck_assert_uint_eq(overlay_clusters_allocated(f.ovl), 0);
    uint8_t base[SIZE];
    tl_pattern(base, SIZE, 77);
    uint8_t r[CL];
    ck_assert_int_eq(io(&f, NODE_OP_READ, 0, CL, r, 0), 0);
    tl_assert_mem_eq(r, base, CL);
    ovl_teardown(&f);
}
END_TEST

START_TEST(test_fua_write_is_durable)
{
    struct ovl_fixture f;
    ovl_setup(&f, 0);
    uint8_t w[512];
    uint8_t r[512];
    tl_pattern(w, sizeof(w), 8);
    ck_assert_int_eq(io(&f, NODE_OP_WRITE, 7 * CL, 512, w, NODE_REQ_FUA), 0);
    ovl_close(&f);
    disk_crash(f.top, DISK_CRASH_SUBSET, NULL);
    ck_assert_int_eq(ovl_open(&f, 0, NULL), 0);
    ck_assert_int_eq(io(&f, NODE_OP_READ, 7 * CL, 512, r, 0), 0);
    tl_assert_mem_eq(r, w, 512);
    ovl_teardown(&f);
}
END_TEST

struct chain {
    struct node *ovl;
    int calls;
};

static void chain_cb(void *opaque, int ret)
{
    struct chain *c = opaque;
    ck_assert_int_eq(ret, 0);
    if (++c->calls < 3) {
        /* Start the next operator action from the completion itself. */
        overlay_make_empty(c->ovl, chain_cb, c);
    }
}

START_TEST(test_make_empty_from_its_own_callback)
{
    struct ovl_fixture f;
    ovl_setup(&f, 0);
    uint8_t w[512] = { 3 };
    ck_assert_int_eq(io(&f, NODE_OP_WRITE, 0, 512, w, 0), 0);
    struct chain c = { f.ovl, 0 };
    overlay_make_empty(f.ovl, chain_cb, &c);
    tl_run(&f.env.q);
    ck_assert_int_eq(c.calls, 3);
    ck_assert_uint_eq(overlay_clusters_allocated(f.ovl), 0);
    ovl_teardown(&f);
}
END_TEST

Suite *suite_drv_overlay(void)
{
    const TTest *tests[] = {
        test_backing_read_and_copy_up,
        test_no_copyup_mutant_is_visible,
        test_zero_clusters_and_discard,
        test_make_empty_and_commit,
        test_persistence_reopen_and_crash,
        test_bad_headers_fail_to_open,
        test_fresh_overlay_ignores_stale_map,
        test_fua_write_is_durable,
        test_make_empty_from_its_own_callback,
    };
    return tl_suite("drv_overlay", tests, ARRAY_LEN(tests));
}
