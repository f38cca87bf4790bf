/*
 * import_fio: see import_fio.h. Method: one pass parses every line into a
 * small op list (file index, kind, offset, length, time); the file regions
 * are laid out once every file's extent is known; a second pass emits the
 * native records.
 */
#include "import_fio.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define FIO_REGION_ALIGN (1u << 20)
#define FIO_LINE_MAX 4096

struct fio_op {
    enum trace_kind kind; /* TRACE_BLANK marks a wait */
    unsigned file;
    uint64_t offset;
    uint64_t len;
    uint64_t at_ns;
    bool has_at;
    unsigned line;        /* in the iolog: messages name it */
};

struct fio_state {
    struct import_fio_opts o;
    unsigned version;
    char **names;
    uint64_t *extent;
    unsigned files, cap_files;
    struct fio_op *ops;
    size_t n_ops;
    size_t cap_ops;
    uint64_t at_ns;   /* when the next operation runs (v2 waits, v3 deltas) */
    uint64_t last_us; /* v3: the previous line's timestamp */
    bool seen_line;   /* v3: a timestamped line was read */
    uint64_t skipped;
    uint64_t rounded;
};

struct fio_action {
    const char *word;
    enum trace_kind kind;
    bool has_range; /* needs OFFSET LENGTH */
};

static const struct fio_action actions[] = {
    { "read", TRACE_READ, true },     { "write", TRACE_WRITE, true },
    { "trim", TRACE_DISCARD, true },  { "sync", TRACE_FLUSH, false },
    { "datasync", TRACE_FLUSH, false }, { "wait", TRACE_BLANK, false },
    { "add", TRACE_HEADER, false },   { "open", TRACE_SEED, false },
    { "close", TRACE_SEED, false },   { "sync_file_range", TRACE__COUNT, false },
};

static void fio_state_fini(struct fio_state *s)
{
    for (unsigned i = 0; i < s->files; i++) {
        mem_strfree(s->names[i]);
    }
    mem_free(s->names, s->cap_files * sizeof(*s->names));
    mem_free(s->extent, s->cap_files * sizeof(*s->extent));
    mem_free(s->ops, s->cap_ops * sizeof(*s->ops));
}

static int file_find(const struct fio_state *s, const char *name)
{
    for (unsigned i = 0; i < s->files; i++) {
        if (strcmp(s->names[i], name) == 0) {
            return (int)i;
        }
    }
    return -1;
}

static struct fio_op *op_push(struct fio_state *s)
{
    if (s->n_ops == s->cap_ops) {
        size_t cap = s->cap_ops ? 2 * s->cap_ops : 256;
        s->ops = mem_realloc(s->ops, s->cap_ops * sizeof(*s->ops), cap * sizeof(*s->ops));
        s->cap_ops = cap;
    }
    struct fio_op *op = &s->ops[s->n_ops++];
    memset(op, 0, sizeof(*op));
    return op;
}

static int field_num(char **w, unsigned i, unsigned base, uint64_t *out, const char *what,
                     unsigned line, struct err *e)
{
    if (parse_u64(w[i], out) < 0) {
        return err_set(e, line, base + i + 1, "%s: expected an unsigned integer, got '%s'",
                       what, w[i]);
    }
    return 0;
}

static int fio_range(struct fio_state *s, struct fio_op *op, char **w, unsigned n,
                     unsigned base, unsigned line, struct err *e)
{
    if (n != 4) {
        return err_set(e, line, base + n + 1, "'%s' needs FILE ACTION OFFSET LENGTH", w[1]);
    }
    TRY(field_num(w, 2, base, &op->offset, "offset", line, e));
    TRY(field_num(w, 3, base, &op->len, "length", line, e));
    if (op->len > UINT32_MAX) {
        return err_set(e, line, base + 4, "length %" PRIu64 " is over fio's 32-bit limit",
                       op->len);
    }
    if (op->offset > (1ull << 50)) {
        return err_set(e, line, base + 3, "offset %" PRIu64 " is beyond 1 PiB", op->offset);
    }
    if (s->o.align_round && op->len && (op->offset % 512 || op->len % 512)) {
        uint64_t end = align_up(op->offset + op->len, 512);
        op->offset = align_down(op->offset, 512);
        op->len = end - op->offset;
        s->rounded++;
    }
    if (op->offset % 512) {
        return err_set(e, line, base + 3, "offset %" PRIu64 " is not a multiple of 512 "
                       "(--align round widens it)", op->offset);
    }
    char why[128];
    if (trace_len_problem(op->kind, op->len, why, sizeof(why))) {
        return err_set(e, line, base + 4, "%s%s", why,
                       op->len % 512 ? " (--align round widens it)" : "");
    }
    if (op->offset > (1ull << 50)) {
        return err_set(e, line, base + 3, "offset %" PRIu64 " is beyond 1 PiB", op->offset);
    }
    if (op->offset + op->len > s->extent[op->file]) {
        s->extent[op->file] = op->offset + op->len;
    }
    return 0;
}

