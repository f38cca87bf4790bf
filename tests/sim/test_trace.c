/* Tests of sim/trace: the native format, lossless, errors located. */
#include "../../sim/trace/trace.h"
#include "../suites.h"
#include "../testlib.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char sample[] =
    "blocksim-trace v1\n"
    "# a comment\n"
    "\n"
    "seed 9\n"
    "topology overlay size=64M cluster=4K\n"
    "disk base cache=1M latency=20us-200us flush=1ms atomic=no\n"
    "fault write-eio disk=base prob=0.5 times=2\n"
    "qd 4\n"
    "write  0 4096   # two spaces, trailing comment\n"
    "@5ms write 4096 512 fua\n"
    "read 0 8192\n"
    "flush\n"
    "zero 0 512\n"
    "discard 8192 4096\n"
    "crash mode=tear\n"
    "@1s restart\n"
    "commit\n"
    "make-empty\n"
    "expect verdict pass\n"
    "expect digest 00000000000000ff\n"
    "last line without newline";

START_TEST(test_trace_lossless)
{
    /* The sample's last line is not a record: parse the part before it. */
    size_t len = strlen(sample) - strlen("last line without newline");
    struct trace t;
    struct err e = { .file = "sample" };
    ck_assert_int_eq(trace_parse(&t, sample, len, &e), 0);
    ck_assert_uint_eq(t.n, 20);
    ck_assert_int_eq(t.recs[9].kind, TRACE_WRITE);
    ck_assert(t.recs[9].has_at && t.recs[9].fua);
    ck_assert_uint_eq(t.recs[9].at_ns, 5000000);
    ck_assert_ptr_null(t.recs[9].text);      /* canonical: no copy kept */
    ck_assert_ptr_nonnull(t.recs[8].text);   /* spaced: source kept */
    size_t out_len;
    char *out = trace_print_string(&t, false, &out_len);
    ck_assert_uint_eq(out_len, len);
    ck_assert(memcmp(out, sample, len) == 0);
    free(out);
    /* Canonical form re-parses to the same records. */
    out = trace_print_string(&t, true, &out_len);
    struct trace back;
    ck_assert_int_eq(trace_parse(&back, out, out_len, &e), 0);
    ck_assert_uint_eq(back.n, t.n);
    for (size_t i = 0; i < t.n; i++) {
        ck_assert_msg(trace_rec_equal(&t.recs[i], &back.recs[i]), "record %zu", i);
    }
    free(out);
    trace_fini(&back);
    trace_fini(&t);
}
END_TEST

START_TEST(test_trace_no_final_newline)
{
    static const char text[] = "blocksim-trace v1\r\nwrite 0 512";
    struct trace t;
    ck_assert_int_eq(trace_parse(&t, text, strlen(text), NULL), 0);
    size_t len;
    char *out = trace_print_string(&t, false, &len);
    ck_assert_uint_eq(len, strlen(text));
    ck_assert(memcmp(out, text, len) == 0);
    free(out);
    trace_fini(&t);
}
END_TEST

