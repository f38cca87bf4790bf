#!/usr/bin/env python3
"""qemu_jobs.py BLOCKSIM [CASES] [--mutant NAME]: cross-check blocksim's
backup and mirror jobs against QEMU's.

Each case starts from the same raw source image (0xAA with a few pattern
writes already in it) and an empty target, then

  - in QEMU (qemu-system-x86_64 -M none, QMP over a Unix socket): adds the
    target node, starts blockdev-backup (sync full or none, speed 512 KiB/s
    and x-perf max-chunk 64 KiB so the job runs for about a second), makes
    guest writes with HMP qemu-io while it runs, may send a verb in the
    wrong state, and for sync=none cancels the job; waits for null. A
    mirror case starts blockdev-mirror (copy-mode background or
    write-blocking), writes, waits for READY, writes again, then completes
    (the guest moves onto the target), cancels softly (COMPLETED, no pivot)
    or with force (CANCELLED), and writes once more after the end. A
    commit case runs the guest on a qcow2 overlay over the raw source,
    writes into the overlay, then runs an active block-commit the same way
    (the guest moves onto the base when completed). An incremental case
    adds a 64 KiB bitmap, makes a full backup recording into it, writes,
    then an incremental backup onto the same target with writes while it
    runs, and also compares the bitmap's dirty byte count at the end;
  - in blocksim: the same as a trace (`disk d0 image=`, `job backup`,
    pattern writes, `job complete`, `job cancel`, `job wait`), replayed
    with --export of the source and the target.

They must agree byte for byte on the target (unless a forced cancel left
it unspecified) and on the source or guest view, on the job
events (JOB_STATUS_CHANGE statuses and BLOCK_JOB_* events, in order; the
paused/running pair QEMU reports because blockdev-backup starts the job
inside a drained section is dropped, spec 10.5), on the terminal event's
offset and len, and on the text of a refused verb. Prints one line per
disagreement; exits 1 on any, 0 when all agree, 0 with a SKIP line when
qemu-system-x86_64 is missing. With --mutant NAME blocksim runs with that
planted bug and the script exits 0 only if some case disagrees.
"""
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time

SIZE = 512 * 1024
SECTOR = 512
QEMU = "qemu-system-x86_64"


