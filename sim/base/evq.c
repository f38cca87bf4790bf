/*
 * evq: see evq.h. Method: a binary min-heap on (time, seq); seq is a global
 * post counter, so ties break by posting order and the run is independent of
 * heap layout.
 */
#include "evq.h"

#include <string.h>

#include "../../ref/base.h"

void evq_init(struct evq *q)
{
    memset(q, 0, sizeof(*q));
}

void evq_fini(struct evq *q)
{
    mem_free(q->heap, q->cap * sizeof(*q->heap));
    memset(q, 0, sizeof(*q));
}

static bool ev_less(const struct evq_event *a, const struct evq_event *b)
{
    if (a->time_ns != b->time_ns) {
        return a->time_ns < b->time_ns;
    }
    return a->seq < b->seq;
}

void evq_post(struct evq *q, uint64_t delay_ns, env_cb *cb, void *opaque)
{
    ASSERT(cb != NULL);
    ASSERT(delay_ns <= UINT64_MAX - q->now_ns);
    if (q->n == q->cap) {
        size_t cap = q->cap ? 2 * q->cap : 64;
        q->heap = mem_realloc(q->heap, q->cap * sizeof(*q->heap), cap * sizeof(*q->heap));
        q->cap = cap;
    }
    struct evq_event ev = { q->now_ns + delay_ns, q->next_seq++, cb, opaque };
    size_t i = q->n++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!ev_less(&ev, &q->heap[parent])) {
            break;
        }
        q->heap[i] = q->heap[parent];
        i = parent;
    }
    q->heap[i] = ev;
}

static void heap_pop(struct evq *q)
{
    struct evq_event last = q->heap[--q->n];
    size_t i = 0;
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= q->n) {
            break;
        }
        if (child + 1 < q->n && ev_less(&q->heap[child + 1], &q->heap[child])) {
            child++;
        }
        if (!ev_less(&q->heap[child], &last)) {
            break;
        }
        q->heap[i] = q->heap[child];
        i = child;
    }
    if (q->n > 0) {
        q->heap[i] = last;
    }
}

bool evq_step(struct evq *q, uint64_t deadline_ns)
{
    if (q->n == 0 || q->heap[0].time_ns > deadline_ns) {
        return false;
    }
    struct evq_event ev = q->heap[0];
    heap_pop(q);
    ASSERT(ev.time_ns >= q->now_ns);
    q->now_ns = ev.time_ns;
    q->executed++;
    ev.cb(ev.opaque);
    return true;
}

static uint64_t timer_now(void *ctx)
{
    return ((struct evq *)ctx)->now_ns;
}

static void timer_post(void *ctx, uint64_t delay_ns, env_cb *cb, void *opaque)
{
    evq_post(ctx, delay_ns, cb, opaque);
}

static const struct env_timer_ops evq_timer_ops = {
    .now_ns = timer_now,
    .post = timer_post,
};

struct env_timer evq_timer(struct evq *q)
{
    struct env_timer t = { &evq_timer_ops, q };
    return t;
}

void evq_check(const struct evq *q)
{
    ASSERT(q->n <= q->cap);
    for (size_t i = 1; i < q->n; i++) {
        ASSERT(!ev_less(&q->heap[i], &q->heap[(i - 1) / 2]));
    }
    if (q->n > 0) {
        ASSERT(q->heap[0].time_ns >= q->now_ns);
    }
}
