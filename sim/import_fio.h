/*
 * import_fio: fio iolog version 2 and 3 into a native trace.
 *
 * Role: let any fio user replay a recorded workload through blocksim.
 * Model: fio's read_iolog format. v2: "fio version 2 iolog", then lines
 *   "FILE ACTION [OFFSET LENGTH]"; v3: "fio version 3 iolog", each line
 *   prefixed with a timestamp in microseconds since the job started.
 *   Actions: add, open, close (file lifecycle), read, write, trim, sync,
 *   datasync, wait (v2: pause for OFFSET microseconds).
 * Invariants: offsets and lengths are multiples of 512; each file is added
 *   before use. Several files are laid side by side on the one guest disk,
 *   each in a region rounded up to 1 MiB, in the order they were added.
 * Ownership: records appended to the caller's trace belong to it.
 * Async contract: none.
 * Depends on: trace, base.
 */
#ifndef BLOCKSIM_IMPORT_FIO_H
#define BLOCKSIM_IMPORT_FIO_H

#include <stddef.h>

#include "trace.h"

struct import_fio_info {
    unsigned version; /* 2 or 3 */
    unsigned files;
    uint64_t ops;
    uint64_t end;     /* bytes: end of the last file region */
};

/* Parse @len bytes of an iolog into a new trace @t (header, a comment naming
 * the source and the file layout, then the operations). On error fills @e
 * with line and field; @t then holds nothing. */
int import_fio(const char *data, size_t len, struct trace *t, struct import_fio_info *info,
               struct err *e) WUR;

#endif
