/*
 * import_csv: see import_csv.h.
 *
 * Method: each line is split at commas into exactly the format's fields;
 *   a per-format table says which field is the time, the operation, the
 *   offset, the length and the volume, and in which units; one pass
 *   appends a record per line of the kept volume.
 */
#include "import_csv.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define CSV_FIELDS_MAX 8
#define CSV_LINE_MAX 512

struct csv_layout {
    const char *name;
    unsigned fields;
    unsigned time, op, offset, len, vol, vol2; /* field numbers (from 0); vol2: none = fields */
    uint64_t time_ns;     /* nanoseconds a time unit */
    uint64_t unit;        /* bytes an offset or length unit */
    const char *read, *write; /* the operation words */
};

static const struct csv_layout layouts[CSV__COUNT] = {
    [CSV_MSR] = { "msr", 7, 0, 3, 4, 5, 1, 2, 100, 1, "Read", "Write" },
    [CSV_ALIBABA] = { "alibaba", 5, 4, 1, 2, 3, 0, 5, 1000, 1, "R", "W" },
    [CSV_TENCENT] = { "tencent", 5, 0, 3, 1, 2, 4, 5, 1000000000, 512, "0", "1" },
};

const char *import_csv_format_name(enum import_csv_format f)
{
    ASSERT(f < CSV__COUNT);
    return layouts[f].name;
}

bool import_csv_format_parse(const char *name, enum import_csv_format *out)
{
    for (unsigned f = 0; f < CSV__COUNT; f++) {
        if (strcmp(name, layouts[f].name) == 0) {
            *out = (enum import_csv_format)f;
            return true;
        }
    }
    return false;
}

/* Split @line (NUL-terminated, modified) at commas: the field count. */
static unsigned split(char *line, char **w)
{
    unsigned n = 0;
    for (char *p = line;; p++) {
        if (n < CSV_FIELDS_MAX) {
            w[n] = p;
        }
        n++;
        p += strcspn(p, ",");
        if (*p != ',') {
            return n;
        }
        *p = '\0';
    }
}

static bool digits(const char *s, size_t min, size_t max)
{
    size_t n = strspn(s, "0123456789");
    return s[n] == '\0' && n >= min && n <= max;
}

bool import_csv_detect(const char *data, size_t len, enum import_csv_format *out)
{
    char line[CSV_LINE_MAX];
    if (!trace_first_line(data, len, line, sizeof(line))) {
        return false;
    }
    char *w[CSV_FIELDS_MAX];
    unsigned f = split(line, w);
    if (f == 7 && digits(w[0], 17, 18) && (!strcmp(w[3], "Read") || !strcmp(w[3], "Write"))) {
        *out = CSV_MSR;
    } else if (f == 5 && (!strcmp(w[1], "R") || !strcmp(w[1], "W")) && digits(w[4], 16, 16)) {
        *out = CSV_ALIBABA;
    } else if (f == 5 && digits(w[0], 10, 10) && (!strcmp(w[3], "0") || !strcmp(w[3], "1"))) {
        *out = CSV_TENCENT;
    } else {
        return false;
    }
    return true;
}

static int field_u64(char *const *w, unsigned i, uint64_t *out, struct err *e)
{
    if (!digits(w[i], 1, 20) || parse_u64(w[i], out) < 0) {
        return err_set(e, 0, i + 1, "expected an unsigned integer, got '%s'", w[i]);
    }
    return 0;
}

/* State carried from line to line. */
struct csv_run {
    const struct csv_layout *L;
    const struct import_csv_opts *o;
    struct trace *t;
    struct import_csv_info *info;
    char volume[64];      /* the volume kept ("" until the first line) */
    unsigned volume_line;
    bool have_t0;
    uint64_t t0, last_ns;
};

/* The volume key of a line: field vol (and vol2). */
static void volume_key(const struct csv_layout *L, char *const *w, char *buf, size_t size)
{
    if (L->vol2 < L->fields) {
        snprintf(buf, size, "%s,%s", w[L->vol], w[L->vol2]);
    } else {
        snprintf(buf, size, "%s", w[L->vol]);
    }
}

/* Is this line's volume the one kept? A second volume without --volume is
 * an error naming both. */
