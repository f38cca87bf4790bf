/* fuzz_import_blkparse: blkparse's text reader; an input ending in a
 * `#MAJ,MIN` line keeps that device (--volume); see fuzz_import.h. */
#include <string.h>

#include "../sim/trace/import_blkparse.h"
#include "fuzz_import.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int64_t blocks = mem_blocks_live();
    struct trace t;
    struct err e = { .file = "fuzz" };
    char volume[16] = "";
    const uint8_t *hash = size ? memchr(data, '#', size) : NULL;
    size_t text = hash ? (size_t)(hash - data) : size;
    if (hash) {
        size_t n = size - text - 1 < sizeof(volume) - 1 ? size - text - 1 : sizeof(volume) - 1;
        memcpy(volume, hash + 1, n);
        volume[n] = '\0';
        volume[strcspn(volume, "\n")] = '\0';
    }
    int ret = import_blkparse((const char *)data, text, volume[0] ? volume : NULL, &t, &e);
    return fuzz_import_judge(ret, &t, &e, true, blocks);
}
