/*
 * cmd_oracle: `blocksim oracle TRACE --target URI`: the trace's guest
 *   operations against a real implementation through libnbd (the real
 *   client library), every read judged by the same model as `replay`.
 *
 * Method: the target's contents are read first (they are the image the
 *   model starts from); then each operation runs synchronously, in trace
 *   order (queue depth 1), and its outcome feeds check_rw as a replay's
 *   guest request would. The first wrong read is a divergence: the sector,
 *   the write the model expected (with its trace line), what came back
 *   (an identified write with its line, zeroes, or unknown bytes shown as a
 *   hex excerpt). A failed request is reported as such, not as a
 *   divergence. Records the target cannot perform are refused up front.
 * Targets: an NBD URI (nbd://, nbd+unix://...), `qemu-nbd:IMAGE[?format=F]`
 *   and `nbdkit:ARGS` (the server is started for the run, its life tied to
 *   the handle by systemd socket activation).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <libnbd.h>

#include "../sim/base/content.h"
#include "../sim/check/check_rw.h"
#include "../sim/trace/import_fio.h"
#include "../sim/trace/trace.h"
#include "cli.h"

#define ORACLE_IMAGE_MAX (1ull << 30)

struct oracle_args {
    const char *path;
    const char *target;
    const char *format;
    struct import_fio_opts fio; /* --align, --volume */
    uint64_t seed;
    bool has_seed;
    bool json;
    bool keep_going;
};

static void oracle_usage(FILE *out)
{
    fprintf(out,
            "usage: blocksim oracle TRACE --target URI [--seed N] [--json] [--keep-going]\n"
            "Replay TRACE's guest operations (reads, writes, FUA, flush, discard,\n"
            "write-zeroes, pattern writes) against a real implementation through libnbd,\n"
            "and judge every read with the model `blocksim replay` uses. The target's\n"
            "contents at the start are what the model starts from (targets up to 1G).\n\n"
            "  --target URI   an NBD URI (nbd://HOST[:PORT]/EXPORT, nbd+unix:///EXPORT?\n"
            "                 socket=PATH), qemu-nbd:IMAGE[?format=raw|qcow2] or\n"
            "                 nbdkit:PLUGIN [ARGS] (the server starts for the run)\n"
            "  --seed N       content seed (default: the trace's, else 1)\n"
            "  --format F, --volume ID, --align POLICY\n"
            "                 how TRACE is read, as in blocksim replay --help\n"
            "  --json         print the result as JSON\n"
            "  --keep-going   go on after a divergence or a failed request\n\n"
            "Records a target cannot perform (crash, restart, shutdown, jobs, bitmaps,\n"
            "topology actions, another topology than plain) are refused before anything\n"
            "runs. Exit status: 0 every read agreed, 1 a divergence or a failed request,\n"
            "2 usage, input or connection error.\n");
}

