/* Tests of sim/evq: (time, sequence) order and deadlines. */
#include "../../sim/base/evq.h"
#include "../suites.h"
#include "../testlib.h"

struct evq_log {
    struct evq *q;
    int order[16];
    uint64_t times[16];
    int n;
};

struct evq_item {
    struct evq_log *log;
    int id;
};

static void evq_record(void *opaque)
{
    struct evq_item *it = opaque;
    it->log->times[it->log->n] = it->log->q->now_ns;
    it->log->order[it->log->n++] = it->id;
}

START_TEST(test_evq_order)
{
    struct evq q;
    evq_init(&q);
    struct evq_log log = { .q = &q };
    struct evq_item items[6];
    uint64_t delays[6] = { 50, 10, 50, 0, 10, 50 };
    for (int i = 0; i < 6; i++) {
        items[i].log = &log;
        items[i].id = i;
        evq_post(&q, delays[i], evq_record, &items[i]);
    }
    evq_check(&q);
    ck_assert(evq_step(&q, 5)); /* only the delay-0 event is due by t=5 */
    ck_assert(!evq_step(&q, 5));
    ck_assert_int_eq(log.n, 1);
    while (evq_step(&q, UINT64_MAX)) {
    }
    int want[6] = { 3, 1, 4, 0, 2, 5 }; /* by time, ties in posting order */
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(log.order[i], want[i]);
    }
    ck_assert_uint_eq(log.times[5], 50);
    ck_assert_uint_eq(q.now_ns, 50);
    ck_assert_uint_eq(q.executed, 6);
    evq_fini(&q);
}
END_TEST

Suite *suite_evq(void)
{
    const TTest *tests[] = {
        test_evq_order,
    };
    return tl_suite("evq", tests, ARRAY_LEN(tests));
}
