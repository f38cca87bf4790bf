/* fuzz_import_tencent: the Tencent CBS CSV reader; an odd-sized input reads
 * with --align round; see fuzz_import.h. */
#include "../sim/trace/import_csv.h"
#include "fuzz_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t blocks = mem_blocks_live();
    struct trace t;
    struct err e = { .file = "fuzz" };
    struct import_csv_opts o = { .align_round = size % 2 == 1 };
    int ret = import_csv(CSV_TENCENT, (const char *)data, size, &o, &t, NULL, &e);
    return fuzz_import_judge(ret, &t, &e, true, blocks);
}
