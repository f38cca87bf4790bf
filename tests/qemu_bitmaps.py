#!/usr/bin/env python3
"""qemu_bitmaps.py BLOCKSIM [CASES]: cross-check blocksim's dirty bitmaps
against QEMU's own.

For each case a seeded list of writes, write-zeroes and discards (512-byte
aligned, many straddling granularity boundaries, image sizes that are not
always a multiple of the granularity) goes

  - through QEMU: a qcow2 image with a persistent bitmap of granularity G
    (qemu-img bitmap --add -g G), the requests issued by qemu-io, the bitmap
    read back through qemu-nbd -B and nbdinfo --map=qemu:dirty-bitmap:NAME;
  - through blocksim: `blocksim replay TRACE --bitmap NAME:G --json`.

The dirty extents (adjacent ones merged) must be equal. Every third case
makes its first request, a write, fail with EIO (blkdebug under the qcow2
node in QEMU, a write-eio fault rule in blocksim): QEMU marks the bitmap for
a failed write too, and so must blocksim. Prints one line per
disagreement with the requests that led to it; exits 1 on any, 0 when all
agree, and 0 with a SKIP line when the QEMU tools are missing.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

GRANULARITIES = [512, 4096, 65536, 131072]
MIB = 1 << 20


def tools_missing():
    return [t for t in ("qemu-img", "qemu-io", "qemu-nbd", "nbdinfo") if not shutil.which(t)]


def make_case(seed):
    rng = random.Random(seed)
    gran = GRANULARITIES[seed % len(GRANULARITIES)]
    size = MIB + 512 * rng.choice([0, 0, 1, 3, 127])
    ops = []
    for _ in range(rng.randint(1, 12)):
        kind = rng.choice(["write", "write", "write", "zero", "discard"])
        if rng.random() < 0.6:  # straddle a granule boundary
            edge = rng.randrange(1, size // gran + 1) * gran
            off = max(0, edge - 512 * rng.randint(1, 3))
        else:
            off = rng.randrange(0, size // 512) * 512
        length = 512 * rng.randint(1, 2 * max(1, gran // 512) + 2)
        length = min(length, size - off)
        if length > 0:
            ops.append((kind, off, length))
    fail_first = seed % 3 == 0
    if fail_first:
        ops[0] = ("write",) + ops[0][1:]
    return gran, size, ops, fail_first


def merge(extents):
    out = []
    for off, length in extents:
        if out and out[-1][0] + out[-1][1] == off:
            out[-1][1] += length
        else:
            out.append([off, length])
    return out


def qemu_extents(tmp, gran, size, ops, fail_first):
    img = os.path.join(tmp, "x.qcow2")
    if os.path.exists(img):
        os.unlink(img)
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", img, str(size)], check=True)
    subprocess.run(["qemu-img", "bitmap", "--add", "-g", str(gran), img, "b0"], check=True)
    cmds = []
    for kind, off, length in ops:
        cmds += ["-c", {"write": "write -P 0xa5 %d %d", "zero": "write -z %d %d",
                        "discard": "discard %d %d"}[kind] % (off, length)]
    if fail_first:
        target = ["json:" + json.dumps({"driver": "qcow2", "file": {
            "driver": "blkdebug", "inject-error": [{"event": "write_aio", "errno": 5,
                                                    "once": True}],
            "image": {"driver": "file", "filename": img}}})]
    else:
        target = ["-f", "qcow2", img]
    subprocess.run(["qemu-io", "-t", "writeback"] + target + cmds, check=not fail_first,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    out = subprocess.run(["nbdinfo", "--map=qemu:dirty-bitmap:b0", "--", "[", "qemu-nbd",
                          "-r", "-f", "qcow2", "-B", "b0", img, "]"], check=True,
                         capture_output=True, text=True).stdout
    dirty = []
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 3 and f[2] == "1":
            dirty.append([int(f[0]), int(f[1])])
    return merge(dirty)


def blocksim_extents(tmp, blocksim, gran, size, ops, fail_first):
    path = os.path.join(tmp, "x.trace")
    with open(path, "w") as t:
        t.write("blocksim-trace v1\ntopology plain size=%d\n" % size)
        if fail_first:
            t.write("fault write-eio disk=d0 nth=1 times=1\n")
        for kind, off, length in ops:
            t.write("%s %d %d\n" % (kind, off, length))
    out = subprocess.run([blocksim, "replay", path, "--bitmap", "b0:%d" % gran, "--json",
                          "--no-wall"], capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError("blocksim replay failed (%d): %s" % (out.returncode, out.stderr))
    report = json.loads(out.stdout)
    if fail_first and report["errors"]["write"] != 1:
        raise RuntimeError("blocksim: the injected write error did not fire")
    maps = report["bitmaps"]
    return merge([list(e) for e in maps[0]["extents"]])


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: qemu_bitmaps.py BLOCKSIM [CASES]")
    blocksim = sys.argv[1]
    cases = int(sys.argv[2]) if len(sys.argv) > 2 else 24
    missing = tools_missing()
    if missing:
        print("qemu cross-check: SKIP (missing %s; `make bootstrap` installs them)"
              % ", ".join(missing))
        return 0
    bad = 0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in range(1, cases + 1):
            gran, size, ops, fail_first = make_case(seed)
            want = qemu_extents(tmp, gran, size, ops, fail_first)
            got = blocksim_extents(tmp, blocksim, gran, size, ops, fail_first)
            if want != got:
                bad += 1
                print("qemu cross-check: case %d (granularity %d, size %d) disagrees" %
                      (seed, gran, size))
                print("  requests: %s%s" % (ops, " (the first fails)" if fail_first else ""))
                print("  QEMU:     %s" % want)
                print("  blocksim: %s" % got)
    grans = ", ".join(str(g) for g in GRANULARITIES)
    print("qemu cross-check: %d of %d cases agree with QEMU %s (granularities %s; %d with "
          "a failed first write)" % (cases - bad, cases, qemu_version(), grans, cases // 3))
    return 1 if bad else 0


def qemu_version():
    out = subprocess.run(["qemu-img", "--version"], capture_output=True, text=True).stdout
    return out.split()[2] if out else "?"


if __name__ == "__main__":
    sys.exit(main())
