#!/usr/bin/env python3
"""CXL routing qtests: committed HDM decoders route a fixed window to RAM.

Each scenario builds a CXL topology (host bridges, root ports, optional
switches, type-3 devices backed by memory-backend-file,share=on), programs
the HDM decoders over MMIO bottom-up as Linux does, and proves:

  * the window is served as RAM (an interleave in `info mtree -f`) when
    every granule is at least the target page, MMIO otherwise;
  * bytes written through the window land in each device's backend file
    at the DPA the CXL decode prescribes (an independent model here);
  * the RAM route and the MMIO decode (the window's x-ram property off)
    read and write the same bytes at every chunk edge and at random
    offsets anywhere in the window;
  * uncommit, reprogramming and system_reset tear the RAM route down and
    the next accesses go where the new decoders say;
  * misprogrammed decoders get the Error Not Committed bit, never an
    abort, and never let an access escape a backend.

Usage: routing-test.py --qemu-dir BUILD [--tier ci|full] [-k NAME]
Prints one line per scenario and "N passed, N failed"; exits non-zero on
any failure.
"""

import errno
import hashlib
import os
import random
import re
import struct
import subprocess
import sys
import time
import zlib

from cxltest import qtest as cq
from cxltest import scenario_cli

from cxltest import (DEV_SIZE, CHECK_BYTES, MACHINES, TARGET_PAGE, Failure,
                     MapCountAtLeast, Step, Switch, Topology, Rig, check,
                     pattern)
from cxltest.scenario import (WRITER_PARAMS, check_writer_buffer,
                              destination, elf_loads, files_equal,
                              mailbox_of, moved_topology, probe_bytes, q64,
                              unplug_first, wait_migration, wait_writer)


def expected_kind(t):
    """RAM (interleave sections) unless some level that does interleave
    (more than one way) switches targets within a target page: then a
    write-back shadow."""
    grans = [g for g, ways in ((t.gw, len(t.hbs)),
                               (t.ghb, max(len(p) for _, p in t.hbs)),
                               (t.gsw, max([len(n.dsps) for _, p in t.hbs
                                            for n in p
                                            if isinstance(n, Switch)] + [1])),
                               (t.gep, t.ways)) if ways > 1]
    return "ram" if min(grans + [TARGET_PAGE]) >= TARGET_PAGE else "shadow"


def on_shadow_route(fn):
    """Scenario @fn with the window on ram-route=shadow: a write-back
    shadow whatever the granule."""
    def scenario(rig, rng):
        rig.q.qmp("qom-set", path=rig.fmw, property="ram-route",
                  value="shadow")
        rig.kind = "shadow"
        fn(rig, rng)
    return scenario


def place_and_check(rig, tag):
    t = rig.topo
    rig.program()
    rig.expect_served(getattr(rig, "kind", None) or expected_kind(t))
    rig.write_pattern(tag)
    rig.verify_backends(tag)


def scenario_placement(rig, rng):
    """Program, write, verify placement and RAM/MMIO agreement; then
    uncommit, reprogram with other granules and reset."""
    t = rig.topo
    with Step("before commit"):
        rig.expect_served("mmio")
    with Step("committed"):
        place_and_check(rig, 1)
    if expected_kind(t) != "mmio":
        with Step("RAM vs MMIO"):
            rig.differential(rng)
    with Step("uncommitted"):
        # Back to MMIO; nothing decodes, nothing lands anywhere.
        rig.unprogram()
        rig.expect_served("mmio")
        before = rig.backend_digest()
        rig.write_pattern(2, 1 << 20)
        check(rig.read_window(4 << 20) == bytes(4 << 20),
              "uncommitted window does not read as zeros")
        check(rig.backend_digest() == before,
              "a write to the uncommitted window reached a backend")
    # Reprogram with other granules (the window's own granule is fixed
    # by -M cxl-fmw, so only where a single host bridge makes it moot).
    orig = (t.ghb, t.gsw, t.gep)
    for scale in (4, 1 / 8):
        t.ghb, t.gsw, t.gep = (int(x * scale) for x in orig)
        if (len(t.hbs) > 1 or t.min_granule() < 256
                or max(t.ghb, t.gsw, t.gep) > 16384
                or not consistent(t, rig.base)):
            continue
        with Step("reprogrammed to granule %d" % t.gep):
            place_and_check(rig, 3)
            rig.unprogram()
            rig.expect_served("mmio")
    t.ghb, t.gsw, t.gep = orig
    # Reset: decoders and BARs go back to reset values, the window to
    # MMIO; programmed again, it routes as before.
    with Step("system_reset"):
        rig.program()
        rig.expect_served(expected_kind(t))
        rig.q.qmp("system_reset")
        rig.expect_served("mmio")
    with Step("programmed after reset"):
        rig.enumerate()
        place_and_check(rig, 4)
        check(rig.read_window(1 << 20) == pattern(0, 1 << 20, 4),
              "the window reads other bytes than were written")


def consistent(t, base):
    """Does every (device, DPA) receive at most one window offset over
    two periods?  Scenarios rescaled to other granules must stay a
    bijection for the placement check to be meaningful."""
    g = t.min_granule()
    seen = set()
    period = t.ways * max(t.gw, t.ghb, t.gsw, t.gep) * 3
    for off in range(0, 2 * period, g):
        ep, dpa = t.route(base, off)
        if (ep.name, dpa) in seen:
            return False
        seen.add((ep.name, dpa))
    return True


def run_bad_programming(rig, rng):
    """Misprogrammed decoders: Error Not Committed, no abort, no escape.
    Every other level is committed correctly, so that a decoder that
    committed anyway would route accesses."""
    q, t, b = rig.q, rig.topo, rig.base
    ep0 = rig.bar0[t.eps[0].name]
    hb = rig.hbregs[t.hbs[0][0]]
    s = t.size
    # endpoint cases: the other endpoint and the host bridge committed
    for ep in t.eps[1:]:
        rig.commit(rig.bar0[ep.name], 0, b, s, t.ways, t.gep, what=ep.name)
    rig.commit(hb, 0, b, s, len(t.hbs[0][1]), t.ghb,
               targets=list(range(len(t.hbs[0][1]))), what="host bridge")

    def ep0_digest():
        with open(t.eps[0].path, "rb") as f:
            return hashlib.sha1(f.read(CHECK_BYTES)).hexdigest()

    cases = [
        ("reserved granularity encoding", ep0, dict(gran_enc=7)),
        ("reserved ways encoding", ep0, dict(ways_enc=5)),
        ("size not a multiple of 256 MiB per way", ep0,
         dict(size=256 << 20, ways=2)),
        ("DPA beyond the device", ep0, dict(size=2 * DEV_SIZE, ways=1)),
        ("range beyond 52-bit HPA", ep0, dict(base=1 << 52, size=DEV_SIZE,
                                             ways=1)),
        ("decoder 1 before decoder 0", ep0, dict(n=1)),
        ("16-way on a host bridge", hb, dict(ways_enc=4, targets=[0, 1])),
        ("12-way on a host bridge (iw_enc 10)", hb,
         dict(ways_enc=10, targets=[0, 1])),
        ("3-way on a host bridge (iw_enc 8)", hb,
         dict(ways_enc=8, size=3 * DEV_SIZE, targets=[0, 1])),
    ]
    for name, comp, c in cases:
        if comp == hb and q.readl(hb + cq.hdm_reg(0, "ctrl")) & \
                cq.CTRL_COMMITTED:
            # host bridge cases: both endpoints committed, the bridge not
            rig.uncommit(hb, 0)
            rig.commit(ep0, 0, b, s, t.ways, t.gep, what="ep0")
        n = c.get("n", 0)
        ways = c.get("ways", 2)
        w = q.writel
        w(comp + cq.HDM_GLOBAL_CTRL, cq.HDM_ENABLE)
        base, size = c.get("base", b), c.get("size", s)
        w(comp + cq.hdm_reg(n, "base_lo"), base & 0xffffffff)
        w(comp + cq.hdm_reg(n, "base_hi"), base >> 32)
        w(comp + cq.hdm_reg(n, "size_lo"), size & 0xffffffff)
        w(comp + cq.hdm_reg(n, "size_hi"), size >> 32)
        tl = c.get("targets")
        if tl:
            w(comp + cq.hdm_reg(n, "tl_lo"), tl[0] | tl[1] << 8)
        ctrl = (c.get("gran_enc", cq.gran_enc(t.gep))
                | c.get("ways_enc", cq.ways_enc(ways)) << 4
                | cq.CTRL_HOSTONLY | cq.CTRL_COMMIT)
        w(comp + cq.hdm_reg(n, "ctrl"), ctrl)
        got = q.readl(comp + cq.hdm_reg(n, "ctrl"))
        check(got & cq.CTRL_ERR and not got & cq.CTRL_COMMITTED,
              "%s: ctrl 0x%x, expected Error Not Committed" % (name, got))
        # Nothing reaches the device behind the refused decoder (for the
        # host bridge cases: no device at all).
        before = rig.backend_digest() if comp == hb else ep0_digest()
        for k in range(16):
            q.write(b + k * t.gep, b"\xa5" * 8)
            q.read(b + k * t.gep, 8)
        after = rig.backend_digest() if comp == hb else ep0_digest()
        check(after == before, "%s: a window write reached %s" % (
            name, "a backend" if comp == hb else t.eps[0].name))
        check(rig.served_as() == "mmio", "%s: window not MMIO" % name)
        # Clear the commit request (and the error with it).
        w(comp + cq.hdm_reg(n, "ctrl"), ctrl & ~cq.CTRL_COMMIT)
        check(not q.readl(comp + cq.hdm_reg(n, "ctrl")) & cq.CTRL_ERR,
              "%s: uncommit did not clear the error" % name)
    rig.uncommit(ep0, 0)
    # Base registers hold 256 MiB granularity: low bits read as zero.
    w(ep0 + cq.hdm_reg(0, "base_lo"), 0x10001000)
    got = q.readl(ep0 + cq.hdm_reg(0, "base_lo"))
    check(got & 0x0fffffff == 0, "base_lo keeps unaligned bits: 0x%x" % got)
    # Overlap: decoder 1 inside decoder 0 after 0 committed.
    rig.commit(ep0, 0, b, DEV_SIZE, 1, t.gep, what="ep0 (overlap base)")
    rig.commit(ep0, 1, b, DEV_SIZE, 1, t.gep, expect=False,
               what="ep0 overlapping")
    rig.uncommit(ep0, 0)


