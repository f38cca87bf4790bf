/*
 * cmd_nbd: `blocksim nbd-serve` (the reference stack as a real NBD server)
 * and `blocksim nbd-check` (the reference NBD client against a real server,
 * every read compared with a model of what was written).
 */
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/drv_file.h"
#include "../ref/drv_nbd.h"
#include "../ref/nbd_server.h"
#include "../sim/dev/disk.h"
#include "../sim/base/rng.h"
#include "cli.h"
#include "sock.h"


struct nbd_args {
    const char *socket;
    uint64_t port;
    bool has_port;
    bool quiet;
    uint64_t handshake_s;
    uint64_t max_conns;
    uint64_t size;
    const char *export_name;
    const char *trace_out;
    bool once;
    bool read_only;
    bool simple;
    uint64_t ops;
    uint64_t seed;
};

static const char *const serve_help =
    "usage: blocksim nbd-serve (--socket PATH | --port N) --size SIZE [options]\n"
    "\n"
    "Serve a reference stack (a file node on an in-memory disk of SIZE bytes) over\n"
    "NBD, fixed newstyle: structured replies, base:allocation, FUA, trim and\n"
    "write-zeroes; requests must be 512-byte aligned. Runs until SIGINT/SIGTERM.\n"
    "\n"
    "  --socket PATH      listen on a Unix socket (nbd+unix:///NAME?socket=PATH)\n"
    "  --port N           listen on 127.0.0.1:N instead\n"
    "  --size SIZE        export size (K/M/G suffixes), a multiple of 512\n"
    "  --export NAME      export name (default: empty)\n"
    "  --read-only        refuse writes (EPERM)\n"
    "  --trace-out FILE   record every request as a native trace, line by line\n"
    "                     (blocksim replay reads it back)\n"
    "  --once             exit when the first client disconnects\n"
    "  --handshake-timeout S  close a client that has not finished its handshake\n"
    "                     S seconds after connecting (default 10; 0: never)\n"
    "  --max-connections N  clients connected at once (default and ceiling: the\n"
    "                     file descriptor limit less 16); more are accepted and\n"
    "                     closed at once, with a log line\n"
    "  --quiet            log nothing to stderr\n"
    "\n"
    "A Unix socket PATH that exists is replaced only when it is a stale socket\n"
    "(nobody listening); a file or a live socket is refused.\n"
    "Exit status: 0 stopped by a signal or --once, 2 usage error or cannot listen.\n";

static const char *const check_help =
    "usage: blocksim nbd-check (--socket PATH | --port N) [options]\n"
    "\n"
    "Drive an NBD server with blocksim's client: a seeded mix of writes (some FUA),\n"
    "write-zeroes, trims, flushes and reads over the first 16 MiB of the export;\n"
    "every read is compared byte for byte with what was written.\n"
    "WARNING: it OVERWRITES the first 16 MiB of the export (or all of a smaller\n"
    "one). Point it at a scratch export, never at data you want to keep.\n"
    "Exit 0 if all matched, 1 at the first difference or failed request, 2 on bad\n"
    "usage or when the server cannot be reached.\n"
    "\n"
    "  --socket PATH | --port N   the server\n"
    "  --export NAME      export name (default: empty)\n"
    "  --ops N            operations (default 2000)\n"
    "  --seed N           workload seed (default 1)\n"
    "  --simple           do not negotiate structured replies\n"
    "  --quiet            print no summary; the exit status tells\n";

enum { O_SOCKET = 1, O_PORT, O_SIZE, O_EXPORT, O_TRACE, O_ONCE, O_RO, O_SIMPLE, O_OPS, O_SEED,
       O_QUIET, O_HANDSHAKE, O_MAX_CONNS, O_HELP = 'h' };

static const struct option nbd_options[] = {
    { "socket", required_argument, NULL, O_SOCKET },
    { "port", required_argument, NULL, O_PORT },
    { "size", required_argument, NULL, O_SIZE },
    { "export", required_argument, NULL, O_EXPORT },
    { "trace-out", required_argument, NULL, O_TRACE },
    { "once", no_argument, NULL, O_ONCE },
    { "read-only", no_argument, NULL, O_RO },
    { "simple", no_argument, NULL, O_SIMPLE },
    { "ops", required_argument, NULL, O_OPS },
    { "seed", required_argument, NULL, O_SEED },
    { "quiet", no_argument, NULL, O_QUIET },
    { "handshake-timeout", required_argument, NULL, O_HANDSHAKE },
    { "max-connections", required_argument, NULL, O_MAX_CONNS },
    { "help", no_argument, NULL, O_HELP },
    { NULL, 0, NULL, 0 },
};

