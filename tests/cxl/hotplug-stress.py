#!/usr/bin/env python3
"""Memory hotplug stress next to a committed CXL window (q35, qtest).

A q35 machine with a 4-way CXL window committed and served as RAM, and a
test object mapping hundreds of I/O alias sections, runs N cycles of:

  pc-dimm      device_add, device_del, then the eject a guest's ACPI
               code performs (memory hotplug registers at 0xa00: select
               the slot, set the eject bit)
  virtio-mem   device_add behind a hotplug-capable root port with the
               slot powered on, device_del, slot power off (the guest's
               answer), nothing ever plugged

Every --check-every cycles it checks that the window is still RAM and
reads what was written, and records the dispatch section count; at the
end the count must equal the one at the start.  It reports the cost of
the plug commits over time (median per slice and the slope).

Usage: hotplug-stress.py --qemu-dir BUILD [--cycles N]
"""

import argparse
import re
import shutil
import statistics
import sys
import tempfile
import time

from cxltest import (Failure, Rig, Topology, check, pattern, pcie_cap,
                     report)

MHP_BASE = 0xa00
HP_RP_BUS, HP_RP_DEV = 0, 0x10


def sections(q):
    out = q.hmp("info mtree -f -d")
    view = [v for v in out.split("FlatView #") if 'AS "memory"' in v][0]
    return len(re.findall(r"^\s*#\d+ @", view, re.M))


def gone(q, name):
    return all(c["name"] != name
               for c in q.qmp("qom-list", path="/machine/peripheral"))


def wait_gone(q, name):
    deadline = time.time() + 10
    while not gone(q, name):
        check(time.time() < deadline, "%s was not unplugged" % name)
        time.sleep(0.001)


def slot_power(q, cap, on):
    ctl = q.cfg_read32(HP_RP_BUS, HP_RP_DEV, 0, cap + 0x18) & 0xffff
    ctl &= ~(0x400 | 0x300)
    ctl |= 0x100 if on else (0x400 | 0x300)     # indicator on / power off
    q.cfg_write32(HP_RP_BUS, HP_RP_DEV, 0, cap + 0x18, ctl)


def slope(times):
    """Least-squares slope, ms per 1000 cycles."""
    n = len(times)
    mx, my = (n - 1) / 2, statistics.fmean(times)
    num = sum((i - mx) * (t - my) for i, t in enumerate(times))
    den = sum((i - mx) ** 2 for i in range(n))
    return num / den * 1000 if den else 0.0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu-dir", required=True)
    ap.add_argument("--cycles", type=int, default=10000)
    ap.add_argument("--check-every", type=int, default=1000)
    opt = ap.parse_args()
    tmp = tempfile.mkdtemp(prefix="cxl-hotplug-")
    topo = Topology(tmp, [[None] * 4], 4096, 4096, None, 4096)
    # native PCIe hotplug on the root port: the test plays the guest
    extra = ["-global", "ICH9-LPC.acpi-pci-hotplug-with-bridge-support=off",
             "-m", "256M,slots=4,maxmem=4G",
             "-object", "memory-backend-ram,id=hp-dimm,size=128M",
             "-object", "memory-backend-ram,id=hp-vmem,size=128M",
             "-device", "pcie-root-port,id=hp-rp,bus=pcie.0,addr=0x%x,"
             "chassis=50,slot=50" % HP_RP_DEV,
             "-device", "x-alias-interleave-testdev,id=il,count=512,"
             "granule=16384,targets=4,addr=0x40000000000,"
             "targets-addr=0x80000000000,mmio=on"]
    rig = Rig(opt.qemu_dir, "q35", topo, extra=extra)
    q, err = rig.q, None
    times = {"pc-dimm": [], "virtio-mem": []}
    t0 = time.time()
    print("hotplug-stress: %d cycles of pc-dimm and virtio-mem" % opt.cycles,
          flush=True)
    try:
        rig.program()
        rig.expect_served("ram")
        rig.write_pattern(1, 1 << 20)
        start = sections(q)
        cap = pcie_cap(q, HP_RP_BUS, HP_RP_DEV)
        for i in range(1, opt.cycles + 1):
            t = time.perf_counter()
            q.qmp("device_add", driver="pc-dimm", id="dimm", memdev="hp-dimm")
            times["pc-dimm"].append((time.perf_counter() - t) * 1e3)
            q.qmp("device_del", id="dimm")
            q.cmd("outl 0x%x 0x0" % MHP_BASE)            # select slot 0
            q.cmd("outb 0x%x 0x8" % (MHP_BASE + 0x14))   # eject
            wait_gone(q, "dimm")

            slot_power(q, cap, True)
            t = time.perf_counter()
            q.qmp("device_add", driver="virtio-mem-pci", id="vmem",
                  memdev="hp-vmem", bus="hp-rp", **{"requested-size": 0})
            times["virtio-mem"].append((time.perf_counter() - t) * 1e3)
            q.qmp("device_del", id="vmem")
            slot_power(q, cap, False)
            wait_gone(q, "vmem")

            if i % opt.check_every == 0 or i == opt.cycles:
                rig.expect_served("ram")
                check(rig.read_window(1 << 20) == pattern(0, 1 << 20, 1),
                      "window content changed after %d cycles" % i)
                n = sections(q)
                print("  %6d cycles %6.1fs  sections %d  pc-dimm add %.2f ms,"
                      " virtio-mem add %.2f ms (medians of the last %d)"
                      % (i, time.time() - t0, n,
                         statistics.median(times["pc-dimm"][-opt.check_every:]),
                         statistics.median(
                             times["virtio-mem"][-opt.check_every:]),
                         opt.check_every), flush=True)
        end = sections(q)
        check(end == start, "sections: %d at the start, %d at the end"
              % (start, end))
    except (Failure, RuntimeError, OSError) as e:
        err = str(e)
    finally:
        log = rig.q.stderr()
        rig.close()
        rc = rig.q.proc.returncode
        shutil.rmtree(tmp, ignore_errors=True)
    if rc:
        err = (err or "") + " QEMU exited %d: %s" % (rc, log.strip()[-1500:])
    for k, v in times.items():
        if len(v) > 10:
            tenth = max(len(v) // 10, 1)
            print("  %-10s add: first %d median %.2f ms, last %d median %.2f"
                  " ms, slope %+.3f ms per 1000 cycles"
                  % (k, tenth, statistics.median(v[:tenth]), tenth,
                     statistics.median(v[-tenth:]), slope(v)))
    if err:
        print("FAIL " + err)
        report(0, 1)
        return 1
    print("ok   %d cycles, sections back to %d, window intact, %.1fs"
          % (opt.cycles, end, time.time() - t0))
    report(1, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
