/* fuzz_import_dmlog: the dm-log-writes reader; an odd-sized input reads
 * with --align round; see fuzz_import.h. */
#include "../sim/trace/import_dmlog.h"
#include "fuzz_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t blocks = mem_blocks_live();
    struct trace t;
    struct err e = { .file = "fuzz" };
    int ret = import_dmlog((const char *)data, size, size % 2 == 1, &t, NULL, &e);
    return fuzz_import_judge(ret, &t, &e, false, blocks);
}
