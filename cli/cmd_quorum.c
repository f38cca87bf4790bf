/*
 * cmd_quorum: `blocksim quorum`, the reference quorum driver over real
 * image files, for cross-checks against QEMU's (tests/qemu_quorum.py).
 *
 * Each FILE (a raw image) is loaded into a simulated disk c0, c1, ...; a
 * quorum node over their file nodes runs the --read requests one after the
 * other; each prints one JSON line: the result, the bytes read (up to 64 KiB), the
 * children QUORUM_REPORT_BAD named (with or without an error) and whether
 * QUORUM_FAILURE was emitted. With --rewrite the children's contents are
 * written back to the files at the end, so that a repair can be compared
 * with QEMU's rewrite-corrupted. --faults takes the scenario's fault rules
 * (disk=cN picks a child).
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../ref/drv_file.h"
#include "../ref/drv_quorum.h"
#include "../sim/dev/disk.h"
#include "../sim/base/evq.h"
#include "../sim/dev/fault.h"
#include "../sim/trace/trace.h"
#include "cli.h"

#define QC_READS_MAX 64
#define QC_FILE_MAX (64u << 20)
#define QC_SHOW_MAX 65536u /* bytes of a read printed (hex) */

struct qc_args {
    const char *files[NODE_CHILDREN_MAX];
    unsigned n_files;
    uint64_t threshold;
    bool fifo, rewrite;
    const char *faults;
    uint64_t mutants;
    uint64_t reads[QC_READS_MAX][2];
    unsigned n_reads;
};

struct qc {
    struct evq q;
    struct fault_plan plan;
    struct graph g;
    struct disk *d[NODE_CHILDREN_MAX];
    struct disk_handle *h[NODE_CHILDREN_MAX];
    struct node *file[NODE_CHILDREN_MAX];
    struct node *quorum;
    json_t *reported; /* of the request running */
    bool failure;
};

static void qc_usage(FILE *out)
{
    fprintf(out,
            "usage: blocksim quorum --threshold T [--fifo] [--rewrite] [--faults SPEC]\n"
            "                       [--mutant NAME] --read OFF:LEN [--read ...] FILE...\n"
            "Run the reference quorum driver over FILE... (raw images of equal size,\n"
            "at most %u, each at most 64 MiB, one child each: children.0 is the first)\n"
            "and print one JSON line per --read: offset, len, result (ok or the errno\n"
            "name), data (hex, the first 64 KiB), reported (the children QUORUM_REPORT_BAD\n"
            "named, with or without an error) and failure (QUORUM_FAILURE emitted).\n"
            "tests/qemu_quorum.py compares these lines with QEMU's quorum.\n\n"
            "  --threshold T   vote-threshold (1..number of FILEs)\n"
            "  --fifo          read-pattern=fifo (default: quorum)\n"
            "  --rewrite       rewrite-corrupted: repair children that lost a vote, and\n"
            "                  write every child back to its FILE at the end\n"
            "  --faults SPEC   fault rules on the children's disks (disk=c0, c1, ...)\n"
            "  --read OFF:LEN  a read (sizes such as 4K; multiples of 512 inside the\n"
            "                  images; repeatable, at most %u)\n"
            "  --mutant NAME   plant a known bug (see blocksim replay --help)\n\n"
            "Exit status: 0 every read ran (whatever it returned), 1 FILEs could not be\n"
            "written back, 2 usage or input error.\n", NODE_CHILDREN_MAX, QC_READS_MAX);
}

/* --read OFF:LEN, each a size; checked against the images once they are loaded. */
static int qc_read_arg(struct qc_args *a, const char *val)
{
    uint64_t off = 0;
    uint64_t len = 0;
    if (a->n_reads == QC_READS_MAX) {
        cli_error("quorum", "--read: at most %u of them", QC_READS_MAX);
        return CLI_USAGE;
    }
    if (cli_parse_pair(val, ':', true, &off, &len) < 0) {
        cli_error("quorum", "--read: expected OFF:LEN, unsigned sizes such as 4K, got '%s'",
                  val);
        return CLI_USAGE;
    }
    if (len == 0 || off % 512 || len % 512 || off > UINT64_MAX - len) {
        cli_error("quorum", "--read: '%s': OFF and LEN must be multiples of 512, LEN "
                  "positive, and OFF+LEN must not overflow", val);
        return CLI_USAGE;
    }
    a->reads[a->n_reads][0] = off;
    a->reads[a->n_reads][1] = len;
    a->n_reads++;
    return 0;
}

