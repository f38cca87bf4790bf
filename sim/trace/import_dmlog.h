/*
 * import_dmlog: a dm-log-writes log into a native trace.
 *
 * Role: replay and explore what the kernel's log-writes target (or QEMU's
 *   blklogwrites driver) recorded: the writes in the order they reached
 *   stable media, with their flushes, FUA writes, discards and marks.
 * Model: shared/spec/trace-formats.md section 6: little-endian; a super
 *   block (magic, version 1, nr_entries, sectorsize S) in the first S
 *   bytes, then per entry an S-byte header (sector and nr_sectors in units
 *   of S, flags FLUSH 1, FUA 2, DISCARD 4, MARK 8, METADATA 16, data_len,
 *   mark text) and nr_sectors * S data bytes (none for a discard).
 *   Records: FLUSH a flush before the entry's own operation (alone when it
 *   has none); a write (FUA: `fua`), whose bytes, when all equal, become
 *   `pattern=0xNN` (else the simulator's own contents stand for them: the
 *   checker identifies writes, not bytes); DISCARD a discard; MARK a `mark`
 *   record, each a crash point for explore (as replay-log --end-mark);
 *   METADATA ignored. Reading stops after nr_entries entries, as
 *   replay-log does; there are no timestamps and no device ids.
 * Invariants: strict: a wrong magic or version, a sector size that is not
 *   a power of two in [64, 64K], unknown flag bits, data_len on a non-mark
 *   entry, a mark with a range or a text longer than S-33 bytes, nonzero
 *   header bytes after the text, a log shorter than nr_entries promise:
 *   each an error naming the entry and its byte offset. A range that is
 *   not 512-aligned (S below 512) is refused, or widened with align_round.
 *   Mark texts keep [A-Za-z0-9._:/+=-]; other bytes become '_'.
 * Ownership: records appended to the caller's trace belong to it.
 * Async contract: none.
 * Depends on: trace, base.
 */
#ifndef BLOCKSIM_IMPORT_DMLOG_H
#define BLOCKSIM_IMPORT_DMLOG_H

#include <stddef.h>

#include "trace.h"

#define DMLOG_MAGIC 0x6a736677736872ull
#define DMLOG_FLUSH 1u
#define DMLOG_FUA 2u
#define DMLOG_DISCARD 4u
#define DMLOG_MARK 8u
#define DMLOG_METADATA 16u

struct import_dmlog_info {
    uint64_t entries;    /* nr_entries read */
    uint64_t sectorsize;
    uint64_t ignored;    /* valid-looking bytes after entry nr_entries - 1 */
    uint64_t rounded;    /* ranges widened by align_round */
};

/* Does @data start with a dm-log-writes super block's magic? */
bool import_dmlog_detect(const char *data, size_t len);

/* Parse @len bytes into a new trace @t; on error fills @e and @t holds
 * nothing. @info may be NULL. */
int import_dmlog(const char *data, size_t len, bool align_round, struct trace *t,
                 struct import_dmlog_info *info, struct err *e) WUR;

#endif
