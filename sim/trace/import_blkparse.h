/*
 * import_blkparse: blkparse's default text output into a native trace.
 *
 * Role: replay what blktrace recorded on a real device.
 * Model: shared/spec/trace-formats.md section 2 (blktrace 1.2.0): event
 *   lines `MAJ,MIN CPU SEQ S.NNNNNNNNN PID ACTION RWBS TAIL`, split on
 *   blanks. The Q events (what software queued, before merging) become the
 *   operations: RWBS `R` read, `W` write (a following `F`: FUA), `D`
 *   discard, a leading `F` a flush before it (`FN`: a flush alone); the
 *   tail `SECTOR + NSEC` gives the range in 512-byte sectors. Other actions
 *   (G S M F I D C R B P U UT X A m) are checked and skipped. The trailer
 *   (from the first `CPUn` line) ends the events. Times become @TIME
 *   records relative to the first event kept.
 * Invariants: strict: an unknown action, a malformed time, sector or count
 *   is an error naming line and field; one device a trace (--volume MAJ,MIN
 *   picks one, else a second device is an error naming both).
 * Ownership: records appended to the caller's trace belong to it.
 * Async contract: none.
 * Depends on: trace, base.
 */
#ifndef BLOCKSIM_IMPORT_BLKPARSE_H
#define BLOCKSIM_IMPORT_BLKPARSE_H

#include <stddef.h>

#include "trace.h"

/* Does the first line of @data look like a blkparse event line? */
bool import_blkparse_detect(const char *data, size_t len);

/* Parse @len bytes into a new trace @t, keeping device @volume (NULL: the
 * only one); on error fills @e (line, field) and @t holds nothing. */
int import_blkparse(const char *data, size_t len, const char *volume, struct trace *t,
                    struct err *e) WUR;

#endif
