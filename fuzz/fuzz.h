/*
 * fuzz: the libFuzzer entry point every target defines, and helpers.
 *
 * Role: one binary per target (OSS-Fuzz layout): fuzz_<target>.c defines
 *   LLVMFuzzerTestOneInput; linked with -fsanitize=fuzzer it is a libFuzzer
 *   binary, linked with standalone.c it replays files (gcc, valgrind, gcov).
 * Invariants: a target returns 0 for every input it handles; anything else
 *   (ASSERT, sanitizer report, leak) is a finding.
 * Ownership: targets free everything they allocate (checked with
 *   fuzz_leak_check).
 * Depends on: ref/base.
 */
#ifndef BLOCKSIM_FUZZ_H
#define BLOCKSIM_FUZZ_H

#include <stddef.h>
#include <stdint.h>

#include "../ref/base.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Abort unless every block allocated since @blocks_before was freed. */
static inline void fuzz_leak_check(int64_t blocks_before)
{
    ASSERT(mem_blocks_live() == blocks_before);
}

#endif
