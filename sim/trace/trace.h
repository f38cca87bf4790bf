/*
 * trace: the native scenario format, v1: parse, print, and build in memory.
 *
 * Role: the one serialised form of a scenario. Recorded guest I/O, imported
 *   traces, generated counterexamples and golden tests are all traces.
 * Model: ../shared/DESIGN.md "Trace formats"; dm-log-writes' idea of a replayable log.
 * Invariants: records keep file order; a parsed record keeps its source text
 *   only when that text differs from its canonical form, so printing a parsed
 *   trace gives back the same bytes, and records made in memory print in
 *   canonical form.
 * Ownership: a trace owns its records, their texts and config blocks.
 * Async contract: none.
 * Depends on: base, fault, disk (crash mode names), mutant (names).
 *
 * Grammar (one record a line; '#' starts a comment; blanks separate fields):
 *   blocksim-trace v1                         first line
 *   seed N                                    world seed (CLI --seed wins)
 *   topology plain|overlay [size=S] [cluster=S]
 *   topology colo [size=S] [cluster=S] [backup-cluster=S] [variant=modern|v12|v4]
 *                                             hosts primary and secondary (COLO
 *                                             block replication, spec 1)
 *   topology quorum [size=S] [children=N] [threshold=T] [read-pattern=quorum|fifo]
 *            [rewrite] [nbd=K] [ignore=I]...
 *                                             N children (1..8, default 3) on
 *                                             disks c0..; the last K are served
 *                                             over NBD from hosts s<i>; T
 *                                             defaults to a majority; ignore=I
 *                                             sets children.I's ignore-errors
 *   disk NAME [size=S] [cache=S] [latency=D-D] [flush=D] [atomic=yes|no]
 *        [image=PATH] [host=H] [backing=guest] a NAME the topology does not
 *                                             have adds an extra disk (a job's
 *                                             target; size= or image= needed)
 *                                             on host H (default: the guest's
 *                                             host; another name: a new host
 *                                             of its own that serves it over
 *                                             NBD, one disk a host);
 *                                             backing=guest: it holds an overlay
 *                                             over the guest's disk (a
 *                                             fleecing target: size= is the
 *                                             virtual size);
 *                                             image=: start from a raw image (a path
 *                                             relative to the trace's folder;
 *                                             no blanks); size= then must
 *                                             equal the file's
 *   fault KIND [key=value...]                 see fault.h
 *   qd N                                      queue depth from here on
 *   buggify                                   enable ref/'s BUGGIFY fault points
 *   mutant NAME                               plant a known bug (sim/mutant.h),
 *                                             as --mutant NAME does
 *   [@TIME] read|write|discard|zero OFFSET LENGTH [fua] [pattern=0xNN]
 *           [guest=primary|secondary]
 *                                             pattern (write only): every byte
 *                                             is NN, as qemu-io's write -P;
 *                                             else contents name the write;
 *                                             guest=secondary: colo's
 *                                             secondary guest issues it
 *   [@TIME] read OFFSET LENGTH export=DISK     read fleecing target DISK (an
 *                                             extra disk with backing=guest)
 *                                             over NBD, as a backup tool would
 *   [@TIME] flush [guest=primary|secondary]
 *   [@TIME] crash [mode=prefix|subset|tear]   without @TIME: after earlier
 *            [at-flush=N] [plan=F/F..]        operations complete; with it:
 *            [tear-seed=N]                    at TIME, whatever is in flight.
 *                                             at-flush=N: the crash strikes as
 *                                             the disks receive their Nth
 *                                             flush if that comes first (then
 *                                             the run goes on at the next
 *                                             restart; one such crash a trace).
 *                                             plan: per disk it takes down,
 *                                             in disk order (with host=, that
 *                                             host's), one fate per cache
 *                                             log entry:
 *                                             k keep, - drop, t tear (later
 *                                             entries are kept): the exact
 *                                             state explore's repro traces
 *                                             name
 *   [@TIME] crash ... [host=NAME]            NAME's host alone (primary, or a
 *   [@TIME] restart [host=NAME]               quorum's server s<i>); without
 *   [@TIME] shutdown [host=NAME]              host=, every host
 *   commit | make-empty                       overlay topology only
 *   bitmap add NAME [granularity=S] [persistent] [disabled]
 *   bitmap remove|clear|enable|disable|persist NAME
 *   bitmap merge SRC DST                      DST |= SRC
 *   bitmap successor|abdicate|reclaim NAME    incremental backup's dance
 *   job backup ID target=DISK sync=full|top|none|incremental|bitmap
 *       [bitmap=NAME] [bitmap-mode=on-success|never|always] [speed=S]
 *       [cluster=S] [on-source-error=P] [on-target-error=P]
 *       [auto-finalize=on|off] [auto-dismiss=on|off]
 *   job mirror ID target=DISK [sync=full|top] [granularity=S] [buf-size=S]
 *       [copy-mode=background|write-blocking] [speed=S] [on-source-error=P]
 *       [on-target-error=P] [auto-finalize=on|off] [auto-dismiss=on|off]
 *   job commit ID [speed=S]
 *   job pause|resume|complete|finalize|dismiss ID
 *   job cancel ID [force]
 *   job set-speed ID S
 *   job wait ID ready|pending|concluded      hold later records until then
 *                                             P: report|ignore|stop|enospc|auto
 *   replication start|checkpoint|get-error [host=NAME]
 *   replication stop [failover] [host=NAME]   colo: the replication operations
 *                                             on one host (default: every
 *                                             host, secondary first)
 *   colo checkpoint|failover|primary-alone    colo: COLO's own steps
 *   mark TEXT                                 a named point (dm-log-writes'
 *                                             marks): explore adds a crash
 *                                             point after the operations
 *                                             before it; TEXT: 1..63 of
 *                                             [A-Za-z0-9._:/+=-]
 *   [@TIME] shutdown                          clean close: flush, store
 *                                             bitmaps, host down
 *   expect verdict pass|fail | expect digest HEX | expect content HEX
 * Sizes take K/M/G/T suffixes (binary); durations need a unit: ns, us, ms
 * or s. @TIME is the earliest virtual time at which the record may run.
 * OFFSET and LENGTH are multiples of 512; LENGTH is at most 64M for read and
 * write (they carry data), 4G-512 for discard and zero (NBD's limit).
 */
