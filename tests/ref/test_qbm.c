/* Tests of ref/qbm over sim/files: store and load bit for bit, the in-use
 * rule across crashes, the descriptor's two slots, checksums, the loader's
 * refusals of malformed input, stale file removal and the planted bugs. */
#include "../../ref/qbm.h"
#include "../../ref/node.h"
#include "../../sim/dev/files.h"
#include "../suites.h"
#include "../testlib.h"

#include <stdio.h>
#include <string.h>

#define SIZE (3u << 20) /* 3 MiB: 48 groups at 64 KiB, not a whole word */

struct qfix {
    struct tl_env env;
    struct files files;
    struct dirty_set *set;
    struct qbm *q;
    struct err e;
    unsigned mutants;
};

static void qfix_init(struct qfix *x, unsigned mutants)
{
    memset(x, 0, sizeof(*x));
    tl_env_init(&x->env);
    files_init(&x->files, &x->env.q, &x->env.plan, 1, 0);
    x->mutants = mutants;
}

static int qfix_open(struct qfix *x)
{
    x->set = dirty_set_new(SIZE);
    struct qbm_opts o = { files_env(&x->files), evq_timer(&x->env.q), "guest", "raw", SIZE,
                          x->mutants };
    memset(&x->e, 0, sizeof(x->e));
    int ret = qbm_open(&o, x->set, &x->e, &x->q);
    if (ret < 0) {
        ck_assert_uint_eq(x->set->n, 0);
        dirty_set_free(x->set);
        x->set = NULL;
        x->q = NULL;
    }
    return ret;
}

static void qfix_close(struct qfix *x)
{
    qbm_close(x->q);
    dirty_set_free(x->set);
    x->q = NULL;
    x->set = NULL;
}

static void qfix_fini(struct qfix *x)
{
    qfix_close(x);
    tl_run(&x->env.q);
    files_fini(&x->files);
    tl_env_fini(&x->env);
}

static int qfix_run(struct qfix *x, bool store)
{
    struct tl_count c = { 0, 0 };
    if (store) {
        qbm_store(x->q, tl_count_cb, &c);
    } else {
        qbm_sync(x->q, tl_count_cb, &c);
    }
    ck_assert_int_eq(c.calls, 0); /* never inline */
    tl_run(&x->env.q);
    ck_assert_int_eq(c.calls, 1);
    return c.ret;
}

static struct dirty_bitmap *add(struct qfix *x, const char *name, uint64_t gran,
                                unsigned flags)
{
    struct dirty_bitmap *b;
    ck_assert_int_eq(dirty_add(x->set, name, gran, flags, NULL, &b), 0);
    return b;
}

/* Two persistent bitmaps (one disabled), one transient, some bits. */
static void populate(struct qfix *x)
{
    add(x, "a", 65536, DIRTY_ADD_PERSISTENT);
    add(x, "b", 512, DIRTY_ADD_PERSISTENT | DIRTY_ADD_DISABLED);
    add(x, "t", 4096, 0);
    dirty_mark(x->set, 0, 512);
    dirty_mark(x->set, SIZE - 512, 512);
    struct dirty_bitmap *b = dirty_find(x->set, "b");
    bitmap_set(b->bits, 1u << 20, 4096);
}

START_TEST(test_qbm_store_load_roundtrip)
{
    struct qfix x;
    qfix_init(&x, 0);
    ck_assert_int_eq(qfix_open(&x), 0);
    ck_assert_uint_eq(x.set->n, 0); /* no descriptor: no bitmaps */
    populate(&x);
    ck_assert_int_eq(qfix_run(&x, false), 0);
    ck_assert_int_eq(qfix_run(&x, true), 0);
    struct bitmap *a = bitmap_new(SIZE, 65536);
    ck_assert_int_eq(bitmap_merge(a, dirty_find(x.set, "a")->bits), 0);
    qfix_close(&x);
    ck_assert_int_eq(qfix_open(&x), 0);
    ck_assert_uint_eq(x.set->n, 2);
    struct dirty_bitmap *la = dirty_find(x.set, "a");
    struct dirty_bitmap *lb = dirty_find(x.set, "b");
    ck_assert(la && lb && !dirty_find(x.set, "t"));
    ck_assert(bitmap_equal(la->bits, a));
    ck_assert(la->enabled && la->persistent && !la->inconsistent);
    ck_assert(!lb->enabled && !lb->inconsistent);
    ck_assert_uint_eq(bitmap_count(lb->bits), 4096);
    ck_assert(bitmap_get(lb->bits, 1u << 20));
    bitmap_free(a);
    qfix_fini(&x);
}
END_TEST

