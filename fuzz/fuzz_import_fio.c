/*
 * fuzz_import: the importers, picked by the first byte: 1, 2, 3 the CSV
 * readers (MSR, Alibaba, Tencent) on the bytes after it, anything else the
 * fio iolog reader on all of them. An accepted log must become a native
 * trace whose canonical text parses back to the same records; a rejected
 * one must name its line.
 */
#include <stdio.h>
#include <stdlib.h>

#include "../sim/trace/import_csv.h"
#include "../sim/trace/import_fio.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t blocks = mem_blocks_live();
    struct trace t;
    struct err e = { .file = "fuzz" };
    int ret;
    if (size > 0 && data[0] >= 1 && data[0] <= CSV__COUNT) {
        struct import_csv_opts o = { .align_round = size > 1 && data[1] == '0' };
        ret = import_csv((enum import_csv_format)(data[0] - 1), (const char *)data + 1,
                         size - 1, &o, &t, NULL, &e);
    } else {
        ret = import_fio((const char *)data, size, NULL, &t, NULL, &e);
    }
    if (ret < 0) {
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
