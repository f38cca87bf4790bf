/*
 * import_blkparse: see import_blkparse.h.
 *
 * Method: one pass over the lines; each event line is split on blanks,
 *   its fixed fields checked, and a Q event appended as one record (two
 *   with a preflush).
 */
#include "import_blkparse.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#define BP_FIELDS_MAX 24
#define BP_LINE_MAX 1024

static unsigned split_blanks(char *line, char **w)
{
    unsigned n = 0;
    for (char *tok = strtok(line, " \t"); tok; tok = strtok(NULL, " \t")) {
        if (n < BP_FIELDS_MAX) {
            w[n] = tok;
        }
        n++;
    }
    return n;
}

static bool all_digits(const char *s)
{
    return *s && s[strspn(s, "0123456789")] == '\0';
}

/* `MAJ,MIN`. */
static bool device_ok(const char *s)
{
    size_t a = strspn(s, "0123456789");
    return a && s[a] == ',' && all_digits(s + a + 1);
}

/* `S.NNNNNNNNN` in nanoseconds. */
static bool time_ns(const char *s, uint64_t *out)
{
    const char *dot = strchr(s, '.');
    uint64_t sec;
    uint64_t ns;
    char buf[32];
    if (!dot || strlen(dot + 1) != 9 || (size_t)(dot - s) >= sizeof(buf) || dot == s) {
        return false;
    }
    memcpy(buf, s, (size_t)(dot - s));
    buf[dot - s] = '\0';
    if (!all_digits(buf) || !all_digits(dot + 1) || parse_u64(buf, &sec) < 0 ||
        parse_u64(dot + 1, &ns) < 0 || sec > UINT64_MAX / 1000000000ull - 1) {
        return false;
    }
    *out = sec * 1000000000ull + ns;
    return true;
}

static bool action_ok(const char *a)
{
    static const char *const known[] = { "Q", "G", "S", "M", "F", "I", "D", "C", "R", "B",
                                         "P", "U", "UT", "X", "A", "m", "T" };
    for (unsigned i = 0; i < ARRAY_LEN(known); i++) {
        if (strcmp(a, known[i]) == 0) {
            return true;
        }
    }
    return false;
}

bool import_blkparse_detect(const char *data, size_t len)
{
    char line[BP_LINE_MAX];
    if (!trace_first_line(data, len, line, sizeof(line))) {
        return false;
    }
    char *w[BP_FIELDS_MAX];
    uint64_t t;
    unsigned f = split_blanks(line, w);
    return f >= 7 && device_ok(w[0]) && all_digits(w[1]) && all_digits(w[2]) &&
           time_ns(w[3], &t) && all_digits(w[4]) && strlen(w[5]) <= 2 && action_ok(w[5]);
}

struct bp_run {
    struct trace *t;
    const char *volume;
    char device[32];
    unsigned device_line;
    bool have_t0;
    uint64_t t0, last;
    uint64_t kept;
};

static void bp_append(struct bp_run *r, enum trace_kind k, uint64_t off, uint64_t len,
                      bool fua, uint64_t at)
{
    struct trace_rec *rec = trace_append(r->t, k);
    rec->offset = off;
    rec->len = len;
    rec->fua = fua;
    rec->has_at = true;
    rec->at_ns = at;
    r->kept++;
}

/* A Q event's RWBS and tail into records. */
static int bp_queue(struct bp_run *r, char *const *w, unsigned n, uint64_t at, struct err *e)
{
    const char *rwbs = w[6];
    bool preflush = rwbs[0] == 'F';
    const char *p = rwbs + preflush;
    char op = *p ? *p++ : 0;
    if (!strchr("RWDN", op) || op == 0) {
        return err_set(e, 0, 7, "RWBS '%s': expected R, W, D or N after an optional F", rwbs);
    }
    bool fua = *p == 'F';
    p += fua;
    if (p[strspn(p, "ASM")] != '\0') {
        return err_set(e, 0, 7, "RWBS '%s': unknown letters", rwbs);
    }
    if (preflush) {
        bp_append(r, TRACE_FLUSH, 0, 0, false, at);
    }
    if (op == 'N') {
        return 0; /* an empty flush request: its flush is all */
    }
    uint64_t sector;
    uint64_t count;
    if (n == 7 || (n >= 8 && w[7][0] == '[')) {
        if (preflush) {
            return 0; /* an empty preflush bio (`Q FWS [jbd2]`): its flush is all */
        }
        return err_set(e, 0, 8, "a %c event without SECTOR + NSEC", op);
    }
    if (n < 10 || !all_digits(w[7]) || strcmp(w[8], "+") != 0 || !all_digits(w[9])) {
        return err_set(e, 0, 8, "expected SECTOR + NSEC after '%s'", rwbs);
    }
    if (parse_u64(w[7], &sector) < 0 || parse_u64(w[9], &count) < 0 ||
        sector > UINT64_MAX / 512 - count) {
        return err_set(e, 0, 8, "sector or count out of range");
    }
    enum trace_kind k = op == 'R' ? TRACE_READ : op == 'W' ? TRACE_WRITE : TRACE_DISCARD;
    char why[128];
    if (trace_len_problem(k, count * 512, why, sizeof(why))) {
        return err_set(e, 0, 10, "%s", why);
    }
    bp_append(r, k, sector * 512, count * 512, fua && k == TRACE_WRITE, at);
    return 0;
}