static int fio_add(struct fio_state *s, const char *name, unsigned line, unsigned field,
                   struct err *e)
{
    if (file_find(s, name) >= 0) {
        return err_set(e, line, field, "file '%s' added twice", name);
    }
    if (s->files == IMPORT_FIO_FILES_MAX) {
        return err_set(e, line, field, "more than %d files", IMPORT_FIO_FILES_MAX);
    }
    if (s->files == s->cap_files) {
        unsigned cap = s->cap_files ? 2 * s->cap_files : 16;
        s->names = mem_realloc(s->names, s->cap_files * sizeof(*s->names),
                               cap * sizeof(*s->names));
        s->extent = mem_realloc(s->extent, s->cap_files * sizeof(*s->extent),
                                cap * sizeof(*s->extent));
        memset(s->extent + s->cap_files, 0, (cap - s->cap_files) * sizeof(*s->extent));
        s->cap_files = cap;
    }
    s->names[s->files++] = mem_strdup(name);
    return 0;
}

/* One line of fields @w (timestamp already removed; @base = its field count). */
static int fio_line(struct fio_state *s, char **w, unsigned n, unsigned base, uint64_t at_ns,
                    unsigned line, struct err *e)
{
    if (n < 2) {
        return err_set(e, line, base + n + 1, "expected FILE ACTION");
    }
    const struct fio_action *a = NULL;
    for (size_t i = 0; i < ARRAY_LEN(actions); i++) {
        if (strcmp(w[1], actions[i].word) == 0) {
            a = &actions[i];
        }
    }
    if (!a) {
        return err_set(e, line, base + 2, "unknown fio action '%s'", w[1]);
    }
    if (a->kind == TRACE__COUNT) {
        s->skipped++; /* sync_file_range: fio writes it, its replay skips it */
        return 0;
    }
    if (a->kind == TRACE_HEADER) {
        return n == 2 ? fio_add(s, w[0], line, base + 1, e)
                      : err_set(e, line, base + 3, "'add' takes no more fields");
    }
    int file = file_find(s, w[0]);
    if (file < 0) {
        return err_set(e, line, base + 1, "file '%s' used before 'add'", w[0]);
    }
    if (a->kind == TRACE_SEED) {
        return 0; /* open/close: lifecycle only */
    }
    if (a->kind == TRACE_BLANK) {
        uint64_t ms;
        if (s->version == 3) {
            return err_set(e, line, base + 2, "'wait' is a v2 action (v3 lines carry "
                           "timestamps)");
        }
        if (n < 3 || n > 4) {
            return err_set(e, line, base + 3, "'wait' needs a time in milliseconds");
        }
        TRY(field_num(w, 2, base, &ms, "wait", line, e));
        if (ms > UINT64_MAX / 1000000) {
            return err_set(e, line, base + 3, "wait %" PRIu64 " ms overflows the clock", ms);
        }
        /* fio: sleep until W ms after the start; an earlier W is no wait. */
        s->at_ns = max_u64(s->at_ns, ms * 1000000);
        return 0;
    }
    struct fio_op *op = op_push(s);
    op->kind = a->kind;
    op->line = line;
    op->file = (unsigned)file;
    op->at_ns = s->version == 3 ? at_ns : s->at_ns;
    op->has_at = s->version == 3 || s->at_ns > 0;
    if (a->has_range) {
        return fio_range(s, op, w, n, base, line, e);
    }
    return n == 2 || n == 4 ? 0 : err_set(e, line, base + 3, "'%s' takes no range", w[1]);
}

