/*
 * cmd_oracle: `blocksim oracle TRACE --target URI`: the trace's guest
 *   operations against a real implementation through libnbd (the real
 *   client library), every read judged by the same model as `replay`.
 *
 * Method: the target's contents are read first (they are the image the
 *   model starts from); then the operations run through libnbd's
 *   asynchronous calls, up to the queue depth in flight, a request waiting
 *   for the ones in flight that overlap it (so every read has one right
 *   answer); each completion feeds check_rw as a replay's guest request
 *   would. The first wrong read is a divergence: the sector, the write the
 *   model expected (with its trace line), what came back (an identified
 *   write with its line, zeroes, or unknown bytes shown as a hex excerpt).
 *   A failed request is reported as such, not as a divergence. Crash and
 *   restart records kill (SIGKILL) and restart a server the oracle
 *   started; the checker then applies the crash model. --bitmap reads
 *   qemu:dirty-bitmap:NAME at the start and the end and compares it, per
 *   granule, with what the trace wrote. Records the target cannot perform
 *   are refused up front.
 * Targets: an NBD URI (nbd://, nbd+unix://...), `qemu-nbd:IMAGE[?format=F]
 *   [&cache=C]` and `nbdkit:ARGS` (the server is started for the run, its
 *   life tied to the handle by systemd socket activation).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libnbd.h>

#include "../sim/base/content.h"
#include "../sim/check/check_rw.h"
#include "../sim/trace/import_fio.h"
#include "../sim/trace/trace.h"
#include "cli.h"

#define ORACLE_IMAGE_MAX (1ull << 30)
#define ORACLE_QD_MAX 256

struct oracle_args {
    const char *path;
    const char *target;
    const char *format;
    struct import_fio_opts fio; /* --align, --volume */
    uint64_t seed;
    bool has_seed;
    bool json;
    bool keep_going;
    bool quiet;         /* no progress line */
    unsigned qd;        /* --qd; 0: the trace's qd records, else 1 */
    uint64_t below;     /* --writes-only-below; 0: none */
    const char *bitmap; /* --bitmap NAME */
};

static void oracle_usage(FILE *out)
{
    fprintf(out,
            "usage: blocksim oracle TRACE --target URI [--qd N] [--bitmap NAME] [--seed N]\n"
            "                       [--writes-only-below S] [--json] [--keep-going] [--quiet]\n"
            "Replay TRACE's guest operations (reads, writes, FUA, flush, discard,\n"
            "write-zeroes, pattern writes) against a real implementation through libnbd,\n"
            "and judge every read with the model `blocksim replay` uses. The target's\n"
            "contents at the start are what the model starts from (targets up to 1G).\n\n"
            "  --target URI   an NBD URI (nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?\n"
            "                 socket=PATH), qemu-nbd:IMAGE[?format=raw|qcow2][&cache=C]\n"
            "                 or nbdkit:PLUGIN [ARGS] (the server starts for the run;\n"
            "                 crash and restart records kill it with SIGKILL and start\n"
            "                 it again over the same image)\n"
            "  --qd N         requests in flight (1..256; default: the trace's qd\n"
            "                 records, else 1); a request waits for the ones in flight\n"
            "                 that overlap it (reads may overlap reads)\n"
            "  --bitmap NAME  at the end, read the target's dirty bitmap NAME\n"
            "                 (qemu:dirty-bitmap:NAME) and compare it with what the\n"
            "                 trace wrote; the trace must add NAME (its granularity);\n"
            "                 bits set at the start must stay set. qemu-nbd targets\n"
            "                 (qcow2) get the bitmap added and exported for the run\n"
            "  --writes-only-below S\n"
            "                 leave the target alone from byte S on: a trace whose\n"
            "                 writes, write-zeroes or discards reach S is refused before\n"
            "                 anything runs (reads there must see the original data)\n"
            "  --seed N       content seed (default: the trace's, else 1)\n"
            "  --format F, --volume ID, --align POLICY\n"
            "                 how TRACE is read, as in blocksim replay --help\n"
            "  --json         print the result as JSON\n"
            "  --keep-going   go on after a divergence or a failed request\n"
            "  --quiet        no progress line (shown on a terminal otherwise)\n\n"
            "Records a target cannot perform (crash and restart of a target the oracle\n"
            "did not start, shutdown, jobs, bitmaps other than --bitmap's add, another\n"
            "topology than plain) are refused before anything runs. Exit status: 0\n"
            "every read agreed, 1 a divergence, a failed request, a broken connection\n"
            "or a bitmap difference, 2 usage, input or connection error.\n");
}

