/* Tests of sim/import_fio: v2 and v3, regions, errors located. */
#include "../../sim/import_fio.h"
#include "../suites.h"
#include "../testlib.h"

#include <string.h>

START_TEST(test_fio_v2_and_v3)
{
    static const char v2[] =
        "fio version 2 iolog\n"
        "/dev/a add\n/dev/b add\n/dev/a open\n/dev/b open\n"
        "/dev/a write 0 4096\n/dev/b read 8192 4096\n/dev/a wait 250\n"
        "/dev/a sync 0 0\n/dev/a trim 4096 4096\n/dev/a close\n";
    struct trace t;
    struct import_fio_info info;
    ck_assert_int_eq(import_fio(v2, strlen(v2), &t, &info, NULL), 0);
    ck_assert_uint_eq(info.version, 2);
    ck_assert_uint_eq(info.files, 2);
    ck_assert_uint_eq(info.ops, 4);
    ck_assert_uint_eq(info.end, 2u << 20);
    const struct trace_rec *ops = &t.recs[t.n - 4];
    ck_assert_int_eq(ops[0].kind, TRACE_WRITE);
    ck_assert_int_eq(ops[1].kind, TRACE_READ);
    ck_assert_uint_eq(ops[1].offset, (1u << 20) + 8192); /* file b's region */
    ck_assert_int_eq(ops[2].kind, TRACE_FLUSH);
    ck_assert(ops[2].has_at);
    ck_assert_uint_eq(ops[2].at_ns, 250000);
    ck_assert_int_eq(ops[3].kind, TRACE_DISCARD);
    trace_fini(&t);
    static const char v3[] =
        "fio version 3 iolog\n0 f add\n3 f open\n100 f write 0 4096\n"
        "2500 f read 0 4096\n2600 f datasync 0 0\n9000 f close\n";
    ck_assert_int_eq(import_fio(v3, strlen(v3), &t, &info, NULL), 0);
    ck_assert_uint_eq(info.version, 3);
    ops = &t.recs[t.n - 3];
    ck_assert_uint_eq(ops[0].at_ns, 100000);
    ck_assert_uint_eq(ops[1].at_ns, 2500000);
    ck_assert_int_eq(ops[2].kind, TRACE_FLUSH);
    trace_fini(&t);
}
END_TEST

START_TEST(test_fio_errors)
{
    static const struct tl_bad_case cases[] = {
        { "fio version 4 iolog\n", 1, 0, "not a fio iolog" },
        { "fio version 2 iolog\nf write 0 4096\n", 2, 1, "before 'add'" },
        { "fio version 2 iolog\nf add\nf explode 0 1\n", 3, 2, "unknown fio action" },
        { "fio version 2 iolog\nf add\nf write 100 4096\n", 3, 3, "multiple of 512" },
        { "fio version 2 iolog\nf add\nf write 0\n", 3, 4, "OFFSET LENGTH" },
        { "fio version 3 iolog\nx f add\n", 2, 1, "timestamp" },
        { "fio version 3 iolog\n0 f add\n5 f read 0 zz\n", 3, 5, "length" },
        { "fio version 2 iolog\nf add\nf add\n", 3, 1, "added twice" },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct trace t;
        struct err e = { .file = "fio" };
        ck_assert_int_eq(import_fio(cases[i].text, strlen(cases[i].text), &t, NULL, &e),
                         BS_EPARSE);
        ck_assert_msg(e.line == cases[i].line && e.field == cases[i].field,
                      "case %zu: line %u field %u (%s)", i, e.line, e.field, e.msg);
        ck_assert_msg(strstr(e.msg, cases[i].msg) != NULL, "case %zu: %s", i, e.msg);
    }
}
END_TEST

Suite *suite_import_fio(void)
{
    const TTest *tests[] = {
        test_fio_v2_and_v3,
        test_fio_errors,
    };
    return tl_suite("import_fio", tests, ARRAY_LEN(tests));
}