START_TEST(test_qbm_in_use_after_crash)
{
    struct qfix x;
    qfix_init(&x, 0);
    ck_assert_int_eq(qfix_open(&x), 0);
    populate(&x);
    ck_assert_int_eq(qfix_run(&x, false), 0);
    ck_assert_int_eq(qfix_run(&x, true), 0);
    qfix_close(&x);
    /* Reopen: marked in use before the guest writes; then the host dies. */
    ck_assert_int_eq(qfix_open(&x), 0);
    ck_assert_int_eq(qfix_run(&x, false), 0);
    dirty_mark(x.set, 8192, 512);
    qfix_close(&x);
    files_crash(&x.files, DISK_CRASH_SUBSET);
    ck_assert_int_eq(qfix_open(&x), 0);
    ck_assert_uint_eq(x.set->n, 2);
    struct dirty_bitmap *a = dirty_find(x.set, "a");
    ck_assert(a->inconsistent && !a->enabled && bitmap_empty(a->bits));
    ck_assert_str_eq(dirty_status(a), "inconsistent");
    /* Still named at the next store (left as is), gone once removed. */
    ck_assert_int_eq(qfix_run(&x, true), 0);
    ck_assert_ptr_nonnull(files_disk(&x.files, "guest.a.bitmap"));
    ck_assert_int_eq(dirty_remove(x.set, "a", NULL), 0);
    ck_assert_int_eq(qfix_run(&x, false), 0);
    ck_assert_ptr_null(files_disk(&x.files, "guest.a.bitmap"));
    qfix_close(&x);
    ck_assert_int_eq(qfix_open(&x), 0);
    ck_assert_uint_eq(x.set->n, 1);
    ck_assert(dirty_find(x.set, "b")->inconsistent);
    qfix_fini(&x);
}
END_TEST

/* Store cleanly, then write @text (NUL padded) into slot @slot. */
static void poke_slot(struct qfix *x, unsigned slot, const char *text)
{
    uint8_t *buf = mem_alloc(QBM_SLOT_SIZE);
    memcpy(buf, text, strlen(text));
    disk_poke(files_disk(&x->files, "guest.qbm"), slot * QBM_SLOT_SIZE, buf, QBM_SLOT_SIZE);
    mem_free(buf, QBM_SLOT_SIZE);
}

static void stored_fixture(struct qfix *x)
{
    qfix_init(x, 0);
    ck_assert_int_eq(qfix_open(x), 0);
    populate(x);
    ck_assert_int_eq(qfix_run(x, false), 0); /* generation 1, slot 1 */
    ck_assert_int_eq(qfix_run(x, true), 0);  /* generation 2, slot 0 */
    qfix_close(x);
}

START_TEST(test_qbm_torn_descriptor_falls_back)
{
    struct qfix x;
    stored_fixture(&x);
    /* The newest slot (0, the clean store) is garbage: slot 1 (in use) wins. */
    poke_slot(&x, 0, "{\"QBM\": {\"version\": 1, \"ima");
    ck_assert_int_eq(qfix_open(&x), 0);
    ck_assert(dirty_find(x.set, "a")->inconsistent);
    qfix_close(&x);
    /* Both bad: the error names the file and the slot. */
    poke_slot(&x, 1, "[1, 2");
    ck_assert_int_eq(qfix_open(&x), BS_EFORMAT);
    ck_assert_msg(strstr(x.e.msg, "guest.qbm: slot 0") != NULL, "%s", x.e.msg);
    qfix_fini(&x);
}
END_TEST