static int oracle_parse(struct oracle_args *a, int argc, char **argv)
{
    static const struct option options[] = {
        { "target", required_argument, NULL, 't' }, { "seed", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },         { "keep-going", no_argument, NULL, 'k' },
        { "format", required_argument, NULL, 'f' }, { "volume", required_argument, NULL, 'v' },
        { "align", required_argument, NULL, 'a' },  { "help", no_argument, NULL, 'h' },
        { "qd", required_argument, NULL, 'q' },     { "bitmap", required_argument, NULL, 'b' },
        { "writes-only-below", required_argument, NULL, 'w' },
        { "quiet", no_argument, NULL, 'Q' },
        { NULL, 0, NULL, 0 },
    };
    memset(a, 0, sizeof(*a));
    a->format = "auto";
    optind = 1;
    int c;
    while ((c = cli_getopt("oracle", argc, argv, options)) != -1) {
        switch (c) {
        case 't': a->target = optarg; break;
        case 's':
            a->has_seed = true;
            CLI_TRY(cli_parse_num("oracle", "--seed", optarg, &a->seed, false));
            break;
        case 'j': a->json = true; break;
        case 'k': a->keep_going = true; break;
        case 'Q': a->quiet = true; break;
        case 'f':
            CLI_TRY(trace_format_check("oracle", "--format", optarg, false));
            a->format = optarg;
            break;
        case 'v': a->fio.volume = optarg; break;
        case 'q': {
            uint64_t v;
            CLI_TRY(cli_parse_range("oracle", "--qd", optarg, &v, 1, ORACLE_QD_MAX));
            a->qd = (unsigned)v;
            break;
        }
        case 'b': a->bitmap = optarg; break;
        case 'w':
            CLI_TRY(cli_parse_num("oracle", "--writes-only-below", optarg, &a->below, true));
            if (a->below == 0) {
                cli_error("oracle", "--writes-only-below: expected a size above 0");
                return CLI_USAGE;
            }
            break;
        case 'a': CLI_TRY(cli_align_parse("oracle", optarg, &a->fio)); break;
        case 'h': oracle_usage(stdout); return -1;
        default: return CLI_USAGE;
        }
    }
    if (optind != argc - 1 || !a->target) {
        cli_error("oracle", "expected one TRACE and --target URI (see --help)");
        return CLI_USAGE;
    }
    a->path = argv[optind];
    return 0;
}

/* --bitmap: the trace's `bitmap add NAME` (before its first operation)
 * gives the granularity; 0 with the error printed when it has none. */
static uint64_t bitmap_gran(const struct trace *t, const char *name)
{
    for (size_t i = 0; i < t->n && !trace_kind_is_op(t->recs[i].kind); i++) {
        const struct trace_bitmap *b = t->recs[i].bm;
        if (t->recs[i].kind == TRACE_BITMAP && b->op == TRACE_BM_ADD &&
            strcmp(b->name, name) == 0) {
            return b->gran ? b->gran : 65536;
        }
    }
    cli_error("oracle", "--bitmap %s: the trace adds no bitmap %s before its first operation "
              "(its 'bitmap add' gives the granularity)", name, name);
    return 0;
}

/* A crash or restart record @i: the adapters that start their server
 * perform them (kill -9 of qemu-nbd or nbdkit, then the same command
 * again, over the same image) in their plain form:
 * a crash after the operations before it, then a restart before the next
 * operation. Else prints why not and returns CLI_USAGE. */
static int crash_check(const struct trace *t, size_t i, const struct oracle_args *a)
{
    const struct trace_rec *r = &t->recs[i];
    const char *why = NULL;
    bool down = false; /* a crash without its restart yet, before @i */
    for (size_t k = 0; k < i; k++) {
        down = t->recs[k].kind == TRACE_CRASH ? true
               : t->recs[k].kind == TRACE_RESTART ? false : down;
    }
    size_t next = i + 1;
    while (next < t->n && !trace_kind_is_op(t->recs[next].kind) &&
           t->recs[next].kind != TRACE_RESTART && t->recs[next].kind != TRACE_CRASH) {
        next++;
    }
    if (strncmp(a->target, "qemu-nbd:", 9) != 0 && strncmp(a->target, "nbdkit:", 7) != 0) {
        why = "only a server the oracle starts (qemu-nbd:, nbdkit:) can crash (kill -9, "
              "and the same command again)";
    } else if (a->bitmap) {
        why = "not with --bitmap (a killed qemu-nbd leaves its bitmap inconsistent)";
    } else if (r->has_at || r->host[0] || r->has_mode || r->plan) {
        why = "the oracle crashes a target after the operations before it, without @TIME, "
              "host=, mode=, at-flush= or plan=";
    } else if (r->kind == TRACE_CRASH && (down || next == t->n ||
                                         t->recs[next].kind != TRACE_RESTART)) {
        why = "a crash must be followed by a restart before the next operation";
    } else if (r->kind == TRACE_RESTART && !down) {
        why = "a restart must follow a crash";
    }
    if (why) {
        cli_error("oracle", "line %u: '%s': %s", r->line, trace_kind_name(r->kind), why);
        return CLI_USAGE;
    }
    return 0;
}

/* Every record is one the target can perform: ops, settings, comments,
 * --bitmap's add, and crashes of a server the oracle starts. */
