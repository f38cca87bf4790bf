#!/usr/bin/env bash
# oracle_test.sh BLOCKSIM: `blocksim oracle` against real NBD servers
# through libnbd. The interop matrix (qemu-nbd over raw and qcow2, nbdkit
# memory and file, blocksim's own nbd-serve) must agree on a mixed
# workload; a target that drops writes behind the client's back must
# diverge (named with the expected writer's trace line), one whose requests
# fail (nbdkit's error filter) must be reported as failed requests, not as
# divergences; records a target cannot perform are refused up front. Queue
# depths up to 32, and dirty bitmaps read through qemu:dirty-bitmap:NAME.
set -u
bin=$(readlink -f "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
trace=$here/traces/native/oracle.trace
for t in qemu-nbd nbdkit qemu-img; do
    command -v "$t" >/dev/null 2>&1 || { echo "oracle test: SKIP ($t not found)"; exit 0; }
done
tmp=$(mktemp -d /tmp/blocksim-oracle.XXXXXX)
srv=
qsrv=
trap '[ -n "$srv" ] && kill "$srv" 2>/dev/null; [ -n "$qsrv" ] && kill "$qsrv" 2>/dev/null
      rm -rf "$tmp"' EXIT
pass=0
fail=0
check() { # WANT-EXIT DESCRIPTION PATTERN -- CMD...
    local want=$1 what=$2 pat=$3
    shift 4
    "$@" >"$tmp/out" 2>"$tmp/err"
    local got=$?
    if [ "$got" = "$want" ] && grep -q -- "$pat" "$tmp/out" "$tmp/err"; then
        pass=$((pass + 1))
    else
        fail=$((fail + 1))
        echo "oracle test: FAIL: $what (exit $got, wanted $want; '$pat')" >&2
        sed 's/^/    /' "$tmp/out" "$tmp/err" >&2
    fi
}
truncate -s 4M "$tmp/raw.img" "$tmp/file.img"
qemu-img create -q -f qcow2 "$tmp/img.qcow2" 4M
check 0 "qemu-nbd raw" "AGREE" -- "$bin" oracle "$trace" --target "qemu-nbd:$tmp/raw.img"
check 0 "qemu-nbd qcow2" "AGREE" -- "$bin" oracle "$trace" \
    --target "qemu-nbd:$tmp/img.qcow2?format=qcow2"
check 0 "nbdkit memory" "AGREE" -- "$bin" oracle "$trace" --target "nbdkit:memory 4M"
check 0 "nbdkit file" "AGREE" -- "$bin" oracle "$trace" --target "nbdkit:file $tmp/file.img"
"$bin" nbd-serve --socket "$tmp/bs.sock" --size 4M --quiet &
srv=$!
for _ in $(seq 1 50); do [ -S "$tmp/bs.sock" ] && break; sleep 0.1; done
check 0 "blocksim nbd-serve (self-test)" '"verdict": "pass"' -- "$bin" oracle "$trace" \
    --target "nbd+unix:///?socket=$tmp/bs.sock" --json
# A target that drops the writes at offset 0 behind the client's back.
truncate -s 4M "$tmp/lossy.raw"
cat >"$tmp/lossy.sh" <<SH
#!/bin/bash
f=$tmp/lossy.raw
case "\$1" in
    get_size) stat -c %s \$f ;;
    can_write|can_flush) exit 0 ;;
    pread) dd if=\$f skip=\$4 count=\$3 iflag=skip_bytes,count_bytes status=none ;;
    pwrite) if [ "\$4" = 0 ]; then cat >/dev/null
            else dd of=\$f seek=\$4 conv=notrunc oflag=seek_bytes status=none; fi ;;
    flush) exit 0 ;;
    *) exit 2 ;;
esac
SH
chmod +x "$tmp/lossy.sh"
printf 'blocksim-trace v1\ntopology plain size=4M\nwrite 4096 4096\nwrite 0 4096\nread 0 8192\n' \
    >"$tmp/l.trace"
