/* Tests of ref/job: QEMU's job state machine, verbs and events, against the
 * sequences observed on QEMU 7.2 (spec section 10.6; the paused/running
 * pair QEMU adds when a backup starts inside a drained section is not
 * modelled) and its refusal texts (10.3). A fake driver copies a disk in
 * chunks, one simulated I/O each; it may converge (mirror-like: ready,
 * then complete or cancel) and fail a chunk under an error policy. */
#include "../../ref/job.h"
#include "../../sim/base/evq.h"
#include "../suites.h"
#include "../testlib.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define CHUNK 65536u

struct fake {
    unsigned total, done;      /* chunks */
    bool converge;             /* mirror-like */
    bool complete_req;
    int fail_at;               /* chunk that fails once (-1: none) */
    int fail_err;
    enum job_policy policy;
    bool pivoted, aborted, cleaned;
    bool async;                /* hands back with its I/O in flight */
    unsigned inflight;
};

struct rig {
    struct evq q;
    struct job_list l;
    char log[2048];
    struct job *j;
    struct fake f;
};

static void log_add(struct rig *r, const char *s)
{
    size_t n = strlen(r->log);
    snprintf(r->log + n, sizeof(r->log) - n, "%s%s", n ? " " : "", s);
}

static void on_event(void *opaque, const struct job_event *ev)
{
    struct rig *r = opaque;
    char s[96];
    switch (ev->kind) {
    case JOB_EV_STATUS_CHANGE:
        snprintf(s, sizeof(s), "%s", job_status_name(ev->status));
        break;
    case JOB_EV_COMPLETED:
        snprintf(s, sizeof(s), "COMPLETED%s%s", ev->error ? ":" : "",
                 ev->error ? ev->error : "");
        break;
    case JOB_EV_ERROR:
        snprintf(s, sizeof(s), "ERROR:%s:%s", ev->read ? "read" : "write",
                 job_action_name(ev->action));
        break;
    default:
        snprintf(s, sizeof(s), "%s", job_event_name(ev->kind) + strlen("BLOCK_JOB_"));
        break;
    }
    log_add(r, s);
    ck_assert(strcmp(ev->id, "bk") == 0 || strcmp(ev->id, "neg") == 0);
    ck_assert_uint_le(ev->offset, ev->len);
}

static struct fake *fk(struct job *j)
{
    return j->drv_state;
}

static void converged(struct job *j);

static void chunk_done(void *opaque)
{
    struct job *j = opaque;
    struct fake *f = fk(j);
    if (f->async) { /* the job handed back already: just kick it */
        f->inflight--;
        f->done++;
        j->offset += CHUNK;
        job_kick(j);
        return;
    }
    if ((int)f->done == f->fail_at) {
        f->fail_at = -1; /* fails once; a retry succeeds */
        enum job_action a = job_error(j, f->policy, false, f->fail_err);
        if (a == JOB_ACTION_REPORT) {
            job_work_done(j, f->fail_err);
        } else {
            job_yield(j); /* stop: pauses here; ignore: retried */
        }
        return;
    }
    f->done++;
    j->offset += CHUNK;
    if (f->done < f->total) {
        job_sleep(j, job_ratelimit(j, CHUNK));
        return;
    }
    converged(j);
}

static void converged(struct job *j)
{
    struct fake *f = fk(j);
    if (!f->converge || f->complete_req || job_cancel_requested(j)) {
        job_work_done(j, 0);
        return;
    }
    if (j->status == JOB_STATUS_RUNNING) {
        job_ready(j);
    }
    job_wait(j); /* in ready: until complete or cancel */
}

static void fake_run(struct job *j)
{
    struct fake *f = fk(j);
    if (f->done == f->total) { /* ready: woken by complete or cancel */
        converged(j);
        return;
    }
    evq_post(&((struct rig *)j->list->opaque)->q, 1000000, chunk_done, j); /* 1 ms I/O */
    if (f->async) {
        f->inflight++;
        job_wait(j);
    }
}

static bool fake_busy(const struct job *j)
{
    return fk((struct job *)j)->inflight > 0;
}

static int fake_prepare(struct job *j)
{
    fk(j)->pivoted = fk(j)->converge && !job_cancel_requested(j); /* mirror's pivot */
    return 0;
}

static void fake_abort(struct job *j)
{
    ck_assert_uint_eq(fk(j)->inflight, 0); /* a forced cancel waited for its I/O */
    fk(j)->aborted = true;
}

static void fake_clean(struct job *j)
{
    fk(j)->cleaned = true;
}

/* Mirror's hook: a cancel without force in ready stays soft. */
static bool fake_cancel(struct job *j, bool force)
{
    return force || j->status != JOB_STATUS_READY;
}

