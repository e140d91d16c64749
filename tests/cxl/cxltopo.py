"""CXL topologies for qtests: build one, enumerate it, program its HDM
decoders bottom-up as Linux does, and model where each window byte must
land (independently of QEMU).  Used by routing-test.py and guest-test.py.
"""

import array
import hashlib
import os
import re
import shutil
import sys
import tempfile
import time
import traceback

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


MAX_MAP_COUNT = "/proc/sys/vm/max_map_count"


class MapCountAtLeast:
    """A context that raises vm.max_map_count to at least @n (as root)
    and restores it; .ok says whether the limit is now at least @n."""

    def __init__(self, n):
        self.n, self.saved, self.ok = n, None, False

    def __enter__(self):
        with open(MAX_MAP_COUNT) as f:
            self.saved = int(f.read())
        if self.saved < self.n:
            try:
                with open(MAX_MAP_COUNT, "w") as f:
                    f.write("%d\n" % self.n)
            except OSError:
                pass
        with open(MAX_MAP_COUNT) as f:
            self.ok = int(f.read()) >= self.n
        return self

    def __exit__(self, *exc):
        with open(MAX_MAP_COUNT) as f:
            now = int(f.read())
        if now != self.saved:
            try:
                with open(MAX_MAP_COUNT, "w") as f:
                    f.write("%d\n" % self.saved)
            except OSError:
                pass


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

    def __init__(self, tmp, hbs, gw, ghb=None, gsw=None, gep=None,
                 backend="file", dev_size=None, hb_props=""):
        self.tmp, self.hbs, self.gw = tmp, [], gw
        self.backend = backend
        self.dev_size = dev_size or DEV_SIZE
        self.ghb, self.gsw, self.gep = ghb or gw, gsw or gw, gep or gw
        self.args, self.eps = [], []
        for h, rps in enumerate(hbs):
            hb = "cxl.%d" % h
            self.args += ["-device", "pxb-cxl,bus_nr=%d,bus=pcie.0,id=%s%s"
                          % (16 + 32 * h, hb, hb_props)]
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
        self.size = self.ways * self.dev_size
        targets = ",".join("cxl-fmw.0.targets.%d=%s" % (i, hb)
                           for i, (hb, _) in enumerate(self.hbs))
        self.args += ["-M", "%s,cxl-fmw.0.size=%dM,"
                      "cxl-fmw.0.interleave-granularity=%d"
                      % (targets, self.size >> 20, gw)]

    def _ep(self, port):
        i = len(self.eps)
        name = "ep%d" % i
        path = os.path.join(self.tmp, "%s.mem" % name)
        if self.backend == "file":
            mem = ("memory-backend-file,id=m%d,share=on,mem-path=%s,size=%d"
                   % (i, path, self.dev_size))
        elif self.backend == "file-private":    # the file never sees writes
            mem = ("memory-backend-file,id=m%d,share=off,mem-path=%s,size=%d"
                   % (i, path, self.dev_size))
        elif self.backend == "file-readonly":   # a read-only image
            with open(path, "wb") as f:     # 4 MiB of data, then a hole
                f.write(pattern(0, 4 << 20, 0x100 + i))
                f.truncate(self.dev_size)
            mem = ("memory-backend-file,id=m%d,share=on,readonly=on,"
                   "mem-path=%s,size=%d" % (i, path, self.dev_size))
        elif self.backend == "memfd":
            mem = "memory-backend-memfd,id=m%d,size=%d" % (i, self.dev_size)
        elif self.backend == "memfd-huge":
            mem = ("memory-backend-memfd,id=m%d,size=%d,hugetlb=on,"
                   "hugetlbsize=2M" % (i, self.dev_size))
        else:           # anonymous RAM, for benchmarks (no file to check)
            mem = "memory-backend-ram,id=m%d,size=%d" % (i, self.dev_size)
        self.args += ["-object", mem,
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

    def __init__(self, qemu_dir, machine, topo, extra=(), accel="qtest",
                 enumerate=True):
        m = MACHINES[machine]
        self.m, self.topo = m, topo
        self.qemu_dir, self.machine, self.extra = qemu_dir, machine, list(extra)
        self.accel = accel
        self.q = cq.QEMU(os.path.join(qemu_dir, m["binary"]),
                         m["args"] + topo.args + list(extra), m["firmware"],
                         accel)
        self.q.ecam = m["ecam"]
        (self.base, size, self.fmw), = cq.fixed_windows(self.q)
        check(size == topo.size, "window size 0x%x, expected 0x%x"
              % (size, topo.size))
        if enumerate:
            self.enumerate()

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
        self.sync()
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
                        f.seek(dpa)
                        check(f.read(1)[0] == data[i],
                              "byte +0x%x not at %s DPA 0x%x"
                              % (off + i, ep.name, dpa))
        self.set_ram(True)


class Runner:
    """Runs named scenarios, each on a Rig of its own in a fresh
    directory, and prints "ok"/"FAIL" per scenario (with QEMU's stderr on
    a failure) and the counts at the end."""

    def __init__(self, match=""):
        self.match, self.passed, self.failed = match, 0, 0

    def run(self, name, make_rig, fn, after=None):
        """make_rig(tmp) -> Rig; fn(rig) runs the scenario; after() runs
        once the rig is closed, whatever happened."""
        if self.match not in name:
            return
        tmp = tempfile.mkdtemp(prefix="cxl-test-")
        rig, err, t0 = None, None, time.time()
        try:
            rig = make_rig(tmp)
            fn(rig)
        except (Failure, RuntimeError, OSError) as e:
            err = str(e)
            if not isinstance(e, Failure):
                err += "\n" + traceback.format_exc()
        finally:
            if rig:
                rig.close()
                rc = rig.q.proc.returncode
                if rc:
                    err = (err or "") + " QEMU exited %d" % rc
                log = rig.q.stderr().strip()
                if err and log:
                    err += "\n     QEMU stderr: " + log[-2000:]
            if after:
                after()
            shutil.rmtree(tmp, ignore_errors=True)
        if err:
            self.failed += 1
            print("FAIL %-28s %s" % (name, err))
        else:
            self.passed += 1
            print("ok   %-28s %5.1fs" % (name, time.time() - t0))
        sys.stdout.flush()

    def summary(self):
        """Prints the counts; the exit status (1 if anything failed or
        nothing ran)."""
        print("%d passed, %d failed" % (self.passed, self.failed))
        return 1 if self.failed or not self.passed else 0


class Step:
    """Names the step a failure happened in."""

    def __init__(self, what):
        self.what = what

    def __enter__(self):
        return self

    def __exit__(self, typ, e, tb):
        if isinstance(e, Failure):
            raise Failure("%s: %s" % (self.what, e)) from None


def pcie_cap(q, bus, dev):
    """Offset of the PCI Express capability of bus:dev.0."""
    ptr = q.cfg_read32(bus, dev, 0, 0x34) & 0xff
    while ptr:
        hdr = q.cfg_read32(bus, dev, 0, ptr)
        if hdr & 0xff == 0x10:
            return ptr
        ptr = (hdr >> 8) & 0xff
    raise Failure("no PCIe capability at %02x:%02x.0" % (bus, dev))
