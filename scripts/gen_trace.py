#!/usr/bin/env python3
"""Write a random native blocksim trace (used to make traces/native/*.trace).

usage: gen_trace.py SEED OPS [--size BYTES] [--topology plain|overlay]
       [--faults] [--crashes N] [--qd N]

The output is deterministic for a given argument list. The property engine
will generate scenarios in C; this helper only makes the bundled samples.
"""
import argparse
import random

p = argparse.ArgumentParser()
p.add_argument("seed", type=int)
p.add_argument("ops", type=int)
p.add_argument("--size", type=int, default=64 << 20)
p.add_argument("--topology", default="plain")
p.add_argument("--faults", action="store_true")
p.add_argument("--crashes", type=int, default=0)
p.add_argument("--qd", type=int, default=8)
a = p.parse_args()
r = random.Random(a.seed)

print("blocksim-trace v1")
print(f"# generated: gen_trace.py {a.seed} {a.ops} --size {a.size} --topology {a.topology}"
      f"{' --faults' if a.faults else ''} --crashes {a.crashes} --qd {a.qd}")
print(f"seed {a.seed}")
print(f"topology {a.topology} size={a.size}")
disk = "d0" if a.topology == "plain" else "base"
print(f"disk {disk} cache=4M latency=20us-400us atomic=no")
if a.faults:
    print(f"fault write-eio disk={disk} prob=0.005")
    print(f"fault read-eio disk={disk} prob=0.005")
    print(f"fault read-corrupt disk={disk} nth=700 times=2")
    print(f"fault misdirect disk={disk} nth=1500 times=1 delta=1M")
    print(f"fault latent disk={disk} range=0-4M prob=0.002 times=3")
print(f"qd {a.qd}")
written = []
crash_at = sorted(r.sample(range(a.ops // 4, a.ops), a.crashes)) if a.crashes else []
for i in range(a.ops):
    if crash_at and i == crash_at[0]:
        crash_at.pop(0)
        print(f"crash mode={r.choice(['prefix', 'subset', 'tear'])}")
        print("restart")
    x = r.random()
    length = r.choice([4096, 4096, 8192, 16384, 65536, 512, 1024])
    off = r.randrange(0, a.size - length, 512)
    if a.topology == "overlay" and x < 0.01:
        print("commit" if x < 0.005 else "make-empty")
        if x >= 0.005:
            written.clear()  # the view fell back to the backing
    elif x < 0.05:
        print("flush")
    elif x < 0.55:
        print(f"write {off} {length}{' fua' if r.random() < 0.1 else ''}")
        written.append((off, length))
    elif x < 0.58:
        print(f"zero {off} {length}")
    elif x < 0.60:
        print(f"discard {off} {length}")
    elif written and x < 0.85:
        o, l = r.choice(written)
        print(f"read {o} {l}")
    else:
        print(f"read {off} {length}")
print("flush")
for o, l in written[-200:]:
    print(f"read {o} {l}")
