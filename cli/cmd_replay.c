/*
 * cmd_replay: `blocksim replay` and `blocksim convert`.
 *
 * Method: load the file, pick the format (native, or fio when the first line
 * says so), parse into a trace, run it in a world, print the report.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../ref/node.h"
#include "../props/gen.h"
#include "../props/registry.h"
#include "../sim/trace/export_fio.h"
#include "../sim/trace/import_blkparse.h"
#include "../sim/trace/import_csv.h"
#include "../sim/trace/import_dmlog.h"
#include "../sim/trace/import_fio.h"
#include "../sim/world/report.h"
#include "../sim/world/report_html.h"
#include "../sim/trace/trace.h"
#include "../sim/world/world.h"
#include "cli.h"

#define TRACE_FILE_MAX (1ull << 30)
#define REPLAY_BITMAPS_MAX 16

struct replay_args {
    const char *path;
    const char *format; /* "auto", "native", "fio" */
    struct world_opts o;
    struct import_fio_opts fio;
    bool json;
    bool quiet;
    bool wall;
    bool bytes_check;   /* --bytes-check: run again with --bytes, compare */
    char mutant_names[128];
    struct world_bitmap_spec bitmaps[REPLAY_BITMAPS_MAX];
    struct world_export exports[WORLD_EXPORTS_MAX];
    char base_dir[4096];
    char extra_args[512]; /* --bitmap and --dirty-mark, for the repro command */
    const char *html;     /* --html FILE, or NULL */
};

static void replay_usage(FILE *out)
{
    fprintf(out,
            "usage: blocksim replay TRACE [OPTIONS]     (TRACE '-': standard input)\n"
            "Replay TRACE through the simulated block stack under its faults (and any\n"
            "added here), check every read against the model, print a report.\n\n"
            "  --format F      native, fio, blkparse, msr, alibaba, tencent,\n"
            "                  dm-log-writes or auto\n"
            "                  (default: detected from the first line, else native)\n"
            "  --volume ID     traces holding several devices: the one to replay\n"
            "                  (blkparse: MAJ,MIN; MSR: HOST,DISK; Alibaba: device_id;\n"
            "                  Tencent: VolumeID)\n"
            "  --seed N        world seed (default: the trace's 'seed' record, else 1)\n"
            "  --faults SPEC   extra fault rules, 'RULE;RULE', e.g.\n"
            "                  'write-eio prob=1%%;read-corrupt disk=d0 nth=50'\n"
            "  --size BYTES    guest disk size (default: the trace's topology size, else\n"
            "                  its extent rounded up to 1M)\n"
            "  --qd N          queue depth, overriding the trace's qd records\n"
            "  --stall DUR     liveness: fail when pending work sees no progress for DUR\n"
            "                  of virtual time (default 1h; a trace may span any length)\n"
            "  --align POLICY  fio input: 'reject' (default) refuses offsets and lengths\n"
            "                  that are not multiples of 512; 'round' widens each range\n"
            "                  outward to 512-byte boundaries\n"
            "  --json          print the report as JSON\n"
            "  --quiet         print no report; the exit status tells\n"
            "  --no-wall       leave wall-clock figures out (byte-identical reruns)\n"
            "  --bytes         carry every guest byte through the stack; by default a\n"
            "                  disk right below the guest keeps the guest's own writes as\n"
            "                  tags (which write, which sector) and makes their bytes only\n"
            "                  where something needs them. Same verdict and digest, slower:\n"
            "                  a cross-check of that shortcut\n"
            "  --bytes-check   replay both ways and fail (status 1) unless the verdict,\n"
            "                  digest, contents and first violation agree\n"
            "  --buggify       enable the stack's BUGGIFY fault points (unusual but legal\n"
            "                  paths: late completions, split reads, forced copy-up)\n"
            "  --bitmap NAME[:GRANULARITY]\n"
            "                  attach a persistent dirty bitmap to the guest disk\n"
            "                  (repeatable; granularity a power of two in 512..2G, default\n"
            "                  64K, or the overlay's cluster size clamped to 4K..64K); the\n"
            "                  report lists each bitmap's dirty extents\n"
            "  --dirty-mark WHEN  complete (default: as a write completes, modern QEMU)\n"
            "                  or issue (as it is issued, the 2016 QBM series)\n"
            "  --html FILE     write one self-contained HTML page that explains the run:\n"
            "                  a timeline per host, the first violation with its writers\n"
            "                  linked to their trace lines, a map of the disk\n"
            "  --export NAME=PATH  after the run, write disk NAME's durable contents (or,\n"
            "                  for NAME 'guest', what the guest reads) to the raw file\n"
            "                  PATH, sparse where zero (repeatable)\n"
            "  --mutant NAME   plant a known bug (repeatable), to see a checker catch it:\n");
    cli_mutants_usage(out);
    fprintf(out, "\nExit status: 0 pass, 1 a property or an 'expect' record failed, "
            "2 usage or input error.\n");
}

