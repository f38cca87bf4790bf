#!/usr/bin/env bash
# afl_smoke.sh: the same fuzz targets built for AFL++ (afl-clang-fast with
# its libFuzzer driver, through .clusterfuzzlite/build.sh) and fuzzed
# briefly from their seed corpora: no target may crash, and the canary
# (whose trigger is one byte from its seed) must be found, proving the
# engine detects failures. AFL_SECONDS per target (default 4). As
# libFuzzer finds the canary through its comparison tracing, AFL++ finds it
# through a dictionary holding the trigger (AFL cannot see a memcmp's
# partial progress).
set -u
secs=${AFL_SECONDS:-4}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
if ! command -v afl-fuzz >/dev/null || [ ! -e /usr/lib/afl/libAFLDriver.a ]; then
    echo "afl smoke: SKIP (afl++ not installed; scripts/bootstrap.sh installs it)"
    exit 0
fi
build() { # OUT TARGETS
    CC=afl-clang-fast CXX=afl-clang-fast++ CFLAGS="-O1 -g" \
        LIB_FUZZING_ENGINE=/usr/lib/afl/libAFLDriver.a OUT="$1" BLOCKSIM_FUZZ_TARGETS="$2" \
        bash .clusterfuzzlite/build.sh >"$tmp/build.log" 2>&1 ||
        { echo "FAIL: afl build of $2"; tail -20 "$tmp/build.log"; exit 1; }
}
# The seed corpus of @1 into a directory (AFL wants small seeds: the
# largest few are left out).
run() { # TARGET SECONDS [UNTIL_CRASH [DICT]]
    local t=$1 in="$tmp/in-$1" out="$tmp/out-$1" dict=()
    [ -n "${4:-}" ] && dict=(-x "$4")
    mkdir -p "$in"
    python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
        "$tmp/bin/fuzz_${t}_seed_corpus.zip" "$in"
    find "$in" -type f -size +64k -delete
    AFL_SKIP_CPUFREQ=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_NO_UI=1 \
        AFL_NO_AFFINITY=1 AFL_BENCH_UNTIL_CRASH="${3:-}" \
        timeout $(($2 + 60)) afl-fuzz -i "$in" -o "$out" "${dict[@]}" -V "$2" -- \
        "$tmp/bin/fuzz_$t" \
        >"$tmp/$t.log" 2>&1
    saved=$(sed -n 's/^saved_crashes *: //p' "$out/default/fuzzer_stats" 2>/dev/null)
    execs=$(sed -n 's/^execs_done *: //p' "$out/default/fuzzer_stats" 2>/dev/null)
    echo "${saved:-none} ${execs:-0}"
}
targets=$(for f in fuzz/fuzz_*.c; do f=${f#fuzz/fuzz_}; [ "${f%.c}" = canary ] || echo "${f%.c}"; done)
build "$tmp/bin" "$targets canary"
fail=0
for t in $targets; do
    read -r saved execs <<<"$(run "$t" "$secs")"
    if [ "$saved" != 0 ]; then
        echo "FAIL: afl: $t: crashes saved: $saved"; tail -5 "$tmp/$t.log"; fail=1
    else
        echo "afl: $t: $execs runs in ${secs}s, no crash"
    fi
done
printf '"BUG!"\n' >"$tmp/canary.dict"
read -r saved execs <<<"$(run canary 30 1 "$tmp/canary.dict")"
if [ "${saved:-0}" = none ] || [ "${saved:-0}" -lt 1 ]; then
    echo "FAIL: afl: the canary was not found (the engine would miss failures)"; fail=1
else
    echo "afl smoke: canary caught, the AFL++ harness detects failures"
fi
exit "$fail"
