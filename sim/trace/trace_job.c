/*
 * trace_job: the `job` record (trace.h's grammar): parse, print, compare.
 *
 * Method: the operation word picks which options are allowed; options are
 *   KEY=VALUE in any order, each at most once; the canonical form prints
 *   them in one fixed order, defaults left out.
 */
#include <stdio.h>
#include <string.h>

#include "trace_int.h"

static const char *const op_names[TRACE_JOB__COUNT] = {
    "backup", "mirror",   "commit",  "pause",     "resume", "complete",
    "finalize", "dismiss", "cancel", "set-speed", "wait",
};
static const char *const sync_names[TRACE_SYNC__COUNT] = {
    "full", "top", "none", "incremental", "bitmap",
};
static const char *const bmode_names[TRACE_BMODE__COUNT] = { "on-success", "never",
                                                             "always" };
static const char *const copy_names[TRACE_COPY__COUNT] = { "background", "write-blocking" };
static const char *const policy_names[TRACE_POL__COUNT] = {
    "report", "ignore", "stop", "enospc", "auto",
};
static const char *const state_names[TRACE_WAIT__COUNT] = { "ready", "pending", "concluded" };

const char *trace_job_op_name(enum trace_job_op op)
{
    ASSERT(op < TRACE_JOB__COUNT);
    return op_names[op];
}

const char *trace_job_sync_name(enum trace_job_sync s)
{
    ASSERT(s < TRACE_SYNC__COUNT);
    return sync_names[s];
}

const char *trace_policy_name(enum trace_policy p)
{
    ASSERT(p < TRACE_POL__COUNT);
    return policy_names[p];
}

const char *trace_job_state_name(enum trace_job_state s)
{
    ASSERT(s < TRACE_WAIT__COUNT);
    return state_names[s];
}

static int enum_value(const struct fields *f, unsigned i, const char *key, const char *val,
                      const char *const *names, unsigned n, unsigned *out, struct err *e)
{
    int k = trace__word_index(val, names, n);
    if (k < 0) {
        char list[128];
        trace__names_list(names, n, list, sizeof(list));
        return err_set(e, 0, f->first + i, "%s: expected %s, got '%s'", key, list, val);
    }
    *out = (unsigned)k;
    return 0;
}

static int on_off(const struct fields *f, unsigned i, const char *key, const char *val,
                  bool *out, struct err *e)
{
    if (strcmp(val, "on") != 0 && strcmp(val, "off") != 0) {
        return err_set(e, 0, f->first + i, "%s: expected on or off, got '%s'", key, val);
    }
    *out = strcmp(val, "on") == 0;
    return 0;
}

/* Which options each creating operation takes. */
enum {
    O_TARGET = 1u << 0, O_SYNC = 1u << 1, O_BITMAP = 1u << 2, O_BMODE = 1u << 3,
    O_SPEED = 1u << 4, O_CLUSTER = 1u << 5, O_GRAN = 1u << 6, O_BUF = 1u << 7,
    O_COPY = 1u << 8, O_SRCERR = 1u << 9, O_TGTERR = 1u << 10, O_AF = 1u << 11,
    O_AD = 1u << 12,
};

static const unsigned op_options[TRACE_JOB__COUNT] = {
    [TRACE_JOB_BACKUP] = O_TARGET | O_SYNC | O_BITMAP | O_BMODE | O_SPEED | O_CLUSTER |
                         O_SRCERR | O_TGTERR | O_AF | O_AD,
    [TRACE_JOB_MIRROR] = O_TARGET | O_SYNC | O_GRAN | O_BUF | O_COPY | O_SPEED | O_SRCERR |
                         O_TGTERR | O_AF | O_AD,
    [TRACE_JOB_COMMIT] = O_SPEED | O_AF | O_AD,
};

struct opt_info {
    const char *key;
    unsigned bit;
};

static const struct opt_info opts[] = {
    { "target", O_TARGET },     { "sync", O_SYNC },
    { "bitmap", O_BITMAP },     { "bitmap-mode", O_BMODE },
    { "speed", O_SPEED },       { "cluster", O_CLUSTER },
    { "granularity", O_GRAN },  { "buf-size", O_BUF },
    { "copy-mode", O_COPY },    { "on-source-error", O_SRCERR },
    { "on-target-error", O_TGTERR }, { "auto-finalize", O_AF },
    { "auto-dismiss", O_AD },
};

static int size_value(const struct fields *f, unsigned i, const char *key, const char *val,
                      uint64_t *out, bool pow2, struct err *e)
{
    TRY(trace__field_size(f, i, val, out, key, e));
    if (pow2 && (!is_pow2(*out) || *out < 512 || *out > (1ull << 26))) {
        return err_set(e, 0, f->first + i, "%s: expected a power of two in 512..64M, got '%s'",
                       key, val);
    }
    return 0;
}