#ifndef BLOCKSIM_TRACE_H
#define BLOCKSIM_TRACE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "../../ref/base.h"
#include "../dev/disk.h"
#include "../dev/fault.h"

#define TRACE_MAGIC "blocksim-trace"
#define TRACE_VERSION 1u

enum trace_kind {
    TRACE_HEADER,
    TRACE_BLANK, /* empty or comment-only line */
    TRACE_SEED,
    TRACE_TOPOLOGY,
    TRACE_DISK,
    TRACE_FAULT,
    TRACE_QD,
    TRACE_READ,
    TRACE_WRITE,
    TRACE_FLUSH,
    TRACE_DISCARD,
    TRACE_ZERO,
    TRACE_CRASH,
    TRACE_RESTART,
    TRACE_COMMIT,
    TRACE_MAKE_EMPTY,
    TRACE_EXPECT,
    TRACE_BUGGIFY,
    TRACE_BITMAP,
    TRACE_SHUTDOWN,
    TRACE_MUTANT,
    TRACE_JOB,
    TRACE_REPLICATION,
    TRACE_COLO,
    TRACE_MARK,
    TRACE__COUNT,
};

enum trace_topology { TRACE_TOPO_PLAIN, TRACE_TOPO_OVERLAY, TRACE_TOPO_QUORUM,
                      TRACE_TOPO_COLO };

/* replication and colo records (sim/trace/trace_colo.c): rec->sub. */
enum trace_repl_op { TRACE_REPL_START, TRACE_REPL_CHECKPOINT, TRACE_REPL_GET_ERROR,
                     TRACE_REPL_STOP, TRACE_REPL__COUNT };
enum trace_colo_op { TRACE_COLO_CHECKPOINT, TRACE_COLO_FAILOVER, TRACE_COLO_PRIMARY_ALONE,
                     TRACE_COLO__COUNT };