check 1 "a target that loses writes diverges" "expected write #1 (trace line 4)" -- \
    "$bin" oracle "$tmp/l.trace" --target "nbdkit:sh $tmp/lossy.sh"
# A target whose data changes behind the client's back: a byte of sector 8
# flips on the way out; the divergence shows the unknown bytes.
cat >"$tmp/flip.sh" <<SH
#!/bin/bash
f=$tmp/lossy.raw
case "\$1" in
    get_size) stat -c %s \$f ;;
    can_write|can_flush) exit 0 ;;
    pread) dd if=\$f skip=\$4 count=\$3 iflag=skip_bytes,count_bytes status=none |
           if [ "\$4" = 4096 ]; then python3 -c 'import sys; b = bytearray(sys.stdin.buffer.read()); b[0] ^= 0x40; sys.stdout.buffer.write(b)'; else cat; fi ;;
    pwrite) dd of=\$f seek=\$4 conv=notrunc oflag=seek_bytes status=none ;;
    flush) exit 0 ;;
    *) exit 2 ;;
esac
SH
chmod +x "$tmp/flip.sh"
printf 'blocksim-trace v1\ntopology plain size=4M\nwrite 4096 4096\nflush\nread 4096 4096\n' \
    >"$tmp/f.trace"
check 1 "a target whose data changes behind its back" "sector 8 (byte 4096) holds garbage \[" -- \
    "$bin" oracle "$tmp/f.trace" --target "nbdkit:sh $tmp/flip.sh"
check 1 "failed requests are not divergences" "0 divergence(s), 1 failed request" -- \
    "$bin" oracle "$trace" \
    --target "nbdkit:--filter=error memory 4M error-pwrite-rate=20% error-pwrite=EIO"
# Queue depth: requests in flight at once (a request waits for overlapping
# ones), from --qd or the trace's qd records; every target still agrees and
# a lossy one still diverges. (How deep the queue gets depends on when the
# server answers: more than one in flight is what is asserted.)
truncate -s 4M "$tmp/raw8.img"
check 0 "qemu-nbd raw at qd 8" "up to [2-8] in flight" -- "$bin" oracle "$trace" \
    --target "qemu-nbd:$tmp/raw8.img" --qd 8
check 0 "nbdkit memory at qd 32" "up to \([2-9]\|[12][0-9]\|3[0-2]\) in flight" -- "$bin" oracle "$trace" \
    --target "nbdkit:memory 4M" --qd 32
check 0 "nbd-serve at qd 16" '"in_flight_max": \([2-9]\|1[0-6]\)' -- "$bin" oracle "$trace" \
    --target "nbd+unix:///?socket=$tmp/bs.sock" --qd 16 --json
check 1 "a lossy target at qd 4" "expected write #1 (trace line 4)" -- \
    "$bin" oracle "$tmp/l.trace" --target "nbdkit:sh $tmp/lossy.sh" --qd 4
# A server that dies in the middle of a read: the break is reported with
# the earliest request it caught, nothing hangs.
cat >"$tmp/die.sh" <<SH
#!/bin/bash
f=$tmp/lossy.raw
case "\$1" in
    get_size) stat -c %s \$f ;;
    can_write|can_flush) exit 0 ;;
    pread) if [ "\$3" = 8192 ]; then kill -9 \$PPID; sleep 1; fi
           dd if=\$f skip=\$4 count=\$3 iflag=skip_bytes,count_bytes status=none ;;
    pwrite) dd of=\$f seek=\$4 conv=notrunc oflag=seek_bytes status=none ;;
    flush) exit 0 ;;
    *) exit 2 ;;
esac
SH
chmod +x "$tmp/die.sh"
printf 'blocksim-trace v1\nqd 4\nwrite 4096 4096\nwrite 8192 4096\nread 0 8192\nread 4096 4096\nwrite 65536 4096\n' \
    >"$tmp/die.trace"