/* Malformed traces: line, field and message. */
static const struct tl_bad_case bad_traces[] = {
    { "", 1, 0, "empty file" },
    { "hello\n", 1, 1, "not a blocksim trace" },
    { "blocksim-trace v2\n", 1, 2, "not supported" },
    { "blocksim-trace v1\nwrite 0\n", 2, 3, "needs 1 more" },
    { "blocksim-trace v1\nwrite 0 100\n", 2, 3, "multiple of 512" },
    { "blocksim-trace v1\nwrite x 512\n", 2, 2, "unsigned integer" },
    { "blocksim-trace v1\nread 0 512 fua\n", 2, 4,
      "export=DISK or guest=primary|secondary, got 'fua'" },
    { "blocksim-trace v1\nwrite 0 512 export=fl\n", 2, 4, "got 'export=fl'" },
    { "blocksim-trace v1\nwrite 0 512 guest=tertiary\n", 2, 4, "primary or secondary" },
    { "blocksim-trace v1\nflush now\n", 2, 2, "expected guest=" },
    { "blocksim-trace v1\nreplication begin\n", 2, 2, "start, checkpoint, get-error or stop" },
    { "blocksim-trace v1\nreplication start failover\n", 2, 3, "expected host=NAME" },
    { "blocksim-trace v1\nreplication stop failover failover\n", 2, 4, "'failover' or" },
    { "blocksim-trace v1\ncolo checkpoint now\n", 2, 3, "unexpected field" },
    { "blocksim-trace v1\ncolo resync\n", 2, 2, "checkpoint, failover or primary-alone" },
    { "blocksim-trace v1\ntopology colo variant=v5\n", 2, 3, "modern, v12 or v4" },
    { "blocksim-trace v1\ntopology colo backup-cluster=3K\n", 2, 3, "power of two" },
    { "blocksim-trace v1\ntopology colo children=2\n", 2, 3, "unknown topology option" },
    { "blocksim-trace v1\nseed 1\nfrobnicate\n", 3, 1, "unknown record" },
    { "blocksim-trace v1\n@5ms seed 1\n", 2, 1, "cannot carry @TIME" },
    { "blocksim-trace v1\n@5 write 0 512\n", 2, 1, "with a unit" },
    { "blocksim-trace v1\nread 0 0\n", 2, 3, "at least 512" },
    { "blocksim-trace v1\nread 0 134217728\n", 2, 3, "over the 64M a read or write" },
    { "blocksim-trace v1\ndiscard 0 4294967808\n", 2, 3, "over the 4G-512" },
    { "blocksim-trace v1\nmutant nope\n", 2, 2, "unknown mutant" },
    { "blocksim-trace v1\nread 0 512 pattern=0x5a\n", 2, 4, "got 'pattern=0x5a'" },
    { "blocksim-trace v1\nwrite 0 512 pattern=0x100\n", 2, 4, "a byte" },
    { "blocksim-trace v1\ncrash plan=kx\n", 2, 2, "plan:" },
    { "blocksim-trace v1\ncrash at-flush=0\n", 2, 2, "counts from 1" },
    { "blocksim-trace v1\nfault write-eio after=5\n", 2, 3, "" },
    { "blocksim-trace v1\n@fast write 0 512\n", 2, 1, "@TIME" },
    { "blocksim-trace v1\nfault write-eio prob=x\n", 2, 3, "probability" },
    { "blocksim-trace v1\ncrash mode=melt\n", 2, 2, "mode=prefix" },
    { "blocksim-trace v1\ntopology star\n", 2, 2, "unknown topology" },
    { "blocksim-trace v1\ntopology quorum children=9\n", 2, 3, "1..8" },
    { "blocksim-trace v1\ntopology quorum children=3 threshold=4\n", 2, 2,
      "threshold=4 exceeds children=3" },
    { "blocksim-trace v1\ntopology quorum children=2 nbd=3\n", 2, 2, "nbd=3 exceeds" },
    { "blocksim-trace v1\ntopology quorum children=2 ignore=2\n", 2, 2, "beyond" },
    { "blocksim-trace v1\ntopology quorum cluster=64K\n", 2, 3, "unknown topology option" },
    { "blocksim-trace v1\ntopology quorum read-pattern=lifo\n", 2, 3, "unknown topology" },
    { "blocksim-trace v1\ndisk d0 latency=5ms-1ms\n", 2, 3, "MIN <= MAX" },
    { "blocksim-trace v1\nexpect digest 12\n", 2, 3, "16 hex digits" },
    { "blocksim-trace v1\nqd 0\n", 2, 2, "1..1024" },
    { "blocksim-trace v1\nbitmap add\n", 2, 3, "needs 1 more" },
    { "blocksim-trace v1\nbitmap add a/b\n", 2, 3, "bad bitmap name" },
    { "blocksim-trace v1\nbitmap add a granularity=256\n", 2, 4, "512..2G" },
    { "blocksim-trace v1\nbitmap add a persistent loud\n", 2, 5, "unknown bitmap add" },
    { "blocksim-trace v1\nbitmap clear a persistent\n", 2, 4, "unexpected field" },
    { "blocksim-trace v1\nbitmap merge a\n", 2, 4, "needs 1 more" },
    { "blocksim-trace v1\nbitmap paint a\n", 2, 2, "unknown bitmap operation" },
    { "blocksim-trace v1\nshutdown now\n", 2, 2, "expected host=NAME" },
    { "blocksim-trace v1\nrestart host=S1\n", 2, 2, "a-z 0-9" },
};

