/*
 * trace: see trace.h.
 *
 * Method: each line is cut into fields at blanks (a field starting with '#'
 * ends the line), an optional @TIME field is taken off, and the first word
 * picks a parser from a table. After parsing, the record is printed in
 * canonical form; if that differs from the source line the source text is
 * kept with the record. Printing writes the kept text or the canonical form.
 */
#include "trace.h"
#include "mutant.h"
#include "trace_int.h"

#include <fcntl.h>
#include <inttypes.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* A crash plan names every cache entry of every disk: up to 8 x 4096 fates,
 * run-length coded. */
#define TRACE_LINE_MAX 40960

typedef int rec_parser(struct trace_rec *r, const struct fields *f, struct err *e);
typedef void rec_printer(const struct trace_rec *r, char *buf, size_t size);

struct kind_info {
    const char *word;
    rec_parser *parse;
    rec_printer *print;
    bool timed; /* may carry @TIME */
};

static const struct kind_info *kind_info(enum trace_kind kind);

void trace_init(struct trace *t)
{
    memset(t, 0, sizeof(*t));
}

struct trace_crash_plan *trace_crash_plan_new(void)
{
    return mem_alloc(sizeof(struct trace_crash_plan));
}

void trace_crash_plan_free(struct trace_crash_plan *p)
{
    if (!p) {
        return;
    }
    for (unsigned d = 0; d < p->n_disks; d++) {
        mem_free(p->fates[d], p->n[d] ? p->n[d] : 1);
    }
    mem_free(p, sizeof(*p));
}

static void rec_fini(struct trace_rec *r)
{
    trace_crash_plan_free(r->plan);
    mem_strfree(r->text);
    if (r->cfg) {
        mem_strfree(r->cfg->image);
    }
    mem_free(r->cfg, r->cfg ? sizeof(*r->cfg) : 0);
    mem_free(r->bm, r->bm ? sizeof(*r->bm) : 0);
    mem_free(r->job, r->job ? sizeof(*r->job) : 0);
    mem_strfree(r->mark);
}

void trace_fini(struct trace *t)
{
    for (size_t i = 0; i < t->n; i++) {
        rec_fini(&t->recs[i]);
    }
    mem_free(t->recs, t->cap * sizeof(*t->recs));
    memset(t, 0, sizeof(*t));
}

struct trace_cfg *trace_cfg_new(void)
{
    return mem_alloc(sizeof(struct trace_cfg));
}

struct trace_rec *trace_append(struct trace *t, enum trace_kind kind)
{
    ASSERT(kind < TRACE__COUNT);
    if (t->n == t->cap) {
        size_t cap = t->cap ? 2 * t->cap : 64;
        t->recs = mem_realloc(t->recs, t->cap * sizeof(*t->recs), cap * sizeof(*t->recs));
        t->cap = cap;
    }
    struct trace_rec *r = &t->recs[t->n++];
    memset(r, 0, sizeof(*r));
    r->kind = kind;
    return r;
}

bool trace_kind_is_op(enum trace_kind kind)
{
    return kind == TRACE_READ || kind == TRACE_WRITE || kind == TRACE_FLUSH ||
           kind == TRACE_DISCARD || kind == TRACE_ZERO;
}

/* ---- canonical printing helpers ---- */

#define cat trace__cat
#define cat_kv trace__cat_kv
#define fmt_size trace__fmt_size
#define want_fields trace__want_fields
#define field_size trace__field_size

static void fmt_scaled(char *buf, size_t size, uint64_t v, const char *const *units,
                       const uint64_t *mults, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        if (v != 0 && v % mults[i - 1] == 0) {
            snprintf(buf, size, "%" PRIu64 "%s", v / mults[i - 1], units[i - 1]);
            return;
        }
    }
    snprintf(buf, size, "%" PRIu64 "%s", v, units[0]);
}

static void fmt_duration(char *buf, size_t size, uint64_t ns)
{
    static const char *const units[] = { "ns", "us", "ms", "s" };
    static const uint64_t mults[] = { 1, 1000, 1000000, 1000000000 };
    fmt_scaled(buf, size, ns, units, mults, ARRAY_LEN(units));
}

/* Decimal, without snprintf: the parser prints every record it reads to
 * tell whether the line was canonical, and snprintf was a tenth of loading
 * a trace. */
