#!/usr/bin/env bash
# tidy.sh: the house style lint (STYLE.md rules 12, 16, 19). Fails on:
#  - lines over 100 columns (all C sources);
#  - functions over 70 lines (all C sources);
#  - calls that break determinism or the style in ref/ and sim/: rand,
#    srand, random, time, clock_gettime, gettimeofday, sprintf, strcpy,
#    assert( and <assert.h>;
#  - file-scope variables that are not const in ref/ and sim/, unless the
#    line says "tidy:global" and why (base.c's process-wide counters).
set -u
cd "$(dirname "$0")/.."
fail=0
srcs=$(for f in $(git ls-files --cached --others --exclude-standard '*.c' '*.h'); do [ -f "$f" ] && echo "$f"; done)

long=$(awk 'length($0) > 100 { printf "%s:%d: line is %d columns\n", FILENAME, FNR, length($0) }' $srcs)
[ -n "$long" ] && { echo "$long"; fail=1; }

funcs=$(awk '
    /^[a-zA-Z_].*\)$/ || /^[a-zA-Z_].*\($/ || /^[a-zA-Z_].*,$/ { sig = FNR; name = $0 }
    /^\{/ { start = FNR }
    /^\}/ { if (start && FNR - start - 1 > 70)
              printf "%s:%d: function is %d lines (max 70)\n", FILENAME, start,
                     FNR - start - 1;
            start = 0 }' $srcs)
[ -n "$funcs" ] && { echo "$funcs"; fail=1; }

det=$(grep -nE '(^|[^_a-z])(rand|srand|random|time|clock_gettime|gettimeofday|sprintf|strcpy|assert)\(|#include <assert\.h>' \
      ref/*.[ch] sim/*/*.[ch] | grep -vE '^\S+:\s*(/\*|\*)' )
[ -n "$det" ] && { echo "banned call in ref/ or sim/:"; echo "$det"; fail=1; }

globals=$(grep -nE '^static [^(]*(=|;)\s*(/\*.*)?$' ref/*.c sim/*/*.c | grep -v 'const' | grep -v 'tidy:global')
[ -n "$globals" ] && { echo "file-scope mutable state in ref/ or sim/:"; echo "$globals"; fail=1; }

if [ "$fail" = 0 ]; then echo "tidy: clean"; fi
exit $fail