check 1 "a server that dies" "the connection broke .* the earliest from trace line [3-7]" -- \
    "$bin" oracle "$tmp/die.trace" --target "nbdkit:sh $tmp/die.sh"
check 2 "--qd bounded" "--qd" -- "$bin" oracle "$trace" --target "nbdkit:memory 4M" --qd 257
# Dirty bitmaps: qemu-nbd over qcow2 gets the trace's bitmap added and
# exported, and its bits must be exactly the granules written (the trace's
# qd record runs it at queue depth 8). A disabled bitmap misses writes; a
# coarser one shows dirty granules nothing wrote; both are found.
btrace=$here/traces/native/oracle-bitmap.trace
qemu-img create -q -f qcow2 "$tmp/bm.qcow2" 4M
check 0 "qemu-nbd's dirty bitmap agrees" "b0: 64 granule(s) of 65536 bytes, 0 difference" -- \
    "$bin" oracle "$btrace" --bitmap b0 --target "qemu-nbd:$tmp/bm.qcow2?format=qcow2"
grep -q "up to [2-8] in flight" "$tmp/out" && pass=$((pass + 1)) ||
    { fail=$((fail + 1)); echo "oracle test: FAIL: the trace's qd 8 was not used" >&2; }
qemu-img create -q -f qcow2 "$tmp/off.qcow2" 4M
qemu-img bitmap --add -g 65536 "$tmp/off.qcow2" b0
qemu-img bitmap --disable "$tmp/off.qcow2" b0
qemu-nbd -t -f qcow2 -k "$tmp/off.sock" -B b0 "$tmp/off.qcow2" &
qsrv=$!
for _ in $(seq 1 50); do [ -S "$tmp/off.sock" ] && break; sleep 0.1; done
check 1 "a bitmap that misses writes" "bytes 0+65536 (granularity 65536) are clean, but trace line 27 wrote there" -- \
    "$bin" oracle "$btrace" --bitmap b0 --target "nbd+unix:///?socket=$tmp/off.sock"
kill "$qsrv"; wait "$qsrv" 2>/dev/null
qemu-img create -q -f qcow2 "$tmp/big.qcow2" 4M
qemu-img bitmap --add -g 1048576 "$tmp/big.qcow2" b0
qemu-nbd -t -f qcow2 -k "$tmp/big.sock" -B b0 "$tmp/big.qcow2" &
qsrv=$!
for _ in $(seq 1 50); do [ -S "$tmp/big.sock" ] && break; sleep 0.1; done
check 1 "a coarser bitmap" "are dirty, but nothing the trace did touched them" -- \
    "$bin" oracle "$btrace" --bitmap b0 --target "nbd+unix:///?socket=$tmp/big.sock"
sed 's/ b0 / b1 /' "$btrace" >"$tmp/b1.trace"
check 2 "a target without the bitmap" "does not export qemu:dirty-bitmap:b1" -- \
    "$bin" oracle "$tmp/b1.trace" --bitmap b1 --target "nbd+unix:///?socket=$tmp/big.sock"
kill "$qsrv"; wait "$qsrv" 2>/dev/null
check 2 "--bitmap needs the trace's add" "the trace adds no bitmap b0" -- \
    "$bin" oracle "$trace" --bitmap b0 --target "nbdkit:memory 4M"
check 2 "--bitmap on a raw qemu-nbd image" "qemu-img bitmap --add b0 failed" -- \
    "$bin" oracle "$btrace" --bitmap b0 --target "qemu-nbd:$tmp/raw8.img"
check 2 "bitmap records without --bitmap" "line 12: 'bitmap' cannot be performed" -- \
    "$bin" oracle "$btrace" --target "nbdkit:memory 4M"