START_TEST(test_qbm_bitmap_file_corruption)
{
    struct qfix x;
    stored_fixture(&x);
    struct disk *d = files_disk(&x.files, "guest.b.bitmap");
    uint8_t byte;
    disk_peek(d, 10, &byte, 1);
    byte ^= 0x10;
    disk_poke(d, 10, &byte, 1);
    ck_assert_int_eq(qfix_open(&x), BS_ECORRUPT);
    ck_assert_msg(strstr(x.e.msg, "guest.b.bitmap: checksum mismatch") != NULL, "%s", x.e.msg);
    qfix_fini(&x);
}
END_TEST

/* A descriptor of generation 9 in slot 1 with @bitmaps as its bitmaps
 * object and @extra spliced into DESC; no checksum. */
static void poke_desc(struct qfix *x, const char *image, const char *bitmaps,
                      const char *extra)
{
    char text[4096];
    snprintf(text, sizeof(text), "{\"QBM\": {\"version\": 1, \"image\": %s, \"bitmaps\": %s, "
             "\"ext-hard-blocksim-generation\": 9%s}}", image, bitmaps, extra);
    poke_slot(x, 1, text);
}

#define IMG "{\"file\": \"guest\", \"format\": \"raw\"}"
#define BM(g) "{\"a\": {\"file\": \"guest.a.bitmap\", \"granularity-bytes\": " g ", " \
              "\"type\": \"dirty\"}}"

START_TEST(test_qbm_loader_refusals)
{
    static const struct {
        const char *image, *bitmaps, *extra;
        int code;
        const char *msg;
    } cases[] = {
        { IMG, BM("65536"), ", \"version\": 2", BS_EFORMAT, "duplicate object key" },
        { IMG, "{}", ", \"ext-hard-future\": 1", BS_EFORMAT,
          "mandatory extension 'ext-hard-future' is not supported" },
        { IMG, "{}", ", \"colour\": 1", BS_EFORMAT, "unknown key 'colour'" },
        { "{\"file\": \"other\", \"format\": \"raw\"}", "{}", "", BS_EFORMAT,
          "is for image 'other', not 'guest'" },
        { "{\"file\": \"guest\", \"format\": \"raw\", \"ext-hard-blocksim-size\": 512}", "{}",
          "", BS_EFORMAT, "is for a 512-byte image" },
        { IMG, BM("1000"), "", BS_EFORMAT, "granularity-bytes 1000 is not a power of two" },
        { IMG, BM("256"), "", BS_EFORMAT, "'granularity-bytes' must be an integer in [512," },
        { IMG, BM("\"64K\""), "", BS_EFORMAT, "'granularity-bytes' must be an integer" },
        { IMG, "{\"a\": {\"file\": \"x\", \"granularity-bytes\": 512, \"type\": \"alloc\"}}",
          "", BS_EFORMAT, "type 'alloc' is not supported" },
        { IMG, "{\"\": {\"file\": \"x\", \"granularity-bytes\": 512, \"type\": \"dirty\"}}",
          "", BS_EFORMAT, "a bitmap name must be 1 to 63 bytes" },
        { IMG, "{\"a\": {\"granularity-bytes\": 512, \"type\": \"dirty\"}}", "", BS_EFORMAT,
          "'file' must be a non-empty string" },
        { IMG, "{\"a\": {\"file\": \"nope\", \"granularity-bytes\": 512, \"type\": \"dirty\"}}",
          "", BS_EFORMAT, "its file 'nope' cannot be opened" },
        /* guest.a.bitmap exists for 64 KiB groups: 8 bytes padded to 512. */
        { IMG, BM("512"), "", BS_EFORMAT, "guest.a.bitmap: 512 bytes, expected 1024" },
        { IMG, "[]", "", BS_EFORMAT, "'bitmaps' must be an object" },
        { IMG, "{\"a\": {}, \"a\": {}}", "", BS_EFORMAT, "duplicate object key" },
        { "3", "{}", "", BS_EFORMAT, "'image' must be an object" },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct qfix x;
        stored_fixture(&x);
        poke_slot(&x, 0, "");
        poke_desc(&x, cases[i].image, cases[i].bitmaps, cases[i].extra);
        ck_assert_int_eq(qfix_open(&x), cases[i].code);
        ck_assert_msg(strstr(x.e.msg, cases[i].msg) != NULL, "case %zu: '%s' lacks '%s'", i,
                      x.e.msg, cases[i].msg);
        qfix_fini(&x);
    }
    /* A version this blocksim does not read. */
    struct qfix x;
    stored_fixture(&x);
    poke_slot(&x, 0, "");
    poke_slot(&x, 1, "{\"QBM\": {\"version\": 2, \"image\": " IMG ", \"bitmaps\": {}}}");
    ck_assert_int_eq(qfix_open(&x), BS_EVERSION);
    ck_assert_msg(strstr(x.e.msg, "QBM version 2 is not supported") != NULL, "%s", x.e.msg);
    /* The RFC's plain form (no blocksim keys) loads: bitmaps are trusted
     * unless marked in use. */
    poke_slot(&x, 1, "{\"QBM\": {\"version\": 1, \"image\": " IMG ", \"bitmaps\": " BM("65536")
              "}}");
    ck_assert_int_eq(qfix_open(&x), 0);
    ck_assert(bitmap_get(dirty_find(x.set, "a")->bits, 0));
    qfix_close(&x);
    /* A truncated descriptor file. */
    struct env_storage st;
    struct env_files f = files_env(&x.files);
    ck_assert_int_eq(f.ops->create(f.ctx, "guest.qbm", 512, &st), 0);
    f.ops->close(f.ctx, &st);
    ck_assert_int_eq(qfix_open(&x), BS_EFORMAT);
    ck_assert_msg(strstr(x.e.msg, "guest.qbm: 512 bytes, expected 65536") != NULL, "%s",
                  x.e.msg);
    qfix_fini(&x);
}
END_TEST

