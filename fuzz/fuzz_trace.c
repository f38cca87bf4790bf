/*
 * fuzz_trace: the native trace parser. Whatever parses must print back to
 * exactly the input bytes, and its canonical form must parse to the same
 * records; whatever does not parse must say where (a line number).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../sim/trace.h"
#include "fuzz.h"

static char *print_to_string(const struct trace *t, int canonical, size_t *len)
{
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    ASSERT(f != NULL);
    if (canonical) {
        trace_print_canonical(t, f);
    } else {
        trace_print(t, f);
    }
    fclose(f);
    return buf;
}

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
    char *out = print_to_string(&t, 0, &len);
    ASSERT(len == size);
    ASSERT(memcmp(out, data, size) == 0);
    free(out);
    out = print_to_string(&t, 1, &len);
    struct trace back;
    ASSERT(trace_parse(&back, out, len, &e) == 0);
    ASSERT(back.n == t.n);
    for (size_t i = 0; i < t.n; i++) {
        ASSERT(trace_rec_equal(&t.recs[i], &back.recs[i]));
    }
    free(out);
    trace_fini(&back);
    trace_fini(&t);
    fuzz_leak_check(blocks);
    return 0;
}
