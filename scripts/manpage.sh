#!/usr/bin/env bash
# manpage.sh BLOCKSIM OUT: blocksim's man page, made with help2man from the
# binary's own help texts (the top-level --help and every command's), so it
# never drifts from them.
set -eu
bin=$1 out=$2
inc=$(mktemp)
trap 'rm -f "$inc"' EXIT
{
    echo "[COMMANDS]"
    for cmd in $("$bin" --help | sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p'); do
        echo ".SS $cmd"
        echo ".nf"
        "$bin" "$cmd" --help | sed 's/\\/\\e/g; s/^\./\\\&./'
        echo ".fi"
    done
    echo "[SEE ALSO]"
    echo "The README and traces/README.md of blocksim's source tree."
} >"$inc"
help2man --no-info --no-discard-stderr --name="a replicated block stack and the harness that verifies it" \
    --include="$inc" --output="$out" "$bin"