/* One option @c of @cmd; -1 after --help. */
static int nbd_opt(const char *cmd, bool serve, int c, const char *val, struct nbd_args *a)
{
    switch (c) {
    case O_HELP: fputs(serve ? serve_help : check_help, stdout); return -1;
    case O_SOCKET: a->socket = val; return 0;
    case O_PORT: a->has_port = true; return cli_parse_range(cmd, "--port", val, &a->port, 1, 65535);
    case O_QUIET: a->quiet = true; return 0;
    case O_HANDSHAKE:
        return cli_parse_range(cmd, "--handshake-timeout", val, &a->handshake_s, 0, 86400);
    case O_MAX_CONNS:
        return cli_parse_range(cmd, "--max-connections", val, &a->max_conns, 1, UINT32_MAX);
    case O_SIZE: return cli_parse_num(cmd, "--size", val, &a->size, true);
    case O_EXPORT: a->export_name = val; return 0;
    case O_TRACE: a->trace_out = val; return 0;
    case O_ONCE: a->once = true; return 0;
    case O_RO: a->read_only = true; return 0;
    case O_SIMPLE: a->simple = true; return 0;
    case O_OPS: return cli_parse_num(cmd, "--ops", val, &a->ops, false);
    case O_SEED: return cli_parse_num(cmd, "--seed", val, &a->seed, false);
    default: UNREACHABLE();
    }
}

/* An option of the other command: say whose it is. */
static int nbd_wrong_command(const char *cmd, bool serve, int c)
{
    const char *name = "?";
    for (const struct option *o = nbd_options; o->name; o++) {
        name = o->val == c ? o->name : name;
    }
    cli_error(cmd, "--%s is an option of %s, not of %s (see --help)", name,
              serve ? "nbd-check" : "nbd-serve", cmd);
    return CLI_USAGE;
}

/* What the options say together. */
static int nbd_args_check(const char *cmd, bool serve, const struct nbd_args *a)
{
    if (!a->socket == !a->has_port) {
        cli_error(cmd, "give exactly one of --socket PATH and --port N");
        return CLI_USAGE;
    }
    if (serve && (a->size == 0 || a->size % 512)) {
        cli_error(cmd, "--size: expected a non-zero multiple of 512 bytes%s",
                  a->size ? "" : " (it is required)");
        return CLI_USAGE;
    }
    if (a->export_name && strlen(a->export_name) >= NBD_NAME_MAX) {
        cli_error(cmd, "--export: longer than %u bytes", NBD_NAME_MAX - 1);
        return CLI_USAGE;
    }
    return 0;
}

/* 0 to go on, -1 after --help, CLI_USAGE on an error. */
static int nbd_parse(const char *cmd, int argc, char **argv, struct nbd_args *a)
{
    bool serve = strcmp(cmd, "nbd-serve") == 0;
    int c;
    optind = 1;
    while ((c = cli_getopt(cmd, argc, argv, nbd_options)) != -1) {
        bool serve_only = c == O_SIZE || c == O_TRACE || c == O_ONCE || c == O_RO ||
                          c == O_HANDSHAKE || c == O_MAX_CONNS;
        bool check_only = c == O_SIMPLE || c == O_OPS || c == O_SEED;
        if (c == '?') {
            return CLI_USAGE;
        }
        if ((serve && check_only) || (!serve && serve_only)) {
            return nbd_wrong_command(cmd, serve, c);
        }
        CLI_TRY(nbd_opt(cmd, serve, c, optarg, a));
    }
    if (optind != argc) {
        cli_error(cmd, "unexpected argument '%s' (see --help)", argv[optind]);
        return CLI_USAGE;
    }
    return nbd_args_check(cmd, serve, a);
}

/* ---- nbd-serve ---- */

struct serve {
    const struct nbd_args *args;
    struct sock_loop *loop;
    struct nbd_server *srv;
    FILE *trace;
    bool once;
    bool served;
};