START_TEST(test_trace_errors_name_line_and_field)
{
    const struct tl_bad_case *cases = bad_traces;
    for (size_t i = 0; i < ARRAY_LEN(bad_traces); i++) {
        struct trace t;
        struct err e = { .file = "bad" };
        ck_assert_int_eq(trace_parse(&t, cases[i].text, strlen(cases[i].text), &e), BS_EPARSE);
        ck_assert_msg(e.line == cases[i].line && e.field == cases[i].field,
                      "case %zu: line %u field %u (%s)", i, e.line, e.field, e.msg);
        ck_assert_msg(strstr(e.msg, cases[i].msg) != NULL, "case %zu: %s", i, e.msg);
        ck_assert_uint_eq(t.n, 0);
    }
    /* Lengths: a discard or write-zeroes may span 4G-512 (NBD's limit), as
     * nbd-serve --trace-out records them; a mutant record round-trips. */
    static const char ok[] = "blocksim-trace v1\nmutant disk-flush-noop\n"
                             "disk d0 cache=1M image=base.raw\n"
                             "discard 0 4294966784\nzero 0 1073741824\n"
                             "write 0 4096 fua pattern=0x5a\nwrite 4096 512 pattern=0x00\n"
                             "crash at-flush=3 plan=k3-2t/-k tear-seed=9\n";
    struct trace t;
    struct err e = { .file = "ok" };
    ck_assert_int_eq(trace_parse(&t, ok, strlen(ok), &e), 0);
    ck_assert_int_eq(t.recs[1].kind, TRACE_MUTANT);
    size_t n;
    char *text = trace_print_string(&t, true, &n);
    ck_assert_str_eq(text, ok);
    free(text);
    trace_fini(&t);
    /* A crash plan of defaults ('tear-seed=0') is no plan: its canonical
     * form ('crash') parses back equal (found by fuzz_trace). */
    static const char zero[] = "blocksim-trace v1\ncrash tear-seed=0\n";
    ck_assert_int_eq(trace_parse(&t, zero, strlen(zero), &e), 0);
    ck_assert_int_eq(t.recs[t.n - 1].kind, TRACE_CRASH);
    ck_assert_ptr_null(t.recs[t.n - 1].plan);
    text = trace_print_string(&t, true, &n);
    ck_assert_str_eq(text, "blocksim-trace v1\ncrash\n");
    struct trace back;
    ck_assert_int_eq(trace_parse(&back, text, n, &e), 0);
    ck_assert(trace_equal(&t, &back));
    trace_fini(&back);
    free(text);
    trace_fini(&t);
    /* Raw bytes in an unknown record reach the message escaped. */
    static const char raw[] = "blocksim-trace v1\n\x1b[31mred\n";
    ck_assert_int_eq(trace_parse(&t, raw, strlen(raw), &e), BS_EPARSE);
    char msg[1200];
    err_format(&e, msg, sizeof(msg));
    ck_assert_ptr_null(strchr(msg, 0x1b));
    ck_assert_ptr_nonnull(strstr(msg, "\\x1b[31mred"));
}
END_TEST

