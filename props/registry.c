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

static int check_world(const struct prop *p, const struct trace *t, unsigned node_mutants,
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

static int check_roundtrip(const struct prop *p, const struct trace *t, unsigned node_mutants,
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

/* gen_opts:   max_ops overlay plain crashes faults torn bitmaps shutdowns dance
 *             quorum net fault_kinds */
const struct prop registry_props[] = {
    { "read-your-writes", "a read returns the latest acknowledged write, with I/O errors "
      "injected",
      { 40, false, true, false, true, false, false, false, false, false, false, 0 }, check_world },
    { "crash", "after any crash, every sector holds a value the crash model allows "
      "(all three crash generators)",
      { 40, false, true, true, false, true, false, false, false, false, false, 0 }, check_world },
    { "flush-fua", "flushed and FUA writes survive every crash; nothing else is required "
      "to",
      { 40, false, true, true, false, false, false, false, false, false, false, 0 }, check_world },
    { "overlay", "overlay semantics: backing reads, copy-up, make-empty, commit, with "
      "crashes",
      { 40, true, false, true, false, false, false, false, false, false, false, 0 }, check_world },
    { "trace-roundtrip", "a generated trace prints to canonical text that parses back to "
      "the same records and replays green", { 30, true, true, true, true, true, true, true,
      false, false, false, 0 }, check_roundtrip },
    { "bitmap-coverage", "every acknowledged write, write-zeroes and discard is covered by "
      "every enabled dirty bitmap, with I/O errors injected",
      { 40, true, true, false, true, false, true, false, false, false, false, 0 }, check_world },
    { "bitmap-store", "a cleanly stored bitmap (QBM) loads back bit for bit after a "
      "shutdown",
      { 40, true, true, false, false, false, true, true, false, false, false, 0 }, check_world },
    { "bitmap-crash", "a bitmap in use when the host crashed loads as inconsistent, never "
      "trusted",
      { 40, true, true, true, false, true, true, true, false, false, false, 0 }, check_world },
    { "bitmap-successor", "no bits are lost across successor create, abdicate and reclaim",
      { 40, true, true, false, false, false, true, false, true, false, false, 0 }, check_world },
    { "quorum-vote", "a quorum read returns what at least vote-threshold children agree on "
      "(ties to the highest index) or fails; disagreeing and failing children are reported; "
      "rewrite-corrupted repairs the minority; with bit flips, stale and unreadable sectors "
      "on single children and crashes",
      { 40, false, false, true, true, false, false, false, false, true, false,
        1u << FAULT_READ_CORRUPT | 1u << FAULT_MISDIRECT | 1u << FAULT_LATENT |
        1u << FAULT_READ_EIO }, check_world },
    { "quorum-write", "a quorum write or flush succeeds exactly when vote-threshold children "
      "did, else fails with the most frequent error; failing children are reported",
      { 40, false, false, false, true, false, false, false, false, true, false,
        1u << FAULT_WRITE_EIO | 1u << FAULT_ENOSPC | 1u << FAULT_FLUSH_EIO }, check_world },
    { "nbd-net", "NBD children across a network that resets, clogs, stalls and partitions "
      "(healing within the reconnect delay): no child request fails, reads stay correct",
      { 40, false, false, false, false, false, false, false, false, true, true, 0 },
      check_world },
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
