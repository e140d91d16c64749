#!/usr/bin/env python3
"""Build the e2e guest: a kernel and an initramfs from unpacked .debs.

Unpacks every .deb fetched by fetch-debs.sh (never installing anything),
takes the kernel, the CXL/DAX/virtio-blk modules with their dependencies
(in load order, decompressed: no depmod needed), busybox, cxl, daxctl,
memtester, stress-ng, numactl and the shared libraries they need
(resolved with readelf from the same suite), the project's static helper
and init script, and writes a newc cpio archive.

Usage: build-image.py --debs DIR --out DIR --helper BIN --init SCRIPT
"""

import argparse
import gzip
import io
import lzma
import os
import re
import shutil
import stat
import subprocess
import sys

MODULES = ["cxl_acpi", "cxl_pci", "cxl_mem", "dax_cxl", "device_dax",
           "kmem", "virtio_blk", "virtio_mem"]
BINARIES = ["usr/bin/cxl", "usr/bin/daxctl", "usr/sbin/memtester",
            "usr/bin/stress-ng", "usr/bin/numactl"]
LIBDIRS = ["usr/lib/x86_64-linux-gnu", "lib/x86_64-linux-gnu",
           "usr/lib/aarch64-linux-gnu", "lib/aarch64-linux-gnu",
           "usr/lib", "lib", "lib64", "usr/lib64"]


def unpack(debs, root):
    stamp = os.path.join(root, ".unpacked")
    names = sorted(n for n in os.listdir(debs) if n.endswith(".deb"))
    if os.path.exists(stamp) and open(stamp).read() == "\n".join(names):
        return
    shutil.rmtree(root, ignore_errors=True)
    os.makedirs(root)
    for n in names:
        subprocess.run(["dpkg-deb", "-x", os.path.join(debs, n), root],
                       check=True)
    open(stamp, "w").write("\n".join(names))


def find_lib(root, name):
    for d in LIBDIRS:
        p = os.path.join(root, d, name)
        if os.path.exists(p):
            return os.path.join(d, name)
    return None


def needed(path):
    out = subprocess.run(["readelf", "-d", path], capture_output=True,
                         text=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^]]+)\]", out)


def interp(path):
    out = subprocess.run(["readelf", "-l", path], capture_output=True,
                         text=True).stdout
    m = re.search(r"Requesting program interpreter: ([^]]+)\]", out)
    return m.group(1).lstrip("/") if m else None


def lib_closure(root, binaries):
    todo, seen = list(binaries), set()
    while todo:
        rel = todo.pop()
        real = os.path.realpath(os.path.join(root, rel))
        for lib in needed(real):
            p = find_lib(root, lib)
            if p is None:
                sys.exit("build-image: %s needs %s, not in the .debs"
                         % (rel, lib))
            if p not in seen:
                seen.add(p)
                todo.append(p)
        ip = interp(real)
        if ip and not os.path.exists(os.path.join(root, ip)):
            ip = "usr/" + ip        # merged /usr: /lib64 is /usr/lib64
        if ip and ip not in seen:
            seen.add(ip)
    return sorted(seen)


def modinfo_depends(data):
    m = re.search(rb"depends=([^\0]*)\0", data)
    return [d for d in m.group(1).decode().split(",") if d] if m else []


def modules(root):
    kdir = [d for d in os.listdir(os.path.join(root, "usr/lib/modules"))][0]
    base = os.path.join(root, "usr/lib/modules", kdir)
    index = {}
    for dp, _, files in os.walk(base):
        for f in files:
            if f.endswith(".ko.xz"):
                index[f[:-6].replace("-", "_")] = os.path.join(dp, f)
    builtin = set()
    bpath = os.path.join(base, "modules.builtin")
    for line in open(bpath):
        builtin.add(os.path.basename(line.strip())[:-3].replace("-", "_"))
    order, data = [], {}

    def visit(name):
        if name in order or name in builtin:
            return
        if name not in index:
            sys.exit("build-image: module %s not found" % name)
        raw = lzma.open(index[name]).read()
        for d in modinfo_depends(raw):
            visit(d.replace("-", "_"))
        data[name] = raw
        order.append(name)
    for m in MODULES:
        visit(m)
    return kdir, order, data


class Cpio:
    """newc archive writer."""

    def __init__(self):
        self.buf, self.ino = io.BytesIO(), 1

    def add(self, name, mode, data=b"", target=None):
        if target is not None:
            data = target.encode()
        nb = name.encode() + b"\0"
        hdr = "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x" % (
            self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(nb), 0)
        self.ino += 1
        self.buf.write(hdr.encode() + nb)
        self.buf.write(b"\0" * (-(110 + len(nb)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))

    def dir(self, name):
        self.add(name, stat.S_IFDIR | 0o755)

    def file(self, name, data, mode=0o755):
        self.add(name, stat.S_IFREG | mode, data)

    def link(self, name, target):
        self.add(name, stat.S_IFLNK | 0o777, target=target)

    def finish(self):
        self.add("TRAILER!!!", 0)
        return self.buf.getvalue()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--debs", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--helper", required=True)
    ap.add_argument("--init", required=True)
    opt = ap.parse_args()
    root = os.path.join(opt.out, "root")
    unpack(opt.debs, root)
    kdir, order, mods = modules(root)
    vmlinuz = [f for f in os.listdir(os.path.join(root, "boot"))
               if f.startswith("vmlinuz-")][0]
    shutil.copy(os.path.join(root, "boot", vmlinuz),
                os.path.join(opt.out, "vmlinuz"))

    c = Cpio()
    made = set()

    def mkdirs(path):
        parts = path.split("/")[:-1]
        for i in range(1, len(parts) + 1):
            d = "/".join(parts[:i])
            if d and d not in made:
                made.add(d)
                c.dir(d)

    for d in ("bin", "sbin", "proc", "sys", "dev", "tmp", "mnt", "etc",
              "usr", "usr/bin", "usr/sbin", "usr/lib", "usr/lib64",
              "modules"):
        made.add(d)
        c.dir(d)
    c.link("lib", "usr/lib")            # merged /usr
    c.link("lib64", "usr/lib64")
    bb = open(os.path.join(root, "usr/bin/busybox"), "rb").read()
    c.file("bin/busybox", bb)
    c.link("bin/sh", "busybox")
    c.file("init", open(opt.init, "rb").read())
    c.file("bin/cxl-e2e", open(opt.helper, "rb").read())
    files = BINARIES + lib_closure(root, BINARIES)
    for rel in files:
        real = os.path.realpath(os.path.join(root, rel))
        mkdirs(rel)
        c.file(rel, open(real, "rb").read())
        made.add(rel)
    for i, name in enumerate(order):
        c.file("modules/%02d-%s.ko" % (i, name), mods[name], 0o644)
    c.file("etc/modules-order", "\n".join(
        "%02d-%s.ko" % (i, n) for i, n in enumerate(order)).encode() + b"\n",
        0o644)
    with open(os.path.join(opt.out, "initramfs.gz"), "wb") as f:
        f.write(gzip.compress(c.finish(), 6))
    print("build-image: kernel %s, %d modules (%s), %d files"
          % (kdir, len(order), " ".join(order), len(files)))


if __name__ == "__main__":
    main()
