#!/usr/bin/env python3
"""No write lost: route changes while the guest and devices write.

A window of one host bridge with four root ports holds two regions at a
sub-page granule (each served by a write-back shadow of its own): region
A = ep0 + ep1 (host-bridge decoder 0), region B = ep2 + ep3 (decoder 1).
The scenarios change routes under writes and prove, against an
independent model of the decode, that every byte written is in the
backend the decode names:

  * a device of region A unplugged (or sanitized) while a guest writes
    region B: B keeps its shadow, and every word of the guest's pass is in
    ep2/ep3;
  * a device holds an address_space_map() of region B across a route
    change (ram-route, an unplug or a sanitize in region A), then fills
    and unmaps it: the bytes are in the window and in the files;
  * -overcommit mem-lock=on and =on-fault: the window reads the files,
    and what the guest writes reaches them, before and after stop/cont;
  * a shadow's write-back period takes effect when it is set;
  * a first-touch fill that fails is tried again, and the thread that
    faulted is not left asleep;
  * one fill thread and one writer thread serve every shadow, and end
    with the last;
  * the guest uncommits region A itself right after writing it: every
    word it wrote is in ep0/ep1;
  * a stitched window migrates paused before switchover, with writes and
    a route change (or a DMA mapping held across one) in that pause: the
    destination's files are the source's;
  * churn: a guest writes region B without pause while route changes of
    every kind are made (ram-route, an uncommit, an unplug and replug, a
    sanitize, the write-back period), each with a DMA mapping held across
    it; after each, every word the guest wrote is in the backends.

Usage: retire-test.py --qemu-dir BUILD --guest-dir GUEST [--tier ci|full]
       [-k NAME]
Prints one line per scenario and "N passed, N failed"; exits non-zero on
any failure.
"""

import os
import random
import re
import struct
import sys
import time

from cxltest import (Rig, Step, Topology, check, pcie_cap,
                     scenario_cli)
from cxltest import qtest as cq
from cxltest.scenario import (check_writer_buffer, destination, files_equal,
                              mailbox_of, probe_bytes, q64, unplug_first,
                              wait_migration, wait_writer, writer_params)

DMA_DEV = "/machine/peripheral/dma"


def half(rig):
    return rig.topo.size // 2


def program_two(rig, which=("A", "B")):
    """Commit region A (ep0 + ep1, host-bridge decoder 0) and region B
    (ep2 + ep3, decoder 1), each 2-way at the endpoints' granule."""
    t, b, h = rig.topo, rig.base, half(rig)
    hb = t.hbs[0][0]
    for r in which:
        k = "AB".index(r)
        for ep in t.eps[2 * k:2 * k + 2]:
            rig.commit(rig.bar0[ep.name], 0, b + k * h, h, 2, t.gep,
                       what=ep.name)
        rig.commit(rig.hbregs[hb], k, b + k * h, h, 2, t.gep,
                   targets=[2 * k, 2 * k + 1], what=hb)


def uncommit_a(rig):
    """Tear region A down (host bridge first, as Linux does); region B's
    decoders stay committed."""
    t = rig.topo
    rig.uncommit(rig.hbregs[t.hbs[0][0]], 0)
    for ep in t.eps[:2]:
        rig.uncommit(rig.bar0[ep.name], 0)


def recommit_a(rig):
    """Region A again, endpoints first."""
    t, b, h = rig.topo, rig.base, half(rig)
    for ep in t.eps[:2]:
        rig.commit(rig.bar0[ep.name], 0, b, h, 2, t.gep, what=ep.name)
    rig.commit(rig.hbregs[t.hbs[0][0]], 0, b, h, 2, t.gep, targets=[0, 1],
               what=t.hbs[0][0])