static void fake_complete(struct job *j)
{
    fk(j)->complete_req = true;
}

static const struct job_driver backup_drv = {
    .type = JOB_TYPE_BACKUP, .run = fake_run, .prepare = fake_prepare,
    .abort = fake_abort, .clean = fake_clean,
};
static const struct job_driver async_drv = {
    .type = JOB_TYPE_BACKUP, .run = fake_run, .abort = fake_abort, .busy = fake_busy,
};
static const struct job_driver mirror_drv = {
    .type = JOB_TYPE_MIRROR, .run = fake_run, .prepare = fake_prepare,
    .abort = fake_abort, .clean = fake_clean, .cancel = fake_cancel,
    .complete = fake_complete,
};

static void rig_init(struct rig *r, const struct job_driver *drv, unsigned chunks,
                     const struct job_opts *o)
{
    memset(r, 0, sizeof(*r));
    evq_init(&r->q);
    job_list_init(&r->l, evq_timer(&r->q), on_event, r);
    r->f = (struct fake){ .total = chunks, .converge = drv == &mirror_drv, .fail_at = -1 };
    struct job_opts def = { .auto_finalize = true, .auto_dismiss = true };
    struct err e = { .file = NULL };
    ck_assert_int_eq(job_create(&r->l, "bk", drv, &r->f, o ? o : &def, &e, &r->j), 0);
    r->j->len = (uint64_t)chunks * CHUNK;
    job_start(r->j);
}

/* Run until nothing is pending or @status is reached (the job may be gone
 * at null: then its status is not read). */
static void run_until(struct rig *r, enum job_status status)
{
    while (r->l.head && r->j->status != status && evq_step(&r->q, UINT64_MAX)) {
        if (r->l.head) {
            job_check(r->j);
        }
    }
}

static void run_all(struct rig *r)
{
    while (evq_step(&r->q, UINT64_MAX)) {
    }
}

static void rig_fini(struct rig *r)
{
    run_all(r);
    job_list_fini(&r->l);
    run_all(r);
    evq_fini(&r->q);
}

static void verb(int got, struct err *e, const char *want)
{
    if (!want) {
        ck_assert_msg(got == 0, "refused: %s", e->msg);
        return;
    }
    ck_assert_int_lt(got, 0);
    ck_assert_str_eq(e->msg, want);
}

/* Sequences 1 and 2: a backup that succeeds, one cancelled mid-way. */
START_TEST(test_job_backup_success_and_cancel)
{
    struct rig r;
    rig_init(&r, &backup_drv, 4, NULL);
    run_all(&r);
    ck_assert_str_eq(r.log, "created running waiting pending COMPLETED concluded null");
    ck_assert(r.f.cleaned && !r.f.aborted);
    ck_assert_ptr_null(r.l.head);
    rig_fini(&r);

    rig_init(&r, &backup_drv, 8, NULL);
    evq_step(&r.q, 2500000); /* two chunks copied */
    struct err e = { .file = NULL };
    verb(job_cancel(r.j, false, true, &e), &e, NULL); /* backup: always forced */
    run_all(&r);
    ck_assert_str_eq(r.log, "created running aborting CANCELLED concluded null");
    ck_assert(r.f.aborted && r.f.cleaned);
    rig_fini(&r);
}
END_TEST

/* Sequences 3 to 6: mirror completed; soft-cancelled in ready (COMPLETED,
 * no pivot); force-cancelled in ready; cancelled before ready. */
START_TEST(test_job_mirror_complete_and_cancels)
{
    struct err e = { .file = NULL };
    struct rig r;
    rig_init(&r, &mirror_drv, 3, NULL);
    run_until(&r, JOB_STATUS_READY);
    verb(job_complete(r.j, &e), &e, NULL);
    run_all(&r);
    ck_assert_str_eq(r.log, "created running ready READY waiting pending COMPLETED "
                            "concluded null");
    ck_assert(r.f.pivoted);
    rig_fini(&r);

    rig_init(&r, &mirror_drv, 3, NULL);
    run_until(&r, JOB_STATUS_READY);
    verb(job_cancel(r.j, false, true, &e), &e, NULL);
    /* Cancel requested: complete is refused now. */
    verb(job_complete(r.j, &e), &e, "The active block job 'bk' cannot be completed");
    run_all(&r);
    ck_assert_str_eq(r.log, "created running ready READY waiting pending COMPLETED "
                            "concluded null");
    ck_assert(!r.f.pivoted);
    rig_fini(&r);

    for (int api = 0; api < 2; api++) { /* block-job-cancel force=true; job-cancel */
        rig_init(&r, &mirror_drv, 3, NULL);
        run_until(&r, JOB_STATUS_READY);
        verb(job_cancel(r.j, true, api == 0, &e), &e, NULL);
        run_all(&r);
        ck_assert_str_eq(r.log, "created running ready READY aborting CANCELLED concluded "
                                "null");
        rig_fini(&r);
    }

    rig_init(&r, &mirror_drv, 3, NULL);
    evq_step(&r.q, 1500000);
    verb(job_cancel(r.j, false, true, &e), &e, NULL); /* before ready: forced */
    run_all(&r);
    ck_assert_str_eq(r.log, "created running aborting CANCELLED concluded null");
    rig_fini(&r);
}
END_TEST