static int opt_mutant(struct replay_args *a, const char *name)
{
    return cli_mutant_note("replay", name, &a->o.node_mutants, &a->o.disk_mutants,
                           a->mutant_names, sizeof(a->mutant_names));
}

/* --bitmap NAME[:GRANULARITY] */
static int opt_bitmap(struct replay_args *a, const char *val)
{
    if (a->o.n_bitmaps == REPLAY_BITMAPS_MAX) {
        cli_error("replay", "--bitmap: at most %d bitmaps", REPLAY_BITMAPS_MAX);
        return CLI_USAGE;
    }
    struct world_bitmap_spec *b = &a->bitmaps[a->o.n_bitmaps];
    const char *colon = strchr(val, ':');
    size_t n = colon ? (size_t)(colon - val) : strlen(val);
    if (!trace_bitmap_name_ok(val, n)) {
        cli_error("replay", "--bitmap: bad name in '%s' (1 to %zu of A-Z a-z 0-9 . _ -)", val,
                  sizeof(b->name) - 1);
        return CLI_USAGE;
    }
    memcpy(b->name, val, n);
    b->name[n] = '\0';
    b->gran = 0;
    if (colon && (parse_size(colon + 1, &b->gran) < 0 || !is_pow2(b->gran) ||
                  b->gran < 512 || b->gran > (1ull << 31))) {
        cli_error("replay", "--bitmap: granularity in '%s' must be a power of two in 512..2G",
                  val);
        return CLI_USAGE;
    }
    for (unsigned i = 0; i < a->o.n_bitmaps; i++) {
        if (strcmp(a->bitmaps[i].name, b->name) == 0) {
            cli_error("replay", "--bitmap: '%s' given twice", b->name);
            return CLI_USAGE;
        }
    }
    a->o.n_bitmaps++;
    a->o.bitmaps = a->bitmaps;
    size_t at = strlen(a->extra_args);
    snprintf(a->extra_args + at, sizeof(a->extra_args) - at, " --bitmap %s", val);
    return 0;
}

/* --export NAME=PATH: the path is checked now, the name once the topology
 * is known. */
static int opt_export(struct replay_args *a, char *val)
{
    char *eq = strchr(val, '=');
    if (!eq || eq == val || !eq[1]) {
        cli_error("replay", "--export: expected NAME=PATH, got '%s'", val);
        return CLI_USAGE;
    }
    if (a->o.n_exports == WORLD_EXPORTS_MAX) {
        cli_error("replay", "--export: at most %d of them", WORLD_EXPORTS_MAX);
        return CLI_USAGE;
    }
    *eq = '\0'; /* argv is ours to split */
    CLI_TRY(cli_out_file_check("replay", "--export", eq + 1));
    a->exports[a->o.n_exports].name = val;
    a->exports[a->o.n_exports].path = eq + 1;
    a->o.n_exports++;
    a->o.exports = a->exports;
    return 0;
}

