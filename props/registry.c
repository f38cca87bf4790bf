/*
 * registry: see registry.h. Method: most properties replay the scenario in
 * a world and take its checkers' verdict; they differ in what the generator
 * may produce. trace-roundtrip checks the format instead.
 */
#include "registry.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sim/world/world.h"

static int check_world(const struct prop *p, const struct trace *t, uint64_t node_mutants,
                       unsigned disk_mutants, char *msg, size_t size)
{
    (void)p;
    struct world_opts o = { .node_mutants = node_mutants, .disk_mutants = disk_mutants };
    struct world_result r;
    struct err e = { .file = "generated" };
    if (world_run(t, &o, &r, &e) < 0) {
        /* The generator must only make valid scenarios: a bug of ours. */
        snprintf(msg, size, "scenario rejected: line %u: %s", e.line, e.msg);
        return 2;
    }
    if (r.verdict == WORLD_PASS) {
        return 0;
    }
    snprintf(msg, size, "%s: %s", r.first.property, r.first.msg);
    return 1;
}

/* The scenario with described I/O and with every byte carried: one run. */
static int check_described(const struct prop *p, const struct trace *t, uint64_t node_mutants,
                           unsigned disk_mutants, char *msg, size_t size)
{
    (void)p;
    struct world_result r[2];
    for (unsigned k = 0; k < 2; k++) {
        struct world_opts o = { .node_mutants = node_mutants, .disk_mutants = disk_mutants,
                                .bytes = k == 1 };
        struct err e = { .file = "generated" };
        if (world_run(t, &o, &r[k], &e) < 0) {
            snprintf(msg, size, "scenario rejected: line %u: %s", e.line, e.msg);
            return 2;
        }
    }
    return world_described_differs(&r[0], &r[1], msg, size) ? 1 : 0;
}

static int check_roundtrip(const struct prop *p, const struct trace *t, uint64_t node_mutants,
                           unsigned disk_mutants, char *msg, size_t size)
{
    size_t len;
    char *text = trace_print_string(t, true, &len);
    struct trace back;
    struct err e = { .file = "canonical" };
    int fail = 0;
    if (trace_parse(&back, text, len, &e) < 0) {
        snprintf(msg, size, "canonical text does not parse: line %u: %s", e.line, e.msg);
        fail = 1;
    } else {
        for (size_t i = 0; i < t->n && !fail; i++) {
            if (i >= back.n || !trace_rec_equal(&t->recs[i], &back.recs[i])) {
                snprintf(msg, size, "record %zu differs after print and parse", i);
                fail = 1;
            }
        }
        fail = fail || check_world(p, &back, node_mutants, disk_mutants, msg, size);
        trace_fini(&back);
    }
    free(text);
    return fail;
}

/* Each property names the planted bugs that prove it can fail (the engine's
 * tests run every one: a property without one cannot be added) and keeps
 * its fuzz id for ever (fuzz_scenario's first byte: new properties take new
 * ids, so old corpus inputs keep their meaning). */
