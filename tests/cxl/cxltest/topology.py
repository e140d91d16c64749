"""CXL topologies for qtests: the QEMU arguments of one, and where each
window byte must land (the CXL decode, modelled independently of QEMU).
"""

import array
import os
import tempfile

DEV_SIZE = 256 << 20

# Target page of both machines here; a granule below it stays MMIO.
TARGET_PAGE = 4096


# Where the device's bytes start in its file, for backend "file-offset"
FILE_OFFSET = 16 << 20


class EP:
    def __init__(self, name, path, file_offset=0):
        """@file_offset: where DPA 0 is in the file at @path.  The Rig's
        checks and routing-test's window_from_backends() and
        backends_write() count it; scenarios that read the files
        themselves assume 0."""
        self.name, self.path, self.file_offset = name, path, file_offset


class Switch:
    def __init__(self, name, dsps):
        self.name, self.dsps = name, dsps      # dsps: list of EP


class Topology:
    """hbs: one list per host bridge, one entry per root port: None for a
    type-3 device, an int k for a switch with k downstream ports each
    holding a type-3 device.  Window granule gw over all host bridges;
    host bridge decoders granule ghb, switch decoders gsw, endpoints gep.
    xor: the window picks host bridges with XOR arithmetic, with maps
    @xor (a list of ints), or QEMU's default maps (True)."""

    def __init__(self, tmp, hbs, gw, ghb=None, gsw=None, gep=None,
                 backend="file", dev_size=None, hb_props="", xor=None):
        """@tmp: the directory for the backend files (None: a new one;
        a Rig used as a context manager removes it)."""
        if tmp is None:
            tmp = tempfile.mkdtemp(prefix="cxl-test-")
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
        self.xor_maps = None
        if xor is not None:
            self.args[-1] += ",cxl-fmw.0.interleave-arithmetic=xor"
            if xor is True:
                self.xor_maps = xor_default_maps(len(self.hbs), gw)
            else:
                self.xor_maps = list(xor)
                self.args[-1] += "".join(",cxl-fmw.0.xor-maps.%d=0x%x" % m
                                         for m in enumerate(xor))

    def _ep(self, port):
        i = len(self.eps)
        name = "ep%d" % i
        path = os.path.join(self.tmp, "%s.mem" % name)
        kind = "volatile"
        if self.backend in ("file", "file-pmem"):
            mem = ("memory-backend-file,id=m%d,share=on,mem-path=%s,size=%d"
                   % (i, path, self.dev_size))
            if self.backend == "file-pmem":     # persistent-memdev
                kind = "persistent"
        elif self.backend == "file-offset":     # sparse, DPA 0 further in
            with open(path, "wb") as f:
                f.truncate(FILE_OFFSET + self.dev_size)
            mem = ("memory-backend-file,id=m%d,share=on,mem-path=%s,size=%d,"
                   "offset=%d" % (i, path, self.dev_size, FILE_OFFSET))
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
        dev = "cxl-type3,bus=%s,%s-memdev=m%d,id=%s" % (port, kind, i, name)
        if kind == "persistent":        # which needs a label storage area
            self.args += ["-object", "memory-backend-ram,id=lsa%d,size=1M" % i]
            dev += ",lsa=lsa%d" % i
        self.args += ["-object", mem, "-device", dev]
        ep = EP(name, path,
                FILE_OFFSET if self.backend == "file-offset" else 0)
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
        if self.xor_maps is not None:
            # XOR arithmetic: bit i of the position is the parity of the
            # address under map i (CXL 3.0, CXIMS)
            h = sum((bin(hpa & m).count("1") & 1) << i
                    for i, m in enumerate(self.xor_maps))
        else:
            h = (hpa // self.gw) % len(self.hbs)
        _, ports = self.hbs[h]
        node = ports[(hpa // self.ghb) % len(ports)]
        if isinstance(node, Switch):
            node = node.dsps[(hpa // self.gsw) % len(node.dsps)]
        g, n = self.gep, self.ways
        return node, (off // (g * n)) * g + off % g


def xor_default_maps(ways, gw):
    """The XOR maps QEMU gives a window of @ways host bridges at granule
    @gw without xor-maps, as its user guide states them: map i holds
    address bits g + i, g + i + 4, g + i + 8... up to bit 51, g the
    granule's bit, one map per power of two of @ways."""
    n, g = ways.bit_length() - 1, gw.bit_length() - 1
    return [sum(1 << b for b in range(g + i, 52, 4)) for i in range(n)]


def pattern(off, size, tag):
    """Every 8-byte word holds its own window offset and a tag."""
    return array.array("Q", (tag << 48 | o
                             for o in range(off, off + size, 8))).tobytes()
