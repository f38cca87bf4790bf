/*
 * mutants: what the subcommands share: the planted bugs the CLI can switch
 * on (--mutant NAME), so a user can watch each checker catch its bug, and
 * option value parsing.
 */
#include <stdio.h>
#include <string.h>

#include "../ref/node.h"
#include "../sim/disk.h"
#include "cli.h"

struct mutant {
    const char *name;
    unsigned node;
    unsigned disk;
    const char *what;
};

static const struct mutant mutants[] = {
    { "overlay-no-copyup", NODE_MUTANT_OVERLAY_NO_COPYUP, 0,
      "overlay: a partial write skips copying the rest of the cluster up" },
    { "overlay-no-serialise", NODE_MUTANT_OVERLAY_NO_SERIALISE, 0,
      "overlay: copy-up does not serialise against overlapping writes" },
    { "file-drop-fua", NODE_MUTANT_FILE_DROP_FUA, 0,
      "file driver: the FUA flag is not passed down" },
    { "file-early-ack", NODE_MUTANT_FILE_EARLY_ACK, 0,
      "file driver: acknowledges a write before the disk has it" },
    { "overlay-map-first", NODE_MUTANT_OVERLAY_MAP_FIRST, 0,
      "overlay: persists its map before the data it points to is durable" },
    { "dirty-late-mark", NODE_MUTANT_DIRTY_LATE_MARK, 0,
      "dirty bitmaps: a write marks them after its completion was reported" },
    { "dirty-reclaim-drop", NODE_MUTANT_DIRTY_RECLAIM_DROP, 0,
      "dirty bitmaps: reclaim forgets the writes its successor recorded" },
    { "qbm-no-in-use", NODE_MUTANT_QBM_NO_IN_USE, 0,
      "QBM: opening does not mark bitmaps in use (a crash leaves stale bits trusted)" },
    { "qbm-short-store", NODE_MUTANT_QBM_SHORT_STORE, 0,
      "QBM: a clean store loses each bitmap's last word (and checksums the loss)" },
    { "quorum-threshold", NODE_MUTANT_QUORUM_THRESHOLD, 0,
      "quorum: a read version wins with one vote fewer than vote-threshold" },
    { "quorum-write-any", NODE_MUTANT_QUORUM_WRITE_ANY, 0,
      "quorum: a write succeeds when any child succeeded" },
    { "quorum-no-rewrite", NODE_MUTANT_QUORUM_NO_REWRITE, 0,
      "quorum: rewrite-corrupted repairs nothing" },
    { "quorum-tie-low", NODE_MUTANT_QUORUM_TIE_LOW, 0,
      "quorum: ties between versions go to the lowest child index" },
    { "nbd-no-retry", NODE_MUTANT_NBD_NO_RETRY, 0,
      "NBD client: requests in flight when the connection breaks fail at once" },
    { "disk-fua-volatile", 0, DISK_MUTANT_FUA_VOLATILE,
      "disk: acknowledges FUA writes but keeps them in its volatile cache" },
    { "disk-flush-noop", 0, DISK_MUTANT_FLUSH_NOOP,
      "disk: flush succeeds without making anything durable" },
};

int cli_parse_num(const char *cmd, const char *opt, const char *val, uint64_t *out,
                  bool size)
{
    int ret = size ? parse_size(val, out) : parse_u64(val, out);
    if (ret < 0) {
        cli_error(cmd, "%s: expected %s, got '%s'", opt,
                  size ? "a size such as 1G" : "an unsigned integer", val);
        return CLI_USAGE;
    }
    return 0;
}

void cli_mutants_usage(FILE *out)
{
    for (size_t i = 0; i < ARRAY_LEN(mutants); i++) {
        fprintf(out, "                    %-21s %s\n", mutants[i].name, mutants[i].what);
    }
}

int cli_mutant_parse(const char *cmd, const char *name, unsigned *node, unsigned *disk)
{
    for (size_t i = 0; i < ARRAY_LEN(mutants); i++) {
        if (strcmp(name, mutants[i].name) == 0) {
            *node |= mutants[i].node;
            *disk |= mutants[i].disk;
            return 0;
        }
    }
    cli_error(cmd, "--mutant: unknown mutant '%s' (see --help)", name);
    return CLI_USAGE;
}
