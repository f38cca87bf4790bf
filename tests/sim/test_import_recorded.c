/* Tests of sim/import_blkparse and sim/import_dmlog: records made, edge
 * cases of each format, errors located. */
#include "../../sim/trace/import_blkparse.h"
#include "../../sim/trace/import_dmlog.h"
#include "../suites.h"
#include "../testlib.h"

#include <stdlib.h>
#include <string.h>

/* The canonical text of @t without its header line. */
static char *body(const struct trace *t)
{
    size_t len;
    char *s = trace_print_string(t, true, &len);
    char *nl = strchr(s, '\n');
    memmove(s, nl + 1, strlen(nl + 1) + 1);
    return s;
}

START_TEST(test_blkparse_events)
{
    static const char text[] =
        "  8,0    3        1     0.000000000  1234  Q FWFS 100 + 8 [jbd2/sda1]\n"
        "  8,0    3        2     0.000001000  1234  G FWFS 100 + 8 [jbd2/sda1]\n"
        "  8,0    3        3     2.000000500  1234  Q FWS [kworker/3:1]\n"
        "  8,0    3        4     2.000001000  1234  Q  FN [kworker/3:1]\n"
        "  8,0    3        5     2.500000000  1234  A   R 200 + 8 <- (8,1) 136\n"
        "  8,0    3        6     3.000000000  1234  Q  RA 200 + 8 [cat]\n"
        "  8,0    3        7     3.000000001  1234  m   N cfq1234 alloced\n"
        "  8,0    3        8     3.000000002  1234  X   R 200 / 204 [cat]\n"
        "CPU3 (sda):\n"
        " Reads Queued: 1, 4KiB\n"
        "  8,0    3        9     9.000000000  1234  Q   W 0 + 8 [after the trailer]\n";
    ck_assert(import_blkparse_detect(text, sizeof(text) - 1));
    struct trace t;
    ck_assert_int_eq(import_blkparse(text, sizeof(text) - 1, NULL, &t, NULL), 0);
    char *s = body(&t);
    ck_assert_str_eq(s, "@0ns flush\n@0ns write 51200 4096 fua\n@2000000500ns flush\n"
                        "@2000001us flush\n@3s read 102400 4096\n");
    free(s);
    trace_fini(&t);
}
END_TEST

START_TEST(test_blkparse_devices_and_errors)
{
    static const char two[] = "259,0 0 1 0.000000000 1 Q W 0 + 8 [a]\n"
                              "259,1 0 2 0.000000100 1 Q D 8 + 8 [a]\n";
    struct trace t;
    struct err e = { .file = "bp" };
    ck_assert_int_eq(import_blkparse(two, sizeof(two) - 1, NULL, &t, &e), BS_EPARSE);
    ck_assert_uint_eq(e.line, 2);
    ck_assert_ptr_nonnull(strstr(e.msg, "a second device 259,1 (line 1 has 259,0)"));
    ck_assert_int_eq(import_blkparse(two, sizeof(two) - 1, "259,1", &t, &e), 0);
    char *s = body(&t);
    ck_assert_str_eq(s, "@0ns discard 4096 4096\n"); /* times from the first kept */
    free(s);
    trace_fini(&t);
    static const struct {
        const char *text;
        unsigned field;
        const char *msg;
    } cases[] = {
        { "8,0 0 1 0.000000000 1 Q W 0 + x [a]\n", 8, "SECTOR + NSEC" },
        { "8,0 0 1 0.000000000 1 Q R [a]\n", 8, "without SECTOR + NSEC" },
        { "8,0 0 1 0.000000000 1 Q E 0 + 8 [a]\n", 7, "expected R, W, D or N" },
        { "8,0 0 1 0.0000000001 1 Q W 0 + 8 [a]\n", 4, "SECONDS.NNNNNNNNN" },
        { "8,0 x 1 0.000000000 1 Q W 0 + 8 [a]\n", 2, "unsigned integer" },
        { "8,0 0 1 0.000000000 1 QQ W 0 + 8 [a]\n", 6, "unknown action 'QQ'" },
        { "8;0 0 1 0.000000000 1 Q W 0 + 8 [a]\n", 1, "not a blkparse event line" },
        { "8,0 0 1 0.000000000 1 Q W 0 + 131073 [a]\n", 10, "64M" },
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        ck_assert_int_eq(import_blkparse(cases[i].text, strlen(cases[i].text), NULL, &t, &e),
                         BS_EPARSE);
        ck_assert_msg(e.line == 1 && e.field == cases[i].field, "case %zu: line %u field %u (%s)",
                      i, e.line, e.field, e.msg);
        ck_assert_msg(strstr(e.msg, cases[i].msg) != NULL, "case %zu: %s", i, e.msg);
    }
}
END_TEST

/* A log in memory: a super block and entries, sector size @ss. */
struct dmlog {
    unsigned char *buf;
    size_t len;
    uint32_t ss;
    uint64_t n;
};

static void put64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) {
        p[i] = (unsigned char)(v >> (8 * i));
    }
}

static void dm_start(struct dmlog *l, uint32_t ss)
{
    memset(l, 0, sizeof(*l));
    l->ss = ss;
    l->buf = calloc(1, ss);
    l->len = ss;
    put64(l->buf, DMLOG_MAGIC);
    put64(l->buf + 8, 1);
    for (int i = 0; i < 4; i++) {
        l->buf[24 + i] = (unsigned char)(ss >> (8 * i));
    }
}

