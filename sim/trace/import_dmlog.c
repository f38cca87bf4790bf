/*
 * import_dmlog: see import_dmlog.h.
 *
 * Method: check the super block, then walk the entries by the layout's own
 *   arithmetic (next = header + S + data bytes), each checked before any of
 *   its bytes are used.
 */
#include "import_dmlog.h"

#include <inttypes.h>
#include <string.h>

#define DMLOG_ENTRY_FIXED 32u  /* sector, nr_sectors, flags, data_len */
#define DMLOG_SS_MIN 64u
#define DMLOG_SS_MAX 65536u

static uint64_t le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) {
        v = v << 8 | p[i];
    }
    return v;
}

static uint32_t le32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

bool import_dmlog_detect(const char *data, size_t len)
{
    return len >= 8 && le64((const unsigned char *)data) == DMLOG_MAGIC;
}

struct dm_run {
    struct trace *t;
    bool align_round;
    struct import_dmlog_info *info;
    uint64_t entry, at;  /* the entry being read and its byte offset */
};

static int dm_error(const struct dm_run *r, struct err *e, const char *what, const char *why)
{
    return err_set(e, 0, 0, "entry %" PRIu64 " at byte %" PRIu64 ": %s: %s", r->entry, r->at,
                   what, why);
}

static bool all_zero(const unsigned char *p, size_t n)
{
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* The range [sector*S, +nr*S) in bytes, 512-aligned by the policy. */
static int dm_range(struct dm_run *r, uint64_t sector, uint64_t nr, uint64_t ss,
                    enum trace_kind k, uint64_t *off, uint64_t *len, struct err *e)
{
    if (nr > UINT64_MAX / ss / 2) {
        return dm_error(r, e, "nr_sectors", "the range overflows 64 bits");
    }
    if (sector > UINT64_MAX / ss || sector * ss > UINT64_MAX - nr * ss - 511) {
        return dm_error(r, e, "sector", "the range overflows 64 bits");
    }
    uint64_t lo = sector * ss;
    uint64_t hi = lo + nr * ss;
    if ((lo | hi) % 512 != 0) {
        if (!r->align_round) {
            return dm_error(r, e, "sector", "the range is not 512-aligned (use --align round "
                            "to widen it)");
        }
        lo -= lo % 512;
        hi += (512 - hi % 512) % 512;
        r->info->rounded++;
    }
    char why[128];
    if (trace_len_problem(k, hi - lo, why, sizeof(why))) {
        return dm_error(r, e, "nr_sectors", why);
    }
    *off = lo;
    *len = hi - lo;
    return 0;
}

static void dm_mark(struct dm_run *r, const unsigned char *text, size_t n)
{
    char buf[TRACE_MARK_MAX + 1];
    size_t k = n < TRACE_MARK_MAX ? n : TRACE_MARK_MAX;
    for (size_t i = 0; i < k; i++) {
        buf[i] = text[i] && strchr(TRACE_MARK_CHARS, text[i]) ? (char)text[i] : '_';
    }
    if (k == 0) {
        buf[k++] = '_'; /* an empty mark still marks its point */
    }
    buf[k] = '\0';
    trace_append(r->t, TRACE_MARK)->mark = mem_strdup(buf);
}

/* One entry at r->at; advances r->at past its data. */
static int dm_entry(struct dm_run *r, const unsigned char *d, size_t len, uint64_t ss,
                    struct err *e)
{
    if (len - r->at < ss) {
        return dm_error(r, e, "header", "the log ends inside it");
    }
    const unsigned char *h = d + r->at;
    uint64_t sector = le64(h);
    uint64_t nr = le64(h + 8);
    uint64_t flags = le64(h + 16);
    uint64_t data_len = le64(h + 24);
    bool mark = flags & DMLOG_MARK;
    if (flags & ~(uint64_t)(DMLOG_FLUSH | DMLOG_FUA | DMLOG_DISCARD | DMLOG_MARK |
                            DMLOG_METADATA)) {
        return dm_error(r, e, "flags", "unknown bits");
    }
    if (mark && (nr != 0 || data_len > ss - DMLOG_ENTRY_FIXED - 1)) {
        return dm_error(r, e, nr ? "nr_sectors" : "data_len",
                        nr ? "a mark has no range" : "a mark's text is longer than S-33");
    }
    if (!mark && data_len != 0) {
        return dm_error(r, e, "data_len", "nonzero on an entry that is not a mark");
    }
    if (!all_zero(h + DMLOG_ENTRY_FIXED + data_len, ss - DMLOG_ENTRY_FIXED - data_len)) {
        return dm_error(r, e, "header", "nonzero bytes after the mark text");
    }
    bool discard = flags & DMLOG_DISCARD;
    uint64_t data = discard || mark ? 0 : nr * ss;
    if (nr > (len - r->at - ss) / ss && data) {
        return dm_error(r, e, "data", "the log ends inside it");
    }
    if (flags & DMLOG_FLUSH) {
        trace_append(r->t, TRACE_FLUSH);
    }
    if (mark) {
        dm_mark(r, h + DMLOG_ENTRY_FIXED, data_len);
    } else if (nr > 0) {
        enum trace_kind k = discard ? TRACE_DISCARD : TRACE_WRITE;
        uint64_t off = 0;
        uint64_t blen = 0;
        TRY(dm_range(r, sector, nr, ss, k, &off, &blen, e));
        struct trace_rec *rec = trace_append(r->t, k);
        rec->offset = off;
        rec->len = blen;
        rec->fua = !discard && (flags & DMLOG_FUA);
        const unsigned char *p = h + ss;
        if (!discard && (data == 1 || memcmp(p, p + 1, data - 1) == 0)) {
            rec->has_pattern = true;
            rec->pattern = p[0];
        }
    }
    r->at += ss + data;
    return 0;
}

int import_dmlog(const char *data, size_t len, bool align_round, struct trace *t,
                 struct import_dmlog_info *info, struct err *e)
{
    struct import_dmlog_info scratch;
    struct dm_run r = { .t = t, .align_round = align_round, .info = info ? info : &scratch };
    memset(r.info, 0, sizeof(*r.info));
    const unsigned char *d = (const unsigned char *)data;
    trace_init(t);
    int ret = 0;
    if (len < DMLOG_ENTRY_FIXED || le64(d) != DMLOG_MAGIC) {
        ret = err_set(e, 0, 0, "super block: not a dm-log-writes log (magic "
                      "\"rhswfsj\\0\" expected at byte 0)");
    } else if (le64(d + 8) != 1) {
        ret = err_set(e, 0, 0, "super block: version %" PRIu64 ", expected 1", le64(d + 8));
    }
    uint64_t n = ret ? 0 : le64(d + 16);
    uint32_t ss = ret ? 0 : le32(d + 24);
    if (ret == 0 && (ss < DMLOG_SS_MIN || ss > DMLOG_SS_MAX || (ss & (ss - 1)))) {
        ret = err_set(e, 0, 0, "super block: sectorsize %" PRIu32 ", expected a power of two "
                      "from %u to %u", ss, DMLOG_SS_MIN, DMLOG_SS_MAX);
    }
    if (ret == 0 && len < ss) {
        ret = err_set(e, 0, 0, "super block: the log ends inside it (sectorsize %" PRIu32 ")",
                      ss);
    }
    if (ret == 0) {
        trace_append(t, TRACE_HEADER)->value = TRACE_VERSION;
        r.info->sectorsize = ss;
        r.at = ss;
    }
    for (r.entry = 0; ret == 0 && r.entry < n; r.entry++) {
        if (r.at == len) {
            ret = err_set(e, 0, 0, "the log ends after %" PRIu64 " of the %" PRIu64
                          " entries its super block promises", r.entry, n);
            break;
        }
        ret = dm_entry(&r, d, len, ss, e);
    }
    if (ret < 0) {
        trace_fini(t);
        return BS_EPARSE;
    }
    r.info->entries = n;
    r.info->ignored = len - r.at;
    return 0;
}