static void fmt_u64(char *buf, size_t size, uint64_t v)
{
    char num[24];
    char *p = num + sizeof(num);
    *--p = '\0';
    do {
        *--p = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    buf[0] = '\0';
    trace__cat(buf, size, p);
}

void trace__fmt_size(char *buf, size_t size, uint64_t bytes)
{
    static const char *const units[] = { "", "K", "M", "G", "T" };
    static const uint64_t mults[] = { 1, 1ull << 10, 1ull << 20, 1ull << 30, 1ull << 40 };
    fmt_scaled(buf, size, bytes, units, mults, ARRAY_LEN(units));
}

/* Bounded append used by every printer. */
void trace__cat(char *buf, size_t size, const char *text)
{
    size_t at = strnlen(buf, size);
    size_t n = strlen(text);
    if (at + n >= size) {
        n = size - 1 - at;
    }
    memcpy(buf + at, text, n);
    buf[at + n] = '\0';
}

/* Append " KEY=VALUE" with VALUE formatted by @fmt. */
void trace__cat_kv(char *buf, size_t size, const char *key, uint64_t v,
                   void (*fmt)(char *, size_t, uint64_t))
{
    char num[32];
    fmt(num, sizeof(num), v);
    cat(buf, size, " ");
    cat(buf, size, key);
    cat(buf, size, "=");
    cat(buf, size, num);
}

/* ---- per-kind parsers and printers ---- */

int trace__word_index(const char *w, const char *const *names, unsigned n)
{
    for (unsigned i = 0; i < n; i++) {
        if (strcmp(w, names[i]) == 0) {
            return (int)i;
        }
    }
    return -1;
}

void trace__names_list(const char *const *names, unsigned n, char *buf, size_t size)
{
    buf[0] = '\0';
    for (unsigned i = 0; i < n; i++) {
        trace__cat(buf, size, i == 0 ? "" : i + 1 == n ? " or " : ", ");
        trace__cat(buf, size, names[i]);
    }
}

int trace__want_fields(const struct fields *f, unsigned min, unsigned max, struct err *e)
{
    if (f->n < min) {
        return err_set(e, 0, f->first + f->n, "'%s' needs %u more field(s)", f->w[0],
                       min - f->n);
    }
    if (f->n > max && max < TRACE_FIELDS_MAX) { /* f->n never exceeds the array */
        return err_set(e, 0, f->first + max, "unexpected field '%s' after '%s'", f->w[max],
                       f->w[0]);
    }
    return 0;
}

static int field_u64(const struct fields *f, unsigned i, uint64_t *out, const char *what,
                     struct err *e)
{
    if (parse_u64(f->w[i], out) < 0) {
        return err_set(e, 0, f->first + i, "%s: expected an unsigned integer, got '%s'",
                       what, f->w[i]);
    }
    return 0;
}

/* The value after KEY= in field @i. */
static int field_kv_u64(const struct fields *f, unsigned i, const char *val, uint64_t *out,
                        const char *what, struct err *e)
{
    if (parse_u64(val, out) < 0) {
        return err_set(e, 0, f->first + i, "%s: expected an unsigned integer, got '%s'",
                       what, val);
    }
    return 0;
}

int trace__field_size(const struct fields *f, unsigned i, const char *val, uint64_t *out,
                      const char *what, struct err *e)
{
    if (parse_size(val, out) < 0) {
        return err_set(e, 0, f->first + i, "%s: expected a size such as 4096 or 4K, got '%s'",
                       what, val);
    }
    return 0;
}

static int parse_header(struct trace_rec *r, const struct fields *f, struct err *e)
{
    (void)r;
    TRY(want_fields(f, 2, 2, e));
    if (f->w[1][0] != 'v' || parse_u64(f->w[1] + 1, &r->value) < 0) {
        return err_set(e, 0, f->first + 1, "expected a version such as v1, got '%s'",
                       f->w[1]);
    }
    if (r->value != TRACE_VERSION) {
        return err_set(e, 0, f->first + 1, "trace version %s is not supported (this "
                       "blocksim reads v%u)", f->w[1], TRACE_VERSION);
    }
    return 0;
}

static void print_header(const struct trace_rec *r, char *buf, size_t size)
{
    snprintf(buf, size, "%s v%" PRIu64, TRACE_MAGIC, r->value ? r->value : TRACE_VERSION);
}

static int parse_seed(struct trace_rec *r, const struct fields *f, struct err *e)
{
    TRY(want_fields(f, 2, 2, e));
    return field_u64(f, 1, &r->value, "seed", e);
}

static void print_seed(const struct trace_rec *r, char *buf, size_t size)
{
    snprintf(buf, size, "seed %" PRIu64, r->value);
}

static int parse_qd(struct trace_rec *r, const struct fields *f, struct err *e)
{
    TRY(want_fields(f, 2, 2, e));
    TRY(field_u64(f, 1, &r->value, "queue depth", e));
    if (r->value == 0 || r->value > 1024) {
        return err_set(e, 0, f->first + 1, "queue depth must be 1..1024, got %s", f->w[1]);
    }
    return 0;
}

static void print_qd(const struct trace_rec *r, char *buf, size_t size)
{
    snprintf(buf, size, "qd %" PRIu64, r->value);
}

const char *trace_len_problem(enum trace_kind kind, uint64_t len, char *why, size_t size)
{
    bool data = kind == TRACE_READ || kind == TRACE_WRITE;
    uint64_t max = data ? TRACE_IO_LEN_MAX : TRACE_RANGE_LEN_MAX;
    if (len == 0) {
        snprintf(why, size, "length 0: must be at least 512");
    } else if (len % 512) {
        snprintf(why, size, "length %" PRIu64 " is not a multiple of 512", len);
    } else if (len > max) {
        snprintf(why, size, "length %" PRIu64 " is over the %s a %s may span", len,
                 data ? "64M" : "4G-512", data ? "read or write" : "discard or write-zeroes");
    } else {
        return NULL;
    }
    return why;
}

/* After OFFSET LENGTH: fua (write, zero) and pattern=0xNN (write). */
static int range_option(struct trace_rec *r, const struct fields *f, unsigned i, struct err *e)
{
    const char *w = f->w[i];
    bool fua_ok = r->kind == TRACE_WRITE || r->kind == TRACE_ZERO;
    uint64_t v;
    int guest = trace__guest_option(r, f, i, e);
    if (guest != 0) {
        return guest < 0 ? guest : 0;
    }
    if (strncmp(w, "export=", 7) == 0 && r->kind == TRACE_READ && !r->export[0]) {
        size_t n = strlen(w + 7);
        if (n == 0 || n >= sizeof(r->export)) {
            return err_set(e, 0, f->first + i, "export: expected a disk name of 1..%zu "
                           "characters, got '%s'", sizeof(r->export) - 1, w + 7);
        }
        memcpy(r->export, w + 7, n + 1);
        return 0;
    }
    if (strcmp(w, "fua") == 0 && fua_ok && !r->fua) {
        r->fua = true;
        return 0;
    }
    if (strncmp(w, "pattern=", 8) == 0 && r->kind == TRACE_WRITE && !r->has_pattern) {
        if (parse_u64(w + 8, &v) < 0 || v > 0xff) {
            return err_set(e, 0, f->first + i, "pattern: expected a byte such as 0x5a, got "
                           "'%s'", w + 8);
        }
        r->has_pattern = true;
        r->pattern = (uint8_t)v;
        return 0;
    }
    return err_set(e, 0, f->first + i, "expected %sguest=primary|secondary, got '%s'",
                   r->kind == TRACE_WRITE ? "fua, pattern=0xNN or " : fua_ok ? "fua or " :
                   r->kind == TRACE_READ ? "export=DISK or " : "", w);
}

static int parse_range_op(struct trace_rec *r, const struct fields *f, struct err *e)
{
    bool fua_ok = r->kind == TRACE_WRITE || r->kind == TRACE_ZERO;
    TRY(want_fields(f, 3, r->kind == TRACE_WRITE ? 6 : fua_ok ? 5 : 4, e));
    TRY(field_u64(f, 1, &r->offset, "offset", e));
    TRY(field_u64(f, 2, &r->len, "length", e));
    if (r->offset % 512) {
        return err_set(e, 0, f->first + 1, "offset %" PRIu64 " is not a multiple of 512",
                       r->offset);
    }
    char why[128];
    if (trace_len_problem(r->kind, r->len, why, sizeof(why))) {
        return err_set(e, 0, f->first + 2, "%s", why);
    }
    if (r->offset > UINT64_MAX - r->len) {
        return err_set(e, 0, f->first + 1, "offset + length overflows");
    }
    for (unsigned i = 3; i < f->n; i++) {
        TRY(range_option(r, f, i, e));
    }
    return 0;
}

/* " N" in decimal. */
static void cat_u64(char *buf, size_t size, uint64_t v)
{
    char num[24] = " ";
    fmt_u64(num + 1, sizeof(num) - 1, v);
    cat(buf, size, num);
}

static void print_range_op(const struct trace_rec *r, char *buf, size_t size)
{
    buf[0] = '\0';
    cat(buf, size, kind_info(r->kind)->word);
    cat_u64(buf, size, r->offset);
    cat_u64(buf, size, r->len);
    cat(buf, size, r->fua ? " fua" : "");
    if (r->has_pattern) {
        char pat[24];
        snprintf(pat, sizeof(pat), " pattern=0x%02x", r->pattern);
        cat(buf, size, pat);
    }
    cat(buf, size, r->guest ? " guest=secondary" : "");
    if (r->export[0]) {
        cat(buf, size, " export=");
        cat(buf, size, r->export);
    }
}

/* flush [guest=primary|secondary] */
static int parse_flush(struct trace_rec *r, const struct fields *f, struct err *e)
{
    TRY(want_fields(f, 1, 2, e));
    if (f->n == 2) {
        int guest = trace__guest_option(r, f, 1, e);
        if (guest == 0) {
            return err_set(e, 0, f->first + 1, "expected guest=primary|secondary, got '%s'",
                           f->w[1]);
        }
        return guest < 0 ? guest : 0;
    }
    return 0;
}

static void print_flush(const struct trace_rec *r, char *buf, size_t size)
{
    snprintf(buf, size, "flush%s", r->guest ? " guest=secondary" : "");
}

static int parse_bare(struct trace_rec *r, const struct fields *f, struct err *e)
{
    (void)r;
    return want_fields(f, 1, 1, e);
}

static void print_bare(const struct trace_rec *r, char *buf, size_t size)
{
    snprintf(buf, size, "%s", kind_info(r->kind)->word);
}

static int parse_mutant(struct trace_rec *r, const struct fields *f, struct err *e)
{
    TRY(want_fields(f, 2, 2, e));
    struct mutant m;
    if (mutant_find(f->w[1], strlen(f->w[1]), &m) < 0) {
        return err_set(e, 0, f->first + 1, "unknown mutant '%s' (see blocksim replay --help)",
                       f->w[1]);
    }
    r->value = m.index;
    return 0;
}

static void print_mutant(const struct trace_rec *r, char *buf, size_t size)
{
    ASSERT(r->value < mutant_count());
    snprintf(buf, size, "mutant %s", mutant_get(r->value).name);
}

void trace_print_repro(const struct trace *t, const char *comment, uint64_t node_mutants,
                       unsigned disk_mutants, FILE *out)
{
    ASSERT(t->n > 0 && t->recs[0].kind == TRACE_HEADER);
    fprintf(out, "%s v%" PRIu64 "\n", TRACE_MAGIC, t->recs[0].value);
    for (const char *at = comment; at && *at;) {
        const char *nl = strchr(at, '\n');
        int n = nl ? (int)(nl - at) : (int)strlen(at);
        fprintf(out, "# %.*s\n", n, at);
        at += n + (nl != NULL);
    }
    /* The planted bugs a failure needs travel with it: the file alone fails. */
    for (size_t i = 0; i < mutant_count(); i++) {
        struct mutant m = mutant_get(i);
        bool planted = (m.node & node_mutants) || (m.disk & disk_mutants);
        if (planted && !trace_has_mutant(t, i)) {
            fprintf(out, "mutant %s\n", m.name);
        }
    }
    struct trace rest = *t;
    rest.recs = t->recs + 1;
    rest.n = t->n - 1;
    trace_print_canonical(&rest, out);
}

bool trace_has_mutant(const struct trace *t, size_t index)
{
    for (size_t i = 0; i < t->n; i++) {
        if (t->recs[i].kind == TRACE_MUTANT && t->recs[i].value == index) {
            return true;
        }
    }
    return false;
}

/* plan=F/F..: one fate string per disk; a fate may carry a repeat count
 * ("k12-3t" is twelve kept, three dropped, one torn). */
static int crash_plan_fates(struct trace_crash_plan *p, const struct fields *f, unsigned i,
                            const char *val, struct err *e)
{
    uint8_t *fates = mem_alloc(TRACE_PLAN_ENTRIES);
    int ret = 0;
    for (const char *at = val;;) {
        size_t n = 0;
        while (*at && *at != '/' && ret == 0) {
            const char *fate = strchr("-kt", *at);
            uint64_t count = 1;
            const char *num = ++at;
            while (*at >= '0' && *at <= '9' && count <= TRACE_PLAN_ENTRIES) {
                uint64_t digit = (uint64_t)(*at - '0');
                count = (at == num ? 0 : count * 10) + digit;
                at++;
            }
            if (!fate || count == 0 || count > TRACE_PLAN_ENTRIES - n) {
                ret = err_set(e, 0, f->first + i, "plan: expected fates k (keep), - (drop), "
                              "t (tear) with repeat counts, at most %d a disk",
                              TRACE_PLAN_ENTRIES);
                break;
            }
            memset(fates + n, (int)(fate - "-kt"), count);
            n += count;
        }
        if (ret == 0 && p->n_disks == TRACE_PLAN_DISKS) {
            ret = err_set(e, 0, f->first + i, "plan: at most %d disks", TRACE_PLAN_DISKS);
        }
        if (ret < 0) {
            break;
        }
        unsigned d = p->n_disks++;
        p->n[d] = (uint32_t)n;
        p->fates[d] = mem_alloc(n ? n : 1);
        memcpy(p->fates[d], fates, n);
        if (*at != '/') {
            break;
        }
        at++;
    }
    mem_free(fates, TRACE_PLAN_ENTRIES);
    return ret;
}

/* host=NAME on a crash, restart, shutdown or replication record. */
int trace__host_option(struct trace_rec *r, const struct fields *f, unsigned i, struct err *e)
{
    const char *name = f->w[i] + 5;
    size_t n = strlen(name);
    bool ok = n > 0 && n < TRACE_HOST_MAX && !r->host[0];
    for (size_t k = 0; k < n && ok; k++) {
        ok = (name[k] >= 'a' && name[k] <= 'z') || (name[k] >= '0' && name[k] <= '9') ||
             name[k] == '-';
    }
    if (!ok) {
        return err_set(e, 0, f->first + i, "host: expected one name of a-z 0-9 -, at most %d "
                       "characters, got '%s'", TRACE_HOST_MAX - 1, name);
    }
    memcpy(r->host, name, n + 1);
    return 0;
}

static int parse_host_op(struct trace_rec *r, const struct fields *f, struct err *e)
{
    TRY(want_fields(f, 1, 2, e));
    if (f->n == 2 && strncmp(f->w[1], "host=", 5) != 0) {
        return err_set(e, 0, f->first + 1, "expected host=NAME, got '%s'", f->w[1]);
    }
    return f->n == 2 ? trace__host_option(r, f, 1, e) : 0;
}

static int parse_mark(struct trace_rec *r, const struct fields *f, struct err *e)
{
    TRY(want_fields(f, 2, 2, e));
    size_t n = strlen(f->w[1]);
    if (n > TRACE_MARK_MAX || f->w[1][strspn(f->w[1], TRACE_MARK_CHARS)] != '\0') {
        return err_set(e, 0, f->first + 1, "a mark's text is 1..%d of [A-Za-z0-9._:/+=-], "
                       "got '%s'", TRACE_MARK_MAX, f->w[1]);
    }
    r->mark = mem_strdup(f->w[1]);
    return 0;
}

static void print_mark(const struct trace_rec *r, char *buf, size_t size)
{
    snprintf(buf, size, "mark %s", r->mark);
}

static void print_host_op(const struct trace_rec *r, char *buf, size_t size)
{
    snprintf(buf, size, "%s", kind_info(r->kind)->word);
    if (r->host[0]) {
        cat(buf, size, " host=");
        cat(buf, size, r->host);
    }
}

static int crash_option(struct trace_rec *r, const struct fields *f, unsigned i,
                        struct err *e)
{
    const char *w = f->w[i];
    if (strncmp(w, "host=", 5) == 0) {
        return trace__host_option(r, f, i, e);
    }
    if (strncmp(w, "mode=", 5) == 0) {
        if (disk_crash_mode_parse(w + 5, &r->mode) < 0) {
            return err_set(e, 0, f->first + i, "expected mode=prefix, mode=subset or "
                           "mode=tear, got '%s'", w);
        }
        r->has_mode = true;
        return 0;
    }
    r->plan = r->plan ? r->plan : trace_crash_plan_new();
    if (strncmp(w, "at-flush=", 9) == 0) {
        TRY(field_kv_u64(f, i, w + 9, &r->plan->at_flush, "at-flush", e));
        if (r->plan->at_flush == 0) {
            return err_set(e, 0, f->first + i, "at-flush counts from 1");
        }
        return 0;
    }
    if (strncmp(w, "tear-seed=", 10) == 0) {
        return field_kv_u64(f, i, w + 10, &r->plan->tear_seed, "tear-seed", e);
    }
    if (strncmp(w, "plan=", 5) == 0 && r->plan->n_disks == 0) {
        return crash_plan_fates(r->plan, f, i, w + 5, e);
    }
    return err_set(e, 0, f->first + i, "unknown crash option '%s' (mode=, at-flush=, plan=, "
                   "tear-seed=)", w);
}

static int parse_crash(struct trace_rec *r, const struct fields *f, struct err *e)
{
    TRY(want_fields(f, 1, 6, e));
    for (unsigned i = 1; i < f->n; i++) {
        TRY(crash_option(r, f, i, e));
    }
    const struct trace_crash_plan *p = r->plan;
    if (p && p->at_flush == 0 && p->n_disks == 0 && p->tear_seed == 0) {
        trace_crash_plan_free(r->plan); /* 'tear-seed=0' alone: no plan, as printed */
        r->plan = NULL;
    }
    return 0;
}

static void print_crash(const struct trace_rec *r, char *buf, size_t size)
{
    snprintf(buf, size, "crash%s%s", r->has_mode ? " mode=" : "",
             r->has_mode ? disk_crash_mode_name(r->mode) : "");
    if (r->host[0]) {
        cat(buf, size, " host=");
        cat(buf, size, r->host);
    }
    const struct trace_crash_plan *p = r->plan;
    if (!p) {
        return;
    }
    if (p->at_flush) {
        cat_kv(buf, size, "at-flush", p->at_flush, fmt_u64);
    }
    if (p->n_disks) {
        cat(buf, size, " plan=");
        for (unsigned d = 0; d < p->n_disks; d++) {
            cat(buf, size, d ? "/" : "");
            for (uint32_t k = 0; k < p->n[d];) {
                uint32_t run = 1;
                while (k + run < p->n[d] && p->fates[d][k + run] == p->fates[d][k]) {
                    run++;
                }
                char one[16];
                snprintf(one, sizeof(one), run > 1 ? "%c%" PRIu32 : "%c", "-kt"[p->fates[d][k]],
                         run);
                cat(buf, size, one);
                k += run;
            }
        }
    }
    if (p->tear_seed) {
        cat_kv(buf, size, "tear-seed", p->tear_seed, fmt_u64);
    }
}

static const char *const expect_words[] = { "verdict", "digest", "content" };

static int parse_expect(struct trace_rec *r, const struct fields *f, struct err *e)
{
    TRY(want_fields(f, 3, 3, e));
    unsigned which = 0;
    while (which < ARRAY_LEN(expect_words) && strcmp(f->w[1], expect_words[which]) != 0) {
        which++;
    }
    if (which == ARRAY_LEN(expect_words)) {
        return err_set(e, 0, f->first + 1, "expected verdict, digest or content, got '%s'",
                       f->w[1]);
    }
    r->expect = (enum trace_expect)which;
    if (r->expect == TRACE_EXPECT_VERDICT) {
        if (strcmp(f->w[2], "pass") && strcmp(f->w[2], "fail")) {
            return err_set(e, 0, f->first + 2, "expected pass or fail, got '%s'", f->w[2]);
        }
        r->value = strcmp(f->w[2], "pass") == 0;
        return 0;
    }
    char hex[24];
    if (strlen(f->w[2]) != 16 || (snprintf(hex, sizeof(hex), "0x%s", f->w[2]),
                                  parse_u64(hex, &r->value) < 0)) {
        return err_set(e, 0, f->first + 2, "expected 16 hex digits, got '%s'", f->w[2]);
    }
    return 0;
}

static void print_expect(const struct trace_rec *r, char *buf, size_t size)
{
    if (r->expect == TRACE_EXPECT_VERDICT) {
        snprintf(buf, size, "expect verdict %s", r->value ? "pass" : "fail");
    } else {
        snprintf(buf, size, "expect %s %016" PRIx64, expect_words[r->expect], r->value);
    }
}

static int parse_fault(struct trace_rec *r, const struct fields *f, struct err *e)
{
    TRY(want_fields(f, 2, TRACE_FIELDS_MAX, e));
    char text[TRACE_LINE_MAX] = "";
    for (unsigned i = 1; i < f->n; i++) {
        cat(text, sizeof(text), f->w[i]);
        cat(text, sizeof(text), i + 1 < f->n ? " " : "");
    }
    r->cfg = trace_cfg_new();
    struct err sub = { .file = NULL };
    if (fault_rule_parse(text, &r->cfg->fault, &sub) < 0) {
        return err_set(e, 0, f->first + (sub.field ? sub.field : 1), "%s", sub.msg);
    }
    return 0;
}

static void print_fault(const struct trace_rec *r, char *buf, size_t size)
{
    char text[TRACE_LINE_MAX];
    fault_rule_format(&r->cfg->fault, text, sizeof(text));
    snprintf(buf, size, "fault %s", text);
}

const char *trace_topology_name(enum trace_topology t)
{
    static const char *const names[] = { "plain", "overlay", "quorum", "colo" };
    return (unsigned)t < ARRAY_LEN(names) ? names[t] : "?";
}

/* A small count option of the quorum topology: KEY=N with N in [lo, hi]. */
static int topo_count(const struct fields *f, unsigned i, const char *val, unsigned lo,
                      unsigned hi, unsigned *out, struct err *e)
{
    uint64_t v;
    if (parse_u64(val, &v) < 0 || v < lo || v > hi) {
        return err_set(e, 0, f->first + i, "'%s': expected an integer in %u..%u", f->w[i],
                       lo, hi);
    }
    *out = (unsigned)v;
    return 0;
}

static int topology_quorum_opt(struct trace_cfg *c, const struct fields *f, unsigned i,
                               struct err *e)
{
    const char *w = f->w[i];
    unsigned v;
    if (strncmp(w, "children=", 9) == 0) {
        return topo_count(f, i, w + 9, 1, 8, &c->children, e);
    } else if (strncmp(w, "threshold=", 10) == 0) {
        return topo_count(f, i, w + 10, 1, 8, &c->threshold, e);
    } else if (strncmp(w, "nbd=", 4) == 0) {
        return topo_count(f, i, w + 4, 0, 8, &c->nbd, e);
    } else if (strncmp(w, "ignore=", 7) == 0) {
        TRY(topo_count(f, i, w + 7, 0, 7, &v, e));
        c->ignore_mask |= 1u << v;
        return 0;
    } else if (strcmp(w, "read-pattern=quorum") == 0 || strcmp(w, "read-pattern=fifo") == 0) {
        c->fifo = strcmp(w, "read-pattern=fifo") == 0;
        return 0;
    } else if (strcmp(w, "rewrite") == 0) {
        c->rewrite = true;
        return 0;
    }
    return err_set(e, 0, f->first + i, "unknown topology option '%s'", w);
}

/* Defaults filled in and the options checked against each other. */
static int topology_quorum_check(struct trace_cfg *c, const struct fields *f, struct err *e)
{
    c->children = c->children ? c->children : 3;
    c->threshold = c->threshold ? c->threshold : c->children / 2 + 1;
    if (c->threshold > c->children) {
        return err_set(e, 0, f->first + 1, "threshold=%u exceeds children=%u",
                       c->threshold, c->children);
    }
    if (c->nbd > c->children) {
        return err_set(e, 0, f->first + 1, "nbd=%u exceeds children=%u", c->nbd, c->children);
    }
    if (c->ignore_mask >> c->children) {
        return err_set(e, 0, f->first + 1, "ignore= names a child beyond children=%u",
                       c->children);
    }
    return 0;
}

static int parse_topology(struct trace_rec *r, const struct fields *f, struct err *e)
{
    TRY(want_fields(f, 2, TRACE_FIELDS_MAX, e));
    struct trace_cfg *c = r->cfg = trace_cfg_new();
    c->topology = TRACE_TOPO_PLAIN;
    while (c->topology <= TRACE_TOPO_COLO &&
           strcmp(f->w[1], trace_topology_name(c->topology)) != 0) {
        c->topology++;
    }
    if (c->topology > TRACE_TOPO_COLO) {
        return err_set(e, 0, f->first + 1, "unknown topology '%s' (expected plain, overlay, "
                       "quorum or colo)", f->w[1]);
    }
    bool quorum = c->topology == TRACE_TOPO_QUORUM;
    bool colo = c->topology == TRACE_TOPO_COLO;
    for (unsigned i = 2; i < f->n; i++) {
        if (strncmp(f->w[i], "size=", 5) == 0) {
            TRY(field_size(f, i, f->w[i] + 5, &c->size, "size", e));
            c->has_size = c->size > 0 && c->size % 512 == 0;
            if (!c->has_size) {
                return err_set(e, 0, f->first + i, "size must be a positive multiple of 512");
            }
        } else if (strncmp(f->w[i], "cluster=", 8) == 0 && !quorum) {
            TRY(field_size(f, i, f->w[i] + 8, &c->cluster, "cluster", e));
            if (!is_pow2(c->cluster) || c->cluster < 512 || c->cluster > (2u << 20)) {
                return err_set(e, 0, f->first + i, "cluster must be a power of two in 512..2M");
            }
            c->has_cluster = true;
        } else if (quorum) {
            TRY(topology_quorum_opt(c, f, i, e));
        } else if (colo) {
            TRY(trace__topology_colo_opt(c, f, i, e));
        } else {
            return err_set(e, 0, f->first + i, "unknown topology option '%s'", f->w[i]);
        }
    }
    return quorum ? topology_quorum_check(c, f, e) : 0;
}

static void print_topology(const struct trace_rec *r, char *buf, size_t size)
{
    const struct trace_cfg *c = r->cfg;
    snprintf(buf, size, "topology %s", trace_topology_name(c->topology));
    if (c->has_size) {
        cat_kv(buf, size, "size", c->size, fmt_size);
    }
    if (c->has_cluster) {
        cat_kv(buf, size, "cluster", c->cluster, fmt_size);
    }
    if (c->topology == TRACE_TOPO_COLO) {
        trace__print_topology_colo(c, buf, size);
    }
    if (c->topology != TRACE_TOPO_QUORUM) {
        return;
    }
    cat_kv(buf, size, "children", c->children, fmt_u64);
    cat_kv(buf, size, "threshold", c->threshold, fmt_u64);
    cat(buf, size, c->fifo ? " read-pattern=fifo" : "");
    cat(buf, size, c->rewrite ? " rewrite" : "");
    if (c->nbd) {
        cat_kv(buf, size, "nbd", c->nbd, fmt_u64);
    }
    for (unsigned i = 0; i < 8; i++) {
        if (c->ignore_mask & (1u << i)) {
            cat_kv(buf, size, "ignore", i, fmt_u64);
        }
    }
}

static int disk_latency(struct trace_cfg *c, const struct fields *f, unsigned i,
                        const char *val, struct err *e)
{
    const char *dash = strchr(val, '-');
    char lo[32];
    if (!dash || (size_t)(dash - val) >= sizeof(lo)) {
        return err_set(e, 0, f->first + i, "latency: expected MIN-MAX durations such as "
                       "20us-200us");
    }
    memcpy(lo, val, (size_t)(dash - val));
    lo[dash - val] = '\0';
    if (parse_duration(lo, &c->lat_min_ns) < 0 || parse_duration(dash + 1, &c->lat_max_ns) < 0 ||
        c->lat_min_ns > c->lat_max_ns) {
        return err_set(e, 0, f->first + i, "latency: expected MIN-MAX durations with "
                       "MIN <= MAX, got '%s'", val);
    }
    c->has_latency = true;
    return 0;
}

static int disk_option(struct trace_cfg *c, const struct fields *f, unsigned i, struct err *e)
{
    const char *w = f->w[i];
    if (strncmp(w, "size=", 5) == 0) {
        TRY(field_size(f, i, w + 5, &c->size, "size", e));
        c->has_size = true;
        if (c->size == 0 || c->size % 512) {
            return err_set(e, 0, f->first + i, "size must be a positive multiple of 512");
        }
    } else if (strncmp(w, "cache=", 6) == 0) {
        TRY(field_size(f, i, w + 6, &c->cache, "cache", e));
        c->has_cache = true;
    } else if (strncmp(w, "latency=", 8) == 0) {
        TRY(disk_latency(c, f, i, w + 8, e));
    } else if (strncmp(w, "flush=", 6) == 0) {
        if (parse_duration(w + 6, &c->flush_ns) < 0) {
            return err_set(e, 0, f->first + i, "flush: expected a duration, got '%s'", w + 6);
        }
        c->has_flush = true;
    } else if (strcmp(w, "atomic=yes") == 0 || strcmp(w, "atomic=no") == 0) {
        c->atomic = strcmp(w, "atomic=yes") == 0;
        c->has_atomic = true;
    } else if (strncmp(w, "image=", 6) == 0 && w[6] && !c->image) {
        c->image = mem_strdup(w + 6);
    } else if (strncmp(w, "host=", 5) == 0 && w[5] && strlen(w + 5) < sizeof(c->host) &&
               !c->host[0]) {
        memcpy(c->host, w + 5, strlen(w + 5) + 1);
    } else if (strncmp(w, "backing=", 8) == 0 && w[8] && strlen(w + 8) < sizeof(c->backing) &&
               !c->backing[0]) {
        memcpy(c->backing, w + 8, strlen(w + 8) + 1);
    } else {
        return err_set(e, 0, f->first + i, "unknown disk option '%s'", w);
    }
    return 0;
}

static int parse_disk(struct trace_rec *r, const struct fields *f, struct err *e)
{
    TRY(want_fields(f, 2, 10, e));
    struct trace_cfg *c = r->cfg = trace_cfg_new();
    if (strlen(f->w[1]) >= sizeof(c->name) || strchr(f->w[1], '=')) {
        return err_set(e, 0, f->first + 1, "bad disk name '%s'", f->w[1]);
    }
    memcpy(c->name, f->w[1], strlen(f->w[1]) + 1);
    for (unsigned i = 2; i < f->n; i++) {
        TRY(disk_option(c, f, i, e));
    }
    return 0;
}

static void print_disk(const struct trace_rec *r, char *buf, size_t size)
{
    const struct trace_cfg *c = r->cfg;
    snprintf(buf, size, "disk %s", c->name);
    if (c->has_size) {
        cat_kv(buf, size, "size", c->size, fmt_size);
    }
    if (c->has_cache) {
        cat_kv(buf, size, "cache", c->cache, fmt_size);
    }
    if (c->has_latency) {
        char lo[32];
        char hi[32];
        fmt_duration(lo, sizeof(lo), c->lat_min_ns);
        fmt_duration(hi, sizeof(hi), c->lat_max_ns);
        cat(buf, size, " latency=");
        cat(buf, size, lo);
        cat(buf, size, "-");
        cat(buf, size, hi);
    }
    if (c->has_flush) {
        cat_kv(buf, size, "flush", c->flush_ns, fmt_duration);
    }
    if (c->has_atomic) {
        cat(buf, size, c->atomic ? " atomic=yes" : " atomic=no");
    }
    if (c->image) {
        cat(buf, size, " image=");
        cat(buf, size, c->image);
    }
    if (c->host[0]) {
        cat(buf, size, " host=");
        cat(buf, size, c->host);
    }
    if (c->backing[0]) {
        cat(buf, size, " backing=");
        cat(buf, size, c->backing);
    }
}

static const char *const bitmap_ops[TRACE_BM__COUNT] = {
    [TRACE_BM_ADD] = "add",           [TRACE_BM_REMOVE] = "remove",
    [TRACE_BM_CLEAR] = "clear",       [TRACE_BM_ENABLE] = "enable",
    [TRACE_BM_DISABLE] = "disable",   [TRACE_BM_MERGE] = "merge",
    [TRACE_BM_PERSIST] = "persist",   [TRACE_BM_SUCCESSOR] = "successor",
    [TRACE_BM_ABDICATE] = "abdicate", [TRACE_BM_RECLAIM] = "reclaim",
};

const char *trace_bitmap_op_name(enum trace_bitmap_op op)
{
    ASSERT(op < TRACE_BM__COUNT);
    return bitmap_ops[op];
}

struct trace_bitmap *trace_bitmap_new(void)
{
    return mem_alloc(sizeof(struct trace_bitmap));
}

bool trace_bitmap_name_ok(const char *name, size_t n)
{
    bool ok = n > 0 && n < TRACE_BITMAP_NAME_MAX;
    for (size_t k = 0; k < n && ok; k++) {
        char ch = name[k];
        ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
             ch == '.' || ch == '_' || ch == '-';
    }
    return ok;
}

static int bitmap_name(const struct fields *f, unsigned i, char *out, struct err *e)
{
    const char *w = f->w[i];
    size_t n = strlen(w);
    if (!trace_bitmap_name_ok(w, n)) {
        return err_set(e, 0, f->first + i, "bad bitmap name '%s' (1 to %d of A-Z a-z 0-9 . _ -)",
                       w, TRACE_BITMAP_NAME_MAX - 1);
    }
    memcpy(out, w, n + 1);
    return 0;
}

static int bitmap_add_option(struct trace_bitmap *b, const struct fields *f, unsigned i,
                             struct err *e)
{
    const char *w = f->w[i];
    if (strncmp(w, "granularity=", 12) == 0) {
        TRY(field_size(f, i, w + 12, &b->gran, "granularity", e));
        if (!is_pow2(b->gran) || b->gran < 512 || b->gran > (1ull << 31)) {
            return err_set(e, 0, f->first + i, "granularity must be a power of two in "
                           "512..2G, got '%s'", w + 12);
        }
    } else if (strcmp(w, "persistent") == 0) {
        b->persistent = true;
    } else if (strcmp(w, "disabled") == 0) {
        b->disabled = true;
    } else {
        return err_set(e, 0, f->first + i, "unknown bitmap add option '%s' (expected "
                       "granularity=S, persistent or disabled)", w);
    }
    return 0;
}

static int parse_bitmap(struct trace_rec *r, const struct fields *f, struct err *e)
{
    TRY(want_fields(f, 3, 6, e));
    struct trace_bitmap *b = r->bm = trace_bitmap_new();
    unsigned op = 0;
    while (op < TRACE_BM__COUNT && strcmp(f->w[1], bitmap_ops[op]) != 0) {
        op++;
    }
    if (op == TRACE_BM__COUNT) {
        return err_set(e, 0, f->first + 1, "unknown bitmap operation '%s' (add, remove, "
                       "clear, enable, disable, merge, persist, successor, abdicate, "
                       "reclaim)", f->w[1]);
    }
    b->op = (enum trace_bitmap_op)op;
    if (b->op == TRACE_BM_MERGE) {
        TRY(want_fields(f, 4, 4, e));
        TRY(bitmap_name(f, 2, b->src, e));
        return bitmap_name(f, 3, b->name, e);
    }
    TRY(want_fields(f, 3, b->op == TRACE_BM_ADD ? 6 : 3, e));
    TRY(bitmap_name(f, 2, b->name, e));
    for (unsigned i = 3; i < f->n; i++) {
        TRY(bitmap_add_option(b, f, i, e));
    }
    return 0;
}

static void print_bitmap(const struct trace_rec *r, char *buf, size_t size)
{
    const struct trace_bitmap *b = r->bm;
    if (b->op == TRACE_BM_MERGE) {
        snprintf(buf, size, "bitmap merge %s %s", b->src, b->name);
        return;
    }
    snprintf(buf, size, "bitmap %s %s", bitmap_ops[b->op], b->name);
    if (b->gran) {
        cat_kv(buf, size, "granularity", b->gran, fmt_size);
    }
    cat(buf, size, b->persistent ? " persistent" : "");
    cat(buf, size, b->disabled ? " disabled" : "");
}

static void print_blank(const struct trace_rec *r, char *buf, size_t size)
{
    (void)r;
    ASSERT(size > 0);
    buf[0] = '\0';
}

static const struct kind_info kinds[TRACE__COUNT] = {
    [TRACE_HEADER] = { TRACE_MAGIC, parse_header, print_header, false },
    [TRACE_BLANK] = { "", NULL, print_blank, false },
    [TRACE_SEED] = { "seed", parse_seed, print_seed, false },
    [TRACE_TOPOLOGY] = { "topology", parse_topology, print_topology, false },
    [TRACE_DISK] = { "disk", parse_disk, print_disk, false },
    [TRACE_FAULT] = { "fault", parse_fault, print_fault, false },
    [TRACE_QD] = { "qd", parse_qd, print_qd, false },
    [TRACE_READ] = { "read", parse_range_op, print_range_op, true },
    [TRACE_WRITE] = { "write", parse_range_op, print_range_op, true },
    [TRACE_FLUSH] = { "flush", parse_flush, print_flush, true },
    [TRACE_DISCARD] = { "discard", parse_range_op, print_range_op, true },
    [TRACE_ZERO] = { "zero", parse_range_op, print_range_op, true },
    [TRACE_CRASH] = { "crash", parse_crash, print_crash, true },
    [TRACE_RESTART] = { "restart", parse_host_op, print_host_op, true },
    [TRACE_COMMIT] = { "commit", parse_bare, print_bare, false },
    [TRACE_MAKE_EMPTY] = { "make-empty", parse_bare, print_bare, false },
    [TRACE_EXPECT] = { "expect", parse_expect, print_expect, false },
    [TRACE_BUGGIFY] = { "buggify", parse_bare, print_bare, false },
    [TRACE_BITMAP] = { "bitmap", parse_bitmap, print_bitmap, false },
    [TRACE_SHUTDOWN] = { "shutdown", parse_host_op, print_host_op, true },
    [TRACE_MUTANT] = { "mutant", parse_mutant, print_mutant, false },
    [TRACE_JOB] = { "job", trace__parse_job, trace__print_job, false },
    [TRACE_REPLICATION] = { "replication", trace__parse_replication,
                            trace__print_replication, false },
    [TRACE_COLO] = { "colo", trace__parse_colo, trace__print_colo, false },
    [TRACE_MARK] = { "mark", parse_mark, print_mark, false },
};

static const struct kind_info *kind_info(enum trace_kind kind)
{
    ASSERT(kind < TRACE__COUNT);
    return &kinds[kind];
}

const char *trace_kind_name(enum trace_kind kind)
{
    return kind == TRACE_BLANK ? "comment" : kind_info(kind)->word;
}

/* Canonical text of @r into @buf. */
static void rec_canonical(const struct trace_rec *r, char *buf, size_t size)
{
    char body[TRACE_LINE_MAX];
    body[0] = '\0';
    kind_info(r->kind)->print(r, body, sizeof(body));
    if (r->has_at) {
        char at[32];
        fmt_duration(at, sizeof(at), r->at_ns);
        snprintf(buf, size, "@%s %s", at, body);
    } else {
        snprintf(buf, size, "%s", body);
    }
}

/* ---- parsing ---- */

static unsigned split_fields(char *line, struct fields *f)
{
    f->n = 0;
    char *save = NULL;
    for (char *w = strtok_r(line, " \t\r", &save); w; w = strtok_r(NULL, " \t\r", &save)) {
        if (w[0] == '#') {
            break;
        }
        if (f->n == TRACE_FIELDS_MAX) {
            return TRACE_FIELDS_MAX + 1;
        }
        f->w[f->n++] = w;
    }
    return f->n;
}

static int take_at(struct trace_rec *r, struct fields *f, struct err *e)
{
    f->first = 1;
    if (f->n == 0 || f->w[0][0] != '@') {
        return 0;
    }
    if (parse_duration(f->w[0] + 1, &r->at_ns) < 0) {
        return err_set(e, 0, 1, "expected @TIME with a unit (ns, us, ms, s) such as @5ms, "
                       "got '%s'", f->w[0]);
    }
    r->has_at = true;
    memmove(f->w, f->w + 1, (f->n - 1) * sizeof(f->w[0]));
    f->n--;
    f->first = 2;
    if (f->n == 0) {
        return err_set(e, 0, 2, "@TIME needs a record after it");
    }
    return 0;
}

static int lookup_kind(const struct fields *f, bool first_line, enum trace_kind *kind,
                       struct err *e)
{
    if (first_line) {
        if (strcmp(f->w[0], TRACE_MAGIC) != 0) {
            return err_set(e, 0, 1, "not a blocksim trace: the first line must be "
                           "'%s v%u'", TRACE_MAGIC, TRACE_VERSION);
        }
        *kind = TRACE_HEADER;
        return 0;
    }
    for (int k = TRACE_SEED; k < TRACE__COUNT; k++) {
        if (strcmp(f->w[0], kinds[k].word) == 0) {
            *kind = (enum trace_kind)k;
            return 0;
        }
    }
    return err_set(e, 0, f->first, "unknown record '%s'", f->w[0]);
}

/* Parse one line (without its '\n') into a new record. */
static int parse_line(struct trace *t, const char *raw, size_t len, unsigned line_no,
                      struct err *e)
{
    char line[TRACE_LINE_MAX];
    if (len >= sizeof(line)) {
        return err_set(e, line_no, 0, "line longer than %zu bytes", sizeof(line) - 1);
    }
    if (memchr(raw, '\0', len)) {
        return err_set(e, line_no, 0, "line contains a NUL byte");
    }
    memcpy(line, raw, len);
    line[len] = '\0';
    struct fields f;
    struct trace_rec tmp;
    memset(&tmp, 0, sizeof(tmp));
    tmp.line = line_no;
    int ret;
    if (split_fields(line, &f) > TRACE_FIELDS_MAX) {
        ret = err_set(e, line_no, TRACE_FIELDS_MAX + 1, "too many fields");
        goto out_free;
    }
    ret = take_at(&tmp, &f, e);
    if (ret == 0 && (f.n > 0 || line_no == 1)) {
        if (f.n == 0) {
            ret = err_set(e, 1, 0, "not a blocksim trace: the first line is empty");
        } else {
            ret = lookup_kind(&f, line_no == 1, &tmp.kind, e);
        }
        if (ret == 0 && tmp.has_at && !kinds[tmp.kind].timed) {
            ret = err_set(e, line_no, 1, "'%s' cannot carry @TIME", f.w[0]);
        }
        if (ret == 0) {
            ret = kinds[tmp.kind].parse(&tmp, &f, e);
        }
    } else if (ret == 0) {
        tmp.kind = TRACE_BLANK;
    }
    if (ret < 0) {
        if (e) {
            e->line = line_no;
        }
        goto out_free;
    }
    char canon[TRACE_LINE_MAX];
    rec_canonical(&tmp, canon, sizeof(canon));
    if (strlen(canon) != len || memcmp(canon, raw, len) != 0) {
        tmp.text = mem_alloc(len + 1);
        memcpy(tmp.text, raw, len);
    }
    *trace_append(t, tmp.kind) = tmp;
    return 0;
out_free:
    rec_fini(&tmp);
    return ret;
}

int trace_parse(struct trace *t, const char *data, size_t len, struct err *e)
{
    trace_init(t);
    unsigned line_no = 0;
    size_t at = 0;
    if (len == 0) {
        return err_set(e, 1, 0, "empty file: a trace starts with '%s v%u'", TRACE_MAGIC,
                       TRACE_VERSION);
    }
    while (at < len) {
        const char *nl = memchr(data + at, '\n', len - at);
        size_t line_len = nl ? (size_t)(nl - (data + at)) : len - at;
        if (++line_no > 100000000u) {
            trace_fini(t);
            return err_set(e, line_no, 0, "too many lines");
        }
        int ret = parse_line(t, data + at, line_len, line_no, e);
        if (ret < 0) {
            trace_fini(t);
            return ret;
        }
        at += line_len + (nl ? 1 : 0);
        t->no_final_newline = nl == NULL;
    }
    return 0;
}

bool trace_first_line(const char *data, size_t len, char *buf, size_t size)
{
    const char *nl = memchr(data, '\n', len);
    size_t n = nl ? (size_t)(nl - data) : len;
    n -= n > 0 && data[n - 1] == '\r';
    if (n == 0 || n >= size) {
        return false;
    }
    memcpy(buf, data, n);
    buf[n] = '\0';
    return true;
}

int trace_each_line(const char *data, size_t len, size_t max, trace_line_fn *fn, void *ctx,
                    unsigned *lines, struct err *e)
{
    char *buf = mem_alloc(max);
    unsigned no = 0;
    int ret = 0;
    for (size_t at = 0; at < len && ret == 0;) {
        const char *nl = memchr(data + at, '\n', len - at);
        size_t n = nl ? (size_t)(nl - (data + at)) : len - at;
        no++;
        if (n >= max) {
            ret = err_set(e, no, 0, "line longer than %zu bytes", max - 1);
        } else if (memchr(data + at, '\0', n)) {
            ret = err_set(e, no, 0, "line contains a NUL byte");
        } else {
            memcpy(buf, data + at, n);
            buf[n] = '\0';
            ret = fn(ctx, buf, n, no, e);
            if (ret < 0 && e && e->line == 0) {
                e->line = no;
            }
        }
        at += n + (nl != NULL);
    }
    mem_free(buf, max);
    *lines = no;
    return ret < 0 ? BS_EPARSE : 0;
}

/* Read what is left of @fd (a pipe, a FIFO, a terminal) up to @max bytes. */
static int read_stream(int fd, size_t max, char **data, size_t *len, struct err *e)
{
    size_t cap = 65536;
    size_t got = 0;
    char *buf = mem_alloc(cap + 1);
    for (;;) {
        if (got == cap) {
            if (cap > max) {
                mem_free(buf, cap + 1);
                return err_set(e, 0, 0, "input is more than the %zu bytes this command reads",
                               max);
            }
            buf = mem_realloc(buf, cap + 1, 2 * cap + 1);
            cap *= 2;
        }
        ssize_t n = read(fd, buf + got, cap - got);
        if (n < 0 && errno == EINTR) {
            continue;
        }
        if (n < 0) {
            int ret = -errno;
            mem_free(buf, cap + 1);
            err_set(e, 0, 0, "read failed: %s", blocksim_strerror(ret));
            return ret;
        }
        if (n == 0) {
            break;
        }
        got += (size_t)n;
    }
    if (got > max) {
        mem_free(buf, cap + 1);
        return err_set(e, 0, 0, "input is more than the %zu bytes this command reads", max);
    }
    /* Hand back an allocation of exactly got + 1 bytes (trace_file_free's size). */
    *data = mem_realloc(buf, cap + 1, got + 1);
    *len = got;
    return 0;
}

int trace_file_read(const char *path, size_t max, char **data, size_t *len, struct err *e)
{
    bool is_stdin = strcmp(path, "-") == 0;
    int fd = is_stdin ? STDIN_FILENO : open(path, O_RDONLY);
    if (fd < 0) {
        int ret = -errno;
        err_set(e, 0, 0, "cannot open: %s", blocksim_strerror(ret));
        return ret;
    }
    struct stat st;
    int ret = 0;
    if (fstat(fd, &st) < 0) {
        ret = err_set(e, 0, 0, "cannot stat: %s", strerror(errno));
        goto out_close;
    }
    if (S_ISDIR(st.st_mode)) {
        ret = err_set(e, 0, 0, "is a directory, not a trace file");
        goto out_close;
    }
    if (!S_ISREG(st.st_mode)) { /* standard input, a pipe, <(...) */
        ret = read_stream(fd, max, data, len, e);
        goto out_close;
    }
    if ((uint64_t)st.st_size > max) {
        ret = err_set(e, 0, 0, "file is %lld bytes, more than the %zu this command reads",
                      (long long)st.st_size, max);
        goto out_close;
    }
    *len = (size_t)st.st_size;
    *data = mem_alloc(*len + 1);
    for (size_t got = 0; got < *len;) {
        ssize_t n = read(fd, *data + got, *len - got);
        if (n <= 0) {
            ret = n < 0 ? -errno : -EIO;
            err_set(e, 0, 0, "read failed: %s", blocksim_strerror(ret));
            mem_free(*data, *len + 1);
            *data = NULL;
            goto out_close;
        }
        got += (size_t)n;
    }
out_close:
    if (!is_stdin) {
        close(fd);
    }
    return ret;
}

void trace_file_free(char *data, size_t len)
{
    mem_free(data, data ? len + 1 : 0);
}

static void print_recs(const struct trace *t, FILE *out, bool canonical)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct trace_rec *r = &t->recs[i];
        bool last = i + 1 == t->n;
        const char *nl = last && t->no_final_newline && !canonical ? "" : "\n";
        if (r->text && (!canonical || r->kind == TRACE_BLANK)) {
            fprintf(out, "%s%s", r->text, nl);
            continue;
        }
        char canon[TRACE_LINE_MAX];
        rec_canonical(r, canon, sizeof(canon));
        fprintf(out, "%s%s", canon, nl);
    }
}

