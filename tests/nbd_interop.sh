#!/usr/bin/env bash
# nbd_interop.sh BLOCKSIM: blocksim's NBD server and client against real NBD
# software over Unix sockets:
#  - `blocksim nbd-serve` driven by nbdinfo, nbdsh, nbdcopy (libnbd) and by
#    qemu-io / qemu-img (QEMU's NBD client) over nbd+unix://;
#  - `blocksim nbd-check` (blocksim's client) against qemu-nbd, nbdkit's
#    memory plugin and blocksim's own server;
#  - every read compared byte for byte; the server survives garbage; the
#    recorded trace replays.
# A test whose tool is missing is reported and counted as skipped. Prints
# "nbd interop: N passed, N failed, N skipped"; exits 1 on any failure.
set -u
bin=$(realpath "${1:?usage: nbd_interop.sh BLOCKSIM}")
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    wait 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT
pass=0 fail=0 skip=0
ok() { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
have() { # TOOL WHAT: false (and a skip) when TOOL is missing
    if command -v "$1" >/dev/null 2>&1; then return 0; fi
    skip=$((skip + 1)); echo "SKIP: $2 (no $1 on PATH)" >&2; return 1
}
wait_sock() { for _ in $(seq 100); do [ -S "$1" ] && return 0; sleep 0.05; done; return 1; }

# serve NAME SIZE [ARGS...]: a blocksim server on $tmp/NAME.sock
serve() {
    local name=$1 size=$2
    shift 2
    "$bin" nbd-serve --socket "$tmp/$name.sock" --size "$size" "$@" 2>"$tmp/$name.log" &
    pids+=($!)
    wait_sock "$tmp/$name.sock" || bad "nbd-serve $name did not start: $(cat "$tmp/$name.log")"
}
uri() { echo "nbd+unix:///?socket=$tmp/$1.sock"; }

serve main 64M --trace-out "$tmp/rec.trace"
U=$(uri main)

# --- libnbd tools against blocksim's server ---
if have nbdinfo "nbdinfo against nbd-serve"; then
    if nbdinfo "$U" >"$tmp/info" 2>&1 && grep -q 'export-size: 67108864' "$tmp/info" &&
       grep -q 'base:allocation' "$tmp/info" && grep -q 'can_fua: true' "$tmp/info" &&
       grep -q 'block_size_minimum: 512' "$tmp/info"; then ok; else
        bad "nbdinfo: $(cat "$tmp/info")"; fi
fi
nbdsh_py=(env PATH=/usr/bin:$PATH nbdsh)
if have nbdsh "nbdsh against nbd-serve"; then
    cat >"$tmp/sh.py" <<'EOF'
import os
h.set_request_structured_replies(True)
h.add_meta_context("base:allocation")
h.connect_uri(os.environ["URI"])
data = os.urandom(1 << 20)
h.pwrite(data, 1 << 20)
h.pwrite(b"\xab" * 4096, 8192, nbd.CMD_FLAG_FUA)
h.zero(65536, 2 << 20)
h.trim(4096, 3 << 20)
h.flush()
assert h.pread(1 << 20, 1 << 20) == data, "pwrite/pread mismatch"
assert h.pread(4096, 8192) == b"\xab" * 4096, "FUA write lost"
assert h.pread(65536, 2 << 20) == bytes(65536), "write-zeroes not zero"
runs = []
def cb(meta, off, entries, err):
    runs.extend(zip(entries[0::2], entries[1::2]))
h.block_status(4 << 20, 0, cb)
assert sum(l for l, f in runs) <= 4 << 20 and runs[0][1] & 1, runs[:4]
h.set_strict_mode(0)  # let the server, not libnbd, judge the next requests
try:
    h.pread(512, (64 << 20) - 256)
    raise SystemExit("read past the end succeeded")
except nbd.Error as e:
    assert "command failed" in str(e) and "EINVAL" in str(e), e  # the server said so
try:
    h.pwrite(b"x" * 100, 0)
    raise SystemExit("misaligned write succeeded")
except nbd.Error as e:
    assert "command failed" in str(e) and "EINVAL" in str(e), e
assert h.pread(1 << 20, 1 << 20) == data, "data changed"
h.shutdown()
print("nbdsh ok")
EOF
    if URI=$U "${nbdsh_py[@]}" -c "exec(open('$tmp/sh.py').read())" >"$tmp/sh.out" 2>&1 &&
       grep -q 'nbdsh ok' "$tmp/sh.out"; then ok; else bad "nbdsh: $(cat "$tmp/sh.out")"; fi
fi
if have nbdcopy "nbdcopy through nbd-serve"; then
    serve copy 8M
    head -c 8M /dev/urandom >"$tmp/in.raw"
    if nbdcopy "$tmp/in.raw" "$(uri copy)" 2>"$tmp/copy.err" &&
       nbdcopy "$(uri copy)" "$tmp/out.raw" 2>>"$tmp/copy.err" && cmp -s "$tmp/in.raw" "$tmp/out.raw"
    then ok; else bad "nbdcopy round trip: $(cat "$tmp/copy.err")"; fi
fi

# --- QEMU's NBD client against blocksim's server ---
if have qemu-io "qemu-io against nbd-serve"; then
    qemu-io -f raw "$U" -c 'write -P 0x5a 16M 192k' -c 'write -z 17M 64k' \
        -c 'read -P 0x5a 16M 192k' -c 'read -P 0 17M 64k' -c 'flush' >"$tmp/qio" 2>&1
    if [ $? = 0 ] && ! grep -qi 'fail\|error' "$tmp/qio"; then ok; else
        bad "qemu-io: $(cat "$tmp/qio")"; fi
fi
if have qemu-img "qemu-img convert from nbd-serve"; then
    serve img 4M
    head -c 4M /dev/urandom >"$tmp/src.raw"
    if qemu-img convert -n -f raw -O raw "$tmp/src.raw" "$(uri img)" 2>"$tmp/img.err" &&
       qemu-img convert -f raw -O raw "$(uri img)" "$tmp/dst.raw" 2>>"$tmp/img.err" &&
       cmp -s "$tmp/src.raw" "$tmp/dst.raw"; then ok; else
        bad "qemu-img convert: $(cat "$tmp/img.err")"; fi
fi

# --- the server survives garbage, and still serves ---
if have python3 "garbage to nbd-serve"; then
    python3 - "$tmp/main.sock" <<'EOF' || bad "garbage client"
import socket, sys
for junk in (b"\0" * 4, b"\x00\x00\x00\x03" + b"NOTMAGIC" * 4, b"\xff" * 300):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); s.recv(18)
    s.sendall(junk); s.settimeout(2)
    try: s.recv(4096)
    except Exception: pass
    s.close()
