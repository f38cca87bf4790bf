/*
 * import_csv: the public CSV block traces into a native trace: MSR
 *   Cambridge, Alibaba 2020, Tencent CBS 2018.
 *
 * Role: let users replay the recorded cloud and enterprise workloads they
 *   have (and run them against real servers with `blocksim oracle`).
 * Model: shared/spec/trace-formats.md sections 3-5, each format as its own
 *   documentation states it:
 *     MSR      Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime
 *              (Windows filetime in 100 ns ticks; Type Read|Write; bytes);
 *              a volume is HOST,DISK
 *     Alibaba  device_id,opcode,offset,length,timestamp
 *              (opcode R|W; bytes; microseconds); a volume is device_id
 *     Tencent  Timestamp,Offset,Size,IOType,VolumeID
 *              (seconds; 512-byte sectors; IOType 0 read, 1 write); a
 *              volume is VolumeID
 *   Timestamps become @TIME records relative to the first line kept (a
 *   timestamp that goes backwards adds no delay). None of these formats
 *   has flushes, FUA or discards.
 * Invariants: strict: every line has exactly the format's fields, each of
 *   its type, else an error naming line and field; one volume a trace (the
 *   one --volume names, else the only one: a second one is an error that
 *   names both); ranges are 512-aligned or rounded outward (align_round).
 * Ownership: records appended to the caller's trace belong to it.
 * Async contract: none.
 * Depends on: trace, base.
 */
#ifndef BLOCKSIM_IMPORT_CSV_H
#define BLOCKSIM_IMPORT_CSV_H

#include <stddef.h>

#include "trace.h"

enum import_csv_format { CSV_MSR, CSV_ALIBABA, CSV_TENCENT, CSV__COUNT };

struct import_csv_opts {
    bool align_round;     /* widen unaligned ranges instead of refusing them */
    const char *volume;   /* the volume to keep (MSR: HOST,DISK), or NULL: the only one */
};

struct import_csv_info {
    uint64_t lines;       /* records read */
    uint64_t kept;        /* of the volume kept */
    uint64_t rounded;     /* ranges widened by align_round */
};

const char *import_csv_format_name(enum import_csv_format f);
/* "msr", "alibaba" or "tencent" into @out; false when it is none. */
bool import_csv_format_parse(const char *name, enum import_csv_format *out);

/* Does the first line of @data look like format @out (the spec's
 * detection tests)? */
bool import_csv_detect(const char *data, size_t len, enum import_csv_format *out);

/* Parse @len bytes into a new trace @t; on error fills @e (line, field)
 * and @t holds nothing. @o and @info may be NULL. */
int import_csv(enum import_csv_format f, const char *data, size_t len,
               const struct import_csv_opts *o, struct trace *t,
               struct import_csv_info *info, struct err *e) WUR;

#endif