void trace_print(const struct trace *t, FILE *out)
{
    print_recs(t, out, false);
}

void trace_print_canonical(const struct trace *t, FILE *out)
{
    print_recs(t, out, true);
}

static bool cfg_equal(const struct trace_cfg *a, const struct trace_cfg *b)
{
    if (!a || !b) {
        return a == b;
    }
    char fa[TRACE_LINE_MAX];
    char fb[TRACE_LINE_MAX];
    fault_rule_format(&a->fault, fa, sizeof(fa));
    fault_rule_format(&b->fault, fb, sizeof(fb));
    bool images = (!a->image && !b->image) ||
                  (a->image && b->image && strcmp(a->image, b->image) == 0);
    return images && a->topology == b->topology && strcmp(a->name, b->name) == 0 &&
           strcmp(a->host, b->host) == 0 && strcmp(a->backing, b->backing) == 0 &&
           a->size == b->size && a->cluster == b->cluster && a->cache == b->cache &&
           a->lat_min_ns == b->lat_min_ns && a->lat_max_ns == b->lat_max_ns &&
           a->flush_ns == b->flush_ns && a->atomic == b->atomic &&
           a->has_size == b->has_size && a->has_cluster == b->has_cluster &&
           a->has_cache == b->has_cache && a->has_latency == b->has_latency &&
           a->has_flush == b->has_flush && a->has_atomic == b->has_atomic &&
           a->children == b->children && a->threshold == b->threshold && a->nbd == b->nbd &&
           a->ignore_mask == b->ignore_mask && a->fifo == b->fifo &&
           a->rewrite == b->rewrite && a->backup_cluster == b->backup_cluster &&
           a->variant == b->variant && strcmp(fa, fb) == 0;
}

