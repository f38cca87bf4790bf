/*
 * world: one deterministic run of a scenario: clock, queue, streams, the
 *   host with its disks and block stack, the guest workload and the checker.
 *
 * Role: the scenario runner. A trace goes in; a verdict, counts, a digest
 *   and the first violation come out. Every source of scenarios (replay,
 *   properties, fuzzers) runs through world_run.
 * Model: ../shared/DESIGN.md "The world": a host crashes (its stack dies, its disks
 *   resolve their caches) and restarts (its images reopen from what is
 *   durable); a guest issues operations in trace order up to a queue depth,
 *   and never lets two overlapping operations run at once when one of them
 *   writes (a flush waits for earlier writes), as a well-behaved guest does.
 * Invariants: no global state; the same trace, options and seed give the
 *   same digest on every machine; a run ends when the trace is done and the
 *   queue drained, at the first violation, or at the deadline.
 * Ownership: world_run owns everything it creates and frees it before it
 *   returns (the caller can assert mem_blocks_live() is unchanged), except
 *   the bitmaps it reports when asked to (world_result_fini).
 * Async contract: world_run is synchronous; inside, everything is events.
 * Depends on: evq, rng, disk, fault, trace, check_rw, check_bitmap, files,
 *   ref/ (node, drivers, dirty, qbm).
 */
#ifndef BLOCKSIM_WORLD_H
#define BLOCKSIM_WORLD_H

#include <stdbool.h>
#include <stdint.h>

#include "../check/check_rw.h"

struct checker;
#include "../dev/disk.h"
#include "../trace/trace.h"

#define WORLD_DISKS_MAX 8 /* the quorum topology: a disk per child */

/* A persistent bitmap on the guest disk from the start (--bitmap NAME:G). */
struct world_bitmap_spec {
    char name[TRACE_BITMAP_NAME_MAX];
    uint64_t gran; /* 0: the default */
};

/* A bitmap as the run left it (world_opts.want_bitmaps). */
struct world_bitmap {
    char name[TRACE_BITMAP_NAME_MAX];
    uint64_t granularity;
    const char *state;   /* dirty_status(): active, disabled, frozen, ... */
    bool persistent;
    bool recording;
    uint64_t count;      /* dirty bytes (whole groups, as QEMU counts) */
    uint64_t (*extents)[2]; /* [offset, length] ascending, merged, clipped */
    size_t n_extents;
};

/* --export NAME=PATH: after the run, a disk's durable contents (NAME a disk
 * of the topology) or what the guest reads (NAME "guest") as a raw file. */
struct world_export {
    const char *name;
    const char *path;
};

#define WORLD_EXPORTS_MAX 8

struct world_event;

struct world_opts {
    uint64_t seed;         /* used when has_seed, else the trace's, else 1 */
    bool has_seed;
    uint64_t size;         /* guest disk size; 0: from the trace or its extent */
    unsigned qd;           /* 0: the trace's qd records (default 1) */
    uint64_t node_mutants; /* NODE_MUTANT_* bits: planted bugs in ref/ */
    unsigned disk_mutants; /* enum disk_mutant bits: planted bugs in the disk */
    const char *faults;    /* extra fault rules "RULE;RULE", or NULL */
    uint64_t stall_ns;     /* liveness: work pending and nothing completed or
                            * issued for this long (a record's @TIME still to
                            * come is no stall); 0: one virtual hour */
    /* Crash exploration (props/crashx): at crash number crash_plan_at
     * (0-based; the trace's own crash records count), crash_hook sees each
     * disk's cache log before it resolves, and crash_plans (one per disk, or
     * NULL) replace the crash generator there. */
    void (*crash_hook)(void *opaque, unsigned disk, const struct disk *d);
    void *crash_hook_opaque;
    /* Then (crash_hook having seen every disk the crash takes down, before
     * any resolves) crash_branch, with the same opaque, says how this
     * process resolves it: NULL as crash_plans says (or the crash
     * generator), else these plans (a child the explorer forked there). */
    const struct disk_crash_plan *(*crash_branch)(void *opaque);
    const struct disk_crash_plan *crash_plans;
    uint64_t crash_plan_at;
    /* Crash the host as the disks receive their Nth flush (1-based; 0: off),
     * then go on at the trace's next 'restart' record. */
    uint64_t crash_at_flush;
    bool buggify;          /* enable BUGGIFY points (also: a 'buggify' record) */
    const struct world_bitmap_spec *bitmaps; /* added at the first open */
    unsigned n_bitmaps;
    bool dirty_mark_early; /* mark bitmaps when a write is issued (the seed's mode) */
    bool want_bitmaps;     /* fill world_result.bitmaps; world_result_fini frees them */
    bool want_checks;      /* fill world_result.checks and .jobs (likewise) */
    bool bytes;            /* carry every guest byte through the stack: no described
                            * I/O (ref/env.h struct env_desc) between the guest and a
                            * disk right below it; same verdicts and digest, slower */
    bool skip_content_hash; /* nobody reads world_result.content_hash (0 then) unless
                             * an 'expect content' record does: the hash over every
                             * byte stored is a tenth of a quiet replay */
    /* Told of each event as it happens (NULL: nobody). */
    void (*on_event)(void *opaque, const struct world_event *ev);
    void *event_opaque;
    const char *base_dir;  /* relative image= paths start here (NULL: the cwd) */
    const struct world_export *exports;
    unsigned n_exports;
    /* More checkers (sim/check/checker.h), dispatched after the world's
     * own; their state is the caller's; fini, if set, runs when the run ends. */
    const struct checker *checkers;
    unsigned n_checkers;
};