def run_inconsistent_levels(rig, rng):
    """Endpoints whose granule disagrees with the host bridge: the decode
    aliases; whatever it does, RAM and MMIO must agree and stay inside
    the backends."""
    q, t, b, s = rig.q, rig.topo, rig.base, rig.topo.size
    for ep in t.eps:
        rig.commit(rig.bar0[ep.name], 0, b, s, t.ways, 4096, what=ep.name)
    hb, ports = t.hbs[0]
    rig.commit(rig.hbregs[hb], 0, b, s, len(ports), 8192,
               targets=list(range(len(ports))), what=hb)
    kind = rig.served_as()
    check(kind in ("ram", "mmio", "mixed"), "window served as %s" % kind)
    # the aliasing decode, written through the decode, read through both
    rig.set_ram(False)
    data = rng.randbytes(1 << 20)
    q.b64write(b, data)
    mmio_view = rig.read_window(1 << 20)
    rig.set_ram(True)
    check(rig.read_window(1 << 20) == mmio_view,
          "RAM route and MMIO decode differ on inconsistent decoders")
    # and written through the route, read through the decode
    data = rng.randbytes(1 << 20)
    q.b64write(b, data)
    ram_view = rig.read_window(1 << 20)
    rig.set_ram(False)
    check(rig.read_window(1 << 20) == ram_view,
          "RAM route and MMIO decode differ on inconsistent decoders")
    check(ram_view != bytes(1 << 20), "nothing reached the backends")
    rig.set_ram(True)


def run_hot_unplug(rig, rng):
    """A type-3 device unplugged from under a committed RAM window: the
    RAM route goes, its backend receives nothing more, the others keep
    their bytes, and its memdev can be deleted."""
    q, t = rig.q, rig.topo
    with Step("committed"):
        place_and_check(rig, 1)
    gone = t.eps[0]
    with open(gone.path, "rb") as f:
        before = f.read(CHECK_BYTES)
    with Step("unplug"):
        unplug_first(rig)
    with Step("after unplug"):
        flat = q.hmp("info mtree -f")
        check(not re.search(r"\[interleave [^]]*\bm0 \+", flat),
              "info mtree -f still routes into the unplugged backend")
        rig.expect_served("mmio")
        rig.write_pattern(5, 1 << 20)
        with open(gone.path, "rb") as f:
            check(f.read(CHECK_BYTES) == before,
                  "a write reached the unplugged device's backend")
        g = t.min_granule()
        for off in range(0, 1 << 20, g):
            ep, dpa = t.route(rig.base, off)
            if ep is gone:
                continue
            with open(ep.path, "rb") as f:
                f.seek(dpa)
                check(f.read(g) == pattern(off, g, 5),
                      "window +0x%x missing from %s" % (off, ep.name))
        # nothing holds the backend any more: it can go, and the window
        # keeps working without it
        q.qmp("object-del", id="m0")
        rig.write_pattern(6, 1 << 20)
        rig.expect_served("mmio")


def run_dma(rig, rng):
    """DMA into the window by address_space_map (RAM, one mapping per
    chunk, never a bounce buffer), by dma_memory_rw and through a
    MemoryRegionCache that crosses a chunk (a virtio ring's case): the
    bytes land in the backend the decode names; the same with the window
    on the MMIO path."""
    q, t, b = rig.q, rig.topo, rig.base
    dev = "/machine/peripheral/dma"
    g = t.min_granule()

    def op(name, addr, size, seed):
        for k, v in (("addr", addr), ("len", size), ("seed", seed)):
            q.qmp("qom-set", path=dev, property=k, value=v)
        q.qmp("qom-set", path=dev, property="op", value=name)
        return {k: q.qmp("qom-get", path=dev, property=k)
                for k in ("pieces", "direct", "max-piece", "mismatches")}

    def in_backends(addr, size, seed):
        want = probe_bytes(addr, size, seed)
        i = 0
        while i < size:
            off = addr - b + i
            n = min(size - i, g - off % g)      # up to the granule end
            ep, dpa = t.route(b, off)
            with open(ep.path, "rb") as f:
                f.seek(dpa)
                check(f.read(n) == want[i:i + n],
                      "DMA byte at window +0x%x not in %s at DPA 0x%x"
                      % (off, ep.name, dpa))
            i += n

    rig.program()
    for mode in ("ram", "mmio"):
        rig.set_ram(mode == "ram")
        rig.expect_served(mode)
        seed = 1 if mode == "ram" else 8
        with Step("%s: address_space_map" % mode):
            # from mid-chunk across four chunk edges
            addr, size = b + 3 * g + g // 2, 4 * g
            r = op("map-write", addr, size, seed)
            check(r["mismatches"] == 0, "map-write could not map all")
            if mode == "ram":
                check(r["pieces"] == 5 and r["direct"] == 5
                      and r["max-piece"] == g,
                      "expected 5 direct mappings of at most one chunk, got "
                      "%s" % r)
            in_backends(addr, size, seed)
            r = op("map-check", addr, size, seed)
            check(r["mismatches"] == 0, "map-check: %s" % r)
        with Step("%s: dma_memory_rw" % mode):
            addr, size = b + 17 * g - 100, 3 * g + 200
            op("rw-write", addr, size, seed + 1)
            in_backends(addr, size, seed + 1)
            r = op("rw-check", addr, size, seed + 1)
            check(r["mismatches"] == 0, "rw-check: %s" % r)
        with Step("%s: MemoryRegionCache across a chunk edge" % mode):
            addr, size = b + 40 * g - 64, 256
            r = op("cache-write", addr, size, seed + 2)
            check(r["mismatches"] == 0, "cache-write: %s" % r)
            # virtio refuses a ring the cache does not cover entirely
            check(r["max-piece"] == size, "cache covers %d of %d bytes"
                  % (r["max-piece"], size))
            in_backends(addr, size, seed + 2)
            r = op("cache-check", addr, size, seed + 2)
            check(r["mismatches"] == 0, "cache-check: %s" % r)
        with Step("%s: unaligned ld/st across chunk edges" % mode):
            # 8-byte accesses from 5 bytes before a chunk edge: every
            # one of them straddles an edge or is next to one
            for k, name in ((60, "ldst"), (70, "ldst-cached")):
                addr, size = b + k * g - 5, 64
                r = op(name + "-write", addr, size, seed + 3)
                check(r["mismatches"] == 0, "%s-write: %s" % (name, r))
                in_backends(addr, size, seed + 3)
                r = op(name + "-check", addr, size, seed + 3)
                check(r["mismatches"] == 0, "%s-check: %s" % (name, r))
        with Step("%s: IOTLB entry" % mode):
            # device 1, DPA 0x...123: the entry must name the guest page
            addr = b + 5 * g + 0x123
            op("iotlb", addr, 1, 0)
            got = {k: q.qmp("qom-get", path=dev, property=k)
                   for k in ("iotlb-addr", "iotlb-mask")}
            check(got["iotlb-mask"] == TARGET_PAGE - 1 and
                  got["iotlb-addr"] == addr & ~(TARGET_PAGE - 1),
                  "address_space_get_iotlb_entry(0x%x): translated 0x%x "
                  "mask 0x%x, expected the guest page 0x%x" % (
                      addr, got["iotlb-addr"], got["iotlb-mask"],
                      addr & ~(TARGET_PAGE - 1)))
    with Step("DMA mapping held across an uncommit"):
        rig.set_ram(True)
        rig.expect_served("ram")
        hold_across_uncommit(rig, op, in_backends, b + 2 * g, g, 13)


def hold_across_uncommit(rig, op, in_backends, addr, size, seed):
    """A device holds an address_space_map() of the window while the
    guest uncommits it: the mapping stays valid until the device unmaps
    it, and the bytes written through it land where the mapping pointed
    when it was made (the route then), never in freed memory."""
    r = op("hold-map", addr, size, 0)
    check(r["pieces"] == 1 and r["max-piece"] == size,
          "hold-map got %s" % r)
    rig.unprogram()
    rig.expect_served("mmio")
    time.sleep(0.3)         # let RCU reclaim whatever the map no longer has
    rig.q.qmp("qom-set", path="/machine/peripheral/dma", property="seed",
              value=seed)
    rig.q.qmp("qom-set", path="/machine/peripheral/dma", property="op",
              value="hold-release")
    in_backends(addr, size, seed)


def mailbox_command(q, mbox, opcode, payload):
    """Send @opcode with @payload through the mailbox at @mbox; its return
    code (1: a background operation started)."""
    q.write(mbox + 0x20, payload)
    q.cmd("writeq 0x%x 0x%x" % (mbox + 0x8, opcode | len(payload) << 16))
    q.writel(mbox + 0x4, 1)                          # doorbell
    sts = int(q.cmd("readq 0x%x" % (mbox + 0x10)), 16)
    return (sts >> 32) & 0xffff


def run_sanitize(rig, rng):
    """Sanitize (mailbox, a background operation) disables a device's
    media: its pieces of the window go back to MMIO until the operation
    completes, which zeroes the device and re-enables the media: RAM
    again, the device's bytes zero, the others' intact."""
    q, t = rig.q, rig.topo
    with Step("committed"):
        place_and_check(rig, 1)
    victim = t.eps[0]
    mbox = mailbox_of(q, victim)
    with Step("sanitize started"):
        q.cmd("writeq 0x%x 0x4400" % (mbox + 0x8))      # Sanitize
        q.writel(mbox + 0x4, 1)                          # doorbell
        sts = int(q.cmd("readq 0x%x" % (mbox + 0x10)), 16)
        check((sts >> 32) & 0xffff == 1, "Sanitize returned 0x%x, expected "
              "background operation started" % ((sts >> 32) & 0xffff))
        rig.expect_served("mmio")
    with Step("sanitize completed"):
        q.cmd("clock_step %d" % (30 * 10**9))             # virtual time
        rig.expect_served(expected_kind(t))
        with open(victim.path, "rb") as f:
            check(f.read(4 << 20) == bytes(4 << 20),
                  "sanitized %s is not zero" % victim.name)
        g = t.min_granule()
        for off in range(0, 4 << 20, g):
            ep, dpa = t.route(rig.base, off)
            if ep is victim:
                continue
            with open(ep.path, "rb") as f:
                f.seek(dpa)
                check(f.read(g) == pattern(off, g, 1),
                      "window +0x%x lost from %s" % (off, ep.name))
        rig.write_pattern(2)
        rig.verify_backends(2)