static bool bm_equal(const struct trace_bitmap *a, const struct trace_bitmap *b)
{
    if (!a || !b) {
        return a == b;
    }
    return a->op == b->op && strcmp(a->name, b->name) == 0 && strcmp(a->src, b->src) == 0 &&
           a->gran == b->gran && a->persistent == b->persistent && a->disabled == b->disabled;
}

static bool plan_equal(const struct trace_crash_plan *a, const struct trace_crash_plan *b)
{
    if (!a || !b) {
        return a == b;
    }
    bool eq = a->at_flush == b->at_flush && a->tear_seed == b->tear_seed &&
              a->n_disks == b->n_disks;
    for (unsigned d = 0; eq && d < a->n_disks; d++) {
        eq = a->n[d] == b->n[d] && memcmp(a->fates[d], b->fates[d], a->n[d]) == 0;
    }
    return eq;
}

bool trace_rec_equal(const struct trace_rec *a, const struct trace_rec *b)
{
    return a->kind == b->kind && a->has_at == b->has_at && a->at_ns == b->at_ns &&
           a->fua == b->fua && a->has_mode == b->has_mode &&
           a->has_pattern == b->has_pattern && a->pattern == b->pattern &&
           strcmp(a->host, b->host) == 0 && a->guest == b->guest && a->sub == b->sub &&
           strcmp(a->export, b->export) == 0 &&
           a->failover == b->failover &&
           (!a->has_mode || a->mode == b->mode) && a->expect == b->expect &&
           a->offset == b->offset && a->len == b->len && a->value == b->value &&
           cfg_equal(a->cfg, b->cfg) && bm_equal(a->bm, b->bm) && plan_equal(a->plan, b->plan) &&
           trace__job_equal(a->job, b->job) &&
           strcmp(a->mark ? a->mark : "", b->mark ? b->mark : "") == 0;
}

char *trace_print_string(const struct trace *t, bool canonical, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    ASSERT(f != NULL);
    if (canonical) {
        trace_print_canonical(t, f);
    } else {
        trace_print(t, f);
    }
    ASSERT(fclose(f) == 0);
    return buf;
}

bool trace_equal(const struct trace *a, const struct trace *b)
{
    if (a->n != b->n) {
        return false;
    }
    for (size_t i = 0; i < a->n; i++) {
        if (!trace_rec_equal(&a->recs[i], &b->recs[i])) {
            return false;
        }
    }
    return true;
}
