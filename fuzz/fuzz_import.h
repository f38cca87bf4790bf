/*
 * fuzz_import: what every reader's fuzz target checks (fuzz_import_*.c).
 *
 * Role: one libFuzzer target per recorded-trace reader (fio, blkparse,
 *   MSR, Alibaba, Tencent, dm-log-writes), each with its own corpus and
 *   dictionary, sharing this judgement.
 * Invariants: a rejected input names where (a line for the text formats, a
 *   message for the binary one) and leaks nothing; an accepted one became a
 *   native trace whose canonical text parses back to the same records.
 * Depends on: sim/trace, fuzz.h.
 */
#ifndef BLOCKSIM_FUZZ_IMPORT_H
#define BLOCKSIM_FUZZ_IMPORT_H

#include <stdlib.h>

#include "../sim/trace/trace.h"
#include "fuzz.h"

/* Judge a reader's result @ret for trace @t (freed here) and error @e;
 * @by_line: its errors name a line. */
static inline int fuzz_import_judge(int ret, struct trace *t, const struct err *e,
                                    bool by_line, int64_t blocks)
{
    if (ret < 0) {
        ASSERT(ret == BS_EPARSE && e->msg[0] != '\0' && (!by_line || e->line > 0));
        fuzz_leak_check(blocks);
        return 0;
    }
    size_t len;
    char *buf = trace_print_string(t, true, &len);
    struct trace back;
    struct err pe = { .file = "fuzz" };
    ASSERT(trace_parse(&back, buf, len, &pe) == 0);
    ASSERT(trace_equal(t, &back));
    free(buf);
    trace_fini(&back);
    trace_fini(t);
    fuzz_leak_check(blocks);
    return 0;
}

#endif