static void serve_log(void *opaque, const char *msg)
{
    const struct serve *s = opaque;
    if (!s->args->quiet) {
        fprintf(stderr, "blocksim nbd-serve: %s\n", msg);
    }
}

static void serve_accept(void *opaque, struct env_transport t)
{
    struct serve *s = opaque;
    s->served = true;
    nbd_server_attach(s->srv, t);
}

static void serve_record(void *opaque, const struct nbd_request *r, const uint8_t *payload)
{
    struct serve *s = opaque;
    (void)payload;
    const char *fua = (r->flags & NBD_CMD_FLAG_FUA) ? " fua" : "";
    switch (r->type) {
    case NBD_CMD_READ: fprintf(s->trace, "read %" PRIu64 " %" PRIu32 "\n", r->offset, r->len);
        break;
    case NBD_CMD_WRITE:
        fprintf(s->trace, "write %" PRIu64 " %" PRIu32 "%s\n", r->offset, r->len, fua);
        break;
    case NBD_CMD_WRITE_ZEROES:
        fprintf(s->trace, "zero %" PRIu64 " %" PRIu32 "%s\n", r->offset, r->len, fua);
        break;
    case NBD_CMD_TRIM:
        fprintf(s->trace, "discard %" PRIu64 " %" PRIu32 "\n", r->offset, r->len);
        break;
    case NBD_CMD_FLUSH: fprintf(s->trace, "flush\n"); break;
    default:
        fprintf(s->trace, "# %s %" PRIu64 " %" PRIu32 "\n", nbd_cmd_name(r->type), r->offset,
                r->len);
        break;
    }
    fflush(s->trace); /* a killed server loses no recorded line */
}

static int serve_open_trace(struct serve *s, const struct nbd_args *a)
{
    if (!a->trace_out) {
        return 0;
    }
    s->trace = fopen(a->trace_out, "w");
    if (!s->trace) {
        cli_error("nbd-serve", "--trace-out %s: %s", a->trace_out, strerror(errno));
        return CLI_USAGE;
    }
    fprintf(s->trace, "blocksim-trace v1\n# recorded by blocksim nbd-serve\n"
            "topology plain size=%" PRIu64 "\nqd 64\n", a->size);
    fflush(s->trace);
    return 0;
}

static void serve_loop(struct serve *s)
{
    cli_catch_stop_signals();
    while (!cli_stop && !(s->once && s->served && nbd_server_sessions(s->srv) == 0)) {
        sock_loop_run_once(s->loop, 100000000);
    }
}

int cmd_nbd_serve(int argc, char **argv)
{
    struct nbd_args a = { .export_name = "", .handshake_s = 10 };
    int ret = nbd_parse("nbd-serve", argc, argv, &a);
    if (ret) {
        return ret < 0 ? CLI_OK : ret;
    }
    struct serve s = { .once = a.once };
    if ((ret = serve_open_trace(&s, &a)) != 0) {
        return ret;
    }
    s.loop = sock_loop_new();
    struct evq *q = sock_loop_evq(s.loop);
    struct fault_plan plan;
    fault_plan_init(&plan);
    struct disk_config dc;
    disk_config_default(&dc, "d0", a.size);
    dc.lat_min_ns = dc.lat_max_ns = 0;
    dc.flush_ns = 0;
    struct disk *d = disk_new(&dc, q, &plan, 1, 0, 0);
    struct disk_handle *h = disk_handle_new(d);
    struct graph g;
    graph_init(&g, sock_loop_timer(s.loop), 0);
    struct drv_file_opts fo = { disk_storage(h) };
    struct node *file = NULL;
    struct err e = { .file = NULL };
    ASSERT(node_new(&g, &drv_file, "d0-file", &fo, &e, &file) == 0);
    struct nbd_server_opts so = { .export = file, .name = a.export_name,
                                  .read_only = a.read_only,
                                  .handshake_timeout_ns = a.handshake_s * 1000000000ull,
                                  .timer = sock_loop_timer(s.loop), .on_log = serve_log,
                                  .on_request = s.trace ? serve_record : NULL, .opaque = &s };
    s.args = &a;
    s.srv = nbd_server_new(&so);
    sock_loop_set_log(s.loop, serve_log, &s);
    if (a.max_conns) {
        sock_loop_set_max_conns(s.loop, (unsigned)a.max_conns);
    }
    char why[256];
    ret = sock_listen(s.loop, a.socket, (unsigned)a.port, serve_accept, &s, why, sizeof(why));
    if (ret < 0) {
        cli_error("nbd-serve", "%s", why);
    } else {
        if (a.quiet) {
            /* nothing */
        } else if (a.socket) {
            fprintf(stderr, "blocksim nbd-serve: %" PRIu64 " bytes on %s (up to %u clients)\n",
                    a.size, a.socket, sock_loop_max_conns(s.loop));
        } else {
            fprintf(stderr, "blocksim nbd-serve: %" PRIu64 " bytes on 127.0.0.1:%" PRIu64
                    " (up to %u clients)\n", a.size, a.port, sock_loop_max_conns(s.loop));
        }
        serve_loop(&s);
    }
    nbd_server_close(s.srv);
    while (g.inflight) {
        sock_loop_run_once(s.loop, 10000000);
    }
    graph_fini(&g);
    sock_loop_free(s.loop);
    disk_handle_free(h);
    disk_free(d);
    fault_plan_fini(&plan);
    if (s.trace) {
        fclose(s.trace);
    }
    return ret < 0 ? CLI_USAGE : CLI_OK;
}