const struct prop registry_props[] = {
    { .name = "read-your-writes", .fuzz_id = 0,
      .summary = "a read returns the latest acknowledged write, with I/O errors injected",
      .gen = { .max_ops = 40, .plain = true, .faults = true },
      .check = check_world, .proofs = { "file-early-ack" } },
    { .name = "crash", .fuzz_id = 1,
      .summary = "after any crash, every sector holds a value the crash model allows "
                 "(all three crash generators)",
      .gen = { .max_ops = 40, .plain = true, .crashes = true, .torn = true },
      .check = check_world, .proofs = { "disk-flush-noop" } },
    { .name = "flush-fua", .fuzz_id = 2,
      .summary = "flushed and FUA writes survive every crash; nothing else is required to",
      .gen = { .max_ops = 40, .plain = true, .crashes = true },
      .check = check_world, .proofs = { "disk-fua-volatile", "file-drop-fua" } },
    { .name = "overlay", .fuzz_id = 3,
      .summary = "overlay semantics: backing reads, copy-up, make-empty, commit, with "
                 "crashes",
      .gen = { .max_ops = 40, .overlay = true, .crashes = true },
      .check = check_world, .proofs = { "overlay-no-copyup", "overlay-no-serialise" } },
    { .name = "trace-roundtrip", .fuzz_id = 4,
      .summary = "a generated trace prints to canonical text that parses back to the same "
                 "records and replays green",
      .gen = { .max_ops = 30, .overlay = true, .plain = true, .crashes = true, .faults = true,
               .torn = true, .bitmaps = true, .shutdowns = true },
      .check = check_roundtrip, .proofs = { "disk-fua-volatile" } },
    { .name = "bitmap-coverage", .fuzz_id = 5,
      .summary = "every acknowledged write, write-zeroes and discard is covered by every "
                 "enabled dirty bitmap, with I/O errors injected",
      .gen = { .max_ops = 40, .overlay = true, .plain = true, .faults = true,
               .bitmaps = true },
      .check = check_world, .proofs = { "dirty-late-mark" } },
    { .name = "bitmap-store", .fuzz_id = 6,
      .summary = "a cleanly stored bitmap (QBM) loads back bit for bit after a shutdown",
      .gen = { .max_ops = 40, .overlay = true, .plain = true, .bitmaps = true,
               .shutdowns = true },
      .check = check_world, .proofs = { "qbm-short-store" } },
    { .name = "bitmap-crash", .fuzz_id = 7,
      .summary = "a bitmap in use when the host crashed loads as inconsistent, never trusted",
      .gen = { .max_ops = 40, .overlay = true, .plain = true, .crashes = true, .torn = true,
               .bitmaps = true, .shutdowns = true },
      .check = check_world, .proofs = { "qbm-no-in-use" } },
    { .name = "bitmap-successor", .fuzz_id = 8,
      .summary = "no bits are lost across successor create, abdicate and reclaim",
      .gen = { .max_ops = 40, .overlay = true, .plain = true, .bitmaps = true,
               .dance = true },
      .check = check_world, .proofs = { "dirty-reclaim-drop" } },
    { .name = "quorum-vote", .fuzz_id = 9,
      .summary = "a quorum read returns what at least vote-threshold children agree on "
                 "(ties to the highest index) or fails; disagreeing and failing children are "
                 "reported; rewrite-corrupted repairs the minority; with bit flips, stale and "
                 "unreadable sectors on single children and crashes",
      .gen = { .max_ops = 40, .crashes = true, .faults = true, .quorum = true,
               .fault_kinds = 1u << FAULT_READ_CORRUPT | 1u << FAULT_MISDIRECT |
                              1u << FAULT_LATENT | 1u << FAULT_READ_EIO },
      .check = check_world,
      .proofs = { "quorum-threshold", "quorum-no-rewrite", "quorum-tie-low" } },
    { .name = "quorum-write", .fuzz_id = 10,
      .summary = "a quorum write or flush succeeds exactly when vote-threshold children did, "
                 "else fails with the most frequent error; failing children are reported",
      .gen = { .max_ops = 40, .faults = true, .quorum = true,
               .fault_kinds = 1u << FAULT_WRITE_EIO | 1u << FAULT_ENOSPC |
                              1u << FAULT_FLUSH_EIO },
      .check = check_world, .proofs = { "quorum-write-any" } },
    { .name = "nbd-net", .fuzz_id = 11,
      .summary = "NBD children across a network that resets, clogs, stalls and partitions "
                 "(healing within the reconnect delay): no child request fails, reads stay "
                 "correct",
      .gen = { .max_ops = 40, .quorum = true, .net = true },
      .check = check_world, .proofs = { "nbd-no-retry" } },
    { .name = "bitmap-load", .fuzz_id = 12,
      .summary = "a bitmap file read back flipped is refused by its checksum, never loaded "
                 "as consistent",
      .gen = { .max_ops = 40, .overlay = true, .plain = true, .bitmaps = true,
               .shutdowns = true, .faults = true, .qbm_faults = true,
               .fault_kinds = 1u << FAULT_READ_CORRUPT | 1u << FAULT_READ_EIO },
      .check = check_world, .proofs = { "qbm-skip-checksum" } },
    { .name = "crash-in-flush", .fuzz_id = 13,
      .summary = "a crash inside the stack's own flush (between its data and metadata "
                 "flushes, writes in flight) leaves every sector a value the crash model "
                 "allows",
      .gen = { .max_ops = 40, .overlay = true, .crashes = true, .flush_crashes = true },
      .check = check_world, .proofs = { "overlay-snapshot-late" } },
    { .name = "backup-point-in-time", .fuzz_id = 14,
      .summary = "a backup's target holds the source as it was when the job started (sync "
                 "full and top), or the old data of every sector the guest overwrote while "
                 "it ran (sync none), with guest writes, verbs and crashes",
      .gen = { .max_ops = 40, .overlay = true, .plain = true, .crashes = true,
               .jobs = GEN_JOB_BACKUP },
      .check = check_world, .proofs = { "backup-cbw-late" } },
    { .name = "mirror-converge", .fuzz_id = 15,
      .summary = "a mirror that completes leaves its target equal to its source, and the "
                 "guest, moved onto the target, reads what it wrote (background and "
                 "write-blocking, with guest writes, verbs and crashes)",
      .gen = { .max_ops = 40, .overlay = true, .plain = true, .crashes = true,
               .jobs = GEN_JOB_MIRROR },
      .check = check_world, .proofs = { "mirror-lost-dirty", "mirror-early-complete" } },
    { .name = "mirror-cancel", .fuzz_id = 16,
      .summary = "a mirror cancelled in READY without force reports COMPLETED with its target "
                 "equal to the source and no pivot; a forced cancel reports CANCELLED",
      .gen = { .max_ops = 40, .overlay = true, .plain = true, .crashes = true,
               .jobs = GEN_JOB_MIRROR, .jobs_cancel = true },
      .check = check_world, .proofs = { "mirror-cancel-forced" } },
    { .name = "commit", .fuzz_id = 17,
      .summary = "an active commit leaves the base equal to the overlay's view and moves the "
                 "guest onto it",
      .gen = { .max_ops = 40, .overlay = true, .crashes = true, .jobs = GEN_JOB_COMMIT },
      .check = check_world, .proofs = { "mirror-lost-dirty" } },
    { .name = "job-states", .fuzz_id = 18,
      .summary = "every job event follows QEMU's state machine: legal transitions, READY "
                 "once, one terminal event, soft or forced cancels as QEMU decides; backups, "
                 "mirrors and commits under random verbs and crashes",
      .gen = { .max_ops = 40, .overlay = true, .plain = true, .crashes = true,
               .jobs = GEN_JOB_BACKUP | GEN_JOB_MIRROR | GEN_JOB_COMMIT },
      .check = check_world, .proofs = { "job-ready-resent" } },
    { .name = "backup-incremental", .fuzz_id = 19,
      .summary = "an incremental backup copies exactly its bitmap's clusters as they were at "
                 "the start; on success the bitmap holds the writes made since, on failure, "
                 "cancel or bitmap-mode=never it keeps them all (successor reclaimed), and "
                 "under always it holds those writes and what the job did not copy",
      .gen = { .max_ops = 40, .overlay = true, .plain = true, .crashes = true,
               .bitmaps = true, .jobs = GEN_JOB_BACKUP, .jobs_bitmap = true },
      .check = check_world,
      .proofs = { "backup-abdicate-always", "dirty-reclaim-drop", "backup-always-no-merge" } },
    { .name = "colo-view", .fuzz_id = 20,
      .summary = "COLO: the secondary guest reads the last checkpoint plus its own writes, "
                 "never the primary's writes since (I1); the hidden disk holds the "
                 "checkpoint's pre-images (I3)",
      .gen = { .max_ops = 40, .colo = GEN_COLO },
      .check = check_world, .proofs = { "repl-checkpoint-no-reset", "backup-cbw-late" } },
    { .name = "colo-checkpoint", .fuzz_id = 21,
      .summary = "COLO: after a checkpoint the active and hidden disks are empty and the "
                 "secondary disk equals the primary disk (I2, I5), with disk faults on "
                 "either side",
      .gen = { .max_ops = 40, .colo = GEN_COLO | GEN_COLO_DISK },
      .check = check_world, .proofs = { "repl-checkpoint-active-only" } },
    { .name = "colo-failover", .fuzz_id = 22,
      .summary = "COLO: after a failover the secondary disk holds the secondary guest's "
                 "view (I4), and its guest goes on reading its writes, across crashes of "
                 "its host (what the failover committed is durable)",
      .gen = { .max_ops = 40, .colo = GEN_COLO | GEN_COLO_FAILOVER | GEN_COLO_LOSS },
      .check = check_world,
      .proofs = { "repl-failover-active-only", "mirror-no-target-flush" } },
    { .name = "colo-network", .fuzz_id = 23,
      .summary = "COLO: with the link lost for a while or for good, every primary write "
                 "reaches the secondary or get-error reports it before a checkpoint (I5)",
      .gen = { .max_ops = 40, .colo = GEN_COLO | GEN_COLO_NET | GEN_COLO_FAILOVER },
      .check = check_world, .proofs = { "repl-primary-returns-error" } },
    { .name = "colo-liveness", .fuzz_id = 24,
      .summary = "COLO: when every network fault heals within the NBD reconnect delay, no "
                 "forward fails and every checkpoint succeeds",
      .gen = { .max_ops = 40, .colo = GEN_COLO | GEN_COLO_NET_TRANSIENT },
      .check = check_world, .proofs = { "nbd-no-retry" } },
    { .name = "colo-secondary-loss", .fuzz_id = 25,
      .summary = "COLO: when the secondary is lost (crash, restart, primary-alone) the "
                 "primary guest goes on unharmed and get-error reports the writes it could "
                 "not forward",
      .gen = { .max_ops = 40, .colo = GEN_COLO | GEN_COLO_LOSS },
      .check = check_world, .proofs = { "repl-primary-returns-error" } },
    { .name = "described-io", .fuzz_id = 26,
      .summary = "the harness's shortcut: a run whose disks keep the guest's writes as "
                 "content tags (described I/O) has the verdict, digest, contents and first "
                 "violation of the same run with every byte carried (--bytes), with faults, "
                 "crashes and jobs",
      .gen = { .max_ops = 40, .plain = true, .faults = true, .crashes = true,
               .jobs = GEN_JOB_BACKUP | GEN_JOB_MIRROR },
      .check = check_described, .replay_flags = " --bytes-check",
      .proofs = { "disk-desc-misplace" } },
    { .name = "described-quorum", .fuzz_id = 27,
      .summary = "the same for a quorum voting on described reads, with bit flips, stale, "
                 "unreadable and failing children",
      .gen = { .max_ops = 40, .faults = true, .quorum = true,
               .fault_kinds = 1u << FAULT_READ_CORRUPT | 1u << FAULT_MISDIRECT |
                              1u << FAULT_LATENT | 1u << FAULT_READ_EIO |
                              1u << FAULT_WRITE_EIO },
      .check = check_described, .replay_flags = " --bytes-check",
      .proofs = { "disk-desc-misplace" } },
};

const size_t registry_count = sizeof(registry_props) / sizeof(registry_props[0]);

const struct prop *registry_find(const char *name)
{
    for (size_t i = 0; i < registry_count; i++) {
        if (strcmp(registry_props[i].name, name) == 0) {
            return &registry_props[i];
        }
    }
    return NULL;
}

const struct prop *registry_by_fuzz_id(unsigned id)
{
    for (size_t i = 0; i < registry_count; i++) {
        if (registry_props[i].fuzz_id == id) {
            return &registry_props[i];
        }
    }
    return NULL;
}
