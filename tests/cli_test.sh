#!/usr/bin/env bash
# cli_test.sh BLOCKSIM: command-line behaviour: exit statuses, error
# messages that name file, line and field, golden traces, determinism,
# planted bugs caught, fio replay, convert never clobbering on failure.
# Prints "N passed, N failed" and exits non-zero on any failure.
set -u
bin=${1:?usage: cli_test.sh BLOCKSIM}
tmp=$(mktemp -d)
[ -e blocksim-failures ] && had_failures_dir=1 || had_failures_dir=0
trap 'rm -rf "$tmp"' EXIT
pass=0
fail=0

ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }

# expect_status WANT DESCRIPTION -- COMMAND...
expect_status() {
    local want=$1 what=$2
    shift 3
    "$@" >"$tmp/out" 2>"$tmp/err"
    local got=$?
    if [ "$got" = "$want" ]; then ok; else
        bad "$what: exit $got, wanted $want"; sed 's/^/    /' "$tmp/err" >&2; fi
}

expect_err() { # PATTERN DESCRIPTION
    if grep -q -- "$1" "$tmp/err"; then ok; else
        bad "$2: stderr lacks '$1'"; sed 's/^/    /' "$tmp/err" >&2; fi
}

expect_out() { # PATTERN DESCRIPTION
    if grep -q -- "$1" "$tmp/out"; then ok; else bad "$2: stdout lacks '$1'"; fi
}

# Every native trace bundled must replay green (golden ones check their
# expectations), and so must every regression trace.
for t in traces/native/*.trace traces/regress/*.trace; do
    [ -e "$t" ] || continue
    expect_status 0 "replay $t" -- "$bin" replay --quiet "$t"
done
for t in traces/fio/*.log; do
    [ -e "$t" ] || continue
    expect_status 0 "replay fio $t" -- "$bin" replay --quiet "$t"
done

# Help and usage.
expect_status 0 "help" -- "$bin" --help
expect_out "replay" "help lists replay"
expect_status 0 "replay --help" -- "$bin" replay --help
expect_out "--faults" "replay --help lists options"
expect_status 0 "convert --help" -- "$bin" convert --help
expect_status 2 "no command" -- "$bin"
expect_status 2 "unknown command" -- "$bin" frobnicate
expect_err "unknown command 'frobnicate'" "unknown command named"
expect_status 2 "missing trace" -- "$bin" replay
expect_err "missing TRACE" "missing trace named"
expect_status 2 "bad option" -- "$bin" replay --bogus traces/native/golden.trace
expect_status 2 "bad seed" -- "$bin" replay --seed x traces/native/golden.trace
expect_err "--seed: expected an unsigned integer, got 'x'" "bad seed named"
expect_status 2 "bad size" -- "$bin" replay --size 100 traces/native/golden.trace
expect_status 2 "bad qd" -- "$bin" replay --qd 0 traces/native/golden.trace
expect_status 2 "bad format" -- "$bin" replay --format xml traces/native/golden.trace
expect_status 2 "bad mutant" -- "$bin" replay --mutant nope traces/native/golden.trace
expect_status 2 "bad fault spec" -- "$bin" replay --faults "read-eio;melt" traces/native/golden.trace
expect_err "fault rule 2 ('melt')" "bad fault spec named"
expect_status 2 "missing file" -- "$bin" replay "$tmp/nope.trace"
expect_err "nope.trace: cannot open" "missing file named"

# Malformed traces: exit 2, file:line: field N.
printf 'blocksim-trace v1\nwrite 0 100\n' >"$tmp/bad.trace"
expect_status 2 "malformed native" -- "$bin" replay "$tmp/bad.trace"
expect_err "bad.trace:2: field 3: length 100 is not a multiple of 512" "native error located"
printf 'fio version 3 iolog\n0 f add\n10 f write 0 4096\nabc f read 0 4096\n' >"$tmp/bad.log"
expect_status 2 "malformed fio" -- "$bin" replay "$tmp/bad.log"
expect_err "bad.log:4: field 1: timestamp" "fio error located"
printf 'blocksim-trace v1\ncrash\nread 0 512\n' >"$tmp/down.trace"
expect_status 2 "op while down" -- "$bin" replay "$tmp/down.trace"
expect_err "down.trace:3: field 1" "scenario error located"
head -c 3000 /dev/urandom >"$tmp/noise.trace"
expect_status 2 "binary noise" -- "$bin" replay "$tmp/noise.trace"

# Determinism: the same seed gives byte-identical JSON without wall figures.
"$bin" replay --json --no-wall traces/native/default.trace >"$tmp/a.json"
"$bin" replay --json --no-wall traces/native/default.trace >"$tmp/b.json"
if cmp -s "$tmp/a.json" "$tmp/b.json"; then ok; else bad "same seed, different JSON"; fi
"$bin" replay --json --no-wall --seed 43 traces/native/default.trace >"$tmp/c.json"
if grep '"digest"' "$tmp/a.json" | cmp -s - <(grep '"digest"' "$tmp/c.json"); then
    bad "two seeds, same digest"; else ok; fi
expect_status 0 "json report" -- "$bin" replay --json traces/native/default.trace
expect_out '"ops_per_sec"' "json has wall figures"

# --bytes carries every byte through the stack: the same run, no read
# answered in tags (the default answered some).
"$bin" replay --json --no-wall --bytes traces/native/default.trace >"$tmp/bytes.json"
if diff <(grep -v described_reads "$tmp/a.json") <(grep -v described_reads "$tmp/bytes.json") \
    >/dev/null; then ok; else bad "--bytes changed the run"; fi
if grep -q '"described_reads": 0,' "$tmp/bytes.json" &&
    ! grep -q '"described_reads": 0,' "$tmp/a.json"; then ok; else
    bad "described reads: default and --bytes"; fi
expect_status 0 "bytes-check agrees" -- "$bin" replay --bytes-check traces/native/golden.trace
expect_out "bytes-check the same run" "bytes-check says so"
printf 'blocksim-trace v1\ntopology plain size=1M\ndisk d0 cache=0\nwrite 0 4096\nread 0 4096\n' \
    >"$tmp/desc.trace"
expect_status 1 "bytes-check catches a lost home" -- "$bin" replay --bytes-check --json \
    --mutant disk-desc-misplace "$tmp/desc.trace"
expect_out '"bytes_check": "described I/O changed the run' "bytes-check in the JSON"
expect_status 2 "bytes-check with bytes" -- "$bin" replay --bytes-check --bytes "$tmp/desc.trace"

# Golden expectations are enforced: a wrong digest fails with status 1.
sed 's/^expect digest .*/expect digest 0123456789abcdef/' traces/native/golden.trace \
    >"$tmp/wrong.trace"
expect_status 1 "wrong golden digest" -- "$bin" replay "$tmp/wrong.trace"
expect_out "expectation FAILED" "expectation failure reported"

# Planted bugs are caught, with the sector and writers named and a command
# that reproduces the failure exactly.
expect_status 1 "fua mutant caught" -- "$bin" replay --mutant disk-fua-volatile \
    traces/native/fua-crash.trace
expect_out "crash-consistency" "fua mutant property named"
expect_out "expected write #" "fua mutant writer named"
repro=$(sed -n 's/^  reproduce   //p' "$tmp/out")
if [ -n "$repro" ]; then
    eval "${repro/blocksim/\"$bin\"}" >"$tmp/repro.out" 2>&1
    [ $? = 1 ] && ok || bad "reproduce line did not reproduce the failure"
    if grep -q "$(grep 'sector ' "$tmp/out" | head -1)" "$tmp/repro.out"; then ok; else
        bad "reproduce line found a different violation"; fi
else
    bad "no reproduce line"
fi
expect_status 1 "flush mutant caught" -- "$bin" replay --mutant disk-flush-noop \
    traces/native/default.trace
expect_status 1 "drop-fua mutant caught" -- "$bin" replay --mutant file-drop-fua \
    traces/native/fua-crash.trace
expect_status 1 "copy-up mutant caught" -- "$bin" replay --mutant overlay-no-copyup \
    traces/native/overlay.trace
expect_status 1 "serialise mutant caught" -- "$bin" replay --mutant overlay-no-serialise \
    traces/native/overlay.trace

