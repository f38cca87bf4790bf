/*
 * mutant: see mutant.h.
 */
#include "mutant.h"

#include <string.h>

#include "../../ref/base.h"
#include "../../ref/node.h"
#include "../dev/disk.h"

const struct mutant mutant_table[] = {
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
    { "overlay-commit-fail", NODE_MUTANT_OVERLAY_COMMIT_FAIL, 0,
      "overlay: commit reports EIO though its data reached the backing" },
    { "nbd-no-retry", NODE_MUTANT_NBD_NO_RETRY, 0,
      "NBD client: requests in flight when the connection breaks fail at once" },
    { "disk-fua-volatile", 0, DISK_MUTANT_FUA_VOLATILE,
      "disk: acknowledges FUA writes but keeps them in its volatile cache" },
    { "disk-flush-noop", 0, DISK_MUTANT_FLUSH_NOOP,
      "disk: flush succeeds without making anything durable" },
};

const size_t mutant_count = ARRAY_LEN(mutant_table);

const struct mutant *mutant_find(const char *name, size_t len)
{
    for (size_t i = 0; i < mutant_count; i++) {
        if (strlen(mutant_table[i].name) == len && memcmp(name, mutant_table[i].name, len) == 0) {
            return &mutant_table[i];
        }
    }
    return NULL;
}