START_TEST(test_qbm_planted_bugs)
{
    /* No in-use marking: after a crash the stale bitmap loads as trusted. */
    struct qfix x;
    qfix_init(&x, NODE_MUTANT_QBM_NO_IN_USE);
    ck_assert_int_eq(qfix_open(&x), 0);
    populate(&x);
    ck_assert_int_eq(qfix_run(&x, true), 0);
    qfix_close(&x);
    ck_assert_int_eq(qfix_open(&x), 0);
    ck_assert_int_eq(qfix_run(&x, false), 0);
    qfix_close(&x);
    files_crash(&x.files, DISK_CRASH_PREFIX);
    ck_assert_int_eq(qfix_open(&x), 0);
    ck_assert(!dirty_find(x.set, "a")->inconsistent);
    qfix_fini(&x);
    /* Short store: the last word is lost and the checksum agrees. */
    qfix_init(&x, NODE_MUTANT_QBM_SHORT_STORE);
    ck_assert_int_eq(qfix_open(&x), 0);
    populate(&x);
    ck_assert_int_eq(qfix_run(&x, true), 0);
    qfix_close(&x);
    ck_assert_int_eq(qfix_open(&x), 0);
    ck_assert(!bitmap_get(dirty_find(x.set, "a")->bits, SIZE - 512));
    qfix_fini(&x);
}
END_TEST

START_TEST(test_qbm_write_errors)
{
    struct qfix x;
    qfix_init(&x, 0);
    ck_assert_int_eq(qfix_open(&x), 0);
    populate(&x);
    struct err e;
    ck_assert_int_eq(fault_plan_parse_spec(&x.env.plan, "write-eio disk=qbm", &e), 0);
    ck_assert_int_eq(qfix_run(&x, true), -EIO);
    qfix_close(&x);
    ck_assert_int_eq(qfix_open(&x), 0); /* nothing durable was named: no bitmaps */
    ck_assert_uint_eq(x.set->n, 0);
    qfix_fini(&x);
}
END_TEST

Suite *suite_qbm(void)
{
    const TTest *tests[] = {
        test_qbm_store_load_roundtrip, test_qbm_in_use_after_crash,
        test_qbm_torn_descriptor_falls_back, test_qbm_bitmap_file_corruption,
        test_qbm_loader_refusals, test_qbm_planted_bugs, test_qbm_write_errors,
    };
    return tl_suite("qbm", tests, ARRAY_LEN(tests));
}
