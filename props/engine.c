/*
 * engine: see engine.h.
 *
 * Method: trial i records a choice sequence from the stream
 * ("trial", seed, i), skips it if its bytes were seen before, and runs the
 * property on the decoded scenario, in process or, in fork mode, in one of
 * a pool of long-lived forked workers (props/pool) that run trials side by
 * side under a timeout, their results counted in trial order (in process,
 * the bytes are written to a trail file in OUT first, so even a crash of the
 * engine leaves a reproducer; it is removed when the run ends). The first
 * failure is shrunk (in fork mode by one worker): passes
 * delete the operation spans the decoder recorded, delete byte chunks of
 * 8, 4, 2 and 1, zero bytes and lower bytes by halving, until a round finds
 * nothing or the budget ends; then lowers repeated byte values together and
 * sorts adjacent operation spans. A pass that found nothing twice in a row
 * sits out a round. The result is written as OUT/<property>-<seed>.trace.
 * A stop request (SIGINT) discards the trial it interrupted: a worker killed
 * by the user's ^C is no failure.
 */
#include "engine.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "../ref/base.h"
#include "../sim/base/u64map.h"
#include "pool.h"
#include "registry.h"

#define ENGINE_MAX_BYTES 65536

void engine_opts_default(struct engine_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->seed = 1;
    o->trials = 1000;
    o->timeout_s = 30;
    o->shrink_steps = 5000;
    o->shrink_seconds = 60;
}