/* Sequences 7 and 8 and section 10.7: report fails the job; stop pauses it
 * with io-status set until a resume retries; ignore goes on; enospc stops
 * on ENOSPC only. */
START_TEST(test_job_error_policies)
{
    struct err e = { .file = NULL };
    struct rig r;
    rig_init(&r, &backup_drv, 4, NULL);
    r.f.fail_at = 1;
    r.f.fail_err = -EIO;
    r.f.policy = JOB_ON_ERR_REPORT;
    run_all(&r);
    ck_assert_str_eq(r.log, "created running ERROR:write:report aborting "
                            "COMPLETED:Input/output error concluded null");
    rig_fini(&r);

    rig_init(&r, &backup_drv, 4, NULL);
    r.f.fail_at = 1;
    r.f.fail_err = -EIO;
    r.f.policy = JOB_ON_ERR_STOP;
    run_until(&r, JOB_STATUS_PAUSED);
    ck_assert_str_eq(r.log, "created running ERROR:write:stop paused");
    ck_assert_int_eq(r.j->io_status, JOB_IO_FAILED);
    ck_assert(r.j->user_paused);
    run_all(&r); /* stays paused */
    ck_assert_int_eq(r.j->status, JOB_STATUS_PAUSED);
    verb(job_user_resume(r.j, &e), &e, NULL);
    ck_assert_int_eq(r.j->io_status, JOB_IO_OK);
    run_all(&r);
    ck_assert_str_eq(r.log, "created running ERROR:write:stop paused running waiting pending "
                            "COMPLETED concluded null");
    rig_fini(&r);

    rig_init(&r, &backup_drv, 4, NULL);
    r.f.fail_at = 2;
    r.f.fail_err = -EIO;
    r.f.policy = JOB_ON_ERR_IGNORE;
    run_all(&r);
    ck_assert_str_eq(r.log, "created running ERROR:write:ignore waiting pending COMPLETED "
                            "concluded null");
    rig_fini(&r);

    static const int errs[] = { -ENOSPC, -EIO };
    for (unsigned k = 0; k < 2; k++) {
        rig_init(&r, &backup_drv, 4, NULL);
        r.f.fail_at = 0;
        r.f.fail_err = errs[k];
        r.f.policy = JOB_ON_ERR_ENOSPC;
        run_until(&r, JOB_STATUS_PAUSED);
        if (k == 0) {
            ck_assert_str_eq(r.log, "created running ERROR:write:stop paused");
            ck_assert_int_eq(r.j->io_status, JOB_IO_NOSPACE);
        } else {
            ck_assert_str_eq(r.log, "created running ERROR:write:report aborting "
                                    "COMPLETED:Input/output error concluded null");
        }
        rig_fini(&r);
    }

    /* stop in ready: standby; complete is accepted while stopped and acts
     * after the resume; READY is not sent again. */
    rig_init(&r, &mirror_drv, 2, NULL);
    run_until(&r, JOB_STATUS_READY);
    verb(job_user_pause(r.j, &e), &e, NULL);
    run_until(&r, JOB_STATUS_STANDBY);
    verb(job_complete(r.j, &e), &e, NULL);
    run_all(&r);
    ck_assert_int_eq(r.j->status, JOB_STATUS_STANDBY);
    verb(job_user_resume(r.j, &e), &e, NULL);
    run_all(&r);
    ck_assert_str_eq(r.log, "created running ready READY standby ready waiting pending "
                            "COMPLETED concluded null");
    ck_assert(r.f.pivoted);
    rig_fini(&r);
}
END_TEST

/* Sequence 9: manual finalize and dismiss; cancel in pending is CANCELLED
 * with offset = len. */
