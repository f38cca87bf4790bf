/* Tests of sim/import_fio: v2 and v3, regions, errors located. */
#include "../../sim/trace/import_fio.h"
#include "../suites.h"
#include "../testlib.h"

#include <stdio.h>
#include <stdlib.h>
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
    ck_assert_int_eq(import_fio(v2, strlen(v2), NULL, &t, &info, NULL), 0);
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
    ck_assert_uint_eq(ops[2].at_ns, 250000000); /* wait 250: 250 ms after the start */
    ck_assert_int_eq(ops[3].kind, TRACE_DISCARD);
    trace_fini(&t);
    static const char v3[] =
        "fio version 3 iolog\n0 f add\n3 f open\n100 f write 0 4096\n"
        "2500 f read 0 4096\n2600 f datasync 0 0\n9000 f close\n";
    ck_assert_int_eq(import_fio(v3, strlen(v3), NULL, &t, &info, NULL), 0);
    ck_assert_uint_eq(info.version, 3);
    ops = &t.recs[t.n - 3];
    ck_assert_uint_eq(ops[0].at_ns, 100000);
    ck_assert_uint_eq(ops[1].at_ns, 2500000);
    ck_assert_int_eq(ops[2].kind, TRACE_FLUSH);
    trace_fini(&t);
}
END_TEST

/* Timing as fio 3.33 replays (shared/spec/trace-formats.md section 1): v2
 * waits are absolute milliseconds since the start; v3 timestamps count as
 * distances from the previous line, the first line at 0, backwards adds
 * nothing. */
START_TEST(test_fio_timing_as_fio_replays)
{
    static const char v2[] =
        "fio version 2 iolog\nf add\nf open\nf wait 1500 0\nf write 0 512\n"
        "f wait 1000 0\nf write 512 512\nf wait 3000 0\nf write 1024 512\n";
    struct trace t;
    struct import_fio_info info;
    ck_assert_int_eq(import_fio(v2, strlen(v2), NULL, &t, &info, NULL), 0);
    const struct trace_rec *ops = &t.recs[t.n - 3];
    ck_assert_uint_eq(ops[0].at_ns, 1500000000ull);
    ck_assert_uint_eq(ops[1].at_ns, 1500000000ull); /* 1000 < 1500: no wait */
    ck_assert_uint_eq(ops[2].at_ns, 3000000000ull);
    ck_assert_uint_eq(ops[2].line, 9);              /* records name their iolog line */
    trace_fini(&t);
    static const char v3[] =
        "fio version 3 iolog\n31 f add\n190 f open\n202 f write 0 4096\n"
        "2369 f read 0 4096\n1000 f read 4096 4096\n1500 f sync_file_range 0 4096\n"
        "1600 f write 8192 4096\n";
    ck_assert_int_eq(import_fio(v3, strlen(v3), NULL, &t, &info, NULL), 0);
    ck_assert_uint_eq(info.skipped, 1);
    ops = &t.recs[t.n - 4];
    ck_assert_uint_eq(ops[0].at_ns, (202 - 31) * 1000ull);
    ck_assert_uint_eq(ops[1].at_ns, (2369 - 31) * 1000ull);
    ck_assert_uint_eq(ops[2].at_ns, (2369 - 31) * 1000ull); /* backwards: no delay */
    ck_assert_uint_eq(ops[3].at_ns, (2369 - 31 + 600) * 1000ull); /* 1000 is the new base */
    trace_fini(&t);
}
END_TEST

/* --align round widens unaligned ranges; more than 64 files are fine. */
START_TEST(test_fio_align_and_many_files)
{
    static const char odd[] = "fio version 2 iolog\nf add\nf write 100 1000\n";
    struct trace t;
    struct import_fio_info info;
    struct err e = { .file = "fio" };
    ck_assert_int_eq(import_fio(odd, strlen(odd), NULL, &t, &info, &e), BS_EPARSE);
    ck_assert_ptr_nonnull(strstr(e.msg, "--align round"));
    struct import_fio_opts o = { .align_round = true };
    ck_assert_int_eq(import_fio(odd, strlen(odd), &o, &t, &info, &e), 0);
    ck_assert_uint_eq(info.rounded, 1);
    ck_assert_uint_eq(t.recs[t.n - 1].offset, 0);
    ck_assert_uint_eq(t.recs[t.n - 1].len, 1536); /* 100..1100 widened to 0..1536 */
    trace_fini(&t);
    char *many = malloc(200 * 40 + 64);
    size_t at = (size_t)sprintf(many, "fio version 2 iolog\n");
    for (unsigned i = 0; i < 200; i++) {
        at += (size_t)sprintf(many + at, "/dev/d%u add\n/dev/d%u write 0 512\n", i, i);
    }
    ck_assert_int_eq(import_fio(many, at, NULL, &t, &info, &e), 0);
    ck_assert_uint_eq(info.files, 200);
    ck_assert_uint_eq(info.ops, 200);
    trace_fini(&t);
    free(many);
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
        { "fio version 2 iolog\nf add\nf wait 18446744073709551615\n", 3, 3, "overflows" },
        { "fio version 2 iolog\nf add\nf wait -5\n", 3, 3, "wait" },
        { "fio version 3 iolog\n0 f add\n5 f wait 100 0\n", 3, 3, "v2 action" },
        { "fio version 3 iolog\n0 f add\n18446744073709551615 f write 0 512\n", 3, 1,
          "overflows" },
        { "fio version 2 iolog\nf add\nf write 0 4294967808\n", 3, 4, "32-bit" },
        { "fio version 2 iolog\nf add\nf read 0 134217728\n", 3, 4, "over the 64M" },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        struct trace t;
        struct err e = { .file = "fio" };
        ck_assert_int_eq(import_fio(cases[i].text, strlen(cases[i].text), NULL, &t, NULL, &e),
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
        test_fio_timing_as_fio_replays,
        test_fio_align_and_many_files,
    };
    return tl_suite("import_fio", tests, ARRAY_LEN(tests));
}