START_TEST(test_trace_bitmap_records)
{
    static const char text[] =
        "blocksim-trace v1\n"
        "bitmap add inc granularity=64K persistent disabled\n"
        "bitmap  add b\n"
        "bitmap merge b inc\n"
        "bitmap successor inc\n"
        "bitmap reclaim inc\n"
        "@2ms shutdown\n";
    struct trace t;
    struct err e = { .file = "bm" };
    ck_assert_int_eq(trace_parse(&t, text, strlen(text), &e), 0);
    ck_assert_uint_eq(t.n, 7);
    const struct trace_bitmap *b = t.recs[1].bm;
    ck_assert_int_eq(b->op, TRACE_BM_ADD);
    ck_assert_str_eq(b->name, "inc");
    ck_assert_uint_eq(b->gran, 65536);
    ck_assert(b->persistent && b->disabled);
    ck_assert_ptr_nonnull(t.recs[2].text); /* two blanks: the source is kept */
    ck_assert_str_eq(t.recs[3].bm->src, "b");
    ck_assert_str_eq(t.recs[3].bm->name, "inc");
    ck_assert_int_eq(t.recs[6].kind, TRACE_SHUTDOWN);
    ck_assert(t.recs[6].has_at);
    size_t len;
    char *out = trace_print_string(&t, true, &len);
    ck_assert(strstr(out, "bitmap add b\nbitmap merge b inc\n") != NULL);
    struct trace back;
    ck_assert_int_eq(trace_parse(&back, out, len, &e), 0);
    ck_assert(trace_equal(&t, &back));
    ck_assert(!trace_rec_equal(&t.recs[1], &t.recs[2]));
    free(out);
    trace_fini(&back);
    trace_fini(&t);
}
END_TEST

/* Job records: every option parses, prints in one canonical order and
 * parses back equal; bad ones name their field. */
START_TEST(test_trace_job_records)
{
    static const char text[] =
        "blocksim-trace v1\n"
        "disk tgt size=1M host=primary backing=guest\n"
        "job backup b1 speed=1M target=tgt sync=top cluster=128K on-target-error=stop "
        "auto-dismiss=off\n"
        "job mirror m1 target=tgt sync=full granularity=64K buf-size=1M "
        "copy-mode=write-blocking on-source-error=enospc auto-finalize=off\n"
        "job commit c1 speed=4M\n"
        "job cancel b1 force\n"
        "job cancel m1\n"
        "job set-speed b1 2M\n"
        "job wait m1 ready\n"
        "job pause b1\n";
    struct trace t;
    struct err e = { .file = "job" };
    ck_assert_int_eq(trace_parse(&t, text, strlen(text), &e), 0);
    const struct trace_job *b = t.recs[2].job;
    ck_assert_int_eq(b->op, TRACE_JOB_BACKUP);
    ck_assert_str_eq(b->id, "b1");
    ck_assert_str_eq(b->target, "tgt");
    ck_assert_int_eq(b->sync, TRACE_SYNC_TOP);
    ck_assert_uint_eq(b->cluster, 131072);
    ck_assert_uint_eq(b->speed, 1 << 20);
    ck_assert(b->has_on_target_error && b->on_target_error == TRACE_POL_STOP);
    ck_assert(!b->auto_dismiss && b->auto_finalize);
    ck_assert_str_eq(t.recs[1].cfg->host, "primary");
    ck_assert_str_eq(t.recs[1].cfg->backing, "guest");
    ck_assert(t.recs[5].job->force && !t.recs[6].job->force);
    ck_assert_int_eq(t.recs[8].job->state, TRACE_WAIT_READY);
    size_t len;
    char *out = trace_print_string(&t, true, &len);
    ck_assert_msg(strstr(out, "job backup b1 target=tgt sync=top speed=1M cluster=128K "
                              "on-target-error=stop auto-dismiss=off\n") != NULL, "%s", out);
    ck_assert(strstr(out, "job set-speed b1 2M\n") != NULL);
    struct trace back;
    ck_assert_int_eq(trace_parse(&back, out, len, &e), 0);
    ck_assert(trace_equal(&t, &back));
    ck_assert(!trace_rec_equal(&t.recs[5], &t.recs[6]));
    free(out);
    trace_fini(&back);
    trace_fini(&t);

    static const struct { const char *line; unsigned field; const char *msg; } bad[] = {
        { "job backup b target=t", 2, "needs sync=MODE" },
        { "job backup b sync=full", 2, "needs target=DISK" },
        { "job backup b target=t sync=fast", 5, "sync: expected full, top, none" },
        { "job mirror m target=t sync=none", 5, "sync: expected full or top" },
        { "job backup b target=t sync=full copy-mode=background", 6, "unknown option" },
        { "job backup b target=t sync=full speed=1M speed=2M", 7, "given twice" },
        { "job backup b target=t sync=full on-source-error=retry", 6, "expected report, "
          "ignore, stop, enospc or auto" },
        { "job backup b target=t sync=full auto-finalize=yes", 6, "expected on or off" },
        { "job mirror m target=t granularity=3000", 5, "power of two" },
        { "job wait b done", 4, "expected ready, pending or concluded" },
        { "job cancel b now", 4, "expected 'force'" },
        { "job launch b", 2, "unknown job operation 'launch'" },
        { "job pause", 3, "needs 1 more field" },
        { "job pause a=b", 3, "bad job id" },
        { "disk t size=1M host=", 4, "unknown disk option" },
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        char buf[256];
        snprintf(buf, sizeof(buf), "blocksim-trace v1\n%s\n", bad[i].line);
        struct trace x;
        struct err ex = { .file = "job" };
        ck_assert_msg(trace_parse(&x, buf, strlen(buf), &ex) == BS_EPARSE, "case %zu", i);
        ck_assert_msg(ex.line == 2 && ex.field == bad[i].field, "case %zu: line %u field %u",
                      i, ex.line, ex.field);
        ck_assert_msg(strstr(ex.msg, bad[i].msg) != NULL, "case %zu: %s", i, ex.msg);
    }
}
END_TEST