static int records_check(const struct trace *t, const struct oracle_args *a, uint64_t size,
                         uint64_t *seed)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct trace_rec *r = &t->recs[i];
        switch (r->kind) {
        case TRACE_HEADER: case TRACE_BLANK: case TRACE_EXPECT: case TRACE_MARK:
            continue;
        case TRACE_QD:
            if (!a->qd && r->value > ORACLE_QD_MAX) {
                cli_error("oracle", "line %u: qd %" PRIu64 ": the oracle keeps at most %d "
                          "requests in flight", r->line, r->value, ORACLE_QD_MAX);
                return CLI_USAGE;
            }
            continue;
        case TRACE_SEED:
            *seed = r->value;
            continue;
        case TRACE_TOPOLOGY:
            if (r->cfg->topology == TRACE_TOPO_PLAIN) {
                continue;
            }
            break;
        case TRACE_BITMAP:
            if (a->bitmap && r->bm->op == TRACE_BM_ADD && strcmp(r->bm->name, a->bitmap) == 0) {
                continue; /* bitmap_gran checked where it stands */
            }
            break;
        case TRACE_CRASH:
        case TRACE_RESTART:
            CLI_TRY(crash_check(t, i, a));
            continue;
        case TRACE_READ: case TRACE_WRITE: case TRACE_FLUSH: case TRACE_DISCARD:
        case TRACE_ZERO:
            if (r->guest || r->export[0]) {
                break;
            }
            if (r->kind != TRACE_FLUSH && r->offset + r->len > size) {
                cli_error("oracle", "line %u: %s at %" PRIu64 "+%" PRIu64 " goes beyond the "
                          "target's %" PRIu64 " bytes", r->line, trace_kind_name(r->kind),
                          r->offset, r->len, size);
                return CLI_USAGE;
            }
            if (a->below && r->kind != TRACE_READ && r->kind != TRACE_FLUSH &&
                r->offset + r->len > a->below) {
                cli_error("oracle", "line %u: %s at %" PRIu64 "+%" PRIu64 " reaches byte %"
                          PRIu64 " (--writes-only-below)", r->line, trace_kind_name(r->kind),
                          r->offset, r->len, a->below);
                return CLI_USAGE;
            }
            continue;
        default:
            break;
        }
        cli_error("oracle", "line %u: '%s' cannot be performed on an NBD target (the oracle "
                  "runs a plain guest's operations)", r->line, trace_kind_name(r->kind));
        return CLI_USAGE;
    }
    return 0;
}