static int fio_parse_line(struct fio_state *s, char *text, unsigned line, struct err *e)
{
    char *w[8];
    unsigned n = 0;
    char *save = NULL;
    for (char *p = strtok_r(text, " \t\r", &save); p; p = strtok_r(NULL, " \t\r", &save)) {
        if (n == ARRAY_LEN(w)) {
            return err_set(e, line, n + 1, "too many fields");
        }
        w[n++] = p;
    }
    if (n == 0) {
        return 0;
    }
    if (s->version == 2) {
        return fio_line(s, w, n, 0, 0, line, e);
    }
    uint64_t us;
    TRY(field_num(w, 0, 0, &us, "timestamp", line, e));
    /* As fio replays: each line its timestamp's distance after the previous
     * one; the first at 0; going backwards adds nothing. */
    uint64_t delta = s->seen_line && us > s->last_us ? us - s->last_us : 0;
    s->seen_line = true;
    s->last_us = us;
    if (delta > (UINT64_MAX - s->at_ns) / 1000) {
        return err_set(e, line, 1, "timestamp %" PRIu64 " overflows the clock", us);
    }
    s->at_ns += delta * 1000;
    return fio_line(s, w + 1, n - 1, 1, s->at_ns, line, e);
}

static int fio_header(struct fio_state *s, const char *line, size_t len, struct err *e)
{
    while (len > 0 && (line[len - 1] == '\r' || line[len - 1] == ' ')) {
        len--;
    }
    if (len == 19 && memcmp(line, "fio version 2 iolog", 19) == 0) {
        s->version = 2;
    } else if (len == 19 && memcmp(line, "fio version 3 iolog", 19) == 0) {
        s->version = 3;
    } else {
        return err_set(e, 1, 0, "not a fio iolog: expected 'fio version 2 iolog' or "
                       "'fio version 3 iolog'");
    }
    return 0;
}

/* One line (trace_line_fn): the header first, then actions. */
static int fio_each(void *ctx, char *text, size_t len, unsigned line, struct err *e)
{
    return line == 1 ? fio_header(ctx, text, len, e) : fio_parse_line(ctx, text, line, e);
}

static int fio_parse_all(struct fio_state *s, const char *data, size_t len, struct err *e)
{
    unsigned lines;
    TRY(trace_each_line(data, len, FIO_LINE_MAX, fio_each, s, &lines, e));
    return lines == 0 ? err_set(e, 1, 0, "empty file") : 0;
}

static void fio_emit(const struct fio_state *s, struct trace *t, struct import_fio_info *info)
{
    uint64_t *base = mem_alloc((s->files + 1) * sizeof(*base));
    uint64_t end = 0;
    trace_append(t, TRACE_HEADER)->value = TRACE_VERSION;
    char text[256];
    snprintf(text, sizeof(text), "# imported from a fio version %u iolog: %u file(s), "
             "%zu operations", s->version, s->files, s->n_ops);
    trace_append(t, TRACE_BLANK)->text = mem_strdup(text);
    for (unsigned i = 0; i < s->files; i++) {
        base[i] = end;
        end += align_up(max_u64(s->extent[i], 1), FIO_REGION_ALIGN);
        snprintf(text, sizeof(text), "# file %.100s at offset %" PRIu64, s->names[i], base[i]);
        trace_append(t, TRACE_BLANK)->text = mem_strdup(text);
    }
    if (s->skipped || s->rounded) {
        snprintf(text, sizeof(text), "# skipped %" PRIu64 " sync_file_range line(s); widened %"
                 PRIu64 " unaligned range(s) to 512 bytes", s->skipped, s->rounded);
        trace_append(t, TRACE_BLANK)->text = mem_strdup(text);
    }
    for (size_t i = 0; i < s->n_ops; i++) {
        const struct fio_op *op = &s->ops[i];
        struct trace_rec *r = trace_append(t, op->kind);
        r->has_at = op->has_at;
        r->at_ns = op->at_ns;
        r->line = op->line;
        if (op->kind != TRACE_FLUSH) {
            r->offset = base[op->file] + op->offset;
            r->len = op->len;
        }
    }
    mem_free(base, (s->files + 1) * sizeof(*base));
    if (info) {
        info->version = s->version;
        info->files = s->files;
        info->ops = s->n_ops;
        info->end = end;
        info->skipped = s->skipped;
        info->rounded = s->rounded;
    }
}

int import_fio(const char *data, size_t len, const struct import_fio_opts *o, struct trace *t,
               struct import_fio_info *info, struct err *e)
{
    struct fio_state s;
    memset(&s, 0, sizeof(s));
    if (o) {
        s.o = *o;
    }
    trace_init(t);
    int ret = fio_parse_all(&s, data, len, e);
    if (ret == 0) {
        fio_emit(&s, t, info);
    }
    fio_state_fini(&s);
    return ret;
}
