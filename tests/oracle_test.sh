#!/usr/bin/env bash
# oracle_test.sh BLOCKSIM: `blocksim oracle` against real NBD servers
# through libnbd. The interop matrix (qemu-nbd over raw and qcow2, nbdkit
# memory and file, blocksim's own nbd-serve) must agree on a mixed
# workload; a target that drops writes behind the client's back must
# diverge (named with the expected writer's trace line), one whose requests
# fail (nbdkit's error filter) must be reported as failed requests, not as
# divergences; records a target cannot perform are refused up front.
set -u
bin=$(readlink -f "$1")
here=$(cd "$(dirname "$0")/.." && pwd)
trace=$here/traces/native/oracle.trace
for t in qemu-nbd nbdkit qemu-img; do
    command -v "$t" >/dev/null 2>&1 || { echo "oracle test: SKIP ($t not found)"; exit 0; }
done
tmp=$(mktemp -d /tmp/blocksim-oracle.XXXXXX)
srv=
trap '[ -n "$srv" ] && kill "$srv" 2>/dev/null; rm -rf "$tmp"' EXIT
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
check 1 "failed requests are not divergences" "0 divergence(s), 1 failed request" -- \
    "$bin" oracle "$trace" \
    --target "nbdkit:--filter=error memory 4M error-pwrite-rate=20% error-pwrite=EIO"
printf 'blocksim-trace v1\nwrite 0 512\ncrash\nrestart\n' >"$tmp/c.trace"
check 2 "a crash cannot be performed" "line 3: 'crash' cannot be performed" -- \
    "$bin" oracle "$tmp/c.trace" --target "nbdkit:memory 4M"
printf 'blocksim-trace v1\nwrite 8388608 512\n' >"$tmp/r.trace"
check 2 "beyond the target" "goes beyond the target" -- \
    "$bin" oracle "$tmp/r.trace" --target "nbdkit:memory 4M"
check 2 "an unreachable target" "--target" -- \
    "$bin" oracle "$trace" --target "nbd+unix:///?socket=$tmp/none.sock"
echo "oracle test: $pass passed, $fail failed (qemu-nbd raw and qcow2, nbdkit memory and" \
     "file, blocksim nbd-serve agree; a lossy target diverges; failed requests reported)"
[ "$fail" = 0 ]