/* colo topology: replication's behaviour (spec 1.3, 1.4). */
enum trace_repl_variant { TRACE_VARIANT_MODERN, TRACE_VARIANT_V12, TRACE_VARIANT_V4,
                          TRACE_VARIANT__COUNT };
const char *trace_repl_op_name(enum trace_repl_op op);
const char *trace_colo_op_name(enum trace_colo_op op);
const char *trace_variant_name(enum trace_repl_variant v);

const char *trace_topology_name(enum trace_topology t);
enum trace_expect { TRACE_EXPECT_VERDICT, TRACE_EXPECT_DIGEST, TRACE_EXPECT_CONTENT };

#define TRACE_HOST_MAX 16
#define TRACE_MARK_MAX 63 /* a mark's text, without the NUL */
#define TRACE_MARK_CHARS "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._:/+=-"

/* Settings of a topology or disk record; a field is used when its has_ bit is set. */
struct trace_cfg {
    enum trace_topology topology;
    char name[FAULT_NAME_MAX];
    uint64_t size;
    uint64_t cluster;
    uint64_t cache;
    uint64_t lat_min_ns;
    uint64_t lat_max_ns;
    uint64_t flush_ns;
    bool atomic;
    bool has_size, has_cluster, has_cache, has_latency, has_flush, has_atomic;
    /* quorum topology: 0 for children and threshold means the default */
    unsigned children, threshold, nbd;
    unsigned ignore_mask; /* bit i: children.i ignores errors */
    bool fifo, rewrite;
    /* colo topology */
    uint64_t backup_cluster;        /* the secondary's backup job (0: 64 KiB) */
    enum trace_repl_variant variant;
    struct fault_rule fault;
    char *image;          /* disk: a raw image file to start from (owned), or NULL */
    char host[TRACE_HOST_MAX]; /* disk: an extra disk's host; "": the guest's */
    char backing[TRACE_HOST_MAX]; /* disk: an extra disk holding an overlay over this
                                   * ("guest": the guest's disk; image fleecing) */
};

enum trace_bitmap_op {
    TRACE_BM_ADD,
    TRACE_BM_REMOVE,
    TRACE_BM_CLEAR,
    TRACE_BM_ENABLE,
    TRACE_BM_DISABLE,
    TRACE_BM_MERGE,
    TRACE_BM_PERSIST,
    TRACE_BM_SUCCESSOR,
    TRACE_BM_ABDICATE,
    TRACE_BM_RECLAIM,
    TRACE_BM__COUNT,
};

#define TRACE_BITMAP_NAME_MAX 64 /* with the NUL: dirty.h's DIRTY_NAME_MAX */

/* A bitmap record: names are 1..63 of [A-Za-z0-9._-]. */
struct trace_bitmap {
    enum trace_bitmap_op op;
    char name[TRACE_BITMAP_NAME_MAX]; /* the bitmap; merge: the destination */
    char src[TRACE_BITMAP_NAME_MAX];  /* merge: the source */
    uint64_t gran;                    /* add: 0 for the default */
    bool persistent;                  /* add */
    bool disabled;                    /* add */
};

enum trace_job_op {
    TRACE_JOB_BACKUP,
    TRACE_JOB_MIRROR,
    TRACE_JOB_COMMIT,
    TRACE_JOB_PAUSE,
    TRACE_JOB_RESUME,
    TRACE_JOB_COMPLETE,
    TRACE_JOB_FINALIZE,
    TRACE_JOB_DISMISS,
    TRACE_JOB_CANCEL,
    TRACE_JOB_SET_SPEED,
    TRACE_JOB_WAIT,
    TRACE_JOB__COUNT,
};

enum trace_job_sync { TRACE_SYNC_FULL, TRACE_SYNC_TOP, TRACE_SYNC_NONE, TRACE_SYNC_INCREMENTAL,
                      TRACE_SYNC_BITMAP, TRACE_SYNC__COUNT };
enum trace_bitmap_mode { TRACE_BMODE_ON_SUCCESS, TRACE_BMODE_NEVER, TRACE_BMODE_ALWAYS,
                         TRACE_BMODE__COUNT };