static int volume_keep(struct csv_run *r, char *const *w, unsigned line, bool *keep,
                       struct err *e)
{
    char key[64];
    volume_key(r->L, w, key, sizeof(key));
    if (r->o && r->o->volume) {
        *keep = strcmp(key, r->o->volume) == 0;
        return 0;
    }
    if (!r->volume[0]) {
        snprintf(r->volume, sizeof(r->volume), "%s", key);
        r->volume_line = line;
    }
    if (strcmp(key, r->volume) != 0) {
        return err_set(e, 0, r->L->vol + 1, "a second volume '%s' (line %u has '%s'): choose "
                       "one with --volume", key, r->volume_line, r->volume);
    }
    *keep = true;
    return 0;
}

/* The range in bytes, aligned (or widened) to 512. */
static int range(struct csv_run *r, char *const *w, uint64_t *off, uint64_t *len,
                 struct err *e)
{
    TRY(field_u64(w, r->L->offset, off, e));
    TRY(field_u64(w, r->L->len, len, e));
    if (*off > UINT64_MAX / r->L->unit || *len > UINT64_MAX / r->L->unit) {
        return err_set(e, 0, r->L->offset + 1, "offset or length overflows");
    }
    *off *= r->L->unit;
    *len *= r->L->unit;
    if ((*off % 512 || *len % 512) && r->o && r->o->align_round && *len) {
        uint64_t end = *off + *len;
        *off -= *off % 512;
        *len = (end + 511) / 512 * 512 - *off;
        r->info->rounded++;
    }
    char why[128];
    if (*off % 512) {
        return err_set(e, 0, r->L->offset + 1, "offset %" PRIu64 " is not a multiple of 512 "
                       "(--align round widens it)", *off);
    }
    if (trace_len_problem(TRACE_WRITE, *len, why, sizeof(why))) {
        return err_set(e, 0, r->L->len + 1, "%s%s", why, *len % 512 ?
                       " (--align round widens it)" : "");
    }
    return 0;
}

static int csv_line(struct csv_run *r, char *line, unsigned no, struct err *e)
{
    const struct csv_layout *L = r->L;
    char *w[CSV_FIELDS_MAX];
    unsigned n = split(line, w);
    if (n != L->fields) {
        return err_set(e, 0, n < L->fields ? n : L->fields + 1, "%u fields, a %s line has "
                       "%u", n, L->name, L->fields);
    }
    bool read = strcmp(w[L->op], L->read) == 0;
    if (!read && strcmp(w[L->op], L->write) != 0) {
        return err_set(e, 0, L->op + 1, "operation '%s': expected %s or %s", w[L->op],
                       L->read, L->write);
    }
    uint64_t ts;
    uint64_t off;
    uint64_t len;
    TRY(field_u64(w, L->time, &ts, e));
    TRY(range(r, w, &off, &len, e));
    bool keep = false;
    TRY(volume_keep(r, w, no, &keep, e));
    r->info->lines++;
    if (!keep) {
        return 0;
    }
    if (!r->have_t0) {
        r->t0 = ts;
        r->have_t0 = true;
    }
    uint64_t at = ts >= r->t0 ? (ts - r->t0) * L->time_ns : 0; /* backwards: no delay */
    r->last_ns = at > r->last_ns ? at : r->last_ns;
    struct trace_rec *rec = trace_append(r->t, read ? TRACE_READ : TRACE_WRITE);
    rec->offset = off;
    rec->len = len;
    rec->has_at = true;
    rec->at_ns = r->last_ns;
    r->info->kept++;
    return 0;
}

/* One line (trace_line_fn): a record; a CR before the newline is dropped. */
static int csv_each(void *ctx, char *line, size_t len, unsigned no, struct err *e)
{
    if (len == 0) {
        return 0;
    }
    line[len - (line[len - 1] == '\r')] = '\0';
    return csv_line(ctx, line, no, e);
}

int import_csv(enum import_csv_format f, const char *data, size_t len,
               const struct import_csv_opts *o, struct trace *t,
               struct import_csv_info *info, struct err *e)
{
    struct import_csv_info none;
    struct csv_run r = { .L = &layouts[f], .o = o, .t = t, .info = info ? info : &none };
    memset(r.info, 0, sizeof(*r.info));
    trace_init(t);
    trace_append(t, TRACE_HEADER)->value = TRACE_VERSION;
    unsigned no;
    int ret = trace_each_line(data, len, CSV_LINE_MAX, csv_each, &r, &no, e);
    if (ret < 0) {
        trace_fini(t);
        return BS_EPARSE;
    }
    if (r.info->kept == 0) {
        trace_fini(t);
        return err_set(e, no ? no : 1, 0, "no %s record%s", layouts[f].name, o && o->volume
                       ? " of the volume --volume names" : "");
    }
    return 0;
}
