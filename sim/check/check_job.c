/*
 * check_job: see check_job.h.
 */
#include "check_job.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "../../ref/base.h"
#include "../base/content.h"

void check_job_init(struct check_job *c, uint64_t seed)
{
    memset(c, 0, sizeof(*c));
    c->seed = seed;
}

static void snapshot_free(struct cj_job *j)
{
    mem_free(j->want_hash, j->want_hash ? j->n_sectors * sizeof(uint64_t) : 0);
    mem_free(j->want_tag, j->want_tag ? j->n_sectors * sizeof(uint64_t) : 0);
    mem_free(j->in_set, j->in_set ? j->n_sectors : 0);
    j->want_hash = j->want_tag = NULL;
    j->in_set = NULL;
    j->backup = false;
}

void check_job_fini(struct check_job *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        snapshot_free(&c->jobs[i]);
    }
}

static struct cj_job *find(struct check_job *c, const char *id)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (c->jobs[i].live && strcmp(c->jobs[i].id, id) == 0) {
            return &c->jobs[i];
        }
    }
    return NULL;
}

const struct cj_job *check_job_find(const struct check_job *c, const char *id)
{
    return find((struct check_job *)c, id);
}

static void fail(struct check_job *c, const char *prop, unsigned line, uint64_t now_ns,
                 uint64_t sector, const char *fmt, ...) PRINTF_LIKE(6, 7);

static void fail(struct check_job *c, const char *prop, unsigned line, uint64_t now_ns,
                 uint64_t sector, const char *fmt, ...)
{
    if (c->failed) {
        return;
    }
    c->failed = true;
    memset(&c->first, 0, sizeof(c->first));
    snprintf(c->first.property, sizeof(c->first.property), "%s", prop);
    c->first.line = line;
    c->first.time_ns = now_ns;
    c->first.sector = sector;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->first.msg, sizeof(c->first.msg), fmt, ap);
    va_end(ap);
}

/* A new job's slot: a free one, else a dead one's. */
static struct cj_job *slot_new(struct check_job *c)
{
    for (unsigned i = 0; i < c->n; i++) {
        if (!c->jobs[i].live) {
            snapshot_free(&c->jobs[i]);
            return &c->jobs[i];
        }
    }
    ASSERT(c->n < CJ_JOBS_MAX); /* the world refuses more live jobs */
    return &c->jobs[c->n++];
}

static void status_change(struct check_job *c, const struct job_event *ev, unsigned line,
                          uint64_t now_ns)
{
    struct cj_job *j = find(c, ev->id);
    if (!j) {
        if (ev->status != JOB_STATUS_CREATED) {
            fail(c, "job-states", line, now_ns, 0, "job '%s' reported status '%s' before "
                 "'created'", ev->id, job_status_name(ev->status));
            return;
        }
        j = slot_new(c);
        memset(j, 0, sizeof(*j));
        snprintf(j->id, sizeof(j->id), "%s", ev->id);
        j->line = line;
        j->live = true;
        j->status = JOB_STATUS_CREATED;
        j->type = ev->type;
        j->converges = ev->type == JOB_TYPE_MIRROR || ev->type == JOB_TYPE_COMMIT;
        return;
    }
    if (!job_transition_ok(j->status, ev->status)) {
        fail(c, "job-states", line, now_ns, 0, "job '%s' went from '%s' to '%s', which QEMU's "
             "job state machine does not allow", ev->id, job_status_name(j->status),
             job_status_name(ev->status));
    }
    j->status = ev->status;
    if (ev->status == JOB_STATUS_NULL) {
        j->live = false;
    }
}

