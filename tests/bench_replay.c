/*
 * bench_replay: replay throughput and memory of the plain stack.
 *
 * Method: each scenario is a trace built in memory and replayed by
 * world_run in a forked child, so its peak resident memory (wait4's
 * ru_maxrss) is its own. Throughput counts guest operations completed per
 * wall second, checker included: every read is verified sector by sector.
 * Figures vary with the machine's load; compare ratios from one run.
 * Lines marked "+ bitmaps" attach persistent dirty bitmaps (--bitmap) and
 * are the same run otherwise, so their ratio is the bitmaps' cost. Lines
 * "backup" and "mirror" run a job over the whole disk onto a second one
 * with half of the guest's operations issued while it runs (the mirror
 * then completes and pivots); their copy rate is the disk's size over the
 * run's wall time, in GiB of virtual disk per second. Last, the bitmap
 * itself: memory for 1 TiB at 64 KiB and set / iterate rates.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../ref/bitmap.h"
#include "../sim/base/rng.h"
#include "../sim/trace/import_blkparse.h"
#include "../sim/trace/import_csv.h"
#include "../sim/trace/import_dmlog.h"
#include "../sim/world/world.h"

struct bench {
    const char *name;
    uint64_t disk_bytes;
    uint64_t writes;
    uint64_t reads;
    unsigned qd;
    uint64_t cache;
    unsigned bitmaps; /* persistent bitmaps attached: 64K, then 4K granularity */
    enum trace_job_op job; /* TRACE_JOB_BACKUP or _MIRROR over the disk, or _WAIT: none */
    unsigned colo_every;   /* >0: a COLO pair, a checkpoint every so many primary writes */
    unsigned quorum;       /* >0: a quorum of this many local children */
};

struct bench_out {
    double seconds;
    uint64_t ops;
    uint64_t bytes;
    int verdict;
    uint64_t mem_peak;
};

/* A job record on job j (a backup or mirror: onto tgt, sync full). */
static struct trace_job *bench_job(struct trace *t, enum trace_job_op op)
{
    struct trace_job *j = trace_append(t, TRACE_JOB)->job = mem_alloc(sizeof(*j));
    j->op = op;
    j->auto_finalize = j->auto_dismiss = true;
    snprintf(j->id, sizeof(j->id), "j");
    if (op == TRACE_JOB_BACKUP || op == TRACE_JOB_MIRROR) {
        snprintf(j->target, sizeof(j->target), "tgt");
        j->has_sync = true; /* full */
    }
    return j;
}