/* The value @v of option @o (field @i). */
static int job_option_value(struct trace_job *j, const struct fields *f, unsigned i,
                            const struct opt_info *o, const char *v, struct err *e)
{
    unsigned u = 0;
    switch (o->bit) {
    case O_TARGET:
        if (!v[0] || strlen(v) >= sizeof(j->target)) {
            return err_set(e, 0, f->first + i, "bad target disk name '%s'", v);
        }
        memcpy(j->target, v, strlen(v) + 1);
        return 0;
    case O_SYNC:
        TRY(enum_value(f, i, "sync", v, sync_names, j->op == TRACE_JOB_MIRROR ? 2 :
                       TRACE_SYNC__COUNT, &u, e));
        j->sync = (enum trace_job_sync)u;
        j->has_sync = true;
        return 0;
    case O_BITMAP:
        if (!trace_bitmap_name_ok(v, strlen(v))) {
            return err_set(e, 0, f->first + i, "bad bitmap name '%s'", v);
        }
        memcpy(j->bitmap, v, strlen(v) + 1);
        return 0;
    case O_BMODE:
        TRY(enum_value(f, i, "bitmap-mode", v, bmode_names, TRACE_BMODE__COUNT, &u, e));
        j->bitmap_mode = (enum trace_bitmap_mode)u;
        j->has_bitmap_mode = true;
        return 0;
    case O_COPY:
        TRY(enum_value(f, i, "copy-mode", v, copy_names, TRACE_COPY__COUNT, &u, e));
        j->copy_mode = (enum trace_copy_mode)u;
        j->has_copy_mode = true;
        return 0;
    case O_SRCERR:
    case O_TGTERR:
        TRY(enum_value(f, i, o->key, v, policy_names, TRACE_POL__COUNT, &u, e));
        if (o->bit == O_SRCERR) {
            j->on_source_error = (enum trace_policy)u;
            j->has_on_source_error = true;
        } else {
            j->on_target_error = (enum trace_policy)u;
            j->has_on_target_error = true;
        }
        return 0;
    case O_AF:
        j->has_auto_finalize = true;
        return on_off(f, i, o->key, v, &j->auto_finalize, e);
    case O_AD:
        j->has_auto_dismiss = true;
        return on_off(f, i, o->key, v, &j->auto_dismiss, e);
    case O_SPEED:
        j->has_speed = true;
        return size_value(f, i, o->key, v, &j->speed, false, e);
    case O_CLUSTER:
        j->has_cluster = true;
        return size_value(f, i, o->key, v, &j->cluster, true, e);
    case O_GRAN:
        j->has_granularity = true;
        return size_value(f, i, o->key, v, &j->granularity, true, e);
    default:
        j->has_buf_size = true;
        return size_value(f, i, o->key, v, &j->buf_size, false, e);
    }
}

static int job_option(struct trace_job *j, const struct fields *f, unsigned i, unsigned *seen,
                      struct err *e)
{
    const char *w = f->w[i];
    const char *eq = strchr(w, '=');
    size_t klen = eq ? (size_t)(eq - w) : strlen(w);
    const struct opt_info *o = NULL;
    for (size_t k = 0; k < ARRAY_LEN(opts); k++) {
        if (strlen(opts[k].key) == klen && strncmp(w, opts[k].key, klen) == 0) {
            o = &opts[k];
        }
    }
    if (!o || !eq || !(op_options[j->op] & o->bit)) {
        return err_set(e, 0, f->first + i, "unknown option '%s' for 'job %s'", w,
                       op_names[j->op]);
    }
    if (*seen & o->bit) {
        return err_set(e, 0, f->first + i, "'%.*s' given twice", (int)klen, w);
    }
    *seen |= o->bit;
    return job_option_value(j, f, i, o, eq + 1, e);
}

static int job_id(struct trace_job *j, const struct fields *f, unsigned i, struct err *e)
{
    const char *w = f->w[i];
    size_t n = strlen(w);
    bool ok = n > 0 && n < sizeof(j->id) && strchr(w, '=') == NULL;
    if (!ok) {
        return err_set(e, 0, f->first + i, "bad job id '%s' (1 to %zu characters, no '=')", w,
                       sizeof(j->id) - 1);
    }
    memcpy(j->id, w, n + 1);
    return 0;
}

static int job_create_options(struct trace_job *j, const struct fields *f, struct err *e)
{
    unsigned seen = 0;
    for (unsigned i = 3; i < f->n; i++) {
        TRY(job_option(j, f, i, &seen, e));
    }
    if (j->op != TRACE_JOB_COMMIT && !(seen & O_TARGET)) {
        return err_set(e, 0, f->first + 1, "'job %s' needs target=DISK", op_names[j->op]);
    }
    if (j->op == TRACE_JOB_BACKUP && !(seen & O_SYNC)) {
        return err_set(e, 0, f->first + 1, "'job backup' needs sync=MODE");
    }
    return 0;
}

