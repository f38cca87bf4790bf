/* fuzz_import_fio: the fio iolog reader (v2 and v3); see fuzz_import.h. */
#include "../sim/trace/import_fio.h"
#include "fuzz_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t blocks = mem_blocks_live();
    struct trace t;
    struct err e = { .file = "fuzz" };
    int ret = import_fio((const char *)data, size, NULL, &t, NULL, &e);
    return fuzz_import_judge(ret, &t, &e, true, blocks);
}