# Extra faults from the command line are applied and reported.
expect_status 0 "cli faults" -- "$bin" replay --faults "read-eio prob=5%" \
    traces/native/default.trace --json --no-wall
expect_out '"read-eio": [1-9]' "cli faults fired"

# convert: fio to native, then the native trace replays to the same digest.
expect_status 0 "convert fio" -- "$bin" convert traces/fio/sample-v3.log "$tmp/conv.trace"
d1=$("$bin" replay --json --no-wall traces/fio/sample-v3.log | grep '"digest"')
d2=$("$bin" replay --json --no-wall "$tmp/conv.trace" | grep '"digest"')
[ -n "$d1" ] && [ "$d1" = "$d2" ] && ok || bad "converted trace replays differently"
# A failed convert leaves an existing output untouched.
echo "precious" >"$tmp/keep.trace"
expect_status 2 "convert bad input" -- "$bin" convert "$tmp/bad.trace" "$tmp/keep.trace"
if [ "$(cat "$tmp/keep.trace")" = precious ]; then ok; else bad "convert clobbered output"; fi
expect_status 0 "convert to stdout" -- "$bin" convert traces/native/golden.trace -
expect_out "^expect digest" "convert keeps expectations"

# Dirty bitmaps: the report lists them; each planted bug fails the bundled
# trace under its property; bad options and records are refused with exit 2.
expect_status 0 "bitmaps trace" -- "$bin" replay traces/native/bitmaps.trace
expect_out "backup: active, persistent, granularity 65536" "text report lists bitmaps"
expect_out "first refused: line 25: bitmap clear backup" "text report names a refusal"
expect_status 0 "bitmap json" -- "$bin" replay --json --no-wall traces/native/bitmaps.trace \
    --bitmap extra:512
expect_out '"extents"' "json lists extents"
expect_out '"name": "extra"' "json lists the --bitmap bitmap"
expect_status 0 "dirty-mark issue" -- "$bin" replay --quiet --dirty-mark issue \
    traces/native/bitmaps.trace
for m in dirty-late-mark:bitmap-coverage dirty-reclaim-drop:bitmap-successor \
         qbm-no-in-use:bitmap-crash qbm-short-store:bitmap-store; do
    expect_status 1 "mutant ${m%%:*} caught" -- "$bin" replay --mutant "${m%%:*}" \
        traces/native/bitmaps.trace
    expect_out "violation   ${m#*:}" "mutant ${m%%:*} named ${m#*:}"
done
# COLO: the bundled pair passes and reports its replication; each planted
# bug is caught by the invariant it breaks; --export takes the fixed names.
expect_status 0 "colo trace" -- "$bin" replay traces/native/colo.trace \
    --export secondary-disk="$tmp/sec.raw" --export primary-disk="$tmp/pri.raw"
expect_out "replication modern: primary running, secondary done; 2 checkpoint" \
    "colo report line"
[ -s "$tmp/sec.raw" ] && [ -s "$tmp/pri.raw" ] && ok || bad "colo exports written"
for m in repl-checkpoint-active-only:colo-checkpoint repl-checkpoint-no-reset:colo-view \
         repl-failover-active-only:colo-failover backup-cbw-late:colo-hidden \
         nbd-no-retry:colo-liveness; do
    expect_status 1 "mutant ${m%%:*} caught" -- "$bin" replay --mutant "${m%%:*}" \
        traces/native/colo.trace
    expect_out "violation   ${m#*:}" "mutant ${m%%:*} named ${m#*:}"
done
expect_status 0 "colo explore secondary" -- "$bin" explore traces/native/colo-explore.trace \
    --host secondary --max-states 500 --tear-samples 20 --quiet
expect_status 1 "colo explore catches no-flush" -- "$bin" explore \
    traces/native/colo-explore.trace --host secondary --max-states 500 --tear-samples 20 \
    --quiet --mutant mirror-no-target-flush --out "$tmp/cx"
expect_out "reproduce: blocksim explore .* --host secondary --mutant mirror-no-target-flush" \
    "explore repro names the host"
expect_status 2 "explore bad host" -- "$bin" explore traces/native/colo-explore.trace \
    --host ghost
expect_err "no host 'ghost'" "explore names the bad host"
expect_status 0 "colo json" -- "$bin" replay --json --no-wall traces/native/colo.trace
expect_out '"failovers": 1' "json replication section"
printf 'blocksim-trace v1\ntopology plain\ncolo checkpoint\n' >"$tmp/colo-bad.trace"
expect_status 2 "colo record elsewhere" -- "$bin" replay "$tmp/colo-bad.trace"
expect_err "needs the colo topology" "colo record refused off colo"
expect_status 1 "bitmap mutant reproduces" -- "$bin" replay --mutant qbm-short-store \
    --bitmap x:4K traces/native/bitmaps.trace
expect_out "reproduce .*--mutant qbm-short-store.*--bitmap x:4K" "repro keeps --bitmap"
expect_status 2 "bad bitmap name" -- "$bin" replay --bitmap 'a/b' traces/native/golden.trace
expect_err "bad name in 'a/b'" "bad bitmap name named"
expect_status 2 "bad bitmap granularity" -- "$bin" replay --bitmap a:1000 \
    traces/native/golden.trace
expect_err "granularity in 'a:1000' must be a power of two" "bad granularity named"
expect_status 2 "bitmap twice" -- "$bin" replay --bitmap a --bitmap a:4K \
    traces/native/golden.trace
expect_err "'a' given twice" "duplicate bitmap named"
expect_status 2 "bad dirty-mark" -- "$bin" replay --dirty-mark soon traces/native/golden.trace
printf 'blocksim-trace v1\nbitmap frob a\n' >"$tmp/bm1.trace"
expect_status 2 "unknown bitmap op" -- "$bin" replay "$tmp/bm1.trace"
expect_err "bm1.trace:2: field 2: unknown bitmap operation 'frob'" "bitmap op located"
printf 'blocksim-trace v1\nbitmap add a granularity=3K\n' >"$tmp/bm2.trace"
expect_status 2 "bad record granularity" -- "$bin" replay "$tmp/bm2.trace"
expect_err "bm2.trace:2: field 4: granularity must be a power of two" "granularity located"
printf 'blocksim-trace v1\nwrite 0 512\nshutdown\nbitmap add a\n' >"$tmp/bm3.trace"
expect_status 2 "bitmap while down" -- "$bin" replay "$tmp/bm3.trace"
expect_err "bm3.trace:4: field 1: 'bitmap' while the host is down" "host down located"

# check: the property engine from the command line.
expect_status 0 "check --list" -- "$bin" check --list
for p in read-your-writes crash flush-fua overlay trace-roundtrip; do
    expect_out "^$p " "check --list names $p"
done
expect_status 0 "check passes" -- "$bin" check all --trials 100 --out "$tmp"
expect_out "crash  *pass  100 trials" "check reports trials"
expect_status 2 "check unknown property" -- "$bin" check nope
expect_err "unknown property 'nope'" "check names the property"
expect_status 2 "check bad shard" -- "$bin" check crash --shard 3/2
expect_status 1 "check catches a planted bug" -- "$bin" check crash --mutant disk-flush-noop \
    --trials 500 --out "$tmp"
expect_out "shrunk from [0-9]* to [0-9]* operations" "check reports the shrink"
repro=$(sed -n 's/^  reproduce: blocksim replay //p' "$tmp/out")
if [ -n "$repro" ] && [ -f "$repro" ]; then
    # The planted bug travels in the trace: the file alone fails...
    "$bin" replay "$repro" >/dev/null 2>&1
    [ $? = 1 ] && ok || bad "check's repro trace does not fail alone"
    grep -q '^mutant disk-flush-noop$' "$repro" && ok || bad "repro lacks its mutant record"
    # ...and without its mutant record it passes: the bug, not the trace.
    grep -v '^mutant ' "$repro" >"$tmp/nomutant.trace"
    "$bin" replay "$tmp/nomutant.trace" >/dev/null 2>&1
    [ $? = 0 ] && ok || bad "check's reproducer fails without the planted bug"
else
    bad "check printed no reproduce line with a trace"