/* Run @argv (a NULL-terminated list) and wait: 0 when it exited 0. */
static int run_tool(char *const argv[])
{
    pid_t pid;
    int status;
    if (posix_spawnp(&pid, argv[0], NULL, NULL, argv, environ) != 0 ||
        waitpid(pid, &status, 0) != pid) {
        return -1;
    }
    return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/* Connect @h to @target: an URI, or a server started for the run. With
 * @bitmap (granularity @gran) a qemu-nbd target's image gets the bitmap
 * added (qemu-img bitmap --add) and exported (-B). */
static int oracle_connect(struct nbd_handle *h, const char *target, const char *bitmap,
                          uint64_t gran)
{
    char *args = NULL;
    int ret;
    if (strncmp(target, "qemu-nbd:", 9) == 0) {
        args = strdup(target + 9);
        const char *fmt = "raw";
        const char *cache = "none";
        char *q = strchr(args, '?');
        for (char *kv = q ? strtok(q + 1, "&") : NULL; kv; kv = strtok(NULL, "&")) {
            if (strncmp(kv, "format=", 7) == 0) {
                fmt = kv + 7;
            } else if (strncmp(kv, "cache=", 6) == 0) {
                cache = kv + 6;
            } else {
                cli_error("oracle", "--target %s: '%s': qemu-nbd targets take format= and "
                          "cache=", target, kv);
                free(args);
                return CLI_USAGE;
            }
        }
        if (q) {
            *q = '\0';
        }
        char cache_opt[64];
        snprintf(cache_opt, sizeof(cache_opt), "--cache=%s", cache);
        char g[32];
        snprintf(g, sizeof(g), "%" PRIu64, gran);
        char *add[] = { "qemu-img", "bitmap", "-f", (char *)fmt, "--add", "-g", g, args,
                        (char *)bitmap, NULL };
        if (bitmap && run_tool(add) < 0) {
            cli_error("oracle", "--target %s: qemu-img bitmap --add %s failed (a qcow2 image "
                      "without that bitmap is needed)", target, bitmap);
            free(args);
            return CLI_USAGE;
        }
        char *argv[] = { "qemu-nbd", "-f", (char *)fmt, cache_opt, args,
                         bitmap ? "-B" : NULL, (char *)bitmap, NULL };
        ret = nbd_connect_systemd_socket_activation(h, argv);
    } else if (strncmp(target, "nbdkit:", 7) == 0) {
        args = strdup(target + 7);
        char *argv[32] = { "nbdkit", "--exit-with-parent" };
        int n = 2;
        for (char *tok = strtok(args, " "); tok && n < 31; tok = strtok(NULL, " ")) {
            argv[n++] = tok;
        }
        argv[n] = NULL;
        ret = nbd_connect_systemd_socket_activation(h, argv);
    } else {
        ret = nbd_connect_uri(h, target);
    }
    free(args);
    if (ret < 0) {
        cli_error("oracle", "--target %s: %s", target, nbd_get_error());
        return CLI_USAGE;
    }
    return 0;
}

struct oracle_run;

/* One request in flight. */
struct slot {
    struct oracle_run *o;
    const struct trace_rec *r;
    uint64_t index;      /* guest operation index */
    uint64_t tag;        /* write: its content tag */
    uint64_t flush_seq;  /* flush: check_rw's submit sequence */
    uint8_t *buf;
    bool busy;
};

struct oracle_run {
    struct nbd_handle *h;
    struct check_rw c;
    uint8_t *image;
    uint64_t size;
    uint64_t seed;
    unsigned *line_of;   /* guest operation index -> trace line */
    uint64_t ops, reads, failed, diverged, waited;
    unsigned qd, inflight, inflight_max;
    uint64_t crashes;
    bool dead;           /* the connection broke: nothing more is submitted */
    bool keep_going;     /* --keep-going: a problem does not end the run */
    char first[640];     /* the first problem, or "" */
    struct violation first_v; /* the first divergence, as check_rw saw it */
    unsigned first_line;
    struct slot slots[ORACLE_QD_MAX];
    /* --bitmap: per granule, 0 clean, 1 dirty at the start, 2 must be
     * dirty (acknowledged write or write-zeroes), 3 may be (a discard or a
     * failed request); and the last trace line that touched it */
    const char *bitmap;
    uint64_t gran;
    uint8_t *want;
    unsigned *want_line;
    uint64_t granules, bs_at;
    uint8_t *got;
};

static bool never(void *opaque, uint64_t sector)
{
    (void)opaque;
    (void)sector;
    return false;
}

/* A tag as words with its writer's trace line. */
static void tag_words(const struct oracle_run *o, uint64_t tag, char *buf, size_t size)
{
    char name[48];
    check_tag_name(tag, name, sizeof(name));
    if (tag != CONTENT_TAG_ZERO && tag < CONTENT_TAG_SPECIAL && content_tag_op(tag) < o->ops) {
        snprintf(buf, size, "%s (trace line %u)", name, o->line_of[content_tag_op(tag)]);
    } else {
        snprintf(buf, size, "%s", name);
    }
}

static bool problem(struct oracle_run *o, unsigned line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Keep the words of the problem at the earliest trace line seen (requests
 * in flight together complete in any order); true when this one is kept. */
static bool problem(struct oracle_run *o, unsigned line, const char *fmt, ...)
{
    if (o->first[0] && line >= o->first_line) {
        return false;
    }
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(o->first, sizeof(o->first), fmt, ap);
    va_end(ap);
    o->first_line = line;
    return true;
}

static void diverged(struct oracle_run *o, const struct trace_rec *r, const uint8_t *buf)
{
    const struct violation *v = &o->c.first;
    char want[96];
    char got[96];
    tag_words(o, v->expected[0], want, sizeof(want));
    tag_words(o, v->actual, got, sizeof(got));
    char hex[100] = "";
    if (v->actual == CONTENT_TAG_GARBAGE) { /* the first bytes of what came back */
        const uint8_t *p = buf + (v->sector - r->offset / 512) * 512;
        size_t at = 0;
        for (unsigned k = 0; k < 16; k++) {
            at += (size_t)snprintf(hex + at, sizeof(hex) - at, "%02x%s", p[k], k == 15 ? "" : " ");
        }
    }
    o->diverged++;
    if (problem(o, r->line, "line %u: read %" PRIu64 "+%" PRIu64 ": sector %" PRIu64 " (byte %"
            PRIu64 ") holds %s%s%s%s, expected %s%s", r->line, r->offset, r->len, v->sector,
            v->sector * 512, got, hex[0] ? " [" : "", hex, hex[0] ? " ...]" : "", want,
            o->crashes ? " (durable before the server was killed: crash-consistency)" : "")) {
        o->first_v = *v; /* the kept divergence, for --json */
    }
    o->c.failed = false; /* --keep-going: judge on */
}

/* --bitmap: what @r (@ok: acknowledged) means for the granules it touches. */
static void bitmap_note(struct oracle_run *o, const struct trace_rec *r, bool ok)
{
    if (!o->want || r->kind == TRACE_READ || r->kind == TRACE_FLUSH || r->len == 0) {
        return;
    }
    uint8_t mark = ok && r->kind != TRACE_DISCARD ? 2 : 3;
    for (uint64_t g = r->offset / o->gran; g <= (r->offset + r->len - 1) / o->gran; g++) {
        if (mark == 2 ? o->want[g] != 2 : !o->want_line[g]) {
            o->want_line[g] = r->line; /* the first write that makes it dirty */
        }
        o->want[g] = o->want[g] == 2 ? 2 : mark;
    }
}

/* The connection broke (@why): nothing more is sent, and the problem is
 * named by the earliest request in flight (the one being sent included). */
static void broke(struct oracle_run *o, const char *why)
{
    if (o->dead) {
        return;
    }
    unsigned earliest = UINT_MAX;
    for (unsigned i = 0; i < ORACLE_QD_MAX; i++) {
        const struct slot *q = &o->slots[i];
        earliest = q->busy && q->r->line < earliest ? q->r->line : earliest;
    }
    earliest = earliest == UINT_MAX ? 0 : earliest;
    o->dead = true;
    problem(o, earliest, "the connection broke (%.200s) with %u request(s) in flight, the "
            "earliest from trace line %u", why, o->inflight, earliest);
}

/* Request @s ended with @err (0: success; else an errno, @why its words). */
static void op_finish(struct slot *s, int err, const char *why)
{
    struct oracle_run *o = s->o;
    const struct trace_rec *r = s->r;
    uint64_t first = r->offset / 512;
    uint64_t n = r->len / 512;
    bool ok = err == 0;
    switch (r->kind) {
    case TRACE_WRITE: check_rw_write_done(&o->c, first, n, s->tag, ok, r->fua); break;
    case TRACE_ZERO: check_rw_write_done(&o->c, first, n, CONTENT_TAG_ZERO, ok, r->fua); break;
    case TRACE_DISCARD: check_rw_discard_done(&o->c, first, n); break;
    case TRACE_FLUSH: check_rw_flush_done(&o->c, s->flush_seq, ok); break;
    default: /* read */
        o->reads += ok;
        if (ok && !check_rw_read_done(&o->c, s->buf, first, n, s->index, r->line, 0)) {
            diverged(o, r, s->buf);
        }
        break;
    }
    bitmap_note(o, r, ok);
    if (err == ENOTCONN || err == ECONNRESET || err == EPIPE || err == ESHUTDOWN) {
        broke(o, strerror(err));
    }
    if (!ok) {
        o->failed++;
        problem(o, r->line, "line %u: %s %" PRIu64 "+%" PRIu64 " failed: %.300s", r->line,
                trace_kind_name(r->kind), r->offset, r->len, why ? why : strerror(err));
    }
    mem_free(s->buf, s->buf ? r->len : 0);
    s->buf = NULL;
    s->busy = false;
    o->inflight--;
}

/* libnbd's completion callback (it retires the command: returns 1). */
static int op_done(void *user_data, int *error)
{
    struct slot *s = user_data;
    op_finish(s, *error, NULL);
    return 1;
}

/* Do @r's range and an in-flight request's overlap (two reads may)? */
static bool overlaps(const struct oracle_run *o, const struct trace_rec *r)
{
    for (unsigned i = 0; i < o->qd && r->kind != TRACE_FLUSH; i++) {
        const struct trace_rec *q = o->slots[i].r;
        if (o->slots[i].busy && q->kind != TRACE_FLUSH &&
            !(q->kind == TRACE_READ && r->kind == TRACE_READ) &&
            r->offset < q->offset + q->len && q->offset < r->offset + r->len) {
            return true;
        }
    }
    return false;
}

/* Run libnbd until a request completes; false when the connection broke. */
static bool oracle_poll(struct oracle_run *o)
{
    unsigned before = o->inflight;
    while (!o->dead && o->inflight == before) {
        if (nbd_poll(o->h, -1) < 0 || nbd_aio_is_dead(o->h) || nbd_aio_is_closed(o->h)) {
            broke(o, nbd_get_error());
        }
    }
    return !o->dead;
}

/* Submit @r once the queue has room and nothing in flight overlaps it. A
 * read overlapping a write in flight waits for it (as replay's guest does),
 * so every read has one right answer. */
static void oracle_op(struct oracle_run *o, const struct trace_rec *r)
{
    bool waited = false;
    while (!o->dead && (o->inflight >= o->qd || overlaps(o, r))) {
        waited |= o->inflight < o->qd;
        oracle_poll(o);
    }
    if (o->dead || (o->first[0] && !o->keep_going)) {
        return; /* a request that completed while this one waited ended the run */
    }
    o->waited += waited;
    struct slot *s = o->slots;
    while (s->busy) {
        s++;
    }
    *s = (struct slot){ .o = o, .r = r, .index = o->ops++, .busy = true };
    o->line_of[s->index] = r->line;
    o->inflight++;
    o->inflight_max = o->inflight > o->inflight_max ? o->inflight : o->inflight_max;
    uint32_t fua = r->fua ? LIBNBD_CMD_FLAG_FUA : 0;
    nbd_completion_callback cb = { .callback = op_done, .user_data = s };
    int64_t cookie;
    switch (r->kind) {
    case TRACE_WRITE:
        s->buf = mem_alloc(r->len);
        s->tag = r->has_pattern ? content_pattern_tag(r->pattern) : s->index + 1;
        if (r->has_pattern) {
            memset(s->buf, r->pattern, r->len);
        } else {
            content_fill(s->buf, o->seed, s->index + 1, r->offset / 512, r->len / 512);
        }
        cookie = nbd_aio_pwrite(o->h, s->buf, r->len, r->offset, cb, fua);
        break;
    case TRACE_ZERO: cookie = nbd_aio_zero(o->h, r->len, r->offset, cb, fua); break;
    case TRACE_DISCARD: cookie = nbd_aio_trim(o->h, r->len, r->offset, cb, 0); break;
    case TRACE_FLUSH:
        s->flush_seq = check_rw_flush_submit(&o->c);
        cookie = nbd_aio_flush(o->h, cb, 0);
        break;
    default:
        s->buf = mem_alloc(r->len);
        cookie = nbd_aio_pread(o->h, s->buf, r->len, r->offset, cb, 0);
        break;
    }
    if (cookie < 0) { /* refused before it was sent: the callback will not run */
        int err = nbd_get_errno();
        if (nbd_aio_is_dead(o->h) || nbd_aio_is_closed(o->h)) {
            broke(o, nbd_get_error());
        }
        op_finish(s, err ? err : EIO, nbd_get_error());
    }
}

/* Wait for every request in flight. */
static void oracle_drain(struct oracle_run *o)
{
    while (o->inflight > 0 && oracle_poll(o)) {
    }
}

/* A crash record: the server killed (-9) once what came before completed;
 * what it had not flushed may be lost, as the crash model allows. */
static int oracle_crash(struct oracle_run *o, const char *target)
{
    oracle_drain(o);
    if (o->dead || nbd_kill_subprocess(o->h, SIGKILL) < 0) {
        cli_error("oracle", "--target %s: cannot kill the server: %s", target,
                  o->dead ? "the connection broke first" : nbd_get_error());
        return CLI_USAGE;
    }
    nbd_close(o->h); /* reaps qemu-nbd */
    o->h = NULL;
    check_rw_crash(&o->c);
    o->crashes++;
    return 0;
}

/* A restart record: the same server command again. */
static int oracle_restart(struct oracle_run *o, const char *target)
{
    o->h = nbd_create();
    return o->h ? oracle_connect(o->h, target, NULL, 0) : CLI_USAGE;
}

/* The target's contents now: the model's starting image. */
static int oracle_image(struct oracle_run *o, const char *target)
{
    if (o->size > ORACLE_IMAGE_MAX || o->size % 512) {
        cli_error("oracle", "--target %s: %" PRIu64 " bytes: the oracle reads targets up to 1G "
                  "whole (in 512-byte sectors) first", target, o->size);
        return CLI_USAGE;
    }
    o->image = mem_alloc(o->size ? o->size : 1);
    for (uint64_t at = 0; at < o->size; at += 1u << 20) {
        uint64_t n = o->size - at < (1u << 20) ? o->size - at : 1u << 20;
        if (nbd_pread(o->h, o->image + at, n, at, 0) < 0) {
            cli_error("oracle", "--target %s: reading its contents: %s", target,
                      nbd_get_error());
            return CLI_USAGE;
        }
    }
    model_disk_image(&o->c.model, o->image, o->size);
    check_rw_image(&o->c, o->image, o->size);
    return 0;
}

/* ---- --bitmap: the target's dirty bitmap against the trace ---- */

static int extent_cb(void *user_data, const char *context, uint64_t offset, uint32_t *entries,
                     size_t n, int *error)
{
    struct oracle_run *o = user_data;
    (void)error;
    if (strncmp(context, "qemu:dirty-bitmap:", 18) != 0) {
        return 0;
    }
    uint64_t at = offset;
    for (size_t i = 0; i + 1 < n && at < o->size; i += 2) {
        uint64_t len = entries[i];
        bool dirty = (entries[i + 1] & 1) && len > 0;
        uint64_t last = dirty ? (at + len - 1) / o->gran : 0;
        for (uint64_t g = at / o->gran; dirty && g <= last && g < o->granules; g++) {
            o->got[g] = 1;
        }
        at += len;
    }
    o->bs_at = at > o->bs_at ? at : o->bs_at;
    return 0;
}

/* The target's bitmap now into o->got (1 dirty, per granule). */
static int bitmap_read(struct oracle_run *o)
{
    memset(o->got, 0, o->granules);
    o->bs_at = 0;
    while (o->bs_at < o->size) {
        uint64_t from = o->bs_at;
        nbd_extent_callback cb = { .callback = extent_cb, .user_data = o };
        if (nbd_block_status(o->h, o->size - from, from, cb, 0) < 0) {
            cli_error("oracle", "--bitmap %s: block status at byte %" PRIu64 ": %s", o->bitmap,
                      from, nbd_get_error());
            return CLI_USAGE;
        }
        if (o->bs_at <= from) {
            cli_error("oracle", "--bitmap %s: block status at byte %" PRIu64 " described "
                      "nothing of the bitmap", o->bitmap, from);
            return CLI_USAGE;
        }
    }
    return 0;
}

/* Connected: the bitmap is exported; bits set now must stay set. */
static int bitmap_start(struct oracle_run *o, const char *name, uint64_t gran)
{
    char ctx[128];
    snprintf(ctx, sizeof(ctx), "qemu:dirty-bitmap:%s", name);
    if (nbd_can_meta_context(o->h, ctx) != 1) {
        cli_error("oracle", "--bitmap %s: the target does not export %s (qemu-nbd -B %s)", name,
                  ctx, name);
        return CLI_USAGE;
    }
    o->bitmap = name;
    o->gran = gran;
    o->granules = (o->size + gran - 1) / gran;
    o->want = mem_alloc(o->granules + 1);
    o->got = mem_alloc(o->granules + 1);
    o->want_line = mem_alloc((o->granules + 1) * sizeof(*o->want_line));
    memset(o->want, 0, o->granules + 1);
    memset(o->want_line, 0, (o->granules + 1) * sizeof(*o->want_line));
    CLI_TRY(bitmap_read(o));
    for (uint64_t g = 0; g < o->granules; g++) {
        o->want[g] = o->got[g] ? 2 : 0;
    }
    return 0;
}

/* At the end: every granule the trace made dirty is, and no other is
 * (granules a discard or a failed request touched may be either). */
static int bitmap_compare(struct oracle_run *o, uint64_t *diffs)
{
    CLI_TRY(bitmap_read(o));
    for (uint64_t g = 0; g < o->granules; g++) {
        bool bad = (o->want[g] == 2 && !o->got[g]) || (o->want[g] == 0 && o->got[g]);
        if (!bad) {
            continue;
        }
        if (!(*diffs)++ && !o->first[0]) {
            char who[64] = "it was dirty at the start";
            if (o->want_line[g]) {
                snprintf(who, sizeof(who), "trace line %u wrote there", o->want_line[g]);
            }
            problem(o, o->want_line[g], "bitmap %s: bytes %" PRIu64 "+%" PRIu64 " (granularity "
                    "%" PRIu64 ") are %s, but %s", o->bitmap, g * o->gran, o->gran, o->gran,
                    o->got[g] ? "dirty" : "clean",
                    o->got[g] ? "nothing the trace did touched them" : who);
        }
    }
    return 0;
}

static void bitmap_free(struct oracle_run *o)
{
    if (o->want) {
        mem_free(o->want, o->granules + 1);
        mem_free(o->got, o->granules + 1);
        mem_free(o->want_line, (o->granules + 1) * sizeof(*o->want_line));
    }
}

static void oracle_print(const struct oracle_args *a, const struct oracle_run *o,
                         uint64_t bitmap_diffs)
{
    bool ok = !o->failed && !o->diverged && !bitmap_diffs;
    if (a->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I}",
                              "verdict", ok ? "pass" : "fail", "trace", a->path, "target",
                              a->target, "size", (json_int_t)o->size, "ops", (json_int_t)o->ops,
                              "reads", (json_int_t)o->reads, "sectors_checked",
                              (json_int_t)o->c.sectors_checked, "divergences",
                              (json_int_t)o->diverged, "failed_requests", (json_int_t)o->failed,
                              "in_flight_max", (json_int_t)o->inflight_max, "waited",
                              (json_int_t)o->waited, "bitmap_differences",
                              (json_int_t)bitmap_diffs);
        json_object_set_new(j, "crashes", json_integer((json_int_t)o->crashes));
        if (o->diverged) { /* as replay's report gives it */
            json_object_set_new(j, "violation", check_violation_json(&o->first_v));
        }
        if (!ok) {
            json_object_set_new(j, "first", json_string(o->first));
            json_object_set_new(j, "line", json_integer(o->first_line));
        }
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        fputc('\n', stdout);
        json_decref(j);
        return;
    }
    printf("oracle: %s against %s\n  verdict     %s\n  operations  %" PRIu64 ", %" PRIu64
           " reads judged (%" PRIu64 " sectors), %" PRIu64 " divergence(s), %" PRIu64
           " failed request(s)\n  queue       up to %u in flight, %" PRIu64 " waited for an "
           "overlapping one\n", a->path, a->target, ok ? "AGREE" : "DISAGREE", o->ops, o->reads,
           o->c.sectors_checked, o->diverged, o->failed, o->inflight_max, o->waited);
    if (o->crashes) {
        printf("  crashes     %" PRIu64 " (the server killed with SIGKILL and started again)\n",
               o->crashes);
    }
    if (o->bitmap) {
        printf("  bitmap      %s: %" PRIu64 " granule(s) of %" PRIu64 " bytes, %" PRIu64
               " difference(s)\n", o->bitmap, o->granules, o->gran, bitmap_diffs);
    }
    if (!ok) {
        printf("  first       %s\n", o->first);
    }
}

