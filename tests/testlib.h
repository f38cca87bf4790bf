/*
 * testlib: helpers shared by the Check suites.
 *
 * Role: tiny worlds (a queue, a fault plan, disks), synchronous wrappers that
 *   submit one request and run the queue until it completes, an exact byte
 *   comparator that names the first differing offset, and the leak fixture.
 * Ownership: each helper frees what it allocates; tl_leak_teardown asserts
 *   that a test freed every block it allocated.
 */
#ifndef BLOCKSIM_TESTLIB_H
#define BLOCKSIM_TESTLIB_H

#include <check.h>
#include <stdint.h>

#include "../ref/node.h"
#include "../sim/dev/disk.h"
#include "../sim/base/evq.h"
#include "../sim/dev/fault.h"
#include "../sim/world/world.h"

struct tl_env {
    struct evq q;
    struct fault_plan plan;
};

void tl_env_init(struct tl_env *env);
void tl_env_fini(struct tl_env *env);

/* Completion counter: tl_count_cb records each call and its result. */
struct tl_count {
    int calls;
    int ret;
};

void tl_count_cb(void *opaque, int ret);

/* Run events until the queue is empty (bounded). Returns events run. */
uint64_t tl_run(struct evq *q);

/* Let @ns of virtual time pass (running what falls due), then run the queue
 * until it is empty. */
void tl_run_for(struct evq *q, uint64_t ns);

/* Submit one request to @n and run the queue until it completes. */
int tl_node_io(struct evq *q, struct node *n, enum node_op op, uint64_t offset, uint64_t len,
               uint8_t *buf, unsigned flags);

/* Storage ops straight on a disk handle, synchronously. */
int tl_disk_write(struct evq *q, struct disk_handle *h, uint64_t offset, const uint8_t *buf,
                  uint64_t len, unsigned flags);
int tl_disk_read(struct evq *q, struct disk_handle *h, uint64_t offset, uint8_t *buf,
                 uint64_t len);
int tl_disk_flush(struct evq *q, struct disk_handle *h);

/* @len bytes of a pattern derived from @seed. */
void tl_pattern(uint8_t *buf, uint64_t len, uint64_t seed);

/* Exact comparison: fails the test naming the first differing offset and a
 * hex window around it. */
#define tl_assert_mem_eq(a, b, len) tl_mem_eq(__FILE__, __LINE__, (a), (b), (len))
void tl_mem_eq(const char *file, int line, const uint8_t *a, const uint8_t *b, uint64_t len);

/* A malformed input and where its error must point. */
struct tl_bad_case {
    const char *text;
    unsigned line;
    unsigned field;
    const char *msg;
};

/* Parse @text and run it in a world (options @o, or none; checks wanted):
 * the trace must parse and the world must accept it. */
void tl_world_run_text(const char *text, const struct world_opts *o, struct world_result *r);

/* The same, and the run must pass (the first violation says why not). */
void tl_world_pass(const char *text, const struct world_opts *o, struct world_result *r);

/* With planted bugs @bits, @text fails with @property. */
void tl_expect_caught(const char *text, uint64_t bits, const char *property);

/* Checked fixture: records live blocks before the test, asserts none leaked. */
void tl_leak_setup(void);
void tl_leak_teardown(void);

/* A TCase with the leak fixture and a timeout. */
TCase *tl_tcase(const char *name);

/* A suite @name with one leak-checked TCase holding @tests. */
Suite *tl_suite(const char *name, const TTest *const *tests, size_t n);

#endif
