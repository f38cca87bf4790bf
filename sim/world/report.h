/*
 * report: a run's result for people (text) and for programs (JSON).
 *
 * Role: the one place that turns a struct world_result into output, so the
 *   CLI, property runs and tests print the same thing.
 * Model: none in QEMU; ../shared/DESIGN.md "Command line".
 * Invariants: the JSON's keys and their order are fixed (jansson keeps
 *   insertion order); wall-clock figures appear only under "wall", so two
 *   runs of one seed differ at most there (and not at all without them).
 * Ownership: report_json returns a new reference the caller json_decref()s.
 * Async contract: none.
 * Depends on: world, jansson.
 */
#ifndef BLOCKSIM_REPORT_H
#define BLOCKSIM_REPORT_H

#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>

#include "world.h"

struct report_info {
    const char *trace;  /* the trace's path */
    const char *format; /* "native" or "fio" */
    const char *repro;  /* a command that reproduces the run, or NULL */
    bool has_wall;      /* wall-clock figures known */
    double wall_seconds;
    const char *bytes_check; /* replay --bytes-check: "" the same run with every
                              * byte carried, else what differed; NULL: not run */
};

json_t *report_json(const struct world_result *r, const struct report_info *info);
void report_text(const struct world_result *r, const struct report_info *info, FILE *out);

/* Exit status of a replay: 0 pass, 1 a property or expectation failed. */
int report_exit_status(const struct world_result *r);

#endif
