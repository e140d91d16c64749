#!/usr/bin/env python3
"""Benchmark: what a 1 MiB dump-guest-memory of a large window costs.

q35, two type-3 devices with sparse file backends, the window committed
as RAM at 4 KiB (interleave sections), a 1 MiB dump (paging=false,
begin = the window) of a 64 GiB and of a 1 TiB window:

  time      wall time of the dump-guest-memory command (the BQL is held
            throughout)
  rss       growth of QEMU's peak resident set (VmHWM) across it
  segments  ELF PT_LOAD segments the dump holds

The two sizes run in turn, round by round; min/median/max over --rounds.
The figure that counts is the ratio 1 TiB / 64 GiB of the median time:
a dump that costs what it dumps is about 1 (one guest memory block per
chunk, before: 7.8 s and 1.9 GB at 64 GiB, about 30 GB at 1 TiB).
"""

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

import cxltest
from cxltest.scenario import elf_loads


def peak_rss(q):
    with open("/proc/%d/status" % q.proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) << 10
    return 0


def elf_segments(path):
    return len(elf_loads(path))


def one(qemu_dir, window):
    tmp = tempfile.mkdtemp(prefix="dump-bench-")
    try:
        topo = cxltest.Topology(tmp, [[None] * 2], gw=4096, ghb=4096,
                                gep=4096, dev_size=window // 2)
        # a 1 TiB window lies past 40 address bits
        with cxltest.Rig(qemu_dir, "q35", topo,
                         extra=["-cpu", "qemu64,phys-bits=46"]) as rig:
            rig.program()
            path = os.path.join(tmp, "dump.elf")
            before = peak_rss(rig.q)
            t0 = time.perf_counter()
            rig.q.qmp("dump-guest-memory", paging=False,
                      protocol="file:" + path, begin=rig.base,
                      length=1 << 20)
            dt = time.perf_counter() - t0
            return dt, peak_rss(rig.q) - before, elf_segments(path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def mmm(xs):
    return min(xs), statistics.median(xs), max(xs)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu-dir", required=True)
    ap.add_argument("--rounds", type=int, default=5)
    opt = ap.parse_args()
    sizes = {"64G": 64 << 30, "1T": 1 << 40}
    res = {k: [] for k in sizes}
    for r in range(opt.rounds):
        for name, size in sizes.items():
            res[name].append(one(opt.qemu_dir, size))
            print("dump-window: round %d %s: %.3f s, peak +%d MiB, %d "
                  "segments" % (r + 1, name, res[name][-1][0],
                                res[name][-1][1] >> 20, res[name][-1][2]),
                  flush=True)
    for name in sizes:
        t = mmm([x[0] for x in res[name]])
        m = mmm([x[1] >> 20 for x in res[name]])
        print("dump-window: %-4s time min/median/max %.3f/%.3f/%.3f s, "
              "peak RSS growth %d/%d/%d MiB, segments %d"
              % (name, *t, *m, res[name][0][2]))
    ratio = statistics.median(x[0] for x in res["1T"]) / \
        statistics.median(x[0] for x in res["64G"])
    print("dump-window: 1 TiB / 64 GiB median time ratio %.2f "
          "(proportional to the window: 16)" % ratio)
    return 0


if __name__ == "__main__":
    sys.exit(main())
