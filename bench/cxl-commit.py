#!/usr/bin/env python3
"""Benchmark: what turning a committed CXL window into RAM costs.

For a 1 GiB 4-way 16 KiB window (the smallest 4-way window CXL allows:
256 MiB per way) and a 64 GiB 16-way 4 KiB window (4 host bridges x 4
root ports), on q35 with the decoders programmed as Linux does:

  commit      wall time of the last decoder commit, which recomputes the
              window (probe, derive, validate) and maps it as RAM
  uncommit    wall time of the first decoder uncommit (back to MMIO)
  roundtrip   the same qtest register write with nothing to recompute,
              to subtract
  sections    dispatch sections serving the window (info mtree -f -d)
  memory      dispatch memory the window adds: radix nodes and sections
              counted in info mtree -f -d, times their sizes (estimate)

Median of --repeat runs.  Targets (issue 4): set/clear <= 5 ms for the
small window and <= 50 ms for the 64 GiB one, sections <= ways + 2,
memory <= 1 MiB.
"""

import argparse
import re
import statistics
import sys
import tempfile
import time

import cxltest
from cxltest import qtest as cq, topology

NODE_BYTES = 512 * 4        # P_L2_SIZE PhysPageEntry of 32 bits
SECTION_BYTES = 96          # sizeof(MemoryRegionSection) on x86_64 hosts


def dispatch_stats(q):
    out = q.hmp("info mtree -f -d")
    view = [v for v in out.split("FlatView #") if 'AS "memory"' in v][0]
    secs = re.findall(r"^\s*#\d+ @[0-9a-f.]+ (\S+)", view, re.M)
    nodes = len(re.findall(r"^\s*\[\d+\]\s*$", view, re.M))
    win = sum(1 for s in secs if s.startswith("cxl-fixed-memory-region")
              or re.fullmatch(r"m\d+", s))
    return len(secs), nodes, win


def timed_write(q, addr, val):
    t0 = time.perf_counter()
    q.writel(addr, val)
    return (time.perf_counter() - t0) * 1e3


def run(qemu_dir, hbs, gw, ghb, gep, dev_size):
    tmp = tempfile.mkdtemp(prefix="cxl-commit-")
    saved = topology.DEV_SIZE
    topology.DEV_SIZE = dev_size
    try:
        topo = cxltest.Topology(tmp, hbs, gw, ghb, None, gep, backend="ram")
        rig = cxltest.Rig(qemu_dir, "q35", topo,
                          extra=["-m", "1G"] if dev_size > 1 << 30 else [])
    finally:
        topology.DEV_SIZE = saved
    with rig:
        q, b, s = rig.q, rig.base, topo.size
        secs0, nodes0, _ = dispatch_stats(q)
        for ep in topo.eps:
            rig.commit(rig.bar0[ep.name], 0, b, s, topo.ways, gep)
        last = len(topo.hbs) - 1
        for i, (hb, ports) in enumerate(topo.hbs):
            comp = rig.hbregs[hb]
            if i < last:
                rig.commit(comp, 0, b, s, len(ports), ghb,
                           targets=list(range(len(ports))))
                continue
            # program everything but the commit bit, then time it
            ctrl = cq.program_decoder(q, comp, 0, b, s, len(ports), ghb,
                                      list(range(len(ports))))
            # program_decoder committed it: undo, then time a fresh commit
            q.writel(comp + cq.hdm_reg(0, "ctrl"), ctrl & ~cq.CTRL_COMMIT)
            ctrl &= ~(cq.CTRL_COMMITTED | cq.CTRL_ERR)
            roundtrip = statistics.median(
                timed_write(q, comp + cq.hdm_reg(0, "base_lo"), b & 0xffffffff)
                for _ in range(20))
            commit = timed_write(q, comp + cq.hdm_reg(0, "ctrl"),
                                 ctrl | cq.CTRL_COMMIT)
        rig.expect_served("ram")
        secs1, nodes1, win = dispatch_stats(q)
        comp = rig.hbregs[topo.hbs[0][0]]
        ctrl = q.readl(comp + cq.hdm_reg(0, "ctrl"))
        uncommit = timed_write(q, comp + cq.hdm_reg(0, "ctrl"),
                               ctrl & ~cq.CTRL_COMMIT)
        rig.expect_served("mmio")
        mem = (max(nodes1 - nodes0, 0) * NODE_BYTES
               + max(secs1 - secs0, 0) * SECTION_BYTES)
        return dict(commit=commit, uncommit=uncommit, roundtrip=roundtrip,
                    sections=win, memory=mem, ways=topo.ways)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu-dir", required=True)
    ap.add_argument("--repeat", type=int, default=5)
    opt = ap.parse_args()
    cases = [
        ("1 GiB, 4-way, 16 KiB", [[None] * 4], 16384, 16384, 16384,
         256 << 20, 5.0),
        ("64 GiB, 16-way, 4 KiB", [[None] * 4] * 4, 4096, 16384, 4096,
         4 << 30, 50.0),
    ]
    print("q35, CXL window committed over qtest; ms, median of %d"
          % opt.repeat)
    print("%-24s %8s %9s %10s %9s %10s" % ("window", "commit", "uncommit",
                                          "roundtrip", "sections",
                                          "memory"))
    ok = True
    for label, hbs, gw, ghb, gep, dev, limit in cases:
        runs = [run(opt.qemu_dir, hbs, gw, ghb, gep, dev)
                for _ in range(opt.repeat)]
        r = {k: statistics.median(x[k] for x in runs)
             for k in ("commit", "uncommit", "roundtrip")}
        sec, mem, ways = runs[0]["sections"], runs[0]["memory"], \
            runs[0]["ways"]
        print("%-24s %8.2f %9.2f %10.2f %9d %9.1fK" % (
            label, r["commit"], r["uncommit"], r["roundtrip"], sec,
            mem / 1024), flush=True)
        good = (r["commit"] - r["roundtrip"] <= limit
                and r["uncommit"] - r["roundtrip"] <= limit
                and sec <= ways + 2 and mem <= 1 << 20)
        ok &= good
        print("  target: set/clear <= %g ms, sections <= %d, memory <= 1 MiB:"
              " %s" % (limit, ways + 2, "met" if good else "NOT met"))
    print("all targets met" if ok else "some targets NOT met")
    return 0


if __name__ == "__main__":
    sys.exit(main())
