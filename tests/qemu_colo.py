#!/usr/bin/env python3
"""qemu_colo.py BLOCKSIM [CASES] [--mutant NAME]: cross-check blocksim's
COLO block replication against two real QEMUs.

Each case is a random script of pattern writes by the primary's guest and
by the secondary's guest, checkpoints, and at the end a failover, a
non-failover stop, the secondary's death (its QEMU killed, then more
primary writes), or nothing:

  - in QEMU: two `qemu-system-x86_64 -M none` joined by NBD over a Unix
    socket, laid out as docs/block-replication.txt lays them out (the
    secondary: a raw secondary disk exported writable, hidden and active
    qcow2 images, a replication node mode=secondary on top; the primary: a
    quorum vote-threshold=1 read-pattern=fifo over its raw disk, with a
    replication node mode=primary over an NBD client attached as
    children.1 by x-blockdev-change). Replication starts with
    xen-set-replication (secondary first), checkpoints with
    xen-colo-do-checkpoint, fails over or stops with xen-set-replication
    enable=false [failover=true]; guest writes are HMP qemu-io writes;
    query-xen-replication-status is polled (the internal jobs send no
    events);
  - in blocksim: the same as a trace on the colo topology (64 KiB overlay
    clusters, as qcow2's), replayed with --export of the four disks.

They must agree byte for byte on the primary disk and the secondary disk,
on what the hidden and the active layers hold of their own (how many
64 KiB clusters, and their data: QEMU's qcow2 layer read without its
backing, blocksim's --export hidden-layer and active-layer), on what the
secondary guest reads (unless it failed over: then the secondary disk is
its view), and on each host's get-error (query-xen-replication-status) at
the end. A non-failover
stop is where merged QEMU departs from the documented intent (spec 1.4:
its checkpoint finds the backup job gone, so active and hidden keep their
data and get-error reports an error); blocksim implements the intent, so
such cases must show exactly that difference, which is printed.

Prints one line per disagreement; exits 1 on any, 0 when all agree, 0 with
a SKIP line when qemu-system-x86_64 is missing. With --mutant NAME blocksim
runs with that planted bug and the script exits 0 only if some case
disagrees.
"""
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from qemu_jobs import Qmp, QemuHang, first_diff, xcheck_args  # noqa: E402

SIZE = 1024 * 1024
CLUSTER = 65536
QEMU = "qemu-system-x86_64"


