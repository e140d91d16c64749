#!/usr/bin/env python3
"""KVM memory slots over interleaved CXL windows, checked without a guest.

QEMU runs with -accel kvm -S (the vCPUs never run: on machines whose KVM
cannot run a stock guest this still exercises every memslot call) and
traces kvm_set_user_memory.  Each scenario programs HDM decoders over
qtest as Linux does and proves:

  * a committed window whose targets are shared file or memfd backends is
    exactly one KVM slot over the whole window, and nothing else maps it;
  * that slot's host range is the devices' own memory: bytes written
    through the window (qtest, the per-device route) read back from the
    slot's host address (through /proc/PID/mem), and bytes written at the
    slot's host address land in each device's backend file at the DPA
    the CXL decode prescribes (a model independent of QEMU);
  * uncommit removes the slot, reprogramming brings a new one;
  * where the slot cannot be built (private or anonymous backends,
    vm.max_map_count too small) QEMU says why in one warning, the window
    has no slot (accesses exit to QEMU) and still reads and writes the
    right bytes; raising vm.max_map_count to the value the warning names
    (as root; restored afterwards) then gives the slot;
  * during a migration the window's slot logs dirty pages, and every
    backend byte arrives.

Usage: kvm-memslot-test.py --qemu-dir BUILD [-k NAME]
Prints one line per scenario and "N passed, N failed"; skips (and exits 0)
when /dev/kvm is not usable.
"""

import argparse
import os
import re
import sys
import time

from cxltest import (MaxMapCount, Rig, Runner, Step, Topology, check,
                     max_map_count, pattern, report, set_max_map_count)

NR_HUGEPAGES = "/proc/sys/vm/nr_hugepages"
TRACE = ["-S", "-trace", "kvm_set_user_memory",
         "-trace", "memory_interleave_map_host"]
SLOT_RE = re.compile(r"kvm_set_user_memory AddrSpace#(\d+) Slot#(\d+) "
                     r"flags=0x([0-9a-f]+) gpa=0x([0-9a-f]+) "
                     r"size=0x([0-9a-f]+) ua=0x([0-9a-f]+) .* ret=(-?\d+)")
LOG_DIRTY = 0x1


def slots(rig):
    """The KVM slots now live, from the trace: {(as, slot): (flags, gpa,
    size, ua)}, and every flags value each slot has had."""
    live, history = {}, {}
    for m in SLOT_RE.finditer(rig.q.stderr()):
        key = (int(m.group(1)), int(m.group(2)))
        flags, gpa, size, ua = (int(m.group(i), 16) for i in range(3, 7))
        check(int(m.group(7)) == 0, "KVM refused a slot: " + m.group(0))
        if size:
            live[key] = (flags, gpa, size, ua)
            history.setdefault(key, []).append(flags)
        else:
            live.pop(key, None)
    return live, history


def window_slots(rig):
    """Live slots that overlap the window."""
    live, _ = slots(rig)
    lo, hi = rig.base, rig.base + rig.topo.size
    return {k: v for k, v in live.items()
            if v[1] < hi and v[1] + v[2] > lo}


def expect_one_slot(rig):
    """The window is one slot per address space, covering all of it;
    returns its host address."""
    ws = window_slots(rig)
    check(ws, "no KVM slot over the window")
    uas = set()
    for (asid, n), (flags, gpa, size, ua) in ws.items():
        check(gpa == rig.base and size == rig.topo.size,
              "slot %d of address space %d maps 0x%x+0x%x, expected the "
              "window 0x%x+0x%x" % (n, asid, gpa, size, rig.base,
                                    rig.topo.size))
        uas.add(ua)
    check(len(ws) == len({a for a, _ in ws}),
          "more than one slot over the window in one address space")
    check(len(uas) == 1, "address spaces map the window at different "
          "host addresses")
    return uas.pop()


def expect_no_slot(rig):
    ws = window_slots(rig)
    check(not ws, "the window still has KVM slot(s) %s" % sorted(ws))


def host_read(rig, ua, size):
    with open("/proc/%d/mem" % rig.q.proc.pid, "rb") as f:
        f.seek(ua)
        return f.read(size)


def host_write(rig, ua, data):
    with open("/proc/%d/mem" % rig.q.proc.pid, "r+b", buffering=0) as f:
        f.seek(ua)
        f.write(data)


def same_bytes(rig, ua, tag, size=4 << 20):
    """The window route and the slot's host range hold the same bytes both
    ways, and the backend files hold them where the decode says."""
    rig.write_pattern(tag, size)
    check(host_read(rig, ua, size) == pattern(0, size, tag),
          "the slot's host range does not hold what was written through "
          "the window")
    host_write(rig, ua, pattern(0, size, tag + 1))
    check(rig.read_window(size) == pattern(0, size, tag + 1),
          "the window does not read what was written at the slot's host "
          "address")
    if rig.topo.backend == "file":
        rig.verify_backends(tag + 1, size)


def warnings(rig):
    return [l for l in rig.q.stderr().splitlines()
            if "KVM cannot map the devices directly" in l]


