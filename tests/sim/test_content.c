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

/* A sector of one byte is a pattern (qemu-io write -P), whatever the byte;
 * a pattern with one byte changed is garbage. */
START_TEST(test_content_patterns)
{
    uint8_t buf[512];
    for (unsigned b = 1; b < 256; b++) {
        memset(buf, (int)b, sizeof(buf));
        uint64_t tag = content_identify(buf, 42, 9, NULL);
        ck_assert_uint_eq(tag, content_pattern_tag((uint8_t)b));
        ck_assert(content_tag_is_pattern(tag));
    }
    ck_assert_uint_eq(content_pattern_tag(0), CONTENT_TAG_ZERO);
    memset(buf, 0x5a, sizeof(buf));
    buf[400] = 0x5b;
    ck_assert_uint_eq(content_identify(buf, 42, 9, NULL), CONTENT_TAG_GARBAGE);
    ck_assert(!content_tag_is_pattern(7));
    ck_assert(!content_tag_is_pattern(CONTENT_TAG_IMAGE));
}
END_TEST

Suite *suite_content(void)
{
    const TTest *tests[] = {
        test_content_identifies_writer,
        test_content_patterns,
    };
    return tl_suite("content", tests, ARRAY_LEN(tests));
}
