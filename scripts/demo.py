#!/usr/bin/env python3
"""Demo: a q35 machine with a 4-way interleaved CXL fixed memory window.

One pxb-cxl host bridge, four CXL root ports, four type-3 devices with
volatile memory in memory-backend-file,share=on.  The script commits the
HDM decoders itself over the qtest protocol (endpoints first, then the
host bridge, as Linux does), shows how the window is served before and
after the commit (info mtree -f: MMIO, then RAM routed into the
backends), writes a distinct pattern into chunks of the window and
reports where each landed in the devices' backend files.  Exits non-zero
if any byte is not where the CXL decode says it must be, or if a window
with a granule of at least a page is not RAM after the commit.
"""

import argparse
import os
import re
import shutil
import sys
import tempfile

from cxltest import qtest as cxlqtest

WAYS = 4
DEV_SIZE = 256 << 20
BAR_BASE = 0xd0000000


def topology(tmp, gran):
    args = ["-machine", "q35,cxl=on", "-m", "512M",
            "-device", "pxb-cxl,bus_nr=12,bus=pcie.0,id=cxl.1",
            "-M", "cxl-fmw.0.targets.0=cxl.1,cxl-fmw.0.size=%dG"
            ",cxl-fmw.0.interleave-granularity=%d" % (WAYS * DEV_SIZE >> 30, gran)]
    for i in range(WAYS):
        args += ["-object", "memory-backend-file,id=cxl-mem%d,share=on,"
                 "mem-path=%s/dev%d.mem,size=%d" % (i, tmp, i, DEV_SIZE),
                 "-device", "cxl-rp,port=%d,bus=cxl.1,id=rp%d,chassis=0,slot=%d"
                 % (i, i, i),
                 "-device", "cxl-type3,bus=rp%d,volatile-memdev=cxl-mem%d,"
                 "id=cxl-vmem%d" % (i, i, i)]
    return args


def served_as(lines):
    """What the flat view says serves the window."""
    kinds = sorted({l.split(",")[1].split(")")[0].strip() for l in lines})
    if kinds == ["i/o"]:
        return ("MMIO: every access is decoded by cxl_read_cfmws()/"
                "cxl_write_cfmws() (no RAM fast path, no DMA map)")
    if kinds == ["ram"] and all("[interleave" in l for l in lines):
        return ("RAM: one interleave over the devices' own backends "
                "(TCG fast path, atomics, DMA map)")
    return "/".join(kinds)


def window_lines(mtree):
    """The lines of the system memory FlatView that describe the window."""
    view = [v for v in mtree.split("FlatView #") if 'AS "memory"' in v][0]
    return [l for l in view.splitlines() if "cxl-fixed-memory" in l]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu", required=True)
    ap.add_argument("--granule", type=int, default=4096)
    ap.add_argument("--chunks", type=int, default=64,
                    help="chunks of the window to write and check")
    ap.add_argument("-q", "--quiet", action="store_true")
    opt = ap.parse_args()
    say = (lambda *a: None) if opt.quiet else print

    tmp = tempfile.mkdtemp(prefix="cxl-demo-")
    fw = ["/usr/share/seabios", "/usr/lib/ipxe/qemu"]
    qemu = cxlqtest.QEMU(opt.qemu, topology(tmp, opt.granule), fw)
    try:
        win_base, win_size = qemu.mtree_find("cxl-fixed-memory-region")
        hb_base, _ = qemu.mtree_find("cxl_host_reg")
        say("CXL fixed window: 0x%x, %d MiB, %d-way over %d type-3 devices, "
            "granule %d" % (win_base, win_size >> 20, WAYS, WAYS, opt.granule))
        say("\nBefore commit, info mtree -f:")
        lines = window_lines(qemu.hmp("info mtree -f"))
        for l in lines:
            say(l)
        say("  -> served as " + served_as(lines))

        # Root ports live on the pxb-cxl bus 12, device = slot.
        for i in range(WAYS):
            cxlqtest.setup_root_port_and_bar(qemu, 12, i, 13 + i,
                                             BAR_BASE + (i << 20))
        # Endpoints first, as Linux commits: position is implied by the HPA.
        for i in range(WAYS):
            ctrl = cxlqtest.program_decoder(qemu, BAR_BASE + (i << 20), 0,
                                            win_base, WAYS * DEV_SIZE, WAYS,
                                            opt.granule)
            if not ctrl & cxlqtest.CTRL_COMMITTED:
                raise RuntimeError("endpoint %d decoder did not commit" % i)
        # Host bridge: 4 ways over root ports 0..3.
        ctrl = cxlqtest.program_decoder(qemu, hb_base, 0, win_base,
                                        WAYS * DEV_SIZE, WAYS, opt.granule,
                                        targets=list(range(WAYS)))
        if not ctrl & cxlqtest.CTRL_COMMITTED:
            raise RuntimeError("host bridge decoder did not commit")

        say("\nAfter commit, info mtree -f:")
        lines = window_lines(qemu.hmp("info mtree -f"))
        for l in lines:
            say(l)
        after = served_as(lines)
        say("  -> served as " + after)
        if opt.granule >= 4096 and not after.startswith("RAM"):
            raise RuntimeError("committed window is not RAM: " + after)

        # One pattern per chunk: 'chunk number' repeated, so a misplaced
        # chunk is identifiable.
        g = opt.granule
        for c in range(opt.chunks):
            qemu.write(win_base + c * g, (b"%08x" % c) * (g // 8))
        for c in range(opt.chunks):
            if qemu.read(win_base + c * g + g - 8, 8) != b"%08x" % c:
                raise RuntimeError("chunk %d does not read back" % c)
    finally:
        qemu.close()

    say("\nWhere the bytes landed (window offset -> device backend file):")
    bad = 0
    files = [open(os.path.join(tmp, "dev%d.mem" % i), "rb") for i in range(WAYS)]
    for c in range(opt.chunks):
        dev, dpa = cxlqtest.cxl_route(c * g, WAYS, g)
        files[dev].seek(dpa)
        got = files[dev].read(g)
        ok = got == (b"%08x" % c) * (g // 8)
        bad += not ok
        if c < 8 or not ok:
            say("  0x%07x -> dev%d.mem @ 0x%07x  %s" % (c * g, dev, dpa,
                "ok" if ok else "WRONG: %r" % got[:16]))
    for f in files:
        f.close()
    shutil.rmtree(tmp)
    say("  ... %d chunks checked, %d misplaced" % (opt.chunks, bad))
    print("demo: %d chunks of %d bytes through a %d-way CXL window: %s"
          % (opt.chunks, g, WAYS, "all in the right backend" if not bad
             else "%d MISPLACED" % bad))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