def route2(rig, off):
    """(endpoint, DPA) of window offset @off under program_two()."""
    t, h, g = rig.topo, half(rig), rig.topo.gep
    k, o = divmod(off, h)
    hpa = rig.base + off
    ep = t.eps[2 * k + (hpa // g) % 2]
    return ep, (o // (2 * g)) * g + o % g


def from_backends(rig, off, size):
    """Window bytes [off, off + size) as the backend files hold them."""
    g, out = rig.topo.gep, bytearray()
    files = {}
    try:
        for o in range(off, off + size, g):
            ep, dpa = route2(rig, o)
            f = files.get(ep.name) or files.setdefault(
                ep.name, open(ep.path, "rb"))
            f.seek(ep.file_offset + dpa)
            out += f.read(g)
    finally:
        for f in files.values():
            f.close()
    return bytes(out)


def flat_name_at(rig, off):
    """The name of the region info mtree -f shows at window + @off."""
    addr = rig.base + off
    out = rig.q.hmp("info mtree -f")
    view = [v for v in out.split("FlatView #") if 'AS "memory"' in v][0]
    for m in re.finditer(r"^\s*([0-9a-f]+)-([0-9a-f]+) \([^)]*\): (\S+)",
                         view, re.M):
        if int(m.group(1), 16) <= addr <= int(m.group(2), 16):
            return m.group(3)
    return None


def shadow_child(rig, off):
    """The QOM child name of the shadow serving window + @off."""
    name = flat_name_at(rig, off)
    check(name and ".shadow" in name, "window +0x%x is served by %s, not "
          "a shadow" % (off, name))
    return name.split(".")[-1]


def filled(rig, child):
    return rig.q.qmp("qom-get", path="%s/%s" % (rig.fmw, child),
                     property="x-filled-pages")


def dma(rig, op, addr=None, size=None, seed=None):
    q = rig.q
    for k, v in (("addr", addr), ("len", size), ("seed", seed)):
        if v is not None:
            q.qmp("qom-set", path=DMA_DEV, property=k, value=v)
    q.qmp("qom-set", path=DMA_DEV, property="op", value=op)
    return {k: q.qmp("qom-get", path=DMA_DEV, property=k)
            for k in ("pieces", "max-piece", "mismatches")}


def dma_landed(rig, addr, size, seed, what):
    """The DMA probe's bytes are in the backend files at @addr."""
    got = from_backends(rig, addr - rig.base, size)
    check(got == probe_bytes(addr, size, seed), "%s: the bytes a device "
          "wrote through its mapping are not in the backends" % what)


# --- a device of region A goes while the guest writes region B ---------

def run_other_region_unplug(rig, rng):
    """ep0 is unplugged while the guest makes one pass over 256 MiB of
    region B: region A goes to the decode, region B keeps its shadow (the
    same one, with the pages it filled), and every word of the pass is in
    ep2/ep3."""
    wp = writer_params(rig)
    q, h, size = rig.q, half(rig), 256 << 20
    program_two(rig)
    b_shadow = shadow_child(rig, h)
    shadow_child(rig, 0)
    q.write(wp, struct.pack("<8Q", rig.base + h, size, 0, 0, 0, 0,
                                       8, 1))
    q.qmp("cont")
    deadline = time.time() + 30
    while filled(rig, b_shadow) < 512:
        check(time.time() < deadline, "the guest does not write region B")
        time.sleep(0.005)
    with Step("ep0 unplugged during the pass"):
        before = filled(rig, b_shadow)
        unplug_first(rig)
        check(q64(q, wp + 0x10) == 0, "the pass was over before "
              "the unplug: this run proves nothing")
        check(flat_name_at(rig, 0) == "cxl-fixed-memory-region.mmio",
              "region A is served by %s after the unplug, not the decode"
              % flat_name_at(rig, 0))
        check(shadow_child(rig, h) == b_shadow,
              "region B's shadow %s was replaced by %s"
              % (b_shadow, shadow_child(rig, h)))
        after = filled(rig, b_shadow)
        check(after >= before, "region B's shadow dropped its pages "
              "(%d filled before the unplug, %d after)" % (before, after))
    with Step("the pass, in ep2 and ep3"):
        wait_writer(rig, 1, secs=300, since=0)
        q.qmp("stop")
        check_writer_buffer(from_backends(rig, h, size), "region B in the "
                            "backends")


# --- the guest uncommits what it just wrote ----------------------------

def run_guest_uncommits(rig, rng):
    """The guest makes one pass over 64 MiB of region A, then uncommits
    region A's decoders itself (host bridge, then endpoints), right after
    its last store: every word of the pass is in ep0/ep1, and region A is
    on the decode."""
    wp = writer_params(rig)
    q, size, t = rig.q, 64 << 20, rig.topo
    program_two(rig)
    shadow_child(rig, 0)
    regs = [rig.hbregs[t.hbs[0][0]] + cq.hdm_reg(0, "ctrl")] + \
        [rig.bar0[ep.name] + cq.hdm_reg(0, "ctrl") for ep in t.eps[:2]]
    stores = []
    for reg in regs:
        stores += [reg, q.readl(reg) & ~cq.CTRL_COMMIT]
    q.write(wp, struct.pack("<9Q", rig.base, size, 0, 0, 0, 0, 8,
                                       1, len(regs)))
    q.write(wp + 0x48, struct.pack("<%dQ" % len(stores),
                                              *stores))
    q.qmp("cont")
    deadline = time.time() + 120
    while q64(q, wp + 0xc8) != 1:
        check(not q64(q, wp + 0x20), "the guest took an "
              "exception: ESR 0x%x" % q64(q, wp + 0x20))
        check(time.time() < deadline, "the guest did not uncommit")
        time.sleep(0.01)
    check(flat_name_at(rig, 0) == "cxl-fixed-memory-region.mmio",
          "region A is served by %s after the guest uncommitted it"
          % flat_name_at(rig, 0))
    q.qmp("stop")
    check_writer_buffer(from_backends(rig, 0, size), "region A in the "
                        "backends")


def run_guest_unplugs(rig, rng):
    """The guest makes one pass over 64 MiB of region A, then powers ep0's
    slot off itself (the host pressed the attention button: device_del),
    right after its last store.  The unplug runs in the vCPU thread, whose
    pass waits for the main loop: every word of the pass is in ep0/ep1,
    region A is on the decode, and region B keeps its shadow."""
    wp = writer_params(rig)
    q, size, h = rig.q, 64 << 20, half(rig)
    program_two(rig)
    shadow_child(rig, 0)
    b_shadow = shadow_child(rig, h)
    gone = rig.topo.eps[0]
    check(q.ecam is not None, "the guest reaches config space via ECAM")
    hb_bus = 16
    slot = q.ecam + (hb_bus << 20) + pcie_cap(q, hb_bus, 0) + 0x18
    ctl = q.readl(slot) & 0xffff
    q.qmp("device_del", id=gone.name)
    q.write(wp, struct.pack("<9Q", rig.base, size, 0, 0, 0, 0, 8, 1, 1))
    q.write(wp + 0x48, struct.pack("<2Q", slot, ctl | 0x400 | 0x300))
    q.qmp("cont")
    deadline = time.time() + 120
    while q64(q, wp + 0xc8) != 1:
        check(not q64(q, wp + 0x20), "the guest took an "
              "exception: ESR 0x%x" % q64(q, wp + 0x20))
        check(time.time() < deadline, "the guest did not power the slot "
              "off")
        time.sleep(0.01)
    while any(c["name"] == gone.name for c in
              q.qmp("qom-list", path="/machine/peripheral")):
        check(time.time() < deadline, "%s was not unplugged" % gone.name)
        time.sleep(0.05)
    check(flat_name_at(rig, 0) == "cxl-fixed-memory-region.mmio",
          "region A is served by %s after the guest unplugged ep0"
          % flat_name_at(rig, 0))
    check(shadow_child(rig, h) == b_shadow, "region B's shadow %s was "
          "replaced by %s" % (b_shadow, shadow_child(rig, h)))
    q.qmp("stop")
    check_writer_buffer(from_backends(rig, 0, size), "region A in the "
                        "backends")


# --- a sync point that leaves the VM running ---------------------------

def run_sync_command(rig, rng):
    """The guest writes region B pass after pass (pass g stores g << 32 |
    o at offset o), its shadow's background write-back all but off (a
    period of 2^32 - 1 ms).  After pass g completes, the backends do not
    hold it yet; once cxl-sync-windows returns, every word in them is of
    pass g or later (the guest goes on writing: later words may be of
    later passes), while the VM runs on with the same shadow and the
    pages it filled."""
    wp = writer_params(rig)
    q, h, size = rig.q, half(rig), 16 << 20
    program_two(rig)
    b_shadow = shadow_child(rig, h)
    q.qmp("qom-set", path="%s/%s" % (rig.fmw, b_shadow),
          property="x-writeback-period-ms", value=0xffffffff)
    q.write(wp, struct.pack("<8Q", rig.base + h, size, 0, 0, 0, 0, 8, 0))
    q.qmp("cont")

    def backend_words():
        return struct.unpack("<%dQ" % (size // 8),
                             from_backends(rig, h, size))

    for rnd in range(3):
        with Step("sync %d" % rnd):
            # two: the last sync may have caught some of the pass after
            wait_writer(rig, 2, secs=120)
            done = q64(q, wp + 0x10)
            check(min(w >> 32 for w in backend_words()) < done,
                  "the backends hold all of pass %d before the sync: this "
                  "run proves nothing" % done)
            before = filled(rig, b_shadow)
            q.qmp("cxl-sync-windows")
            for i, w in enumerate(backend_words()):
                check(w & 0xffffffff == i * 8 and w >> 32 >= done,
                      "region B +0x%x holds 0x%x in the backends after the "
                      "sync; the guest had completed pass %d before it"
                      % (i * 8, w, done))
            check(q.qmp("query-status")["status"] == "running",
                  "the sync stopped the VM")
            check(shadow_child(rig, h) == b_shadow and
                  filled(rig, b_shadow) >= before,
                  "the sync dropped region B's shadow or its pages")


# --- a DMA mapping held across a route change --------------------------

def sanitize_ep0(rig):
    """Sanitize ep0 (region A), to completion: its media go away and come
    back (qtest accelerator: the operation's time is stepped)."""
    q = rig.q
    mbox = mailbox_of(q, rig.topo.eps[0])
    q.cmd("writeq 0x%x 0x4400" % (mbox + 0x8))
    q.writel(mbox + 0x4, 1)
    sts = int(q.cmd("readq 0x%x" % (mbox + 0x10)), 16)
    check((sts >> 32) & 0xffff == 1, "Sanitize did not start: 0x%x" % sts)
    q.cmd("clock_step %d" % (30 * 10**9))


def set_route(rig, value):
    # the path the user guide gives (-M cxl-fmw.0 is /machine/cxl-fmw[0])
    check(rig.fmw == "/machine/cxl-fmw[0]", "the window's QOM path is %s, "
          "not the user guide's /machine/cxl-fmw[0]" % rig.fmw)
    rig.q.qmp("qom-set", path="/machine/cxl-fmw[0]", property="ram-route",
              value=value)


TRIGGERS = {
    "route-mmio": lambda rig: set_route(rig, "mmio"),
    "route-shadow": lambda rig: set_route(rig, "shadow"),
    "unplug": unplug_first,
    "sanitize": sanitize_ep0,
}


def run_dma_across(rig, rng, trigger):
    """A device maps a page of region B (address_space_map, as an
    in-flight block request does), the route changes, the device fills
    the page and unmaps it: its bytes reach the backends and the window
    shows them, before and after stop/cont.  With ram-route the page's
    shadow is retired while mapped, and the window is read in between,
    so that the new shadow holds the page's old bytes; an unplug or a
    sanitize in region A must leave region B's shadow alone (on the main
    before pieces had identity, they retired it too)."""
    q, h = rig.q, half(rig)
    program_two(rig)
    addr, seed = rig.base + h + 77 * 4096, rng.randrange(1, 255)
    r = dma(rig, "hold-map", addr, 4096, 0)
    check(r["pieces"] == 1 and r["max-piece"] == 4096, "hold-map: %s" % r)
    TRIGGERS[trigger](rig)
    old = q.read(addr, 4096)        # the new route fills the page now
    dma(rig, "hold-release", seed=seed)
    want = probe_bytes(addr, 4096, seed)
    check(old != want, "the page held the probe's bytes already")
    with Step("running"):
        deadline = time.time() + 5
        while from_backends(rig, addr - rig.base, 4096) != want or \
                q.read(addr, 4096) != want:
            check(time.time() < deadline, "5 s after the device unmapped, "
                  "%s" % ("the window does not show its bytes"
                          if from_backends(rig, addr - rig.base, 4096) ==
                          want else "its bytes are not in the backends"))
            time.sleep(0.01)
    with Step("after stop and cont"):
        q.qmp("stop")
        dma_landed(rig, addr, 4096, seed, "stopped")
        q.qmp("cont")
        check(q.read(addr, 4096) == want, "the window does not show the "
              "device's bytes after cont")


def run_dma_shares_page(rig, rng):
    """A device maps 512 bytes of a page of region B, the route changes
    (ram-route shadow: region B's shadow retires and a new one serves
    it), the guest writes other bytes of the same page through the new
    route, then the device fills its 512 bytes and unmaps: both writes are
    in the backends and the window, neither undoes the other."""
    q, h = rig.q, half(rig)
    program_two(rig)
    page = rig.base + h + 4096 * rng.randrange(16, 4096)
    q.write(page, b"\x5a" * 4096)        # a filled page, not zeros
    r = dma(rig, "hold-map", page, 512, 0)
    check(r["pieces"] == 1 and r["max-piece"] == 512, "hold-map: %s" % r)
    set_route(rig, "shadow")
    guest = struct.pack("<Q", 0x6e57000000000000 | rng.randrange(1 << 32))
    q.write(page + 1024, guest)
    seed = rng.randrange(1, 255)
    dma(rig, "hold-release", seed=seed)
    want = bytearray(b"\x5a" * 4096)
    want[:512] = probe_bytes(page, 512, seed)
    want[1024:1032] = guest
    deadline = time.time() + 5
    while from_backends(rig, page - rig.base, 4096) != want:
        got = from_backends(rig, page - rig.base, 4096)
        check(time.time() < deadline, "5 s after the device unmapped: %s"
              % ("the guest's write through the new route was undone"
                 if got[:512] == want[:512] else
                 "the device's bytes are not in the backends"))
        time.sleep(0.01)
    check(q.read(page, 4096) == bytes(want), "the window does not show both "
          "writes")
    q.qmp("stop")
    check(from_backends(rig, page - rig.base, 4096) == want, "after stop, "
          "the backends lost one of the two writes")


# --- a stitched piece retired before the last dirty sync --------------

def run_stitched_switchover(rig, rng, variant):
    """Live migration of a window served through its stitched mapping
    (x-stitched, 16 KiB), paused before switchover.  There 1 MiB is
    written through the window, then the route changes (ram-route mmio,
    or an uncommit); or, instead of that write, a device holds a mapping
    across the uncommit, then fills it and unmaps.  After migrate-continue
    every destination backend file is the source's."""
    q, t = rig.q, rig.topo
    q.qmp("qom-set", path=rig.fmw, property="x-stitched", value=True)
    rig.program()
    check(".stitched" in (flat_name_at(rig, 0) or ""), "the window is not "
          "stitched")
    dst, dt, sock = destination(rig)
    try:
        q.qmp("migrate-set-capabilities", capabilities=[
            {"capability": "pause-before-switchover", "state": True}])
        q.qmp("migrate", uri="unix:" + sock)
        deadline = time.time() + 60
        while q.qmp("query-migrate").get("status") != "pre-switchover":
            check(time.time() < deadline, "no pre-switchover")
            time.sleep(0.02)
        addr, seed = rig.base + (3 << 20) + 4096 * rng.randrange(64), 77
        if variant == "dma":
            check(dma(rig, "hold-map", addr, 4096, 0)["pieces"] == 1,
                  "hold-map failed")
        else:
            q.b64write(rig.base + (1 << 20),
                       bytes(rng.randrange(256) for _ in range(4096)) * 256)
        if variant == "route-mmio":
            set_route(rig, "mmio")
        else:
            rig.unprogram()
        if variant == "dma":
            dma(rig, "hold-release", seed=seed)
        q.qmp("migrate-continue", state="pre-switchover")
        wait_migration(q, "outgoing")
        wait_migration(dst.q, "incoming")
        for a, b in zip(t.eps, dt.eps):
            off = files_equal(a.path, b.path)
            check(off is None, "%s differs from the source at DPA 0x%x"
                  % (b.name, off or 0))
    finally:
        dst.close()


# --- locked memory -----------------------------------------------------

def run_mem_lock(rig, rng):
    """Under -overcommit mem-lock the window reads what the files hold,
    and the guest's writes reach them, before and after a stop/cont."""
    q, size = rig.q, 1 << 20
    program_two(rig, "A")
    child = shadow_child(rig, 0)
    if locked_kib(q):
        check(not q.qmp("qom-get", path="%s/%s" % (rig.fmw, child),
                        property="x-lazy"),
              "a shadow of locked memory claims to fill on first touch")
    else:
        # AddressSanitizer makes mlockall() a no-op
        print("     nothing is locked (VmLck 0): the shadow may be lazy")
    check(q.read(rig.base, size) == from_backends(rig, 0, size),
          "the window does not read what the backend files hold")
    for tag in (1, 2):
        data = bytes((tag * 16 + i) & 0xff for i in range(256)) * (size //
                                                                   256)
        q.b64write(rig.base, data)
        q.qmp("stop")
        check(from_backends(rig, 0, size) == data, "write %d: the files do "
              "not hold what the guest wrote" % tag)
        q.qmp("cont")


def locked_kib(q):
    """QEMU's locked memory (VmLck), in KiB."""
    with open("/proc/%d/status" % q.proc.pid) as f:
        for line in f:
            if line.startswith("VmLck:"):
                return int(line.split()[1])
    return 0


def prefilled(make):
    """Backend files holding a byte of their own (0x40 + device) before
    QEMU starts."""
    def build(tmp, qemu_dir):
        t = make(tmp)
        for i, ep in enumerate(t.eps):
            with open(ep.path, "wb") as f:
                f.write(bytes([0x40 + i]) * t.dev_size)
        return t
    return build


# --- the write-back period, fill failures ------------------------------

def run_period_now(rig, rng):
    """A shadow made with a 49-day write-back period, set to 20 ms: the
    next write reaches its backend within a second, not after the tick
    already scheduled."""
    q = rig.q
    q.qmp("qom-set", path=rig.fmw, property="x-shadow-period-ms",
          value=0xffffffff)
    program_two(rig, "A")
    child = shadow_child(rig, 0)
    q.qmp("qom-set", path="%s/%s" % (rig.fmw, child),
          property="x-writeback-period-ms", value=20)
    data = struct.pack("<Q", 0x9e410d0000000000 | rng.randrange(1 << 32))
    off = 8 * rng.randrange(4096)
    q.write(rig.base + off, data)
    deadline = time.time() + 1
    while from_backends(rig, off & ~255, 256)[off % 256:off % 256 + 8] != data:
        check(time.time() < deadline, "the write is not in its backend "
              "1 s after the period was set to 20 ms")
        time.sleep(0.005)


def run_idle_no_snapshots(rig, rng):
    """At the default period, a write reaches its backend; then, with
    nothing written for a second, the background write-back takes no
    snapshot of the dirty log (each takes the BQL and waits for every
    vCPU); the next write is written back as before."""
    q = rig.q
    program_two(rig, "A")
    path = "%s/%s" % (rig.fmw, shadow_child(rig, 0))

    def snapshots():
        return q.qmp("qom-get", path=path, property="x-background-snapshots")

    def write_and_wait(what):
        data = struct.pack("<Q", 0x1d1e000000000000 | rng.randrange(1 << 32))
        off = 8 * rng.randrange(4096)
        q.write(rig.base + off, data)
        deadline = time.time() + 2
        while from_backends(rig, off & ~255, 256)[off % 256:off % 256 + 8] \
                != data:
            check(time.time() < deadline, "%s: the write is not in its "
                  "backend after 2 s" % what)
            time.sleep(0.005)

    write_and_wait("first write")
    time.sleep(0.1)             # the write-back that copied it is over
    before = snapshots()
    check(before >= 1, "the first write was written back without a "
          "background snapshot")
    time.sleep(1)
    idle = snapshots() - before
    check(idle == 0, "%d background snapshots in one second with nothing "
          "written" % idle)
    write_and_wait("write after idle")
    check(snapshots() > before, "the write after idle was written back "
          "without a background snapshot")


def shadow_threads(rig):
    """{thread name: count} of QEMU's shadow threads (-name
    debug-threads=on names them)."""
    out = {}
    task = "/proc/%d/task" % rig.q.proc.pid
    for tid in os.listdir(task):
        try:
            with open(os.path.join(task, tid, "comm")) as f:
                name = f.read().strip()
        except FileNotFoundError:
            continue            # it ended meanwhile
        if name.startswith("cxl-shadow"):
            out[name] = out.get(name, 0) + 1
    return out


def run_shadow_threads(rig, rng):
    """One fill thread and one writer thread serve every shadow of the
    process: none before the first shadow, one of each with the two
    regions' shadows live (each shadow's first touch filled, each write
    written back in the background), none once both regions are torn
    down and their shadows gone, and one of each again for new ones."""
    q, h = rig.q, half(rig)
    one_each = {"cxl-shadow-fill": 1, "cxl-shadow-wb": 1}

    def settle(want, what):
        deadline = time.time() + 5
        while shadow_threads(rig) != want and time.time() < deadline:
            time.sleep(0.05)
        got = shadow_threads(rig)
        check(got == want, "%s: shadow threads %s, expected %s"
              % (what, got, want))

    def write_both(what):
        for off in (0, h):
            data = struct.pack("<Q", 0x7e4d000000000000 | off |
                               rng.randrange(1 << 20) << 3)
            at = off + 8 * rng.randrange(h // 8)
            q.write(rig.base + at, data)
            deadline = time.time() + 2
            while from_backends(rig, at & ~255, 256)[at % 256:at % 256 + 8] \
                    != data:
                check(time.time() < deadline, "%s: a write to region %s is "
                      "not in its backend after 2 s" % (what, "AB"[off // h]))
                time.sleep(0.005)

    with Step("no shadow"):
        settle({}, "before any decoder is committed")
    with Step("two shadows"):
        program_two(rig)
        check(shadow_child(rig, 0) != shadow_child(rig, h),
              "regions A and B are served by one shadow")
        write_both("two shadows")
        check(filled(rig, shadow_child(rig, 0)) and
              filled(rig, shadow_child(rig, h)),
              "a shadow was filled without its first touch")
        settle(one_each, "two live shadows")
    with Step("torn down"):
        uncommit_a(rig)
        t = rig.topo
        rig.uncommit(rig.hbregs[t.hbs[0][0]], 1)
        for ep in t.eps[2:]:
            rig.uncommit(rig.bar0[ep.name], 0)
        settle({}, "both regions torn down")
    with Step("again"):
        program_two(rig)
        write_both("shadows made again")
        settle(one_each, "two new shadows")


def run_fill_fails(rig, rng):
    """Five first-touch fills fail as if out of memory: the thread that
    touched the page (here the main loop, reading through qtest) is woken,
    the fill is tried again, and the read returns the files' bytes."""
    q = rig.q
    program_two(rig, "A")
    child = shadow_child(rig, 0)
    check(q.qmp("qom-get", path="%s/%s" % (rig.fmw, child),
                property="x-lazy"), "the shadow is not filled lazily")
    q.qmp("qom-set", path="%s/%s" % (rig.fmw, child), property="x-fill-fail",
          value=5)
    off = 4096 * rng.randrange(1024, 2048)
    check(q.read(rig.base + off, 4096) == from_backends(rig, off, 4096),
          "the page read after failed fills is not the files' bytes")
    check(q.qmp("qom-get", path="%s/%s" % (rig.fmw, child),
                property="x-fill-fail") == 0, "the fill was not tried again")


# --- churn -------------------------------------------------------------

def unplug_ep0(rig):
    """Unplug ep0 (region A), remembering its BARs for replug_ep0()."""
    q = rig.q
    sec = (q.cfg_read32(16, 0, 0, 0x18) >> 8) & 0xff
    rig.ep0_bars = (sec, [q.cfg_read32(sec, 0, 0, 0x10 + 4 * i)
                          for i in range(6)])
    unplug_first(rig)


def replug_ep0(rig):
    """ep0 again, on the same backend: device_add, the slot powered on,
    its BARs where they were, its decoder committed as before."""
    q, t = rig.q, rig.topo
    sec, bars = rig.ep0_bars
    q.qmp("device_add", driver="cxl-type3", bus="h0rp0", id=t.eps[0].name,
          **{"volatile-memdev": "m0"})
    cap = pcie_cap(q, 16, 0)
    ctl = q.cfg_read32(16, 0, 0, cap + 0x18) & 0xffff
    q.cfg_write32(16, 0, 0, cap + 0x18, (ctl & ~0x700) | 0x100)
    deadline = time.time() + 10
    while q.cfg_read32(sec, 0, 0, 0) & 0xffff == 0xffff:
        check(time.time() < deadline, "ep0 did not come back")
        time.sleep(0.02)
    for i, bar in enumerate(bars):
        q.cfg_write32(sec, 0, 0, 0x10 + 4 * i, bar)
    q.cfg_write32(sec, 0, 0, 0x04, 0x6)
    rig.discover()
    ep = t.eps[0]
    rig.commit(rig.bar0[ep.name], 0, rig.base, half(rig), 2, t.gep,
               what=ep.name)


def sanitize_start(rig):
    """Sanitize ep0: its media go away for about 4 s (virtual time, which
    runs with the guest)."""
    q = rig.q
    mbox = mailbox_of(q, rig.topo.eps[0])
    q.cmd("writeq 0x%x 0x4400" % (mbox + 0x8))
    q.writel(mbox + 0x4, 1)


def sanitize_done(rig):
    """Until the sanitize is over and region A is RAM again."""
    deadline = time.time() + 30
    while ".mmio" in (flat_name_at(rig, 0) or ".mmio"):
        check(time.time() < deadline, "region A did not come back after "
              "the sanitize")
        time.sleep(0.05)


def churn_changes(rig):
    """Route changes of every kind this rig can make while the guest runs,
    each with the change that undoes it: (name, do, undo)."""
    def period(ms):
        def f(r):
            for c in ("shadow0", "shadow1", "shadow2", "shadow3"):
                try:
                    r.q.qmp("qom-set", path="%s/%s" % (r.fmw, c),
                            property="x-writeback-period-ms", value=ms)
                except RuntimeError:
                    pass
        return f
    return [
        ("ram-route mmio", lambda r: set_route(r, "mmio"),
         lambda r: set_route(r, "auto")),
        ("ram-route shadow", lambda r: set_route(r, "shadow"),
         lambda r: set_route(r, "auto")),
        ("region A uncommitted", uncommit_a, recommit_a),
        ("ep0 unplugged", unplug_ep0, replug_ep0),
        ("ep0 sanitized", sanitize_start, sanitize_done),
        ("write-back period", period(3), period(20)),
    ]


def run_churn(rig, rng, changes):
    """The guest writes 32 MiB of region B without pause.  Route changes
    of every kind, in random order, each followed by the one that undoes
    it; a DMA mapping of region B held across every one.  After each,
    with the VM stopped: every word the guest wrote is in ep2/ep3, and so
    are the device's bytes."""
    wp = writer_params(rig)
    q, h, size = rig.q, half(rig), 32 << 20
    program_two(rig)
    q.write(wp, struct.pack("<8Q", rig.base + h, size, 0, 0, 0, 0,
                                       8, 0))
    q.qmp("cont")
    wait_writer(rig, 1, secs=120, since=0)
    kinds = churn_changes(rig)
    counts = {}
    i = 0
    while i < changes:
        name, do, undo = kinds[rng.randrange(len(kinds))]
        counts[name] = counts.get(name, 0) + 2
        for step, fn in (("", do), (" undone", undo)):
            addr = rig.base + h + (64 << 20) + 4096 * rng.randrange(4096)
            seed = rng.randrange(1, 255)
            with Step("change %d: %s%s" % (i, name, step)):
                check(dma(rig, "hold-map", addr, 4096, 0)["pieces"] == 1,
                      "hold-map failed")
                fn(rig)
                wait_writer(rig, 0)
                dma(rig, "hold-release", seed=seed)
                q.qmp("stop")
                check_writer_buffer(from_backends(rig, h, size),
                                    "region B in the backends")
                dma_landed(rig, addr, 4096, seed, "DMA across the change")
                q.qmp("cont")
                time.sleep(rng.random() * 0.05)
            i += 1
    print("     %d changes: %s; %d passes written"
          % (i, ", ".join("%s %d" % kv for kv in sorted(counts.items())),
             q64(q, wp + 0x10)))


def main():
    opt, seed, runner = scenario_cli(__doc__, "retire-test")
    writer = ["-bios", os.path.join(opt.guest_dir, "writer-aarch64.bin"),
              "-S"]
    writer_x86 = ["-bios", os.path.join(opt.guest_dir, "writer-x86_64.bin"),
                  "-S"]
    dma_dev = ["-device", "x-dma-probe-testdev,id=dma"]

    def topo(tmp, g=256, n=4, **kw):
        return Topology(tmp, [[None] * n], gw=g, ghb=g, gep=g, **kw)

    def run(name, machine, fn, extra=(), accel="qtest", make=topo):
        def scenario(rig):
            fn(rig, random.Random(seed ^ sum(map(ord, name))))
        build = getattr(make, "build", None)
        runner.run(name, lambda tmp: Rig(
            opt.qemu_dir, machine,
            build(tmp, opt.qemu_dir) if build else make(tmp), list(extra),
            accel=accel), scenario)

    run("virt-other-region-unplug", "virt", run_other_region_unplug,
        extra=writer, accel="tcg")
    run("virt-guest-uncommits", "virt", run_guest_uncommits, extra=writer,
        accel="tcg")
    run("virt-guest-unplugs", "virt", run_guest_unplugs, extra=writer,
        accel="tcg")
    run("virt-sync-command", "virt", run_sync_command, extra=writer,
        accel="tcg")
    run("q35-dma-shares-page", "q35", run_dma_shares_page, extra=dma_dev)
    for trig in TRIGGERS:
        run("q35-dma-across-%s" % trig, "q35",
            lambda rig, rng, trig=trig: run_dma_across(rig, rng, trig),
            extra=dma_dev)
    for variant in ("route-mmio", "uncommit", "dma"):
        run("q35-stitched-switchover-%s" % variant, "q35",
            lambda rig, rng, v=variant: run_stitched_switchover(rig, rng, v),
            extra=dma_dev, make=lambda tmp: topo(tmp, g=16384, n=2))
    for lock in ("on", "on-fault"):
        make = lambda tmp: topo(tmp)
        make.build = prefilled(make)
        run("q35-mem-lock-%s" % lock, "q35", run_mem_lock,
            extra=["-overcommit", "mem-lock=" + lock], make=make)
    run("q35-period-now", "q35", run_period_now)
    run("q35-fill-fails", "q35", run_fill_fails)
    run("q35-idle-no-snapshots", "q35", run_idle_no_snapshots)
    run("q35-shadow-threads", "q35", run_shadow_threads,
        extra=["-name", "debug-threads=on"])
    changes = 200 if opt.tier == "full" else 24
    run("virt-churn-256", "virt",
        lambda rig, rng: run_churn(rig, rng, changes),
        extra=writer + dma_dev, accel="tcg")
    run("q35-churn-256", "q35",
        lambda rig, rng: run_churn(rig, rng, changes),
        extra=writer_x86 + dma_dev, accel="tcg")
    run("q35-guest-uncommits", "q35", run_guest_uncommits, extra=writer_x86,
        accel="tcg")
    run("virt-churn-4k", "virt",
        lambda rig, rng: run_churn(rig, rng, changes // 2),
        extra=writer + dma_dev, accel="tcg",
        make=lambda tmp: topo(tmp, g=4096))
    return runner.summary()


if __name__ == "__main__":
    sys.exit(main())