static int opt_dirty_mark(struct replay_args *a, const char *val)
{
    if (strcmp(val, "issue") != 0 && strcmp(val, "complete") != 0) {
        cli_error("replay", "--dirty-mark: expected issue or complete, got '%s'", val);
        return CLI_USAGE;
    }
    a->o.dirty_mark_early = strcmp(val, "issue") == 0;
    size_t at = strlen(a->extra_args);
    snprintf(a->extra_args + at, sizeof(a->extra_args) - at, " --dirty-mark %s", val);
    return 0;
}

enum { OPT_FORMAT = 256, OPT_SEED, OPT_FAULTS, OPT_SIZE, OPT_QD, OPT_JSON, OPT_QUIET,
       OPT_NO_WALL, OPT_MUTANT, OPT_BUGGIFY, OPT_BITMAP, OPT_DIRTY_MARK, OPT_STALL, OPT_ALIGN,
       OPT_EXPORT, OPT_HTML, OPT_VOLUME, OPT_BYTES, OPT_BYTES_CHECK, OPT_HELP = 'h' };

static const struct option replay_options[] = {
    { "format", required_argument, NULL, OPT_FORMAT },
    { "seed", required_argument, NULL, OPT_SEED },
    { "faults", required_argument, NULL, OPT_FAULTS },
    { "size", required_argument, NULL, OPT_SIZE },
    { "qd", required_argument, NULL, OPT_QD },
    { "json", no_argument, NULL, OPT_JSON },
    { "quiet", no_argument, NULL, OPT_QUIET },
    { "no-wall", no_argument, NULL, OPT_NO_WALL },
    { "mutant", required_argument, NULL, OPT_MUTANT },
    { "buggify", no_argument, NULL, OPT_BUGGIFY },
    { "bitmap", required_argument, NULL, OPT_BITMAP },
    { "dirty-mark", required_argument, NULL, OPT_DIRTY_MARK },
    { "stall", required_argument, NULL, OPT_STALL },
    { "align", required_argument, NULL, OPT_ALIGN },
    { "export", required_argument, NULL, OPT_EXPORT },
    { "html", required_argument, NULL, OPT_HTML },
    { "volume", required_argument, NULL, OPT_VOLUME },
    { "bytes", no_argument, NULL, OPT_BYTES },
    { "bytes-check", no_argument, NULL, OPT_BYTES_CHECK },
    { "help", no_argument, NULL, OPT_HELP },
    { NULL, 0, NULL, 0 },
};

/* One option; -1 for --help (print usage, exit 0). */
static int replay_opt(struct replay_args *a, int c, char *val)
{
    uint64_t v;
    switch (c) {
    case OPT_FORMAT:
        a->format = val;
        return 0;
    case OPT_SEED:
        a->o.has_seed = true;
        return cli_parse_num("replay", "--seed", val, &a->o.seed, false);
    case OPT_FAULTS:
        a->o.faults = val;
        return 0;
    case OPT_SIZE:
        CLI_TRY(cli_parse_num("replay", "--size", val, &a->o.size, true));
        if (a->o.size == 0 || a->o.size % 512) {
            cli_error("replay", "--size: %s is not a positive multiple of 512", val);
            return CLI_USAGE;
        }
        return 0;
    case OPT_QD:
        CLI_TRY(cli_parse_range("replay", "--qd", val, &v, 1, 1024));
        a->o.qd = (unsigned)v;
        return 0;
    case OPT_JSON:
        a->json = true;
        return 0;
    case OPT_QUIET:
        a->quiet = true;
        return 0;
    case OPT_NO_WALL:
        a->wall = false;
        return 0;
    case OPT_MUTANT:
        return opt_mutant(a, val);
    case OPT_BUGGIFY:
        a->o.buggify = true;
        return 0;
    case OPT_BYTES:
        a->o.bytes = true;
        return 0;
    case OPT_BYTES_CHECK:
        a->bytes_check = true;
        return 0;
    case OPT_BITMAP:
        return opt_bitmap(a, val);
    case OPT_DIRTY_MARK:
        return opt_dirty_mark(a, val);
    case OPT_STALL:
        if (parse_duration(val, &a->o.stall_ns) < 0 || a->o.stall_ns == 0) {
            cli_error("replay", "--stall: expected a positive duration (ns, us, ms or s) "
                      "such as 7200s, got '%s'", val);
            return CLI_USAGE;
        }
        return 0;
    case OPT_ALIGN:
        return cli_align_parse("replay", val, &a->fio);
    case OPT_EXPORT:
        return opt_export(a, val);
    case OPT_VOLUME:
        a->fio.volume = val;
        return 0;
    case OPT_HTML:
        a->html = val;
        return cli_out_file_check("replay", "--html", val);
    case OPT_HELP:
        return -1;
    default:
        return CLI_USAGE; /* cli_getopt printed the problem */
    }
}

