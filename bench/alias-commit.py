#!/usr/bin/env python3
"""Benchmark: add + commit N 16 KiB alias MemoryRegions over 4 RAM regions.

Runs x-alias-interleave-testdev in the patched build and in the baseline
build (unmodified QEMU 10.2.2 plus only the test object, `make baseline`),
side by side, N = 1k .. 128k.  Reports the object's own timing (create,
add and commit all aliases, one transaction: "build") and the cost of an
unrelated commit elsewhere while the aliases are mapped ("recommit"),
median of --repeat runs.  A baseline that aborts is reported as such.

Targets (issue 3): 32768 <= 100 ms, 131072 <= 1 s, time(4N)/time(N) <= 5,
recommit with 32768 aliases <= 30 ms.
"""

import argparse
import statistics
import sys

from cxltest import qtest as cxlqtest

WINDOW = 0x40000000000
TARGETS_AT = 0x80000000000


def run(binary, machine, n, names):
    """(build_ms, recommit_ms) or the reason QEMU failed."""
    args = ["-machine", machine, "-device",
            "x-alias-interleave-testdev,id=il,count=%d,granule=16384,"
            "targets=4,addr=0x%x,targets-addr=0x%x,names=%s"
            % (n, WINDOW, TARGETS_AT, names)]
    try:
        q = cxlqtest.QEMU(binary, args)
    except (RuntimeError, OSError, ValueError) as e:
        lines = [l for l in str(e).splitlines() if l.strip()]
        return "failed: " + (lines[-1][-70:] if lines else type(e).__name__)
    try:
        path = "/machine/peripheral/il"
        build = q.qmp("qom-get", path=path, property="build-ns")
        rec = []
        for _ in range(5):
            q.qmp("qom-set", path=path, property="recommit", value=True)
            rec.append(q.qmp("qom-get", path=path, property="recommit-ns"))
        return build / 1e6, statistics.median(rec) / 1e6
    finally:
        q.close()


def median_run(binary, machine, n, repeat, names):
    runs = [run(binary, machine, n, names) for _ in range(repeat)]
    bad = [r for r in runs if isinstance(r, str)]
    if bad:
        return bad[0]
    return (statistics.median(r[0] for r in runs),
            statistics.median(r[1] for r in runs))


def fmt(r):
    return r if isinstance(r, str) else "%9.1f ms %9.2f ms" % r


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--patched", required=True)
    ap.add_argument("--baseline")
    ap.add_argument("--machine", default="q35")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--max", type=int, default=131072)
    opt = ap.parse_args()

    counts = [n for n in (1024, 2048, 4096, 8192, 16384, 32768, 65536, 131072)
              if n <= opt.max]
    print("machine %s, 16 KiB aliases over 4 RAM regions, median of %d;"
          " build = create + add + commit, recommit = an unrelated commit"
          % (opt.machine, opt.repeat))
    res = {}
    for names in ("none", "unique"):
        print("\naliases named: %s" % names)
        print("%7s  %-31s %s" % ("N", "patched: build, recommit",
                                 "baseline: build, recommit"))
        for n in counts:
            p = median_run(opt.patched, opt.machine, n, opt.repeat, names)
            b = (median_run(opt.baseline, opt.machine, n, 1, names)
                 if opt.baseline else "not run")
            res[names, n] = p
            print("%7d  %-31s %s" % (n, fmt(p), fmt(b)), flush=True)
    if opt.baseline and 8192 <= opt.max:
        p = median_run(opt.patched, opt.machine, 8192, 1, "same")
        b = median_run(opt.baseline, opt.machine, 2048, 1, "same")
        print("\nall named the same: patched 8192 %s; baseline 2048 %s"
              % (fmt(p), fmt(b)))

    ok = True
    print("\ntargets:")

    def check(label, value, limit):
        nonlocal ok
        good = value is not None and value <= limit
        ok &= good
        print("  %-38s %10s  (<= %s)  %s" % (label, "%.2f" % value
              if value is not None else "n/a", limit, "ok" if good else "MISSED"))

    def build(names, n):
        r = res.get((names, n))
        return r[0] if isinstance(r, tuple) else None

    for names in ("none", "unique"):
        check("%s names: 32768 build ms" % names, build(names, 32768), 100)
        check("%s names: 131072 build ms" % names, build(names, 131072), 1000)
        worst = None
        for n in counts:
            if build(names, n) and build(names, 4 * n):
                ratio = build(names, 4 * n) / build(names, n)
                worst = ratio if worst is None else max(worst, ratio)
        check("%s names: worst time(4N)/time(N)" % names, worst, 5)
    r = res.get(("none", 32768))
    check("recommit ms with 32768 aliases",
          r[1] if isinstance(r, tuple) else None, 30)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
