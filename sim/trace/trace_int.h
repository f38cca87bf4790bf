/*
 * trace_int: what the trace module's files share (not a public interface).
 *
 * Role: the field splitter's result and the parsing and printing helpers
 *   that trace.c and trace_job.c both use (STYLE.md rule 1: trace__*).
 * Depends on: trace.
 */
#ifndef BLOCKSIM_TRACE_INT_H
#define BLOCKSIM_TRACE_INT_H

#include "trace.h"

#define TRACE_FIELDS_MAX 16

struct fields {
    char *w[TRACE_FIELDS_MAX];
    unsigned n;
    unsigned first; /* field number of w[0] (2 when @TIME came first) */
};

int trace__want_fields(const struct fields *f, unsigned min, unsigned max, struct err *e);
int trace__field_size(const struct fields *f, unsigned i, const char *val, uint64_t *out,
                      const char *what, struct err *e);
void trace__cat(char *buf, size_t size, const char *text);
void trace__cat_kv(char *buf, size_t size, const char *key, uint64_t v,
                   void (*fmt)(char *, size_t, uint64_t));
void trace__fmt_size(char *buf, size_t size, uint64_t bytes);
/* @w among @n @names: its index, or -1. */
int trace__word_index(const char *w, const char *const *names, unsigned n);
/* "a, b or c" of @n @names into @buf. */
void trace__names_list(const char *const *names, unsigned n, char *buf, size_t size);

/* trace_job.c */
int trace__parse_job(struct trace_rec *r, const struct fields *f, struct err *e);
void trace__print_job(const struct trace_rec *r, char *buf, size_t size);
bool trace__job_equal(const struct trace_job *a, const struct trace_job *b);

/* trace_colo.c */
int trace__parse_replication(struct trace_rec *r, const struct fields *f, struct err *e);
void trace__print_replication(const struct trace_rec *r, char *buf, size_t size);
int trace__parse_colo(struct trace_rec *r, const struct fields *f, struct err *e);
void trace__print_colo(const struct trace_rec *r, char *buf, size_t size);
/* A colo topology option (size= and cluster= aside). */
int trace__topology_colo_opt(struct trace_cfg *c, const struct fields *f, unsigned i,
                             struct err *e);
void trace__print_topology_colo(const struct trace_cfg *c, char *buf, size_t size);
/* guest=primary|secondary on an op record: 1 when @w is one, 0 when it is
 * not such an option, else an error. */
int trace__guest_option(struct trace_rec *r, const struct fields *f, unsigned i,
                        struct err *e);
/* host=NAME (trace.c). */
int trace__host_option(struct trace_rec *r, const struct fields *f, unsigned i,
                       struct err *e);

#endif
