/*
 * fuzz_trace: the native trace parser. Whatever parses must print back to
 * exactly the input bytes, and its canonical form must parse to the same
 * records; whatever does not parse must say where (a line number).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sim/trace/trace.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t blocks = mem_blocks_live();
    struct trace t;
    struct err e = { .file = "fuzz" };
    if (trace_parse(&t, (const char *)data, size, &e) < 0) {
        ASSERT(e.line > 0);
        ASSERT(e.msg[0] != '\0');
        fuzz_leak_check(blocks);
        return 0;
    }
    size_t len;
    char *out = trace_print_string(&t, false, &len);
    ASSERT(len == size);
    ASSERT(memcmp(out, data, size) == 0);
    free(out);
    out = trace_print_string(&t, true, &len);
    struct trace back;
    ASSERT(trace_parse(&back, out, len, &e) == 0);
    ASSERT(trace_equal(&t, &back));
    free(out);
    trace_fini(&back);
    trace_fini(&t);
    fuzz_leak_check(blocks);
    return 0;
}
