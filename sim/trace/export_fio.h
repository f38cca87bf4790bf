/*
 * export_fio: a native trace as a fio version 3 iolog that real fio
 *   replays (`fio --read_iolog`).
 *
 * Role: take a workload found or shrunk here to any machine with fio.
 * Model: shared/spec/trace-formats.md section 1 (fio 3.33): "fio version 3
 *   iolog", then `TIMESTAMP FILE ACTION [OFFSET LENGTH]` lines, timestamps
 *   in microseconds; the file is added and opened first, closed last.
 * Invariants: reads and writes keep offset and length; a flush becomes
 *   `sync`; a discard `trim` (fio 3.33's replay drops trims, 3.34 replays
 *   them); a write-zeroes a `write` (fio writes its own data); FUA and
 *   byte patterns have no fio form and are dropped; `@TIME` gives the
 *   timestamp (else the previous one). Records fio cannot perform (crash,
 *   restart, jobs, bitmaps, other topologies or guests) are refused.
 * Ownership: none kept.
 * Async contract: none.
 * Depends on: trace.
 */
#ifndef BLOCKSIM_EXPORT_FIO_H
#define BLOCKSIM_EXPORT_FIO_H

#include <stdio.h>

#include "trace.h"

/* 0 when every record of @t has a fio form, else an error naming the line. */
int export_fio_check(const struct trace *t, struct err *e) WUR;

/* Write @t (checked) to @out as an iolog on file @file; 0 or -1 (ferror). */
int export_fio(const struct trace *t, const char *file, FILE *out);

#endif
