/* Tests of ref/base: parsers, alignment, counted allocation, errors. */
#include "../../ref/base.h"
#include "../suites.h"
#include "../testlib.h"

#include <stdlib.h>
#include <stdio.h>
#include <string.h>

START_TEST(test_parse_size)
{
    uint64_t v;
    ck_assert_int_eq(parse_size("4096", &v), 0);
    ck_assert_uint_eq(v, 4096);
    ck_assert_int_eq(parse_size("4K", &v), 0);
    ck_assert_uint_eq(v, 4096);
    ck_assert_int_eq(parse_size("1T", &v), 0);
    ck_assert_uint_eq(v, 1ull << 40);
    ck_assert_int_eq(parse_size("", &v), -EINVAL);
    ck_assert_int_eq(parse_size("4k", &v), -EINVAL);
    ck_assert_int_eq(parse_size("K", &v), -EINVAL);
    ck_assert_int_eq(parse_size("-1", &v), -EINVAL);
    ck_assert_int_eq(parse_size("99999999999999999999", &v), -ERANGE);
    ck_assert_int_eq(parse_size("17179869184T", &v), -ERANGE);
}
END_TEST

START_TEST(test_parse_duration_and_prob)
{
    uint64_t v;
    ck_assert_int_eq(parse_duration("20us", &v), 0);
    ck_assert_uint_eq(v, 20000);
    ck_assert_int_eq(parse_duration("2s", &v), 0);
    ck_assert_uint_eq(v, 2000000000ull);
    ck_assert_int_eq(parse_duration("5 ms", &v), -EINVAL);
    ck_assert_int_eq(parse_prob("1", &v), 0);
    ck_assert_uint_eq(v, UINT64_MAX);
    ck_assert_int_eq(parse_prob("50%", &v), 0);
    ck_assert_uint_eq(v, 1ull << 63);
    ck_assert_int_eq(parse_prob("0.5", &v), 0);
    ck_assert_uint_eq(v, 1ull << 63);
    ck_assert_int_eq(parse_prob("1.5", &v), -ERANGE);
    ck_assert_int_eq(parse_prob("nan", &v), -ERANGE);
    ck_assert_int_eq(parse_prob("0.5x", &v), -EINVAL);
    ck_assert_int_eq(parse_u64("0x1F", &v), 0);
    ck_assert_uint_eq(v, 31);
    ck_assert_int_eq(parse_u64("0x", &v), -EINVAL);
}
END_TEST

START_TEST(test_mem_counts)
{
    int64_t blocks = mem_blocks_live();
    int64_t bytes = mem_bytes_live();
    uint8_t *p = mem_alloc(100);
    for (int i = 0; i < 100; i++) {
        ck_assert_uint_eq(p[i], 0);
    }
    ck_assert_int_eq(mem_blocks_live(), blocks + 1);
    p = mem_realloc(p, 100, 300);
    ck_assert_uint_eq(p[299], 0);
    ck_assert_int_eq(mem_bytes_live(), bytes + 300);
    mem_free(p, 300);
    ck_assert_int_eq(mem_blocks_live(), blocks);
    ck_assert_int_eq(mem_bytes_live(), bytes);
    ck_assert_int_ge(mem_bytes_peak(), bytes + 300);
}
END_TEST

START_TEST(test_errors)
{
    ck_assert_str_eq(blocksim_strerror(BS_EPARSE), "malformed input");
    ck_assert_str_eq(blocksim_strerror(-EIO), strerror(EIO));
    for (int code = BS_ERR_LAST; code < BS_ERR_BASE; code++) {
        ck_assert_str_ne(blocksim_strerror(code), "unknown error");
    }
    struct err e = { .file = "x.trace" };
    ck_assert_int_eq(err_set(&e, 3, 2, "bad %s", "thing"), BS_EPARSE);
    char buf[128];
    err_format(&e, buf, sizeof(buf));
    ck_assert_str_eq(buf, "x.trace:3: field 2: bad thing");
    ck_assert_int_eq(err_set(NULL, 1, 1, "ignored"), BS_EPARSE);
}
END_TEST

START_TEST(test_align_and_le)
{
    ck_assert_uint_eq(align_up(1, 512), 512);
    ck_assert_uint_eq(align_up(512, 512), 512);
    ck_assert_uint_eq(align_down(1023, 512), 512);
    ck_assert(ranges_overlap(0, 10, 9, 1));
    ck_assert(!ranges_overlap(0, 10, 10, 1));
    uint8_t b[8];
    put_le64(b, 0x0102030405060708ull);
    ck_assert_uint_eq(b[0], 8);
    ck_assert_uint_eq(get_le64(b), 0x0102030405060708ull);
    put_le32(b, 0xa0b0c0d0u);
    ck_assert_uint_eq(get_le32(b), 0xa0b0c0d0u);
}
END_TEST

START_TEST(test_assert_aborts)
{
    /* This process only (fork mode): the expected message is no noise in a
     * passing run. */
    ck_assert_ptr_nonnull(freopen("/dev/null", "w", stderr));
    ASSERT(1 + 1 == 3);
}
END_TEST

Suite *suite_base(void)
{
    Suite *s = suite_create("base");
    TCase *tc = tl_tcase("base");
    tcase_add_test(tc, test_parse_size);
    tcase_add_test(tc, test_parse_duration_and_prob);
    tcase_add_test(tc, test_mem_counts);
    tcase_add_test(tc, test_errors);
    tcase_add_test(tc, test_align_and_le);
    suite_add_tcase(s, tc);
    const char *fork = getenv("CK_FORK");
    if (!fork || strcmp(fork, "no") != 0) {
        /* Only where each test runs in its own process. */
        TCase *abort_tc = tcase_create("assert");
        tcase_add_test_raise_signal(abort_tc, test_assert_aborts, 6);
        suite_add_tcase(s, abort_tc);
    }
    return s;
}