/* An entry; its data (when it carries some) is every byte @fill, or
 * counting bytes when @fill is negative. */
static void dm_add(struct dmlog *l, uint64_t sector, uint64_t nr, uint64_t flags,
                   const char *mark, int fill)
{
    bool data = !(flags & (DMLOG_DISCARD | DMLOG_MARK));
    size_t add = l->ss + (data ? nr * l->ss : 0);
    l->buf = realloc(l->buf, l->len + add);
    unsigned char *h = l->buf + l->len;
    memset(h, 0, add);
    put64(h, sector);
    put64(h + 8, nr);
    put64(h + 16, flags);
    if (mark) {
        put64(h + 24, strlen(mark));
        memcpy(h + 32, mark, strlen(mark));
    }
    for (size_t i = 0; data && i < nr * l->ss; i++) {
        h[l->ss + i] = (unsigned char)(fill < 0 ? i * 7 : (size_t)fill);
    }
    l->len += add;
    put64(l->buf + 16, ++l->n);
}

START_TEST(test_dmlog_entries)
{
    struct dmlog l;
    dm_start(&l, 4096);
    dm_add(&l, 1, 2, DMLOG_FLUSH | DMLOG_FUA | DMLOG_METADATA, NULL, -1);
    dm_add(&l, 0, 0, DMLOG_MARK, "fsync 2/ok", 0);
    dm_add(&l, 8, 1, 0, NULL, 0xee);
    dm_add(&l, 0, 0, 0, NULL, 0); /* empty: nothing */
    dm_add(&l, 16, 256, DMLOG_DISCARD, NULL, 0);
    dm_add(&l, 0, 0, DMLOG_FLUSH, NULL, 0);
    uint64_t promised = l.n;
    dm_add(&l, 3, 1, 0, NULL, 1); /* after nr_entries: ignored, as replay-log does */
    put64(l.buf + 16, promised);
    ck_assert(import_dmlog_detect((const char *)l.buf, l.len));
    struct trace t;
    struct import_dmlog_info info;
    ck_assert_int_eq(import_dmlog((const char *)l.buf, l.len, false, &t, &info, NULL), 0);
    ck_assert_uint_eq(info.entries, 6);
    ck_assert_uint_eq(info.sectorsize, 4096);
    ck_assert_uint_eq(info.ignored, 2 * 4096);
    char *s = body(&t);
    ck_assert_str_eq(s, "flush\nwrite 4096 8192 fua\nmark fsync_2/ok\n"
                        "write 32768 4096 pattern=0xee\ndiscard 65536 1048576\nflush\n");
    free(s);
    trace_fini(&t);
    free(l.buf);
}
END_TEST

START_TEST(test_dmlog_errors)
{
    struct dmlog l;
    struct trace t;
    struct err e = { .file = "log" };
    dm_start(&l, 512);
    dm_add(&l, 0, 1, 0, NULL, 1);
    l.buf[512 + 40] = 1; /* a stray byte in the header after the (empty) text */
    ck_assert_int_eq(import_dmlog((const char *)l.buf, l.len, false, &t, NULL, &e), BS_EPARSE);
    ck_assert_str_eq(e.msg, "entry 0 at byte 512: header: nonzero bytes after the mark text");
    l.buf[512 + 40] = 0;
    put64(l.buf + 512 + 8, 2); /* two sectors of data promised, one there */
    ck_assert_int_eq(import_dmlog((const char *)l.buf, l.len, false, &t, NULL, &e), BS_EPARSE);
    ck_assert_str_eq(e.msg, "entry 0 at byte 512: data: the log ends inside it");
    put64(l.buf + 512 + 8, UINT64_MAX / 256);
    put64(l.buf + 512 + 16, DMLOG_DISCARD);
    ck_assert_int_eq(import_dmlog((const char *)l.buf, l.len, false, &t, NULL, &e), BS_EPARSE);
    ck_assert_ptr_nonnull(strstr(e.msg, "nr_sectors"));
    free(l.buf);
    dm_start(&l, 512);
    dm_add(&l, 0, 0, DMLOG_MARK, "", 0);
    put64(l.buf + 512 + 24, 512 - 32); /* no room for the NUL */
    ck_assert_int_eq(import_dmlog((const char *)l.buf, l.len, false, &t, NULL, &e), BS_EPARSE);
    ck_assert_str_eq(e.msg, "entry 0 at byte 512: data_len: a mark's text is longer than S-33");
    put64(l.buf + 512 + 24, 0);
    ck_assert_int_eq(import_dmlog((const char *)l.buf, l.len, false, &t, NULL, &e), 0);
    char *s = body(&t);
    ck_assert_str_eq(s, "mark _\n"); /* an empty mark still marks its point */
    free(s);
    trace_fini(&t);
    for (size_t cut = 0; cut < l.len; cut++) { /* every truncation is an error */
        ck_assert_int_eq(import_dmlog((const char *)l.buf, cut, false, &t, NULL, &e),
                         BS_EPARSE);
    }
    free(l.buf);
}
END_TEST

Suite *suite_import_recorded(void)
{
    const TTest *tests[] = {
        test_blkparse_events,
        test_blkparse_devices_and_errors,
        test_dmlog_entries,
        test_dmlog_errors,
    };
    return tl_suite("import_recorded", tests, ARRAY_LEN(tests));
}