static void bench_trace(const struct bench *b, struct trace *t)
{
    struct rng r;
    rng_seed(&r, 2024);
    trace_init(t);
    trace_append(t, TRACE_HEADER)->value = TRACE_VERSION;
    struct trace_rec *topo = trace_append(t, TRACE_TOPOLOGY);
    topo->cfg = trace_cfg_new();
    topo->cfg->size = b->disk_bytes;
    topo->cfg->has_size = true;
    topo->cfg->topology = b->colo_every ? TRACE_TOPO_COLO
                          : b->quorum   ? TRACE_TOPO_QUORUM
                                        : TRACE_TOPO_PLAIN;
    topo->cfg->children = b->quorum;
    static const char *const names[] = { "d0", "primary-disk", "secondary-disk" };
    unsigned n_disks = b->colo_every ? 2 : b->quorum ? b->quorum : 1;
    for (unsigned k = 0; k < n_disks; k++) {
        struct trace_rec *disk = trace_append(t, TRACE_DISK);
        disk->cfg = trace_cfg_new();
        if (b->quorum) {
            snprintf(disk->cfg->name, sizeof(disk->cfg->name), "c%u", k);
        } else {
            snprintf(disk->cfg->name, sizeof(disk->cfg->name), "%s",
                     names[k + (b->colo_every ? 1 : 0)]);
        }
        disk->cfg->cache = b->cache;
        disk->cfg->has_cache = true;
    }
    bool job = b->job != TRACE_JOB_WAIT;
    if (job) {
        struct trace_rec *tgt = trace_append(t, TRACE_DISK);
        tgt->cfg = trace_cfg_new();
        snprintf(tgt->cfg->name, sizeof(tgt->cfg->name), "tgt");
        tgt->cfg->size = b->disk_bytes;
        tgt->cfg->has_size = true;
        tgt->cfg->cache = b->cache;
        tgt->cfg->has_cache = true;
    }
    trace_append(t, TRACE_QD)->value = b->qd;
    uint64_t blocks = b->disk_bytes / 4096;
    uint64_t n = b->writes + b->reads;
    for (uint64_t i = 0; i < n; i++) {
        if (job && i == n / 2) { /* half the guest's operations run during the job */
            bench_job(t, b->job);
        }
        /* Writes and reads interleaved, so both run during the job. */
        bool write = job ? i % 2 == 0 || i >= 2 * b->reads : i < b->writes;
        struct trace_rec *op = trace_append(t, write ? TRACE_WRITE : TRACE_READ);
        op->offset = rng_below(&r, blocks) * 4096;
        op->len = 4096;
        /* COLO: the reads are the secondary guest's (judged against C + S) */
        op->guest = b->colo_every && !write;
        if (b->colo_every && write && (i + 1) % b->colo_every == 0) {
            trace_append(t, TRACE_COLO)->sub = TRACE_COLO_CHECKPOINT;
        }
    }
    if (b->job == TRACE_JOB_MIRROR) {
        bench_job(t, TRACE_JOB_WAIT)->state = TRACE_WAIT_READY;
        bench_job(t, TRACE_JOB_COMPLETE);
    }
    if (job) {
        bench_job(t, TRACE_JOB_WAIT)->state = TRACE_WAIT_CONCLUDED;
    }
}

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void bench_child(const struct bench *b, int fd)
{
    struct trace t;
    bench_trace(b, &t);
    static const struct world_bitmap_spec specs[] = { { "b64k", 65536 }, { "b4k", 4096 } };
    struct world_opts o = { .qd = b->qd, .bitmaps = specs, .n_bitmaps = b->bitmaps };
    struct world_result r;
    struct err e = { .file = b->name };
    double start = wall();
    int ret = world_run(&t, &o, &r, &e);
    if (ret < 0) {
        fprintf(stderr, "%s: the bench's own trace is refused: %s\n", b->name, e.msg);
    }
    struct bench_out out = { wall() - start, 0, 0, ret < 0 ? -1 : (int)r.verdict,
                             (uint64_t)mem_bytes_peak() };
    out.ops = r.ops[TRACE_READ] + r.ops[TRACE_WRITE];
    out.bytes = r.bytes_read + r.bytes_written;
    trace_fini(&t);
    ssize_t n = write(fd, &out, sizeof(out));
    _exit(n == (ssize_t)sizeof(out) ? 0 : 1);
}

static int bench_run(const struct bench *b)
{
    int fds[2];
    if (pipe(fds) != 0) {
        perror("pipe");
        return 1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        bench_child(b, fds[1]);
    }
    close(fds[1]);
    struct bench_out out;
    ssize_t got = read(fds[0], &out, sizeof(out));
    close(fds[0]);
    int status;
    struct rusage ru;
    wait4(pid, &status, 0, &ru);
    if (got != (ssize_t)sizeof(out) || out.verdict != 0) {
        fprintf(stderr, "%s: run failed (verdict %d)\n", b->name, got > 0 ? out.verdict : -1);
        return 1;
    }
    if (b->colo_every) {
        printf("%-28s %9" PRIu64 " ops %7.3f s %10.0f ops/s   (a checkpoint every %u primary "
               "writes; goal 300k ops/s)\n", b->name, out.ops, out.seconds,
               (double)out.ops / out.seconds, b->colo_every);
        return 0;
    }
    if (b->quorum) {
        printf("%-28s %9" PRIu64 " ops %7.3f s %10.0f ops/s   (every read voted and every "
               "child judged; goal 300k ops/s)\n", b->name, out.ops, out.seconds,
               (double)out.ops / out.seconds);
        return 0;
    }
    if (b->job != TRACE_JOB_WAIT) {
        printf("%-28s %9" PRIu64 " ops %7.3f s %10.0f ops/s   copy %6.2f GiB of virtual disk "
               "per second (%" PRIu64 " GiB disk, guest I/O running)\n", b->name, out.ops,
               out.seconds, (double)out.ops / out.seconds,
               (double)b->disk_bytes / (1 << 30) / out.seconds, b->disk_bytes >> 30);
        return 0;
    }
    double mib = (double)out.bytes / (1 << 20);
    double rss = (double)ru.ru_maxrss / 1024; /* KiB to MiB */
    /* Data the disk can hold at most: what was written, capped by its size. */
    uint64_t held = b->writes * 4096 < b->disk_bytes ? b->writes * 4096 : b->disk_bytes;
    double data = (double)held / (1 << 20);
    printf("%-28s %9" PRIu64 " ops %7.3f s %10.0f ops/s %8.1f MiB/s %7.0f ns/op   "
           "peak RSS %7.1f MiB (data held <= %6.1f MiB, target <= %6.1f MiB)\n", b->name,
           out.ops, out.seconds, (double)out.ops / out.seconds, mib / out.seconds,
           out.seconds * 1e9 / (double)out.ops, rss, data, 1.5 * data + 64);
    return 0;
}

