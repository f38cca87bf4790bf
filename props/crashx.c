/*
 * crashx: see crashx.h.
 *
 * Method: for crash point p the explorer builds a scenario: the workload's
 * settings and records up to p, a crash, a restart, and a read of every
 * range written before p. A dry run (keep everything) learns each disk's
 * cache log at the crash through the world's crash hook, FUA flags
 * included. The generators then emit plans (per log entry: keep, drop or
 * tear) and each plan runs as a world whose first crash follows it; the
 * world's checker judges the reads. Plans are deduplicated by hash; subsets
 * are enumerated exhaustively when the non-FUA entries number at most
 * log2(max_states), else sampled. A workload with crash records of its own
 * is explored segment by segment: the points of segment j lie after its
 * j earlier crashes (which run as the trace says), and the world follows
 * the plan at its crash number j.
 */
#include "crashx.h"

#include <errno.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "../ref/base.h"
#include "../sim/base/rng.h"
#include "../sim/base/u64map.h"
#include "../sim/world/world.h"

#define CRASHX_ENTRIES_MAX 4096
#define CRASHX_READS_MAX 256

static const char *const gen_names[CRASHX__COUNT] = { "prefix", "subset", "tear" };

const char *crashx_gen_name(enum crashx_gen g)
{
    ASSERT(g < CRASHX__COUNT);
    return gen_names[g];
}

void crashx_opts_default(struct crashx_opts *o)
{
    memset(o, 0, sizeof(*o));
    o->max_states = 10000;
    o->tear_samples = 1000;
    o->seed = 1;
    o->fork_min_records = 200;
}

/* One crash point: its scenario and what the dry run learned. */
struct point {
    struct trace t;              /* a view: records borrowed from the workload */
    size_t cap;
    unsigned n_disks;
    bool crashing[WORLD_DISKS_MAX]; /* the disks the crash takes down (its host's) */
    size_t n_entries[WORLD_DISKS_MAX];
    uint8_t fua[WORLD_DISKS_MAX][CRASHX_ENTRIES_MAX];
    uint32_t len[WORLD_DISKS_MAX][CRASHX_ENTRIES_MAX];
    unsigned line;               /* workload line of the last record before it */
    size_t last;                 /* index of that record */
    const char *mark;            /* that record's mark text, if it is a mark */
    size_t crash_rec;            /* index of the crash record it appends */
    uint64_t at_flush;           /* crash at the disks' Nth flush; 0: at the end */
};

struct explorer {
    const struct crashx_opts *o;
    uint64_t crash_index;        /* the crash the plans apply to (the segment) */
    double start;                /* wall clock at the start */
    uint64_t states;             /* states run, all generators */
    uint64_t point_number;       /* of the point being explored */
    uint64_t point_states;       /* budget per crash point and generator */
    uint64_t point_tears;
    struct crashx_result *r;
    struct point *pt;
    uint64_t total;              /* crash points of the workload */
    struct u64map plans;         /* plans run at this point */
    struct u64map contents;      /* post-crash contents seen */
    uint8_t keep[WORLD_DISKS_MAX][CRASHX_ENTRIES_MAX];
    /* Fork mode: the states of a point run as children forked at its
     * crash, inside the dry run (see explore_point). */
    bool branching;              /* inside crash_branch: run_plan forks */
    bool branched;               /* the point was explored at its crash */
    bool child_dry;              /* a child that goes on as the dry run does */
    bool child;                  /* this process is such a child */
    jmp_buf branch_jmp;          /* where a child goes back to crash_branch */
    struct disk_crash_plan child_plans[WORLD_DISKS_MAX];
    int child_fd;                /* a child's result goes here */
    struct pending *pending;     /* children in flight, oldest first */
    unsigned n_pending, max_pending;
};

/* A state running as a child: what its result needs to be judged. */
struct pending {
    pid_t pid;
    int fd;
    enum crashx_gen gen;
    uint64_t tear_seed;
    uint8_t keep[WORLD_DISKS_MAX][CRASHX_ENTRIES_MAX]; /* its plan (x->keep moved on) */
};

/* What a child tells its parent of its run. */
struct state_result {
    int verdict;
    uint64_t content_hash;
    char property[32];
    char msg[480];
};

static struct trace_rec *point_add(struct point *pt, const struct trace_rec *src,
                                   enum trace_kind kind)
{
    if (pt->t.n == pt->cap) {
        size_t cap = pt->cap ? 2 * pt->cap : 64;
        pt->t.recs = mem_realloc(pt->t.recs, pt->cap * sizeof(*pt->t.recs),
                                 cap * sizeof(*pt->t.recs));
        pt->cap = cap;
    }
    struct trace_rec *r = &pt->t.recs[pt->t.n++];
    if (src) {
        *r = *src;
        r->text = NULL; /* borrowed records print canonically */
    } else {
        memset(r, 0, sizeof(*r));
        r->kind = kind;
    }
    return r;
}

