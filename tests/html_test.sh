#!/usr/bin/env bash
# html_test.sh BLOCKSIM: the HTML picture of a failing run, checked in a
# real browser (Debian's chromium, headless): the page renders to a
# screenshot, and its DOM (as the browser built it) holds the verdict, the
# violation with its writers linked to trace lines, the timeline and the
# disk map with the wrong cell. The campaign database's index page links
# each failure's page. Skips (exit 0, a SKIP line) without chromium.
set -u
bin=$(readlink -f "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
command -v chromium >/dev/null 2>&1 || { echo "html test: SKIP (chromium not found)"; exit 0; }
tmp=$(mktemp -d /tmp/blocksim-html.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "html test: FAIL: $*" >&2; exit 1; }
browse() { # MODE PAGE OUT: screenshot or DOM of PAGE
    timeout 90 chromium --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$tmp/ud" --window-size=1300,1000 "$@" 2>/dev/null
}
"$bin" replay "$here/traces/native/colo.trace" --mutant repl-checkpoint-no-reset \
    --html "$tmp/run.html" >/dev/null
[ $? = 1 ] || fail "the planted bug did not fail the run"
browse --screenshot="$tmp/shot.png" "file://$tmp/run.html"
[ "$(head -c 8 "$tmp/shot.png" | od -An -tx1 | tr -d ' ')" = 89504e470d0a1a0a ] ||
    fail "no PNG screenshot"
[ "$(stat -c %s "$tmp/shot.png")" -gt 20000 ] || fail "the screenshot is (nearly) empty"
browse --dump-dom "file://$tmp/run.html" >"$tmp/dom.html"
grep -q 'id="verdict" class="verdict fail"' "$tmp/dom.html" || fail "no FAIL verdict in the DOM"
grep -q 'First violation: colo-view' "$tmp/dom.html" || fail "no violation in the DOM"
grep -q 'href="#L21">write #0 (trace line 21)' "$tmp/dom.html" ||
    fail "the expected writer is not linked to its trace line"
grep -q 'class="actual"><a href="#L31">write #7' "$tmp/dom.html" ||
    fail "the actual writer is not linked to its trace line"
grep -q 'id="L34" class="bad"' "$tmp/dom.html" || fail "the violating line is not marked"
grep -q '<svg id="timeline"' "$tmp/dom.html" || fail "no timeline"
grep -q 'class="wrong"' "$tmp/dom.html" || fail "no wrong cell in the disk map"
# The campaign database's index links each failure's page.
"$bin" check colo-view --trials 100 --no-fork --quiet --mutant backup-cbw-late \
    --out "$tmp/out" --jsonl "$tmp/r.jsonl" >/dev/null
"$bin" campaign merge "$tmp/r.jsonl" --db "$tmp/db" >/dev/null || fail "merge"
browse --dump-dom "file://$tmp/db/index.html" >"$tmp/index.html"
page=$(grep -o 'href="[^"]*\.trace\.html"' "$tmp/index.html" | head -1 | cut -d'"' -f2)
[ -n "$page" ] && [ -s "$tmp/db/$page" ] || fail "the index links no failure page"
browse --dump-dom "file://$tmp/db/$page" >"$tmp/fail.html"
grep -q 'First violation: colo-' "$tmp/fail.html" || fail "the failure page shows no violation"
echo "html test: a failing run's page rendered in headless chromium ($(stat -c %s \
"$tmp/shot.png")-byte screenshot); verdict, linked writers, marked line, timeline and" \
     "disk map found in its DOM; the database index links each failure's page"