static int oracle_parse(struct oracle_args *a, int argc, char **argv)
{
    static const struct option options[] = {
        { "target", required_argument, NULL, 't' }, { "seed", required_argument, NULL, 's' },
        { "json", no_argument, NULL, 'j' },         { "keep-going", no_argument, NULL, 'k' },
        { "format", required_argument, NULL, 'f' }, { "volume", required_argument, NULL, 'v' },
        { "align", required_argument, NULL, 'a' },  { "help", no_argument, NULL, 'h' },
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
        case 'f':
            CLI_TRY(trace_format_check("oracle", "--format", optarg, false));
            a->format = optarg;
            break;
        case 'v': a->fio.volume = optarg; break;
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

/* Every record is one the target can perform: ops, settings, comments. */
static int records_check(const struct trace *t, uint64_t size, uint64_t *seed)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct trace_rec *r = &t->recs[i];
        switch (r->kind) {
        case TRACE_HEADER: case TRACE_BLANK: case TRACE_QD: case TRACE_EXPECT:
        case TRACE_MARK:
            continue;
        case TRACE_SEED:
            *seed = r->value;
            continue;
        case TRACE_TOPOLOGY:
            if (r->cfg->topology == TRACE_TOPO_PLAIN) {
                continue;
            }
            break;
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

/* Connect @h to @target: an URI, or a server started for the run. */
static int oracle_connect(struct nbd_handle *h, const char *target)
{
    char *args = NULL;
    int ret;
    if (strncmp(target, "qemu-nbd:", 9) == 0) {
        args = strdup(target + 9);
        char *q = strstr(args, "?format=");
        const char *fmt = q ? q + 8 : "raw";
        if (q) {
            *q = '\0';
        }
        char *argv[] = { "qemu-nbd", "-f", (char *)fmt, "--cache=none", args, NULL };
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

struct oracle_run {
    struct nbd_handle *h;
    struct check_rw c;
    uint8_t *image;
    uint64_t size;
    unsigned *line_of;   /* guest operation index -> trace line */
    uint64_t ops, reads, failed, diverged;
    char first[640];     /* the first problem, or "" */
    unsigned first_line;
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
    if (!o->first[0]) {
        snprintf(o->first, sizeof(o->first), "line %u: read %" PRIu64 "+%" PRIu64 ": sector %"
                 PRIu64 " (byte %" PRIu64 ") holds %s%s%s%s, expected %s", r->line, r->offset,
                 r->len, v->sector, v->sector * 512, got, hex[0] ? " [" : "", hex,
                 hex[0] ? " ...]" : "", want);
        o->first_line = r->line;
    }
    o->c.failed = false; /* --keep-going: judge on */
}

/* One operation against the target, judged. */
static void oracle_op(struct oracle_run *o, const struct trace_rec *r, uint64_t seed)
{
    uint64_t index = o->ops++;
    o->line_of[index] = r->line;
    uint64_t first = r->offset / 512;
    uint64_t n = r->len / 512;
    uint32_t fua = r->fua ? LIBNBD_CMD_FLAG_FUA : 0;
    uint8_t *buf = r->kind == TRACE_READ || r->kind == TRACE_WRITE ? mem_alloc(r->len) : NULL;
    int ret;
    switch (r->kind) {
    case TRACE_WRITE: {
        uint64_t tag = r->has_pattern ? content_pattern_tag(r->pattern) : index + 1;
        if (r->has_pattern) {
            memset(buf, r->pattern, r->len);
        } else {
            content_fill(buf, seed, index + 1, first, n);
        }
        ret = nbd_pwrite(o->h, buf, r->len, r->offset, fua);
        check_rw_write_done(&o->c, first, n, tag, ret == 0, r->fua);
        break;
    }
    case TRACE_ZERO:
        ret = nbd_zero(o->h, r->len, r->offset, fua);
        check_rw_write_done(&o->c, first, n, CONTENT_TAG_ZERO, ret == 0, r->fua);
        break;
    case TRACE_DISCARD:
        ret = nbd_trim(o->h, r->len, r->offset, 0);
        check_rw_discard_done(&o->c, first, n);
        break;
    case TRACE_FLUSH: {
        uint64_t seq = check_rw_flush_submit(&o->c);
        ret = nbd_flush(o->h, 0);
        check_rw_flush_done(&o->c, seq, ret == 0);
        break;
    }
    default: /* read */
        ret = nbd_pread(o->h, buf, r->len, r->offset, 0);
        o->reads += ret == 0;
        if (ret == 0 && !check_rw_read_done(&o->c, buf, first, n, index, r->line, 0)) {
            diverged(o, r, buf);
        }
        break;
    }
    if (ret < 0) {
        o->failed++;
        if (!o->first[0]) {
            snprintf(o->first, sizeof(o->first), "line %u: %s %" PRIu64 "+%" PRIu64 " failed: "
                     "%.300s", r->line, trace_kind_name(r->kind), r->offset, r->len,
                     nbd_get_error());
            o->first_line = r->line;
        }
    }
    mem_free(buf, buf ? r->len : 0);
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

static void oracle_print(const struct oracle_args *a, const struct oracle_run *o)
{
    bool ok = !o->failed && !o->diverged;
    if (a->json) {
        json_t *j = json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "verdict",
                              ok ? "pass" : "fail", "trace", a->path, "target", a->target,
                              "size", (json_int_t)o->size, "ops", (json_int_t)o->ops, "reads",
                              (json_int_t)o->reads, "sectors_checked",
                              (json_int_t)o->c.sectors_checked, "divergences",
                              (json_int_t)o->diverged, "failed_requests", (json_int_t)o->failed);
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
           " failed request(s)\n", a->path, a->target, ok ? "AGREE" : "DISAGREE", o->ops,
           o->reads, o->c.sectors_checked, o->diverged, o->failed);
    if (!ok) {
        printf("  first       %s\n", o->first);
    }
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
    struct oracle_run o;
    memset(&o, 0, sizeof(o));
    o.h = nbd_create();
    uint64_t seed = 1;
    ret = o.h ? oracle_connect(o.h, a.target) : CLI_USAGE;
    int64_t size = ret == 0 ? nbd_get_size(o.h) : -1;
    o.size = size > 0 ? (uint64_t)size : 0;
    ret = ret == 0 && size < 0 ? (cli_error("oracle", "--target: %s", nbd_get_error()),
                                  CLI_USAGE) : ret;
    ret = ret == 0 ? records_check(&t, o.size, &seed) : ret;
    seed = a.has_seed ? a.seed : seed;
    check_rw_init(&o.c, seed, never, NULL);
    ret = ret == 0 ? oracle_image(&o, a.target) : ret;
    o.line_of = mem_alloc((t.n + 1) * sizeof(*o.line_of));
    for (size_t i = 0; i < t.n && ret == 0; i++) {
        const struct trace_rec *r = &t.recs[i];
        if (trace_kind_is_op(r->kind)) {
            oracle_op(&o, r, seed);
        }
        if (o.first[0] && !a.keep_going) {
            break;
        }
    }
    if (ret == 0) {
        oracle_print(&a, &o);
        ret = o.failed || o.diverged ? CLI_FAIL : CLI_OK;
    }
    if (o.h) {
        nbd_shutdown(o.h, 0);
        nbd_close(o.h);
    }
    mem_free(o.line_of, (t.n + 1) * sizeof(*o.line_of));
    mem_free(o.image, o.image ? (o.size ? o.size : 1) : 0);
    check_rw_fini(&o.c);
    trace_fini(&t);
    return ret;
}