/* Records [0, upto] of @w, then crash, restart and the read-back. */
static void point_build(struct point *pt, const struct trace *w, size_t upto,
                        const char *host)
{
    memset(pt, 0, sizeof(*pt));
    uint64_t ranges[CRASHX_READS_MAX][3]; /* offset, length, guest */
    unsigned n_ranges = 0;
    for (size_t i = 0; i <= upto; i++) {
        const struct trace_rec *r = &w->recs[i];
        if (r->kind == TRACE_EXPECT) {
            continue;
        }
        point_add(pt, r, r->kind);
        bool writes = r->kind == TRACE_WRITE || r->kind == TRACE_ZERO ||
                      r->kind == TRACE_DISCARD;
        if (writes && n_ranges < CRASHX_READS_MAX) {
            ranges[n_ranges][0] = r->offset;
            ranges[n_ranges][1] = r->len;
            ranges[n_ranges++][2] = r->guest;
        }
        pt->line = r->line;
        pt->last = i;
        pt->mark = r->kind == TRACE_MARK ? r->mark : NULL;
    }
    pt->crash_rec = pt->t.n;
    snprintf(point_add(pt, NULL, TRACE_CRASH)->host, TRACE_HOST_MAX, "%s", host);
    snprintf(point_add(pt, NULL, TRACE_RESTART)->host, TRACE_HOST_MAX, "%s", host);
    for (unsigned i = 0; i < n_ranges; i++) {
        struct trace_rec *rd = point_add(pt, NULL, TRACE_READ);
        rd->offset = ranges[i][0];
        rd->len = ranges[i][1];
        rd->guest = (uint8_t)ranges[i][2]; /* each guest reads back what it wrote */
    }
}

static void point_free(struct point *pt)
{
    mem_free(pt->t.recs, pt->cap * sizeof(*pt->t.recs));
}

static void dry_hook(void *opaque, unsigned disk, const struct disk *d)
{
    struct explorer *x = opaque;
    struct point *pt = x->pt;
    ASSERT(disk < WORLD_DISKS_MAX);
    pt->n_disks = disk + 1;
    pt->crashing[disk] = true;
    pt->n_entries[disk] = d->log_n < CRASHX_ENTRIES_MAX ? d->log_n : CRASHX_ENTRIES_MAX;
    for (size_t i = 0; i < pt->n_entries[disk]; i++) {
        const struct disk_log_entry *e = &d->log[(d->log_head + i) % d->log_cap];
        pt->fua[disk][i] = e->fua;
        pt->len[disk][i] = (uint32_t)e->len;
    }
}

static void point_where(const struct point *pt, char *buf, size_t size)
{
    /* Imported traces have no lines: their records are counted. */
    const char *unit = pt->line ? "line" : "record";
    unsigned long long where = pt->line ? pt->line : (unsigned long long)pt->last;
    if (pt->at_flush) {
        snprintf(buf, size, "at device flush #%" PRIu64, pt->at_flush);
    } else if (pt->mark) {
        snprintf(buf, size, "after mark %s (%s %llu)", pt->mark, unit, where);
    } else {
        snprintf(buf, size, "after %s %llu", unit, where);
    }
}

static void plan_describe(const struct explorer *x, char *buf, size_t size)
{
    size_t at = 0;
    buf[0] = '\0';
    for (unsigned d = 0; d < x->pt->n_disks && at < size; d++) {
        at += (size_t)snprintf(buf + at, size - at, "%sdisk %u [", d ? " " : "", d);
        for (size_t i = 0; i < x->pt->n_entries[d] && i < 32 && at < size; i++) {
            static const char fate[] = "-kt"; /* drop, keep, tear */
            at += (size_t)snprintf(buf + at, size - at, "%c", fate[x->keep[d][i]]);
        }
        if (at < size) {
            at += (size_t)snprintf(buf + at, size - at, "%s]",
                                   x->pt->n_entries[d] > 32 ? "..." : "");
        }
    }
}