enum trace_copy_mode { TRACE_COPY_BACKGROUND, TRACE_COPY_WRITE_BLOCKING, TRACE_COPY__COUNT };
/* BlockdevOnError, in ref/job.h's order. */
enum trace_policy { TRACE_POL_REPORT, TRACE_POL_IGNORE, TRACE_POL_STOP, TRACE_POL_ENOSPC,
                    TRACE_POL_AUTO, TRACE_POL__COUNT };
enum trace_job_state { TRACE_WAIT_READY, TRACE_WAIT_PENDING, TRACE_WAIT_CONCLUDED,
                       TRACE_WAIT__COUNT };

#define TRACE_JOB_ID_MAX 32

/* A job record (sim/trace/trace_job.c); an option is used when its has_ bit
 * is set, else QEMU's default applies. */
struct trace_job {
    enum trace_job_op op;
    char id[TRACE_JOB_ID_MAX];
    char target[FAULT_NAME_MAX];          /* backup, mirror: a disk */
    enum trace_job_sync sync;
    char bitmap[TRACE_BITMAP_NAME_MAX];   /* backup: "" for none */
    enum trace_bitmap_mode bitmap_mode;
    enum trace_copy_mode copy_mode;
    enum trace_policy on_source_error, on_target_error;
    uint64_t speed;                       /* creation, set-speed */
    uint64_t cluster;                     /* backup */
    uint64_t granularity, buf_size;       /* mirror */
    bool auto_finalize, auto_dismiss;
    bool force;                           /* cancel */
    enum trace_job_state state;           /* wait */
    bool has_sync, has_bitmap_mode, has_copy_mode, has_on_source_error,
        has_on_target_error, has_speed, has_cluster, has_granularity, has_buf_size,
        has_auto_finalize, has_auto_dismiss;
};

const char *trace_job_op_name(enum trace_job_op op);
const char *trace_job_sync_name(enum trace_job_sync s);
const char *trace_policy_name(enum trace_policy p);
const char *trace_job_state_name(enum trace_job_state s);

#define TRACE_PLAN_DISKS 8
#define TRACE_PLAN_ENTRIES 4096

/* A crash record's exact outcome (explore's repro traces). */
struct trace_crash_plan {
    uint64_t at_flush;         /* 0: none */
    uint64_t tear_seed;
    unsigned n_disks;          /* disks with fates (0: no plan, random) */
    uint32_t n[TRACE_PLAN_DISKS];
    uint8_t *fates[TRACE_PLAN_DISKS]; /* 0 drop, 1 keep, 2 tear */
};

struct trace_crash_plan *trace_crash_plan_new(void);
void trace_crash_plan_free(struct trace_crash_plan *p);

struct trace_rec {
    enum trace_kind kind;
    unsigned line;        /* 1-based source line; 0 when made in memory */
    bool has_at;
    bool fua;
    bool has_pattern;     /* write: every byte is pattern (qemu-io write -P) */
    uint8_t pattern;
    bool has_mode;        /* crash */
    char host[TRACE_HOST_MAX]; /* crash, restart, shutdown, replication: one host;
                                * "": every host */
    uint8_t guest;        /* ops: 0 the guest (colo: the primary's), 1 colo's secondary */
    char export[TRACE_HOST_MAX]; /* read: an extra disk's NBD export to read, or "" */
    uint8_t sub;          /* replication, colo: enum trace_repl_op / trace_colo_op */
    bool failover;        /* replication stop failover */
    enum disk_crash_mode mode;
    enum trace_expect expect;
    uint64_t at_ns;
    uint64_t offset;      /* ops: bytes */
    uint64_t len;
    uint64_t value;       /* seed, qd, expected digest/content, verdict (1 pass) */
    struct trace_cfg *cfg; /* topology, disk, fault; else NULL */
    struct trace_bitmap *bm; /* bitmap; else NULL */
    struct trace_crash_plan *plan; /* crash with at-flush, plan or tear-seed; else NULL */
    struct trace_job *job;         /* job; else NULL */
    char *mark;           /* mark: its text (owned); else NULL */
    char *text;           /* source text when not canonical; else NULL */
};

