"""What scenarios share: the writer guest's parameter block and checks of
what it leaves, and the guest-side operations on devices (hot unplug, the
mailbox, the DMA probe's pattern)."""

import copy
import os
import re
import struct
import time

from .rig import Rig, pcie_cap
from .runner import Failure, check
from .topology import pattern

# The writer guests (tests/cxl/guest/writer-*.S): their parameters
WRITER_PARAMS = 0x44000000          # virt, writer-aarch64.S
WRITER_PARAMS_X86 = 0x200000        # q35, writer-x86_64.S


def writer_params(rig):
    """Where the writer guest of @rig's machine has its parameters."""
    return WRITER_PARAMS_X86 if rig.machine == "q35" else WRITER_PARAMS


def q64(q, addr):
    return struct.unpack("<Q", q.read(addr, 8))[0]


def wait_writer(rig, passes, secs=30, since=None):
    """Until the writer has completed @passes more passes than @since
    (None: than it has now)."""
    q, deadline, wp = rig.q, time.time() + secs, writer_params(rig)
    start = q64(q, wp + 0x10) if since is None else since
    while q64(q, wp + 0x10) < start + passes:
        check(not q64(q, wp + 0x20),
              "the writer took an exception: ESR 0x%x FAR 0x%x" % (
                  q64(q, wp + 0x20), q64(q, wp + 0x28)))
        check(time.time() < deadline, "the writer made no progress")
        time.sleep(0.01)


def check_writer_buffer(data, what):
    """The buffer as the writer leaves it at any instant: words of pass g
    below some offset, of pass g - 1 above it (it writes in address
    order), each word holding its own offset."""
    words = struct.unpack("<%dQ" % (len(data) // 8), data)
    top = words[0] >> 32
    for i, w in enumerate(words):
        o, g = w & 0xffffffff, w >> 32
        if o != i * 8 or g not in (top, top - 1) or \
                (i and g > words[i - 1] >> 32):
            # how far back the older words go: a page, a chunk, a word?
            old, j = words[i - 1] >> 32 if i else g, i
            while j and words[j - 1] >> 32 == old:
                j -= 1
            raise Failure("%s: word at +0x%x is 0x%x (pass %d writes its "
                          "offset; passes %d then %d expected); the words "
                          "before it, from +0x%x, hold pass %d"
                          % (what, i * 8, w, top, top, top - 1, j * 8, old))


def unplug_first(rig):
    """Unplug the type-3 device behind the first root port of the first
    host bridge, answering the attention button as a guest would."""
    q, gone = rig.q, rig.topo.eps[0]
    q.qmp("device_del", id=gone.name)
    # the guest's answer to the attention button: slot power off
    hb_bus = 16
    cap = pcie_cap(q, hb_bus, 0)
    ctl = q.cfg_read32(hb_bus, 0, 0, cap + 0x18) & 0xffff
    q.cfg_write32(hb_bus, 0, 0, cap + 0x18, ctl | 0x400 | 0x300)
    deadline = time.time() + 10
    while any(c["name"] == gone.name for c in
              q.qmp("qom-list", path="/machine/peripheral")):
        check(time.time() < deadline, "%s was not unplugged" % gone.name)
        time.sleep(0.05)


def mailbox_of(q, ep):
    """Where type-3 device @ep's mailbox registers are (info mtree -o)."""
    m = re.search(r"^\s*([0-9a-f]+)-[0-9a-f]+ \([^)]*\): mailbox "
                  r"owner:\{dev id=%s\}" % ep.name, q.hmp("info mtree -o"),
                  re.M)
    check(m, "no mailbox region for %s in info mtree -o" % ep.name)
    return int(m.group(1), 16)


def probe_bytes(addr, size, seed):
    """What x-dma-probe-testdev writes or expects at [addr, addr + size)."""
    lo = addr & ~7
    words = pattern(lo, (addr + size - lo + 7) & ~7, 0)
    raw = bytearray(words)
    for i in range(7, len(raw), 8):
        raw[i] ^= seed
    return bytes(raw[addr - lo:addr - lo + size])


def wait_migration(q, what):
    deadline = time.time() + 60
    while True:
        st = q.qmp("query-migrate").get("status")
        if st == "completed":
            return
        check(st != "failed" and time.time() < deadline,
              "%s migration %s" % (what, st))
        time.sleep(0.05)


def moved_topology(t, tmp):
    """The same topology with its backend files in @tmp (new, empty)."""
    m = copy.deepcopy(t)
    m.tmp = tmp
    m.args = [a.replace(t.tmp, tmp) for a in t.args]
    for ep in m.eps:
        ep.path = ep.path.replace(t.tmp, tmp)
    return m


def files_equal(a, b):
    """Offset of the first differing byte of two files, or None."""
    with open(a, "rb") as fa, open(b, "rb") as fb:
        off = 0
        while True:
            x, y = fa.read(1 << 22), fb.read(1 << 22)
            if x != y:
                n = min(len(x), len(y))
                i = next((i for i in range(n) if x[i] != y[i]), n)
                return off + i
            if not x:
                return None
            off += len(x)


def elf_loads(path):
    """[(guest physical address, file offset, size)] of an ELF64 core's
    PT_LOAD headers (extended numbering: the count in section 0)."""
    with open(path, "rb") as f:
        eh = f.read(64)
        check(eh[:4] == b"\x7fELF" and eh[4] == 2, "dump is not ELF64")
        phoff, shoff = struct.unpack_from("<QQ", eh, 0x20)
        phentsize, phnum = struct.unpack_from("<HH", eh, 0x36)
        if phnum == 0xffff:
            f.seek(shoff + 0x2c)
            phnum, = struct.unpack("<I", f.read(4))
        f.seek(phoff)
        table = f.read(phentsize * phnum)
    out = []
    for i in range(phnum):
        ptype, _, off, _, paddr, filesz = struct.unpack_from(
            "<IIQQQQ", table, i * phentsize)
        if ptype == 1:
            out.append((paddr, off, filesz))
    return out


def destination(rig):
    """A second QEMU like @rig's, its backend files in a directory of its
    own, waiting for an incoming migration on a unix socket: (the rig,
    its topology, the socket's path)."""
    dt = moved_topology(rig.topo, os.path.join(rig.topo.tmp, "destination"))
    os.makedirs(dt.tmp)
    sock = os.path.join(dt.tmp, "migrate.sock")
    dst = Rig(rig.qemu_dir, rig.machine, dt,
              extra=rig.extra + ["-incoming", "unix:" + sock],
              accel=rig.accel, enumerate=False)
    return dst, dt, sock
