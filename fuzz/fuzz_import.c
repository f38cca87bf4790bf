/*
 * fuzz_import: the importers (fio iolog v2/v3 for now; later ones join,
 * picked by the first byte). An accepted log must become a native trace
 * whose canonical text parses back to the same records; a rejected one must
 * name its line.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../sim/trace/import_fio.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t blocks = mem_blocks_live();
    struct trace t;
    struct err e = { .file = "fuzz" };
    if (import_fio((const char *)data, size, NULL, &t, NULL, &e) < 0) {
        ASSERT(e.line > 0);
        fuzz_leak_check(blocks);
        return 0;
    }
    size_t len;
    char *buf = trace_print_string(&t, true, &len);
    struct trace back;
    ASSERT(trace_parse(&back, buf, len, &e) == 0);
    ASSERT(trace_equal(&t, &back));
    free(buf);
    trace_fini(&back);
    trace_fini(&t);
    fuzz_leak_check(blocks);
    return 0;
}
