/* Tests of sim/fault: rule text round trip, errors, firing counts. */
#include "../../sim/dev/fault.h"
#include "../suites.h"
#include "../testlib.h"

#include <string.h>

START_TEST(test_fault_rule_text)
{
    static const char *const good[] = {
        "read-eio",
        "write-eio disk=d0 range=4096-8192 after=1000ns before=2000000ns prob=0.25 times=3",
        "misdirect nth=7 sticky delta=65536",
        "latent range=0-1048576 prob=1",
    };
    for (size_t i = 0; i < ARRAY_LEN(good); i++) {
        struct fault_rule r;
        struct fault_rule back;
        char text[256];
        ck_assert_int_eq(fault_rule_parse(good[i], &r, NULL), 0);
        fault_rule_format(&r, text, sizeof(text));
        ck_assert_str_eq(text, good[i]);
        ck_assert_int_eq(fault_rule_parse(text, &back, NULL), 0);
        ck_assert_mem_eq(&r, &back, sizeof(r));
    }
    struct { const char *text; unsigned field; const char *msg; } bad[] = {
        { "explode", 1, "unknown fault kind" },
        { "read-eio prob=2", 2, "expected a probability" },
        { "read-eio range=8K-4K", 2, "END > START" },
        { "read-eio colour=red", 2, "unknown fault option" },
        { "misdirect", 0, "needs delta" },
        { "read-eio after=5ms before=1ms", 0, "window is empty" },
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        struct fault_rule r;
        struct err e = { .file = NULL };
        ck_assert_int_eq(fault_rule_parse(bad[i].text, &r, &e), BS_EPARSE);
        ck_assert_uint_eq(e.field, bad[i].field);
        ck_assert_msg(strstr(e.msg, bad[i].msg) != NULL, "%s: %s", bad[i].text, e.msg);
    }
    struct fault_plan p;
    fault_plan_init(&p);
    struct err e = { .file = NULL };
    ck_assert_int_eq(fault_plan_parse_spec(&p, "read-eio;write-eio nth=2", &e), 0);
    ck_assert_uint_eq(p.n, 2);
    ck_assert_int_eq(fault_plan_parse_spec(&p, "read-eio;bogus", &e), BS_EPARSE);
    ck_assert_uint_eq(e.field, 2);
    fault_plan_fini(&p);
}
END_TEST

START_TEST(test_fault_firing_counts)
{
    struct fault_plan p;
    fault_plan_init(&p);
    struct fault_rule r;
    ck_assert_int_eq(fault_rule_parse("read-eio nth=3 times=2", &r, NULL), 0);
    fault_plan_add(&p, &r);
    struct rng g;
    rng_seed(&g, 1);
    unsigned fired = 0;
    for (int i = 1; i <= 12; i++) {
        bool f = fault_plan_fire(&p, &g, "d0", FAULT_IO_READ, 0, 512, 0) != NULL;
        if (f) {
            ck_assert(i == 3 || i == 6);
        }
        fired += f;
        ck_assert_ptr_null(fault_plan_fire(&p, &g, "d0", FAULT_IO_WRITE, 0, 512, 0));
    }
    ck_assert_uint_eq(fired, 2);
    fault_plan_fini(&p);
}
END_TEST

Suite *suite_fault(void)
{
    const TTest *tests[] = {
        test_fault_rule_text,
        test_fault_firing_counts,
    };
    return tl_suite("fault", tests, ARRAY_LEN(tests));
}
