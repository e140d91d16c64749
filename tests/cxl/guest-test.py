#!/usr/bin/env python3
"""TCG guests running atomics and page-table walks in a CXL window.

A freestanding payload (tests/cxl/guest/, the -bios image) runs on two
vCPUs under TCG.  The test builds a 4-way CXL topology, commits its
decoders over the qtest protocol while the CPUs are stopped, fills the
payload's parameter block and lets the CPUs run: they build translation
tables inside the window, turn their MMUs on (the walker then sets Access
flags and clears a read-only bit in descriptors that live in the window,
atomically), run code written into the window, rewrite it and run it again
(stale translated code would mean the target RAM's pages are not tracked),
and race on counters in the window with exclusives and LSE
(arm64) or lock-prefixed instructions (x86).  Each machine runs three times:
with the window served as RAM (our route), forced to MMIO (x-ram off),
and flipped between the two 1000 times while the atomics run (the
serialised step of an atomic on MMIO racing the map changes); each must
give exactly the counts the code implies, in the right device's backend
file.

Usage: guest-test.py --qemu-dir BUILD --guest-dir BUILD/guest
"""

import argparse
import os
import shutil
import struct
import sys
import tempfile
import time

from cxltest import Failure, Rig, Step, Topology, check, report

ITERATIONS = 20000
CPUS = 2
# flip mode: route changes while the atomics run, and enough iterations
# that the guest outlasts them
FLIPS = 1000
FLIP_ITERATIONS = 40000000

def q64(q, addr):
    return struct.unpack("<Q", q.read(addr, 8))[0]


def arm_tables_ok(q, pt):
    """The walker set the Access flag of every block it used (code, RAM,
    window) and cleared the read-only bit of the RAM block it wrote."""
    l1a = [q64(q, pt + 0x1000 + 8 * i) for i in range(2)]
    l1b = q64(q, pt + 0x2000)
    for name, d in (("code block", l1a[0]), ("RAM block", l1a[1]),
                    ("window block", l1b)):
        check(d & (1 << 10), "walker did not set the Access flag of the %s:"
              " 0x%x" % (name, d))
    check(not l1a[1] & (1 << 7), "walker did not mark the RAM block dirty "
          "(AP[2] still set): 0x%x" % l1a[1])


def x86_tables_ok(q, pt):
    """The walker set Accessed on the PML4 entry and the pages it used,
    Dirty on those it wrote (low RAM, the window)."""
    pml4 = q64(q, pt)
    check(pml4 & (1 << 5), "walker did not set Accessed in the PML4 entry: "
          "0x%x" % pml4)
    pdpt = [q64(q, pt + 0x1000 + 8 * i) for i in range(8)]
    for name, i, dirty in (("low RAM", 0, True), ("code", 3, False),
                           ("window", 4, True)):
        check(pdpt[i] & (1 << 5), "walker did not set Accessed on the %s "
              "page: 0x%x" % (name, pdpt[i]))
        check(not dirty or pdpt[i] & (1 << 6), "walker did not set Dirty on "
              "the %s page: 0x%x" % (name, pdpt[i]))


# machine, payload, extra args, window, parameter block, offset of the
# CODE parameter, counter names, page-table check
GUESTS = {
    "virt-arm64": dict(
        machine="virt", bios="atomics-aarch64.bin", extra=[],
        window=0x10000000000, params=0x44000000, code_param=0x18,
        names=("ldxr/stxr", "ldadd", "casal", "-", "ldaxp/stlxp lo",
               "ldaxp/stlxp hi"), tables=arm_tables_ok),
    "q35-x86_64": dict(
        machine="q35", bios="atomics-x86_64.bin", extra=["-cpu", "max"],
        window=0x110000000, params=0x200000, code_param=0x30,
        names=("lock inc", "lock xadd", "lock cmpxchg", "-",
               "lock cmpxchg16b lo", "lock cmpxchg16b hi"),
        tables=x86_tables_ok),
}


