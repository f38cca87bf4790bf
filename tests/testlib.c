/*
 * testlib: see testlib.h.
 */
#include "testlib.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "../sim/base/rng.h"

#define TL_EVENTS_MAX 100000000ull

void tl_env_init(struct tl_env *env)
{
    evq_init(&env->q);
    fault_plan_init(&env->plan);
}

void tl_env_fini(struct tl_env *env)
{
    ck_assert(evq_empty(&env->q));
    evq_fini(&env->q);
    fault_plan_fini(&env->plan);
}

uint64_t tl_run(struct evq *q)
{
    uint64_t n = 0;
    while (n < TL_EVENTS_MAX && evq_step(q, UINT64_MAX)) {
        n++;
    }
    ck_assert_uint_lt(n, TL_EVENTS_MAX);
    return n;
}

void tl_count_cb(void *opaque, int ret)
{
    struct tl_count *c = opaque;
    c->ret = ret;
    c->calls++;
}

static int tl_wait(struct evq *q, struct tl_count *d)
{
    ck_assert_int_eq(d->calls, 0); /* never completed inline */
    tl_run(q);
    ck_assert_int_eq(d->calls, 1);
    return d->ret;
}

static void tl_nothing(void *opaque)
{
    (void)opaque;
}

void tl_run_for(struct evq *q, uint64_t ns)
{
    evq_post(q, ns, tl_nothing, NULL);
    tl_run(q);
}

int tl_node_io(struct evq *q, struct node *n, enum node_op op, uint64_t offset, uint64_t len,
               uint8_t *buf, unsigned flags)
{
    struct tl_count d = { 0, 0 };
    node_submit(n, op, offset, len, buf, flags, tl_count_cb, &d);
    return tl_wait(q, &d);
}

int tl_disk_write(struct evq *q, struct disk_handle *h, uint64_t offset, const uint8_t *buf,
                  uint64_t len, unsigned flags)
{
    struct tl_count d = { 0, 0 };
    struct env_storage st = disk_storage(h);
    st.ops->write(st.dev, offset, buf, len, flags, tl_count_cb, &d);
    return tl_wait(q, &d);
}

int tl_disk_read(struct evq *q, struct disk_handle *h, uint64_t offset, uint8_t *buf,
                 uint64_t len)
{
    struct tl_count d = { 0, 0 };
    struct env_storage st = disk_storage(h);
    st.ops->read(st.dev, offset, buf, len, tl_count_cb, &d);
    return tl_wait(q, &d);
}

int tl_disk_flush(struct evq *q, struct disk_handle *h)
{
    struct tl_count d = { 0, 0 };
    struct env_storage st = disk_storage(h);
    st.ops->flush(st.dev, tl_count_cb, &d);
    return tl_wait(q, &d);
}

void tl_pattern(uint8_t *buf, uint64_t len, uint64_t seed)
{
    for (uint64_t i = 0; i < len; i++) {
        buf[i] = (uint8_t)rng_mix64(seed * 1000003 + i / 8) ^ (uint8_t)i;
    }
}

void tl_mem_eq(const char *file, int line, const uint8_t *a, const uint8_t *b, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++) {
        if (a[i] == b[i]) {
            continue;
        }
        char hex[200] = "";
        uint64_t from = i >= 8 ? i - 8 : 0;
        for (uint64_t k = from; k < len && k < i + 8; k++) {
            size_t at = strlen(hex);
            snprintf(hex + at, sizeof(hex) - at, "%s%02x/%02x", k == i ? "[" : " ", a[k], b[k]);
        }
        ck_abort_msg("%s:%d: buffers differ at offset %" PRIu64 " of %" PRIu64 ": %s", file,
                     line, i, len, hex);
    }
}

/* Check forks each test, so this per-process value is per test. */
static int64_t tl_blocks_at_start; /* tidy:global test-only */

void tl_leak_setup(void)
{
    tl_blocks_at_start = mem_blocks_live();
}

void tl_leak_teardown(void)
{
    ck_assert_msg(mem_blocks_live() == tl_blocks_at_start, "leaked %lld block(s)",
                  (long long)(mem_blocks_live() - tl_blocks_at_start));
}

TCase *tl_tcase(const char *name)
{
    TCase *tc = tcase_create(name);
    tcase_add_checked_fixture(tc, tl_leak_setup, tl_leak_teardown);
    tcase_set_timeout(tc, 120);
    return tc;
}

Suite *tl_suite(const char *name, const TTest *const *tests, size_t n)
{
    Suite *s = suite_create(name);
    TCase *tc = tl_tcase(name);
    for (size_t i = 0; i < n; i++) {
        tcase_add_test(tc, tests[i]);
    }
    suite_add_tcase(s, tc);
    return s;
}

void tl_world_run_text(const char *text, const struct world_opts *o0, struct world_result *r)
{
    struct trace t;
    struct err e = { .file = "text" };
    ck_assert_msg(trace_parse(&t, text, strlen(text), &e) == 0, "line %u: %s", e.line, e.msg);
    struct world_opts o = o0 ? *o0 : (struct world_opts){ 0 };
    o.want_checks = true;
    int ret = world_run(&t, &o, r, &e);
    ck_assert_msg(ret == 0, "line %u: %s", e.line, e.msg);
    trace_fini(&t);
}

void tl_world_pass(const char *text, const struct world_opts *o, struct world_result *r)
{
    tl_world_run_text(text, o, r);
    ck_assert_msg(r->verdict == WORLD_PASS, "%s: %s", r->first.property, r->first.msg);
}

void tl_expect_caught(const char *text, uint64_t bits, const char *property)
{
    struct world_opts o = { .node_mutants = bits };
    struct world_result r;
    tl_world_run_text(text, &o, &r);
    ck_assert_msg(r.verdict == WORLD_FAIL, "planted bug %#llx not caught",
                  (unsigned long long)bits);
    ck_assert_msg(strcmp(r.first.property, property) == 0, "planted bug %#llx: %s, not %s: %s",
                  (unsigned long long)bits, r.first.property, property, r.first.msg);
    world_result_fini(&r);
}
