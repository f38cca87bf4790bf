/* Tests of sim/content: every sector names its writer. */
#include "../../sim/base/content.h"
#include "../suites.h"
#include "../testlib.h"

#include <string.h>

START_TEST(test_content_identifies_writer)
{
    uint8_t buf[4 * 512];
    content_fill(buf, 42, 7, 100, 4);
    uint64_t home;
    for (uint64_t i = 0; i < 4; i++) {
        ck_assert_uint_eq(content_identify(buf + i * 512, 42, 100 + i, &home), 7);
    }
    /* Wrong seed, wrong place, a flipped bit, zeroes. */
    ck_assert_uint_eq(content_identify(buf, 43, 100, NULL), CONTENT_TAG_GARBAGE);
    ck_assert_uint_eq(content_identify(buf, 42, 101, &home), CONTENT_TAG_GARBAGE);
    ck_assert_uint_eq(home, 100);
    buf[300] ^= 4;
    ck_assert_uint_eq(content_identify(buf, 42, 100, &home), CONTENT_TAG_GARBAGE);
    ck_assert_uint_eq(home, UINT64_MAX);
    memset(buf, 0, 512);
    ck_assert_uint_eq(content_identify(buf, 42, 100, NULL), CONTENT_TAG_ZERO);
    buf[511] = 1;
    ck_assert_uint_eq(content_identify(buf, 42, 100, NULL), CONTENT_TAG_GARBAGE);
}
END_TEST

Suite *suite_content(void)
{
    const TTest *tests[] = {
        test_content_identifies_writer,
    };
    return tl_suite("content", tests, ARRAY_LEN(tests));
}