static int qc_parse(int argc, char **argv, struct qc_args *a)
{
    static const struct option options[] = {
        { "threshold", required_argument, NULL, 't' }, { "fifo", no_argument, NULL, 'f' },
        { "rewrite", no_argument, NULL, 'r' },         { "faults", required_argument, NULL, 'F' },
        { "mutant", required_argument, NULL, 'm' },    { "read", required_argument, NULL, 'R' },
        { "help", no_argument, NULL, 'h' },            { NULL, 0, NULL, 0 },
    };
    uint64_t node = 0;
    unsigned disk = 0;
    optind = 1;
    int c;
    while ((c = cli_getopt("quorum", argc, argv, options)) != -1) {
        switch (c) {
        case 'h': qc_usage(stdout); return -1;
        case 't': CLI_TRY(cli_parse_num("quorum", "--threshold", optarg, &a->threshold, false));
            break;
        case 'f': a->fifo = true; break;
        case 'r': a->rewrite = true; break;
        case 'F': a->faults = optarg; break;
        case 'm': CLI_TRY(cli_mutant_parse("quorum", optarg, &node, &disk)); break;
        case 'R': CLI_TRY(qc_read_arg(a, optarg)); break;
        default: return CLI_USAGE;
        }
    }
    if (disk) {
        cli_error("quorum", "--mutant: disk mutants do not apply to image files");
        return CLI_USAGE;
    }
    a->mutants = node;
    for (int i = optind; i < argc; i++) {
        if (a->n_files == NODE_CHILDREN_MAX) {
            cli_error("quorum", "at most %u files", NODE_CHILDREN_MAX);
            return CLI_USAGE;
        }
        a->files[a->n_files++] = argv[i];
    }
    if (a->n_files == 0 || a->n_reads == 0) {
        cli_error("quorum", "needs at least one FILE and one --read (see --help)");
        return CLI_USAGE;
    }
    return 0;
}

static void qc_io_done(void *opaque, int ret)
{
    *(int *)opaque = ret;
}

static int qc_io(struct qc *c, struct node *n, enum node_op op, uint64_t off, uint64_t len,
                 uint8_t *buf)
{
    int ret = 1;
    node_submit(n, op, off, len, buf, 0, qc_io_done, &ret);
    while (ret == 1 && evq_step(&c->q, UINT64_MAX)) {
    }
    return ret;
}

/* Load @path into a new disk c@i with a file node over it. */
static int qc_load(struct qc *c, unsigned i, const char *path)
{
    size_t len;
    char *data;
    struct err e = { .file = path };
    if (trace_file_read(path, QC_FILE_MAX, &data, &len, &e) < 0) {
        cli_error("quorum", "%s: %s", path, e.msg);
        return CLI_USAGE;
    }
    if (len == 0 || len % 512) {
        cli_error("quorum", "%s: size %zu is not a positive multiple of 512", path, len);
        trace_file_free(data, len);
        return CLI_USAGE;
    }
    struct disk_config dc;
    char name[16];
    snprintf(name, sizeof(name), "c%u", i);
    disk_config_default(&dc, name, len);
    c->d[i] = disk_new(&dc, &c->q, &c->plan, 1, i, 0);
    c->h[i] = disk_handle_new(c->d[i]);
    struct drv_file_opts fo = { disk_storage(c->h[i]) };
    ASSERT(node_new(&c->g, &drv_file, name, &fo, NULL, &c->file[i]) == 0);
    int ret = qc_io(c, c->file[i], NODE_OP_WRITE, 0, len, (uint8_t *)data);
    trace_file_free(data, len);
    if (ret < 0) {
        cli_error("quorum", "%s: loading failed: %s", path, blocksim_strerror(ret));
        return CLI_USAGE;
    }
    return 0;
}

static void qc_event(void *opaque, const struct quorum_event *ev)
{
    struct qc *c = opaque;
    if (ev->kind == QUORUM_REPORT_BAD) {
        json_array_append_new(c->reported, json_pack("{s:I, s:b}", "child",
                                                     (json_int_t)ev->child, "error",
                                                     ev->error != 0));
    }
    c->failure |= ev->kind == QUORUM_FAILURE;
}