def vmas(rig):
    with open("/proc/%d/maps" % rig.q.proc.pid) as f:
        return sum(1 for _ in f)


def run_stitched(rig, rng):
    v0 = vmas(rig)
    with Step("commit"):
        rig.program()
        rig.expect_served("ram")
        ua = expect_one_slot(rig)
        check(not warnings(rig), "unexpected warning: %s" % warnings(rig))
    with Step("bytes"):
        same_bytes(rig, ua, 1)
        # random granules anywhere in the window, not only the first MiB
        g = rig.topo.min_granule()
        for _ in range(16):
            off = rng.randrange(rig.topo.size // g) * g
            data = pattern(off, g, 9)
            host_write(rig, ua + off, data)
            check(rig.q.b64read(rig.base + off, g) == data,
                  "granule at +0x%x differs between the slot and the "
                  "window" % off)
    with Step("uncommit"):
        v1 = vmas(rig)
        check(v1 - v0 >= rig.topo.size // rig.topo.min_granule(),
              "%d mappings for a window of %d granules" % (
                  v1 - v0, rig.topo.size // rig.topo.min_granule()))
        rig.unprogram()
        rig.expect_served("mmio")
        expect_no_slot(rig)
        # released at once, not when RCU gets to the old memory map
        check(vmas(rig) <= v0 + 16, "%d mappings left of %d after uncommit"
              % (vmas(rig) - v0, v1 - v0))
    with Step("reprogram"):
        rig.program()
        ua = expect_one_slot(rig)
        same_bytes(rig, ua, 3)


def run_shadow(rig, rng):
    """A sub-page window (256 B) is served through its write-back shadow:
    one KVM slot over the whole window, logging dirty pages (the shadow's
    write-back reads KVM's log), and the bytes written through the window
    reach each backend file at the decoded DPA at the next sync point."""
    with Step("commit"):
        rig.program()
        rig.expect_served("shadow")
        expect_one_slot(rig)
        flags = [v[0] for v in window_slots(rig).values()]
        check(all(f & LOG_DIRTY for f in flags), "the shadow's slot does "
              "not log dirty pages: flags %s" % flags)
        check(not warnings(rig), "unexpected warning: %s" % warnings(rig))
    with Step("bytes"):
        rig.write_pattern(1, 4 << 20)
        rig.verify_backends(1, 4 << 20)
        check(rig.read_window(1 << 20) == pattern(0, 1 << 20, 1),
              "the window reads other bytes")
    with Step("uncommit"):
        rig.unprogram()
        rig.expect_served("mmio")
        expect_no_slot(rig)


def run_fallback(rig, rng, why):
    """Stitching refused: one warning that says @why, and the window is
    served through a write-back shadow instead: one KVM slot over it that
    logs dirty pages, and the bytes right."""
    with Step("commit"):
        rig.program()
        rig.expect_served("shadow")
        expect_one_slot(rig)
        w = warnings(rig)
        check(len(w) == 1 and why in w[0],
              "expected one warning saying %r, got %s" % (why, w))
    with Step("bytes"):
        rig.write_pattern(1, 1 << 20)
        check(rig.read_window(1 << 20) == pattern(0, 1 << 20, 1),
              "the window reads other bytes")
        if rig.topo.backend == "file":
            rig.verify_backends(1, 1 << 20)
    return w[0]


def run_private(rig, rng):
    run_fallback(rig, rng, "is a private mapping (set share=on)")


def run_anonymous(rig, rng):
    run_fallback(rig, rng, "has no file descriptor")


def run_hugepages(rig, rng):
    run_fallback(rig, rng, "is not a multiple of the page size 0x200000")


def run_max_map_count(rig, rng):
    """At a limit too small for the window, the warning names the value
    needed; at that value the slot is built."""
    writable = set_max_map_count(65530)         # the kernel's default
    if not writable and max_map_count() > 262144 + 65536:
        print("     (vm.max_map_count is large and read-only here: skipped)")
        return
    w = run_fallback(rig, rng, "vm.max_map_count must be at least")
    need = int(re.search(r"must be at least (\d+)", w).group(1))
    if not writable:
        print("     (vm.max_map_count is read-only here: not raised)")
        return
    with Step("raised to %d" % need):
        rig.unprogram()
        set_max_map_count(need)
        rig.program()
        ua = expect_one_slot(rig)
        same_bytes(rig, ua, 5)


def peak_rss(rig):
    """QEMU's peak resident memory so far (VmHWM), in bytes."""
    with open("/proc/%d/status" % rig.q.proc.pid) as f:
        kb = re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M).group(1)
    return int(kb) << 10


def run_max_map_count_huge(rig, rng):
    """A 64 GiB window at 4 KiB needs 16M mappings: refused before
    anything proportional to the window is built (main built a list of
    every run first: +520 MB and 0.6 s with the BQL held, each commit),
    the warning comes once however often the guest commits, and the
    write-back shadow that serves the window instead fills on touch."""
    set_max_map_count(65530)
    before = peak_rss(rig)
    for i in range(3):
        with Step("commit %d" % i):
            t0 = time.time()
            rig.program()
            took = time.time() - t0
            rig.expect_served("shadow")
            expect_one_slot(rig)
            rig.unprogram()
    grew = peak_rss(rig) - before
    print("     64 GiB window, stitching refused: peak RSS +%d KiB, last "
          "commit %.0f ms" % (grew >> 10, took * 1000))
    check(grew < 64 << 20, "peak RSS grew by %d MiB to refuse the window"
          % (grew >> 20))
    w = warnings(rig)
    check(len(w) == 1 and "vm.max_map_count must be at least" in w[0],
          "expected one warning naming vm.max_map_count, got %s" % w)


def run_dirty_log(rig, rng):
    """Migration to a file: the window's slot logs dirty pages while it
    runs, and the stream carries every byte of every backend."""
    t = rig.topo
    with Step("commit"):
        rig.program()
        ua = expect_one_slot(rig)
        same_bytes(rig, ua, 1)
        key = next(iter(window_slots(rig)))
        _, history = slots(rig)
        check(not any(f & LOG_DIRTY for f in history[key]),
              "the window's slot logs dirty pages before any migration")
    with Step("migrate"):
        mig = os.path.join(t.tmp, "migration")
        rig.q.qmp("migrate", uri="exec:cat > %s" % mig)
        deadline = time.time() + 120
        while rig.q.qmp("query-migrate").get("status") != "completed":
            check(time.time() < deadline, "migration did not complete")
            time.sleep(0.2)
        live, history = slots(rig)
        flags = [f for k, v in live.items() for f in history[k]
                 if v[1] == rig.base]
        check(any(f & LOG_DIRTY for f in flags),
              "the window's slot never logged dirty pages during "
              "migration (flags seen: %s)" % flags)
        size = os.path.getsize(mig)
        check(size > 4 << 20,
              "the migration stream (%d bytes) cannot hold the %d MiB "
              "written" % (size, 4))


def kvm_usable():
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu-dir", required=True)
    ap.add_argument("-k", dest="match", default="")
    ap.add_argument("--seed", type=int, default=1)
    opt = ap.parse_args()
    if not kvm_usable():
        print("skip: /dev/kvm is not usable here")
        report(0, 0)
        return 0
    import random
    runner = Runner(opt.match)
    # the scenarios set vm.max_map_count; put back after each
    restore_limit = MaxMapCount().save().restore

    def run(name, hbs, fn, backend="file", gran=16384, machine="q35"):
        runner.run(name, lambda tmp: Rig(
            opt.qemu_dir, machine, Topology(tmp, hbs, gran, backend=backend),
            TRACE, accel="kvm"),
            lambda rig: fn(rig, random.Random(opt.seed)), restore_limit)

    # 2 ways x 256 MiB at 16 KiB: 32768 mappings, inside the default limit
    run("kvm-stitched-file-16k", [[None] * 2], run_stitched)
    run("kvm-stitched-memfd-16k", [[None], [None]], run_stitched,
        backend="memfd")
    run("kvm-stitched-3way-16k", [[None]] * 3, run_stitched)
    run("kvm-private-backend", [[None] * 2], run_private,
        backend="file-private")
    run("kvm-anonymous-backend", [[None] * 2], run_anonymous, backend="ram")
    # 2 MiB huge pages behind a 16 KiB granule: the page cannot be split
    if opt.match in "kvm-hugepage-backend":
        with open(NR_HUGEPAGES) as f:
            saved_huge = f.read()
        try:
            with open(NR_HUGEPAGES, "w") as f:
                f.write("%d\n" % (int(saved_huge) + 256))
            with open(NR_HUGEPAGES) as f:
                got = int(f.read()) - int(saved_huge)
        except OSError:
            got = 0
        if got >= 256:
            run("kvm-hugepage-backend", [[None] * 2], run_hugepages,
                backend="memfd-huge")
        else:
            print("skip kvm-hugepage-backend: cannot reserve 256 huge pages")
        try:
            with open(NR_HUGEPAGES, "w") as f:
                f.write(saved_huge)
        except OSError:
            pass
    # 4 ways x 256 MiB at 4 KiB: 262144 mappings, over the default limit
    run("kvm-max-map-count-4k", [[None] * 4], run_max_map_count, gran=4096)
    run("kvm-dirty-log-migration", [[None] * 2], run_dirty_log)
    run("kvm-shadow-256", [[None] * 2], run_shadow, gran=256)
    # 4 ways x 16 GiB (sparse memfds) at 4 KiB: 16M mappings
    runner.run("kvm-max-map-count-64g", lambda tmp: Rig(
        opt.qemu_dir, "q35", Topology(tmp, [[None]] * 4, 4096,
                                      backend="memfd", dev_size=16 << 30),
        TRACE, accel="kvm"),
        lambda rig: run_max_map_count_huge(rig, random.Random(opt.seed)),
        restore_limit)
    return runner.summary()


if __name__ == "__main__":
    sys.exit(main())
