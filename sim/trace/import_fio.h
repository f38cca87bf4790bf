/*
 * import_fio: fio iolog version 2 and 3 into a native trace.
 *
 * Role: let any fio user replay a recorded workload through blocksim.
 * Model: fio's read_iolog format (shared/spec/trace-formats.md section 1,
 *   as fio 3.33 replays it). v2: "fio version 2 iolog", then lines
 *   "FILE ACTION [OFFSET LENGTH]"; v3: "fio version 3 iolog", each line
 *   prefixed with a timestamp in microseconds. Actions: add, open, close
 *   (file lifecycle), read, write, trim, sync, datasync, wait (v2 only),
 *   sync_file_range (skipped, as fio's replay skips it).
 *   Timing as fio replays: v2 'wait W' holds what follows until W
 *   milliseconds after the start (an absolute time, not a pause: a smaller
 *   W than an earlier one waits no longer; the HOWTO's "microseconds,
 *   relative" is not what fio does). v3: each line runs its timestamp's
 *   distance after the previous line; the first line runs at 0, and a
 *   timestamp that goes backwards adds no delay and becomes the new base.
 * Invariants: offsets and lengths are multiples of 512 (or rounded outward
 *   with align_round); each file is added before use. Several files are laid
 *   side by side on the one guest disk, each in a region rounded up to
 *   1 MiB, in the order they were added.
 * Ownership: records appended to the caller's trace belong to it.
 * Async contract: none.
 * Depends on: trace, base.
 */
#ifndef BLOCKSIM_IMPORT_FIO_H
#define BLOCKSIM_IMPORT_FIO_H

#include <stddef.h>

#include "trace.h"

#define IMPORT_FIO_FILES_MAX 4096

struct import_fio_opts {
    bool align_round; /* widen unaligned ranges to 512-byte boundaries
                       * (offset down, end up) instead of refusing them */
    const char *volume; /* the CSV readers' (import_csv): the volume to keep */
};

struct import_fio_info {
    unsigned version; /* 2 or 3 */
    unsigned files;
    uint64_t ops;
    uint64_t end;     /* bytes: end of the last file region */
    uint64_t skipped; /* sync_file_range lines (fio's replay skips them) */
    uint64_t rounded; /* ranges widened by align_round */
};

/* Parse @len bytes of an iolog into a new trace @t (header, a comment naming
 * the source and the file layout, then the operations). @o may be NULL
 * (defaults: unaligned ranges are refused). On error fills @e with line and
 * field; @t then holds nothing. */
int import_fio(const char *data, size_t len, const struct import_fio_opts *o, struct trace *t,
               struct import_fio_info *info, struct err *e) WUR;

#endif