/* The bitmap alone: 1 TiB at 64 KiB granularity. */
static void bench_bitmap(uint64_t scale)
{
    uint64_t size = 1ull << 40;
    struct bitmap *b = bitmap_new(size, 65536);
    struct rng r;
    rng_seed(&r, 7);
    uint64_t n = 2000000 * scale;
    double start = wall();
    for (uint64_t i = 0; i < n; i++) {
        bitmap_set(b, rng_below(&r, size / 4096) * 4096, 4096);
    }
    double set_s = wall() - start;
    start = wall();
    uint64_t off = 0;
    uint64_t len = 0;
    uint64_t extents = 0;
    while (bitmap_next_extent(b, size, &off, &len)) {
        extents++;
        off += len;
    }
    double iter_s = wall() - start;
    printf("%-28s %9" PRIu64 " sets %5.0f ns/set; %" PRIu64 " extents iterated in %.3f s "
           "(%.0f ns/extent); memory %.2f MiB (target about 2 MiB)\n", "bitmap 1 TiB at 64K", n,
           set_s * 1e9 / (double)n, extents, iter_s, iter_s * 1e9 / (double)extents,
           (double)bitmap_memory(b) / (1 << 20));
    bitmap_free(b);
}

/* Line @i of a synthetic trace in CSV format @f. */
static int csv_line(enum import_csv_format f, uint64_t i, char *buf, size_t size)
{
    uint64_t off = (i * 7919) % 262144;
    bool w = i % 3 != 0;
    switch (f) {
    case CSV_MSR:
        return snprintf(buf, size, "%" PRIu64 ",hm,0,%s,%" PRIu64 ",4096,10\n",
                        (uint64_t)128166372000000000 + i * 10, w ? "Write" : "Read", off * 4096);
    case CSV_ALIBABA:
        return snprintf(buf, size, "7,%s,%" PRIu64 ",4096,%" PRIu64 "\n", w ? "W" : "R",
                        off * 4096, (uint64_t)1577808000000626 + i);
    default:
        return snprintf(buf, size, "%" PRIu64 ",%" PRIu64 ",8,%s,7\n",
                        (uint64_t)1538323200 + i / 1000, off * 8, w ? "1" : "0");
    }
}

/* The CSV readers: records imported per second, from a buffer. */
static void bench_csv(uint64_t scale)
{
    uint64_t n = 1000000 * scale;
    for (unsigned f = 0; f < CSV__COUNT; f++) {
        size_t cap = (size_t)n * 64;
        char *buf = malloc(cap);
        size_t len = 0;
        for (uint64_t i = 0; i < n; i++) {
            len += (size_t)csv_line((enum import_csv_format)f, i, buf + len, cap - len);
        }
        struct trace t;
        struct err e = { .file = "bench" };
        double start = wall();
        int ret = import_csv((enum import_csv_format)f, buf, len, NULL, &t, NULL, &e);
        double secs = wall() - start;
        char name[40];
        snprintf(name, sizeof(name), "import %s", import_csv_format_name(f));
        printf("%-28s %9zu records %6.3f s %10.0f records/s (goal 1M/s)%s%s\n", name,
               ret == 0 ? t.n - 1 : 0, secs, ret == 0 ? (double)(t.n - 1) / secs : 0,
               ret == 0 ? "" : "  FAILED: ", ret == 0 ? "" : e.msg);
        if (ret == 0) {
            trace_fini(&t);
        }
        free(buf);
    }
}

static void bench_import_report(const char *name, int ret, const struct trace *t, double secs,
                                const struct err *e)
{
    printf("%-28s %9zu records %6.3f s %10.0f records/s%s%s\n", name, ret == 0 ? t->n - 1 : 0,
           secs, ret == 0 ? (double)(t->n - 1) / secs : 0, ret == 0 ? "" : "  FAILED: ",
           ret == 0 ? "" : e->msg);
}