enum world_verdict { WORLD_PASS, WORLD_FAIL };

#define WORLD_RESULT_HOSTS 9

/* A host as the run left it. */
/* What happened, as it happened, for a picture of the run
 * (world_opts.on_event; sim/world/report_html). */
enum world_ev_kind {
    WORLD_EV_OP,      /* a guest operation ended (or was lost: ret BS_ECRASHED) */
    WORLD_EV_CONTROL, /* a control record ran (crash, restart, job, colo...) */
    WORLD_EV_JOB,     /* a block job's event (text: its name, then the job id) */
    WORLD_EV_FAULT,   /* injected faults fired (text: the kind; index: how many) */
};

struct world_event {
    enum world_ev_kind kind;
    uint64_t t_ns;        /* when it ended or ran */
    uint64_t t_start_ns;  /* an op: when it was submitted */
    unsigned host;        /* the host it ran on (hosts[] of the result) */
    unsigned line;        /* its trace line, 0 if none */
    enum trace_kind rec;  /* the record's kind */
    uint64_t index;       /* an op: its guest operation index; a fault: the count */
    uint64_t offset, len; /* an op's range */
    int ret;
    const char *text;     /* valid during the call only */
};

struct world_host {
    char name[16];
    bool up;             /* at the end */
    uint64_t crashes;    /* power lost */
    uint64_t downs;      /* went down: crashes and shutdowns */
};

struct world_result {
    enum world_verdict verdict;  /* the checkers' verdict */
    bool expect_failed;          /* an 'expect' record did not hold */
    unsigned expects;            /* 'expect' records checked */
    char expect_msg[256];
    uint64_t seed;
    uint64_t digest;
    uint64_t content_hash;
    uint64_t sim_ns;
    uint64_t events;
    uint64_t ops[TRACE__COUNT];  /* completed guest operations by kind */
    uint64_t errors[TRACE__COUNT];
    uint64_t lost;               /* in flight when their host crashed */
    uint64_t bytes_read;
    uint64_t bytes_written;
    uint64_t serialised;         /* operations that waited for an overlap */
    uint64_t described_reads;    /* guest reads a disk answered in tags (ref/env.h
                                  * struct env_desc), never as bytes */
    uint64_t crashes;
    uint64_t restarts;
    uint64_t sectors_checked;
    uint64_t explained;          /* wrong values explained by injected faults */
    uint64_t faults[FAULT__COUNT];
    uint64_t device_flushes;     /* flushes the disks received */
    uint64_t buggified;          /* BUGGIFY points that fired */
    const char *topology;
    unsigned n_disks;
    struct violation first;      /* when verdict is WORLD_FAIL */
    bool ended_early;            /* an operator action failed under injected
                                  * faults: the rest of the trace did not run */
    char note[240];
    char refusal[256];           /* the first bitmap operation the stack refused */
    uint64_t quorum_judged;      /* quorum requests the quorum checker judged */
    uint64_t quorum_votes;       /* reads whose children disagreed */
    uint64_t quorum_repairs;     /* children rewritten by rewrite-corrupted */
    uint64_t quorum_events[3];   /* REPORT_BAD, FAILURE, VERIFY_MISMATCH */
    uint64_t child_errors;       /* child requests that failed (quorum) */
    uint64_t net_segments;       /* sim/net traffic (NBD children) */
    uint64_t net_resets;
    bool bitmaps_on;             /* the run used dirty bitmaps */
    bool bitmaps_lost;           /* the host was down after a crash at the end */
    struct world_bitmap *bitmaps; /* want_bitmaps: the guest disk's bitmaps at the
                                   * end (or at the last clean shutdown) */
    unsigned n_bitmaps;
    char export_error[320];      /* an --export that could not be written, or "" */
    struct world_host hosts[WORLD_RESULT_HOSTS];
    unsigned n_hosts;
    json_t *jobs;                /* want_checks: the block jobs that ran (id, type,
                                  * status, progress, error, events), or NULL when
                                  * none did (world_result_fini frees it) */
    json_t *replication;         /* want_checks, colo: stages, operations, checkpoints,
                                  * failovers, or NULL (world_result_fini frees it) */
    uint64_t job_refusals;       /* job verbs the stack refused (QEMU's error replies) */
    char job_refusal[256];       /* the first of them */
    json_t *checks;              /* want_checks: each checker's own report section,
                                  * by checker name ("rw", "bitmap", "quorum",
                                  * "replicas") */
};

/* Free what world_run put in @r (the bitmaps); @r stays readable. */
void world_result_fini(struct world_result *r);

/* Whether runs @a (described I/O) and @b (opts.bytes) of one trace, which
 * must be the same run, differ in verdict, digest, contents or first
 * violation; if so @msg says how. */
bool world_described_differs(const struct world_result *a, const struct world_result *b,
                             char *msg, size_t size);

/* Run @t. Returns 0 with @r filled, or a negative errno with @e filled when
 * the trace or the options are not a valid scenario (nothing ran). */
int world_run(const struct trace *t, const struct world_opts *o, struct world_result *r,
              struct err *e) WUR;

/* The guest disk size @t needs: its topology size, else its extent rounded
 * up to 1 MiB (at least 1 MiB). */
uint64_t world_trace_size(const struct trace *t);

#endif
