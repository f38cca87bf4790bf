/*
 * fuzz_scenario: libFuzzer's bytes are a choice sequence: the same decoder
 * as the property engine turns them into a scenario, which runs with every
 * checker on. The first byte picks the property whose generator settings
 * apply (its fuzz id, modulo PROP_FUZZ_IDS: ids are never reused, so adding
 * a property does not change what existing corpus inputs mean; a byte that
 * names no property is a no-op input).
 */
#include <stdio.h>

#include "../props/gen.h"
#include "../props/registry.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) {
        return 0;
    }
    int64_t blocks = mem_blocks_live();
    const struct prop *p = registry_by_fuzz_id(data[0] % PROP_FUZZ_IDS);
    if (!p) {
        return 0;
    }
    struct choices c;
    choices_init_bytes(&c, data + 1, size - 1);
    struct trace t;
    gen_scenario(&c, &p->gen, &t);
    char msg[320];
    int ret = p->check(p, &t, 0, 0, msg, sizeof(msg));
    if (ret != 0) {
        fprintf(stderr, "fuzz_scenario: property %s failed: %s\n", p->name, msg);
        trace_print_canonical(&t, stderr);
        ASSERT(!"property failed");
    }
    trace_fini(&t);
    choices_fini(&c);
    fuzz_leak_check(blocks);
    return 0;
}