void check_job_event(struct check_job *c, const struct job_event *ev, unsigned line,
                     uint64_t now_ns)
{
    c->events++;
    if (ev->kind == JOB_EV_STATUS_CHANGE) {
        status_change(c, ev, line, now_ns);
        return;
    }
    struct cj_job *j = find(c, ev->id);
    if (!j) {
        fail(c, "job-states", line, now_ns, 0, "%s for job '%s', which does not exist",
             job_event_name(ev->kind), ev->id);
        return;
    }
    const char *st = job_status_name(j->status);
    switch (ev->kind) {
    case JOB_EV_READY:
        if (j->status != JOB_STATUS_READY || j->ready_sent) {
            fail(c, "job-states", line, now_ns, 0, "BLOCK_JOB_READY for job '%s' in status "
                 "'%s'%s", ev->id, st, j->ready_sent ? " (sent before)" : "");
        }
        j->ready_sent = true;
        break;
    case JOB_EV_PENDING:
        if (j->status != JOB_STATUS_PENDING) {
            fail(c, "job-states", line, now_ns, 0, "BLOCK_JOB_PENDING for job '%s' in status "
                 "'%s'", ev->id, st);
        }
        break;
    case JOB_EV_COMPLETED:
    case JOB_EV_CANCELLED:
        if (j->cancel_soft && ev->kind == JOB_EV_CANCELLED) {
            fail(c, "mirror-cancel", line, now_ns, 0, "job '%s' was cancelled without force "
                 "in READY, which must finish in step and report BLOCK_JOB_COMPLETED (a soft "
                 "cancel), but it reported BLOCK_JOB_CANCELLED", ev->id);
        }
        if (j->cancel_forced && !j->cancel_soft && ev->kind == JOB_EV_COMPLETED &&
            !ev->error) {
            fail(c, "job-states", line, now_ns, 0, "job '%s' was cancelled (forced) but "
                 "reported BLOCK_JOB_COMPLETED without an error", ev->id);
        }
        if ((j->status != JOB_STATUS_PENDING && j->status != JOB_STATUS_ABORTING) ||
            j->terminal_sent) {
            fail(c, "job-states", line, now_ns, 0, "%s for job '%s' in status '%s'%s",
                 job_event_name(ev->kind), ev->id, st, j->terminal_sent ? " (sent before)" : "");
        }
        if (ev->kind == JOB_EV_COMPLETED && j->status == JOB_STATUS_ABORTING && !ev->error) {
            fail(c, "job-states", line, now_ns, 0, "job '%s' aborted but BLOCK_JOB_COMPLETED "
                 "carries no error", ev->id);
        }
        j->terminal_sent = true;
        break;
    case JOB_EV_ERROR:
        if (j->status != JOB_STATUS_RUNNING && j->status != JOB_STATUS_READY) {
            fail(c, "job-states", line, now_ns, 0, "BLOCK_JOB_ERROR for job '%s' in status "
                 "'%s'", ev->id, st);
        }
        break;
    default:
        UNREACHABLE();
    }
}

void check_job_backup_start(struct check_job *c, const char *id, uint64_t sectors, bool none,
                            bool fleece)
{
    struct cj_job *j = find(c, id);
    ASSERT(j != NULL && !j->backup);
    j->backup = true;
    j->none = none || fleece; /* judged at any end */
    j->fleece = fleece;
    j->n_sectors = sectors;
    j->want_hash = mem_alloc(sectors * sizeof(uint64_t));
    j->want_tag = mem_alloc(sectors * sizeof(uint64_t));
    j->in_set = mem_alloc(sectors ? sectors : 1);
}

void check_job_backup_snap(struct check_job *c, const char *id, uint64_t first,
                           const uint8_t *src, uint64_t len, const uint8_t *in_set)
{
    struct cj_job *j = find(c, id);
    ASSERT(j != NULL && j->backup && first + len / CONTENT_SECTOR <= j->n_sectors);
    for (uint64_t k = 0; k < len / CONTENT_SECTOR; k++) {
        const uint8_t *p = src + k * CONTENT_SECTOR;
        uint64_t s = first + k;
        j->want_hash[s] = XXH3_64bits(p, CONTENT_SECTOR);
        j->want_tag[s] = content_identify(p, c->seed, s, NULL);
        j->in_set[s] = j->fleece ? 1 : j->none ? 0 : in_set ? in_set[k] : 1;
    }
}

void check_job_cancelled(struct check_job *c, const char *id, bool force, enum job_status at)
{
    struct cj_job *j = find(c, id);
    if (!j || j->terminal_sent) {
        return;
    }
    bool soft = j->converges && !force && (at == JOB_STATUS_READY || at == JOB_STATUS_STANDBY);
    if (soft && !j->cancel_forced) {
        j->cancel_soft = true;
    } else {
        j->cancel_soft = false;
        j->cancel_forced = true;
    }
}

/* A target sector that differs from what it should hold: explained by a
 * fault (counted), or described (tag names into @want and @got) for the
 * caller's violation. */
static bool mismatch_explained(struct check_job *c, check_job_taint_fn *taint, void *opaque,
                               uint64_t s, uint64_t want_tag, const uint8_t *got_bytes,
                               char want[48], char got[48], uint64_t *got_tag)
{
    if (taint && taint(opaque, s)) {
        c->explained++;
        return true;
    }
    *got_tag = content_identify(got_bytes, c->seed, s, NULL);
    check_tag_name(want_tag, want, 48);
    check_tag_name(*got_tag, got, 48);
    return false;
}

/* The violation just failed names one allowed value and the one read. */
static void first_values(struct check_job *c, uint64_t want, uint64_t got)
{
    c->first.n_expected = 1;
    c->first.expected[0] = want;
    c->first.actual = got;
}