static double wall_now(void)
{
    /* The progress line only: never what the run does. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* On a terminal: operations done of @total, the rate, what was found, and
 * the time left at that rate. */
static void progress_line(const struct oracle_run *o, uint64_t total, double start)
{
    double secs = wall_now() - start;
    double rate = secs > 0 ? (double)o->ops / secs : 0;
    fprintf(stderr, "\roracle: %" PRIu64 " of %" PRIu64 " operations, %.0f ops/s, %" PRIu64
            " divergence(s), %" PRIu64 " failed, %.0f s left   ", o->ops, total, rate,
            o->diverged, o->failed, rate > 0 ? (double)(total - o->ops) / rate : 0.0);
}

/* Every record of @t in order, then the requests still in flight. */
static int oracle_records(struct oracle_run *o, const struct oracle_args *a,
                          const struct trace *t)
{
    int ret = 0;
    bool progress = isatty(2) && !a->quiet && !a->json;
    uint64_t total = 0;
    for (size_t i = 0; i < t->n; i++) {
        total += trace_kind_is_op(t->recs[i].kind);
    }
    double start = wall_now();
    double shown = start;
    for (size_t i = 0; i < t->n && ret == 0 && !o->dead; i++) {
        if (progress && wall_now() - shown >= 0.25) {
            progress_line(o, total, start);
            shown = wall_now();
        }
        const struct trace_rec *r = &t->recs[i];
        if (r->kind == TRACE_QD && !a->qd) {
            o->qd = (unsigned)r->value;
        }
        if (r->kind == TRACE_CRASH) {
            ret = oracle_crash(o, a->target);
        }
        if (r->kind == TRACE_RESTART) {
            ret = oracle_restart(o, a->target);
        }
        if (trace_kind_is_op(r->kind)) {
            oracle_op(o, r);
        }
        if (o->first[0] && !a->keep_going) {
            break;
        }
    }
    if (ret == 0) {
        oracle_drain(o);
    }
    if (progress && shown > start) {
        fprintf(stderr, "\r%100s\r", "");
    }
    return ret;
}

int cmd_oracle(int argc, char **argv)
{
    struct oracle_args a;
    int ret = oracle_parse(&a, argc, argv);
    if (ret != 0) {
        return ret < 0 ? CLI_OK : ret;
    }
    struct trace t;
    CLI_TRY(trace_load("oracle", a.path, &a.format, &a.fio, &t));
    uint64_t gran = a.bitmap ? bitmap_gran(&t, a.bitmap) : 0;
    if (a.bitmap && !gran) {
        trace_fini(&t);
        return CLI_USAGE;
    }
    struct oracle_run *o = mem_alloc(sizeof(*o));
    memset(o, 0, sizeof(*o));
    o->h = nbd_create();
    o->seed = 1;
    o->qd = a.qd ? a.qd : 1;
    o->keep_going = a.keep_going;
    char ctx[128];
    snprintf(ctx, sizeof(ctx), "qemu:dirty-bitmap:%s", a.bitmap ? a.bitmap : "");
    ret = o->h && (!a.bitmap || nbd_add_meta_context(o->h, ctx) == 0) ? 0 : CLI_USAGE;
    ret = ret == 0 ? oracle_connect(o->h, a.target, a.bitmap, gran) : ret;
    int64_t size = ret == 0 ? nbd_get_size(o->h) : -1;
    o->size = size > 0 ? (uint64_t)size : 0;
    ret = ret == 0 && size < 0 ? (cli_error("oracle", "--target: %s", nbd_get_error()),
                                  CLI_USAGE) : ret;
    ret = ret == 0 ? records_check(&t, &a, o->size, &o->seed) : ret;
    o->seed = a.has_seed ? a.seed : o->seed;
    check_rw_init(&o->c, o->seed, never, NULL);
    ret = ret == 0 ? oracle_image(o, a.target) : ret;
    ret = ret == 0 && a.bitmap ? bitmap_start(o, a.bitmap, gran) : ret;
    o->line_of = mem_alloc((t.n + 1) * sizeof(*o->line_of));
    ret = ret == 0 ? oracle_records(o, &a, &t) : ret;
    uint64_t diffs = 0;
    if (ret == 0 && a.bitmap && !o->dead) {
        ret = bitmap_compare(o, &diffs);
    }
    if (ret == 0) {
        oracle_print(&a, o, diffs);
        ret = o->failed || o->diverged || diffs || o->dead ? CLI_FAIL : CLI_OK;
    }
    if (o->h) {
        nbd_shutdown(o->h, 0);
        nbd_close(o->h);
    }
    for (unsigned i = 0; i < ORACLE_QD_MAX; i++) { /* a broken connection's leftovers */
        mem_free(o->slots[i].buf, o->slots[i].buf ? o->slots[i].r->len : 0);
    }
    mem_free(o->line_of, (t.n + 1) * sizeof(*o->line_of));
    mem_free(o->image, o->image ? (o->size ? o->size : 1) : 0);
    bitmap_free(o);
    check_rw_fini(&o->c);
    mem_free(o, sizeof(*o));
    trace_fini(&t);
    return ret;
}
