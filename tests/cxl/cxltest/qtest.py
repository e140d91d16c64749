"""Drive a QEMU CXL topology over the qtest protocol, as a guest would.

Speaks QEMU's qtest text protocol (accel qtest: no CPU runs) and QMP,
enumerates the PCI buses a pxb-cxl host bridge exposes, maps each type-3
device's component-register BAR and programs HDM decoders the way Linux
does (endpoints first, then the host bridge).  Standard library only.

Why not QEMU's python/qemu (qemu.machine.QEMUQtestMachine, qemu.qmp):
it is only in the unpacked QEMU source (build/src, made by make apply),
which the runners must not need; QEMUQtestMachine always passes -accel
qtest (the KVM slot and TCG guest runs need -accel kvm/tcg with the qtest
socket), and QEMUMachine adds arguments of its own (-chardev/-mon for
QMP, -vga none, a console socket) and hands QEMU's output over only at
shutdown.  These tests start QEMU with exactly the arguments below, read
its stderr while it runs (KVM slot traces, warnings), fail fast with
QEMU's message when it exits before connecting, and set glibc's malloc
checking in its environment; swapping QEMUMachine in would change how
they start and stop QEMU, so this module keeps its own protocol code
(about 100 lines).
"""

import base64
import json
import os
import re
import shutil
import socket
import subprocess
import tempfile
import time

# Component register block layout (include/hw/cxl/cxl_component.h):
# cache/mem registers at 0x1000; RAS 0x80+0x58, link 0x50: HDM at 0x128.
CM_OFFSET = 0x1000
HDM_OFFSET = CM_OFFSET + 0x128
HDM_GLOBAL_CTRL = HDM_OFFSET + 0x4
HDM_ENABLE = 1 << 1


def hdm_reg(n, reg):
    """Offset of decoder n's register in the component block."""
    regs = {"base_lo": 0x10, "base_hi": 0x14, "size_lo": 0x18,
            "size_hi": 0x1c, "ctrl": 0x20, "tl_lo": 0x24, "tl_hi": 0x28,
            "skip_lo": 0x24, "skip_hi": 0x28}
    return HDM_OFFSET + 0x20 * n + regs[reg]


CTRL_COMMIT = 1 << 9
CTRL_COMMITTED = 1 << 10
CTRL_ERR = 1 << 11
CTRL_HOSTONLY = 1 << 12


def ways_enc(ways):
    enc = {1: 0, 2: 1, 4: 2, 8: 3, 16: 4, 3: 8, 6: 9, 12: 10}
    return enc[ways]