def run_guest(qemu_dir, guest_dir, g, mode, tmp, flip_iterations):
    iterations = flip_iterations if mode == "flip" else ITERATIONS
    topo = Topology(tmp, [[None] * 4], 4096, 4096, None, 4096)
    rig = Rig(qemu_dir, g["machine"], topo, accel="tcg",
              extra=g["extra"] + ["-smp", str(CPUS), "-bios",
                                  os.path.join(guest_dir, g["bios"]), "-S"])
    with rig:
        q, base, p = rig.q, rig.base, g["params"]
        check(base == g["window"], "window at 0x%x, payload expects 0x%x"
              % (base, g["window"]))
        with Step("commit"):
            rig.program()
            if mode != "ram":
                rig.set_ram(False)
            rig.expect_served("mmio" if mode != "ram" else "ram")
        a, pt, code = base + 0x100000, base + 0x200000, base + 0x300000
        block = bytearray(0x80)
        struct.pack_into("<QQQ", block, 0, a, iterations, pt)
        struct.pack_into("<Q", block, g["code_param"], code)
        q.write(p, bytes(block))
        q.write(a, bytes(64))
        t0, flips = time.time(), 0
        q.qmp("cont")
        while q64(q, p + 0x28) != 0x600df00d:
            check(time.time() - t0 < 600, "guest did not finish (CPU 1 done "
                  "%d, word at +0x30: %d)" % (q64(q, p + 0x20),
                                             q64(q, p + 0x30)))
            if mode == "flip" and flips < FLIPS:
                flips += 1
                # end on RAM, where the rest runs fast
                rig.set_ram(flips % 2 == 1 or flips == FLIPS)
            else:
                time.sleep(0.02)
        took = time.time() - t0
        q.qmp("stop")
        if mode == "flip":
            check(flips == FLIPS, "the guest finished after %d route flips, "
                  "before %d" % (flips, FLIPS))
        n = CPUS * iterations
        with Step("atomics"):
            got = struct.unpack("<6Q", q.read(a, 48))
            for name, v, w in zip(g["names"], got, (n, 3 * n, n, 0, n, n)):
                check(v == w, "%s counter %d, expected %d" % (name, v, w))
            # and in the backend the CXL decode names
            ep, dpa = topo.route(base, a - base)
            with open(ep.path, "rb") as f:
                f.seek(dpa)
                check(struct.unpack("<Q", f.read(8))[0] == n,
                      "the %s counter is not in %s at DPA 0x%x"
                      % (g["names"][0], ep.name, dpa))
        with Step("code in the window"):
            check(q64(q, p + 0x38) == 1 and q64(q, p + 0x40) == 2,
                  "code run from the window returned %d then %d, expected "
                  "1 then 2" % (q64(q, p + 0x38), q64(q, p + 0x40)))
        with Step("page tables in the window"):
            g["tables"](q, pt)
        return took


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu-dir", required=True)
    ap.add_argument("--guest-dir", required=True)
    ap.add_argument("--flip-iterations", type=int, default=FLIP_ITERATIONS,
                    help="atomics per CPU in the flip runs (enough to "
                    "outlast %d route flips)" % FLIPS)
    opt = ap.parse_args()
    passed = failed = 0
    for name, g in GUESTS.items():
        for mode in ("ram", "mmio", "flip"):
            tmp = tempfile.mkdtemp(prefix="cxl-guest-")
            try:
                took = run_guest(opt.qemu_dir, opt.guest_dir, g, mode, tmp,
                                 opt.flip_iterations)
                passed += 1
                print("ok   %s window as %-4s guest ran %.2fs%s"
                      % (name, mode, took, " (%d route flips)" % FLIPS
                         if mode == "flip" else ""))
            except (Failure, RuntimeError, OSError) as e:
                failed += 1
                print("FAIL %s window as %-4s %s" % (name, mode, e))
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
            sys.stdout.flush()
    report(passed, failed)
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