fi
expect_status 0 "check --json" -- "$bin" check flush-fua --trials 20 --json --out "$tmp"
expect_out '"verdict": "pass"' "check json verdict"

# shrink: an existing failing trace gets smaller and still fails.
expect_status 0 "shrink" -- "$bin" shrink traces/native/default.trace --property crash \
    --mutant disk-flush-noop --out "$tmp/small.trace"
expect_out "shrunk traces/native/default.trace from 3[0-9]* to" "shrink reports sizes"
expect_status 1 "shrunk trace fails alone" -- "$bin" replay "$tmp/small.trace"
n=$(grep -cE '^(read|write|flush|zero|discard|crash)' "$tmp/small.trace")
[ "$n" -le 20 ] && ok || bad "shrunk trace still has $n operations"
expect_status 1 "shrink a passing trace" -- "$bin" shrink traces/native/golden.trace --property crash \
    --out "$tmp/none.trace"
expect_out "does not fail" "shrink says it did not reproduce"
[ ! -e "$tmp/none.trace" ] && ok || bad "shrink wrote a file for a passing trace"

# convert --from scenario: fuzzer inputs and crash artifacts become traces.
expect_status 0 "convert scenario artifact" -- "$bin" convert --from scenario \
    fuzz/corpus/scenario/regress-48103 "$tmp/art.trace"
expect_status 0 "converted artifact replays" -- "$bin" replay "$tmp/art.trace"

# explore: crash-state exploration.
expect_status 0 "explore exhaustive" -- "$bin" explore --exhaustive --ops 3
expect_out "subsets exhaustive" "explore exhaustive is exhaustive"
expect_status 1 "explore finds the map-ordering bug" -- "$bin" explore --exhaustive \
    --mutant overlay-map-first --out "$tmp/exh"
expect_out "make-empty; write 0 fua; crash at device flush" "explore names the workload"
expect_status 0 "explore a fio log" -- "$bin" explore traces/fio/sample-v2.log --max-states 300 \
    --tear-samples 30
# A trace's own crash records split it into segments, each explored.
expect_status 0 "explore a trace with crash records" -- "$bin" explore traces/native/golden.trace \
    --max-states 100 --tear-samples 20
expect_out "explore: pass  1 workload(s), [1-9][0-9]* crash point" "explore explores segments"
expect_status 1 "explore catches a planted bug" -- "$bin" explore traces/native/golden.trace \
    --max-states 200 --tear-samples 20 --mutant disk-flush-noop --out "$tmp/exf"
rt=$(sed -n 's/^  repro: \([^ ]*\) .*/\1/p' "$tmp/out")
if [ -n "$rt" ] && [ -f "$rt" ]; then
    "$bin" replay "$rt" >"$tmp/rt.out" 2>&1
    [ $? = 1 ] && ok || bad "explore's repro trace does not fail alone: $(head -5 "$tmp/rt.out")"
    grep -q '^crash .*plan=' "$rt" && ok || bad "explore's repro names no plan"
else
    bad "explore wrote no repro trace: $(cat "$tmp/out")"
fi
cp "$tmp/out" "$tmp/exout"
grep -q "^  reproduce: blocksim explore traces/native/golden.trace --point [0-9]" "$tmp/exout" &&
    ok || bad "explore prints no reproduce line"
repro=$(sed -n 's/^  reproduce: blocksim //p' "$tmp/exout")
msg=$(sed -n '2p' "$tmp/exout")
eval "\"$bin\" $repro --out \"$tmp/exr\"" >"$tmp/out2" 2>&1
[ $? = 1 ] && grep -qF -- "$msg" "$tmp/out2" && ok || bad "explore's reproduce line: $(cat "$tmp/out2")"
expect_status 0 "explore --json" -- "$bin" explore traces/native/golden.trace --json \
    --max-states 50 --tear-samples 5
expect_out '"states_per_second"' "explore json rate"
expect_status 0 "explore --time" -- "$bin" explore traces/native/default.trace --time 1
expect_out "stopped early" "explore says the time ran out"
expect_status 2 "explore missing file" -- "$bin" explore "$tmp/nope.trace"
expect_err "nope.trace: cannot open" "explore missing file named"
expect_status 2 "explore a directory" -- "$bin" explore traces
expect_err "is a directory" "explore directory named"
expect_status 2 "explore a bad trace" -- "$bin" explore "$tmp/bad.trace"
expect_status 2 "explore bad option" -- "$bin" explore --max-states -1 traces/native/golden.trace
expect_status 2 "explore unusable --out" -- "$bin" explore traces/native/golden.trace --out /nonexistent/d
mkdir -p "$tmp/cwd2"
(cd "$tmp/cwd2" && "$bin" explore "$OLDPWD/traces/native/golden.trace" --max-states 20 \
    --tear-samples 2 >/dev/null 2>&1)
[ -z "$(ls -A "$tmp/cwd2")" ] && ok || bad "a passing explore left files behind"

# The quorum: planted bugs in the vote and in the NBD client are caught on
# the bundled quorum trace; `blocksim quorum` refuses bad arguments.
expect_status 1 "quorum trace catches no-rewrite" -- "$bin" replay \
    --mutant quorum-no-rewrite traces/native/quorum-nbd.trace
expect_out "did not rewrite children" "quorum violation explained"
expect_status 1 "quorum trace catches nbd-no-retry" -- "$bin" replay \
    --mutant nbd-no-retry traces/native/quorum-nbd.trace
expect_out "nbd-reconnect" "nbd violation named"
head -c 65536 /dev/zero >"$tmp/q0.raw"
head -c 65536 /dev/zero >"$tmp/q1.raw"
head -c 1000 /dev/zero >"$tmp/odd.raw"
expect_status 0 "quorum read" -- "$bin" quorum --threshold 2 --read 0:4096 "$tmp/q0.raw" \
    "$tmp/q1.raw"
expect_out '"result":"ok"' "quorum read succeeds"
expect_status 2 "quorum without reads" -- "$bin" quorum --threshold 1 "$tmp/q0.raw"
expect_err "one --read" "quorum without reads named"
expect_status 2 "quorum bad read" -- "$bin" quorum --threshold 1 --read 1:2 "$tmp/q0.raw"
expect_err "multiples of 512" "quorum bad read named"
expect_status 2 "quorum threshold too high" -- "$bin" quorum --threshold 3 --read 0:512 \
    "$tmp/q0.raw" "$tmp/q1.raw"
expect_err "threshold may not exceed children count" "quorum threshold named"
expect_status 2 "quorum odd file" -- "$bin" quorum --threshold 1 --read 0:512 "$tmp/odd.raw"
expect_err "odd.raw: size 1000" "quorum odd file named"
expect_status 2 "quorum missing file" -- "$bin" quorum --threshold 1 --read 0:512 "$tmp/nope"
expect_err "nope: cannot open" "quorum missing file named"
expect_status 2 "quorum topology error" -- "$bin" replay /dev/stdin <<<"$(printf \
    'blocksim-trace v1\ntopology quorum children=2 threshold=3\n')"

# ---- usage errors: one message, exit 2, nothing run (issue 12 items 1, 3, 14-16) ----
one_line_err() { # DESCRIPTION: stderr holds exactly one line, stdout nothing
    if [ "$(wc -l <"$tmp/err")" = 1 ] && [ ! -s "$tmp/out" ]; then ok; else
        bad "$1: wanted one error line and no output"; sed 's/^/    /' "$tmp/err" "$tmp/out" >&2; fi
}
for args in "check crash --time abc" "check crash --time -5" "check crash --timeout abc" \
            "check crash --mutant zzz" "check crash --trials=-1" "check crash --shard -1/2" \
            "check crash --jobs 0" "check crash --jobs 17" "check crash --jobs x" \
            "replay --qd x traces/native/golden.trace" "replay --size abc traces/native/golden.trace" \
            "replay --stall 5 traces/native/golden.trace" "shrink --mutant zzz --property crash x" \
            "explore --time x traces/native/golden.trace" "quorum --threshold -1 --read 0:512 x" \
            "nbd-serve --socket x --size 1M --handshake-timeout=-3" "nbd-check --port 0" \
            "replay --bogus x" "replay --seed" "replay --quiet=yes x" "convert --align sideways a b"; do
    # shellcheck disable=SC2086
    expect_status 2 "usage error: $args" -- "$bin" $args
    one_line_err "usage error: $args"