/* ---- nbd-check ---- */

#define CHECK_SPAN (16u << 20)

struct check {
    struct sock_loop *loop;
    struct node *nbd;
    uint8_t *model;
    uint8_t *buf;
    uint64_t span;
    struct rng rng;
    uint64_t counts[5];
    int done_ret;
    bool done;
};

static void check_cb(void *opaque, int ret)
{
    struct check *k = opaque;
    k->done = true;
    k->done_ret = ret;
}

/* Submit one request and run the loop until it completes. */
static int check_io(struct check *k, enum node_op op, uint64_t off, uint64_t len, uint8_t *buf,
                    unsigned flags)
{
    k->done = false;
    node_submit(k->nbd, op, off, len, buf, flags, check_cb, k);
    while (!k->done && !cli_stop) {
        sock_loop_run_once(k->loop, 100000000);
    }
    return k->done ? k->done_ret : -EINTR;
}

static int check_compare(struct check *k, uint64_t off, uint64_t len)
{
    for (uint64_t i = 0; i < len; i++) {
        if (k->buf[i] != k->model[off + i]) {
            fprintf(stderr, "blocksim nbd-check: read at %" PRIu64 "+%" PRIu64 " differs at "
                    "byte %" PRIu64 ": got 0x%02x, wrote 0x%02x\n", off, len, off + i,
                    k->buf[i], k->model[off + i]);
            return CLI_FAIL;
        }
    }
    return CLI_OK;
}

/* One random operation; the model follows every successful change. */
static int check_step(struct check *k)
{
    uint64_t sectors = k->span / 512;
    uint64_t len = 512 * (1 + rng_below(&k->rng, 256));
    len = min_u64(len, k->span);
    uint64_t off = 512 * rng_below(&k->rng, sectors - len / 512 + 1);
    unsigned pick = (unsigned)rng_below(&k->rng, 100);
    enum node_op op = pick < 40 ? NODE_OP_WRITE : pick < 80 ? NODE_OP_READ :
                      pick < 87 ? NODE_OP_WRITE_ZEROES : pick < 93 ? NODE_OP_DISCARD
                                                                    : NODE_OP_FLUSH;
    unsigned flags = (op == NODE_OP_WRITE && rng_below(&k->rng, 4) == 0) ? NODE_REQ_FUA : 0;
    if (op == NODE_OP_WRITE) {
        for (uint64_t i = 0; i < len; i += 8) {
            put_le64(k->buf + i, rng_next(&k->rng));
        }
    }
    if (op == NODE_OP_FLUSH) {
        off = len = 0;
    }
    int ret = check_io(k, op, off, len, k->buf, flags);
    k->counts[op]++;
    if (ret == -EINTR) {
        fprintf(stderr, "blocksim nbd-check: interrupted\n");
        return CLI_FAIL;
    }
    if (ret < 0) {
        fprintf(stderr, "blocksim nbd-check: %s at %" PRIu64 "+%" PRIu64 " failed: %s (%s)\n",
                node_op_name(op), off, len, blocksim_strerror(ret),
                drv_nbd_last_error(k->nbd));
        return CLI_FAIL;
    }
    if (op == NODE_OP_WRITE) {
        memcpy(k->model + off, k->buf, len);
    } else if (op == NODE_OP_WRITE_ZEROES) {
        memset(k->model + off, 0, len);
    } else if (op == NODE_OP_DISCARD) {
        /* Trim is advisory: the range reads as zeroes or as before. */
        if (check_io(k, NODE_OP_READ, off, len, k->buf, 0) < 0) {
            fprintf(stderr, "blocksim nbd-check: read after trim failed\n");
            return CLI_FAIL;
        }
        for (uint64_t i = 0; i < len; i++) {
            if (k->buf[i] != 0 && k->buf[i] != k->model[off + i]) {
                return check_compare(k, off, len);
            }
        }
        memcpy(k->model + off, k->buf, len);
    } else if (op == NODE_OP_READ) {
        return check_compare(k, off, len);
    }
    return CLI_OK;
}