int trace__parse_job(struct trace_rec *r, const struct fields *f, struct err *e)
{
    TRY(trace__want_fields(f, 3, TRACE_FIELDS_MAX, e));
    int op = trace__word_index(f->w[1], op_names, TRACE_JOB__COUNT);
    if (op < 0) {
        char list[160];
        trace__names_list(op_names, TRACE_JOB__COUNT, list, sizeof(list));
        return err_set(e, 0, f->first + 1, "unknown job operation '%s' (%s)", f->w[1], list);
    }
    struct trace_job *j = r->job = mem_alloc(sizeof(*j));
    j->op = (enum trace_job_op)op;
    j->auto_finalize = j->auto_dismiss = true;
    TRY(job_id(j, f, 2, e));
    switch (j->op) {
    case TRACE_JOB_BACKUP:
    case TRACE_JOB_MIRROR:
    case TRACE_JOB_COMMIT:
        return job_create_options(j, f, e);
    case TRACE_JOB_CANCEL:
        TRY(trace__want_fields(f, 3, 4, e));
        if (f->n == 4 && strcmp(f->w[3], "force") != 0) {
            return err_set(e, 0, f->first + 3, "expected 'force', got '%s'", f->w[3]);
        }
        j->force = f->n == 4;
        return 0;
    case TRACE_JOB_SET_SPEED:
        TRY(trace__want_fields(f, 4, 4, e));
        j->has_speed = true;
        return trace__field_size(f, 3, f->w[3], &j->speed, "speed", e);
    case TRACE_JOB_WAIT: {
        TRY(trace__want_fields(f, 4, 4, e));
        unsigned u = 0;
        TRY(enum_value(f, 3, "job wait", f->w[3], state_names, TRACE_WAIT__COUNT, &u, e));
        j->state = (enum trace_job_state)u;
        return 0;
    }
    default:
        return trace__want_fields(f, 3, 3, e);
    }
}

static void cat_word(char *buf, size_t size, const char *key, const char *val)
{
    trace__cat(buf, size, " ");
    trace__cat(buf, size, key);
    trace__cat(buf, size, "=");
    trace__cat(buf, size, val);
}

void trace__print_job(const struct trace_rec *r, char *buf, size_t size)
{
    const struct trace_job *j = r->job;
    snprintf(buf, size, "job %s %s", op_names[j->op], j->id);
    switch (j->op) {
    case TRACE_JOB_CANCEL:
        trace__cat(buf, size, j->force ? " force" : "");
        return;
    case TRACE_JOB_SET_SPEED: {
        char num[32];
        trace__fmt_size(num, sizeof(num), j->speed);
        trace__cat(buf, size, " ");
        trace__cat(buf, size, num);
        return;
    }
    case TRACE_JOB_WAIT:
        trace__cat(buf, size, " ");
        trace__cat(buf, size, state_names[j->state]);
        return;
    default:
        break;
    }
    if (j->target[0]) {
        cat_word(buf, size, "target", j->target);
    }
    if (j->has_sync) {
        cat_word(buf, size, "sync", sync_names[j->sync]);
    }
    if (j->bitmap[0]) {
        cat_word(buf, size, "bitmap", j->bitmap);
    }
    if (j->has_bitmap_mode) {
        cat_word(buf, size, "bitmap-mode", bmode_names[j->bitmap_mode]);
    }
    if (j->has_granularity) {
        trace__cat_kv(buf, size, "granularity", j->granularity, trace__fmt_size);
    }
    if (j->has_buf_size) {
        trace__cat_kv(buf, size, "buf-size", j->buf_size, trace__fmt_size);
    }
    if (j->has_copy_mode) {
        cat_word(buf, size, "copy-mode", copy_names[j->copy_mode]);
    }
    if (j->has_speed) {
        trace__cat_kv(buf, size, "speed", j->speed, trace__fmt_size);
    }
    if (j->has_cluster) {
        trace__cat_kv(buf, size, "cluster", j->cluster, trace__fmt_size);
    }
    if (j->has_on_source_error) {
        cat_word(buf, size, "on-source-error", policy_names[j->on_source_error]);
    }
    if (j->has_on_target_error) {
        cat_word(buf, size, "on-target-error", policy_names[j->on_target_error]);
    }
    if (j->has_auto_finalize) {
        cat_word(buf, size, "auto-finalize", j->auto_finalize ? "on" : "off");
    }
    if (j->has_auto_dismiss) {
        cat_word(buf, size, "auto-dismiss", j->auto_dismiss ? "on" : "off");
    }
}

bool trace__job_equal(const struct trace_job *a, const struct trace_job *b)
{
    if (!a || !b) {
        return a == b;
    }
    char pa[512];
    char pb[512];
    struct trace_rec ra = { .kind = TRACE_JOB, .job = (struct trace_job *)a };
    struct trace_rec rb = { .kind = TRACE_JOB, .job = (struct trace_job *)b };
    trace__print_job(&ra, pa, sizeof(pa));
    trace__print_job(&rb, pb, sizeof(pb));
    return strcmp(pa, pb) == 0; /* the canonical form holds every field */
}