done
expect_status 2 "unknown option" -- "$bin" explore --frob traces/native/golden.trace
expect_err "^blocksim explore: unknown option '--frob' (see --help)$" "getopt errors are ours"
expect_status 2 "quorum read overflow" -- "$bin" quorum --threshold 1 \
    --read 18446744073709551104:512 "$tmp/q0.raw"
expect_err "must not overflow" "quorum overflow named"
expect_status 2 "quorum negative length" -- "$bin" quorum --threshold 1 --read 0:-512 "$tmp/q0.raw"
expect_status 2 "quorum read past the end" -- "$bin" quorum --threshold 1 --read 65536:512 \
    "$tmp/q0.raw"
expect_err "goes beyond the 65536-byte images" "quorum past the end named"
expect_status 0 "quorum --opt=value" -- "$bin" quorum --threshold=1 --read=0:4K "$tmp/q0.raw"
expect_status 0 "quorum --help" -- "$bin" quorum --help
expect_out "Exit status" "quorum --help states exit codes"
expect_status 0 "--version" -- "$bin" --version
expect_out "^blocksim [0-9]" "--version prints it"
expect_status 0 "replay -h" -- "$bin" replay -h
expect_out "usage: blocksim replay" "replay -h is help"
for c in explore shrink quorum check; do
    expect_status 0 "$c --help" -- "$bin" $c --help
    expect_out "Exit status" "$c --help states exit codes"
done
expect_status 0 "nbd-check --help" -- "$bin" nbd-check --help
expect_out "OVERWRITES" "nbd-check warns that it overwrites"
expect_status 0 "replay from stdin" -- "$bin" replay --quiet - <traces/native/golden.trace
expect_status 0 "replay <(...)" -- "$bin" replay --quiet <(cat traces/fio/sample-v3.log)
expect_status 0 "replay --seed=N" -- "$bin" replay --quiet --seed=3 traces/native/default.trace
expect_status 0 "convert from stdin" -- "$bin" convert - "$tmp/from-stdin.trace" \
    <traces/fio/sample-v2.log

# ---- input errors found before the run (items 5, 11, 16) ----
printf 'blocksim-trace v1\ntopology plain size=1024T\nwrite 0 4096\n' >"$tmp/huge.trace"
expect_status 2 "huge bitmap refused" -- "$bin" replay "$tmp/huge.trace" --bitmap x:512
expect_err "MiB of memory" "huge bitmap says how much memory"
expect_status 2 "fault on a missing disk (--faults)" -- "$bin" replay \
    --faults 'write-eio disk=d9 prob=1' traces/native/golden.trace
expect_err "names disk 'd9'.*disks: d0" "missing disk named with the ones that exist"
printf 'blocksim-trace v1\nfault read-eio disk=nope\nwrite 0 512\n' >"$tmp/nodisk.trace"
expect_status 2 "fault on a missing disk (trace)" -- "$bin" replay "$tmp/nodisk.trace"
expect_err "nodisk.trace:2: field 2: the fault rule names disk 'nope'" "trace fault disk located"
expect_status 2 "d0 in the quorum topology" -- "$bin" replay traces/native/quorum-nbd.trace \
    --faults 'read-eio disk=d0'
expect_status 2 "net rule on a missing host" -- "$bin" replay traces/native/quorum-nbd.trace \
    --faults 'net-reset host=s0 prob=1%'
printf 'blocksim-trace v1\ndisk d0 cache=1M\ndisk d0 latency=1us-2us\nwrite 0 512\n' >"$tmp/dup.trace"
expect_status 2 "duplicate disk record" -- "$bin" replay "$tmp/dup.trace"
expect_err "dup.trace:3: field 2: disk d0 is configured twice (first on line 2)" "duplicate disk located"
printf 'blocksim-trace v1\n@5 write 0 512\n' >"$tmp/unitless.trace"
expect_status 2 "@TIME without a unit" -- "$bin" replay "$tmp/unitless.trace"
printf 'blocksim-trace v1\n\033[2Jboom\n' >"$tmp/esc.trace"
expect_status 2 "escape sequences in a record" -- "$bin" replay "$tmp/esc.trace"
if grep -q $'\033' "$tmp/err"; then bad "raw escape echoed to the terminal"; else ok; fi
expect_err 'unknown record .\\x1b\[2Jboom' "escaped record named"
expect_status 0 "json without expectations" -- "$bin" replay --json traces/native/default.trace
expect_out '"expectations": "none"' "no expect record: none"

# ---- the harness's own limits are no stack failure (item 7) ----
printf 'fio version 3 iolog\n0 f add\n10 f open\n20 f write 0 4096\n3700000000 f read 0 4096\n' \
    >"$tmp/late.log"
expect_status 0 "fio log past one hour" -- "$bin" replay --quiet "$tmp/late.log"
printf 'blocksim-trace v1\nwrite 0 4096\n@1000000s crash\nrestart\nread 0 4096\n' >"$tmp/late.trace"
expect_status 0 "native trace past one hour" -- "$bin" replay --quiet "$tmp/late.trace"
printf 'blocksim-trace v1\ndisk d0 latency=2s-2s\nwrite 0 512\n' >"$tmp/slow.trace"
expect_status 1 "a stall is a liveness failure" -- "$bin" replay "$tmp/slow.trace" --stall 1s
expect_out "no progress for 1.000 s" "stall explained"
expect_status 0 "a longer --stall passes it" -- "$bin" replay --quiet "$tmp/slow.trace" --stall 3s
printf 'fio version 3 iolog\n0 f add\n1 f open\n2 f read 0 4096\n' >"$tmp/fioline.log"
printf 'fio version 2 iolog\nf add\nf wait 18446744073709551615\nf write 0 512\n' >"$tmp/wait.log"
expect_status 2 "fio v2 wait overflow" -- "$bin" replay "$tmp/wait.log"
expect_err "wait.log:3: field 3: wait 18446744073709551615 ms overflows" "wait overflow located"
printf 'fio version 2 iolog\nf add\nf write 100 1000\nf sync_file_range 0 4096\n' >"$tmp/odd.log"
expect_status 2 "unaligned fio refused" -- "$bin" replay "$tmp/odd.log"
expect_err "align round" "unaligned fio names --align"
expect_status 0 "--align round" -- "$bin" replay --quiet --align round "$tmp/odd.log"

# ---- check: nothing left behind, nothing lost (items 9, 13) ----
mkdir -p "$tmp/cwd"
(cd "$tmp/cwd" && "$bin" check crash flush-fua --trials 30 >/dev/null 2>&1)
[ -z "$(ls -A "$tmp/cwd")" ] && ok || bad "check left files in the working directory: $(ls -A "$tmp/cwd")"
(cd "$tmp/cwd" && "$bin" check crash --trials 30 --no-fork >/dev/null 2>&1)
[ -z "$(ls -A "$tmp/cwd")" ] && ok || bad "check --no-fork left files: $(ls -A "$tmp/cwd")"
# Fork mode's workers: one or three, the same failing trial, message and repro.
for j in 1 3; do
    expect_status 1 "check --jobs $j finds the planted bug" -- "$bin" check colo-view --quiet \
        --mutant repl-checkpoint-no-reset --jobs "$j" --out "$tmp/jobs$j"
    sed -e 's/ in [0-9.]* s, [0-9]* trials\/s ([0-9]* a CPU second)//' \
        -e "s|$tmp/jobs$j|OUT|" "$tmp/out" >"$tmp/jobs$j.out"
done
cmp -s "$tmp/jobs1.out" "$tmp/jobs3.out" && cmp -s "$tmp/jobs1/colo-view-1.trace" \
    "$tmp/jobs3/colo-view-1.trace" && ok || bad "check --jobs 1 and 3 differ"
expect_status 2 "check unusable --out" -- "$bin" check crash --out /nonexistent/x --mutant disk-flush-noop
expect_err "/nonexistent/x: cannot be written" "check --out checked before work"
touch "$tmp/plainfile"
expect_status 2 "check --out a file" -- "$bin" check crash --out "$tmp/plainfile"
expect_status 2 "shrink unusable --out" -- "$bin" shrink traces/native/default.trace \
    --property crash --mutant disk-flush-noop --out /nonexistent/x
