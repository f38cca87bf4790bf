/*
 * export_fio: see export_fio.h.
 */
#include "export_fio.h"

#include <inttypes.h>

int export_fio_check(const struct trace *t, struct err *e)
{
    for (size_t i = 0; i < t->n; i++) {
        const struct trace_rec *r = &t->recs[i];
        switch (r->kind) {
        case TRACE_HEADER: case TRACE_BLANK: case TRACE_SEED: case TRACE_QD:
        case TRACE_EXPECT: case TRACE_DISK: case TRACE_MUTANT: case TRACE_MARK:
            continue;
        case TRACE_TOPOLOGY:
            if (r->cfg->topology == TRACE_TOPO_PLAIN) {
                continue;
            }
            break;
        case TRACE_READ: case TRACE_WRITE: case TRACE_FLUSH: case TRACE_DISCARD:
        case TRACE_ZERO:
            if (!r->guest && !r->export[0]) {
                continue;
            }
            break;
        default:
            break;
        }
        return err_set(e, r->line, 1, "'%s' has no fio iolog form (fio replays one guest's "
                       "reads, writes, syncs and trims)", trace_kind_name(r->kind));
    }
    return 0;
}

int export_fio(const struct trace *t, const char *file, FILE *out)
{
    uint64_t us = 0;
    fprintf(out, "fio version 3 iolog\n%" PRIu64 " %s add\n%" PRIu64 " %s open\n", us, file,
            us, file);
    for (size_t i = 0; i < t->n; i++) {
        const struct trace_rec *r = &t->recs[i];
        if (!trace_kind_is_op(r->kind)) {
            continue;
        }
        us = r->has_at && r->at_ns / 1000 > us ? r->at_ns / 1000 : us;
        switch (r->kind) {
        case TRACE_FLUSH:
            fprintf(out, "%" PRIu64 " %s sync 0 0\n", us, file);
            break;
        case TRACE_READ:
        case TRACE_WRITE:
        case TRACE_ZERO:
        case TRACE_DISCARD:
            fprintf(out, "%" PRIu64 " %s %s %" PRIu64 " %" PRIu64 "\n", us, file,
                    r->kind == TRACE_READ ? "read" : r->kind == TRACE_DISCARD ? "trim" : "write",
                    r->offset, r->len);
            break;
        default:
            break;
        }
    }
    fprintf(out, "%" PRIu64 " %s close\n", us, file);
    return ferror(out) ? -1 : 0;
}