struct trace {
    struct trace_rec *recs;
    size_t n;
    size_t cap;
    bool no_final_newline; /* the source's last line had no '\n' */
};

void trace_init(struct trace *t);
void trace_fini(struct trace *t);

/* Parse @len bytes. On error fills @e (file is left to the caller) and the
 * trace holds nothing. */
int trace_parse(struct trace *t, const char *data, size_t len, struct err *e) WUR;

/* Read a whole file (at most @max bytes) into a new buffer; *len gets its
 * length. Returns 0 or a negative errno with @e filled. */
int trace_file_read(const char *path, size_t max, char **data, size_t *len,
                    struct err *e) WUR;

/* The importers' line loop: each line of @data (without its '\n') copied
 * NUL-terminated into a buffer of @max bytes and passed to @fn with its
 * 1-based number; a longer line or one holding a NUL byte is an error.
 * @fn returns < 0 on an error (located at its line unless it named one), 0
 * to go on, 1 to stop early. *@lines: the lines seen. */
/* The content detectors' first look: @data's first line (no '\n', no
 * trailing '\r') NUL-terminated into @buf; false when it is empty or does
 * not fit in @size bytes. */
bool trace_first_line(const char *data, size_t len, char *buf, size_t size);

typedef int trace_line_fn(void *ctx, char *line, size_t len, unsigned no, struct err *e);
int trace_each_line(const char *data, size_t len, size_t max, trace_line_fn *fn, void *ctx,
                    unsigned *lines, struct err *e) WUR;
void trace_file_free(char *data, size_t len);

/* Print every record: the same bytes a parsed trace came from. */
void trace_print(const struct trace *t, FILE *out);

/* Print every record in canonical form (drops source spelling, keeps
 * comments and blank lines). */
void trace_print_canonical(const struct trace *t, FILE *out);

/* Print into a new malloc'd string (free() it); *len gets its length. */
char *trace_print_string(const struct trace *t, bool canonical, size_t *len);

/* Same records, semantically (trace_rec_equal on each). */
bool trace_equal(const struct trace *a, const struct trace *b);

/* Append a record made in memory (text NULL, line 0); the trace takes @cfg. */
struct trace_rec *trace_append(struct trace *t, enum trace_kind kind);
struct trace_cfg *trace_cfg_new(void);

bool trace_kind_is_op(enum trace_kind kind);

/* The word of a bitmap operation ("add", "merge", ...). */
const char *trace_bitmap_op_name(enum trace_bitmap_op op);

/* Are the @n bytes at @name a valid bitmap name (see struct trace_bitmap)? */
bool trace_bitmap_name_ok(const char *name, size_t n);

/* A bitmap record made in memory; the trace owns it. */
struct trace_bitmap *trace_bitmap_new(void);
const char *trace_kind_name(enum trace_kind kind);

/* Semantic equality of two records (ignores source text and line). */
bool trace_rec_equal(const struct trace_rec *a, const struct trace_rec *b);

/* Largest length of a read or write (it carries data) and of a discard or
 * write-zeroes (it does not; NBD's 32-bit length, 512-aligned). */
#define TRACE_IO_LEN_MAX (64ull << 20)
#define TRACE_RANGE_LEN_MAX (0xffffffffull & ~511ull)

/* Is @len a valid length for a @kind record? NULL if so, else @why says
 * which bound failed. */
const char *trace_len_problem(enum trace_kind kind, uint64_t len, char *why, size_t size);

/* Print @t as a repro trace: its header line, @comment (each line as a
 * '#' comment), a 'mutant' record for each planted bug in @node_mutants and
 * @disk_mutants that @t does not name already, then the rest of @t in
 * canonical form. */
void trace_print_repro(const struct trace *t, const char *comment, uint64_t node_mutants,
                       unsigned disk_mutants, FILE *out);

/* Does @t hold a 'mutant' record for mutant_table[@index]? */
bool trace_has_mutant(const struct trace *t, size_t index);

#endif