[ ! -s "$tmp/out" ] && ok || bad "shrink ran before checking --out"
expect_status 1 "check --json on a failure" -- "$bin" check crash --mutant disk-flush-noop \
    --json --out "$tmp/jf"
expect_out '"seed": 1' "check json has the seed"
expect_out '"reproduce": "blocksim replay' "check json has the reproduce command"
for i in 0 1; do
    "$bin" check crash --mutant disk-flush-noop --shard $i/2 --out "$tmp/shards" >/dev/null 2>&1
done
[ "$(ls "$tmp/shards" | wc -l)" = 2 ] && ok || bad "shards overwrote each other: $(ls "$tmp/shards")"
# ^C: a partial summary, exit 130, and no failure made up from the signal.
"$bin" check crash --trials 0 --time 60 --out "$tmp/int" >"$tmp/int.out" 2>&1 &
cpid=$!
sleep 1
kill -INT $cpid
wait $cpid
st=$?
[ $st = 130 ] && grep -q "crash  *pass .*(interrupted)" "$tmp/int.out" && ok ||
    bad "check after ^C: exit $st, $(cat "$tmp/int.out")"

# ---- logs written by real fio (3.31+ writes v3: microsecond timestamps) ----
if command -v fio >/dev/null 2>&1; then
    (cd "$tmp" && fio --name=j --filename=fio.bin --size=4M --rw=randrw --bs=4k \
        --ioengine=psync --number_ios=12 --thinktime=50ms --thinktime_blocks=4 --fsync=3 \
        --write_iolog=real.log --output=/dev/null >/dev/null 2>&1)
    expect_status 0 "convert a real fio log" -- "$bin" convert "$tmp/real.log" "$tmp/real.trace"
    # thinktime 50 ms after every 4 I/Os: the 5th operation runs 50 ms after the 4th.
    gap=$(grep -E '^@[0-9]+us (read|write)' "$tmp/real.trace" | sed -n '4p;5p' |
          sed 's/^@\([0-9]*\)us.*/\1/' | paste -sd' ' | awk '{print $2 - $1}')
    [ -n "$gap" ] && [ "$gap" -ge 49000 ] && [ "$gap" -le 80000 ] && ok ||
        bad "real fio log: thinktime gap ${gap:-?} us, wanted about 50000"
    first=$(grep -m1 -E '^@' "$tmp/real.trace" | sed 's/^@\([0-9]*\)us.*/\1/')
    [ -n "$first" ] && [ "$first" -lt 5000 ] && ok || bad "real fio log: first op at ${first:-?} us"
    expect_status 0 "replay a real fio log" -- "$bin" replay --quiet "$tmp/real.log"
else
    echo "SKIP: real fio logs (no fio on PATH)" >&2
fi

# ---- images in, pattern writes, exports out (issue 13) ----
mkdir -p "$tmp/img"
python3 -c "
import random, sys
r = random.Random(5)
open(sys.argv[1], 'wb').write(bytes(r.getrandbits(8) for _ in range(1 << 20)))" "$tmp/img/base.raw"
cat >"$tmp/img/p.trace" <<'EOF'
blocksim-trace v1
disk d0 image=base.raw
write 4096 8192 pattern=0x5a
write 65536 512 pattern=0x00
write 131072 4096 pattern=0xff fua
write 200704 4096
read 0 1048576
flush
EOF
expect_status 0 "image, patterns, exports" -- "$bin" replay --quiet "$tmp/img/p.trace" \
    --export d0="$tmp/img/d0.raw" --export guest="$tmp/img/guest.raw"
# The same bytes computed outside blocksim: by Python from the image...
python3 - "$tmp/img/base.raw" "$tmp/img/py.raw" <<'EOF'
import sys
d = bytearray(open(sys.argv[1], 'rb').read())
for off, n, b in ((4096, 8192, 0x5a), (65536, 512, 0), (131072, 4096, 0xff)):
    d[off:off + n] = bytes([b]) * n
open(sys.argv[2], 'wb').write(d)
EOF
# (the unpatterned write's 4 KiB are blocksim's own content: copied over)
dd if="$tmp/img/d0.raw" of="$tmp/img/py.raw" bs=4096 skip=49 seek=49 count=1 conv=notrunc \
    status=none
cmp -s "$tmp/img/d0.raw" "$tmp/img/py.raw" && ok || bad "export d0 differs from Python's bytes"
cmp -s "$tmp/img/guest.raw" "$tmp/img/py.raw" && ok || bad "export guest differs from Python's"
# ...and by QEMU applying the same pattern writes with qemu-io.
if command -v qemu-io >/dev/null 2>&1; then
    cp "$tmp/img/base.raw" "$tmp/img/q.raw"
    qemu-io -f raw "$tmp/img/q.raw" -c 'write -P 0x5a 4096 8192' -c 'write -P 0 65536 512' \
        -c 'write -P 0xff 131072 4096' >/dev/null 2>&1
    dd if="$tmp/img/d0.raw" of="$tmp/img/q.raw" bs=4096 skip=49 seek=49 count=1 conv=notrunc \
        status=none
    cmp -s "$tmp/img/d0.raw" "$tmp/img/q.raw" && ok || bad "export d0 differs from qemu-io's image"
fi
printf 'blocksim-trace v1\ndisk d0 image=base.raw\nwrite 0 4096\nflush\ncrash plan=-\nrestart\nread 0 8192\n' \
    >"$tmp/img/c.trace"
expect_status 0 "image survives a crash" -- "$bin" replay --quiet "$tmp/img/c.trace"
expect_status 1 "a lost flushed write over an image is caught" -- "$bin" replay "$tmp/img/c.trace" \
    --mutant disk-flush-noop
expect_out "expected write #0, read the image's data" "image data named"
printf 'blocksim-trace v1\ndisk d0 image=missing.raw\nwrite 0 512\n' >"$tmp/img/m.trace"
expect_status 2 "missing image" -- "$bin" replay "$tmp/img/m.trace"
expect_err "m.trace:2: field 2: image .*missing.raw" "missing image named"
printf 'blocksim-trace v1\ndisk d0 image=base.raw size=2M\nwrite 0 512\n' >"$tmp/img/s.trace"
expect_status 2 "short image" -- "$bin" replay "$tmp/img/s.trace"
expect_err "its image has 1048576 bytes" "short image named"
expect_status 2 "export of an unknown disk" -- "$bin" replay "$tmp/img/p.trace" --export nope=x.raw
expect_err "no such disk in the plain topology (guest, d0)" "export names the disks"
printf 'blocksim-trace v1\nwrite 0 512\ncrash\n' >"$tmp/img/down.trace"
expect_status 2 "guest export with the host down" -- "$bin" replay "$tmp/img/down.trace" \
    --export guest="$tmp/img/nothing.raw"
expect_out "verdict     PASS" "the report still comes first"
[ ! -e "$tmp/img/nothing.raw" ] && ok || bad "a failed export left a file"

# ---- hosts: crash, restart and shutdown one host (issue 13) ----
expect_status 1 "a server host crash alone, caught planted bug" -- "$bin" replay \
    traces/native/quorum-host-crash.trace --mutant quorum-no-rewrite
expect_status 0 "hosts in the JSON report" -- "$bin" replay --json traces/native/quorum-host-crash.trace
expect_out '"name": "s1"' "the report lists the hosts"
printf 'blocksim-trace v1\ntopology quorum children=3 nbd=2\nwrite 0 4096\ncrash host=s9\n' \
    >"$tmp/h1.trace"
expect_status 2 "crash of an unknown host" -- "$bin" replay "$tmp/h1.trace"
expect_err "h1.trace:4: field 2: no host 's9' in the quorum topology (hosts: primary, s1, s2)" \
    "unknown host named with the hosts there are"
printf 'blocksim-trace v1\ntopology quorum children=3 nbd=2\nrestart host=s1\n' >"$tmp/h2.trace"
expect_status 2 "restart of a host that is up" -- "$bin" replay "$tmp/h2.trace"
printf 'blocksim-trace v1\ntopology quorum children=3 nbd=1\ncrash host=primary\nwrite 0 512\n' \
    >"$tmp/h3.trace"
