/*
 * fuzz_canary: a target that must crash. `make fuzz-smoke` runs it and fails
 * unless libFuzzer reports the crash, proving the harness detects failures.
 * Its seed input is one byte short of the trigger, so it is found at once.
 */
#include <string.h>

#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size >= 4 && memcmp(data, "BUG!", 4) == 0) {
        ASSERT(!"the canary input was found");
    }
    return 0;
}
