#!/usr/bin/env python3
"""Seeded fuzzer for HDM decoder programming under a CXL window.

Four type-3 devices behind two host bridges (2 x 2 root ports) under one
4-way window.  The fuzzer issues random-but-plausible writes to every
decoder register of every component (bases and sizes near the window,
granularity and ways encodings valid and reserved, commit and uncommit,
target lists, DPA skips, the global enable), correct programming now and
then so that RAM routes come and go, window accesses in between, and an
occasional system_reset.  After every batch it checks that:

  * QEMU is alive (an abort is a finding);
  * info mtree -f covers the window exactly, as RAM, a write-back
    shadow, MMIO or a mix;
  * at chunk edges and random offsets the RAM route and the MMIO decode
    (x-ram off) read the same bytes, and bytes written through the RAM
    route are read back through the MMIO decode: no misroute.

With --xor the window picks its host bridge with XOR arithmetic (QEMU's
default maps): it must stay on the MMIO decode through every batch, and
the decode must neither abort nor misroute.

Usage: fuzz-decoders.py --qemu-dir BUILD [--ops N] [--seed S] [--machine M]
       [--xor]
A finding prints the seed and the op count to replay it.
"""

import argparse
import os
import random
import shutil
import sys
import tempfile
import time

from cxltest import qtest as cq
from cxltest import Failure, Rig, Topology, check, report

REGS = ("base_lo", "base_hi", "size_lo", "size_hi", "ctrl", "tl_lo",
        "tl_hi")
MB256 = 256 << 20