expect_status 2 "guest I/O with its host down" -- "$bin" replay "$tmp/h3.trace"
expect_err "h3.trace:4: field 1: 'write' while the host is down" "guest host down named"

# ---- exact fault attribution: planted bugs the old coarse rules excused ----
expect_status 1 "quorum: a far fault no longer excuses a lost flush" -- "$bin" replay \
    traces/regress/quorum-attribution.trace --mutant disk-flush-noop
expect_out "replica\|crash-consistency" "quorum attribution names the violation"
expect_status 1 "overlay: a far corruption no longer excuses a skipped copy-up" -- "$bin" \
    replay traces/regress/overlay-attribution.trace --mutant overlay-no-copyup
expect_out "read-your-writes" "overlay attribution names the violation"
expect_status 1 "a fault elsewhere no longer excuses a failing commit" -- "$bin" replay \
    traces/regress/control-attribution.trace --mutant overlay-commit-fail
expect_out "commit failed" "control attribution names the action"
expect_status 0 "--mutant list" -- "$bin" replay --mutant list
expect_out "^quorum-tie-low " "--mutant list names every planted bug"
[ "$(wc -l <"$tmp/out")" -ge 17 ] && ok || bad "--mutant list is short"
expect_status 1 "a replica's lost FUA write is caught though the vote hides it" -- "$bin" replay \
    traces/regress/replica-fua.trace --mutant nbd-server-drop-fua
expect_out "violation   replica" "replica violation named"
# Each checker writes its own JSON section: the replica that lost the write
# names its violation; the vote's and the guest's checkers did not fail.
"$bin" replay --json --no-wall traces/regress/replica-fua.trace --mutant nbd-server-drop-fua \
    >"$tmp/checks.json" || true
python3 -c "
import json, sys
c = json.load(open(sys.argv[1]))['checks']
r = c['replicas']
assert [x['failed'] for x in r] == [False, False, True], r
assert r[2]['first']['property'] == 'crash-consistency' and r[2]['first']['line'] == 13, r[2]
assert not c['quorum']['failed'] and c['quorum']['threshold'] == 2 and not c['rw']['failed']
" "$tmp/checks.json" && ok || bad "json checks: one section per checker, the replica's failure"
"$bin" replay --json --no-wall traces/native/bitmaps.trace >"$tmp/checks.json"
python3 -c "
import json, sys
c = json.load(open(sys.argv[1]))['checks']
assert set(c) == {'rw', 'bitmap'}, c
assert c['bitmap']['coverage_checks'] > 0 and c['rw']['sectors_checked'] > 0, c
" "$tmp/checks.json" && ok || bad "json checks: rw and bitmap sections"
expect_status 1 "a loader that skips its checksum is caught" -- "$bin" replay \
    traces/regress/qbm-checksum.trace --mutant qbm-skip-checksum
expect_out "violation   bitmap-store" "loader violation named"
expect_status 0 "the checksum refuses a flipped bitmap file" -- "$bin" replay \
    traces/regress/qbm-checksum.trace
expect_out "checksum mismatch" "the refusal is reported"
expect_status 1 "explore: a map snapshot taken after the data flush" -- "$bin" explore \
    traces/native/overlay-flush-race.trace --mutant overlay-snapshot-late --out "$tmp/race"
expect_out "crash at device flush" "the race is found inside the flush sequence"
expect_status 0 "explore: the correct overlay survives the race" -- "$bin" explore \
    traces/native/overlay-flush-race.trace --out "$tmp/race"

# ---- block jobs ----
expect_status 1 "backup: a copy after the guest's write is caught" -- "$bin" replay \
    traces/native/backup.trace --mutant backup-cbw-late
expect_out "violation   backup-point-in-time" "backup violation named"
expect_out "target sector 392 (byte 200704) holds write #3" "the sector and the write named"
"$bin" replay --json --no-wall traces/native/backup.trace >"$tmp/jobs.json"
python3 -c "
import json, sys
d = json.load(open(sys.argv[1]))
j = d['jobs'][0]
ev = [e.get('status') or e['event'] for e in j['events']]
assert ev == ['created', 'running', 'paused', 'refused', 'running', 'waiting', 'pending',
              'BLOCK_JOB_COMPLETED', 'concluded', 'null'], ev
assert (j['id'], j['type'], j['offset'], j['len'], j['error']) == ('j1', 'backup', 1 << 20,
                                                                    1 << 20, None), j
assert d['job_refusals'] == 1 and 'cannot accept command verb' in d['job_refusal']
assert d['checks']['jobs']['sectors_checked'] == 2048 and not d['checks']['jobs']['failed']
" "$tmp/jobs.json" && ok || bad "json jobs: events, progress, refusals, the job checker"
printf 'blocksim-trace v1\ntopology overlay\ndisk tgt size=1M\njob mirror m target=tgt sync=top\n' \
    >"$tmp/mtop.trace"
expect_status 2 "mirror sync=top onto a disk without backing" -- "$bin" replay "$tmp/mtop.trace"
expect_err "mtop.trace:4: field 4: mirror sync=top" "the option is named"
for rec in 'job commit c'; do
    printf 'blocksim-trace v1\ndisk tgt size=1M\n%s\n' "$rec" >"$tmp/job.trace"
    expect_status 2 "not modelled yet: $rec" -- "$bin" replay "$tmp/job.trace"
    expect_err "job.trace:3: field" "the record is named"
done
printf 'blocksim-trace v1\ndisk tgt size=1M\njob backup b target=tgt sync=none\njob wait b concluded\nread 0 512\n' \
    >"$tmp/stuck.trace"
expect_status 0 "a job wait that cannot be satisfied is not a stack failure" -- "$bin" replay \
    "$tmp/stuck.trace"
expect_out "ended early line 4: job wait b concluded: the job is running and waits for a command" \
    "the stuck wait is explained"
# An extra disk may start from an image: the backup's copies (zero ranges
# as write-zeroes) replace it.
python3 -c "open('$tmp/timg.raw','wb').write(b'\x55'*(1<<20))"
printf 'blocksim-trace v1\ndisk tgt image=timg.raw cache=0\nwrite 0 4096 pattern=0x11\njob backup b target=tgt sync=full\njob wait b concluded\n' \
    >"$tmp/ximg.trace"
expect_status 0 "backup onto an extra disk that starts from an image" -- "$bin" replay \
    "$tmp/ximg.trace" --export "tgt=$tmp/ximg.raw"
[ "$(od -An -tx1 -N1 "$tmp/ximg.raw" | tr -d ' ')$(od -An -tx1 -N1 -j 70000 "$tmp/ximg.raw" |
    tr -d ' ')" = 1100 ] && ok || bad "the image's bytes were replaced by the copies"

# Crash-state exploration of a job's workload: the correct backup survives
# every crash state; the planted copy-after-write bug is found.
expect_status 0 "explore: a backup under guest writes" -- "$bin" explore \
    traces/native/backup.trace --time 20 --out "$tmp/xb"
expect_status 1 "explore: the planted backup bug is found" -- "$bin" explore \
    traces/native/backup.trace --time 20 --mutant backup-cbw-late --out "$tmp/xb"
expect_out "backup-point-in-time" "explore names the backup violation"

# An extra disk takes its settings (cache=0: the job's copies are durable
# when done, so the export of the durable contents holds them).
printf 'blocksim-trace v1\ndisk tgt size=1M cache=0\nwrite 0 4096 pattern=0x77\njob backup b target=tgt sync=full\njob wait b concluded\n' \
    >"$tmp/xd.trace"
expect_status 0 "backup onto an extra disk without a cache" -- "$bin" replay "$tmp/xd.trace" \
    --export "tgt=$tmp/xd.raw"
[ "$(od -An -tx1 -N1 "$tmp/xd.raw" | tr -d ' ')" = 77 ] && ok ||
    bad "the extra disk's settings apply: its durable contents hold the copy"

# Campaigns: shards write results lines; merge builds the failure database
# (one trace a distinct failure); replay says which still fail, and after a
# fix (here: the planted bug's record dropped) which are fixed.
mkdir -p "$tmp/camp"
for i in 0 1; do
    "$bin" check backup-point-in-time --trials 200 --no-fork --shard $i/2 --quiet \
        --mutant backup-cbw-late --out "$tmp/camp/out" --jsonl "$tmp/camp/s$i.jsonl" \
        >/dev/null 2>&1