static int replay_parse_args(struct replay_args *a, int argc, char **argv)
{
    memset(a, 0, sizeof(*a));
    a->format = "auto";
    a->wall = true;
    a->o.want_bitmaps = true;
    a->o.want_checks = true;
    optind = 1;
    int c;
    while ((c = cli_getopt("replay", argc, argv, replay_options)) != -1) {
        int ret = replay_opt(a, c, optarg);
        if (ret == -1) {
            replay_usage(stdout);
            return -1;
        }
        if (ret != 0) {
            return CLI_USAGE;
        }
    }
    if (optind != argc - 1) {
        cli_error("replay", optind == argc ? "missing TRACE (see --help)"
                                           : "one TRACE only (see --help)");
        return CLI_USAGE;
    }
    if (a->bytes_check && a->o.bytes) {
        cli_error("replay", "--bytes-check runs with and without --bytes itself: give one");
        return CLI_USAGE;
    }
    a->path = argv[optind];
    /* image= paths in the trace are relative to its folder. */
    const char *slash = strrchr(a->path, '/');
    if (slash && strcmp(a->path, "-") != 0) {
        snprintf(a->base_dir, sizeof(a->base_dir), "%.*s", (int)(slash - a->path), a->path);
        a->o.base_dir = a->base_dir[0] ? a->base_dir : "/";
    }
    return trace_format_check("replay", "--format", a->format, false);
}

int trace_format_check(const char *cmd, const char *option, const char *name,
                       bool scenario)
{
    enum import_csv_format csv;
    static const char *const names[] = { "auto", "native", "fio", "blkparse", "dm-log-writes" };
    for (unsigned i = 0; i < ARRAY_LEN(names); i++) {
        if (strcmp(name, names[i]) == 0) {
            return 0;
        }
    }
    if (import_csv_format_parse(name, &csv) || (scenario && strcmp(name, "scenario") == 0)) {
        return 0;
    }
    cli_error(cmd, "%s: expected %s%s or auto, got '%s'", option, TRACE_FORMATS,
              scenario ? ", scenario" : "", name);
    return CLI_USAGE;
}

/* The format of @data by its content (shared/spec/trace-formats.md
 * "Auto-detection"): native when nothing else matches. */
static const char *format_detect(const char *data, size_t len)
{
    static const char fio[] = "fio version ";
    enum import_csv_format csv;
    if (len >= sizeof(fio) - 1 && memcmp(data, fio, sizeof(fio) - 1) == 0) {
        return "fio";
    }
    if (import_blkparse_detect(data, len)) {
        return "blkparse";
    }
    if (import_dmlog_detect(data, len)) {
        return "dm-log-writes";
    }
    return import_csv_detect(data, len, &csv) ? import_csv_format_name(csv) : "native";
}