def make_case(seed):
    rng = random.Random(seed)
    steps = []
    for _ in range(rng.randint(2, 12)):
        kind = rng.choice(["p", "p", "p", "s", "s", "checkpoint"])
        if kind == "checkpoint":
            steps.append(("checkpoint",))
            continue
        length = rng.choice([512, 4096, 16384, 65536, 131072])
        off = rng.randrange((SIZE - length) // 512 + 1) * 512
        steps.append((kind, off, length, rng.randrange(1, 255)))
    end = rng.choice(["failover", "failover", "none", "stop", "lost"])
    # lost: the secondary's QEMU is killed, then the primary's guest writes on
    after = [(rng.randrange(SIZE // 4096) * 4096, 4096, rng.randrange(1, 255))
             for _ in range(rng.randint(1, 3))]
    return dict(steps=steps, end=end, after=after)


def start_qemu(d, name, drives):
    sock = os.path.join(d, name + ".qmp")
    p = subprocess.Popen([QEMU, "-M", "none", "-nodefaults", "-display", "none", "-qmp",
                          "unix:%s,server=on,wait=off" % sock] + drives,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(250):
        if os.path.exists(sock):
            break
        time.sleep(0.02)
    return p, Qmp(sock)


def status(q):
    return bool(q.cmd("query-xen-replication-status")["return"].get("error"))


def run_qemu(d, case):
    pri = os.path.join(d, "q-pri.raw")
    sec = os.path.join(d, "q-sec.raw")
    hidden = os.path.join(d, "q-hidden.qcow2")
    active = os.path.join(d, "q-active.qcow2")
    for path in (pri, sec):
        with open(path, "wb") as f:
            f.write(bytes(SIZE))
    for path in (hidden, active):
        subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", path, str(SIZE)], check=True)
    procs = []
    try:
        ps, qs = start_qemu(d, "sec", [
            "-drive", "if=none,id=colo-disk,driver=raw,file.filename=%s" % sec,
            "-drive", "if=none,id=active-disk,driver=replication,mode=secondary,"
            "top-id=active-disk,file.driver=qcow2,file.file.filename=%s,"
            "file.backing.driver=qcow2,file.backing.file.filename=%s,"
            "file.backing.backing=colo-disk" % (active, hidden)])
        procs.append(ps)
        nbd = os.path.join(d, "nbd.sock")
        assert "return" in qs.cmd("nbd-server-start", addr={"type": "unix",
                                                            "data": {"path": nbd}})
        assert "return" in qs.cmd("nbd-server-add", device="colo-disk", writable=True)
        assert "return" in qs.cmd("xen-set-replication", enable=True, primary=False)
        pp, qp = start_qemu(d, "pri", [
            "-drive", "if=none,id=guest,driver=quorum,read-pattern=fifo,vote-threshold=1,"
            "children.0.driver=raw,children.0.file.filename=%s" % pri])
        procs.append(pp)
        r = qp.cmd("blockdev-add", driver="replication", mode="primary", **{
            "node-name": "repl", "file": {"driver": "nbd", "export": "colo-disk",
                                         "server": {"type": "unix", "path": nbd}}})
        assert "return" in r, r
        assert "return" in qp.cmd("x-blockdev-change", parent="guest", node="repl")
        assert "return" in qp.cmd("xen-set-replication", enable=True, primary=True)
        for st in case["steps"]:
            if st[0] == "checkpoint":
                assert "return" in qs.cmd("xen-colo-do-checkpoint")
                continue
            q, dev = (qp, "guest") if st[0] == "p" else (qs, "active-disk")
            q.cmd("human-monitor-command", **{
                "command-line": 'qemu-io %s "write -P 0x%02x %d %d"' % (dev, st[3], st[1],
                                                                         st[2])})
        stop = None
        if case["end"] == "lost":
            ps.kill()
            ps.wait()
            for off, n, pat in case["after"]:
                r = qp.cmd("human-monitor-command", **{
                    "command-line": 'qemu-io guest "write -P 0x%02x %d %d"' % (pat, off, n)})
                assert "error" not in r.get("return", ""), r  # the guest never sees it
            return dict(primary=read(pri), errors=(status(qp),), lost=True)
        if case["end"] not in ("none", "lost"):
            r = qs.cmd("xen-set-replication", enable=False, primary=False,
                       failover=case["end"] == "failover")
            stop = r.get("error", {}).get("desc", "ok")
        end = time.time() + 5  # the commit runs as an internal job: poll
        while case["end"] == "failover" and status(qs) and time.time() < end:
            time.sleep(0.02)
        errors = (status(qp), status(qs))
        qs.cmd("quit")
        qp.cmd("quit")
        for p in procs:
            p.wait(timeout=10)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    view = os.path.join(d, "q-view.raw")  # the active chain, as the secondary guest reads it
    chain = {"driver": "qcow2", "file": {"driver": "file", "filename": active},
             "backing": {"driver": "qcow2", "file": {"driver": "file", "filename": hidden},
                         "backing": {"driver": "raw",
                                     "file": {"driver": "file", "filename": sec}}}}
    subprocess.run(["qemu-img", "convert", "-O", "raw", "json:" + json.dumps(chain), view],
                   check=True)
    return dict(primary=read(pri), secondary=read(sec), hidden=qcow2_layer(d, hidden),
                active=qcow2_layer(d, active), errors=errors, view=read(view), stop=stop)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def qcow2_layer(d, path):
    """What a qcow2 image holds of its own: allocated clusters and bytes."""
    out = os.path.join(d, "layer.raw")
    spec = json.dumps({"driver": "qcow2", "backing": None,
                       "file": {"driver": "file", "filename": path}})
    subprocess.run(["qemu-img", "convert", "-O", "raw", "json:" + spec, out], check=True)
    m = subprocess.run(["qemu-img", "map", "--output=json", "json:" + spec],
                       stdout=subprocess.PIPE, check=True, text=True)
    alloc = set()
    for ext in json.loads(m.stdout):
        if ext["present"]:  # held by this layer (no backing to fall through to)
            alloc.update(range(ext["start"] // CLUSTER,
                               (ext["start"] + ext["length"] + CLUSTER - 1) // CLUSTER))
    return dict(data=read(out), clusters=len(alloc))


def run_blocksim(blocksim, d, case, mutant):
    lines = ["blocksim-trace v1", "topology colo size=%d cluster=64K" % SIZE]
    for disk in ("primary-disk", "secondary-disk", "hidden-disk", "active-disk"):
        lines.append("disk %s cache=0" % disk)  # durable when done, as QEMU's after quit
    for st in case["steps"]:
        if st[0] == "checkpoint":
            lines.append("colo checkpoint")
        else:
            lines.append("write %d %d pattern=0x%02x%s" % (st[1], st[2], st[3],
                                                          " guest=secondary"
                                                          if st[0] == "s" else ""))
    if case["end"] == "lost":
        lines.append("crash host=secondary")
        for off, n, pat in case["after"]:
            lines.append("write %d %d pattern=0x%02x" % (off, n, pat))
        lines.append("replication get-error host=primary")
    elif case["end"] != "none":
        lines.append("replication stop%s host=secondary" %
                     (" failover" if case["end"] == "failover" else ""))
    if case["end"] != "lost":
        lines.append("replication get-error host=primary")
        lines.append("replication get-error host=secondary")
    trace = os.path.join(d, "case.trace")
    with open(trace, "w") as f:
        f.write("\n".join(lines) + "\n")
    out = {}
    cmd = [blocksim, "replay", "--json", "--no-wall", trace]
    # The disks, what each overlay holds of its own, the secondary guest's view.
    names = ("primary-disk",) if case["end"] == "lost" else (
        "primary-disk", "secondary-disk", "hidden-layer", "active-layer", "secondary-guest")
    for name in names:
        out[name] = os.path.join(d, "b-%s.raw" % name)
        cmd += ["--export", "%s=%s" % (name, out[name])]
    if mutant:
        cmd += ["--mutant", mutant]
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    if r.returncode == 2:
        raise SystemExit("blocksim refused the trace: " + r.stderr)
    rep = json.loads(r.stdout)
    hist = [h for h in rep["replication"]["history"] if h["op"] == "get-error"]
    if case["end"] == "lost":
        return dict(primary=read(out["primary-disk"]), errors=(hist[-1]["result"] != "ok",),
                    lost=True, verdict=rep["verdict"], werr=rep["errors"]["write"])
    stops = [h["result"] for h in rep["replication"]["history"] if h["op"] == "stop"]
    errors = tuple(h["result"] != "ok" for h in hist[-2:])
    repl = rep["replication"]
    return dict(primary=read(out["primary-disk"]), secondary=read(out["secondary-disk"]),
                hidden=dict(data=read(out["hidden-layer"]), clusters=repl["hidden_clusters"]),
                active=dict(data=read(out["active-layer"]), clusters=repl["active_clusters"]),
                errors=errors, view=read(out["secondary-guest"]), verdict=rep["verdict"],
                stop=stops[0] if stops else None)


def compare(q, b, failover):
    problems = []
    if q.get("lost"):  # the primary goes on: its disk, its get-error, no guest error
        if q["primary"] != b["primary"]:
            i = first_diff(q["primary"], b["primary"])
            problems.append("primary differs from byte %d after the secondary died" % i)
        if q["errors"] != b["errors"] or b["werr"]:
            problems.append("after the secondary died: get-error QEMU %s, blocksim %s; "
                            "blocksim guest write errors %d" % (q["errors"], b["errors"],
                                                                b["werr"]))
        return problems
    for what in ("primary", "secondary") + (() if failover else ("view",)):
        if q[what] != b[what]:
            i = first_diff(q[what], b[what])
            problems.append("%s differs from byte %d (QEMU %02x, blocksim %02x)" %
                            (what, i, q[what][i], b[what][i]))
    for what in ("hidden", "active"):
        if q[what]["clusters"] != b[what]["clusters"]:
            problems.append("%s layer: QEMU holds %d clusters, blocksim %d" %
                            (what, q[what]["clusters"], b[what]["clusters"]))
        elif q[what]["data"] != b[what]["data"]:
            i = first_diff(q[what]["data"], b[what]["data"])
            problems.append("%s layer differs from byte %d" % (what, i))
    if q["stop"] != b["stop"]:
        problems.append("stop: QEMU replied %r, blocksim %r" % (q["stop"], b["stop"]))
    if q["errors"] != b["errors"]:
        problems.append("get-error (primary, secondary): QEMU %s, blocksim %s" %
                        (q["errors"], b["errors"]))
    return problems


def main():
    blocksim, cases, mutant = xcheck_args(16)
    if shutil.which(QEMU) is None:
        print("qemu colo cross-check: SKIP (%s not found)" % QEMU)
        return 0
    bad = shown = checks = 0
    for seed in range(cases):
        case = make_case(seed)
        with tempfile.TemporaryDirectory(prefix="blocksim-qcolo-") as d:
            try:
                q = run_qemu(d, case)
            except QemuHang as e:
                print("case %d: QEMU stopped answering (%s)" % (seed, e))
                bad += 1
                continue
            b = run_blocksim(blocksim, d, case, mutant)
        problems = compare(q, b, case["end"] == "failover")
        checks += {"failover": 7, "lost": 2}.get(case["end"], 8)
        if case["end"] == "stop":
            # The documented difference: QEMU's layers keep their data and
            # its secondary reports an error; blocksim emptied both.
            held = q["hidden"]["clusters"] or q["active"]["clusters"]
            want = ([] if not held else
                    [p for p in problems
                     if p.startswith(("hidden", "active", "get-error", "view", "stop"))])
            rest = [p for p in problems if p not in want]
            if held and not want:
                rest.append("non-failover stop: QEMU emptied its layers (spec 1.4 says "
                            "merged QEMU does not)")
            if want and shown == 0 and not mutant:
                print("case %d (non-failover stop, the known difference, spec 1.4): %s" %
                      (seed, "; ".join(want)))
            shown += bool(want)
            problems = rest
        if b["verdict"] != "pass" and not mutant:
            problems.append("blocksim's own checkers failed the run")
        if problems and mutant:
            bad += 1
            if bad == 1:
                print("case %d (as the planted bug %s should make it): %s" %
                      (seed, mutant, problems[0]))
        elif problems:
            bad += 1
            print("case %d (%d steps, end %s): %s" % (seed, len(case["steps"]), case["end"],
                                                      "; ".join(problems)))
    if mutant:
        print("qemu colo cross-check with planted bug %s: %d of %d cases disagree (%s)" %
              (mutant, bad, cases, "caught" if bad else "NOT CAUGHT"))
        return 0 if bad else 1
    print("qemu colo cross-check: %d of %d replication cases agree with two QEMUs (%d "
          "comparisons; %d non-failover stops showed the known difference)" %
          (cases - bad, cases, checks, shown))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
