#!/usr/bin/env bash
# bench_qemu_io.sh BLOCKSIM [OPS]: the same trace through `blocksim replay
# --quiet` (every read verified) and through qemu-io (-t writeback, a raw
# file), side by side: OPS (default 100000) random 4 KiB reads and writes
# over 1 GiB, as a fio v2 iolog for blocksim and as qemu-io commands on its
# standard input. Prints both rates and their ratio (the performance
# issue's goal: 50x). Wall time, the fastest of three runs each.
set -eu
bin=$(readlink -f "$1")
ops=${2:-100000}
command -v qemu-io >/dev/null || { echo "qemu-io side by side: SKIP (no qemu-io)"; exit 0; }
tmp=$(mktemp -d /tmp/blocksim-bench-qio.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
python3 - "$ops" "$tmp/w.iolog" "$tmp/w.qio" <<'PY'
import random, sys
n = int(sys.argv[1])
r = random.Random(17)
with open(sys.argv[2], "w") as fio, open(sys.argv[3], "w") as qio:
    fio.write("fio version 2 iolog\n/dev/b add\n/dev/b open\n")
    for i in range(n):
        off = r.randrange(262144) * 4096
        if r.random() < 0.5:
            fio.write("/dev/b write %d 4096\n" % off)
            qio.write("write -P %d %d 4096\n" % (i % 255 + 1, off))
        else:
            fio.write("/dev/b read %d 4096\n" % off)
            qio.write("read %d 4096\n" % off)
    fio.write("/dev/b close\n")
PY
now() { date +%s.%N; }
# Each side runs three times, alternating, and its fastest run counts: a
# single run here may take 3x as long when the kernel must compact memory
# for the huge pages that both the simulator and qemu-io's page cache use.
times=()
for round in 1 2 3; do
    t0=$(now)
    "$bin" replay --quiet --size 1G "$tmp/w.iolog"
    t1=$(now)
    rm -f "$tmp/q.img" && truncate -s 1G "$tmp/q.img"
    t2=$(now)
    qemu-io -f raw -t writeback "$tmp/q.img" <"$tmp/w.qio" >/dev/null
    t3=$(now)
    times+=("$t0" "$t1" "$t2" "$t3")
done
python3 - "$ops" "${times[@]}" <<'PY'
import sys
n = int(sys.argv[1]); t = list(map(float, sys.argv[2:]))
rb = [t[i + 1] - t[i] for i in range(0, len(t), 4)]
rq = [t[i + 3] - t[i + 2] for i in range(0, len(t), 4)]
sb, sq = min(rb), min(rq)
runs = lambda r: ", ".join("%.3f" % x for x in r)
print("%-28s %9d ops %7.3f s %10.0f ops/s (every read verified; runs %s s)"
      % ("replay, fio v2 1 GiB", n, sb, n / sb, runs(rb)))
print("%-28s %9d ops %7.3f s %10.0f ops/s (-t writeback, raw file; runs %s s)"
      % ("qemu-io, same trace", n, sq, n / sq, runs(rq)))
print("%-28s %.1fx (goal 50x; fastest run of three each)" % ("blocksim / qemu-io", sq / sb))
PY