/* Load @path as @format into @t; prints the error and returns CLI_USAGE. */
int trace_load(const char *cmd, const char *path, const char **format,
               const struct import_fio_opts *fio, struct trace *t)
{
    char *data = NULL;
    size_t len = 0;
    struct err e = { .file = path };
    int ret = trace_file_read(path, TRACE_FILE_MAX, &data, &len, &e);
    if (ret == 0) {
        enum import_csv_format csv;
        if (strcmp(*format, "auto") == 0) {
            *format = format_detect(data, len);
        }
        if (strcmp(*format, "blkparse") == 0) {
            ret = import_blkparse(data, len, fio ? fio->volume : NULL, t, &e);
        } else if (strcmp(*format, "dm-log-writes") == 0) {
            ret = fio && fio->volume
                      ? err_set(&e, 0, 0, "--volume: a dm-log-writes log holds one device")
                      : import_dmlog(data, len, fio && fio->align_round, t, NULL, &e);
        } else if (import_csv_format_parse(*format, &csv)) {
            struct import_csv_opts co = { fio && fio->align_round, fio ? fio->volume : NULL };
            ret = import_csv(csv, data, len, &co, t, NULL, &e);
        } else {
            ret = strcmp(*format, "fio") == 0 ? import_fio(data, len, fio, t, NULL, &e)
                                              : trace_parse(t, data, len, &e);
        }
    }
    trace_file_free(data, len);
    if (ret < 0) {
        return cli_input_error(cmd, &e);
    }
    return 0;
}