/* blkparse text and dm-log-writes logs: records imported per second. */
static void bench_recorded(uint64_t scale)
{
    uint64_t n = 1000000 * scale;
    size_t cap = (size_t)n * 80;
    char *buf = malloc(cap);
    size_t len = 0;
    for (uint64_t i = 0; i < n; i++) {
        len += (size_t)snprintf(buf + len, cap - len, "  8,0 %u %" PRIu64 " %" PRIu64
                                ".%09" PRIu64 " 4242 Q %s %" PRIu64 " + 8 [fio]\n",
                                (unsigned)(i % 4), i + 1, i / 1000000, i % 1000000 * 1000,
                                i % 3 ? "WS" : "R", (i * 7919) % (1u << 21) * 8);
    }
    struct trace t;
    struct err e = { .file = "bench" };
    double start = wall();
    int ret = import_blkparse(buf, len, NULL, &t, &e);
    bench_import_report("import blkparse", ret, &t, wall() - start, &e);
    if (ret == 0) {
        trace_fini(&t);
    }
    free(buf);
    /* dm-log-writes, 4 KiB sectors of one write each (plus a mark every 1000) */
    uint64_t entries = 100000 * scale;
    const size_t ss = 4096;
    cap = (size_t)(entries + 1) * 2 * ss;
    unsigned char *log = calloc(1, cap);
    uint64_t magic = DMLOG_MAGIC;
    uint64_t version = 1;
    uint32_t ss32 = (uint32_t)ss;
    memcpy(log, &magic, 8); /* little-endian hosts only: a benchmark */
    memcpy(log + 8, &version, 8);
    memcpy(log + 16, &entries, 8);
    memcpy(log + 24, &ss32, 4);
    len = ss;
    for (uint64_t i = 0; i < entries; i++) {
        uint64_t head[4] = { (i * 7919) % (1u << 18), i % 1000 ? 1 : 0,
                             i % 1000 ? (i % 16 ? 0 : DMLOG_FUA) : DMLOG_MARK, i % 1000 ? 0 : 1 };
        memcpy(log + len, head, sizeof(head));
        log[len + 32] = i % 1000 ? 0 : 'm';
        len += ss;
        if (head[1]) {
            memset(log + len, (int)(i % 7), ss);
            log[len + 100] = 1; /* not all one byte */
            len += ss;
        }
    }
    start = wall();
    ret = import_dmlog((const char *)log, len, false, &t, NULL, &e);
    bench_import_report("import dm-log-writes", ret, &t, wall() - start, &e);
    if (ret == 0) {
        trace_fini(&t);
    }
    free(log);
}

int main(int argc, char **argv)
{
    uint64_t scale = argc > 1 ? strtoull(argv[1], NULL, 10) : 1;
    if (scale == 0) {
        scale = 1;
    }
    static const uint64_t MiB = 1ull << 20;
    const enum trace_job_op none = TRACE_JOB_WAIT;
    const struct bench benches[] = {
        { "4K random write+read, 64 MiB", 64 * MiB, 500000 * scale, 500000 * scale, 32,
          16 * MiB, 0, none, 0, 0 },
        { "4K random write, 1 GiB", 1024 * MiB, 500000 * scale, 0, 32, 16 * MiB, 0, none, 0, 0 },
        { "4K random write+read, 1 GiB", 1024 * MiB, 250000 * scale, 250000 * scale, 32,
          16 * MiB, 0, none, 0, 0 },
        { "  + bitmaps (64K and 4K)", 1024 * MiB, 250000 * scale, 250000 * scale, 32,
          16 * MiB, 2, none, 0, 0 },
        { "4K random write, no cache", 1024 * MiB, 500000 * scale, 0, 32, 0, 0, none, 0, 0 },
        { "1 TiB disk, 100k writes", 1024 * 1024 * MiB, 100000 * scale, 0, 32, 16 * MiB, 0,
          none, 0, 0 },
        { "backup full, 1 GiB", 1024 * MiB, 50000 * scale, 50000 * scale, 32, 16 * MiB, 0,
          TRACE_JOB_BACKUP, 0, 0 },
        { "mirror full + complete, 1 GiB", 1024 * MiB, 50000 * scale, 50000 * scale, 32,
          16 * MiB, 0, TRACE_JOB_MIRROR, 0, 0 },
        { "quorum of three, 64 MiB", 64 * MiB, 500000 * scale, 500000 * scale, 32, 16 * MiB,
          0, none, 0, 3 },
        { "COLO pair, 64 MiB", 64 * MiB, 500000 * scale, 500000 * scale, 32, 16 * MiB, 0,
          none, 1000, 0 },
    };
    printf("blocksim bench: plain stack (the quorum and COLO lines say so), qd 32, checker on, one "
           "process per line; %ld cores online\n", sysconf(_SC_NPROCESSORS_ONLN));
    int failed = 0;
    for (size_t i = 0; i < sizeof(benches) / sizeof(benches[0]); i++) {
        const char *only = getenv("BLOCKSIM_BENCH_ONLY"); /* a substring of the names */
        if (!only || strstr(benches[i].name, only)) {
            failed |= bench_run(&benches[i]);
        }
    }
    bench_bitmap(scale);
    bench_csv(scale);
    bench_recorded(scale);
    return failed;
}