bool check_job_mirror_verify(struct check_job *c, const char *id, uint64_t first,
                             const uint8_t *src, const uint8_t *tgt, uint64_t len,
                             bool pivoted, check_job_taint_fn *taint, void *opaque,
                             unsigned line, uint64_t now_ns)
{
    struct cj_job *j = find(c, id);
    ASSERT(j != NULL);
    bool commit = j->type == JOB_TYPE_COMMIT;
    const char *prop = commit ? "commit" : pivoted ? "mirror-converge" : "mirror-cancel";
    for (uint64_t s = first; s < first + len / CONTENT_SECTOR && !c->failed; s++) {
        const uint8_t *a = src + (s - first) * CONTENT_SECTOR;
        const uint8_t *b = tgt + (s - first) * CONTENT_SECTOR;
        c->sectors_checked++;
        char want[48];
        char got[48];
        uint64_t gt = 0;
        uint64_t wt = content_identify(a, c->seed, s, NULL);
        if (memcmp(a, b, CONTENT_SECTOR) == 0 ||
            mismatch_explained(c, taint, opaque, s, wt, b, want, got, &gt)) {
            continue;
        }
        fail(c, prop, line, now_ns, s, "%s '%s' (line %u) ended in step (%s) but %s sector "
             "%" PRIu64 " (byte %" PRIu64 ") holds %s where the %s holds %s",
             job_type_name(j->type), id, j->line,
             pivoted ? "complete: the guest now runs on it" : "cancelled in READY",
             commit ? "the base's" : "target", s, s * CONTENT_SECTOR, got,
             commit ? "overlay" : "source", want);
        first_values(c, wt, gt);
    }
    return !c->failed;
}

void check_job_guest_wrote(struct check_job *c, uint64_t sector, uint64_t n)
{
    for (unsigned i = 0; i < c->n; i++) {
        struct cj_job *j = &c->jobs[i];
        if (!j->live || !j->backup || !j->none || j->terminal_sent) {
            continue;
        }
        for (uint64_t s = sector; s < sector + n && s < j->n_sectors; s++) {
            j->in_set[s] = 1;
        }
    }
}

bool check_job_backup_verify(struct check_job *c, const char *id, uint64_t first,
                             const uint8_t *tgt, uint64_t len, check_job_taint_fn *taint,
                             void *opaque, unsigned line, uint64_t now_ns)
{
    struct cj_job *j = find(c, id);
    ASSERT(j != NULL && j->backup);
    uint64_t end = min_u64(j->n_sectors, first + len / CONTENT_SECTOR);
    for (uint64_t s = first; s < end && !c->failed; s++) {
        if (!j->in_set[s]) {
            continue;
        }
        c->sectors_checked++;
        const uint8_t *p = tgt + (s - first) * CONTENT_SECTOR;
        char want[48];
        char got[48];
        uint64_t actual = 0;
        if (XXH3_64bits(p, CONTENT_SECTOR) == j->want_hash[s] ||
            mismatch_explained(c, taint, opaque, s, j->want_tag[s], p, want, got, &actual)) {
            continue;
        }
        fail(c, "backup-point-in-time", line, now_ns, s, "backup '%s' (line %u): target "
             "sector %" PRIu64 " (byte %" PRIu64 ") holds %s, not what the source held when "
             "the job started (%s)", id, j->line, s, s * CONTENT_SECTOR, got, want);
        first_values(c, j->want_tag[s], actual);
    }
    return !c->failed;
}

void check_job_backup_uncopied(const struct check_job *c, const char *id, uint64_t first,
                               const uint8_t *tgt, uint64_t len, uint64_t cluster,
                               uint8_t *must, uint8_t *may)
{
    const struct cj_job *j = check_job_find(c, id);
    ASSERT(j != NULL && j->backup);
    uint64_t end = min_u64(j->n_sectors, first + len / CONTENT_SECTOR);
    for (uint64_t s = first; s < end; s++) {
        const uint8_t *p = tgt + (s - first) * CONTENT_SECTOR;
        uint64_t cl = s * CONTENT_SECTOR / cluster;
        may[cl] |= j->in_set[s];
        if (j->in_set[s] && XXH3_64bits(p, CONTENT_SECTOR) != j->want_hash[s]) {
            must[cl] = 1;
        }
    }
}

json_t *check_job_json(const struct check_job *c)
{
    json_t *o = json_pack("{s:I, s:I, s:I, s:b}", "events", (json_int_t)c->events,
                          "sectors_checked", (json_int_t)c->sectors_checked,
                          "explained_by_faults", (json_int_t)c->explained, "failed", c->failed);
    if (c->failed) {
        json_object_set_new(o, "first", check_violation_json(&c->first));
    }
    return o;
}

void check_job_check(const struct check_job *c)
{
    ASSERT(c->n <= CJ_JOBS_MAX);
    ASSERT(!c->failed || c->first.property[0] != '\0');
    for (unsigned i = 0; i < c->n; i++) {
        const struct cj_job *j = &c->jobs[i];
        ASSERT(!j->backup || (j->want_hash && j->want_tag && j->in_set));
        ASSERT(j->status < JOB_STATUS__COUNT);
        for (unsigned k = 0; k < i; k++) { /* live ids are unique */
            ASSERT(!j->live || !c->jobs[k].live || strcmp(c->jobs[k].id, j->id) != 0);
        }
    }
}
