#!/usr/bin/env python3
"""bench_summary.py LOG: the performance goals beside what one `make bench`
run measured (LOG is that run's output), one line each, with met or not.

The goals are the performance issue's: plain replay 1M ops/s, a quorum of
three and the COLO pair 300k, 50x qemu-io on the same trace, 1k check
trials a second a core, the default trace explored in under a minute, and
the 1 TiB line's peak memory under its target. A figure the log lacks is
said to be missing, never guessed.
"""
import re
import sys


def first(pattern, text, group=1):
    m = re.search(pattern, text, re.M)
    return float(m.group(group).replace(",", "")) if m else None


def main():
    if len(sys.argv) != 2:
        sys.stderr.write("usage: bench_summary.py LOG\n")
        return 2
    try:
        text = open(sys.argv[1], encoding="utf-8", errors="replace").read()
    except OSError as e:
        sys.stderr.write("bench_summary.py: %s: %s\n" % (sys.argv[1], e.strerror))
        return 2
    cores = first(r"(\d+) cores online", text)
    per_cpu = [float(x) for x in re.findall(r"\((\d+) a CPU second\)", text)]
    rss = re.search(r"^1 TiB disk.*peak RSS\s+([\d.]+) MiB.*target <=\s+([\d.]+) MiB", text, re.M)
    rows = [
        ("plain replay, 4K write+read 64 MiB", first(r"^4K random write\+read, 64 MiB.*?(\d+) ops/s", text),
         1e6, "ops/s", True),
        ("quorum of three", first(r"^quorum of three.*?(\d+) ops/s", text), 3e5, "ops/s", True),
        ("COLO pair", first(r"^COLO pair.*?(\d+) ops/s", text), 3e5, "ops/s", True),
        ("blocksim / qemu-io", first(r"^blocksim / qemu-io\s+([\d.]+)x", text), 50, "x", True),
        ("check, slowest property", min(per_cpu) if per_cpu else None, 1000,
         "trials a CPU second", True),
        ("explore default.trace", first(r"^explore: .* ([\d.]+) s, \d+ states/s", text), 60, "s", False),
        ("1 TiB, 100k writes: peak RSS", float(rss.group(1)) if rss else None,
         float(rss.group(2)) if rss else None, "MiB", False),
    ]
    print("performance goals, this run%s:" % (" (%d cores)" % cores if cores else ""))
    for name, got, goal, unit, higher in rows:
        if got is None or goal is None:
            print("  %-36s missing from the log" % name)
            continue
        met = got >= goal if higher else got <= goal
        print("  %-36s %12s %-20s goal %s %-10s %s" % (
            name, "{:,.1f}".format(got) if got < 100 else "{:,.0f}".format(got), unit,
            ">=" if higher else "<=", "{:,.0f}".format(goal), "met" if met else "NOT met"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
