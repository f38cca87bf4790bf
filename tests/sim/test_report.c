/* Tests of sim/report: JSON fields and the text form. */
#include "../../sim/world/report.h"
#include "../suites.h"
#include "../testlib.h"

#include <stdlib.h>
#include <string.h>

static const char fua_trace[] =
    "blocksim-trace v1\n"
    "topology plain size=1M\n"
    "write 8192 4096 fua\n"
    "crash mode=prefix\n"
    "restart\n"
    "read 8192 4096\n";

START_TEST(test_report_forms)
{
    struct trace t;
    struct err e = { .file = "t" };
    ck_assert_int_eq(trace_parse(&t, fua_trace, strlen(fua_trace), &e), 0);
    struct world_opts o = { .disk_mutants = DISK_MUTANT_FUA_VOLATILE, .has_seed = true };
    struct world_result r;
    /* Find a seed whose crash drops the cached "FUA" write. */
    for (o.seed = 1; o.seed < 64; o.seed++) {
        ck_assert_int_eq(world_run(&t, &o, &r, &e), 0);
        if (r.verdict == WORLD_FAIL) {
            break;
        }
    }
    ck_assert_int_eq(r.verdict, WORLD_FAIL);
    struct report_info info = { "fua.trace", "native", "blocksim replay fua.trace", true, 0.5 };
    json_t *j = report_json(&r, &info);
    ck_assert_ptr_nonnull(json_object_get(j, "wall"));
    ck_assert_str_eq(json_string_value(json_object_get(j, "topology")), "plain");
    ck_assert_int_eq(json_integer_value(json_object_get(j, "seed")), (json_int_t)r.seed);
    ck_assert_str_eq(json_string_value(json_object_get(j, "verdict")), "fail");
    json_t *v = json_object_get(j, "violation");
    ck_assert_str_eq(json_string_value(json_object_get(v, "property")), "crash-consistency");
    ck_assert_int_eq(json_integer_value(json_object_get(v, "sector")), 16);
    ck_assert_str_eq(json_string_value(json_array_get(json_object_get(v, "expected"), 0)),
                     "write #0");
    ck_assert_str_eq(json_string_value(json_object_get(v, "actual")), "zeroes");
    ck_assert_str_eq(json_string_value(json_object_get(j, "reproduce")),
                     "blocksim replay fua.trace");
    json_decref(j);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    report_text(&r, &info, f);
    fclose(f);
    ck_assert(strstr(text, "verdict") != NULL);
    ck_assert(strstr(text, "FAIL") != NULL);
    ck_assert(strstr(text, "expected write #0, read zeroes") != NULL);
    ck_assert(strstr(text, "reproduce   blocksim replay fua.trace") != NULL);
    free(text);
    trace_fini(&t);
}
END_TEST

Suite *suite_report(void)
{
    const TTest *tests[] = {
        test_report_forms,
    };
    return tl_suite("report", tests, ARRAY_LEN(tests));
}