def run_media_ops_zero(rig, rng):
    """Media Operations sanitize (opcode 0x4402, zero a DPA range of one
    device) while the media stays enabled: the window shows the zeroes
    afterwards, through a shadow too, and the rest keeps its bytes."""
    q, t = rig.q, rig.topo
    with Step("committed"):
        place_and_check(rig, 1)
    victim = t.eps[0]
    mbox = mailbox_of(q, victim)
    with Step("zero the first MiB of %s" % victim.name):
        # class 1 (sanitize), subclass 1 (zero), one range: DPA 0, 1 MiB
        rc = mailbox_command(q, mbox, 0x4402,
                             struct.pack("<BBHIQQ", 1, 1, 0, 1, 0, 1 << 20))
        check(rc in (0, 1), "Media Operations returned 0x%x" % rc)
        q.cmd("clock_step %d" % (30 * 10**9))             # virtual time
        rig.expect_served(expected_kind(t))
    with Step("after"):
        window = rig.read_window(4 << 20)
        g = t.min_granule()
        for off in range(0, 4 << 20, g):
            ep, dpa = t.route(rig.base, off)
            want = bytes(g) if ep is victim and dpa < 1 << 20 else \
                pattern(off, g, 1)
            check(window[off:off + g] == want, "window +0x%x (%s DPA 0x%x) "
                  "reads other bytes than the media hold"
                  % (off, ep.name, dpa))