done
expect_status 0 "campaign merge" -- "$bin" campaign merge "$tmp/camp" --db "$tmp/camp/db"
expect_out "backup-point-in-time .* 2 failure(s)" "merge adds the shards up"
expect_out "reproduce: blocksim replay $tmp/camp/db/backup-point-in-time-" "merge names repros"
[ -s "$tmp/camp/db/index.json" ] && ok || bad "the database has its index"
expect_status 1 "campaign replay: still failing" -- "$bin" campaign replay "$tmp/camp/db"
expect_out "still fail, 0 fixed" "replay counts what still fails"
for f in "$tmp"/camp/db/*.trace; do grep -v '^mutant ' "$f" >"$f.x" && mv "$f.x" "$f"; done
expect_status 0 "campaign replay: fixed" -- "$bin" campaign replay "$tmp/camp/db"
expect_out "0 of .* still fail" "replay says every failure is fixed"
printf '{"type":"batch","property":"x"}\nnot json\n' >"$tmp/camp/bad.jsonl"
expect_status 2 "campaign merge: a bad results line" -- "$bin" campaign merge \
    "$tmp/camp/bad.jsonl" --db "$tmp/camp/db3"
expect_err "bad.jsonl:2: not a blocksim results line" "the bad line named by file and line"
expect_status 2 "campaign merge without --db" -- "$bin" campaign merge "$tmp/camp"
expect_status 2 "check --jsonl unwritable" -- "$bin" check crash --jsonl /nonexistent/r.jsonl
expect_err "--jsonl /nonexistent/r.jsonl" "the unwritable results file named"
# The fuzz replayer's results: a crashing input (the canary's trigger) is a
# failure line; merge stores the input, replay names its target.
canary="$(dirname "$bin")/fuzz_canary_standalone"
mkdir -p "$tmp/camp/cin" && printf 'BUG!' >"$tmp/camp/cin/a" && printf 'fine' >"$tmp/camp/cin/b"
expect_status 1 "fuzz replayer with --jsonl" -- "$canary" --jsonl "$tmp/camp/fz.jsonl" \
    "$tmp/camp/cin"
expect_out "2 inputs replayed, some crashed" "the replayer goes on past a crash"
expect_status 0 "merge the fuzz results" -- "$bin" campaign merge "$tmp/camp/fz.jsonl" \
    --db "$tmp/camp/fdb"
expect_out "reproduce: $canary $tmp/camp/fdb/fuzz_canary_standalone-" "the input's target named"
expect_status 0 "replay names fuzz inputs" -- "$bin" campaign replay "$tmp/camp/fdb"
expect_out "1 fuzz input(s) to replay with their targets" "fuzz inputs counted apart"
# The CSV block traces: each sample replays (detected by content), converts
# to native; a malformed line names its line and field; a second volume
# needs --volume; unaligned ranges need --align round.
for f in msr alibaba tencent; do
    expect_status 0 "replay the $f sample" -- "$bin" replay "traces/csv/$f-sample.csv"
    expect_out "($f, plain topology)" "the $f format detected"
    expect_status 0 "convert the $f sample" -- "$bin" convert "traces/csv/$f-sample.csv" \
        "$tmp/$f.trace" --from "$f"
    expect_status 0 "replay the converted $f sample" -- "$bin" replay --quiet "$tmp/$f.trace"
done
grep -q '^@' "$tmp/msr.trace" && ok || bad "the MSR timestamps became @TIME records"
printf '128166372000000000,hm,0,Write,0,4096,1\n128166372000000001,hm,0,read,0,4096,1\n' \
    >"$tmp/bad.csv"
expect_status 2 "a malformed MSR line" -- "$bin" replay "$tmp/bad.csv" --format msr
expect_err "bad.csv:2: field 4: operation 'read': expected Read or Write" "the bad field named"
printf '1538323200,0,8,1,7\n1538323200,8,8,1,9\n' >"$tmp/two.csv"
expect_status 2 "two Tencent volumes" -- "$bin" replay "$tmp/two.csv"
expect_err "a second volume '9' (line 1 has '7'): choose one with --volume" "both volumes named"
expect_status 0 "--volume picks one" -- "$bin" replay "$tmp/two.csv" --volume 9
expect_out "operations  1 " "only that volume's records"
printf '5,W,100,4096,1577808000000626\n' >"$tmp/un.csv"
expect_status 2 "an unaligned Alibaba range" -- "$bin" replay "$tmp/un.csv"
expect_err "field 3: offset 100 is not a multiple of 512" "the unaligned field named"
expect_status 0 "--align round widens it" -- "$bin" replay "$tmp/un.csv" --align round
# blkparse text: the Q events become the operations (preflush, FUA,
# discard, empty flushes; G/I/D/C/M/U skipped; the trailer ends it).
expect_status 0 "replay the blkparse sample" -- "$bin" replay traces/blkparse/sample.txt
expect_out "(blkparse, plain topology)" "blkparse detected by content"
expect_status 0 "convert the blkparse sample" -- "$bin" convert traces/blkparse/sample.txt \
    "$tmp/bp.trace"
cat >"$tmp/bp.want" <<'TXT'
blocksim-trace v1
@0ns write 1048576 4096
@4us write 1052672 4096
@200us read 1048576 8192
@300us flush
@300us write 33554432 4096
@500us write 33558528 4096 fua
@700us discard 2097152 1048576
@1ms read 33554432 8192
@1100us read 2097152 4096
@1200us flush
TXT
cmp -s "$tmp/bp.want" "$tmp/bp.trace" && ok || bad "the blkparse sample's operations"
printf '  8,0 0 1 0.000000000 1 Q W 0 + 8 [a]\n  8,16 0 2 0.000000100 1 Q W 8 + 8 [a]\n' \
    >"$tmp/two.bp"
expect_status 2 "two blkparse devices" -- "$bin" replay "$tmp/two.bp"
expect_err "two.bp:2: field 1: a second device 8,16 (line 1 has 8,0): choose one with --volume" \
    "both devices named"
expect_status 0 "--volume picks a device" -- "$bin" replay "$tmp/two.bp" --volume 8,16
expect_out "operations  1 " "only that device's events"
printf '  8,0 0 1 0.000000000 1 Q W 0 + 8 [a]\n  8,0 0 2 0.00000010 1 Q W 8 + 8 [a]\n' \
    >"$tmp/bad.bp"
expect_status 2 "a blkparse time without 9 digits" -- "$bin" replay "$tmp/bad.bp"
expect_err "bad.bp:2: field 4: time '0.00000010': expected SECONDS.NNNNNNNNN" "its field named"
printf '  8,0 0 1 0.000000000 1 Q W 0 + 8 [a]\n  8,0 0 2 0.000000100 1 Q WX 8 + 8 [a]\n' \
    >"$tmp/bad.bp"
expect_status 2 "unknown RWBS letters" -- "$bin" replay "$tmp/bad.bp" --format blkparse
expect_err "bad.bp:2: field 7: RWBS 'WX': unknown letters" "the RWBS field named"
printf '  8,0 0 1 0.000000000 1 C W 0 + [0]\n' >"$tmp/bad.bp"
expect_status 2 "a + without a count" -- "$bin" replay "$tmp/bad.bp"
expect_err "bad.bp:1: field 8: expected SECTOR + NSEC" "the tail named"
expect_status 2 "no Q event of the device chosen" -- "$bin" replay "$tmp/two.bp" --volume 8,1
expect_err "two.bp:2: no Q event of the device --volume names" "the empty result explained"
expect_status 2 "--format checked" -- "$bin" oracle "$tmp/bad.bp" --format xyz --target nbd://x
expect_err "blocksim oracle: --format: expected native, fio, blkparse, msr, alibaba, tencent, dm-log-writes or auto, got 'xyz'" "the formats listed"
# dm-log-writes: the bundled sample is what tests/dmlog_gen.py writes; its
# entries become flushes, FUA writes, pattern writes (uniform data), a
# discard and marks; every mark is a crash point of explore's.
python3 tests/dmlog_gen.py "$tmp/sample.log"
cmp -s "$tmp/sample.log" traces/dm-log-writes/sample.log && ok ||
    bad "traces/dm-log-writes/sample.log is not what tests/dmlog_gen.py writes"
expect_status 0 "replay the dm-log-writes sample" -- "$bin" replay traces/dm-log-writes/sample.log
expect_out "(dm-log-writes, plain topology)" "dm-log-writes detected by its magic"
expect_status 0 "convert it" -- "$bin" convert traces/dm-log-writes/sample.log "$tmp/dm.trace"
cat >"$tmp/dm.want" <<'TXT'
blocksim-trace v1
write 0 4096
write 32768 4096
mark mkfs
write 1048576 8192
write 1056768 4096 pattern=0x00
flush
flush
write 65536 4096 fua
mark commit-1
discard 2097152 1048576
write 1048576 4096 fua pattern=0x5a
mark dm-log-writes-end
TXT
cmp -s "$tmp/dm.want" "$tmp/dm.trace" && ok || bad "the dm-log-writes sample's records"
grep -v '^mark' "$tmp/dm.trace" >"$tmp/nomark.trace"
expect_status 0 "explore without marks" -- "$bin" explore --quiet "$tmp/nomark.trace"
expect_out "3 crash point(s)" "the flushes and the end"
expect_status 0 "explore the log" -- "$bin" explore --quiet traces/dm-log-writes/sample.log
expect_out "6 crash point(s)" "each mark adds a crash point"
expect_status 1 "explore catches a volatile FUA after a mark" -- "$bin" explore --quiet \
    traces/dm-log-writes/sample.log --mutant disk-fua-volatile --out "$tmp/xdm"
expect_out "crash after mark commit-1 (record 9), prefix state" "the failing point named by its mark"
for v in "version:super block: version 2, expected 1" \
    "sectorsize:super block: sectorsize 1000, expected a power of two from 64 to 65536" \
    "flags:entry 1 at byte 5120: flags: unknown bits" \
    "datalen:entry 1 at byte 5120: data_len: nonzero on an entry that is not a mark" \
    "markrange:entry 1 at byte 5120: nr_sectors: a mark has no range" \
    "short:the log ends after 2 of the 3 entries its super block promises" \
    "truncated:entry 0 at byte 512: data: the log ends inside it" \
    "garbage:entry 1 at byte 5120: header: nonzero bytes after the mark text" \
    "unaligned:entry 0 at byte 64: sector: the range is not 512-aligned" \
    "magic:super block: not a dm-log-writes log"; do
    python3 tests/dmlog_gen.py "$tmp/bad.dm" "${v%%:*}"
    expect_status 2 "a dm-log-writes log with a bad ${v%%:*}" -- "$bin" replay "$tmp/bad.dm" \
        --format dm-log-writes
    expect_err "bad.dm: ${v#*:}" "the ${v%%:*} error named"
done
python3 tests/dmlog_gen.py "$tmp/un.dm" unaligned
expect_status 0 "--align round widens a 64-byte sector range" -- "$bin" convert "$tmp/un.dm" \
    "$tmp/round.trace" --align round
grep -qx 'write 0 1024' "$tmp/round.trace" && ok || bad "bytes 64..576 widened to 0..1024"
expect_status 2 "--volume refused for a log" -- "$bin" replay traces/dm-log-writes/sample.log \
    --volume 1
# A log QEMU's own blklogwrites driver writes (qemu-io) reads back as the
# operations qemu-io performed (QEMU logs FUA as a write and a flush entry,
# write-zeroes as zeroed data, and a flush on close).
rm -f "$tmp/ql.img"; truncate -s 4M "$tmp/qd.img"; : >"$tmp/ql.img"
qemu-io -f blklogwrites -c 'write -P 0xab 0 4k' -c flush -c 'write -z 16k 4k' \
    -c 'discard 64k 64k' -c 'write -f -P 0x11 128k 4k' \
    "json:{\"driver\":\"blklogwrites\",\"file\":{\"driver\":\"file\",\"filename\":\"$tmp/qd.img\"},\"log\":{\"driver\":\"file\",\"filename\":\"$tmp/ql.img\"},\"log-sector-size\":512}" \
    >/dev/null && ok || bad "qemu-io writes a dm-log-writes log"
expect_status 0 "convert QEMU's log" -- "$bin" convert "$tmp/ql.img" "$tmp/ql.trace"
printf 'blocksim-trace v1\nwrite 0 4096 pattern=0xab\nflush\nwrite 16384 4096 pattern=0x00\ndiscard 65536 65536\nwrite 131072 4096 pattern=0x11\nflush\nflush\n' \
    >"$tmp/ql.want"
cmp -s "$tmp/ql.want" "$tmp/ql.trace" && ok || bad "QEMU's log read back as qemu-io's operations"
# A quiet replay skips the content hash nobody sees, but an 'expect
# content' record still gets it judged.
printf 'blocksim-trace v1\nwrite 0 4096\nexpect content 0000000000000001\n' >"$tmp/ec.trace"
expect_status 1 "a wrong expected content fails a quiet replay" -- "$bin" replay --quiet \
    "$tmp/ec.trace"
# Export to fio: real fio replays the iolog with the same operations in the
# same order (its --debug=io queue lines); what fio cannot do is refused.
expect_status 0 "convert --to fio" -- "$bin" convert traces/native/fio-export.trace \
    "$tmp/x.iolog" --to fio --file "$tmp/fio.img"
truncate -s 4M "$tmp/fio.img"
fio --name=replay --read_iolog="$tmp/x.iolog" --ioengine=psync --replay_no_stall=1 \
    --debug=io >"$tmp/fio.dbg" 2>&1 && ok || bad "fio replays the export"
python3 - "$tmp/x.iolog" "$tmp/fio.dbg" <<'PY' && ok || bad "fio's operations differ"
import re, sys
want = []
for line in open(sys.argv[1]).read().split("\n")[1:]:
    f = line.split()
    if len(f) >= 3 and f[2] in ("read", "write", "sync"):
        want.append(f[2] if f[2] == "sync" else "%s %s %s" % (f[2], f[3], f[4]))
got = []
for line in open(sys.argv[2]):
    m = re.search(r"queue: io_u \S+: off=(0x[0-9a-f]+),len=(0x[0-9a-f]+),ddir=(\d+)", line)
    if m:
        op = {0: "read", 1: "write", 3: "sync"}.get(int(m.group(3)), "other")
        got.append(op if op == "sync" else "%s %d %d" % (op, int(m.group(1), 16),
                                                          int(m.group(2), 16)))
sys.exit(0 if want == got and len(want) == 200 else 1)
PY
expect_status 2 "convert --to fio refuses a crash" -- "$bin" convert \
    traces/native/fua-crash.trace "$tmp/y.iolog" --to fio
expect_err "has no fio iolog form" "the record fio cannot do named"
# A campaign killed mid-way keeps the failure it found: it is on disk first.
"$bin" check backup-point-in-time crash --trials 0 --time 60 --no-fork --quiet \
    --mutant backup-cbw-late --out "$tmp/camp/out" --jsonl "$tmp/camp/k.jsonl" \
    >/dev/null 2>&1 &
kpid=$!
for _ in $(seq 1 100); do
    grep -q '"type":"failure"' "$tmp/camp/k.jsonl" 2>/dev/null && break
    sleep 0.1
done
kill -9 "$kpid" 2>/dev/null; wait "$kpid" 2>/dev/null
grep -q '"type":"failure"' "$tmp/camp/k.jsonl" && ok || bad "a killed campaign lost its failure"
expect_status 0 "merge a killed campaign's results" -- "$bin" campaign merge \
    "$tmp/camp/k.jsonl" --db "$tmp/camp/db4"
expect_out "1 distinct failure" "the killed campaign's failure is in the database"

# Nothing a test ran may litter the working directory (the repository).
if [ "$had_failures_dir" = 0 ] && [ -e blocksim-failures ]; then
    bad "a test left blocksim-failures/ in the working directory: $(ls blocksim-failures)"
    rm -rf blocksim-failures
else
    ok
fi

echo "cli: $pass passed, $fail failed"
[ "$fail" = 0 ]
