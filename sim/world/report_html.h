/*
 * report_html: one self-contained HTML page that explains a run.
 *
 * Role: `blocksim replay TRACE --html FILE` and the campaign database's
 *   failure pages: a timeline per host (guest operations, flushes,
 *   crashes, restarts, checkpoints and other operator records, job events,
 *   faults as they fired), the first violation with the expected and the
 *   actual writer linked to their trace lines, a map of the disk showing
 *   what was written and where the wrong value was read, and the trace.
 * Model: none of QEMU's; inline SVG and CSS, no scripts, nothing fetched.
 * Invariants: every string from the run is HTML-escaped.
 * Ownership: a log owns its copies of the events.
 * Async contract: none.
 * Depends on: world (events, result), trace, check_rw (tag names).
 */
#ifndef BLOCKSIM_REPORT_HTML_H
#define BLOCKSIM_REPORT_HTML_H

#include <stdio.h>

#include "world.h"

struct html_event {
    struct world_event ev;
    char text[96];
};

struct html_log {
    struct html_event *ev;
    size_t n, cap;
    size_t dropped;       /* past HTML_EVENTS_MAX */
};

#define HTML_EVENTS_MAX 20000

void html_log_init(struct html_log *l);
void html_log_fini(struct html_log *l);
/* A world_opts.on_event for @opaque = the log. */
void html_log_event(void *opaque, const struct world_event *ev);

/* The page for the run of @t (named @title) that ended in @r. */
int report_html_write(FILE *f, const char *title, const struct trace *t,
                      const struct world_result *r, const struct html_log *l);

#endif
