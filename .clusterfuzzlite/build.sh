#!/usr/bin/env bash
# build.sh: blocksim's fuzz targets for ClusterFuzzLite / OSS-Fuzz.
#
# Honours the builder's $CC, $CFLAGS, $LIB_FUZZING_ENGINE and $OUT (and
# $CXX for the link, as OSS-Fuzz links with it; $CC when $CXX is unset).
# Writes each target $OUT/fuzz_NAME with its seed corpus
# (fuzz_NAME_seed_corpus.zip), its options file and its dictionary.
# Run from the source tree (the Dockerfile's WORKDIR).
# BLOCKSIM_FUZZ_TARGETS (optional) names the targets to build (the tests
# build the canary this way; it is no target to ship).
set -eu

: "${CC:?CC must be set}" "${OUT:?OUT must be set}"
: "${LIB_FUZZING_ENGINE:?LIB_FUZZING_ENGINE must be set}"
CFLAGS=${CFLAGS:-}
LINK=${CXX:-$CC}
# Default: every fuzz/fuzz_NAME.c but the canary (it must fail).
targets=${BLOCKSIM_FUZZ_TARGETS:-$(for f in fuzz/fuzz_*.c; do f=${f#fuzz/fuzz_}; \
    [ "${f%.c}" = canary ] || echo "${f%.c}"; done)}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$OUT"

objs=""
for src in ref/*.c sim/*/*.c props/*.c; do
    obj="$work/$(echo "$src" | tr / _).o"
    # shellcheck disable=SC2086
    "$CC" $CFLAGS -std=c11 -D_GNU_SOURCE -c "$src" -o "$obj"
    objs="$objs $obj"
done
# shellcheck disable=SC2086
ar rcs "$work/libblocksim.a" $objs

for t in $targets; do
    # shellcheck disable=SC2086
    "$CC" $CFLAGS -std=c11 -D_GNU_SOURCE -c "fuzz/fuzz_$t.c" -o "$work/fuzz_$t.o"
    # shellcheck disable=SC2086
    "$LINK" $CFLAGS $LIB_FUZZING_ENGINE "$work/fuzz_$t.o" "$work/libblocksim.a" \
        -ljansson -lxxhash -lz -lm -o "$OUT/fuzz_$t"
    if [ -e "fuzz/fuzz_$t.options" ]; then
        cp "fuzz/fuzz_$t.options" "$OUT/"
    fi
    python3 - "fuzz/corpus/$t" "$OUT/fuzz_${t}_seed_corpus.zip" <<'PY'
import os, sys, zipfile
src, dst = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(dst, "w") as z:
    for name in sorted(os.listdir(src)) if os.path.isdir(src) else []:
        path = os.path.join(src, name)
        if os.path.isfile(path):
            z.write(path, name)
PY
done
cp fuzz/dict/*.dict "$OUT/"
echo "build.sh: built $(echo $targets | wc -w) targets into $OUT"