static double wall_now(void)
{
    /* Budgets and progress only: never what a state does. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Points and states, rate, failures, and time left (by the time budget,
 * else by the crash points left at the pace so far). */
static void progress_line(const struct explorer *x)
{
    double secs = wall_now() - x->start;
    uint64_t done = x->r->points;
    double left = x->o->seconds > 0 ? x->o->seconds - secs
                  : done && x->total > done ? secs / (double)done * (double)(x->total - done)
                                            : 0;
    fprintf(stderr, "\rexplore: %" PRIu64 " of %" PRIu64 " crash points, %" PRIu64 " states, "
            "%.0f states/s, %d failure(s), %.0f s left   ", done, x->total, x->states,
            secs > 0 ? (double)x->states / secs : 0.0, x->r->failed ? 1 : 0,
            left > 0 ? left : 0);
}

/* Out of time, or asked to stop? Then the result says so. */
static bool must_stop(struct explorer *x)
{
    bool stop = (x->o->stop && *x->o->stop) ||
                (x->o->seconds > 0 && wall_now() - x->start > x->o->seconds);
    x->r->stopped |= stop;
    return stop;
}

void crashx_result_fini(struct crashx_result *r)
{
    free(r->repro);
    r->repro = NULL;
}

/* The failing state as a trace: the point's scenario whose crash record
 * names the crash point (at-flush=) and, when @planned, the fates of every
 * cache entry (plan=, tear-seed=). */
static void repro_fill(struct explorer *x, bool planned, uint64_t tear_seed)
{
    struct point *pt = x->pt;
    struct trace_crash_plan *p = trace_crash_plan_new();
    p->at_flush = pt->at_flush;
    p->tear_seed = planned ? tear_seed : 0;
    /* A record's fates name the disks its crash takes down, in disk order. */
    for (unsigned d = 0; planned && d < pt->n_disks; d++) {
        if (!pt->crashing[d]) {
            continue;
        }
        unsigned k = p->n_disks++;
        p->n[k] = (uint32_t)pt->n_entries[d];
        p->fates[k] = mem_alloc(p->n[k] ? p->n[k] : 1);
        memcpy(p->fates[k], x->keep[d], p->n[k]);
    }
    struct trace_rec *crash = &pt->t.recs[pt->crash_rec];
    ASSERT(crash->kind == TRACE_CRASH && crash->plan == NULL);
    crash->plan = p;
    size_t len;
    FILE *f = open_memstream(&x->r->repro, &len);
    ASSERT(f != NULL);
    char comment[600];
    snprintf(comment, sizeof(comment), "explore: crash point %" PRIu64 " failed:\n%s",
             x->point_number, x->r->message);
    trace_print_repro(&pt->t, comment, x->o->node_mutants, x->o->disk_mutants, f);
    ASSERT(fclose(f) == 0);
    crash->plan = NULL;
    trace_crash_plan_free(p);
}

/* What a state's run came to: counted, its contents deduplicated, and a
 * failure described with its repro. False once the property failed. */
static bool plan_result(struct explorer *x, enum crashx_gen gen, uint64_t tear_seed,
                        const struct state_result *res)
{
    x->r->states[gen]++;
    x->states++;
    if (x->o->progress && x->states % 64 == 0) {
        progress_line(x);
    }
    bool created;
    u64map_put(&x->contents, res->content_hash & (U64MAP_EMPTY - 1), &created);
    x->r->distinct += created;
    x->r->dups += !created;
    if (res->verdict == WORLD_PASS) {
        return true;
    }
    char plan[200];
    plan_describe(x, plan, sizeof(plan));
    x->r->failed = true;
    char where[64];
    point_where(x->pt, where, sizeof(where));
    snprintf(x->r->message, sizeof(x->r->message), "crash %s, %s state %.120s: %s: %.250s",
             where, gen_names[gen], plan, res->property, res->msg);
    repro_fill(x, true, tear_seed);
    return false;
}

static void result_from(struct state_result *out, const struct world_result *res)
{
    memset(out, 0, sizeof(*out));
    out->verdict = res->verdict;
    out->content_hash = res->content_hash;
    snprintf(out->property, sizeof(out->property), "%s", res->first.property);
    snprintf(out->msg, sizeof(out->msg), "%s", res->first.msg);
}

/* Fork mode: a child takes @plans back to the world's crash (it resolves
 * the crash with them, runs on, and reports from explore_point); the
 * parent keeps it as pending. False when no child could be made. */
static bool plan_fork(struct explorer *x, const struct disk_crash_plan *plans,
                      enum crashx_gen gen, uint64_t tear_seed)
{
    int fds[2];
    if (pipe(fds) < 0) {
        return false;
    }
    fflush(NULL); /* nothing buffered is written twice */
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        for (unsigned i = 0; i < x->n_pending; i++) {
            close(x->pending[i].fd);
        }
        x->child = true;
        x->child_fd = fds[1];
        if (plans != x->child_plans) {
            memcpy(x->child_plans, plans, x->pt->n_disks * sizeof(*plans));
        }
        longjmp(x->branch_jmp, 1);
    }
    close(fds[1]);
    if (pid < 0) {
        close(fds[0]);
        return false;
    }
    struct pending *p = &x->pending[x->n_pending++];
    p->pid = pid;
    p->fd = fds[0];
    p->gen = gen;
    p->tear_seed = tear_seed;
    for (unsigned d = 0; d < x->pt->n_disks; d++) {
        memcpy(p->keep[d], x->keep[d], x->pt->n_entries[d]);
    }
    return true;
}