class Fuzzer:
    def __init__(self, rig, rng):
        self.rig, self.rng, self.q = rig, rng, rig.q
        t = rig.topo
        self.comps = [rig.bar0[ep.name] for ep in t.eps] + \
            [rig.hbregs[hb] for hb, _ in t.hbs]
        self.stats = dict(writes=0, commits=0, errors=0, accesses=0,
                          resets=0, ram_batches=0)

    def value(self, reg):
        r, b, s = self.rng, self.rig.base, self.rig.topo.size
        if reg in ("base_lo", "base_hi"):
            base = r.choice([b, b, b + s // 2, b - MB256, b + s, 0,
                             r.randrange(1 << 52) & ~(MB256 - 1),
                             r.getrandbits(64)])
            return base & 0xffffffff if reg == "base_lo" else \
                (base >> 32) & 0xffffffff
        if reg in ("size_lo", "size_hi"):
            size = r.choice([s, s, s // 2, s // 4, MB256, 3 * MB256, 0,
                             2 * s, r.getrandbits(40) & ~(MB256 - 1),
                             r.getrandbits(64)])
            return size & 0xffffffff if reg == "size_lo" else \
                (size >> 32) & 0xffffffff
        if reg == "ctrl":
            ig = r.choice([0, 1, 2, 3, 4, 5, 6, 7, r.randrange(16)])
            iw = r.choice([0, 1, 2, 3, 4, 8, 9, 10, r.randrange(16)])
            commit = r.random() < 0.6
            v = ig | iw << 4 | cq.CTRL_HOSTONLY | (cq.CTRL_COMMIT if commit
                                                   else 0)
            if r.random() < 0.05:
                v = r.getrandbits(32)
            return v
        # target list or DPA skip
        return r.choice([0x00000100, 0x01000100, 0x03020100, 0,
                         r.getrandbits(32)])

    def op(self):
        r, q = self.rng, self.q
        x = r.random()
        if x < 0.70:
            comp = r.choice(self.comps)
            n = r.choice([0, 0, 0, 1, 2, 3])
            reg = r.choice(REGS)
            v = self.value(reg)
            q.writel(comp + cq.hdm_reg(n, reg), v)
            self.stats["writes"] += 1
            if reg == "ctrl" and v & cq.CTRL_COMMIT:
                got = q.readl(comp + cq.hdm_reg(n, "ctrl"))
                self.stats["commits" if got & cq.CTRL_COMMITTED
                           else "errors"] += 1
        elif x < 0.75:
            comp = r.choice(self.comps)
            q.writel(comp + cq.HDM_GLOBAL_CTRL, r.choice([0, cq.HDM_ENABLE,
                                                          cq.HDM_ENABLE]))
            self.stats["writes"] += 1
        elif x < 0.80:
            # correct programming, so that RAM routes come and go
            try:
                self.rig.unprogram_quiet()
                self.rig.program()
            except Failure:
                pass
        else:
            off = r.randrange(self.rig.topo.size - 8)
            if r.random() < 0.5:
                q.write(self.rig.base + off, r.randbytes(8))
            else:
                q.read(self.rig.base + off, 8)
            self.stats["accesses"] += 1

    def check_batch(self):
        rig, r, q = self.rig, self.rng, self.q
        if r.random() < 0.5:
            # a correct programming on top of whatever the batch left, so
            # that half the checks compare a RAM route with the decode
            try:
                self.rig.unprogram_quiet()
                self.rig.program()
            except Failure:
                pass
        kind = rig.served_as()          # checks coverage of the window
        self.stats["ram_batches"] += kind != "mmio"
        check(not rig.topo.xor_maps or kind == "mmio", "an XOR window is "
              "served as %s" % kind)
        g = 4096
        offs = []
        for _ in range(24):
            c = r.randrange(1, rig.topo.size // g)
            offs.append(c * g - 4)                      # a chunk edge
            offs.append(r.randrange(rig.topo.size - 8))
        ram = [q.read(rig.base + o, 8) for o in offs]
        rig.set_ram(False)
        mmio = [q.read(rig.base + o, 8) for o in offs]
        for o, a, b in zip(offs, ram, mmio):
            check(a == b, "window +0x%x: RAM route %s, MMIO decode %s"
                  % (o, a.hex(), b.hex()))
        rig.set_ram(True)
        # writes through the route in place, read back through the decode
        for o in offs[:8]:
            data = r.randbytes(8)
            q.write(rig.base + o, data)
            rig.set_ram(False)
            got = q.read(rig.base + o, 8)
            rig.set_ram(True)
            back = q.read(rig.base + o, 8)
            check(got == back, "window +0x%x: written through the route, "
                  "the decode reads %s, the route %s" % (o, got.hex(),
                                                          back.hex()))


def unprogram_quiet(rig):
    for comp in ([rig.hbregs[hb] for hb, _ in rig.topo.hbs] +
                 [rig.bar0[ep.name] for ep in rig.topo.eps]):
        for n in (3, 2, 1, 0):
            cq.uncommit_decoder(rig.q, comp, n)


Rig.unprogram_quiet = unprogram_quiet


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--qemu-dir", required=True)
    ap.add_argument("--machine", default="q35", choices=("q35", "virt"))
    ap.add_argument("--ops", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=2000)
    ap.add_argument("--reset-every", type=int, default=50000)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--xor", action="store_true",
                    help="XOR interleave arithmetic at the window")
    ap.add_argument("--granule", type=int, default=0,
                    help="the topology's granule (default: from the seed)")
    opt = ap.parse_args()
    seed = opt.seed if opt.seed is not None else random.randrange(1 << 32)
    rng = random.Random(seed)
    tmp = tempfile.mkdtemp(prefix="cxl-fuzz-")
    # the granule of the correct programming: sub-page ones are served
    # through write-back shadows, which must agree with the decode too
    gran = opt.granule or rng.choice([256, 1024, 4096])
    topo = Topology(tmp, [[None] * 2] * 2, gran, 2 * gran, None, gran,
                    xor=True if opt.xor else None)
    rig = Rig(opt.qemu_dir, opt.machine, topo)
    fz = Fuzzer(rig, rng)
    t0, done, err = time.time(), 0, None
    print("fuzz-decoders: %s%s, seed %d, %d ops, granule %d"
          % (opt.machine, ", XOR window" if opt.xor else "", seed, opt.ops,
             gran), flush=True)
    try:
        rig.program()
        while done < opt.ops:
            for _ in range(min(opt.batch, opt.ops - done)):
                fz.op()
                done += 1
                if done % opt.reset_every == 0:
                    rig.q.qmp("system_reset")
                    rig.enumerate()
                    fz.comps = [rig.bar0[ep.name] for ep in topo.eps] + \
                        [rig.hbregs[hb] for hb, _ in topo.hbs]
                    fz.stats["resets"] += 1
            fz.check_batch()
            if done % (opt.batch * 25) == 0 or done == opt.ops:
                print("  %8d ops  %6.1fs  %s" % (done, time.time() - t0,
                                                 fz.stats), flush=True)
    except (Failure, RuntimeError, OSError) as e:
        err = "after %d ops (seed %d): %s" % (done, seed, e)
    finally:
        rig.close()
        rc = rig.q.proc.returncode
        # what QEMU printed, to its exit (sanitizer reports come last)
        log = rig.q.stderr()
        shutil.rmtree(tmp, ignore_errors=True)
    if rc or err:
        path = os.path.join(tempfile.gettempdir(),
                            "fuzz-decoders-%d.stderr" % seed)
        with open(path, "w") as f:
            f.write(log)
        print("QEMU's stderr: " + path)
    if rc:
        err = (err or "after %d ops (seed %d)" % (done, seed)) + \
            "; QEMU exited %d: %s" % (rc, log.strip()[-4000:])
    if not err and not fz.stats["ram_batches"] and not opt.xor:
        err = "no batch ever checked a RAM route (seed %d)" % seed
    if err:
        print("FAIL " + err)
        report(0, 1)
        return 1
    print("ok   %d ops, %d batches checked, %.1fs: %s"
          % (done, (done + opt.batch - 1) // opt.batch, time.time() - t0,
             fz.stats))
    report(1, 0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