def run_clear_poison(rig, rng):
    """Clear Poison (opcode 0x4302) writes the 64 bytes it carries into the
    device's media while the media stay enabled: the window shows them
    afterwards, through a shadow too, and the rest keeps its bytes."""
    q, t = rig.q, rig.topo
    with Step("committed"):
        place_and_check(rig, 1)
    victim, g = t.eps[0], t.min_granule()
    dpa = rng.randrange(0, (1 << 20) // 64) * 64
    data = bytes(rng.randrange(1, 256) for _ in range(64))
    where = [off + dpa - d for off in range(0, 4 << 20, g)
             for ep, d in [t.route(rig.base, off)]
             if ep is victim and d <= dpa < d + g]
    check(len(where) == 1, "DPA 0x%x of %s is not in the window's first "
          "4 MiB once" % (dpa, victim.name))
    mbox = mailbox_of(q, victim)
    # a shadow holds the window's bytes once read
    check(rig.read_window(4 << 20) == pattern(0, 4 << 20, 1),
          "the window does not read what was written")
    with Step("clear poison at %s DPA 0x%x" % (victim.name, dpa)):
        rc = mailbox_command(q, mbox, 0x4302, struct.pack("<Q", dpa) + data)
        check(rc == 0, "Clear Poison returned 0x%x" % rc)
    with Step("after"):
        with open(victim.path, "rb") as f:
            f.seek(dpa)
            check(f.read(64) == data, "the media do not hold the data "
                  "Clear Poison wrote")
        window = bytearray(rig.read_window(4 << 20))
        check(window[where[0]:where[0] + 64] == data, "window +0x%x (%s "
              "DPA 0x%x) does not show the data Clear Poison wrote"
              % (where[0], victim.name, dpa))
        window[where[0]:where[0] + 64] = pattern(where[0], 64, 1)
        check(bytes(window) == pattern(0, 4 << 20, 1), "Clear Poison "
              "changed other bytes of the window")


NOT_MAPPED = "is not mapped for the device"


def vhost_user_blk(make_rig):
    """A rig whose guest RAM is a shared memfd and which has a
    vhost-user-blk-pci device served by qemu-storage-daemon (built from the
    same tree): vhost's memory listener, which maps guest RAM for a process
    outside QEMU, sees every section of the address space.  Returns
    (make_rig(tmp), after) for Runner.run()."""
    daemon = []

    def make(tmp, qemu_dir):
        sock = os.path.join(tmp, "vu.sock")
        qsd = os.path.join(qemu_dir, "storage-daemon", "qemu-storage-daemon")
        check(os.access(qsd, os.X_OK), "no %s (ninja storage-daemon/"
              "qemu-storage-daemon)" % qsd)
        daemon.append(subprocess.Popen(
            [qsd, "--blockdev", "driver=null-co,node-name=null0,size=1048576",
             "--export", "type=vhost-user-blk,id=vu0,node-name=null0,"
             "addr.type=unix,addr.path=%s,writable=on" % sock],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        deadline = time.time() + 10
        while not os.path.exists(sock):
            check(daemon[0].poll() is None and time.time() < deadline,
                  "qemu-storage-daemon did not serve %s" % sock)
            time.sleep(0.05)
        return make_rig(tmp, [
            "-object", "memory-backend-memfd,id=vm-ram,size=256M,share=on",
            "-machine", "memory-backend=vm-ram,aux-ram-share=on",
            "-chardev", "socket,id=vu,path=%s" % sock,
            "-device", "vhost-user-blk-pci,chardev=vu,num-queues=1,bus=pcie.0",
            "-trace", "vhost_section"])

    def after():
        for d in daemon:
            d.kill()
            d.wait()
        daemon.clear()
    return make, after


def run_vhost_user_window(rig, rng):
    """vhost's listener cannot map a committed window: it skips the
    interleave section (4 KiB) or the write-back shadow (256 B), warns once
    naming the range and the region, and no more on a recommit."""
    q, t = rig.q, rig.topo
    shadow = expected_kind(t) == "shadow"
    region = "shadow0" if shadow else "ram0"
    check(NOT_MAPPED not in q.stderr(), "a warning before any commit: %s"
          % q.stderr()[-500:])
    with Step("committed"):
        rig.program()
        rig.expect_served(expected_kind(t))
        warned = [ln for ln in q.stderr().splitlines() if NOT_MAPPED in ln]
        want = "vhost: guest memory 0x%x-0x%x (cxl-fixed-memory-region.%s)" \
            % (rig.base, rig.base + t.size - 1, region)
        check(len(warned) == 1 and want in warned[0] and
              ("write-back copy" if shadow else "interleave") in warned[0],
              "expected one warning '%s ...', got %s" % (want, warned))
    with Step("recommitted"):
        rig.unprogram()
        rig.program()
        rig.expect_served(expected_kind(t))
        warned = [ln for ln in q.stderr().splitlines() if NOT_MAPPED in ln]
        check(len(warned) == 1, "warned again: %s" % warned)


ALIASES = 256


def alias_testdev(on):
    """A container of ALIASES RAM aliases of 2 targets, opted in to being
    rendered as one interleave or not."""
    return ["-device", "x-alias-interleave-testdev,id=il,count=%d,"
            "granule=4096,targets=2,addr=0x40000000000,"
            "targets-addr=0x50000000000,interleave=%s"
            % (ALIASES, "on" if on else "off")]


def run_vhost_user_aliases(rig, on):
    """A container of RAM aliases that does not opt in to being rendered
    as one interleave (interleave=off) reaches vhost alias by alias, as
    before interleave sections existed, and without a warning; one that
    opts in is skipped by vhost, with one warning naming it."""
    log = rig.q.stderr()
    sections = log.count("vhost_section alias-il-target")
    warned = [ln for ln in log.splitlines() if NOT_MAPPED in ln]
    if on:
        check(len(warned) == 1 and "(alias-il-container)" in warned[0],
              "expected one warning naming alias-il-container, got %s"
              % warned)
        check(sections < ALIASES, "vhost saw %d sections of the targets"
              % sections)
    else:
        check(not warned, "warned: %s" % warned)
        check(sections >= ALIASES, "vhost saw %d alias sections of %d"
              % (sections, ALIASES))


def run_migration(rig, rng, qemu_dir=None, machine=None):
    """Migrate a guest with a committed window to a file and restore it in
    a new QEMU whose backends are new, empty files: decoders, BARs, the
    RAM route and every backend byte come back, and the restored decoders
    keep working."""
    t = rig.topo
    with Step("source"):
        place_and_check(rig, 1)
        mig = os.path.join(t.tmp, "migration")
        rig.q.qmp("migrate", uri="exec:cat > %s" % mig)
        wait_migration(rig.q, "outgoing")
    rig.close()
    dt = moved_topology(t, os.path.join(t.tmp, "destination"))
    os.makedirs(dt.tmp)
    dst = Rig(rig.qemu_dir, rig.machine, dt,
              extra=rig.extra + ["-incoming", "exec:cat %s" % mig],
              accel=rig.accel, enumerate=False)
    rig.q = dst.q            # so that the runner closes it
    with Step("destination"):
        wait_migration(dst.q, "incoming")
        dst.discover()
        dst.expect_served(expected_kind(t))
        dst.verify_backends(1)          # in the destination's own files
        check(dst.read_window(1 << 20) == pattern(0, 1 << 20, 1),
              "the window reads other bytes after migration")
        dst.write_pattern(2)
        dst.verify_backends(2)
        dst.unprogram()
        dst.expect_served("mmio")


def run_dump(rig, rng):
    """dump-guest-memory (ELF) of the committed window's first MiB holds
    the window's bytes, as the backends have them: the dump's memory
    listener follows the interleave (it skipped the window before)."""
    t, q, b = rig.topo, rig.q, rig.base
    size = 1 << 20
    with Step("committed"):
        place_and_check(rig, 1)
    with Step("dump-guest-memory"):
        path = os.path.join(t.tmp, "dump.elf")
        q.qmp("dump-guest-memory", paging=False, protocol="file:" + path,
              begin=b, length=size)
        got = bytearray(size)
        covered = 0
        loads = elf_loads(path)
        # a guest-physical range is one range whatever its interleave
        inside = [ld for ld in loads if b <= ld[0] < b + size]
        check(len(inside) == 1, "%d ELF segments for the window's first "
              "MiB, expected one" % len(inside))
        with open(path, "rb") as f:
            for paddr, off, n in loads:
                lo, hi = max(paddr, b), min(paddr + n, b + size)
                if lo >= hi:
                    continue
                f.seek(off + lo - paddr)
                got[lo - b:hi - b] = f.read(hi - lo)
                covered += hi - lo
        check(covered == size, "the dump holds 0x%x of the window's first "
              "0x%x bytes" % (covered, size))
        for off in range(0, size, t.min_granule()):
            ep, dpa = t.route(b, off)
            with open(ep.path, "rb") as f:
                f.seek(dpa)
                want = f.read(t.min_granule())
            check(bytes(got[off:off + len(want)]) == want,
                  "dump at window offset 0x%x is not %s's DPA 0x%x"
                  % (off, ep.name, dpa))


def peak_rss(q):
    """QEMU's peak resident set, in bytes (VmHWM)."""
    with open("/proc/%d/status" % q.proc.pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) << 10
    raise Failure("no VmHWM for QEMU")


def run_dump_sparse(rig, rng):
    """A 1 MiB dump-guest-memory of a 64 GiB window at 4 KiB (sparse
    backends): one ELF segment for it, and QEMU's peak memory grows by
    much less than a block per chunk would take (1.9 GB before)."""
    q, b = rig.q, rig.base
    rig.program()
    rig.expect_served("ram")
    before = peak_rss(q)
    path = os.path.join(rig.topo.tmp, "dump.elf")
    q.qmp("dump-guest-memory", paging=False, protocol="file:" + path,
          begin=b, length=1 << 20)
    grew = peak_rss(q) - before
    inside = [ld for ld in elf_loads(path) if b <= ld[0] < b + (1 << 20)]
    check(len(inside) == 1, "%d ELF segments for 1 MiB of the window"
          % len(inside))
    check(grew < 64 << 20, "the dump grew QEMU's peak memory by %d MiB"
          % (grew >> 20))


def run_savevm(rig, rng):
    """savevm, then change the data and the decoders, then loadvm: the
    snapshot's decoders, RAM route and backend bytes all come back."""
    t = rig.topo
    img = os.path.join(t.tmp, "snap.qcow2")
    subprocess.run([os.path.join(rig.qemu_dir, "qemu-img"), "create", "-q",
                    "-f", "qcow2", img, "16M"], check=True)
    rig.close()
    new = Rig(rig.qemu_dir, rig.machine, t, extra=rig.extra + [
        "-drive", "if=none,id=snap,format=qcow2,file=" + img])
    rig.q = new.q            # so that the runner closes it
    with Step("savevm"):
        place_and_check(new, 1)
        out = new.q.hmp("savevm s1")
        check("rror" not in out, "savevm: " + out.strip())
    with Step("changed after savevm"):
        new.write_pattern(2)
        new.verify_backends(2)
        new.unprogram()
        new.expect_served("mmio")
    with Step("loadvm"):
        out = new.q.hmp("loadvm s1")
        check("rror" not in out, "loadvm: " + out.strip())
        new.expect_served(expected_kind(t))
        new.verify_backends(1)
        check(new.read_window(1 << 20) == pattern(0, 1 << 20, 1),
              "the window reads other bytes after loadvm")


def run_stitched(rig, rng):
    """x-stitched=on: the window is one RAM region over its stitched host
    mapping; the bytes still land in each backend file at the decoded
    DPA, agree with the MMIO decode, and follow uncommit and
    reprogramming; migration works while the mapping serves and once it
    is gone."""
    with MapCountAtLeast(4 * rig.topo.size // rig.topo.min_granule()) as m:
        if not m.ok:
            print("     (vm.max_map_count cannot be raised: two stitched "
                  "windows may not fit while one waits for RCU readers)")
        stitched_scenario(rig, rng)


def stitched_scenario(rig, rng):
    q = rig.q

    def stitched():
        out = q.hmp("info mtree -f")
        view = [v for v in out.split("FlatView #") if 'AS "memory"' in v][0]
        return re.findall(r"\(prio 1, ram\): cxl-fixed-memory-region"
                          r"\.stitched\d", view)
    q.qmp("qom-set", path=rig.fmw, property="x-stitched", value=True)
    with Step("committed"):
        place_and_check(rig, 1)
        check(len(stitched()) == 1, "window not served by one stitched "
              "region: %s" % stitched())
    with Step("RAM vs MMIO"):
        rig.differential(rng)          # x-ram off and on again
        check(len(stitched()) == 1, "stitched region not rebuilt")
    with Step("migration while stitched"):
        # its dirty pages are moved to the targets at every sync (the
        # live migration scenario checks every byte with a guest writing)
        q.qmp("migrate", uri="exec:cat > /dev/null")
        wait_migration(q, "outgoing")
        q.qmp("cont")
    with Step("uncommitted"):
        rig.unprogram()
        rig.expect_served("mmio")
        check(not stitched(), "stitched region left after uncommit")
    with Step("DMA mapping of the stitched region held across an uncommit"):
        place_and_check(rig, 3)
        g = rig.topo.min_granule()

        def op(name, addr, size, seed):
            dev = "/machine/peripheral/dma"
            for k, v in (("addr", addr), ("len", size), ("seed", seed)):
                q.qmp("qom-set", path=dev, property=k, value=v)
            q.qmp("qom-set", path=dev, property="op", value=name)
            return {k: q.qmp("qom-get", path=dev, property=k)
                    for k in ("pieces", "max-piece")}

        def in_backends(addr, size, seed):
            want = probe_bytes(addr, size, seed)
            off = addr - rig.base
            ep, dpa = rig.topo.route(rig.base, off)
            with open(ep.path, "rb") as f:
                f.seek(dpa)
                check(f.read(size) == want, "bytes written through the held "
                      "mapping are not in %s at DPA 0x%x" % (ep.name, dpa))
        hold_across_uncommit(rig, op, in_backends, rig.base + g, g, 21)
    with Step("reprogrammed"):
        place_and_check(rig, 2)
        q.qmp("qom-set", path=rig.fmw, property="x-stitched", value=False)
        check(not stitched(), "stitched region left with x-stitched=off")
        rig.expect_served("ram")
        rig.verify_backends(2)
    with Step("migration allowed"):
        q.qmp("migrate", uri="exec:cat > /dev/null")
        wait_migration(q, "outgoing")


# The writer guest (tests/cxl/guest/writer-aarch64.S) on arm64 virt
WRITER_READY = 0x600df00d


def start_writer(rig, off, size, stride=8, passes=0):
    """Start the writer guest (the rig was made with -S) over window
    [off, off + size): a store every @stride bytes, @passes times (0:
    forever)."""
    q = rig.q
    q.write(WRITER_PARAMS, struct.pack("<8Q", rig.base + off, size, 0, 0, 0,
                                       0, stride, passes))
    q.qmp("cont")
    # a writer with a few passes to make may be done before we look:
    # count from 0 (written above), not from what it shows when we do
    wait_writer(rig, passes or 1, since=0)


def window_from_backends(rig, size):
    """The first @size bytes of the window, read from the backend files
    through the independent model."""
    g, out = rig.topo.min_granule(), bytearray()
    for off in range(0, size, g):
        ep, dpa = rig.topo.route(rig.base, off)
        with open(ep.path, "rb") as f:
            f.seek(ep.file_offset + dpa)
            out += f.read(g)
    return bytes(out)


def backends_write(rig, off, data):
    """Write @data at window offset @off into the backend files, through
    the independent model (@off and the length in whole granules)."""
    g = rig.topo.min_granule()
    for o in range(0, len(data), g):
        ep, dpa = rig.topo.route(rig.base, off + o)
        with open(ep.path, "r+b") as f:
            f.seek(ep.file_offset + dpa)
            f.write(data[o:o + g])


def run_pmem_subpage(rig, rng):
    """Persistent memory (persistent-memdev) at 256 B: under ram-route=auto
    the window stays on the MMIO decode, as a write-back copy would lose
    what a crash catches; ram-route=shadow serves it through a shadow
    anyway, with one warning that says what it costs; the bytes land in
    the backends either way, and auto takes the window back to the
    decode."""
    q, loss = rig.q, "persistent memory served through a write-back shadow"
    with Step("auto"):
        rig.program()
        rig.expect_served("mmio")
        rig.write_pattern(1)
        rig.verify_backends(1)
        check(loss not in q.stderr(), "warned of a shadow it did not make")
    with Step("ram-route=shadow"):
        q.qmp("qom-set", path=rig.fmw, property="ram-route", value="shadow")
        rig.expect_served("shadow")
        check(rig.read_window() == pattern(0, CHECK_BYTES, 1),
              "the shadow does not read what the decode wrote")
        rig.write_pattern(2)
        rig.verify_backends(2)
        q.qmp("qom-set", path=rig.fmw, property="ram-route", value="mmio")
        q.qmp("qom-set", path=rig.fmw, property="ram-route", value="shadow")
        check(q.stderr().count(loss) == 1, "the shadow's loss window was "
              "not said once: %r" % q.stderr())
    with Step("auto again"):
        q.qmp("qom-set", path=rig.fmw, property="ram-route", value="auto")
        rig.expect_served("mmio")
        check(rig.read_window() == pattern(0, CHECK_BYTES, 2),
              "the decode does not read what the shadow wrote")


def run_readonly(rig, rng):
    """Type-3 devices with read-only backends (readonly=on): the decoders
    commit, the window stays on the MMIO decode (a writable TLB pointer
    into a read-only mapping killed QEMU on the guest's first store), a
    guest store gets what the decode gives (a synchronous external abort
    on arm64), and the files do not change."""
    q, t = rig.q, rig.topo
    before = rig.backend_digest()
    with Step("committed"):
        rig.program()
    with Step("guest store"):
        q.write(WRITER_PARAMS, struct.pack("<8Q", rig.base, 4096, 0, 0, 0, 0,
                                           0, 0))
        q.qmp("cont")
        deadline = time.time() + 20
        while not q64(q, WRITER_PARAMS + 0x20):
            check(time.time() < deadline, "the guest's store to a read-only "
                  "target was not refused (passes %d)"
                  % q64(q, WRITER_PARAMS + 0x10))
            time.sleep(0.01)
        esr, far = (q64(q, WRITER_PARAMS + 0x20),
                    q64(q, WRITER_PARAMS + 0x28))
        # data abort from the current EL, synchronous external abort
        check(esr >> 26 == 0x25 and esr & 0x3f == 0x10 and far == rig.base,
              "expected a synchronous external abort at 0x%x, got ESR 0x%x "
              "FAR 0x%x" % (rig.base, esr, far))
        q.qmp("stop")
    with Step("after"):
        check(rig.backend_digest() == before, "a read-only backend changed")
        rig.expect_served("mmio")
        check(rig.read_window(1 << 20) == window_from_backends(rig, 1 << 20),
              "the window does not read what the read-only files hold")


def run_guest_writes(rig, rng):
    """A guest writes the window without pause while its route changes:
    RAM and MMIO in turn (every word must be where the decode puts it,
    none lost), then an uncommit (its next store must fault: a stale TLB
    entry would keep writing into a backend)."""
    q, size = rig.q, 1 << 20
    kind = expected_kind(rig.topo)
    rig.program()
    rig.expect_served(kind)
    start_writer(rig, 0, size)
    with Step("route flipped while the guest writes"):
        for i in range(20):
            rig.set_ram(i % 2 == 1)
            wait_writer(rig, 1)
        q.qmp("stop")
        rig.expect_served(kind)
        data = rig.read_window(size)
        check_writer_buffer(data, "through the window")
        check(window_from_backends(rig, size) == data,
              "the backends do not hold what the window shows")
        q.qmp("cont")
        wait_writer(rig, 2)
    with Step("uncommitted while the guest writes"):
        # writes to an uncommitted window are dropped by the decode; a
        # stale TLB entry would keep them landing in a backend
        rig.unprogram()
        rig.expect_served("mmio")
        wait_writer(rig, 1)     # a whole pass after the flush
        digest = rig.backend_digest()
        wait_writer(rig, 3)
        check(rig.backend_digest() == digest,
              "the guest's writes still reach the backends after the "
              "uncommit")
        q.qmp("stop")
        check(rig.read_window(size) == bytes(size),
              "the uncommitted window does not read as zeros")
        # every word written before the uncommit took effect is in the
        # backends, through a shadow too (the retire protocol)
        check_writer_buffer(window_from_backends(rig, size),
                            "in the backends after the uncommit")


def lazy_shadow(rig):
    """The QOM path of the rig's shadow, checked to be filled lazily."""
    shadow = rig.fmw + "/shadow0"
    check(rig.q.qmp("qom-get", path=shadow, property="x-lazy") is True,
          "the shadow is filled eagerly: is userfaultfd unavailable?")
    return shadow


def filled_pages(rig, shadow):
    """The shadow's resident page count, once the fill thread is idle
    (its read-ahead may go on after the guest's last touch)."""
    last, deadline = -1, time.time() + 10
    while time.time() < deadline:
        n = rig.q.qmp("qom-get", path=shadow, property="x-filled-pages")
        if n == last:
            return n
        last = n
        time.sleep(0.3)
    raise Failure("the shadow's fill thread never went idle")


def backend_rss(rig):
    """{backend path: KiB of it QEMU has resident}, from /proc/PID/smaps:
    a page of a backend file that QEMU read or wrote is resident."""
    paths, rss, cur = {ep.path for ep in rig.topo.eps}, {}, None
    with open("/proc/%d/smaps" % rig.q.proc.pid) as f:
        for line in f:
            m = re.match(r"[0-9a-f]+-[0-9a-f]+ \S+ \S+ \S+ \S+\s+(.*)$", line)
            if m:
                cur = m.group(1) if m.group(1) in paths else None
            elif cur and line.startswith("Rss:"):
                rss[cur] = rss.get(cur, 0) + int(line.split()[1])
    return rss


def data_after(path, pos):
    """Where the next data at or after @pos is in the file at @path
    (SEEK_DATA), or None if only a hole follows."""
    with open(path, "rb") as f:
        try:
            return os.lseek(f.fileno(), pos, os.SEEK_DATA)
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
            return None


def check_holes_not_read(rig, before, zeros, what):
    """QEMU made less than half of what reading @zeros bytes of zeros
    over the backends' holes would have made resident in their files,
    since backend_rss() gave @before; @what was stored."""
    grown = {p: kib - before.get(p, 0)
             for p, kib in backend_rss(rig).items()}
    limit = zeros // 1024 // len(rig.topo.eps) // 2
    check(all(kib < limit for kib in grown.values()),
          "QEMU made %s KiB of the backend files resident for %s over "
          "holes (%d KiB each if it read the zeros)"
          % (sorted(grown.values()), what, 2 * limit))


def run_shadow_holes(rig, rng):
    """Shadow pages over holes of the backend files: the fill places
    zeros without reading the files, and the write-back of pages the guest
    only zeroed neither reads nor writes them, so no page of the files is
    made resident or allocated.  Bytes that are not zero land as the
    decode puts them, next to the zeros."""
    # the data 8 MiB away: the host may cache a file in 2 MiB folios,
    # and write back a whole folio around a byte written
    q, size, data_off, data_len = rig.q, 1 << 20, 8 << 20, 64 << 10
    rig.program()
    rig.expect_served("shadow")
    lazy_shadow(rig)
    before = backend_rss(rig)
    pattern = rng.randbytes(data_len)
    with Step("1 MiB of zeros and 64 KiB of data stored over holes"):
        q.b64write(rig.base, bytes(size))
        q.b64write(rig.base + data_off, pattern)
        q.qmp("stop")
        check(window_from_backends(rig, data_off + data_len)[data_off:] ==
              pattern, "the data are not in the backends as the decode "
              "puts them")
        # the reads above went through files, not QEMU's mappings
        check_holes_not_read(rig, before, size,
                             "64 KiB of data and 1 MiB of zeros")
        for ep in rig.topo.eps:
            lo = min(rig.topo.route(rig.base, off)[1]
                     for off in range(0, size, rig.topo.min_granule())
                     if rig.topo.route(rig.base, off)[0] is ep)
            at = data_after(ep.path, lo)
            hi = lo + size // len(rig.topo.eps)
            check(at is None or at >= hi, "%s holds data at 0x%x, where "
                  "the guest only wrote zeros" % (ep.path, at or 0))
        check(rig.read_window(size) == bytes(size),
              "the window does not read back the zeros")


def run_shadow_holes_offset(rig, rng):
    """Backends whose bytes start FILE_OFFSET bytes into their files
    (offset=): the fill asks whether a device's bytes are holes where they
    are in the file, not at their DPA.  Bytes stored into the files while
    the VM is stopped are gathered, not taken for holes.  Zeros the guest
    stores over holes are filled without reading the files and leave them
    holes, even with data where the device's DPAs would be in the file if
    its offset were not counted."""
    q, data_len, zero_off, zero_len = rig.q, 64 << 10, 8 << 20, 1 << 20
    rig.program()
    rig.expect_served("shadow")
    lazy_shadow(rig)
    pattern = rng.randbytes(data_len)
    spans = {}
    for off in range(zero_off, zero_off + zero_len, rig.topo.min_granule()):
        ep, dpa = rig.topo.route(rig.base, off)
        lo, hi = spans.get(ep, (dpa, dpa))
        spans[ep] = (min(lo, dpa), max(hi, dpa + rig.topo.min_granule()))
    with Step("64 KiB stored into the files while stopped, read after cont"):
        q.qmp("stop")
        backends_write(rig, 0, pattern)
        # in front of the device's bytes: what a check that left out the
        # offset would find data in, and then read
        for ep, (lo, hi) in spans.items():
            with open(ep.path, "r+b") as f:
                f.seek(lo)
                f.write(rng.randbytes(hi - lo))
        q.qmp("cont")
        got = rig.read_window(data_len)
        check(got == pattern, "the window shows %s of the %d bytes stored "
              "into the files (%d are zero): the fill took them for holes"
              % (sum(a == b for a, b in zip(got, pattern)), data_len,
                 got.count(0)))
    with Step("1 MiB of zeros stored over holes, nothing read or written"):
        before = backend_rss(rig)
        q.b64write(rig.base + zero_off, bytes(zero_len))
        q.qmp("stop")
        check_holes_not_read(rig, before, zero_len, "1 MiB of zeros")
        for ep, (lo, hi) in spans.items():
            at = data_after(ep.path, ep.file_offset + lo)
            check(at is None or at >= ep.file_offset + hi,
                  "%s holds data at 0x%x, where the guest only wrote zeros"
                  % (ep.path, at or 0))
        check(window_from_backends(rig, data_len) == pattern,
              "the stored bytes are no longer in the files")
        q.qmp("cont")


def run_shadow_first_touch(rig, rng):
    """A guest's store that fills a shadow page on first touch (it waits
    in the userfaultfd fault while the fill thread gathers the page)
    reaches the backends.  TCG marks the page dirty before the store: a
    background write-back taken during the fill must not consume that
    mark.  The fill is slowed down past the write-back period, and the
    guest stores once per page, so that no later store dirties the page
    again.  No read-ahead: each fault fills the pages it needs."""
    q, page, size = rig.q, 4096, 1 << 20
    rig.program()
    rig.expect_served("shadow")
    shadow = lazy_shadow(rig)
    q.qmp("qom-set", path=shadow, property="x-fill-ahead-pages", value=0)
    q.qmp("qom-set", path=shadow, property="x-fill-delay-ms", value=50)
    with Step("one store per page, each a first touch"):
        start_writer(rig, 0, size, stride=page, passes=1)
        q.qmp("stop")
        want = [(1 << 32) | off for off in range(0, size, page)]
        data = window_from_backends(rig, size)
        got = [struct.unpack_from("<Q", data, off)[0]
               for off in range(0, size, page)]
        lost = [off for off, w, g in zip(range(0, size, page), want, got)
                if w != g]
        check(not lost, "%d of %d first-touch stores are not in the "
              "backends after stop (first at window offset 0x%x)"
              % (len(lost), len(want), lost[0] if lost else 0))
        check(rig.read_window(size) == data,
              "the window does not show what the backends hold")


def run_shadow_fill_ahead(rig, rng):
    """Pages touched apart get no read-ahead; a guest that touches the
    shadow in address order finds the pages after its touches filled
    ahead of it, within the read-ahead's bound.  The stores made on pages
    being filled ahead reach the backends, and the pages filled ahead hold
    the backends' bytes."""
    q, page = rig.q, 4096
    fill, ahead = 16, 512          # CXL_SHADOW_FILL_PAGES, _FILL_AHEAD
    in_order, apart = 256, 64      # pages touched in each step
    rig.program()
    rig.expect_served("shadow")
    shadow = lazy_shadow(rig)
    check(q.qmp("qom-get", path=shadow, property="x-fill-ahead-pages") ==
          ahead, "the read-ahead is not %d pages by default" % ahead)
    with Step("%d pages read %d pages apart: no read-ahead"
              % (apart, fill + 1)):
        base = 4 << 20
        for i in range(apart):
            q.b64read(rig.base + base + i * (fill + 1) * page, 8)
        n = filled_pages(rig, shadow)
        check(apart <= n <= apart * fill,
              "%d pages filled for %d read apart: expected %d to %d"
              % (n, apart, apart, apart * fill))
    # bytes the guest never writes, to be filled ahead of it
    pattern = rng.randbytes(ahead * page)
    backends_write(rig, in_order * page, pattern)
    with Step("%d pages stored to in order: the next %d filled ahead"
              % (in_order, ahead)):
        # (cont drops what the shadow holds: the backends may have changed)
        start_writer(rig, 0, in_order * page, stride=page, passes=1)
        n = filled_pages(rig, shadow)
        check(in_order + fill < n <= in_order + ahead + fill,
              "%d pages filled after %d stored to in order; a read-ahead "
              "of %d means more than %d, at most %d"
              % (n, in_order, ahead, in_order + fill,
                 in_order + ahead + fill))
        q.qmp("stop")
        want = [(1 << 32) | off for off in range(0, in_order * page, page)]
        data = window_from_backends(rig, in_order * page)
        got = [struct.unpack_from("<Q", data, off)[0]
               for off in range(0, in_order * page, page)]
        check(want == got, "%d of %d stores are not in the backends"
              % (sum(w != g for w, g in zip(want, got)), len(want)))
        check(q.b64read(rig.base + in_order * page, len(pattern)) ==
              pattern, "the pages filled ahead do not hold the backends' "
              "bytes")


def run_guest_writes_unplug(rig, rng):
    """A device unplugged while a guest writes the window: from then on
    its backend receives nothing (no stale TLB entry, no cached route),
    the other device keeps receiving the granules the decode gives it."""
    q, size = rig.q, 1 << 20
    t = rig.topo
    rig.program()
    rig.expect_served(expected_kind(t))
    start_writer(rig, 0, size)
    gone = t.eps[0]
    with Step("unplugged while the guest writes"):
        unplug_first(rig)
        rig.expect_served("mmio")
        wait_writer(rig, 1)     # a whole pass after the flush
        with open(gone.path, "rb") as f:
            before = f.read(size)
        wait_writer(rig, 3)
        with open(gone.path, "rb") as f:
            check(f.read(size) == before, "the guest's writes still reach "
                  "the unplugged device's backend")
        q.qmp("stop")
        # the remaining device holds the writer's latest pass
        g = t.min_granule()
        words = []
        for off in range(0, size, g):
            ep, dpa = t.route(rig.base, off)
            if ep is gone:
                continue
            with open(ep.path, "rb") as f:
                f.seek(dpa)
                words.append(f.read(g))
        got = set(struct.unpack("<%dQ" % (len(b"".join(words)) // 8),
                                b"".join(words)))
        top = max(w >> 32 for w in got)
        check(top >= q64(q, WRITER_PARAMS + 0x10),
              "%s missed the writes made after the unplug" % t.eps[1].name)


def run_live_migration(rig, rng, stitched=False):
    """Live migration while a guest writes into the window the whole
    time, and device DMA into it: once it completes, every byte of every
    destination backend is the source's (a write the dirty tracking
    missed would differ).  With
    @stitched the source serves the window through its stitched host
    mapping, whose dirty pages reach the targets at each sync."""
    t, q = rig.topo, rig.q
    size = 4 << 20
    with Step("source"):
        if stitched:
            q.qmp("qom-set", path=rig.fmw, property="x-stitched", value=True)
        rig.program()
        if stitched:
            check("cxl-fixed-memory-region.stitched0" in
                  q.hmp("info mtree -f"), "the window is not stitched")
        rig.expect_served(expected_kind(t))
        start_writer(rig, 0, size)
    dst, dt, sock = destination(rig)
    try:
        with Step("migration"):
            # slow enough that device DMA lands while pages are sent
            q.qmp("migrate-set-parameters", **{"max-bandwidth": 256 << 20})
            before = q64(q, WRITER_PARAMS + 0x10)
            q.qmp("migrate", uri="unix:" + sock)
            dma, dev = 0, "/machine/peripheral/dma"
            # the probe refuses DMA once the final stop began, as a
            # device would: every write it made, it made before
            q.qmp("qom-set", path=dev, property="while-running", value=True)
            while q.qmp("query-migrate").get("status") in ("setup",
                                                          "active"):
                # device DMA into the window, past the writer's buffer
                for k, v in (("addr", rig.base + (8 << 20) + dma * 65536 +
                              dma * 8),
                             ("len", 4096), ("seed", dma & 0xff)):
                    q.qmp("qom-set", path=dev, property=k, value=v)
                try:
                    q.qmp("qom-set", path=dev, property="op",
                          value="rw-write")
                except RuntimeError as e:
                    check("not running" in str(e), "DMA write: %s" % e)
                    break
                dma += 1
                time.sleep(0.02)
            wait_migration(q, "outgoing")
            check(dma >= 3, "only %d DMA writes during the migration" % dma)
            wait_migration(dst.q, "incoming")
            passes = q64(q, WRITER_PARAMS + 0x10) - before
            check(passes >= 1, "the guest wrote nothing during migration")
        with Step("destination backends"):
            for a, b in zip(t.eps, dt.eps):
                off = files_equal(a.path, b.path)
                if off is not None:
                    raise Failure("%s differs from the source at DPA 0x%x "
                                  "(%d passes written during migration)"
                                  % (b.name, off, passes))
            check_writer_buffer(window_from_backends(dst, size),
                                "destination")
    finally:
        dst.close()


def written_back(rig, off, data):
    """Write @data at window offset @off of the running VM, and wait for
    the background write-back to bring it to its backend file (at most
    5 s).  Returns how long that took, in seconds."""
    ep, dpa = rig.topo.route(rig.base, off)
    t0 = time.time()
    rig.q.write(rig.base + off, data)
    while True:
        with open(ep.path, "rb") as f:
            f.seek(dpa)
            if f.read(len(data)) == data:
                return time.time() - t0
        check(time.time() - t0 < 5, "+0x%x not in %s after 5 s"
              % (off, ep.name))
        time.sleep(0.001)


def run_shadow_period(rig, rng):
    """The window's x-shadow-period-ms reaches the shadows it makes from
    then on (benchmarks compare write-back periods with it), and their
    background write-back still brings a write to its backend."""
    q, t = rig.q, rig.topo
    q.qmp("qom-set", path=rig.fmw, property="x-shadow-period-ms", value=250)
    rig.program()
    rig.expect_served("shadow")
    got = q.qmp("qom-get", path=rig.fmw + "/shadow0",
                property="x-writeback-period-ms")
    check(got == 250, "the shadow's write-back period is %s ms, the window "
          "asked for 250" % got)
    off = rng.randrange(t.size // 8) * 8
    written_back(rig, off, struct.pack("<Q", 0x9e410d0000000000 | off))


def run_shadow(rig, rng):
    """A sub-page window through its write-back shadow: plain RAM in info
    mtree; guest-visible bytes reach each backend at every sync point and
    in the background within a bounded delay; bytes written into a backend
    while the VM is stopped are what the window reads after cont; a media
    operation that zeroes a device while it runs shows through the window;
    unaligned accesses across granule edges land byte by byte."""
    q, t, b = rig.q, rig.topo, rig.base
    g = t.min_granule()
    with Step("committed"):
        place_and_check(rig, 1)         # verify_backends stops first
        check("cxl-fixed-memory-region.shadow0" in q.hmp("info mtree -f"),
              "no shadow region in info mtree -f")
    with Step("background write-back"):
        worst = 0.0
        for i in range(50):
            off = rng.randrange(t.size // 8) * 8
            data = struct.pack("<Q", 0x5eed000000000000 | i << 32 | off)
            worst = max(worst, written_back(rig, off, data))
        print("     background write-back: worst delay of 50 probes %.0f ms"
              % (worst * 1000))
    with Step("backend written while stopped, read after cont"):
        q.qmp("stop")
        off = 5 * g + 3
        ep, dpa = t.route(b, off)
        with open(ep.path, "r+b") as f:
            f.seek(dpa)
            f.write(b"stopped!")
        q.qmp("cont")
        got = q.read(b + off, 8)
        check(got[:g - 3] == b"stopped!"[:g - 3], "the window reads %s after "
              "cont, the backend holds 'stopped!'" % got)
    with Step("unaligned accesses across granule edges"):
        for k in range(1, 9):
            off = k * g - 3
            data = struct.pack("<Q", 0x0102030405060708 * k)
            q.write(b + off, data)
        rig.sync()
        for k in range(1, 9):
            off = k * g - 3
            data = struct.pack("<Q", 0x0102030405060708 * k)
            for i in range(8):
                ep, dpa = t.route(b, off + i)
                with open(ep.path, "rb") as f:
                    f.seek(dpa)
                    check(f.read(1)[0] == data[i], "byte +0x%x not at %s "
                          "DPA 0x%x" % (off + i, ep.name, dpa))
    with Step("shadow against MMIO"):
        rig.differential(rng)


XOR_NOT_RAM = "XOR interleave arithmetic is not served as RAM yet"


def bswap32(v):
    return struct.unpack("<I", struct.pack(">I", v))[0]


def fw_cfg_read(q, select, size, buf=0x100000):
    """@size bytes of q35's fw_cfg item @select, through its DMA interface
    (port 0x514; big-endian descriptor and address halves), by way of
    guest RAM at @buf."""
    dst = buf + 0x1000
    q.write(buf, struct.pack(">IIQ", select << 16 | 0x08 | 0x02, size, dst))
    # the guest writes the address big-endian: outl's value is swapped
    q.cmd("outl 0x514 0x%x" % bswap32(buf >> 32))
    q.cmd("outl 0x518 0x%x" % bswap32(buf & 0xffffffff))
    ctl, = struct.unpack(">I", q.read(buf, 4))
    check(ctl == 0, "fw_cfg DMA of item 0x%x failed (control 0x%x)"
          % (select, ctl))
    return q.b64read(dst, size) if size else b""


def acpi_table(q, sig):
    """The ACPI table @sig as QEMU's fw_cfg file etc/acpi/tables holds it
    (q35), parsed from the file directory (item 0x19) up."""
    count, = struct.unpack(">I", fw_cfg_read(q, 0x19, 4))
    files = fw_cfg_read(q, 0x19, 4 + 64 * count)[4:]
    for i in range(count):
        size, sel = struct.unpack(">IH", files[64 * i:64 * i + 6])
        name = files[64 * i + 8:64 * i + 64].split(b"\0")[0]
        if name == b"etc/acpi/tables":
            blob = fw_cfg_read(q, sel, size)
            at = blob.find(sig)
            check(at >= 0, "no %s table in etc/acpi/tables" % sig)
            length, = struct.unpack("<I", blob[at + 4:at + 8])
            return blob[at:at + length]
    raise Failure("no etc/acpi/tables in fw_cfg")


def check_cedt_xor(rig):
    """The CEDT, read and parsed here (CXL 3.0 9.17.1): the window's CFMWS
    says XOR arithmetic (1), and one CXIMS of its granularity lists the
    topology's maps."""
    t, q = rig.topo, rig.q
    cedt = acpi_table(q, b"CEDT")
    enc_gran = (t.gw >> 8).bit_length() - 1
    cfmws, cxims, off = [], [], 36
    while off + 4 <= len(cedt):
        typ, length = cedt[off], struct.unpack("<H", cedt[off + 2:off + 4])[0]
        check(length >= 4, "CEDT structure of length %d" % length)
        s = cedt[off:off + length]
        if typ == 1:
            base, size = struct.unpack("<QQ", s[8:24])
            eniw, arith = s[24], s[25]
            hbig, = struct.unpack("<I", s[28:32])
            cfmws.append((base, size, eniw, arith, hbig))
        elif typ == 2:
            hbig, nib = s[6], s[7]
            cxims.append((hbig, list(struct.unpack("<%dQ" % nib,
                                                   s[8:8 + 8 * nib]))))
        off += length
    win = [c for c in cfmws if c[0] == rig.base]
    check(len(win) == 1, "no CFMWS at the window's base 0x%x: %s"
          % (rig.base, cfmws))
    _, size, eniw, arith, hbig = win[0]
    check(arith == 1 and hbig == enc_gran and size == t.size and
          1 << eniw == len(t.hbs), "CFMWS of the XOR window: arithmetic "
          "%d, granularity %d, ways 2^%d, size 0x%x" % (arith, hbig, eniw,
                                                        size))
    mine = [m for g, m in cxims if g == enc_gran]
    check(len(mine) == 1 and mine[0] == t.xor_maps, "CXIMS of granularity "
          "%d: %s, the window's maps are %s" % (enc_gran, cxims,
                                                [hex(m) for m in t.xor_maps]))


def run_xor(rig, rng):
    """A window with XOR arithmetic: on q35, the CEDT (read through
    fw_cfg, parsed here) says XOR and lists the window's maps; every byte
    written through it is in the backend and at the DPA the independent
    model puts it (bit i of the host bridge's position: the parity of the
    address under map i; modulo below), a layout modulo would not give;
    the MMIO decode serves it, said once; uncommitted and committed again,
    the same."""
    q, t = rig.q, rig.topo
    g = t.min_granule()
    modulo = Topology.__new__(Topology)
    modulo.__dict__.update(t.__dict__, xor_maps=None)
    check(any(t.route(rig.base, o) != modulo.route(rig.base, o)
              for o in range(0, CHECK_BYTES, g)),
          "the XOR maps place the checked bytes as modulo would: this run "
          "proves nothing")
    if rig.machine == "q35":
        with Step("the CEDT's CFMWS and CXIMS"):
            check_cedt_xor(rig)
    with Step("committed"):
        rig.kind = "mmio"
        place_and_check(rig, 1)
        check(q.stderr().count(XOR_NOT_RAM) == 1, "the MMIO route of an XOR "
              "window was not said once: %r" % q.stderr()[-500:])
    with Step("uncommitted, committed again"):
        rig.unprogram()
        place_and_check(rig, 2)
        check(q.stderr().count(XOR_NOT_RAM) == 1, "said more than once")


# (-M cxl-fmw.0 options after four targets and the size, what QEMU must
# say): four host bridges at 256 B take two maps, bits 8 and 9 theirs
XOR_BAD = [
    (",cxl-fmw.0.xor-maps.0=0x100",
     "xor-maps needs interleave-arithmetic=xor"),
    (",cxl-fmw.0.interleave-arithmetic=xor,cxl-fmw.0.xor-maps.0=0x1100",
     "needs 2 XOR maps, not 1"),
    (",cxl-fmw.0.interleave-arithmetic=xor,cxl-fmw.0.xor-maps.0=0x180,"
     "cxl-fmw.0.xor-maps.1=0x200",
     "names address bits below the interleave granularity (bit 8)"),
    (",cxl-fmw.0.interleave-arithmetic=xor,cxl-fmw.0.xor-maps.0=0x300,"
     "cxl-fmw.0.xor-maps.1=0x200",
     "XOR map 0 (0x300) must have bit 8 set and no other bit from 8 to 9"),
    (",cxl-fmw.0.interleave-arithmetic=xor,cxl-fmw.0.xor-maps.0=0x100,"
     "cxl-fmw.0.xor-maps.1=0x10000000000200",
     "names address bits above bit 51"),
    (",cxl-fmw.0.interleave-arithmetic=xor,cxl-fmw.0.xor-maps.0=0x100,"
     "cxl-fmw.0.xor-maps.1=0x200,cxl-fmw.0.xor-maps.2=0x400",
     "needs 2 XOR maps, not 3"),
]


def run_xor_bad_maps(qemu_dir):
    """XOR windows QEMU must refuse, each with its reason, before the
    machine runs: maps without XOR, too few or too many maps, bits below
    the granule or above bit 51, two host-bridge-selecting bits in one
    map, XOR over 3 host bridges, two XOR windows of one granularity with
    different maps (one CXIMS for both); and a window of 257 targets.
    Two XOR windows of one granularity with QEMU's default maps start."""
    m = MACHINES["q35"]
    binary = os.path.join(qemu_dir, m["binary"])
    pxb = []
    for h in range(4):
        pxb += ["-device", "pxb-cxl,bus_nr=%d,bus=pcie.0,id=cxl.%d"
                % (16 + 32 * h, h)]

    def refused(fmw, want):
        args = [binary, "-display", "none", "-nodefaults", "-S",
                "-machine", "q35,cxl=on", "-m", "256M"] + pxb + ["-M", fmw]
        try:
            p = subprocess.run(args, stdin=subprocess.DEVNULL,
                               capture_output=True, text=True, timeout=20)
        except subprocess.TimeoutExpired:
            raise Failure("QEMU started with %s (expected: %s)" % (fmw, want))
        check(p.returncode != 0 and want in p.stderr,
              "with %s QEMU exited %d saying %r, expected %r"
              % (fmw, p.returncode, p.stderr.strip()[-300:], want))

    four = ("cxl-fmw.0.targets.0=cxl.0,cxl-fmw.0.targets.1=cxl.1,"
            "cxl-fmw.0.targets.2=cxl.2,cxl-fmw.0.targets.3=cxl.3,"
            "cxl-fmw.0.size=1G")
    for opts, want in XOR_BAD:
        with Step(want):
            refused(four + opts, want)
    with Step("257 targets"):
        # an 8-bit count wrapped to 1 once; the names overran their array
        refused(",".join("cxl-fmw.0.targets.%d=cxl.%d" % (i, i % 4)
                         for i in range(257)) + ",cxl-fmw.0.size=1G",
                "has at most 16 targets, not 257")
    with Step("3 host bridges"):
        refused("cxl-fmw.0.targets.0=cxl.0,cxl-fmw.0.targets.1=cxl.1,"
                "cxl-fmw.0.targets.2=cxl.2,cxl-fmw.0.size=768M,"
                "cxl-fmw.0.interleave-arithmetic=xor",
                "XOR interleave arithmetic over 3 host bridges is not "
                "emulated")
    with Step("two windows, one granularity, default maps"):
        # of 2 and 4 host bridges, 1 and 2 GiB: QEMU's default maps of one
        # granularity agree (one CXIMS), so QEMU starts
        args = [binary, "-display", "none", "-nodefaults", "-S",
                "-machine", "q35,cxl=on", "-m", "256M"] + pxb + [
                "-M", "cxl-fmw.0.targets.0=cxl.0,cxl-fmw.0.targets.1=cxl.1,"
                "cxl-fmw.0.size=1G,cxl-fmw.0.interleave-arithmetic=xor,"
                "cxl-fmw.1.targets.0=cxl.0,cxl-fmw.1.targets.1=cxl.1,"
                "cxl-fmw.1.targets.2=cxl.2,cxl-fmw.1.targets.3=cxl.3,"
                "cxl-fmw.1.size=2G,cxl-fmw.1.interleave-arithmetic=xor"]
        p = subprocess.Popen(args, stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True)
        try:
            p.wait(timeout=3)
            raise Failure("two XOR windows with default maps: QEMU exited "
                          "%d: %s" % (p.returncode, p.stderr.read().strip()))
        except subprocess.TimeoutExpired:
            pass                # running: both windows were taken
        finally:
            p.kill()
            p.wait()
            p.stderr.close()
    with Step("two windows, one granularity, different maps"):
        refused("cxl-fmw.0.targets.0=cxl.0,cxl-fmw.0.targets.1=cxl.1,"
                "cxl-fmw.0.size=1G,cxl-fmw.0.interleave-arithmetic=xor,"
                "cxl-fmw.1.targets.0=cxl.2,cxl-fmw.1.targets.1=cxl.3,"
                "cxl-fmw.1.size=1G,cxl-fmw.1.interleave-arithmetic=xor,"
                "cxl-fmw.1.xor-maps.0=0x100",
                "share the CEDT's maps for it, but map 0 differs")


def run_kvm_migration(rig, rng):
    """The migration scenario with KVM as the accelerator (vCPUs never
    run: -S), data preloaded through the window; vm.max_map_count raised
    so that KVM maps the window directly (else a shadow serves it)."""
    with MapCountAtLeast(rig.topo.size // rig.topo.min_granule() + 65536):
        run_migration(rig, rng)


# name, machine, hbs, window granule, hb granule, switch granule, ep
# granule, tier.  Host bridge order as Linux sets it up: the window
# interleaves host bridges at the endpoint granule, each host bridge its
# root ports at granule x host bridges, each switch at granule x ways
# above it.
SCENARIOS = [
    ("q35-1hb-4rp-4k", "q35", [[None] * 4], 4096, 4096, None, 4096, "ci"),
    ("q35-1way-4k", "q35", [[None]], 4096, None, None, 4096, "ci"),
    ("q35-2hb-2rp-256", "q35", [[None] * 2] * 2, 256, 512, None, 256, "ci"),
    ("q35-4hb-16k", "q35", [[None]] * 4, 16384, None, None, 16384, "ci"),
    ("q35-3hb-3way-4k", "q35", [[None]] * 3, 4096, None, None, 4096, "ci"),
    ("q35-3hb-2rp-6way-4k", "q35", [[None] * 2] * 3, 8192, 4096, None,
     4096, "ci"),
    ("q35-2hb-4rp-8way-8k", "q35", [[None] * 4] * 2, 8192, 16384, None,
     8192, "ci"),
    ("q35-switch-2way-4k", "q35", [[2]], 4096, None, 4096, 4096, "ci"),
    ("virt-1hb-4rp-4k", "virt", [[None] * 4], 4096, 4096, None, 4096, "ci"),
    ("virt-3hb-3way-8k", "virt", [[None]] * 3, 8192, None, None, 8192, "ci"),
    ("virt-2hb-switch-4way-4k", "virt", [[2], [2]], 4096, None, 8192, 4096,
     "ci"),
    ("virt-2hb-2rp-1k", "virt", [[None] * 2] * 2, 1024, 2048, None, 1024,
     "ci"),
    # full matrix only
    ("q35-1hb-2rp-512", "q35", [[None] * 2], 512, 512, None, 512, "full"),
    ("q35-1hb-4rp-16k", "q35", [[None] * 4], 16384, 16384, None, 16384,
     "full"),
    ("q35-4hb-2rp-8way-4k", "q35", [[None] * 2] * 4, 4096, 16384, None, 4096,
     "full"),
    ("q35-3hb-2rp-6way-16k", "q35", [[None] * 2] * 3, 16384, 16384,
     None, 16384, "full"),
    ("q35-3hb-4rp-12way-4k", "q35", [[None] * 4] * 3, 16384, 4096, None,
     4096, "full"),
    ("q35-switch-4way-2k", "q35", [[4]], 2048, None, 2048, 2048, "full"),
    ("q35-2hb-switch-8way-4k", "q35", [[4], [4]], 4096, None, 8192,
     4096, "full"),
    ("virt-4hb-4way-4k", "virt", [[None]] * 4, 4096, None, None, 4096,
     "full"),
    ("virt-3hb-2rp-6way-8k", "virt", [[None] * 2] * 3, 16384, 8192, None,
     8192, "full"),
    ("virt-2hb-4rp-8way-256", "virt", [[None] * 4] * 2, 256, 512, None, 256,
     "full"),
]


def main():
    opt, seed, runner = scenario_cli(__doc__, "routing-test")

    def run(name, machine, hbs, fn, extra=(), accel="qtest", **gran):
        def scenario(rig):
            check(consistent(rig.topo, rig.base), "scenario is not a "
                  "bijection")
            fn(rig, random.Random(seed ^ zlib.crc32(name.encode())))
        runner.run(name, lambda tmp: Rig(opt.qemu_dir, machine,
                                         Topology(tmp, hbs, **gran), extra,
                                         accel=accel), scenario)

    for (name, machine, hbs, gw, ghb, gsw, gep, tier) in SCENARIOS:
        if tier == "full" and opt.tier != "full":
            continue
        run(name, machine, hbs, scenario_placement,
            gw=gw, ghb=ghb, gsw=gsw, gep=gep)
    for machine in ("q35", "virt"):
        run("%s-bad-programming" % machine, machine, [[None] * 2],
            run_bad_programming, gw=4096, ghb=4096, gep=4096)
        run("%s-inconsistent-levels" % machine, machine, [[None] * 2],
            run_inconsistent_levels, gw=4096, ghb=4096, gep=4096)
        run("%s-hot-unplug" % machine, machine, [[None] * 4],
            run_hot_unplug, gw=4096, ghb=4096, gep=4096)
        run("%s-sanitize" % machine, machine, [[None] * 4], run_sanitize,
            gw=4096, ghb=4096, gep=4096)
        run("%s-clear-poison" % machine, machine, [[None] * 4],
            run_clear_poison, gw=4096, ghb=4096, gep=4096)
        run("%s-migration" % machine, machine, [[2], [None, None]],
            run_migration, gw=4096, ghb=8192, gsw=8192, gep=4096)
        run("%s-savevm" % machine, machine, [[None] * 4], run_savevm,
            gw=4096, ghb=4096, gep=4096)
        run("%s-stitched" % machine, machine, [[None] * 2], run_stitched,
            gw=16384, ghb=16384, gep=16384,
            extra=["-device", "x-dma-probe-testdev,id=dma"])
        run("%s-dump" % machine, machine, [[None] * 4], run_dump,
            gw=4096, ghb=4096, gep=4096)
        run("%s-dump-sparse-64g" % machine, machine, [[None] * 2],
            run_dump_sparse, gw=4096, ghb=4096, gep=4096, dev_size=32 << 30)
        run("%s-dma" % machine, machine, [[None] * 4], run_dma,
            gw=4096, ghb=4096, gep=4096,
            extra=["-device", "x-dma-probe-testdev,id=dma"])
    # sub-page granules through the write-back shadow
    for machine, hbs, gw, ghb, gep in (("q35", [[None] * 4], 256, 256, 256),
                                       ("virt", [[None] * 2] * 2, 256, 512,
                                        256)):
        run("%s-shadow-%d" % (machine, gep), machine, hbs, run_shadow,
            gw=gw, ghb=ghb, gep=gep)
    shadowed = dict(gw=256, ghb=256, gep=256)
    # anonymous RAM made shared (memfd) for CPR: the shadow stays private,
    # or dropping its pages would not drop them
    run("q35-shadow-aux-ram-share", "q35", [[None] * 4], run_shadow,
        extra=["-machine", "aux-ram-share=on"], **shadowed)
    run("q35-shadow-period", "q35", [[None] * 4], run_shadow_period,
        **shadowed)
    run("q35-shadow-migration", "q35", [[None] * 4], run_migration,
        **shadowed)
    run("q35-shadow-savevm", "q35", [[None] * 4], run_savevm, **shadowed)
    run("q35-shadow-dump", "q35", [[None] * 4], run_dump, **shadowed)
    run("q35-shadow-hot-unplug", "q35", [[None] * 4], run_hot_unplug,
        **shadowed)
    run("q35-shadow-sanitize", "q35", [[None] * 4], run_sanitize, **shadowed)
    run("q35-shadow-clear-poison", "q35", [[None] * 4], run_clear_poison,
        **shadowed)
    run("q35-shadow-4k-clear-poison", "q35", [[None] * 4],
        on_shadow_route(run_clear_poison), gw=4096, ghb=4096, gep=4096)
    run("q35-shadow-media-ops-zero", "q35", [[None] * 4], run_media_ops_zero,
        **shadowed)
    run("q35-shadow-holes", "q35", [[None] * 2], run_shadow_holes,
        **shadowed)
    run("q35-shadow-holes-offset", "q35", [[None] * 2],
        run_shadow_holes_offset, backend="file-offset", **shadowed)
    # the listener contract: vhost (vhost-user-blk, qemu-storage-daemon)
    for name, gran in (("q35-vhost-user-window", 4096),
                       ("q35-vhost-user-shadow", 256)):
        make, after = vhost_user_blk(
            lambda tmp, extra, gran=gran: Rig(
                opt.qemu_dir, "q35", Topology(tmp, [[None] * 4], gw=gran,
                                              ghb=gran, gep=gran), extra))
        runner.run(name, lambda tmp, make=make: make(tmp, opt.qemu_dir),
                   lambda rig: run_vhost_user_window(rig, None), after)
    for on in (False, True):
        make, after = vhost_user_blk(
            lambda tmp, extra, on=on: Rig(
                opt.qemu_dir, "q35", Topology(tmp, [[None] * 2], gw=4096,
                                              ghb=4096, gep=4096),
                extra + alias_testdev(on)))
        runner.run("q35-vhost-user-aliases-%s" % ("on" if on else "off"),
                   lambda tmp, make=make: make(tmp, opt.qemu_dir),
                   lambda rig, on=on: run_vhost_user_aliases(rig, on), after)
    # a guest (arm64 virt, TCG) that writes into the window
    writer = ["-bios", os.path.join(opt.guest_dir, "writer-aarch64.bin"),
              "-S"]
    # XOR interleave arithmetic at the window: default and given maps,
    # with and without host-bridge interleave below it
    run("q35-xor-2hb-4k", "q35", [[None]] * 2, run_xor, gw=4096, xor=True)
    run("q35-xor-4hb-256", "q35", [[None]] * 4, run_xor, gw=256,
        xor=[1 << 8 | 1 << 12 | 1 << 17, 1 << 9 | 1 << 13 | 1 << 21])
    run("virt-xor-2hb2rp-1k", "virt", [[None] * 2] * 2, run_xor, gw=1024,
        ghb=2048, gep=1024, xor=True)
    run("virt-xor-4hb-16k", "virt", [[None]] * 4, run_xor, gw=16384,
        xor=[1 << 14 | 1 << 18 | 1 << 22, 1 << 15 | 1 << 19 | 1 << 23])
    # (a rig for the runner; the scenario starts QEMUs of its own)
    runner.run("q35-xor-bad-maps", lambda tmp: Rig(
        opt.qemu_dir, "q35", Topology(tmp, [[None]], 4096)),
        lambda _: run_xor_bad_maps(opt.qemu_dir))
    for machine in ("q35", "virt"):
        run("%s-pmem-256" % machine, machine, [[None] * 4], run_pmem_subpage,
            backend="file-pmem", gw=256, ghb=256, gep=256)
    run("virt-readonly-backend", "virt", [[None] * 2], run_readonly,
        extra=writer, accel="tcg", backend="file-readonly",
        gw=4096, ghb=4096, gep=4096)
    run("virt-guest-writes", "virt", [[None] * 2], run_guest_writes,
        extra=writer, accel="tcg", gw=4096, ghb=4096, gep=4096)
    run("virt-guest-writes-unplug", "virt", [[None] * 2],
        run_guest_writes_unplug, extra=writer, accel="tcg",
        gw=4096, ghb=4096, gep=4096)
    dma = ["-device", "x-dma-probe-testdev,id=dma"]
    run("virt-live-migration", "virt", [[None] * 2], run_live_migration,
        extra=writer + dma, accel="tcg", gw=4096, ghb=4096, gep=4096)
    run("virt-shadow-guest-writes", "virt", [[None] * 2], run_guest_writes,
        extra=writer, accel="tcg", gw=256, ghb=256, gep=256)
    run("virt-shadow-first-touch", "virt", [[None] * 2],
        run_shadow_first_touch, extra=writer, accel="tcg",
        gw=256, ghb=256, gep=256)
    run("virt-shadow-fill-ahead", "virt", [[None] * 2],
        run_shadow_fill_ahead, extra=writer, accel="tcg",
        gw=256, ghb=256, gep=256)
    run("virt-shadow-live-migration", "virt", [[None] * 2],
        run_live_migration, extra=writer + dma, accel="tcg",
        gw=256, ghb=256, gep=256)
    run("virt-live-migration-stitched", "virt", [[None] * 2],
        lambda rig, rng: run_live_migration(rig, rng, stitched=True),
        extra=writer + dma, accel="tcg", gw=16384, ghb=16384, gep=16384)
    # KVM (vCPUs never run here: these machines' KVM cannot run a stock
    # guest): migration of a committed window, skipped without /dev/kvm
    if os.access("/dev/kvm", os.R_OK | os.W_OK):
        run("q35-kvm-migration", "q35", [[2], [None, None]],
            run_kvm_migration, extra=["-S"], accel="kvm",
            gw=4096, ghb=8192, gsw=8192, gep=4096)
    elif "kvm" in opt.match:
        print("skip q35-kvm-migration: /dev/kvm is not usable")
    return runner.summary()


if __name__ == "__main__":
    sys.exit(main())