static double wall_now(void)
{
    /* Budgets only: wall time decides how many trials run, never what a
     * trial does. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static bool trial_in_process(const struct prop *p, const struct engine_opts *o,
                             const uint8_t *bytes, size_t len, char *msg, size_t size)
{
    struct choices c;
    choices_init_bytes(&c, bytes, len);
    struct trace t;
    gen_scenario(&c, &p->gen, &t);
    int fail = p->check(p, &t, o->node_mutants, o->disk_mutants, msg, size);
    trace_fini(&t);
    choices_fini(&c);
    return fail != 0;
}

static bool stopped(const struct engine_opts *o)
{
    return o->stop && *o->stop;
}

/* A worker of the pool runs trials as this process would. */
struct pool_ctx {
    const struct prop *p;
    const struct engine_opts *o;
};

static bool pool_trial(const void *ctx, const uint8_t *bytes, size_t len, char *msg,
                       size_t size)
{
    const struct pool_ctx *x = ctx;
    return trial_in_process(x->p, x->o, bytes, len, msg, size);
}

/* One trial, by @pool's worker (fork mode) or in this process. */
static bool trial_fails(const struct prop *p, const struct engine_opts *o, struct pool *pool,
                        const uint8_t *bytes, size_t len, char *msg, size_t size)
{
    msg[0] = '\0';
    bool fail;
    if (pool) {
        uint64_t tag;
        pool_submit(pool, 0, bytes, len);
        pool_wait(pool, &tag, &fail, msg, size);
    } else {
        fail = trial_in_process(p, o, bytes, len, msg, size);
    }
    /* A trial the user interrupted (its worker got the ^C too) proves nothing. */
    return fail && !stopped(o);
}

bool engine_trial_fails(const struct prop *p, const struct engine_opts *o,
                        const uint8_t *bytes, size_t len, char *msg, size_t size)
{
    struct pool_ctx ctx = { p, o };
    struct pool *pool = o->fork ? pool_new(pool_trial, &ctx, 1, o->timeout_s) : NULL;
    bool fail = trial_fails(p, o, pool, bytes, len, msg, size);
    if (pool) {
        pool_free(pool);
    }
    return fail;
}

/* ---- shrinking ---- */


struct shrinker {
    const struct prop *p;
    const struct engine_opts *o;
    struct engine_result *r;
    uint8_t *best;
    size_t len;
    double deadline;
    struct pool *pool; /* fork mode: one worker runs the candidates */
};

static bool shortlex_less(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
    if (alen != blen) {
        return alen < blen;
    }
    return memcmp(a, b, alen) < 0;
}

static bool budget_left(struct shrinker *s)
{
    if (s->r->shrink_steps >= s->o->shrink_steps || wall_now() > s->deadline ||
        stopped(s->o)) {
        s->r->shrink_stopped_early = true;
        return false;
    }
    return true;
}

/* Try @cand; keep it if it still fails and is smaller. */
static bool shrink_try(struct shrinker *s, const uint8_t *cand, size_t len)
{
    if (!shortlex_less(cand, len, s->best, s->len) || !budget_left(s)) {
        return false;
    }
    s->r->shrink_steps++;
    char msg[320];
    if (!trial_fails(s->p, s->o, s->pool, cand, len, msg, sizeof(msg))) {
        return false;
    }
    memcpy(s->best, cand, len);
    s->len = len;
    snprintf(s->r->message, sizeof(s->r->message), "%s", msg);
    return true;
}

static bool try_delete(struct shrinker *s, size_t start, size_t end, uint8_t *scratch)
{
    if (end > s->len || start >= end) {
        return false;
    }
    memcpy(scratch, s->best, start);
    memcpy(scratch + start, s->best + end, s->len - end);
    return shrink_try(s, scratch, s->len - (end - start));
}

/* Decode the current best bytes to learn their operation spans. */
static void best_spans(const struct shrinker *s, struct choices *c)
{
    choices_init_bytes(c, s->best, s->len);
    struct trace t;
    gen_scenario(c, &s->p->gen, &t);
    trace_fini(&t);
}

static bool pass_spans(struct shrinker *s, uint8_t *scratch)
{
    struct choices c;
    best_spans(s, &c);
    bool any = false;
    for (size_t i = c.n_spans; i > 0 && budget_left(s); i--) {
        any |= try_delete(s, c.spans[i - 1].start, c.spans[i - 1].end, scratch);
    }
    choices_fini(&c);
    return any;
}

static bool pass_chunks(struct shrinker *s, uint8_t *scratch)
{
    bool any = false;
    for (size_t k = 8; k > 0; k /= 2) {
        for (size_t at = s->len; at >= k && budget_left(s); at--) {
            any |= try_delete(s, at - k, at, scratch);
        }
    }
    return any;
}

static bool pass_lower(struct shrinker *s, uint8_t *scratch)
{
    bool any = false;
    for (size_t i = 0; i < s->len && budget_left(s); i++) {
        /* Zero first, then halve toward zero while it still fails. */
        for (unsigned tries = 0; s->best[i] != 0 && tries < 8; tries++) {
            memcpy(scratch, s->best, s->len);
            scratch[i] = tries == 0 ? 0 : (uint8_t)(s->best[i] / 2);
            if (!shrink_try(s, scratch, s->len)) {
                if (tries > 0) {
                    break;
                }
                continue;
            }
            any = true;
        }
    }
    return any;
}

/* Swap adjacent operation spans when that makes the bytes smaller: puts
 * operations in a canonical order (Hypothesis's sort pass). */
static bool pass_sort(struct shrinker *s, uint8_t *scratch)
{
    struct choices c;
    best_spans(s, &c);
    bool any = false;
    for (size_t i = 1; i < c.n_spans && budget_left(s); i++) {
        struct gen_span a = c.spans[i - 1];
        struct gen_span b = c.spans[i];
        if (a.end != b.start || b.end > s->len) {
            continue;
        }
        size_t alen = a.end - a.start;
        size_t blen = b.end - b.start;
        memcpy(scratch, s->best, s->len);
        memcpy(scratch + a.start, s->best + b.start, blen);
        memcpy(scratch + a.start + blen, s->best + a.start, alen);
        any |= shrink_try(s, scratch, s->len);
    }
    choices_fini(&c);
    return any;
}

/* Lower every copy of a repeated byte value at once: values that must stay
 * equal (an offset written then read) shrink together. */
static bool pass_lower_dups(struct shrinker *s, uint8_t *scratch)
{
    unsigned count[256] = { 0 };
    for (size_t i = 0; i < s->len; i++) {
        count[s->best[i]]++;
    }
    bool any = false;
    for (unsigned v = 1; v < 256 && budget_left(s); v++) {
        if (count[v] < 2) {
            continue;
        }
        const unsigned targets[2] = { 0, v / 2 };
        for (unsigned k = 0; k < 2; k++) {
            if (k == 1 && targets[1] == 0) {
                break;
            }
            memcpy(scratch, s->best, s->len);
            for (size_t i = 0; i < s->len; i++) {
                scratch[i] = s->best[i] == v ? (uint8_t)targets[k] : scratch[i];
            }
            if (shrink_try(s, scratch, s->len)) {
                any = true;
                break;
            }
        }
    }
    return any;
}

typedef bool shrink_pass(struct shrinker *s, uint8_t *scratch);

void engine_shrink(const struct prop *p, const struct engine_opts *o, uint8_t *bytes,
                   size_t *len, struct engine_result *r)
{
    static shrink_pass *const passes[] = { pass_spans, pass_chunks, pass_lower,
                                           pass_lower_dups, pass_sort };
    ASSERT(*len <= ENGINE_MAX_BYTES);
    unsigned idle[ARRAY_LEN(passes)] = { 0 };
    size_t len_before = *len;
    struct pool_ctx ctx = { p, o };
    struct shrinker s = { p, o, r, bytes, *len, wall_now() + o->shrink_seconds,
                          o->fork ? pool_new(pool_trial, &ctx, 1, o->timeout_s) : NULL };
    uint8_t *scratch = mem_alloc(ENGINE_MAX_BYTES);
    for (unsigned round = 0; round < 1000 && budget_left(&s); round++) {
        bool progress = false;
        for (unsigned i = 0; i < ARRAY_LEN(passes); i++) {
            if (idle[i] >= 2) {
                idle[i] = 0; /* sat out this round */
                continue;
            }
            bool found = passes[i](&s, scratch);
            idle[i] = found ? 0 : idle[i] + 1;
            progress |= found;
        }
        if (!progress) {
            break; /* a fixed point */
        }
    }
    mem_free(scratch, ENGINE_MAX_BYTES);
    if (s.pool) {
        pool_free(s.pool);
    }
    ASSERT(s.len <= len_before); /* a shrink never grows the scenario */
    *len = s.len;
}

/* ---- trials and repro files ---- */

static size_t bytes_ops(const struct prop *p, const uint8_t *bytes, size_t len)
{
    struct choices c;
    choices_init_bytes(&c, bytes, len);
    struct trace t;
    gen_scenario(&c, &p->gen, &t);
    size_t n = gen_trace_ops(&t);
    trace_fini(&t);
    choices_fini(&c);
    return n;
}

int engine_repro_print(const struct prop *p, const struct engine_opts *o,
                       const struct engine_result *r, FILE *f)
{
    ASSERT(r->failed);
    ASSERT(r->bytes != NULL);
    struct choices c;
    choices_init_bytes(&c, r->bytes, r->len);
    struct trace t;
    gen_scenario(&c, &p->gen, &t);
    char comment[512];
    snprintf(comment, sizeof(comment), "property %s failed: seed %" PRIu64 ", trial %" PRIu64
             ", shrunk from %zu to %zu operations\n%s", p->name, o->seed, r->fail_trial,
             r->ops_before, r->ops_after, r->message);
    trace_print_repro(&t, comment, o->node_mutants, o->disk_mutants, f);
    trace_fini(&t);
    choices_fini(&c);
    return ferror(f) ? -EIO : 0;
}

/* Make @dir unless it exists; true if this call made it. */
static bool dir_make(const char *dir)
{
    return mkdir(dir, 0777) == 0;
}

/* OUT/<property>-<seed>[-shard-I].trace */
static void write_repro(const struct prop *p, const struct engine_opts *o,
                        struct engine_result *r)
{
    char path[sizeof(r->repro_path)];
    int n = snprintf(path, sizeof(path), "%s/%s-%" PRIu64, o->out_dir, p->name, o->seed);
    if (o->shard_count > 1 && n > 0 && (size_t)n < sizeof(path)) {
        snprintf(path + n, sizeof(path) - (size_t)n, "-shard-%u", o->shard_index);
    }
    size_t at = strlen(path);
    snprintf(path + at, sizeof(path) - at, ".trace");
    (void)dir_make(o->out_dir);
    FILE *f = fopen(path, "w");
    int ret = f ? engine_repro_print(p, o, r, f) : -errno;
    if (f && fclose(f) != 0 && ret == 0) {
        ret = -EIO;
    }
    if (ret < 0) {
        snprintf(r->repro_error, sizeof(r->repro_error), "%.200s: cannot write: %s", path,
                 strerror(-ret));
        return;
    }
    snprintf(r->repro_path, sizeof(r->repro_path), "%s", path);
}

void engine_result_fini(struct engine_result *r)
{
    mem_free(r->bytes, r->bytes ? ENGINE_MAX_BYTES : 0);
    r->bytes = NULL;
}

/* In-process trials leave their bytes in a trail file first: if a trial
 * takes the engine down, the trail reproduces it. */
struct trail {
    char path[512];
    bool made_dir;
};

static void trail_open(struct trail *tr, const struct prop *p, const struct engine_opts *o)
{
    tr->path[0] = '\0';
    tr->made_dir = false;
    if (!o->out_dir || o->fork) {
        return; /* a forked child cannot take the engine down */
    }
    tr->made_dir = dir_make(o->out_dir);
    snprintf(tr->path, sizeof(tr->path), "%s/trial-in-progress-%s-%" PRIu64 "-%u.bin",
             o->out_dir, p->name, o->seed, o->shard_index);
}

static void trail_write(const struct trail *tr, const uint8_t *data, size_t len)
{
    if (!tr->path[0]) {
        return;
    }
    FILE *f = fopen(tr->path, "w");
    if (f) { /* best effort: a crash trail */
        (void)fwrite(data, 1, len, f);
        fclose(f);
    }
}

static void trail_close(const struct trail *tr, const struct engine_opts *o)
{
    if (tr->path[0]) {
        unlink(tr->path);
    }
    if (tr->made_dir) {
        rmdir(o->out_dir); /* only if empty: a repro trace stays */
    }
}

static bool trial_seen(struct u64map *seen, const uint8_t *bytes, size_t len)
{
    bool created;
    u64map_put(seen, XXH3_64bits(bytes, len) & (U64MAP_EMPTY - 1), &created);
    return !created;
}

/* Trials, rate, failures, and time left (by the time budget, else by the
 * trials left at the rate so far). */
static void progress_line(const struct prop *p, const struct engine_opts *o,
                          const struct engine_result *r, double start)
{
    double secs = wall_now() - start;
    double rate = secs > 0 ? (double)r->trials / secs : 0;
    uint64_t mine = o->shard_count > 1 ? o->trials / o->shard_count : o->trials;
    double left = o->seconds > 0 ? o->seconds - secs
                  : rate > 0 && mine > r->trials ? (double)(mine - r->trials) / rate : 0;
    fprintf(stderr, "\r%s: %" PRIu64 " trials, %" PRIu64 " passed, %" PRIu64 " duplicate, "
            "%.0f trials/s, %d failure(s), %.0f s left   ", p->name, r->trials, r->passed,
            r->dups, rate, r->failed ? 1 : 0, left > 0 ? left : 0);
}

/* Record trial @i's bytes into @c; false when it repeats an earlier one. */
static bool trial_draw(const struct prop *p, const struct engine_opts *o, uint64_t i,
                       struct choices *c, struct rng *stream, struct u64map *seen,
                       size_t *ops)
{
    rng_stream(stream, o->seed, "trial", i, 0);
    choices_init_record(c, stream);
    struct trace t;
    gen_scenario(c, &p->gen, &t);
    *ops = gen_trace_ops(&t);
    trace_fini(&t);
    c->len = c->pos < c->len ? c->pos : c->len; /* keep only what was read */
    return !trial_seen(seen, c->buf, c->len);
}

static void engine_fail(const struct prop *p, const struct engine_opts *o,
                        struct choices *c, struct engine_result *r)
{
    r->failed = true;
    size_t len = c->len < ENGINE_MAX_BYTES ? c->len : ENGINE_MAX_BYTES;
    r->ops_before = bytes_ops(p, c->buf, len);
    engine_shrink(p, o, c->buf, &len, r);
    r->ops_after = bytes_ops(p, c->buf, len);
    r->bytes = mem_alloc(ENGINE_MAX_BYTES);
    memcpy(r->bytes, c->buf, len);
    r->len = len;
    if (o->out_dir) {
        write_repro(p, o, r);
    }
}

/* ---- fork mode: a pool of workers ---- */
/* A trial sent to the pool, waiting to be counted in trial order. */
struct pending {
    uint64_t i;
    struct choices c;
    size_t ops; /* operations in its scenario */
    bool done;
    bool fail;
    char msg[POOL_MSG];
};

#define PENDING_PER_WORKER 8

struct pooled {
    const struct prop *p;
    const struct engine_opts *o;
    struct engine_result *r;
    struct pool *pl;
    struct pending *q; /* a ring of cap, from head, count long */
    unsigned cap, head, count;
    double start;
};

/* Count the finished trials at the head of the ring, in trial order; true
 * when the run ends there (a failure, or a stop). */
static bool pooled_commit(struct pooled *x)
{
    while (x->count > 0 && x->q[x->head].done) {
        struct pending *pd = &x->q[x->head];
        if (stopped(x->o)) { /* the trials cut short prove nothing */
            x->r->interrupted = true;
            return true;
        }
        x->r->trials++;
        x->r->ops += pd->ops;
        if (pd->fail) {
            x->r->fail_trial = pd->i;
            snprintf(x->r->message, sizeof(x->r->message), "%s", pd->msg);
            return true;
        }
        x->r->passed++;
        choices_fini(&pd->c);
        x->head = (x->head + 1) % x->cap;
        x->count--;
        if (x->o->progress && x->r->trials % 64 == 0) {
            progress_line(x->p, x->o, x->r, x->start);
        }
    }
    return false;
}

/* Trials run by long-lived workers, several at once, and are counted in
 * trial order: the counts, the failing trial, its message and its shrunk
 * scenario are those of running them one by one. */
static void run_pooled(const struct prop *p, const struct engine_opts *o,
                       struct engine_result *r, struct u64map *seen, double start)
{
    unsigned workers = o->workers ? (o->workers < POOL_MAX ? o->workers : POOL_MAX)
                                  : pool_cores();
    struct pool_ctx ctx = { p, o };
    struct pooled x = { p, o, r, pool_new(pool_trial, &ctx, workers, o->timeout_s), NULL,
                        workers * PENDING_PER_WORKER, 0, 0, start };
    x.q = mem_alloc(x.cap * sizeof(*x.q));
    unsigned shards = o->shard_count > 1 ? o->shard_count : 1;
    uint64_t i = o->shard_index;
    bool more = true;
    bool ended = false;
    while (!ended) {
        while (more && pool_idle(x.pl) > 0 && x.count < x.cap) {
            if ((o->trials != 0 && i >= o->trials) ||
                (o->seconds > 0 && wall_now() - start > o->seconds) || stopped(o)) {
                more = false; /* a stop is recorded when the run ends */
                break;
            }
            struct pending *pd = &x.q[(x.head + x.count) % x.cap];
            struct rng stream;
            uint64_t at = i;
            i += shards;
            if (!trial_draw(p, o, at, &pd->c, &stream, seen, &pd->ops)) {
                r->dups++;
                choices_fini(&pd->c);
                continue;
            }
            pd->c.extend = NULL;
            pd->i = at;
            pd->done = false;
            pool_submit(x.pl, at, pd->c.buf, pd->c.len);
            x.count++;
        }
        if (x.count == 0) {
            break;
        }
        uint64_t tag;
        bool fail;
        char msg[POOL_MSG];
        pool_wait(x.pl, &tag, &fail, msg, sizeof(msg));
        for (unsigned k = 0; k < x.count; k++) {
            struct pending *pd = &x.q[(x.head + k) % x.cap];
            if (pd->i == tag && !pd->done) {
                pd->done = true;
                pd->fail = fail;
                snprintf(pd->msg, sizeof(pd->msg), "%s", msg);
            }
        }
        ended = pooled_commit(&x);
    }
    pool_free(x.pl); /* the trials still running come after the one that ended it */
    bool failed = ended && !r->interrupted;
    for (unsigned k = failed ? 1 : 0; k < x.count; k++) {
        choices_fini(&x.q[(x.head + k) % x.cap].c);
    }
    if (failed) {
        engine_fail(p, o, &x.q[x.head].c, r);
        choices_fini(&x.q[x.head].c);
    }
    mem_free(x.q, x.cap * sizeof(*x.q));
}

/* CPU seconds this process and its reaped children have used. */
static double cpu_now(void)
{
    double t = 0;
    static const int who[] = { RUSAGE_SELF, RUSAGE_CHILDREN };
    for (unsigned i = 0; i < ARRAY_LEN(who); i++) {
        struct rusage ru;
        if (getrusage(who[i], &ru) == 0) {
            t += (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
                 (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
        }
    }
    return t;
}

void engine_run(const struct prop *p, const struct engine_opts *o, struct engine_result *r)
{
    memset(r, 0, sizeof(*r));
    double start = wall_now();
    double cpu_start = cpu_now();
    struct u64map seen;
    u64map_init(&seen);
    unsigned shards = o->shard_count > 1 ? o->shard_count : 1;
    ASSERT(o->shard_index < shards);
    struct trail tr;
    trail_open(&tr, p, o);
    if (o->fork) {
        run_pooled(p, o, r, &seen, start);
    }
    for (uint64_t i = o->shard_index; !o->fork && (o->trials == 0 || i < o->trials);
         i += shards) {
        if (o->seconds > 0 && wall_now() - start > o->seconds) {
            break;
        }
        if (stopped(o)) {
            r->interrupted = true;
            break;
        }
        struct choices c;
        struct rng stream;
        size_t ops;
        if (!trial_draw(p, o, i, &c, &stream, &seen, &ops)) {
            r->dups++;
            choices_fini(&c);
            continue;
        }
        c.extend = NULL;
        trail_write(&tr, c.buf, c.len);
        if (trial_fails(p, o, NULL, c.buf, c.len, r->message, sizeof(r->message))) {
            r->trials++;
            r->ops += ops;
            r->fail_trial = i;
            engine_fail(p, o, &c, r);
            choices_fini(&c);
            break;
        }
        if (stopped(o)) { /* the trial was cut short: it proves nothing */
            choices_fini(&c);
            r->interrupted = true;
            break;
        }
        r->trials++;
        r->ops += ops;
        r->passed++;
        choices_fini(&c);
        if (o->progress && r->trials % 64 == 0) {
            progress_line(p, o, r, start);
        }
    }
    if (o->progress) {
        progress_line(p, o, r, start);
        fputc('\n', stderr);
    }
    u64map_fini(&seen);
    trail_close(&tr, o);
    r->seconds = wall_now() - start;
    r->cpu_seconds = cpu_now() - cpu_start; /* the workers are reaped by now */
    r->interrupted |= stopped(o);
    /* Every trial counted passed or is the one failure; a failure keeps its
     * scenario for the repro. */
    ASSERT(r->trials == r->passed + (r->failed ? 1 : 0));
    ASSERT(!r->failed || (r->bytes != NULL && r->len <= ENGINE_MAX_BYTES));
}
