/*
 * evq: the virtual clock and the event queue of one world.
 *
 * Role: orders everything that happens in a run by (time, sequence number)
 *   and implements the timer ops of ref/env.h.
 * Model: a discrete-event simulator's future-event list (TigerBeetle's VOPR
 *   and FoundationDB's simulator drive their worlds the same way).
 * Invariants: the clock never goes backwards; events at the same time run in
 *   the order they were posted; the heap property holds on (time, seq).
 * Ownership: the queue owns its heap array; opaque pointers are borrowed.
 * Async contract: evq_post never runs the callback; evq_step runs one.
 * Depends on: base, env.
 */
#ifndef BLOCKSIM_EVQ_H
#define BLOCKSIM_EVQ_H

#include <stdbool.h>
#include <stdint.h>

#include "../../ref/env.h"

struct evq_event {
    uint64_t time_ns;
    uint64_t seq;
    env_cb *cb;
    void *opaque;
};

struct evq {
    uint64_t now_ns;
    uint64_t next_seq;
    uint64_t executed; /* events run so far */
    struct evq_event *heap;
    size_t n;
    size_t cap;
};

void evq_init(struct evq *q);
void evq_fini(struct evq *q);

/* Run @cb(@opaque) @delay_ns from now. */
void evq_post(struct evq *q, uint64_t delay_ns, env_cb *cb, void *opaque);

/* Run the earliest event, advancing the clock. False when the queue is empty
 * or the earliest event lies beyond @deadline_ns (the clock then stays). */
bool evq_step(struct evq *q, uint64_t deadline_ns);

/* The timer ops over this queue, for ref/. */
struct env_timer evq_timer(struct evq *q);

static inline bool evq_empty(const struct evq *q)
{
    return q->n == 0;
}

void evq_check(const struct evq *q);

#endif