START_TEST(test_job_manual_finalize_dismiss)
{
    struct err e = { .file = NULL };
    struct job_opts o = { .auto_finalize = false, .auto_dismiss = false };
    struct rig r;
    rig_init(&r, &backup_drv, 2, &o);
    run_all(&r);
    ck_assert_str_eq(r.log, "created running waiting pending PENDING");
    /* Sequence 10: wrong-state verbs in pending, no event. */
    verb(job_dismiss(r.j, &e), &e, "Job 'bk' in state 'pending' cannot accept command verb "
                                   "'dismiss'");
    verb(job_set_speed(r.j, 5, &e), &e, "Job 'bk' in state 'pending' cannot accept command "
                                        "verb 'set-speed'");
    verb(job_user_pause(r.j, &e), &e, "Job 'bk' in state 'pending' cannot accept command "
                                      "verb 'pause'");
    verb(job_finalize(r.j, &e), &e, NULL);
    ck_assert_str_eq(r.log, "created running waiting pending PENDING COMPLETED concluded");
    verb(job_cancel(r.j, true, false, &e), &e, "Job 'bk' in state 'concluded' cannot accept "
                                               "command verb 'cancel'");
    verb(job_finalize(r.j, &e), &e, "Job 'bk' in state 'concluded' cannot accept command "
                                    "verb 'finalize'");
    verb(job_dismiss(r.j, &e), &e, NULL);
    ck_assert_str_eq(r.log, "created running waiting pending PENDING COMPLETED concluded "
                            "null");
    ck_assert_ptr_null(job_find(&r.l, "bk"));
    rig_fini(&r);

    rig_init(&r, &backup_drv, 2, &o);
    run_all(&r);
    verb(job_cancel(r.j, false, true, &e), &e, NULL);
    ck_assert_uint_eq(r.j->offset, r.j->len);
    ck_assert_str_eq(r.log, "created running waiting pending PENDING aborting CANCELLED "
                            "concluded");
    verb(job_dismiss(r.j, &e), &e, NULL);
    rig_fini(&r);

    /* auto-finalize=off does not hold a failing job in pending. */
    rig_init(&r, &backup_drv, 2, &o);
    r.f.fail_at = 0;
    r.f.fail_err = -EIO;
    run_all(&r);
    ck_assert_str_eq(r.log, "created running ERROR:write:report aborting "
                            "COMPLETED:Input/output error concluded");
    verb(job_dismiss(r.j, &e), &e, NULL);
    rig_fini(&r);
}
END_TEST

/* Section 10.3's extra checks, in QEMU's words and order. */
START_TEST(test_job_verb_refusals)
{
    struct err e = { .file = NULL };
    struct rig r;
    rig_init(&r, &backup_drv, 8, NULL);
    verb(job_complete(r.j, &e), &e, "Job 'bk' in state 'running' cannot accept command verb "
                                    "'complete'");
    verb(job_finalize(r.j, &e), &e, "Job 'bk' in state 'running' cannot accept command verb "
                                    "'finalize'");
    verb(job_user_resume(r.j, &e), &e, "Can't resume a job that was not paused");
    verb(job_user_pause(r.j, &e), &e, NULL);
    verb(job_user_pause(r.j, &e), &e, "Job is already paused");
    run_until(&r, JOB_STATUS_PAUSED);
    verb(job_cancel(r.j, false, true, &e), &e, "The block job for device 'bk' is currently "
                                               "paused");
    verb(job_set_speed(r.j, -1, &e), &e, "Parameter 'speed' expects a non-negative value");
    /* job-cancel: forced, resumes it first. */
    verb(job_cancel(r.j, true, false, &e), &e, NULL);
    run_all(&r);
    ck_assert_str_eq(r.log, "created running paused running aborting CANCELLED concluded "
                            "null");
    rig_fini(&r);

    /* Creation: ids, duplicates, a negative speed (created, then null). */
    rig_init(&r, &backup_drv, 8, NULL);
    struct job *other;
    struct job_opts o = { .auto_finalize = true, .auto_dismiss = true };
    verb(job_create(&r.l, "1bad", &backup_drv, NULL, &o, &e, &other), &e,
         "Invalid job ID '1bad'");
    verb(job_create(&r.l, "a b", &backup_drv, NULL, &o, &e, &other), &e,
         "Invalid job ID 'a b'");
    verb(job_create(&r.l, "bk", &backup_drv, NULL, &o, &e, &other), &e,
         "Job ID 'bk' already in use");
    r.log[0] = '\0';
    o.speed = -5;
    verb(job_create(&r.l, "neg", &backup_drv, NULL, &o, &e, &other), &e,
         "Parameter 'speed' expects a non-negative value");
    rig_fini(&r);
}
END_TEST

/* Rate limit (10.8): 100 ms slices, bursts paid back; set-speed to 0 wakes
 * a sleeping job at once. */