static double wall_now(void)
{
    /* Wall time is reported, never used by the run: cli/ may read it. */
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void repro_command(const struct replay_args *a, const char *format, uint64_t seed,
                          char *buf, size_t size)
{
    int n = snprintf(buf, size, "blocksim replay %s --format %s --seed %" PRIu64 "%s",
                     a->path, format, seed, a->mutant_names);
    size_t at = n > 0 ? (size_t)n : 0;
    if (a->o.faults && at < size) {
        at += (size_t)snprintf(buf + at, size - at, " --faults '%s'", a->o.faults);
    }
    if (a->o.size && at < size) {
        at += (size_t)snprintf(buf + at, size - at, " --size %" PRIu64, a->o.size);
    }
    if (a->o.qd && at < size) {
        at += (size_t)snprintf(buf + at, size - at, " --qd %u", a->o.qd);
    }
    if (a->o.buggify && at < size) {
        at += (size_t)snprintf(buf + at, size - at, " --buggify");
    }
    if (a->o.stall_ns && at < size) {
        at += (size_t)snprintf(buf + at, size - at, " --stall %" PRIu64 "ns", a->o.stall_ns);
    }
    if (a->fio.align_round && at < size) {
        at += (size_t)snprintf(buf + at, size - at, " --align round");
    }
    if (at < size) {
        snprintf(buf + at, size - at, "%s", a->extra_args);
    }
}

/* The run as one HTML page at @path (report_html). */
static int html_write(const char *path, const char *title, const struct trace *t,
                      const struct world_result *r, const struct html_log *log)
{
    FILE *f = fopen(path, "w");
    if (!f) {
        return -1;
    }
    int ret = report_html_write(f, title, t, r, log);
    return fclose(f) != 0 || ret < 0 ? -1 : 0;
}

static void replay_print(const struct replay_args *a, const struct world_result *r,
                         const struct report_info *info)
{
    if (a->quiet) {
        return;
    }
    if (a->json) {
        json_t *j = report_json(r, info);
        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        fputc('\n', stdout);
        json_decref(j);
    } else {
        report_text(r, info, stdout);
    }
}

/* --bytes-check: the run @r again with every byte carried; what differs
 * into @differs ("" if nothing). Negative (and @e) if that run could not
 * start: the harness's own error, never the stack's failure. */
static int bytes_check(const struct replay_args *a, const struct trace *t,
                       const struct world_result *r, char *differs, size_t size, struct err *e)
{
    struct world_opts o = a->o;
    o.bytes = true;
    o.on_event = NULL;   /* the report and the files are the first run's */
    o.n_exports = 0;
    o.want_bitmaps = false;
    struct world_result b;
    TRY(world_run(t, &o, &b, e));
    (void)world_described_differs(r, &b, differs, size);
    world_result_fini(&b);
    return 0;
}

int cmd_replay(int argc, char **argv)
{
    struct replay_args a;
    int ret = replay_parse_args(&a, argc, argv);
    if (ret != 0) {
        return ret < 0 ? CLI_OK : ret;
    }
    struct trace t;
    const char *format = a.format;
    ret = trace_load("replay", a.path, &format, &a.fio, &t);
    if (ret != 0) {
        return ret;
    }
    struct world_result r;
    struct err e = { .file = a.path };
    struct html_log log;
    html_log_init(&log);
    if (a.html) {
        a.o.on_event = html_log_event;
        a.o.event_opaque = &log;
    }
    a.o.skip_content_hash = a.quiet && !a.html && !a.bytes_check; /* nothing shows it */
    double start = wall_now();
    ret = world_run(&t, &a.o, &r, &e);
    double secs = wall_now() - start;
    char differs[512] = "";
    struct err be = { .file = a.path };
    bool checked = ret < 0 || !a.bytes_check ||
                   bytes_check(&a, &t, &r, differs, sizeof(differs), &be) == 0;
    bool html_ok = ret < 0 || !a.html || html_write(a.html, a.path, &t, &r, &log) == 0;
    html_log_fini(&log);
    trace_fini(&t);
    if (ret < 0) {
        return cli_input_error("replay", &e);
    }
    char repro[1024];
    repro_command(&a, format, r.seed, repro, sizeof(repro));
    struct report_info info = { a.path, format, repro, a.wall, secs,
                                a.bytes_check && checked ? differs : NULL };
    replay_print(&a, &r, &info);
    world_result_fini(&r);
    int status = differs[0] ? CLI_FAIL : report_exit_status(&r);
    if (r.export_error[0]) {
        cli_error("replay", "%s", r.export_error);
        return status == CLI_OK ? CLI_USAGE : status;
    }
    if (!checked) { /* the report above stands; the cross-check is ours to fix */
        cli_error("replay", "--bytes-check: the run with --bytes did not start: %s", be.msg);
        return status == CLI_OK ? CLI_USAGE : status;
    }
    if (!html_ok) {
        cli_error("replay", "--html %s: %s", a.html, strerror(errno));
        return status == CLI_OK ? CLI_USAGE : status;
    }
    return status;
}

/* ---- convert ---- */

static void convert_usage(FILE *out)
{
    fprintf(out, "usage: blocksim convert IN OUT [--from auto|native|fio|blkparse|msr|alibaba|"
            "tencent|\n"
            "                        dm-log-writes|scenario]\n"
            "                        [--to native|fio] [--file NAME] [--volume ID]\n"
            "--to fio writes a fio version 3 iolog (real fio replays it with --read_iolog)\n"
            "on file NAME (default blocksim.img): a flush becomes sync, a discard trim, a\n"
            "write-zeroes a write; FUA and byte patterns are dropped; records fio cannot\n"
            "perform (crash, restart, jobs...) are refused.\n"
            "                        [--align reject|round]\n"
            "Write IN ('-': standard input) as a native trace to OUT ('-' for standard\n"
            "output). --align and --volume as in blocksim replay --help. OUT is\n"
            "replaced only once the whole trace was written. --from scenario reads a\n"
            "fuzz_scenario input or crash artifact (its first byte picks the property's\n"
            "generator, the rest are choices), so artifacts survive decoder changes\n"
            "once converted. (Its first byte modulo 32 is the property's fuzz id.)\n");
}

/* A fuzz_scenario input: byte 0 picks the property, the rest are choices. */
static int scenario_load(const char *path, struct trace *t)
{
    char *data = NULL;
    size_t len = 0;
    struct err e = { .file = path };
    if (trace_file_read(path, TRACE_FILE_MAX, &data, &len, &e) < 0 || len == 0) {
        cli_error("convert", "%s: %s", path, len == 0 && !e.msg[0] ? "empty input" : e.msg);
        trace_file_free(data, len);
        return CLI_USAGE;
    }
    const struct prop *p = registry_by_fuzz_id((uint8_t)data[0] % PROP_FUZZ_IDS);
    if (!p) {
        cli_error("convert", "%s: its first byte (%u) names no property's fuzz id", path,
                  (uint8_t)data[0]);
        trace_file_free(data, len);
        return CLI_USAGE;
    }
    struct choices c;
    choices_init_bytes(&c, (const uint8_t *)data + 1, len - 1);
    gen_scenario(&c, &p->gen, t);
    choices_fini(&c);
    trace_file_free(data, len);
    return 0;
}

/* @t to @f: native (canonical) or, with @fio_file, a fio v3 iolog. */
static void convert_print(const struct trace *t, const char *fio_file, FILE *f)
{
    if (fio_file) {
        (void)export_fio(t, fio_file, f); /* ferror(f) says */
    } else {
        trace_print_canonical(t, f);
    }
}

static int convert_write(const struct trace *t, const char *out_path, const char *fio_file)
{
    if (strcmp(out_path, "-") == 0) {
        convert_print(t, fio_file, stdout);
        return fflush(stdout) == 0 ? CLI_OK : CLI_USAGE;
    }
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", out_path, (long)getpid());
    FILE *f = fopen(tmp, "w");
    if (!f) {
        cli_error("convert", "%s: cannot create: %s", tmp, strerror(errno));
        return CLI_USAGE;
    }
    convert_print(t, fio_file, f);
    bool ok = !ferror(f);
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, out_path) != 0) {
        cli_error("convert", "%s: cannot write: %s", out_path, strerror(errno));
        unlink(tmp);
        return CLI_USAGE;
    }
    return CLI_OK;
}

