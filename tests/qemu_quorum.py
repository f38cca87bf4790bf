#!/usr/bin/env python3
"""qemu_quorum.py BLOCKSIM [CASES]: cross-check blocksim's quorum driver
against QEMU's.

Each case makes three raw images of 0xAA, corrupts a sector of some of
them inside the range to be read (the same few byte values, so corrupted
children can agree with each other and ties happen), may make one child
fail its reads with EIO, and picks vote-threshold, read-pattern and
rewrite-corrupted. Then the same read goes

  - through QEMU: qemu-io -c "read -v OFF LEN" on a json: quorum filename
    (a failing child is a blkdebug node with an inject-error rule);
  - through blocksim: `blocksim quorum` on copies of the images (a failing
    child gets a read-eio fault rule).

They must agree on whether the read succeeds and on every byte it
returned. With rewrite-corrupted, the images must be equal afterwards,
and the children blocksim reported as disagreeing (QUORUM_REPORT_BAD
without an error) must be exactly the children QEMU rewrote; the child
that failed must be reported with an error. (qemu-io has no monitor, so
QEMU's events themselves cannot be seen; the rewrite shows the losers.)
Prints one line per disagreement; exits 1 on any, 0 when all agree, and 0
with a SKIP line when qemu-io is missing. With --mutant NAME, blocksim runs
with that planted bug and the script exits 0 only if some case disagrees
(the cross-check can fail).
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

SIZE = 64 * 1024
SECTOR = 512


def make_case(seed):
    rng = random.Random(seed)
    first = rng.randrange(0, 16)
    sectors = rng.randint(1, 8)
    corrupt = []
    for _ in range(3):
        if rng.random() < 0.45:
            corrupt.append((first + rng.randrange(sectors), rng.choice([0x11, 0x22])))
        else:
            corrupt.append(None)
    fail = rng.randrange(3) if rng.random() < 0.3 else None
    threshold = rng.randint(1, 3)
    fifo = rng.random() < 0.25
    rewrite = not fifo and rng.random() < 0.5
    return dict(off=first * SECTOR, len=sectors * SECTOR, corrupt=corrupt, fail=fail,
                threshold=threshold, fifo=fifo, rewrite=rewrite)


def write_images(d, case, tag):
    paths = []
    for i, c in enumerate(case["corrupt"]):
        data = bytearray([0xAA]) * SIZE
        if c:
            data[c[0] * SECTOR:(c[0] + 1) * SECTOR] = bytes([c[1]]) * SECTOR
        p = os.path.join(d, "%s%d.raw" % (tag, i))
        with open(p, "wb") as f:
            f.write(data)
        paths.append(p)
    return paths


def qemu_filename(case, paths):
    children = []
    for i, p in enumerate(paths):
        proto = {"driver": "file", "filename": p}
        if case["fail"] == i:
            proto = {"driver": "blkdebug", "image": proto,
                     "inject-error": [{"event": "none", "iotype": "read", "errno": 5}]}
        children.append({"driver": "raw", "file": proto})
    q = {"driver": "quorum", "vote-threshold": case["threshold"], "children": children,
         "read-pattern": "fifo" if case["fifo"] else "quorum"}
    if case["rewrite"]:
        q["rewrite-corrupted"] = True
    return "json:" + json.dumps(q)


def run_qemu(case, paths):
    cmd = ["qemu-io", "-c", "read -v %d %d" % (case["off"], case["len"]),
           qemu_filename(case, paths)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60).stdout
    if "read failed" in out:
        return "error: " + out.strip().splitlines()[-1], b""
    data = bytearray()
    for line in out.splitlines():
        if len(line) > 10 and line[8] == ":" and line[:8].strip("0123456789abcdef") == "":
            data += bytes(int(x, 16) for x in line[10:59].split())
    return "ok", bytes(data)


def run_blocksim(blocksim, case, paths, mutant):
    cmd = [blocksim, "quorum"] + (["--mutant", mutant] if mutant else []) + [ "--threshold", str(case["threshold"]),
           "--read", "%d:%d" % (case["off"], case["len"])]
    cmd += ["--fifo"] if case["fifo"] else []
    cmd += ["--rewrite"] if case["rewrite"] else []
    if case["fail"] is not None:
        cmd += ["--faults", "read-eio disk=c%d" % case["fail"]]
    p = subprocess.run(cmd + paths, capture_output=True, text=True, timeout=60)
    if p.returncode != 0:
        return None
    return json.loads(p.stdout.splitlines()[0])


def changed(paths, case):
    fresh = []
    with tempfile.TemporaryDirectory() as d:
        for i, p in enumerate(write_images(d, case, "orig")):
            with open(p, "rb") as a, open(paths[i], "rb") as b:
                if a.read() != b.read():
                    fresh.append(i)
    return fresh


def check_case(blocksim, seed, d, mutant):
    case = make_case(seed)
    qpaths = write_images(d, case, "q%d-" % seed)
    bpaths = write_images(d, case, "b%d-" % seed)
    qres, qdata = run_qemu(case, qpaths)
    b = run_blocksim(blocksim, case, bpaths, mutant)
    problems = []
    if b is None:
        return ["blocksim quorum failed to run"], case
    bok = b["result"] == "ok"
    if (qres == "ok") != bok:
        problems.append("QEMU read %s, blocksim %s" % (qres, b["result"]))
    elif bok and bytes.fromhex(b["data"]) != qdata:
        problems.append("the data read differs")
    reported_bad = sorted(r["child"] for r in b["reported"] if not r["error"])
    reported_err = sorted(r["child"] for r in b["reported"] if r["error"])
    if case["fail"] is not None and not case["fifo"] and reported_err != [case["fail"]]:
        problems.append("blocksim reported %s as failing, not [%d]" %
                        (reported_err, case["fail"]))
    if case["rewrite"]:
        qfixed = changed(qpaths, case)
        if qfixed != reported_bad:
            problems.append("QEMU rewrote children %s, blocksim reported %s as disagreeing"
                            % (qfixed, reported_bad))
        for qp, bp in zip(qpaths, bpaths):
            with open(qp, "rb") as a, open(bp, "rb") as c:
                if a.read() != c.read():
                    problems.append("%s differs after the repair" % os.path.basename(bp))
    return problems, case


def divergent_after_crash(blocksim, d):
    """The shape of shared/repro/quorum-vote-after-crash.trace: after a torn
    crash three children hold three versions of sectors 115..130 (c0 lost
    write #3, c1 kept one sector of it, c2 kept all). With vote-threshold 1 a
    read of 111..117 sees c0 and c1 agree (old data at sector 115); a read of
    115..130 finds three versions, a tie that goes to c2 (new data at 115).
    QEMU and blocksim must return the same bytes for both reads, and sector
    115 must change between them without a write: the whole-request vote
    lets diverged children show through, so the crash checker may not pin a
    sector to the first value read. Returns a list of problems."""
    size = 1 << 20
    fills = [[(111, 118, 0xA0)], [(111, 118, 0xA0), (125, 125, 0xC3)],
             [(111, 114, 0xA0), (115, 130, 0xC3)]]
    paths = []
    for i, fill in enumerate(fills):
        data = bytearray(size)
        for a, b, v in fill:
            data[a * SECTOR:(b + 1) * SECTOR] = bytes([v]) * ((b - a + 1) * SECTOR)
        paths.append(os.path.join(d, "div%d.raw" % i))
        with open(paths[-1], "wb") as f:
            f.write(data)
    reads = [(56832, 3584), (58880, 8192)]
    children = [{"driver": "raw", "file": {"driver": "file", "filename": p}} for p in paths]
    q = {"driver": "quorum", "vote-threshold": 1, "children": children}
    cmd = ["qemu-io"]
    for off, ln in reads:
        cmd += ["-c", "read -v %d %d" % (off, ln)]
    out = subprocess.run(cmd + ["json:" + json.dumps(q)], capture_output=True, text=True,
                         timeout=60).stdout
    qdata = bytearray()
    for line in out.splitlines():
        if len(line) > 10 and line[8] == ":" and line[:8].strip("0123456789abcdef") == "":
            qdata += bytes(int(x, 16) for x in line[10:59].split())
    qreads = [bytes(qdata[:3584]), bytes(qdata[3584:])]
    cmd = [blocksim, "quorum", "--threshold", "1"]
    for off, ln in reads:
        cmd += ["--read", "%d:%d" % (off, ln)]
    p = subprocess.run(cmd + paths, capture_output=True, text=True, timeout=60)
    breads = [bytes.fromhex(json.loads(l)["data"]) for l in p.stdout.splitlines()]
    problems = []
    if breads != qreads:
        problems.append("divergent children after a crash: QEMU and blocksim read differently")
    s115 = [qreads[0][58880 - 56832], qreads[1][0]] if len(qreads[1]) else []
    if s115 != [0xA0, 0xC3]:
        problems.append("divergent children: QEMU read sector 115 as %s, expected a0 then c3"
                        % [hex(x) for x in s115])
    return problems


def main():
    args = sys.argv[1:]
    mutant = None
    if "--mutant" in args:
        i = args.index("--mutant")
        mutant = args[i + 1]
        del args[i:i + 2]
    if not args:
        print("usage: qemu_quorum.py BLOCKSIM [CASES] [--mutant NAME]", file=sys.stderr)
        return 2
    blocksim = os.path.abspath(args[0])
    cases = int(args[1]) if len(args) > 1 else 60
    if not shutil.which("qemu-io"):
        print("qemu quorum cross-check: SKIP (qemu-io missing)")
        return 0
    bad = 0
    with tempfile.TemporaryDirectory() as d:
        if not mutant:
            problems = divergent_after_crash(blocksim, d)
            for p in problems:
                print(p)
            if problems:
                return 1
            print("qemu quorum: divergent children after a crash read the same through QEMU "
                  "and blocksim (sector 115: old data, then new data: no pinning)")
        for seed in range(cases):
            problems, case = check_case(blocksim, seed, d, mutant)
            for p in problems[:1] if mutant else problems:
                if not mutant:
                    print("case %d %s: %s" % (seed, json.dumps(case, sort_keys=True), p))
                elif not bad:
                    print("case %d (as the planted bug %s should make it): %s"
                          % (seed, mutant, p.replace("differs", "disagrees")))
            bad += bool(problems)
    if mutant:
        print("qemu quorum cross-check with planted bug %s: %d of %d cases disagree (%s)"
              % (mutant, bad, cases, "caught" if bad else "NOT CAUGHT"))
        return 0 if bad else 1
    print("qemu quorum cross-check: %d of %d cases agree" % (cases - bad, cases))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