START_TEST(test_job_rate_limit)
{
    struct err e = { .file = NULL };
    struct job_opts o = { .auto_finalize = true, .auto_dismiss = true, .speed = 1 << 20 };
    struct rig r;
    rig_init(&r, &backup_drv, 32, &o); /* 2 MiB at 1 MiB/s */
    run_all(&r);
    ck_assert_str_eq(r.log, "created running waiting pending COMPLETED concluded null");
    uint64_t limited = r.q.now_ns;
    ck_assert_uint_ge(limited, 1800000000ull); /* about 2 s, not 32 ms */
    ck_assert_uint_le(limited, 2200000000ull);
    rig_fini(&r);

    rig_init(&r, &backup_drv, 32, &o);
    evq_step(&r.q, 500000000);
    while (r.j->wait != JOB_WAIT_SLEEP) {
        ck_assert(evq_step(&r.q, UINT64_MAX));
    }
    verb(job_set_speed(r.j, 0, &e), &e, NULL);
    run_all(&r);
    ck_assert_uint_lt(r.q.now_ns, 1000000000ull);
    rig_fini(&r);
}
END_TEST

/* A pause in created holds the job at its first pause point; the table's
 * transitions hold at every step (job_check). */
START_TEST(test_job_pause_before_start)
{
    struct err e = { .file = NULL };
    struct rig r;
    memset(&r, 0, sizeof(r));
    evq_init(&r.q);
    job_list_init(&r.l, evq_timer(&r.q), on_event, &r);
    r.f = (struct fake){ .total = 2, .fail_at = -1 };
    struct job_opts o = { .auto_finalize = true, .auto_dismiss = true };
    ck_assert_int_eq(job_create(&r.l, "bk", &backup_drv, &r.f, &o, &e, &r.j), 0);
    r.j->len = 2 * CHUNK;
    verb(job_user_pause(r.j, &e), &e, NULL);
    job_start(r.j);
    run_all(&r);
    ck_assert_str_eq(r.log, "created running paused");
    verb(job_user_resume(r.j, &e), &e, NULL);
    run_all(&r);
    ck_assert_str_eq(r.log, "created running paused running waiting pending COMPLETED "
                            "concluded null");
    rig_fini(&r);
    /* A job cancelled before it started goes at once, even without
     * auto-dismiss. */
    memset(&r, 0, sizeof(r));
    evq_init(&r.q);
    job_list_init(&r.l, evq_timer(&r.q), on_event, &r);
    o.auto_dismiss = false;
    ck_assert_int_eq(job_create(&r.l, "bk", &backup_drv, &r.f, &o, &e, &r.j), 0);
    verb(job_cancel(r.j, false, true, &e), &e, NULL);
    ck_assert_str_eq(r.log, "created aborting CANCELLED concluded null");
    ck_assert(!job_transition_ok(JOB_STATUS_PAUSED, JOB_STATUS_READY));
    ck_assert(!job_transition_ok(JOB_STATUS_STANDBY, JOB_STATUS_RUNNING));
    ck_assert(!job_transition_ok(JOB_STATUS_CONCLUDED, JOB_STATUS_RUNNING));
    ck_assert(job_verb_ok(JOB_STATUS_STANDBY, JOB_VERB_COMPLETE));
    ck_assert(!job_verb_ok(JOB_STATUS_WAITING, JOB_VERB_PAUSE));
    rig_fini(&r);
}
END_TEST

/* A forced cancel of a job whose I/O is in flight waits for it before the
 * abort path runs (the driver's busy hook), as QEMU's jobs do. */
START_TEST(test_job_cancel_waits_for_io)
{
    struct err e = { .file = NULL };
    struct rig r;
    rig_init(&r, &async_drv, 8, NULL);
    r.f.async = true;
    evq_step(&r.q, 1500000); /* a chunk in flight */
    ck_assert_uint_eq(r.f.inflight, 1);
    verb(job_cancel(r.j, true, false, &e), &e, NULL);
    run_all(&r);
    ck_assert(r.f.aborted);
    ck_assert_str_eq(r.log, "created running aborting CANCELLED concluded null");
    rig_fini(&r);
}
END_TEST

Suite *suite_job(void)
{
    const TTest *tests[] = {
        test_job_backup_success_and_cancel,
        test_job_mirror_complete_and_cancels,
        test_job_error_policies,
        test_job_manual_finalize_dismiss,
        test_job_verb_refusals,
        test_job_rate_limit,
        test_job_pause_before_start,
        test_job_cancel_waits_for_io,
    };
    return tl_suite("job", tests, ARRAY_LEN(tests));
}