static void qc_run_reads(struct qc *c, const struct qc_args *a)
{
    for (unsigned i = 0; i < a->n_reads; i++) {
        uint64_t len = a->reads[i][1];
        uint8_t *buf = calloc(1, len);
        c->reported = json_array();
        c->failure = false;
        int ret = qc_io(c, c->quorum, NODE_OP_READ, a->reads[i][0], len, buf);
        uint64_t shown = ret == 0 ? min_u64(len, QC_SHOW_MAX) : 0;
        char *hex = calloc(1, 2 * shown + 1);
        for (uint64_t k = 0; k < shown; k++) {
            snprintf(hex + 2 * k, 3, "%02x", buf[k]);
        }
        json_t *o = json_pack("{s:I, s:I, s:s, s:s, s:o, s:b}", "offset",
                              (json_int_t)a->reads[i][0], "len", (json_int_t)len, "result",
                              ret == 0 ? "ok" : blocksim_strerror(ret), "data", hex,
                              "reported", c->reported, "failure", c->failure);
        free(hex);
        char *text = json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS);
        printf("%s\n", text);
        free(text);
        json_decref(o);
        free(buf);
    }
}

/* rewrite-corrupted changed the children: put them back into the files. */
static int qc_store(struct qc *c, const struct qc_args *a)
{
    for (unsigned i = 0; i < a->n_files; i++) {
        uint64_t len = c->file[i]->length;
        uint8_t *buf = malloc(len);
        struct env_storage st = disk_storage(c->h[i]);
        int ret = st.ops->read_sync(st.dev, 0, buf, len);
        FILE *f = ret == 0 ? fopen(a->files[i], "wb") : NULL;
        if (ret == 0 && (!f || fwrite(buf, 1, len, f) != len)) {
            ret = -EIO;
        }
        if (f && fclose(f) != 0) {
            ret = -EIO;
        }
        free(buf);
        if (ret < 0) {
            cli_error("quorum", "%s: storing failed: %s", a->files[i], blocksim_strerror(ret));
            return CLI_FAIL;
        }
    }
    return 0;
}

static int qc_main(struct qc *c, const struct qc_args *a)
{
    struct err e = { .file = NULL };
    if (a->faults && fault_plan_parse_spec(&c->plan, a->faults, &e) < 0) {
        cli_error("quorum", "--faults: %s", e.msg);
        return CLI_USAGE;
    }
    for (size_t i = 0; i < c->plan.n; i++) {
        const char *name = c->plan.rules[i].disk;
        uint64_t child;
        bool disk_ok = !name[0] || (name[0] == 'c' && parse_u64(name + 1, &child) == 0 &&
                                    child < a->n_files);
        if (!disk_ok || c->plan.rules[i].kind >= FAULT_NET_RESET) {
            cli_error("quorum", "--faults rule %zu: '%s' is not a child's disk (c0..c%u) or "
                      "not a disk fault", i + 1, name, a->n_files - 1);
            return CLI_USAGE;
        }
    }
    struct drv_quorum_opts qo = {
        .n_children = a->n_files, .threshold = (unsigned)a->threshold,
        .read_pattern = a->fifo ? QUORUM_READ_FIFO : QUORUM_READ_QUORUM,
        .rewrite_corrupted = a->rewrite, .on_event = qc_event, .opaque = c,
    };
    for (unsigned i = 0; i < a->n_files; i++) {
        int ret = qc_load(c, i, a->files[i]);
        if (ret) {
            return ret;
        }
        qo.children[i] = c->file[i];
    }
    if (a->threshold > UINT32_MAX ||
        node_new(&c->g, &drv_quorum, "quorum", &qo, &e, &c->quorum) < 0) {
        cli_error("quorum", "%s", a->threshold > UINT32_MAX ? "--threshold too big" : e.msg);
        return CLI_USAGE;
    }
    for (unsigned i = 0; i < a->n_reads; i++) {
        if (a->reads[i][0] + a->reads[i][1] > c->quorum->length) {
            cli_error("quorum", "--read %" PRIu64 ":%" PRIu64 " goes beyond the %" PRIu64
                      "-byte images", a->reads[i][0], a->reads[i][1], c->quorum->length);
            return CLI_USAGE;
        }
    }
    qc_run_reads(c, a);
    return a->rewrite ? qc_store(c, a) : CLI_OK;
}

int cmd_quorum(int argc, char **argv)
{
    struct qc_args a = { .n_files = 0 };
    int ret = qc_parse(argc, argv, &a);
    if (ret) {
        return ret < 0 ? CLI_OK : ret;
    }
    struct qc c = { .quorum = NULL };
    evq_init(&c.q);
    fault_plan_init(&c.plan);
    graph_init(&c.g, evq_timer(&c.q), a.mutants);
    ret = qc_main(&c, &a);
    while (evq_step(&c.q, UINT64_MAX)) {
    }
    graph_fini(&c.g);
    for (unsigned i = 0; i < NODE_CHILDREN_MAX; i++) {
        if (c.d[i]) {
            disk_handle_free(c.h[i]);
            disk_free(c.d[i]);
        }
    }
    fault_plan_fini(&c.plan);
    evq_fini(&c.q);
    return ret;
}
