/*
 * trace_colo: the COLO records of trace.h's grammar (the colo topology's
 *   options, `replication`, `colo`, guest=): parse, print.
 *
 * Method: one word picks the operation; the few options are words or
 *   KEY=VALUE, each at most once; the canonical form prints them in one
 *   fixed order.
 */
#include <stdio.h>
#include <string.h>

#include "trace_int.h"

static const char *const repl_names[TRACE_REPL__COUNT] = { "start", "checkpoint", "get-error",
                                                           "stop" };
static const char *const colo_names[TRACE_COLO__COUNT] = { "checkpoint", "failover",
                                                           "primary-alone" };
static const char *const variant_names[TRACE_VARIANT__COUNT] = { "modern", "v12", "v4" };

const char *trace_repl_op_name(enum trace_repl_op op)
{
    ASSERT(op < TRACE_REPL__COUNT);
    return repl_names[op];
}

const char *trace_colo_op_name(enum trace_colo_op op)
{
    ASSERT(op < TRACE_COLO__COUNT);
    return colo_names[op];
}

const char *trace_variant_name(enum trace_repl_variant v)
{
    ASSERT(v < TRACE_VARIANT__COUNT);
    return variant_names[v];
}

static int op_word(const struct fields *f, const char *const *names, unsigned n, int *out,
                   struct err *e)
{
    *out = trace__word_index(f->w[1], names, n);
    if (*out < 0) {
        char list[96];
        trace__names_list(names, n, list, sizeof(list));
        return err_set(e, 0, f->first + 1, "unknown %s operation '%s' (expected %s)", f->w[0],
                       f->w[1], list);
    }
    return 0;
}

int trace__parse_replication(struct trace_rec *r, const struct fields *f, struct err *e)
{
    TRY(trace__want_fields(f, 2, 4, e));
    int op;
    TRY(op_word(f, repl_names, TRACE_REPL__COUNT, &op, e));
    r->sub = (uint8_t)op;
    for (unsigned i = 2; i < f->n; i++) {
        if (strcmp(f->w[i], "failover") == 0 && op == TRACE_REPL_STOP && !r->failover) {
            r->failover = true;
        } else if (strncmp(f->w[i], "host=", 5) == 0 && !r->host[0]) {
            TRY(trace__host_option(r, f, i, e));
        } else {
            return err_set(e, 0, f->first + i, "expected %shost=NAME, got '%s'",
                           op == TRACE_REPL_STOP ? "'failover' or " : "", f->w[i]);
        }
    }
    return 0;
}

void trace__print_replication(const struct trace_rec *r, char *buf, size_t size)
{
    snprintf(buf, size, "replication %s", repl_names[r->sub]);
    trace__cat(buf, size, r->failover ? " failover" : "");
    if (r->host[0]) {
        trace__cat(buf, size, " host=");
        trace__cat(buf, size, r->host);
    }
}

int trace__parse_colo(struct trace_rec *r, const struct fields *f, struct err *e)
{
    TRY(trace__want_fields(f, 2, 2, e));
    int op;
    TRY(op_word(f, colo_names, TRACE_COLO__COUNT, &op, e));
    r->sub = (uint8_t)op;
    return 0;
}

void trace__print_colo(const struct trace_rec *r, char *buf, size_t size)
{
    snprintf(buf, size, "colo %s", colo_names[r->sub]);
}

int trace__topology_colo_opt(struct trace_cfg *c, const struct fields *f, unsigned i,
                             struct err *e)
{
    const char *w = f->w[i];
    if (strncmp(w, "backup-cluster=", 15) == 0) {
        TRY(trace__field_size(f, i, w + 15, &c->backup_cluster, "backup-cluster", e));
        if (!is_pow2(c->backup_cluster) || c->backup_cluster < 512 ||
            c->backup_cluster > (2u << 20)) {
            return err_set(e, 0, f->first + i, "backup-cluster must be a power of two in "
                           "512..2M");
        }
        return 0;
    }
    if (strncmp(w, "variant=", 8) == 0) {
        int v = trace__word_index(w + 8, variant_names, TRACE_VARIANT__COUNT);
        if (v < 0) {
            return err_set(e, 0, f->first + i, "variant: expected modern, v12 or v4, got '%s'",
                           w + 8);
        }
        c->variant = (enum trace_repl_variant)v;
        return 0;
    }
    return err_set(e, 0, f->first + i, "unknown topology option '%s'", w);
}

void trace__print_topology_colo(const struct trace_cfg *c, char *buf, size_t size)
{
    if (c->backup_cluster) {
        trace__cat_kv(buf, size, "backup-cluster", c->backup_cluster, trace__fmt_size);
    }
    if (c->variant != TRACE_VARIANT_MODERN) {
        trace__cat(buf, size, " variant=");
        trace__cat(buf, size, variant_names[c->variant]);
    }
}

int trace__guest_option(struct trace_rec *r, const struct fields *f, unsigned i,
                        struct err *e)
{
    const char *w = f->w[i];
    if (strncmp(w, "guest=", 6) != 0) {
        return 0;
    }
    static const char *const guests[] = { "primary", "secondary" };
    int g = trace__word_index(w + 6, guests, 2);
    if (g < 0) {
        return err_set(e, 0, f->first + i, "guest: expected primary or secondary, got '%s'",
                       w + 6);
    }
    r->guest = (uint8_t)g;
    return 1;
}