EOF
    if have nbdinfo "nbdinfo after garbage"; then
        if nbdinfo --size "$U" 2>/dev/null | grep -q '^67108864$'; then ok; else
            bad "nbd-serve stopped serving after garbage"; fi
    fi
fi

# --- blocksim's client against qemu-nbd, nbdkit and blocksim ---
check_client() { # NAME SOCKET [ARGS]
    local name=$1 sock=$2
    shift 2
    if "$bin" nbd-check --socket "$sock" --ops 1500 "$@" >"$tmp/chk" 2>&1 &&
       grep -q 'every read matched' "$tmp/chk"; then ok; else bad "nbd-check $name: $(cat "$tmp/chk")"; fi
}
if have qemu-nbd "nbd-check against qemu-nbd"; then
    truncate -s 32M "$tmp/q.raw"
    qemu-nbd -t -f raw -k "$tmp/q.sock" "$tmp/q.raw" 2>"$tmp/qnbd.log" &
    pids+=($!)
    if wait_sock "$tmp/q.sock"; then
        check_client qemu-nbd "$tmp/q.sock"
        check_client "qemu-nbd (simple replies)" "$tmp/q.sock" --simple --seed 2
    else bad "qemu-nbd did not start: $(cat "$tmp/qnbd.log")"; fi
fi
if have nbdkit "nbd-check against nbdkit memory"; then
    nbdkit -f -U "$tmp/k.sock" memory 32M 2>"$tmp/kit.log" &
    pids+=($!)
    if wait_sock "$tmp/k.sock"; then check_client nbdkit "$tmp/k.sock" --seed 3; else
        bad "nbdkit did not start: $(cat "$tmp/kit.log")"; fi
fi
check_client blocksim "$tmp/main.sock" --seed 4

# --- FUA on every command (the protocol: a server that advertised SEND_FUA
# must accept the flag everywhere, even by ignoring it) ---
if have nbdsh "FUA on reads and flushes"; then
    cat >"$tmp/fua.py" <<'EOF'
import os
h.set_request_structured_replies(True)
h.add_meta_context("base:allocation")
h.connect_uri(os.environ["URI"])
h.set_strict_mode(0)  # libnbd would refuse the flag itself
h.pread(4096, 0, nbd.CMD_FLAG_FUA)
h.flush(nbd.CMD_FLAG_FUA)
h.block_status(4096, 0, lambda *a: 0, nbd.CMD_FLAG_FUA)
h.trim(4096, 0, nbd.CMD_FLAG_FUA)
h.shutdown()
print("fua ok")
EOF
    if URI=$U "${nbdsh_py[@]}" -c "exec(open('$tmp/fua.py').read())" >"$tmp/fua.out" 2>&1 &&
       grep -q 'fua ok' "$tmp/fua.out"; then ok; else bad "FUA flag: $(cat "$tmp/fua.out")"; fi
