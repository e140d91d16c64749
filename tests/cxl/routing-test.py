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

import argparse
import array
import os
import random
import re
import shutil
import sys
import tempfile
import time
import traceback
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "..", "scripts"))
import cxlqtest as cq  # noqa: E402

DEV_SIZE = 256 << 20
CHECK_BYTES = 16 << 20      # written and verified byte for byte per window
RANDOM_SAMPLES = 64

MACHINES = {
    "q35": dict(binary="qemu-system-x86_64",
                args=["-machine", "q35,cxl=on", "-m", "256M"],
                firmware=["/usr/share/seabios", "/usr/lib/ipxe/qemu"],
                ecam=None, mem_base=0xd0000000),
    "virt": dict(binary="qemu-system-aarch64",
                 args=["-machine", "virt,cxl=on", "-cpu", "max", "-m", "256M"],
                 firmware=[], ecam=0x4010000000, mem_base=0x10000000),
}
# Target page of both machines here; a granule below it stays MMIO.
TARGET_PAGE = 4096


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class EP:
    def __init__(self, name, path):
        self.name, self.path = name, path


class Switch:
    def __init__(self, name, dsps):
        self.name, self.dsps = name, dsps      # dsps: list of EP


class Topology:
    """hbs: one list per host bridge, one entry per root port: None for a
    type-3 device, an int k for a switch with k downstream ports each
    holding a type-3 device.  Window granule gw over all host bridges;
    host bridge decoders granule ghb, switch decoders gsw, endpoints gep."""

    def __init__(self, tmp, hbs, gw, ghb=None, gsw=None, gep=None):
        self.tmp, self.hbs, self.gw = tmp, [], gw
        self.ghb, self.gsw, self.gep = ghb or gw, gsw or gw, gep or gw
        self.args, self.eps = [], []
        for h, rps in enumerate(hbs):
            hb = "cxl.%d" % h
            self.args += ["-device", "pxb-cxl,bus_nr=%d,bus=pcie.0,id=%s"
                          % (16 + 32 * h, hb)]
            ports = []
            for p, spec in enumerate(rps):
                rp = "h%drp%d" % (h, p)
                self.args += ["-device", "cxl-rp,port=%d,bus=%s,id=%s,"
                              "chassis=%d,slot=%d" % (p, hb, rp, h, p)]
                if spec is None:
                    ports.append(self._ep(rp))
                else:
                    us = "h%dus%d" % (h, p)
                    self.args += ["-device", "cxl-upstream,bus=%s,id=%s"
                                  % (rp, us)]
                    dsps = []
                    for d in range(spec):
                        ds = "%sds%d" % (us, d)
                        self.args += ["-device", "cxl-downstream,port=%d,"
                                      "bus=%s,id=%s,chassis=%d,slot=%d"
                                      % (d, us, ds, 100 + h * 8 + p, d)]
                        dsps.append(self._ep(ds))
                    ports.append(Switch(us, dsps))
            self.hbs.append((hb, ports))
        self.ways = len(self.eps)
        self.size = self.ways * DEV_SIZE
        targets = ",".join("cxl-fmw.0.targets.%d=%s" % (i, hb)
                           for i, (hb, _) in enumerate(self.hbs))
        self.args += ["-M", "%s,cxl-fmw.0.size=%dM,"
                      "cxl-fmw.0.interleave-granularity=%d"
                      % (targets, self.size >> 20, gw)]

    def _ep(self, port):
        i = len(self.eps)
        name = "ep%d" % i
        path = os.path.join(self.tmp, "%s.mem" % name)
        self.args += ["-object", "memory-backend-file,id=m%d,share=on,"
                      "mem-path=%s,size=%d" % (i, path, DEV_SIZE),
                      "-device", "cxl-type3,bus=%s,volatile-memdev=m%d,id=%s"
                      % (port, i, name)]
        ep = EP(name, path)
        self.eps.append(ep)
        return ep

    def min_granule(self):
        return min(self.gw, self.ghb, self.gsw, self.gep)

    def route(self, base, off):
        """(endpoint, DPA) of window offset @off: the decode as the CXL
        spec and QEMU's emulation define it, computed independently of
        QEMU.  Window and port decoders index with the host physical
        address (modulo arithmetic for 3/6/12 ways), endpoints with the
        offset in their decoder."""
        hpa = base + off
        _, ports = self.hbs[(hpa // self.gw) % len(self.hbs)]
        node = ports[(hpa // self.ghb) % len(ports)]
        if isinstance(node, Switch):
            node = node.dsps[(hpa // self.gsw) % len(node.dsps)]
        g, n = self.gep, self.ways
        return node, (off // (g * n)) * g + off % g


def pattern(off, size, tag):
    """Every 8-byte word holds its own window offset and a tag."""
    return array.array("Q", (tag << 48 | o
                             for o in range(off, off + size, 8))).tobytes()


class Rig:
    """A running QEMU with a topology, enumerated and ready to program."""

    def __init__(self, qemu_dir, machine, topo):
        m = MACHINES[machine]
        self.m, self.topo = m, topo
        self.q = cq.QEMU(os.path.join(qemu_dir, m["binary"]),
                         m["args"] + topo.args, m["firmware"])
        self.q.ecam = m["ecam"]
        (self.base, size, self.fmw), = cq.fixed_windows(self.q)
        check(size == topo.size, "window size 0x%x, expected 0x%x"
              % (size, topo.size))
        self.enumerate()

    def enumerate(self):
        mem = [self.m["mem_base"]]
        for h in range(len(self.topo.hbs)):
            cq.enumerate_bus(self.q, 16 + 32 * h, 16 + 32 * h + 1, mem)
        self.bar0 = cq.pci_bar0_by_id(self.q)
        self.hbregs = cq.host_bridge_regs(self.q)

    def close(self):
        self.q.close()

    def commit(self, comp, n, base, size, ways, gran, targets=None,
               expect=True, what=""):
        ctrl = cq.program_decoder(self.q, comp, n, base, size, ways, gran,
                                  targets)
        ok = bool(ctrl & cq.CTRL_COMMITTED)
        check(ok == expect and bool(ctrl & cq.CTRL_ERR) != expect,
              "%s decoder %d: ctrl 0x%x, expected %s" % (
                  what, n, ctrl, "committed" if expect
                  else "Error Not Committed"))
        return ctrl

    def uncommit(self, comp, n):
        reg = comp + cq.hdm_reg(n, "ctrl")
        self.q.writel(reg, self.q.readl(reg) & ~cq.CTRL_COMMIT)
        check(not self.q.readl(reg) & cq.CTRL_COMMITTED,
              "decoder did not uncommit")

    def program(self):
        """Commit every decoder of the topology bottom-up, as Linux does."""
        t, b, s = self.topo, self.base, self.topo.size
        for ep in t.eps:
            self.commit(self.bar0[ep.name], 0, b, s, t.ways, t.gep,
                        what=ep.name)
        for hb, ports in t.hbs:
            for p in ports:
                if isinstance(p, Switch):
                    self.commit(self.bar0[p.name], 0, b, s, len(p.dsps),
                                t.gsw, targets=list(range(len(p.dsps))),
                                what=p.name)
            if len(ports) > 1:
                self.commit(self.hbregs[hb], 0, b, s, len(ports), t.ghb,
                            targets=list(range(len(ports))), what=hb)

    def unprogram(self):
        """Uncommit top-down, as Linux tears a region down."""
        for hb, ports in self.topo.hbs:
            if len(ports) > 1:
                self.uncommit(self.hbregs[hb], 0)
            for p in ports:
                if isinstance(p, Switch):
                    self.uncommit(self.bar0[p.name], 0)
        for ep in self.topo.eps:
            self.uncommit(self.bar0[ep.name], 0)

    def served_as(self):
        """'ram' (all of the window through interleaves), 'mmio' (all of
        it through the decode) or 'mixed', from info mtree -f."""
        out = self.q.hmp("info mtree -f")
        view = [v for v in out.split("FlatView #") if 'AS "memory"' in v][0]
        kinds, covered = set(), 0
        for m in re.finditer(r"^\s*([0-9a-f]+)-([0-9a-f]+) \(prio [-0-9]+, "
                             r"(\w[\w/-]*)\): (cxl-fixed-memory-region\S*)"
                             r"(.*)$", view, re.M):
            lo, hi = int(m.group(1), 16), int(m.group(2), 16) + 1
            if hi <= self.base or lo >= self.base + self.topo.size:
                continue
            covered += hi - lo
            if m.group(3) == "ram" and "[interleave" in m.group(5):
                kinds.add("ram")
            elif m.group(3) == "i/o":
                kinds.add("mmio")
            else:
                kinds.add(m.group(3))
        check(covered == self.topo.size,
              "info mtree -f covers 0x%x of the 0x%x-byte window"
              % (covered, self.topo.size))
        return kinds.pop() if len(kinds) == 1 else "mixed"

    def expect_served(self, what):
        got = self.served_as()
        check(got == what, "window served as %s, expected %s" % (got, what))

    def set_ram(self, on):
        self.q.qmp("qom-set", path=self.fmw, property="x-ram", value=on)

    def write_pattern(self, tag, size=CHECK_BYTES):
        size = min(size, self.topo.size)
        step = 1 << 20
        for off in range(0, size, step):
            self.q.b64write(self.base + off, pattern(off, step, tag))

    def read_window(self, size=CHECK_BYTES):
        size = min(size, self.topo.size)
        step = min(size, 4 << 20)
        return b"".join(self.q.b64read(self.base + off, step)
                        for off in range(0, size, step))

    def verify_backends(self, tag, size=CHECK_BYTES):
        """Byte for byte: every granule of the first @size bytes of the
        window sits in the backend file the model routes it to."""
        size = min(size, self.topo.size)
        g = self.topo.min_granule()
        files = {ep.name: open(ep.path, "rb") for ep in self.topo.eps}
        try:
            bad = []
            for off in range(0, size, g):
                ep, dpa = self.topo.route(self.base, off)
                f = files[ep.name]
                f.seek(dpa)
                if f.read(g) != pattern(off, g, tag):
                    bad.append("window +0x%x -> %s DPA 0x%x" % (off, ep.name,
                                                                dpa))
            check(not bad, "%d of %d granules misplaced, first: %s"
                  % (len(bad), size // g, ", ".join(bad[:3])))
        finally:
            for f in files.values():
                f.close()

    def backend_digest(self):
        import hashlib
        h = hashlib.sha1()
        for ep in self.topo.eps:
            with open(ep.path, "rb") as f:
                h.update(f.read(CHECK_BYTES))
        return h.hexdigest()

    def differential(self, rng):
        """RAM route against MMIO decode: the same bytes everywhere in the
        first CHECK_BYTES (every chunk edge) and random writes anywhere in
        the window, made through one route, read through the other and
        found in the backend the model names."""
        ram_view = self.read_window()
        self.set_ram(False)
        self.expect_served("mmio")
        mmio_view = self.read_window()
        if ram_view != mmio_view:
            i = next(i for i in range(len(ram_view))
                     if ram_view[i] != mmio_view[i])
            raise Failure("RAM route and MMIO decode differ at window "
                          "+0x%x" % i)
        g = self.topo.min_granule()
        for writer_ram in (False, True):
            self.set_ram(writer_ram)
            samples = []
            for _ in range(RANDOM_SAMPLES):
                # straddle a chunk edge half the time
                c = rng.randrange(self.topo.size // g)
                off = c * g - 4 if c and rng.random() < 0.5 else \
                    c * g + rng.randrange(g - 8)
                data = rng.randbytes(8)
                self.q.write(self.base + off, data)
                samples.append((off, data))
            self.set_ram(not writer_ram)
            self.expect_served("ram" if not writer_ram else "mmio")
            for off, data in samples:
                got = self.q.read(self.base + off, 8)
                check(got == data, "+0x%x written through %s, read through "
                      "%s: %s != %s" % (off, "RAM" if writer_ram else "MMIO",
                                        "MMIO" if writer_ram else "RAM",
                                        got.hex(), data.hex()))
                for i in range(8):
                    ep, dpa = self.topo.route(self.base, off + i)
                    with open(ep.path, "rb") as f:
                        f.seek(dpa)
                        check(f.read(1)[0] == data[i],
                              "byte +0x%x not at %s DPA 0x%x"
                              % (off + i, ep.name, dpa))
        self.set_ram(True)


def expected_kind(t):
    """RAM unless some level that does interleave (more than one way)
    switches targets within a target page."""
    grans = [g for g, ways in ((t.gw, len(t.hbs)),
                               (t.ghb, max(len(p) for _, p in t.hbs)),
                               (t.gsw, max([len(n.dsps) for _, p in t.hbs
                                            for n in p
                                            if isinstance(n, Switch)] + [1])),
                               (t.gep, t.ways)) if ways > 1]
    return "ram" if min(grans + [TARGET_PAGE]) >= TARGET_PAGE else "mmio"


class Step:
    """Names the step a failure happened in."""

    def __init__(self, what):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, typ, e, tb):
        if isinstance(e, Failure):
            raise Failure("%s: %s" % (self.what, e)) from None


def place_and_check(rig, tag):
    t = rig.topo
    rig.program()
    rig.expect_served(expected_kind(t))
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
    if expected_kind(t) == "ram":
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
    """Misprogrammed decoders: Error Not Committed, no abort, no escape."""
    q, t, b = rig.q, rig.topo, rig.base
    ep0 = rig.bar0[t.eps[0].name]
    hb = rig.hbregs[t.hbs[0][0]]
    s = t.size
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
        # The window still decodes nothing through this decoder.
        before = rig.backend_digest()
        q.write(b + rng.randrange(s - 8), b"\xa5" * 8)
        # every target index a 3/6/12-way or 16-way decode could pick
        for k in range(16):
            q.read(b + k * t.gep, 8)
        check(rig.backend_digest() == before,
              "%s: a window write reached a backend" % name)
        check(rig.served_as() == "mmio", "%s: window not MMIO" % name)
        # Clear the commit request (and the error with it).
        w(comp + cq.hdm_reg(n, "ctrl"), ctrl & ~cq.CTRL_COMMIT)
        check(not q.readl(comp + cq.hdm_reg(n, "ctrl")) & cq.CTRL_ERR,
              "%s: uncommit did not clear the error" % name)
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
    t, b, s = rig.topo, rig.base, rig.topo.size
    for ep in t.eps:
        rig.commit(rig.bar0[ep.name], 0, b, s, t.ways, 4096, what=ep.name)
    hb, ports = t.hbs[0]
    rig.commit(rig.hbregs[hb], 0, b, s, len(ports), 8192,
               targets=list(range(len(ports))), what=hb)
    kind = rig.served_as()
    check(kind in ("ram", "mmio"), "window served as %s" % kind)
    ram_view = rig.read_window(1 << 20)
    rig.set_ram(False)
    check(rig.read_window(1 << 20) == ram_view,
          "RAM route and MMIO decode differ on inconsistent decoders")
    rig.set_ram(True)


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
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu-dir", required=True)
    ap.add_argument("--tier", choices=("ci", "full"), default="ci")
    ap.add_argument("-k", dest="match", default="")
    ap.add_argument("--seed", type=int, default=None)
    opt = ap.parse_args()
    seed = opt.seed if opt.seed is not None else random.randrange(1 << 32)
    print("routing-test: seed %d" % seed)
    passed = failed = 0

    def run(name, machine, hbs, fn, **gran):
        nonlocal passed, failed
        if opt.match not in name:
            return
        tmp = tempfile.mkdtemp(prefix="cxl-routing-")
        rig, err, t0 = None, None, time.time()
        try:
            topo = Topology(tmp, hbs, **gran)
            rig = Rig(opt.qemu_dir, machine, topo)
            check(consistent(topo, rig.base), "scenario is not a bijection")
            fn(rig, random.Random(seed ^ zlib.crc32(name.encode())))
        except (Failure, RuntimeError, OSError) as e:
            err = str(e)
            if not isinstance(e, Failure):
                err += "\n" + traceback.format_exc()
        finally:
            if rig:
                log = rig.q.stderr().strip()
                rig.close()
                rc = rig.q.proc.returncode
                if rc:
                    err = (err or "") + " QEMU exited %d" % rc
                if err and log:
                    err += "\n     QEMU stderr: " + log[-2000:]
            shutil.rmtree(tmp, ignore_errors=True)
        if err:
            failed += 1
            print("FAIL %-28s %s" % (name, err))
        else:
            passed += 1
            print("ok   %-28s %5.1fs" % (name, time.time() - t0))
        sys.stdout.flush()

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
    print("%d passed, %d failed" % (passed, failed))
    return 1 if failed or not passed else 0


if __name__ == "__main__":
    sys.exit(main())