static int check_connect(struct check *k, const struct nbd_args *a, struct graph *g)
{
    struct drv_nbd_opts o = { .dialer = sock_dialer(k->loop, a->socket, (unsigned)a->port),
                              .export_name = a->export_name, .timeout_ns = 30000000000ull,
                              .simple_only = a->simple };
    struct err e = { .file = NULL };
    ASSERT(node_new(g, &drv_nbd, "nbd", &o, &e, &k->nbd) == 0);
    while (drv_nbd_ready(k->nbd) == 0 && !cli_stop) {
        sock_loop_run_once(k->loop, 100000000);
    }
    if (drv_nbd_ready(k->nbd) < 0) {
        char where[160];
        if (a->socket) {
            snprintf(where, sizeof(where), "%s", a->socket);
        } else {
            snprintf(where, sizeof(where), "127.0.0.1:%" PRIu64, a->port);
        }
        cli_error("nbd-check", "cannot use %s: %s", where, drv_nbd_last_error(k->nbd));
        return CLI_USAGE;
    }
    k->span = min_u64(align_down(k->nbd->length, 512), CHECK_SPAN);
    if (k->span < 512 * 256) {
        cli_error("nbd-check", "export of %" PRIu64 " bytes: need at least 128 KiB",
                  k->nbd->length);
        return CLI_USAGE;
    }
    return 0;
}

static int check_run(struct check *k, const struct nbd_args *a)
{
    k->model = mem_alloc(k->span);
    k->buf = mem_alloc(512 * 256);
    int ret = 0;
    for (uint64_t off = 0; off < k->span && ret == 0; off += 512 * 256) {
        ret = check_io(k, NODE_OP_READ, off, 512 * 256, k->model + off, 0) < 0 ? CLI_FAIL : 0;
    }
    for (uint64_t i = 0; i < a->ops && ret == 0 && !cli_stop; i++) {
        ret = check_step(k);
    }
    if (ret == 0 && !a->quiet) {
        printf("nbd-check: %" PRIu64 " operations (%" PRIu64 " reads, %" PRIu64 " writes, "
               "%" PRIu64 " write-zeroes, %" PRIu64 " trims, %" PRIu64 " flushes) on %" PRIu64
               " bytes: every read matched\n", a->ops, k->counts[NODE_OP_READ],
               k->counts[NODE_OP_WRITE], k->counts[NODE_OP_WRITE_ZEROES],
               k->counts[NODE_OP_DISCARD], k->counts[NODE_OP_FLUSH], k->span);
    }
    mem_free(k->buf, 512 * 256);
    mem_free(k->model, k->span);
    return ret;
}

int cmd_nbd_check(int argc, char **argv)
{
    struct nbd_args a = { .export_name = "", .ops = 2000, .seed = 1 };
    int ret = nbd_parse("nbd-check", argc, argv, &a);
    if (ret) {
        return ret < 0 ? CLI_OK : ret;
    }
    struct check k;
    memset(&k, 0, sizeof(k));
    rng_stream(&k.rng, a.seed, "nbd-check", 0, 0);
    cli_catch_stop_signals();
    k.loop = sock_loop_new();
    struct graph g;
    graph_init(&g, sock_loop_timer(k.loop), 0);
    ret = check_connect(&k, &a, &g);
    if (ret == 0) {
        ret = check_run(&k, &a);
    }
    while (g.inflight) {
        sock_loop_run_once(k.loop, 10000000);
    }
    graph_fini(&g);
    sock_loop_free(k.loop);
    return ret;
}
