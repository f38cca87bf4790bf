#!/usr/bin/env bash
# install_test.sh: make install into a temporary DESTDIR; the installed
# binary replays an installed trace, its man page renders and names every
# command, bash completes a command and a property from the installed
# completion; make uninstall leaves nothing of blocksim behind.
set -u
here=$(cd "$(dirname "$0")/.." && pwd)
tmp=$(mktemp -d /tmp/blocksim-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "install test: FAIL: $*" >&2; exit 1; }
make -C "$here" --no-print-directory install DESTDIR="$tmp" PREFIX=/usr >"$tmp/log" 2>&1 ||
    { tail -20 "$tmp/log"; fail "make install"; }
root=$tmp/usr
"$root/bin/blocksim" replay --quiet "$root/share/blocksim/traces/native/colo.trace" ||
    fail "the installed binary did not replay an installed trace"
"$root/bin/blocksim" --version | grep -q blocksim || fail "--version"
man -l "$root/share/man/man1/blocksim.1" >"$tmp/man.txt" 2>/dev/null || fail "man page"
for cmd in $("$root/bin/blocksim" --help | sed -n 's/^  \([a-z][a-z-]*\)  .*/\1/p'); do
    grep -q "^   $cmd" "$tmp/man.txt" || fail "the man page lacks command $cmd"
done
grep -q -- "--jsonl" "$tmp/man.txt" || fail "the man page lacks the commands' options"
out=$(bash -c 'source "$1"
COMP_WORDS=(blocksim cam); COMP_CWORD=1; _blocksim; echo "${COMPREPLY[*]}"
COMP_WORDS=(blocksim check colo-f); COMP_CWORD=2; _blocksim; echo "${COMPREPLY[*]}"
COMP_WORDS=(blocksim replay --mutant repl-fail); COMP_CWORD=3; _blocksim; echo "${COMPREPLY[*]}"' \
    _ "$root/share/bash-completion/completions/blocksim")
[ "$out" = $'campaign\ncolo-failover\nrepl-failover-active-only' ] ||
    fail "completion: got '$out'"
make -C "$here" --no-print-directory uninstall DESTDIR="$tmp" PREFIX=/usr >"$tmp/log" 2>&1 ||
    fail "make uninstall"
left=$(find "$root" -name 'blocksim*' | head -3)
[ -z "$left" ] || fail "uninstall left $left"
echo "install test: installed into a temporary DESTDIR, replayed colo.trace with the" \
     "installed binary, man page and completion checked, uninstalled cleanly"