int cmd_convert(int argc, char **argv)
{
    static const struct option options[] = {
        { "from", required_argument, NULL, 'f' },
        { "to", required_argument, NULL, 't' },
        { "file", required_argument, NULL, 'F' },
        { "align", required_argument, NULL, 'a' },
        { "volume", required_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *from = "auto";
    const char *to = "native";
    const char *fio_file = "blocksim.img";
    struct import_fio_opts fio = { .align_round = false };
    int c;
    optind = 1;
    while ((c = cli_getopt("convert", argc, argv, options)) != -1) {
        if (c == 'h') {
            convert_usage(stdout);
            return CLI_OK;
        }
        if (c == 'a') {
            CLI_TRY(cli_align_parse("convert", optarg, &fio));
            continue;
        }
        if (c == 'v') {
            fio.volume = optarg;
            continue;
        }
        if (c == 't' || c == 'F') {
            *(c == 't' ? &to : &fio_file) = optarg;
            continue;
        }
        if (c != 'f') {
            return CLI_USAGE;
        }
        from = optarg;
    }
    if (optind != argc - 2) {
        cli_error("convert", "expected IN and OUT (see --help)");
        return CLI_USAGE;
    }
    CLI_TRY(trace_format_check("convert", "--from", from, true));
    if (strcmp(to, "native") && strcmp(to, "fio")) {
        cli_error("convert", "--to: expected native or fio, got '%s'", to);
        return CLI_USAGE;
    }
    struct trace t;
    int ret = strcmp(from, "scenario") == 0 ? scenario_load(argv[optind], &t)
                                            : trace_load("convert", argv[optind], &from, &fio, &t);
    if (ret != 0) {
        return ret;
    }
    struct err e = { .file = argv[optind] };
    bool to_fio = strcmp(to, "fio") == 0;
    if (to_fio && export_fio_check(&t, &e) < 0) {
        trace_fini(&t);
        return cli_input_error("convert", &e);
    }
    ret = convert_write(&t, argv[optind + 1], to_fio ? fio_file : NULL);
    trace_fini(&t);
    return ret;
}
