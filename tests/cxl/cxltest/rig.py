"""A running QEMU with a CXL topology: enumerate it, program its HDM
decoders bottom-up as Linux does, and check where the window's bytes
land against the topology's model.
"""

import hashlib
import os
import re
import shutil
import time

from . import qtest as cq
from .runner import Failure, check
from .topology import Switch, pattern

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


class Rig:
    """A running QEMU with a topology, enumerated and ready to program.

    As a context manager the rig owns its topology's directory (the
    backend files; Topology(None, ...) makes a fresh one): leaving the
    with-block closes QEMU and removes the directory.  close() only
    stops QEMU, so that a scenario can start another on the same files.
    If QEMU starts but the rig cannot be set up, QEMU is closed before
    the error propagates."""

    def __init__(self, qemu_dir, machine, topo, extra=(), accel="qtest",
                 enumerate=True):
        m = MACHINES[machine]
        self.m, self.topo = m, topo
        self.qemu_dir, self.machine, self.extra = qemu_dir, machine, list(extra)
        self.accel = accel
        self.q = cq.QEMU(os.path.join(qemu_dir, m["binary"]),
                         m["args"] + topo.args + list(extra), m["firmware"],
                         accel)
        try:
            self.q.ecam = m["ecam"]
            (self.base, size, self.fmw), = cq.fixed_windows(self.q)
            check(size == topo.size, "window size 0x%x, expected 0x%x"
                  % (size, topo.size))
            if enumerate:
                self.enumerate()
        except BaseException:
            self.q.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        shutil.rmtree(self.topo.tmp, ignore_errors=True)

    def enumerate(self):
        mem = [self.m["mem_base"]]
        for h in range(len(self.topo.hbs)):
            cq.enumerate_bus(self.q, 16 + 32 * h, 16 + 32 * h + 1, mem)
        self.discover()

    def discover(self):
        """Where the BARs and host bridge registers are, as configured."""
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
        check(not cq.uncommit_decoder(self.q, comp, n) & cq.CTRL_COMMITTED,
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
        """'ram' (all of the window through interleave sections or a
        stitched mapping), 'shadow' (all of it through write-back shadows),
        'mmio' (all of it through the decode) or 'mixed', from info mtree
        -f."""
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
            if m.group(3) == "ram" and ".shadow" in m.group(4):
                kinds.add("shadow")
            elif m.group(3) == "ram" and "[interleave" in m.group(5):
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

    def sync(self):
        """A sync point: write-back shadows hold guest writes until one.
        Stop and continue a running VM; give a stopped one's background
        write-back time."""
        if "shadow" not in self.q.hmp("info mtree -f"):
            return
        if self.q.qmp("query-status")["running"]:
            self.q.qmp("stop")
            self.q.qmp("cont")
        else:
            time.sleep(0.2)

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
        self.sync()
        files = {ep.name: open(ep.path, "rb") for ep in self.topo.eps}
        try:
            bad = []
            for off in range(0, size, g):
                ep, dpa = self.topo.route(self.base, off)
                f = files[ep.name]
                f.seek(ep.file_offset + dpa)
                if f.read(g) != pattern(off, g, tag):
                    bad.append("window +0x%x -> %s DPA 0x%x" % (off, ep.name,
                                                                dpa))
            check(not bad, "%d of %d granules misplaced, first: %s"
                  % (len(bad), size // g, ", ".join(bad[:3])))
        finally:
            for f in files.values():
                f.close()

    def backend_digest(self):
        self.sync()
        h = hashlib.sha1()
        for ep in self.topo.eps:
            with open(ep.path, "rb") as f:
                f.seek(ep.file_offset)
                h.update(f.read(CHECK_BYTES))
        return h.hexdigest()

    def differential(self, rng):
        """RAM route against MMIO decode: the same bytes everywhere in the
        first CHECK_BYTES (every chunk edge) and random writes anywhere in
        the window, made through one route, read through the other and
        found in the backend the model names."""
        ram_kind = self.served_as()
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
            while len(samples) < RANDOM_SAMPLES:
                # straddle a chunk edge half the time
                c = rng.randrange(self.topo.size // g)
                off = c * g - 4 if c and rng.random() < 0.5 else \
                    c * g + rng.randrange(g - 8)
                data = rng.randbytes(8)
                if any(abs(off - o) < 8 for o, _ in samples):
                    continue        # a later write would hide this one
                self.q.write(self.base + off, data)
                samples.append((off, data))
            self.set_ram(not writer_ram)
            self.expect_served(ram_kind if not writer_ram else "mmio")
            self.sync()
            for off, data in samples:
                got = self.q.read(self.base + off, 8)
                check(got == data, "+0x%x written through %s, read through "
                      "%s: %s != %s" % (off, "RAM" if writer_ram else "MMIO",
                                        "MMIO" if writer_ram else "RAM",
                                        got.hex(), data.hex()))
                for i in range(8):
                    ep, dpa = self.topo.route(self.base, off + i)
                    with open(ep.path, "rb") as f:
                        f.seek(ep.file_offset + dpa)
                        check(f.read(1)[0] == data[i],
                              "byte +0x%x not at %s DPA 0x%x"
                              % (off + i, ep.name, dpa))
        self.set_ram(True)


def pcie_cap(q, bus, dev):
    """Offset of the PCI Express capability of bus:dev.0."""
    ptr = q.cfg_read32(bus, dev, 0, 0x34) & 0xff
    while ptr:
        hdr = q.cfg_read32(bus, dev, 0, ptr)
        if hdr & 0xff == 0x10:
            return ptr
        ptr = (hdr >> 8) & 0xff
    raise Failure("no PCIe capability at %02x:%02x.0" % (bus, dev))