/* The oldest child's result (a child that died is a failed state, never a
 * pass). */
static void pending_take(struct explorer *x, struct state_result *out)
{
    struct pending *p = &x->pending[0];
    size_t got = 0;
    while (got < sizeof(*out)) {
        ssize_t n = read(p->fd, (char *)out + got, sizeof(*out) - got);
        if (n <= 0 && !(n < 0 && errno == EINTR)) {
            break;
        }
        got += n > 0 ? (size_t)n : 0;
    }
    close(p->fd);
    int status = 0;
    while (waitpid(p->pid, &status, 0) < 0 && errno == EINTR) {
    }
    if (got != sizeof(*out) || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        memset(out, 0, sizeof(*out));
        out->verdict = WORLD_FAIL;
        snprintf(out->property, sizeof(out->property), "process");
        snprintf(out->msg, sizeof(out->msg), "the state's run died (%s %d)",
                 WIFSIGNALED(status) ? "signal" : "exit status",
                 WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
    }
}

/* Judge the oldest pending child, in the order the states were made (so
 * the first failure and every count are those of running them one by
 * one); after a failure the rest are only reaped. False once failed. */
static bool pending_finish(struct explorer *x)
{
    struct state_result out;
    pending_take(x, &out);
    struct pending *p = &x->pending[0];
    bool ok = true;
    if (!x->r->failed) {
        uint8_t saved[WORLD_DISKS_MAX][CRASHX_ENTRIES_MAX];
        for (unsigned d = 0; d < x->pt->n_disks; d++) {
            memcpy(saved[d], x->keep[d], x->pt->n_entries[d]);
            memcpy(x->keep[d], p->keep[d], x->pt->n_entries[d]);
        }
        ok = plan_result(x, p->gen, p->tear_seed, &out);
        for (unsigned d = 0; d < x->pt->n_disks; d++) {
            memcpy(x->keep[d], saved[d], x->pt->n_entries[d]);
        }
    }
    memmove(x->pending, x->pending + 1, (x->n_pending - 1) * sizeof(*x->pending));
    x->n_pending--;
    return ok && !x->r->failed;
}

/* Every pending child judged (or reaped, after a failure). */
static void pending_drain(struct explorer *x)
{
    while (x->n_pending > 0) {
        (void)pending_finish(x);
    }
}

/* Run the plan in x->keep; false once the property failed or the run must
 * stop (r->failed and r->stopped tell which). */
static bool run_plan(struct explorer *x, enum crashx_gen gen, uint64_t tear_seed)
{
    if (must_stop(x)) {
        return false;
    }
    XXH3_state_t *h = XXH3_createState();
    XXH3_64bits_reset_withSeed(h, gen * 1000003ull + tear_seed);
    struct disk_crash_plan plans[WORLD_DISKS_MAX];
    for (unsigned d = 0; d < x->pt->n_disks; d++) {
        XXH3_64bits_update(h, x->keep[d], x->pt->n_entries[d]);
        plans[d].keep = x->keep[d];
        plans[d].n = x->pt->n_entries[d];
        plans[d].tear_seed = tear_seed;
    }
    uint64_t key = XXH3_64bits_digest(h) & (U64MAP_EMPTY - 1);
    XXH3_freeState(h);
    bool created;
    u64map_put(&x->plans, key, &created);
    if (!created) {
        return true;
    }
    if (x->branching) {
        while (x->n_pending >= x->max_pending) {
            if (!pending_finish(x)) {
                return false;
            }
        }
        if (plan_fork(x, plans, gen, tear_seed)) {
            return true;
        }
        pending_drain(x); /* no child: this one runs here, after those */
        if (x->r->failed) {
            return false;
        }
    }
    struct world_opts o = { .node_mutants = x->o->node_mutants,
                            .disk_mutants = x->o->disk_mutants, .crash_plans = plans,
                            .crash_plan_at = x->crash_index,
                            .crash_at_flush = x->pt->at_flush };
    struct world_result res;
    struct err e = { .file = "crashx" };
    int ret = world_run(&x->pt->t, &o, &res, &e);
    ASSERT(ret == 0); /* the dry run already validated this scenario */
    struct state_result out;
    result_from(&out, &res);
    return plan_result(x, gen, tear_seed, &out);
}

static void keep_fill(struct explorer *x, uint8_t fate)
{
    for (unsigned d = 0; d < x->pt->n_disks; d++) {
        for (size_t i = 0; i < x->pt->n_entries[d]; i++) {
            x->keep[d][i] = x->pt->fua[d][i] ? 1 : fate;
        }
    }
}

static size_t last_fua_end(const struct point *pt, unsigned d)
{
    size_t end = 0;
    for (size_t i = 0; i < pt->n_entries[d]; i++) {
        end = pt->fua[d][i] ? i + 1 : end;
    }
    return end;
}

/* Every prefix of each disk's log through its last FUA entry (the cross
 * product over disks, within the budget). */
static bool gen_prefix(struct explorer *x)
{
    size_t lo0 = last_fua_end(x->pt, 0);
    size_t lo1 = x->pt->n_disks > 1 ? last_fua_end(x->pt, 1) : 0;
    size_t hi1 = x->pt->n_disks > 1 ? x->pt->n_entries[1] : 0;
    for (size_t k0 = lo0; k0 <= x->pt->n_entries[0]; k0++) {
        for (size_t k1 = lo1; k1 <= hi1; k1++) {
            if (k0 - lo0 + 1 > x->point_states) {
                return true;
            }
            for (size_t i = 0; i < x->pt->n_entries[0]; i++) {
                x->keep[0][i] = i < k0;
            }
            for (size_t i = 0; i < hi1; i++) {
                x->keep[1][i] = i < k1;
            }
            if (!run_plan(x, CRASHX_PREFIX, 0)) {
                return false;
            }
        }
    }
    return true;
}

/* Subsets of the non-FUA entries: all of them when few, else a sample. */
static bool gen_subset(struct explorer *x, uint64_t point_index)
{
    uint16_t slot_disk[64];
    uint16_t slot_idx[64];
    unsigned m = 0;
    bool few = true;
    for (unsigned d = 0; d < x->pt->n_disks; d++) {
        for (size_t i = 0; i < x->pt->n_entries[d]; i++) {
            if (x->pt->fua[d][i]) {
                continue;
            }
            few &= m < 64;
            if (m < 64) {
                slot_disk[m] = (uint16_t)d;
                slot_idx[m++] = (uint16_t)i;
            }
        }
    }
    few &= m < 63 && (1ull << m) <= x->point_states;
    x->r->exhaustive &= few;
    uint64_t count = few ? 1ull << m : x->point_states;
    struct rng r;
    rng_stream(&r, x->o->seed, "crashx-subset", point_index, 0);
    for (uint64_t s = 0; s < count; s++) {
        keep_fill(x, 1);
        /* Sampled masks cover at most the first 64 non-FUA entries; the
         * rest are kept. */
        uint64_t mask = few ? s : rng_next(&r);
        for (unsigned k = 0; k < m; k++) {
            x->keep[slot_disk[k]][slot_idx[k]] = (mask >> k) & 1;
        }
        if (!run_plan(x, CRASHX_SUBSET, 0)) {
            return false;
        }
    }
    return true;
}

/* Every non-FUA entry torn per sector, from a different stream each time.
 * A sector has at most four fates, so a small cache has few outcomes: the
 * sample count is capped by 4^sectors. */
static bool gen_tear(struct explorer *x, uint64_t point_index)
{
    uint64_t sectors = 0;
    for (unsigned d = 0; d < x->pt->n_disks; d++) {
        for (size_t i = 0; i < x->pt->n_entries[d]; i++) {
            sectors += x->pt->fua[d][i] ? 0 : x->pt->len[d][i] / 512;
        }
    }
    if (sectors == 0) {
        return true;
    }
    uint64_t samples = x->point_tears;
    if (sectors < 16 && (1ull << (2 * sectors)) < samples) {
        samples = 1ull << (2 * sectors);
    }
    for (uint64_t s = 0; s < samples; s++) {
        keep_fill(x, 2);
        if (!run_plan(x, CRASHX_TEAR, rng_mix64(x->o->seed ^ (point_index << 32) ^ s) | 1)) {
            return false;
        }
    }
    return true;
}

static bool is_workload_op(enum trace_kind k)
{
    return (trace_kind_is_op(k) && k != TRACE_CRASH && k != TRACE_RESTART &&
            k != TRACE_SHUTDOWN) || k == TRACE_COMMIT || k == TRACE_MAKE_EMPTY;
}

static int workload_check(const struct trace *w, struct err *e)
{
    bool ops = false;
    for (size_t i = 0; i < w->n; i++) {
        ops |= is_workload_op(w->recs[i].kind);
        if (w->recs[i].kind == TRACE_SHUTDOWN) {
            return err_set(e, w->recs[i].line, 1, "explore does not take 'shutdown' records");
        }
    }
    return ops ? 0 : err_set(e, 0, 0, "the workload has no operations");
}

/* The point's dry run failed (before or after its crash): reported with a
 * repro whose crash resolves as the dry run's did. */
static void dry_failed(struct explorer *x, const char *property, const char *msg)
{
    char where[64];
    point_where(x->pt, where, sizeof(where));
    x->r->failed = true;
    snprintf(x->r->message, sizeof(x->r->message), "crash %s: %s: %.300s", where, property,
             msg);
    repro_fill(x, false, 0);
}

/* Every generator's states of the point (the disks' logs known). */
static void run_generators(struct explorer *x, uint64_t index)
{
    u64map_fini(&x->plans);
    u64map_init(&x->plans);
    (void)(gen_prefix(x) && gen_subset(x, index) && gen_tear(x, index));
}

/* crash_branch: at the point's crash, in fork mode, every state runs as a
 * child forked here; a child returns with its plans, the parent (once all
 * ran) resolves the crash as the dry run does. */
static const struct disk_crash_plan *branch(void *opaque)
{
    struct explorer *x = opaque;
    if (setjmp(x->branch_jmp) != 0) {
        return x->child_dry ? NULL : x->child_plans; /* a child, back from a fork */
    }
    /* First the dry run's own way on, as a child: its failure comes first,
     * as when the states run from the start. */
    x->branched = true;
    x->child_dry = true;
    bool forked = plan_fork(x, x->child_plans, CRASHX_PREFIX, 0);
    x->child_dry = false;
    if (!forked) {
        x->branched = false; /* no children: the states run from the start */
        return NULL;
    }
    struct state_result dry;
    pending_take(x, &dry);
    x->n_pending = 0;
    if (dry.verdict != WORLD_PASS) {
        dry_failed(x, dry.property, dry.msg);
        return NULL;
    }
    x->r->points++;
    x->branching = true;
    run_generators(x, x->point_number);
    pending_drain(x);
    x->branching = false;
    return NULL;
}

/* Is a child forked at the crash cheaper than a run from the start? Only
 * when the run up to the crash is long: a fork costs about what a few
 * hundred records do. (Either way the states and verdicts are the same.) */
static bool fork_pays(const struct explorer *x, const struct point *pt)
{
    return !x->o->no_fork && pt->crash_rec >= x->o->fork_min_records;
}

/* Dry-run point @pt (learning the disks' logs at its crash), then run every
 * generator's states: in fork mode from the crash itself (each state a
 * child that resolves it its own way and runs on), else each from the
 * start. */
static int explore_point(struct explorer *x, struct point *pt, uint64_t index,
                         struct err *e)
{
    x->pt = pt;
    x->branched = false;
    struct world_opts o = { .node_mutants = x->o->node_mutants,
                            .disk_mutants = x->o->disk_mutants, .crash_hook = dry_hook,
                            .crash_hook_opaque = x, .crash_plan_at = x->crash_index,
                            .crash_at_flush = pt->at_flush,
                            .crash_branch = fork_pays(x, pt) ? branch : NULL };
    struct world_result res;
    memset(pt->n_entries, 0, sizeof(pt->n_entries));
    memset(pt->crashing, 0, sizeof(pt->crashing));
    int ret = world_run(&pt->t, &o, &res, e);
    if (x->child) { /* a state's run ends here: its result to the parent */
        struct state_result out;
        result_from(&out, &res);
        bool ok = ret == 0;
        for (size_t at = 0; ok && at < sizeof(out);) {
            ssize_t n = write(x->child_fd, (const char *)&out + at, sizeof(out) - at);
            ok = n > 0;
            at += ok ? (size_t)n : 0;
        }
        _exit(ok ? 0 : 3);
    }
    if (!x->branched && ret == 0 && res.verdict == WORLD_FAIL) {
        dry_failed(x, res.first.property, res.first.msg);
    }
    if (!x->branched && ret == 0 && !x->r->failed) {
        x->r->points++;
        run_generators(x, index); /* no fork mode, or the crash never came */
    }
    x->pt = NULL;
    return ret;
}

/* Device flushes a run of @w's records [0, @upto) sees (none when empty). */
static int flushes_before(const struct trace *w, size_t upto, const struct crashx_opts *o,
                          uint64_t *flushes, struct err *e)
{
    *flushes = 0;
    if (upto == 0) {
        return 0;
    }
    struct trace view = *w;
    view.n = upto;
    struct world_opts dry = { .node_mutants = o->node_mutants, .disk_mutants = o->disk_mutants };
    struct world_result res;
    TRY(world_run(&view, &dry, &res, e));
    *flushes = res.device_flushes;
    return 0;
}

/* A segment: records [start, end) between crash records, with the device
 * flushes before it and through its last record. */
struct segment {
    size_t start, end;
    uint64_t crashes_before;
    uint64_t flush_lo, flush_hi;
};

#define CRASHX_SEGMENTS_MAX 1024

static int segments_find(const struct trace *w, const struct crashx_opts *o,
                         struct segment *segs, size_t *n, struct err *e)
{
    *n = 0;
    size_t start = 0;
    for (size_t i = 0; i <= w->n; i++) {
        bool cut = i == w->n || w->recs[i].kind == TRACE_CRASH;
        if (!cut) {
            continue;
        }
        bool ops = false;
        for (size_t k = start; k < i; k++) {
            ops |= is_workload_op(w->recs[k].kind);
        }
        if (ops) {
            if (*n == CRASHX_SEGMENTS_MAX) {
                return err_set(e, w->recs[i].line, 1, "more than %d crash records",
                               CRASHX_SEGMENTS_MAX);
            }
            struct segment *sg = &segs[(*n)++];
            sg->start = start;
            sg->end = i;
            uint64_t crashes = 0;
            for (size_t k = 0; k < start; k++) {
                crashes += w->recs[k].kind == TRACE_CRASH;
            }
            sg->crashes_before = crashes;
            TRY(flushes_before(w, start, o, &sg->flush_lo, e));
            TRY(flushes_before(w, i, o, &sg->flush_hi, e));
        }
        start = i + 1;
    }
    return 0;
}

/* Marks (dm-log-writes' named points) among records [@start, @end). */
static uint64_t marks_in(const struct trace *w, size_t start, size_t end)
{
    uint64_t n = 0;
    for (size_t i = start; i < end; i++) {
        n += w->recs[i].kind == TRACE_MARK;
    }
    return n;
}

/* Crash point @number of @pt, crashing at device flush @at_flush (0: after
 * the point's records complete), unless o->only_point picks another. */
static int explore_numbered(struct explorer *x, struct point *pt, uint64_t at_flush,
                            uint64_t *number, struct err *e)
{
    int ret = 0;
    pt->at_flush = at_flush;
    if (!x->o->only_point || x->o->only_point == *number + 1) {
        x->point_number = *number;
        ret = explore_point(x, pt, *number, e);
    }
    x->r->fail_point = (*number)++;
    return ret;
}

/* Crash points: as the disks receive each of their flushes (the stack's own
 * flushes included, so a crash can land inside a driver's flush sequence),
 * after each mark record (what replay-log's --end-mark replays), and at the
 * end of each segment of the workload; numbered in that order a segment. */
static int explore_workload(const struct trace *w, const struct crashx_opts *o,
                            struct crashx_result *r, struct err *e)
{
    TRY(workload_check(w, e));
    struct segment *segs = mem_alloc(CRASHX_SEGMENTS_MAX * sizeof(*segs));
    size_t n_segs;
    int ret = segments_find(w, o, segs, &n_segs, e);
    uint64_t total = 0;
    for (size_t s = 0; s < n_segs && ret == 0; s++) {
        total += segs[s].flush_hi - segs[s].flush_lo + 1 +
                 marks_in(w, segs[s].start, segs[s].end);
    }
    struct explorer x = { .o = o, .r = r, .start = wall_now(), .total = total };
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    x.max_pending = cores < 1 ? 1 : cores > 8 ? 8 : (unsigned)cores; /* children at once */
    x.pending = mem_alloc(x.max_pending * sizeof(*x.pending));
    u64map_init(&x.plans);
    u64map_init(&x.contents);
    r->workloads++;
    /* The budgets are per workload: share them among its crash points. */
    x.point_states = max_u64(16, o->max_states / (total + 1));
    x.point_tears = max_u64(4, o->tear_samples / (total + 1));
    struct point *pt = mem_alloc(sizeof(*pt));
    uint64_t number = 0;
#define GOING (ret == 0 && !r->failed && !must_stop(&x))
    for (size_t s = 0; s < n_segs && ret == 0 && !r->failed && !r->stopped; s++) {
        const struct segment *sg = &segs[s];
        x.crash_index = sg->crashes_before;
        point_build(pt, w, sg->end - 1, o->host);
        for (uint64_t k = sg->flush_lo + 1; k <= sg->flush_hi && GOING; k++) {
            ret = explore_numbered(&x, pt, k, &number, e);
        }
        point_free(pt);
        for (size_t m = sg->start; m < sg->end && GOING; m++) {
            if (w->recs[m].kind == TRACE_MARK) {
                point_build(pt, w, m, o->host);
                ret = explore_numbered(&x, pt, 0, &number, e);
                point_free(pt);
            }
        }
        if (GOING) {
            point_build(pt, w, sg->end - 1, o->host);
            ret = explore_numbered(&x, pt, 0, &number, e); /* the end last */
            point_free(pt);
        }
    }
#undef GOING
    if (o->progress) {
        progress_line(&x);
    }
    r->seconds += wall_now() - x.start;
    mem_free(pt, sizeof(*pt));
    mem_free(x.pending, x.max_pending * sizeof(*x.pending));
    mem_free(segs, CRASHX_SEGMENTS_MAX * sizeof(*segs));
    u64map_fini(&x.plans);
    u64map_fini(&x.contents);
    return ret;
}

int crashx_run(const struct trace *workload, const struct crashx_opts *o,
               struct crashx_result *r, struct err *e)
{
    memset(r, 0, sizeof(*r));
    r->exhaustive = true;
    int ret = explore_workload(workload, o, r, e);
    if (o->progress) {
        fputc('\n', stderr);
    }
    return ret;
}

/* ---- bounded exhaustive mode ---- */

struct letter {
    enum trace_kind kind;
    uint64_t offset;
    bool fua;
};

/* The overlay's alphabet adds its operator actions (the last two). */
static const struct letter alphabet[] = {
    { TRACE_WRITE, 0, false },   { TRACE_WRITE, 512, false }, { TRACE_WRITE, 0, true },
    { TRACE_WRITE, 512, true },  { TRACE_FLUSH, 0, false },   { TRACE_ZERO, 0, false },
    { TRACE_ZERO, 512, false },  { TRACE_MAKE_EMPTY, 0, false }, { TRACE_COMMIT, 0, false },
};
#define PLAIN_LETTERS 7u

static void tiny_workload(struct trace *t, bool overlay, const unsigned *word, unsigned n)
{
    trace_init(t);
    trace_append(t, TRACE_HEADER)->value = TRACE_VERSION;
    struct trace_rec *topo = trace_append(t, TRACE_TOPOLOGY);
    topo->cfg = trace_cfg_new();
    topo->cfg->topology = overlay ? TRACE_TOPO_OVERLAY : TRACE_TOPO_PLAIN;
    topo->cfg->size = 64u << 10;
    topo->cfg->has_size = true;
    topo->cfg->cluster = 4096;
    topo->cfg->has_cluster = overlay;
    for (unsigned i = 0; i < n; i++) {
        const struct letter *l = &alphabet[word[i]];
        struct trace_rec *r = trace_append(t, l->kind);
        r->line = i + 1; /* names the operation in messages */
        if (trace_kind_is_op(l->kind) && l->kind != TRACE_FLUSH) {
            r->offset = l->offset;
            r->len = 512;
            r->fua = l->fua;
        }
    }
}

static void word_describe(const unsigned *word, unsigned n, bool overlay, char *buf,
                          size_t size)
{
    size_t at = (size_t)snprintf(buf, size, "%s:", overlay ? "overlay" : "plain");
    for (unsigned i = 0; i < n && at < size; i++) {
        const struct letter *l = &alphabet[word[i]];
        at += (size_t)snprintf(buf + at, size - at, " %s", trace_kind_name(l->kind));
        if (trace_kind_is_op(l->kind) && l->kind != TRACE_FLUSH && at < size) {
            at += (size_t)snprintf(buf + at, size - at, " %" PRIu64 "%s", l->offset,
                                   l->fua ? " fua" : "");
        }
        at += at < size ? (size_t)snprintf(buf + at, size - at, ";") : 0;
    }
}

static void exhaustive_topology(unsigned max_ops, bool overlay, const struct crashx_opts *o,
                                struct crashx_result *r)
{
    const unsigned letters = overlay ? ARRAY_LEN(alphabet) : PLAIN_LETTERS;
    for (unsigned n = 1; n <= max_ops && !r->failed && !r->stopped; n++) {
        uint64_t words = 1;
        for (unsigned i = 0; i < n; i++) {
            words *= letters;
        }
        for (uint64_t code = 0; code < words && !r->failed && !r->stopped; code++) {
            unsigned word[8];
            uint64_t c = code;
            for (unsigned i = 0; i < n; i++, c /= letters) {
                word[i] = (unsigned)(c % letters);
            }
            struct trace t;
            tiny_workload(&t, overlay, word, n);
            struct err e = { .file = "exhaustive" };
            int ret = explore_workload(&t, o, r, &e);
            ASSERT(ret == 0);
            if (r->failed) {
                char what[256];
                char msg[sizeof(r->message)];
                word_describe(word, n, overlay, what, sizeof(what));
                snprintf(msg, sizeof(msg), "workload %.180s %.300s", what, r->message);
                memcpy(r->message, msg, sizeof(msg));
            }
            trace_fini(&t);
        }
    }
}

void crashx_exhaustive(unsigned max_ops, const struct crashx_opts *o,
                       struct crashx_result *r)
{
    ASSERT(max_ops <= 8);
    memset(r, 0, sizeof(*r));
    r->exhaustive = true;
    exhaustive_topology(max_ops, false, o, r);
    exhaustive_topology(max_ops, true, o, r);
}