static int bp_line(struct bp_run *r, char *line, unsigned no, struct err *e)
{
    char *w[BP_FIELDS_MAX];
    unsigned n = split_blanks(line, w);
    uint64_t t;
    if (n < 6 || !device_ok(w[0])) {
        return err_set(e, 0, 1, "not a blkparse event line (expected MAJ,MIN CPU SEQ TIME "
                       "PID ACTION ...)");
    }
    if (!all_digits(w[1]) || !all_digits(w[2]) || !all_digits(w[4])) {
        return err_set(e, 0, !all_digits(w[1]) ? 2 : !all_digits(w[2]) ? 3 : 5,
                       "expected an unsigned integer");
    }
    if (!time_ns(w[3], &t)) {
        return err_set(e, 0, 4, "time '%s': expected SECONDS.NNNNNNNNN", w[3]);
    }
    if (!action_ok(w[5])) {
        return err_set(e, 0, 6, "unknown action '%s'", w[5]);
    }
    if (n >= 9 && strcmp(w[8], "+") == 0 && (n < 10 || !all_digits(w[7]) ||
                                               !all_digits(w[9]))) {
        return err_set(e, 0, 8, "expected SECTOR + NSEC");
    }
    if (strcmp(w[5], "Q") != 0) {
        return 0; /* merges, issues, completions...: Q is what software asked */
    }
    if (n < 7) {
        return err_set(e, 0, 7, "a Q event needs its RWBS");
    }
    if (r->volume ? strcmp(w[0], r->volume) != 0 : false) {
        return 0;
    }
    if (!r->volume && !r->device[0]) {
        snprintf(r->device, sizeof(r->device), "%s", w[0]);
        r->device_line = no;
    }
    if (!r->volume && strcmp(w[0], r->device) != 0) {
        return err_set(e, 0, 1, "a second device %s (line %u has %s): choose one with "
                       "--volume", w[0], r->device_line, r->device);
    }
    if (!r->have_t0) {
        r->t0 = t;
        r->have_t0 = true;
    }
    uint64_t at = t >= r->t0 ? t - r->t0 : 0;
    r->last = at > r->last ? at : r->last;
    return bp_queue(r, w, n, r->last, e);
}

/* One line of the text (trace_line_fn): an event, a blank, or the trailer. */
static int bp_each(void *ctx, char *line, size_t len, unsigned no, struct err *e)
{
    (void)len;
    if (strncmp(line, "CPU", 3) == 0 && line[3] >= '0' && line[3] <= '9') {
        return 1; /* the trailer */
    }
    return line[strspn(line, " \t\r")] ? bp_line(ctx, line, no, e) : 0;
}

int import_blkparse(const char *data, size_t len, const char *volume, struct trace *t,
                    struct err *e)
{
    struct bp_run r = { .t = t, .volume = volume };
    trace_init(t);
    trace_append(t, TRACE_HEADER)->value = TRACE_VERSION;
    unsigned no;
    int ret = trace_each_line(data, len, BP_LINE_MAX, bp_each, &r, &no, e);
    if (ret == 0 && r.kept == 0) {
        ret = err_set(e, no ? no : 1, 0, "no Q event%s", volume ? " of the device --volume "
                      "names" : "");
    }
    if (ret < 0) {
        trace_fini(t);
        return BS_EPARSE;
    }
    return 0;
}