def gran_enc(gran):
    enc = (gran // 256).bit_length() - 1
    assert 256 << enc == gran, "granule must be a power of two >= 256"
    return enc


class QEMU:
    """One QEMU process with a qtest and a QMP connection.  @defaults:
    keep QEMU's default devices (NIC, VGA, CD-ROM...), as a user's command
    line does; without, -nodefaults."""

    def __init__(self, binary, args, firmware_dirs=(), accel="qtest",
                 defaults=False):
        self.dir = tempfile.mkdtemp(prefix="cxlqtest-")
        qsock, msock = (os.path.join(self.dir, n) for n in ("qtest", "qmp"))
        ls_q, ls_m = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
        ls_q.bind(qsock)
        ls_m.bind(msock)
        ls_q.listen(1)
        ls_m.listen(1)
        cmd = [binary, "-qtest", "unix:" + qsock, "-qtest-log",
               os.environ.get("CXLQTEST_LOG", "none"),
               "-qmp", "unix:" + msock,
               "-accel", accel, "-display", "none"]
        if not defaults:
            cmd.append("-nodefaults")
        for d in firmware_dirs:
            cmd += ["-L", d]
        self.log = open(os.path.join(self.dir, "stderr"), "w+")
        # glibc fills freed memory (tcache off, or it would not): a use
        # after free shows as a crash
        env = dict(os.environ)
        env.setdefault("MALLOC_PERTURB_", "165")
        env.setdefault("GLIBC_TUNABLES", "glibc.malloc.tcache_count=0")
        self.proc = subprocess.Popen(cmd + list(args), stdin=subprocess.DEVNULL,
                                     stdout=self.log, stderr=self.log,
                                     env=env)
        try:
            self.q = self._accept(ls_q).makefile("rw")
            self.m = self._accept(ls_m).makefile("rw")
        except RuntimeError:
            self.proc.kill()
            self._release()
            raise
        finally:
            ls_q.close()
            ls_m.close()
        try:
            json.loads(self.m.readline())        # greeting
            self.qmp("qmp_capabilities")
        except (OSError, ValueError):
            self.proc.kill()
            self._release()
            raise RuntimeError("no QMP greeting from QEMU (status %s): %s"
                               % (self.proc.returncode, self.stderr()))

    def _accept(self, ls, secs=30):
        """QEMU's connection on @ls; a RuntimeError naming what QEMU
        said if it exits or does not connect within @secs."""
        ls.settimeout(0.1)
        deadline = time.time() + secs
        while True:
            try:
                return ls.accept()[0]
            except socket.timeout:
                pass
            rc = self.proc.poll()
            if rc is not None:
                raise RuntimeError("QEMU exited (%s) before connecting: %s"
                                   % (rc, self.stderr().strip() or
                                      "no message"))
            if time.time() > deadline:
                raise RuntimeError("QEMU did not connect in %d s: %s"
                                   % (secs, self.stderr()))

    def stderr(self):
        """Everything QEMU printed so far (to its exit, once closed)."""
        if self.log.closed:
            return self.final_log
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def qmp(self, cmd, **args):
        self.m.write(json.dumps({"execute": cmd, "arguments": args}) + "\n")
        self.m.flush()
        while True:
            r = json.loads(self.m.readline())
            if "return" in r:
                return r["return"]
            if "error" in r:
                raise RuntimeError("QMP %s: %s" % (cmd, r["error"]["desc"]))

    def hmp(self, line):
        return self.qmp("human-monitor-command", **{"command-line": line})

    def cmd(self, line):
        self.q.write(line + "\n")
        self.q.flush()
        while True:
            r = self.q.readline()
            if not r:
                raise RuntimeError("qtest: QEMU went away: " + self.stderr())
            if not r.startswith("IRQ"):
                break
        if not r.startswith("OK"):
            raise RuntimeError("qtest %r: %s" % (line, r.strip()))
        return r[2:].strip()

    def readl(self, addr):
        return int(self.cmd("readl 0x%x" % addr), 16)

    def writel(self, addr, val):
        self.cmd("writel 0x%x 0x%x" % (addr, val))

    def write(self, addr, data):
        self.cmd("write 0x%x 0x%x 0x%s" % (addr, len(data), data.hex()))

    def read(self, addr, size):
        return bytes.fromhex(self.cmd("read 0x%x 0x%x" % (addr, size))[2:])

    def b64write(self, addr, data):
        self.cmd("b64write 0x%x 0x%x %s"
                 % (addr, len(data), base64.b64encode(data).decode()))

    def b64read(self, addr, size):
        return base64.b64decode(self.cmd("b64read 0x%x 0x%x" % (addr, size)))

    def close(self):
        try:
            self.qmp("quit")
        except (RuntimeError, OSError, ValueError):
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self._release()

    def _release(self):
        self.proc.wait()
        if not self.log.closed:
            self.final_log = self.stderr()
            self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # PCI configuration space: through 0xcf8/0xcfc on x86, through the
    # ECAM window when one is given (arm virt).
    ecam = None

    def _cfg_addr(self, bus, dev, fn, reg):
        return 0x80000000 | bus << 16 | dev << 11 | fn << 8 | (reg & 0xfc)

    def cfg_read32(self, bus, dev, fn, reg):
        if self.ecam is not None:
            return self.readl(self.ecam + (bus << 20 | dev << 15 | fn << 12
                                           | (reg & 0xffc)))
        self.cmd("outl 0xcf8 0x%x" % self._cfg_addr(bus, dev, fn, reg))
        return int(self.cmd("inl 0xcfc"), 16)

    def cfg_write32(self, bus, dev, fn, reg, val):
        if self.ecam is not None:
            self.writel(self.ecam + (bus << 20 | dev << 15 | fn << 12
                                     | (reg & 0xffc)), val)
            return
        self.cmd("outl 0xcf8 0x%x" % self._cfg_addr(bus, dev, fn, reg))
        self.cmd("outl 0xcfc 0x%x" % val)

    def mtree_find(self, name, flat=False):
        """Start address of the first region called name in info mtree."""
        out = self.hmp("info mtree" + (" -f" if flat else ""))
        m = re.search(r"^\s*([0-9a-f]+)-([0-9a-f]+) \(prio [-0-9]+, [^)]*\): "
                      + re.escape(name) + r"\b", out, re.M)
        if not m:
            raise RuntimeError("region %s not found in info mtree" % name)
        return int(m.group(1), 16), int(m.group(2), 16) + 1 - int(m.group(1), 16)


def setup_root_port_and_bar(qemu, rp_bus, rp_dev, sec_bus, bar_base):
    """Give a root port one secondary bus and a 1 MiB memory window, then
    map BAR0 (component registers) of the device behind it at bar_base."""
    # primary, secondary, subordinate bus numbers
    qemu.cfg_write32(rp_bus, rp_dev, 0, 0x18,
                     rp_bus | sec_bus << 8 | sec_bus << 16)
    mb = bar_base >> 20
    qemu.cfg_write32(rp_bus, rp_dev, 0, 0x20, (mb << 4) | (mb << 20))
    qemu.cfg_write32(rp_bus, rp_dev, 0, 0x04, 0x6)      # memory + master
    vid = qemu.cfg_read32(sec_bus, 0, 0, 0x0)
    if vid & 0xffff == 0xffff:
        raise RuntimeError("no device behind root port %02x:%02x.0"
                           % (rp_bus, rp_dev))
    qemu.cfg_write32(sec_bus, 0, 0, 0x10, bar_base | 0x4)  # 64-bit BAR0
    qemu.cfg_write32(sec_bus, 0, 0, 0x14, bar_base >> 32)
    qemu.cfg_write32(sec_bus, 0, 0, 0x04, 0x6)


def program_decoder(qemu, comp_base, n, base, size, ways, gran,
                    targets=None, skip=0):
    """Program and commit HDM decoder n of the component block at comp_base.
    Returns the control register after the commit."""
    w = qemu.writel
    w(comp_base + HDM_GLOBAL_CTRL, HDM_ENABLE)
    w(comp_base + hdm_reg(n, "base_lo"), base & 0xffffffff)
    w(comp_base + hdm_reg(n, "base_hi"), base >> 32)
    w(comp_base + hdm_reg(n, "size_lo"), size & 0xffffffff)
    w(comp_base + hdm_reg(n, "size_hi"), size >> 32)
    if targets is not None:
        tl = 0
        for i, t in enumerate(targets):
            tl |= t << (8 * i)
        w(comp_base + hdm_reg(n, "tl_lo"), tl & 0xffffffff)
        w(comp_base + hdm_reg(n, "tl_hi"), tl >> 32)
    else:
        w(comp_base + hdm_reg(n, "skip_lo"), skip & 0xffffffff)
        w(comp_base + hdm_reg(n, "skip_hi"), skip >> 32)
    ctrl = gran_enc(gran) | ways_enc(ways) << 4 | CTRL_HOSTONLY | CTRL_COMMIT
    w(comp_base + hdm_reg(n, "ctrl"), ctrl)
    return qemu.readl(comp_base + hdm_reg(n, "ctrl"))


def uncommit_decoder(qemu, comp_base, n):
    """Clear decoder n's commit bit; returns the control register after."""
    reg = comp_base + hdm_reg(n, "ctrl")
    qemu.writel(reg, qemu.readl(reg) & ~CTRL_COMMIT)
    return qemu.readl(reg)


def cxl_route(hpa_offset, ways, gran):
    """CXL decode of a window offset for a single-level interleave:
    (position, device offset).  Power-of-two ways only."""
    chunk = hpa_offset // gran
    return chunk % ways, (chunk // ways) * gran + hpa_offset % gran


def align_up(v, a):
    return (v + a - 1) // a * a


def _size_bars(qemu, bus, dev, nbars):
    """(index, size, is64) of each implemented memory BAR."""
    bars, i = [], 0
    while i < nbars:
        reg = 0x10 + 4 * i
        old = qemu.cfg_read32(bus, dev, 0, reg)
        if old & 1:                       # I/O BAR: not used by CXL devices
            i += 1
            continue
        is64 = (old >> 1) & 3 == 2
        qemu.cfg_write32(bus, dev, 0, reg, 0xffffffff)
        lo = qemu.cfg_read32(bus, dev, 0, reg) & ~0xf
        hi = 0xffffffff
        if is64:
            qemu.cfg_write32(bus, dev, 0, reg + 4, 0xffffffff)
            hi = qemu.cfg_read32(bus, dev, 0, reg + 4)
        mask = (hi << 32 | lo) if is64 else (0xffffffff << 32 | lo)
        if lo or (is64 and hi):
            bars.append((i, (~mask + 1) & (2**64 - 1), is64))
        i += 2 if is64 else 1
    return bars


def enumerate_bus(qemu, bus, next_bus, mem):
    """Assign bus numbers and memory BARs below @bus the way firmware does:
    depth first, every bridge window 1 MiB aligned.  @mem is a one-element
    list holding the next free address.  Returns the highest bus number."""
    top = bus
    for dev in range(32):
        vid = qemu.cfg_read32(bus, dev, 0, 0)
        if vid & 0xffff == 0xffff:
            continue
        htype = (qemu.cfg_read32(bus, dev, 0, 0xc) >> 16) & 0x7f
        for i, size, is64 in _size_bars(qemu, bus, dev,
                                        2 if htype == 1 else 6):
            addr = align_up(mem[0], max(size, 4096))
            mem[0] = addr + size
            qemu.cfg_write32(bus, dev, 0, 0x10 + 4 * i, addr & 0xffffffff)
            if is64:
                qemu.cfg_write32(bus, dev, 0, 0x14 + 4 * i, addr >> 32)
        if htype == 1:
            sec = max(next_bus, top + 1)
            qemu.cfg_write32(bus, dev, 0, 0x18, bus | sec << 8 | 0xff << 16)
            mem[0] = align_up(mem[0], 1 << 20)
            start = mem[0]
            sub = enumerate_bus(qemu, sec, sec + 1, mem)
            mem[0] = align_up(max(mem[0], start + 1), 1 << 20)
            qemu.cfg_write32(bus, dev, 0, 0x18, bus | sec << 8 | sub << 16)
            qemu.cfg_write32(bus, dev, 0, 0x20,
                             (start >> 20) << 4 | ((mem[0] >> 20) - 1) << 20)
            # no prefetchable window
            qemu.cfg_write32(bus, dev, 0, 0x24, 0x0000fff0)
            top = max(top, sub)
        qemu.cfg_write32(bus, dev, 0, 0x04, 0x6)       # memory + master
    return top


def pci_bar0_by_id(qemu):
    """qdev id -> BAR0 address of every device query-pci reports."""
    out = {}

    def walk(devices):
        for d in devices:
            for r in d.get("regions", []):
                if r.get("bar") == 0 and d.get("qdev_id"):
                    out[d["qdev_id"]] = r["address"]
            br = d.get("pci_bridge")
            if br:
                walk(br.get("devices", []))
    for b in qemu.qmp("query-pci"):
        walk(b["devices"])
    return out


def host_bridge_regs(qemu):
    """pxb-cxl id -> address of its component register block."""
    out = {}
    mtree = qemu.hmp("info mtree -o")
    for m in re.finditer(r"^\s*([0-9a-f]+)-[0-9a-f]+ \([^)]*\): pxb-cxl-host"
                         r" owner:\{dev path=([^}]+)\}", mtree, re.M):
        for c in qemu.qmp("qom-list", path=m.group(2)):
            if c["type"] == "child<pxb-cxl-bus>":
                out[c["name"]] = int(m.group(1), 16)
    return out


def fixed_windows(qemu):
    """[(base, size, QOM path of the cxl-fmw object)] in address order."""
    out = []
    mtree = qemu.hmp("info mtree -o")
    for m in re.finditer(r"^\s*([0-9a-f]+)-([0-9a-f]+) \([^)]*\): "
                         r"cxl-fixed-memory-region owner:\{dev path=([^}]+)\}",
                         mtree, re.M):
        base, end = int(m.group(1), 16), int(m.group(2), 16)
        if all(b != base for b, _, _ in out):
            out.append((base, end + 1 - base, m.group(3)))
    return sorted(out)
