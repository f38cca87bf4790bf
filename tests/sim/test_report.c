/* Tests of sim/report: JSON fields and the text form. */
#include "../../sim/world/report.h"
#include "../../sim/world/report_html.h"
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
    struct report_info info = { "fua.trace", "native", "blocksim replay fua.trace", true, 0.5,
                                NULL };
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

/* The HTML page of a failing run: the violation, its writers linked to
 * their trace lines, the events logged per host, text escaped. */
START_TEST(test_report_html)
{
    static const char text[] =
        "blocksim-trace v1\n# a <comment> & more\ntopology plain size=1M\ndisk d0 cache=1M\n"
        "mutant disk-flush-noop\nqd 4\nwrite 0 4096\nflush\ncrash plan=-\nrestart\n"
        "read 0 4096\n";
    struct trace t;
    struct err e = { .file = "html" };
    ck_assert_int_eq(trace_parse(&t, text, strlen(text), &e), 0);
    struct html_log log;
    html_log_init(&log);
    struct world_opts o = { .on_event = html_log_event, .event_opaque = &log };
    struct world_result r;
    ck_assert_int_eq(world_run(&t, &o, &r, &e), 0);
    ck_assert_int_eq(r.verdict, WORLD_FAIL);
    size_t ops = 0;
    size_t controls = 0;
    for (size_t i = 0; i < log.n; i++) {
        ops += log.ev[i].ev.kind == WORLD_EV_OP;
        controls += log.ev[i].ev.kind == WORLD_EV_CONTROL;
    }
    ck_assert_uint_eq(ops, 3);      /* write, flush, read */
    ck_assert_uint_eq(controls, 2); /* crash, restart */
    char *page = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&page, &len);
    ck_assert_int_eq(report_html_write(f, "a <title>", &t, &r, &log), 0);
    fclose(f);
    ck_assert_ptr_nonnull(strstr(page, "blocksim: a &lt;title&gt;"));
    ck_assert_ptr_nonnull(strstr(page, "# a &lt;comment&gt; &amp; more"));
    ck_assert_ptr_nonnull(strstr(page, "id=\"violation\""));
    ck_assert_ptr_nonnull(strstr(page, "<a href=\"#L7\">write #0 (trace line 7)</a>"));
    ck_assert_ptr_nonnull(strstr(page, "id=\"L11\" class=\"bad\""));
    ck_assert_ptr_nonnull(strstr(page, "class=\"wrong\""));
    free(page);
    world_result_fini(&r);
    html_log_fini(&log);
    trace_fini(&t);
}
END_TEST

Suite *suite_report(void)
{
    const TTest *tests[] = {
        test_report_html,
        test_report_forms,
    };
    return tl_suite("report", tests, ARRAY_LEN(tests));
}