# Crashes: a server the oracle starts is killed (SIGKILL) and started again
# over the same image; flushed and FUA writes must survive. qemu-nbd (raw,
# qcow2) and nbdkit's file plugin agree; nbdkit's memory plugin forgets
# everything and is caught. A target the oracle did not start cannot crash.
ctrace=$here/traces/native/oracle-crash.trace
truncate -s 4M "$tmp/c.raw" "$tmp/cf.img"
qemu-img create -q -f qcow2 "$tmp/c.qcow2" 4M
check 0 "qemu-nbd raw survives kill -9" "crashes     3" -- "$bin" oracle "$ctrace" \
    --target "qemu-nbd:$tmp/c.raw"
check 0 "qemu-nbd qcow2 survives kill -9" "AGREE" -- "$bin" oracle "$ctrace" \
    --target "qemu-nbd:$tmp/c.qcow2?format=qcow2"
check 0 "nbdkit file survives kill -9" "AGREE" -- "$bin" oracle "$ctrace" \
    --target "nbdkit:file $tmp/cf.img"
check 1 "nbdkit memory loses flushed writes" \
    "line 4[3-9]: read .* expected write #[0-9]* (trace line [0-9]*) (durable before" -- \
    "$bin" oracle "$ctrace" --target "nbdkit:memory 4M"
check 1 "the JSON report gives the violation as replay's" '"property": "crash-consistency"' -- \
    "$bin" oracle "$ctrace" --target "nbdkit:memory 4M" --json
check 2 "--writes-only-below guards the rest of the target" \
    "line 7: write at 1093632+8192 reaches byte 1048576 (--writes-only-below)" -- \
    "$bin" oracle "$trace" --target "nbdkit:memory 4M" --writes-only-below 1M
printf 'blocksim-trace v1\nwrite 0 4096\nzero 8192 4096\nread 0 16384\nread 1048576 4096\n' \
    >"$tmp/g.trace"
check 0 "reads above the guard see the original data" "AGREE" -- \
    "$bin" oracle "$tmp/g.trace" --target "nbdkit:memory 4M" --writes-only-below 64K
printf 'blocksim-trace v1\nwrite 0 512\ncrash\nrestart\n' >"$tmp/c.trace"
check 2 "a crash of a target it did not start" "line 3: 'crash': only a server the oracle starts" -- \
    "$bin" oracle "$tmp/c.trace" --target "nbd+unix:///?socket=$tmp/bs.sock"
printf 'blocksim-trace v1\nwrite 0 512\ncrash\nread 0 512\nrestart\n' >"$tmp/c.trace"
check 2 "a crash without its restart" "followed by a restart before the next operation" -- \
    "$bin" oracle "$tmp/c.trace" --target "nbdkit:memory 4M"
printf 'blocksim-trace v1\nwrite 0 512\n@1ms crash\nrestart\n' >"$tmp/c.trace"
check 2 "a timed crash" "without @TIME" -- \
    "$bin" oracle "$tmp/c.trace" --target "nbdkit:memory 4M"
check 2 "a restart without a crash" "line 2: 'restart': a restart must follow a crash" -- \
    "$bin" oracle <(printf 'blocksim-trace v1\nrestart\n') --target "nbdkit:memory 4M"
check 2 "qemu-nbd target options" "qemu-nbd targets take format= and cache=" -- \
    "$bin" oracle "$trace" --target "qemu-nbd:$tmp/c.raw?fmt=raw"
printf 'blocksim-trace v1\nwrite 8388608 512\n' >"$tmp/r.trace"
check 2 "beyond the target" "goes beyond the target" -- \
    "$bin" oracle "$tmp/r.trace" --target "nbdkit:memory 4M"
check 2 "an unreachable target" "--target" -- \
    "$bin" oracle "$trace" --target "nbd+unix:///?socket=$tmp/none.sock"
echo "oracle test: $pass passed, $fail failed (qemu-nbd raw and qcow2, nbdkit memory and" \
     "file, blocksim nbd-serve agree at qd 1 to 32; a lossy target diverges; failed" \
     "requests reported; qemu-nbd's dirty bitmap agrees, a disabled or coarser one does not;" \
     "killed qemu-nbd and nbdkit file keep what was flushed, nbdkit memory does not)"
[ "$fail" = 0 ]
