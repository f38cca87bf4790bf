#!/usr/bin/env bash
# cfl_build.sh: run .clusterfuzzlite/build.sh as ClusterFuzzLite would
# (CC, CFLAGS, LIB_FUZZING_ENGINE and OUT set, libFuzzer with ASan), then
# run every built target over its seed corpus: each must build, ship its
# corpus, options and dictionary, and pass its corpus.
set -u
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export CC=clang CXX=clang \
    CFLAGS="-O1 -g -fsanitize=address,undefined -fsanitize=fuzzer-no-link" \
    LIB_FUZZING_ENGINE="-fsanitize=fuzzer" OUT="$tmp/out"
if ! bash .clusterfuzzlite/build.sh >"$tmp/build.log" 2>&1; then
    echo "FAIL: cfl build.sh"; tail -20 "$tmp/build.log"; exit 1
fi
fail=0
n=0
for bin in "$OUT"/fuzz_*; do
    case "$bin" in *.zip|*.options|*.dict) continue ;; esac
    t=$(basename "$bin")
    n=$((n + 1))
    for f in "$OUT/${t}_seed_corpus.zip" "$OUT/$t.options"; do
        [ -s "$f" ] || { echo "FAIL: $t: missing $(basename "$f")"; fail=1; }
    done
    mkdir -p "$tmp/c-$t"
    python3 -c "import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])" \
        "$OUT/${t}_seed_corpus.zip" "$tmp/c-$t"
    if ! "$bin" -runs=0 "$tmp/c-$t" >"$tmp/$t.log" 2>&1; then
        echo "FAIL: $t on its seed corpus"; tail -5 "$tmp/$t.log"; fail=1
    fi
done
[ "$n" -ge 5 ] || { echo "FAIL: only $n targets built"; fail=1; }
[ "$fail" = 0 ] && echo "cfl build: $n targets built with the ClusterFuzzLite variables, each passes its seed corpus"
exit "$fail"