fi

# --- a large discard is recorded and replays (what blocksim writes, it reads) ---
if have qemu-io "qemu-io discard 1G"; then
    serve big 2G --trace-out "$tmp/big.trace"
    if qemu-io -f raw "$(uri big)" -c 'write -P 0x11 0 64k' -c 'discard 0 1G' \
           -c 'write -z 1G 1G' >"$tmp/bigio" 2>&1 &&
       grep -q '^discard 0 1073741824$' "$tmp/big.trace" &&
       "$bin" replay --quiet "$tmp/big.trace" 2>"$tmp/big.err"; then ok; else
        bad "1 GiB discard recorded and replayed: $(cat "$tmp/bigio" "$tmp/big.err")"; fi
fi

# --- a hundred idle clients in the handshake do not shut others out; the
# handshake timeout closes them; a connection limit refuses with a log line ---
if have nbdinfo "idle clients and limits"; then
    serve idle 1M --handshake-timeout 2
    python3 - "$tmp/idle.sock" <<'EOF' >"$tmp/idle.out" 2>&1
import socket, subprocess, sys, time
socks = []
for i in range(100):
    s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); socks.append(s)
r = subprocess.run(["nbdinfo", "--size", "nbd+unix:///?socket=" + sys.argv[1]],
                   capture_output=True, text=True, timeout=10)
assert r.returncode == 0 and r.stdout.strip() == "1048576", r
time.sleep(3)
closed = 0
for s in socks:
    s.settimeout(1)
    try:
        while s.recv(4096):
            pass
        closed += 1
    except OSError:
        pass
assert closed == 100, "%d of 100 idle clients closed by the handshake timeout" % closed
print("idle ok")
EOF
    grep -q 'idle ok' "$tmp/idle.out" && ok || bad "idle clients: $(cat "$tmp/idle.out")"
    grep -q 'handshake not finished within 2000 ms' "$tmp/idle.log" && ok ||
        bad "no log line for the handshake timeout"
    serve lim 1M --max-connections 2
    python3 - "$tmp/lim.sock" <<'EOF' >"$tmp/lim.out" 2>&1
import socket, sys, time
socks = [socket.socket(socket.AF_UNIX) for _ in range(3)]
for s in socks:
    s.connect(sys.argv[1])
    time.sleep(0.2)
socks[2].settimeout(2)
print("third got", len(socks[2].recv(100)), "bytes")
EOF
    grep -q 'third got 0 bytes' "$tmp/lim.out" && grep -q 'connection refused: 2 connections open' \
        "$tmp/lim.log" && ok || bad "connection limit: $(cat "$tmp/lim.out" "$tmp/lim.log")"
fi

# --- the socket path: never replace a file, nor a live server's socket ---
echo precious >"$tmp/keep"
"$bin" nbd-serve --socket "$tmp/keep" --size 1M >/dev/null 2>"$tmp/e4"
[ $? = 2 ] && grep -q 'not a socket' "$tmp/e4" && [ "$(cat "$tmp/keep")" = precious ] && ok ||
    bad "nbd-serve on a regular file: $(cat "$tmp/e4")"
"$bin" nbd-serve --socket "$tmp/main.sock" --size 1M >/dev/null 2>"$tmp/e5"
[ $? = 2 ] && grep -q 'another server is listening' "$tmp/e5" && ok ||
    bad "nbd-serve on a live socket: $(cat "$tmp/e5")"

# --- usage errors, and the recorded trace replays ---
"$bin" nbd-serve --socket "$tmp/x.sock" >/dev/null 2>"$tmp/e1"
[ $? = 2 ] && grep -q -- '--size' "$tmp/e1" && ok || bad "nbd-serve without --size"
"$bin" nbd-check --socket "$tmp/none.sock" >/dev/null 2>"$tmp/e2"
[ $? = 2 ] && grep -q 'none.sock' "$tmp/e2" && ok || bad "nbd-check to nothing: $(cat "$tmp/e2")"
"$bin" nbd-serve --socket a --port 1 --size 1M >/dev/null 2>"$tmp/e3"
[ $? = 2 ] && grep -q 'exactly one' "$tmp/e3" && ok || bad "nbd-serve with two addresses"
if [ "$(grep -c '^write' "$tmp/rec.trace")" -gt 0 ] &&
   "$bin" replay --quiet "$tmp/rec.trace" >/dev/null 2>"$tmp/rep.err"; then ok; else
    bad "recorded trace: $(head -c 300 "$tmp/rep.err")"; fi

echo "nbd interop: $pass passed, $fail failed, $skip skipped"
[ "$fail" = 0 ]