def make_case(seed):
    rng = random.Random(seed)
    pre = [(rng.randrange(SIZE // SECTOR) * SECTOR, rng.choice([512, 4096, 65536]),
            rng.randrange(1, 255)) for _ in range(rng.randint(0, 2))]
    during = []
    for _ in range(rng.randint(1, 4)):
        length = rng.choice([512, 4096, 16384, 32768])
        off = rng.randrange((SIZE - length) // SECTOR + 1) * SECTOR
        during.append((off, length, rng.randrange(1, 255)))
    def writes(k):
        out = []
        for _ in range(k):
            length = rng.choice([512, 4096, 16384, 32768])
            out.append((rng.randrange((SIZE - length) // SECTOR + 1) * SECTOR, length,
                        rng.randrange(1, 255)))
        return out
    job = rng.choice(["backup", "backup", "mirror", "mirror", "commit", "incremental"])
    return dict(pre=[(o, min(n, SIZE - o), p) for o, n, p in pre], during=during,
                sync=rng.choice(["full", "full", "none"]), wrong_verb=rng.random() < 0.5,
                job=job, ready=writes(rng.randint(0, 2)), after=writes(rng.randint(0, 2)),
                end=rng.choice(["complete", "complete", "cancel", "force"]),
                copy_mode=rng.choice(["background", "write-blocking"]))


def source_image(path, case):
    data = bytearray([0xAA]) * SIZE
    for off, n, pat in case["pre"]:
        data[off:off + n] = bytes([pat]) * n
    with open(path, "wb") as f:
        f.write(data)


class QemuHang(Exception):
    """QEMU stopped answering (seen, rarely, in QEMU 7.2 with HMP qemu-io
    writes while a mirror is READY): the oracle's problem, not blocksim's."""


class Qmp:
    def __init__(self, path):
        self.s = socket.socket(socket.AF_UNIX)
        self.s.settimeout(15)
        self.s.connect(path)
        self.f = self.s.makefile("rw")
        self.f.readline()
        self.events = []
        self.cmd("qmp_capabilities")

    def read(self):
        try:
            line = self.f.readline()
        except (OSError, socket.timeout) as e:
            raise QemuHang(str(e) or "timeout")
        if not line:
            raise QemuHang("connection closed")
        m = json.loads(line)
        if "event" in m:
            self.events.append((m["event"], m.get("data", {})))
        return m

    def cmd(self, command, **args):
        self.f.write(json.dumps({"execute": command, "arguments": args}) + "\n")
        self.f.flush()
        while True:
            m = self.read()
            if "event" not in m:
                return m

    def wait_event(self, name, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            if any(e == name for e, d in self.events):
                return True
            self.read()
        return False

    def wait_null(self, timeout=20):
        end = time.time() + timeout
        while time.time() < end:
            if any(e == "JOB_STATUS_CHANGE" and d["status"] == "null" for e, d in self.events):
                return True
            self.read()
        return False


def run_qemu(d, case):
    src = os.path.join(d, "q-src.raw")
    tgt = os.path.join(d, "q-tgt.raw")
    source_image(src, case)
    with open(tgt, "wb") as f:
        f.write(bytes(SIZE))
    drive = "if=none,id=guest,file=%s,format=raw" % src
    top = os.path.join(d, "q-top.qcow2")
    if case["job"] == "commit":  # the guest on an overlay over the source
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-b", src, "-F", "raw",
                        top, str(SIZE)], check=True)
        drive = "if=none,id=guest,file=%s,format=qcow2" % top
    sock = os.path.join(d, "qmp.sock")
    p = subprocess.Popen([QEMU, "-M", "none", "-nodefaults", "-display", "none", "-qmp",
                          "unix:%s,server=on,wait=off" % sock, "-drive", drive],
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(250):
            if os.path.exists(sock):
                break
            time.sleep(0.02)
        q = Qmp(sock)
        q.cmd("blockdev-add", driver="raw", file={"driver": "file", "filename": tgt},
              **{"node-name": "tgt"})
        def write(ws):
            for off, n, pat in ws:
                q.cmd("human-monitor-command", **{
                    "command-line": 'qemu-io guest "write -P 0x%02x %d %d"' % (pat, off, n)})
        refusal = None
        count = None
        if case["job"] == "incremental":
            q.cmd("block-dirty-bitmap-add", node="guest", name="b0", granularity=65536)
            r = q.cmd("blockdev-backup", device="guest", target="tgt", sync="full",
                      bitmap="b0", **{"job-id": "j0", "bitmap-mode": "on-success"})
            assert "return" in r, r
            q.wait_null()
            write(case["ready"])
            r = q.cmd("blockdev-backup", device="guest", target="tgt", sync="incremental",
                      bitmap="b0", speed=512 * 1024,
                      **{"job-id": "j1", "x-perf": {"max-chunk": 65536}})
            assert "return" in r, r
            write(case["during"])
            q.events = [(e, d) for e, d in q.events if d.get("id", d.get("device")) != "j0"]
            ok = q.wait_null()
            for dev in q.cmd("query-block")["return"]:
                for bm in dev.get("inserted", {}).get("dirty-bitmaps", []) or \
                        dev.get("dirty-bitmaps", []):
                    if bm["name"] == "b0":
                        count = bm["count"]
        elif case["job"] == "backup":
            r = q.cmd("blockdev-backup", device="guest", target="tgt", sync=case["sync"],
                      speed=512 * 1024, **{"job-id": "j1", "x-perf": {"max-chunk": 65536}})
            assert "return" in r, r
            write(case["during"])
            if case["wrong_verb"]:
                r = q.cmd("block-job-complete", device="j1")
                refusal = r.get("error", {}).get("desc")
            if case["sync"] == "none":
                q.cmd("block-job-cancel", device="j1")
        else:
            if case["job"] == "commit":
                write(case["during"])  # into the overlay
                r = q.cmd("block-commit", device="guest", **{"job-id": "j1"})
            else:
                r = q.cmd("blockdev-mirror", device="guest", target="tgt", sync="full",
                          **{"job-id": "j1", "copy-mode": case["copy_mode"]})
                write(case["during"])
            assert "return" in r, r
            q.wait_event("BLOCK_JOB_READY")
            write(case["ready"])
            if case["end"] == "complete":
                q.cmd("block-job-complete", device="j1")
            else:
                q.cmd("block-job-cancel", device="j1", force=case["end"] == "force")
        if case["job"] != "incremental":
            ok = q.wait_null()
        if case["job"] not in ("backup", "incremental"):
            write(case["after"])
        q.cmd("quit")
        p.wait(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    with open(tgt, "rb") as f:
        t = f.read()
    with open(src, "rb") as f:
        s = f.read()
    if case["job"] == "commit":  # the target is the base; and the guest's view
        t = s
        view = os.path.join(d, "q-view.raw")
        if case["end"] == "complete":
            shutil.copyfile(src, view)
        else:
            subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", top, view],
                           check=True)
        with open(view, "rb") as f:
            s = f.read()
    return dict(ok=ok, target=t, source=s, events=qemu_events(q.events), refusal=refusal,
                count=count)


def qemu_events(events):
    out = []
    for e, d in events:
        if e == "SHUTDOWN":
            continue  # the quit
        if e == "JOB_STATUS_CHANGE":
            out.append(d["status"])
        else:
            out.append((e, d.get("offset"), d.get("len"), d.get("error")))
    # blockdev-backup starts the job inside a drained section: drop the
    # paused/running pair that follows the first running (no user pause).
    if out[1:4] == ["running", "paused", "running"]:
        del out[2:4]
    return out


def run_blocksim(blocksim, d, case, mutant):
    source_image(os.path.join(d, "b-src.raw"), case)
    # Without caches every write is durable when done, as QEMU's images are
    # after it quits (it flushes them): the exports compare like for like.
    if case["job"] == "commit":
        lines = ["blocksim-trace v1", "topology overlay cluster=64K",
                 "disk base image=b-src.raw cache=0", "disk top cache=0"]
    else:
        lines = ["blocksim-trace v1", "topology plain", "disk d0 image=b-src.raw cache=0",
                 "disk tgt size=%d cache=0" % SIZE]

    def write(ws):
        for off, n, pat in ws:
            lines.append("write %d %d pattern=0x%02x" % (off, n, pat))
    if case["job"] == "incremental":
        lines.append("bitmap add b0 granularity=64K")
        lines.append("job backup j0 target=tgt sync=full bitmap=b0 bitmap-mode=on-success")
        lines.append("job wait j0 concluded")
        write(case["ready"])
        lines.append("job backup j1 target=tgt sync=incremental bitmap=b0 speed=512K")
        write(case["during"])
        lines.append("job wait j1 concluded")
    elif case["job"] == "backup":
        lines.append("job backup j1 target=tgt sync=%s speed=512K" % case["sync"])
        write(case["during"])
        if case["wrong_verb"]:
            lines.append("job complete j1")
        if case["sync"] == "none":
            lines.append("job cancel j1")
        lines.append("job wait j1 concluded")
    else:
        if case["job"] == "commit":
            write(case["during"])
            lines.append("job commit j1")
        else:
            lines.append("job mirror j1 target=tgt sync=full copy-mode=%s" % case["copy_mode"])
            write(case["during"])
        lines.append("job wait j1 ready")
        write(case["ready"])
        lines.append({"complete": "job complete j1", "cancel": "job cancel j1",
                      "force": "job cancel j1 force"}[case["end"]])
        lines.append("job wait j1 concluded")
        write(case["after"])
    trace = os.path.join(d, "case.trace")
    with open(trace, "w") as f:
        f.write("\n".join(lines) + "\n")
    src = os.path.join(d, "b-src-out.raw")
    tgt = os.path.join(d, "b-tgt-out.raw")
    cmd = [blocksim, "replay", "--json", "--no-wall", trace, "--export", "d0=" + src,
           "--export", "tgt=" + tgt]
    if case["job"] == "commit":  # the base, and what the guest sees
        cmd = [blocksim, "replay", "--json", "--no-wall", trace, "--export", "guest=" + src,
               "--export", "base=" + tgt]
    if mutant:
        cmd += ["--mutant", mutant]
    out = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if out.returncode == 2:
        raise SystemExit("blocksim refused the trace: " + out.stderr)
    rep = json.loads(out.stdout)
    job = rep["jobs"][-1]  # the incremental case's second job
    events = []
    for ev in job["events"]:
        if ev["event"] == "JOB_STATUS_CHANGE":
            events.append(ev["status"])
        elif ev["event"] != "refused":
            events.append((ev["event"], ev.get("offset"), ev.get("len"), ev.get("error")))
    with open(tgt, "rb") as f:
        t = f.read()
    with open(src, "rb") as f:
        s = f.read()
    refusal = (rep.get("job_refusal", "").split(": ", 2)[-1]
               if case["wrong_verb"] and case["job"] == "backup" else None)
    count = None
    for bm in rep.get("bitmaps", []):
        if bm["name"] == "b0":
            count = bm["dirty_bytes"]
    return dict(target=t, source=s, events=events, refusal=refusal, verdict=rep["verdict"],
                count=count)


def shape(events, forced):
    """Events without progress figures, but whether offset == len at the
    end (at READY QEMU may count an active write still in flight; after a
    forced cancel, how far it got is a race)."""
    out = []
    for e in events:
        if isinstance(e, tuple) and (e[0] == "BLOCK_JOB_READY" or forced):
            out.append((e[0], e[3]))
        elif isinstance(e, tuple):
            out.append((e[0], e[1] == e[2], e[3]))
        else:
            out.append(e)
    return out


def first_diff(a, b):
    for i in range(min(len(a), len(b))):
        if a[i] != b[i]:
            return i
    return min(len(a), len(b))


def xcheck_args(default_cases):
    """BLOCKSIM [CASES] [--mutant NAME] of a cross-check script."""
    args = sys.argv[1:]
    mutant = None
    if "--mutant" in args:
        i = args.index("--mutant")
        mutant = args[i + 1]
        del args[i:i + 2]
    if not args:
        raise SystemExit("usage: %s BLOCKSIM [CASES] [--mutant NAME]" %
                         os.path.basename(sys.argv[0]))
    return args[0], int(args[1]) if len(args) > 1 else default_cases, mutant


def main():
    blocksim, cases, mutant = xcheck_args(12)
    if shutil.which(QEMU) is None:
        print("qemu jobs cross-check: SKIP (%s not found)" % QEMU)
        return 0
    bad = 0
    checks = 0
    skipped = 0
    for seed in range(cases):
        case = make_case(seed)
        q = None
        for attempt in range(3):
            with tempfile.TemporaryDirectory(prefix="blocksim-qjobs-") as d:
                try:
                    q = run_qemu(d, case)
                except QemuHang as e:
                    print("case %d: QEMU stopped answering (%s), attempt %d of 3" %
                          (seed, e, attempt + 1))
                    continue
                b = run_blocksim(blocksim, d, case, mutant)
                break
        if q is None:
            print("case %d: skipped: QEMU hung three times" % seed)
            skipped += 1
            continue
        problems = []
        if not q["ok"]:
            problems.append("QEMU's job did not end")
        forced = case["job"] != "backup" and case["end"] == "force"
        for what in ("target", "source"):
            if what == "target" and forced:
                continue  # a forced cancel leaves the target unspecified (spec 3.1)
            checks += 1
            if q[what] != b[what]:
                i = first_diff(q[what], b[what])
                problems.append("%s differs from byte %d (QEMU %02x, blocksim %02x)" %
                                (what, i, q[what][i], b[what][i]))
        checks += 1
        qe, be = q["events"], b["events"]
        if case["job"] != "backup":  # progress depends on timing: compare its shape
            qe, be = shape(qe, forced), shape(be, forced)
        if qe != be:
            problems.append("events: QEMU %s, blocksim %s" % (qe, be))
        if case["job"] == "incremental":
            checks += 1
            if q["count"] != b["count"]:
                problems.append("bitmap b0 dirty bytes: QEMU %s, blocksim %s" %
                                (q["count"], b["count"]))
        if case["wrong_verb"] and case["job"] == "backup":
            checks += 1
            if q["refusal"] != b["refusal"]:
                problems.append("refusal: QEMU %r, blocksim %r" % (q["refusal"], b["refusal"]))
        if problems and mutant:
            bad += 1
            if bad == 1:  # one example; the planted bug is meant to cause it
                print("case %d (as the planted bug %s should make it): %s" %
                      (seed, mutant, problems[0]))
        elif problems:
            bad += 1
            what = ("backup sync=%s" % case["sync"] if case["job"] == "backup" else
                    "mirror %s, %s" % (case["copy_mode"], case["end"])
                    if case["job"] == "mirror" else "commit, %s" % case["end"]
                    if case["job"] == "commit" else "incremental")
            print("case %d (%s, %d writes during): %s" %
                  (seed, what, len(case["during"]), "; ".join(problems)))
    if mutant:
        print("qemu jobs cross-check with planted bug %s: %d of %d cases disagree (%s)" %
              (mutant, bad, cases, "caught" if bad else "NOT CAUGHT"))
    else:
        print("qemu jobs cross-check: %d of %d backup, mirror, commit and incremental cases agree "
              "with QEMU (%d comparisons%s)" % (cases - bad - skipped, cases, checks,
                                            ", %d skipped: QEMU hung" % skipped
                                            if skipped else ""))
    if mutant:
        return 0 if bad else 1
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