/* COLO records: the topology's options, replication and colo records and
 * guest= parse, print canonically and parse back equal. */
START_TEST(test_trace_colo_records)
{
    static const char text[] =
        "blocksim-trace v1\n"
        "topology colo size=4M cluster=64K backup-cluster=128K variant=v12\n"
        "write 0 4096 fua guest=secondary\n"
        "flush guest=secondary\n"
        "read 0 512 guest=primary\n"
        "replication start host=secondary\n"
        "replication stop failover host=secondary\n"
        "replication get-error\n"
        "colo checkpoint\n"
        "colo primary-alone\n";
    struct trace t;
    struct err e = { .file = "colo" };
    ck_assert_int_eq(trace_parse(&t, text, strlen(text), &e), 0);
    ck_assert_int_eq(t.recs[1].cfg->topology, TRACE_TOPO_COLO);
    ck_assert_int_eq(t.recs[1].cfg->variant, TRACE_VARIANT_V12);
    ck_assert_uint_eq(t.recs[1].cfg->backup_cluster, 131072);
    ck_assert(t.recs[2].guest == 1 && t.recs[2].fua);
    ck_assert(t.recs[3].guest == 1 && t.recs[4].guest == 0);
    ck_assert_int_eq(t.recs[5].kind, TRACE_REPLICATION);
    ck_assert(t.recs[5].sub == TRACE_REPL_START && !t.recs[5].failover);
    ck_assert_str_eq(t.recs[5].host, "secondary");
    ck_assert(t.recs[6].sub == TRACE_REPL_STOP && t.recs[6].failover);
    ck_assert(t.recs[8].kind == TRACE_COLO && t.recs[8].sub == TRACE_COLO_CHECKPOINT);
    ck_assert_int_eq(t.recs[9].sub, TRACE_COLO_PRIMARY_ALONE);
    ck_assert(!trace_rec_equal(&t.recs[2], &t.recs[4]));
    size_t len;
    char *out = trace_print_string(&t, true, &len);
    ck_assert_msg(strstr(out, "read 0 512\n") != NULL, "%s", out); /* guest=primary: default */
    ck_assert(strstr(out, "write 0 4096 fua guest=secondary\n") != NULL);
    ck_assert(strstr(out, "replication stop failover host=secondary\n") != NULL);
    struct trace back;
    ck_assert_int_eq(trace_parse(&back, out, len, &e), 0);
    ck_assert(trace_equal(&t, &back));
    free(out);
    trace_fini(&back);
    trace_fini(&t);
}
END_TEST

Suite *suite_trace(void)
{
    const TTest *tests[] = {
        test_trace_colo_records,
        test_trace_job_records,
        test_trace_bitmap_records,
        test_trace_lossless,
        test_trace_no_final_newline,
        test_trace_errors_name_line_and_field,
    };
    return tl_suite("trace", tests, ARRAY_LEN(tests));
}

