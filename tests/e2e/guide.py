"""The command lines of the user guide (docs/system/cxl-interleave.rst),
as the e2e harness runs them.

A literal block that follows a comment ``.. test: NAME`` is a command
line the guide promises works.  guide_cmdline() returns it as an argument
list, with what only a test may change changed: the kernel and initramfs
are the e2e image's, each type-3 device's backend file is the one the test
topology checks, the guest's init gets its e2e.* parameters (with the
guide's own guest commands, if it has any, in e2e.run=, to run instead of
init's), and -nographic goes (the harness gives the serial port a file).  The harness
(cxltest.qtest.QEMU) adds -display none and its qtest and QMP sockets,
and keeps QEMU's default devices (NIC, VGA, CD-ROM) as the guide's
command line gets them; the rest is the guide's.
"""

import re
import shlex


class GuideError(Exception):
    pass


def guide_blocks(path):
    """{NAME: command line (one string)} of every tested block."""
    blocks, lines = {}, open(path).read().splitlines()
    i = 0
    while i < len(lines):
        m = re.match(r"\.\. test: (\S+)\s*$", lines[i])
        i += 1
        if not m:
            continue
        while i < len(lines) and lines[i].strip() in ("", "::"):
            i += 1
        body = []
        while i < len(lines) and (lines[i].startswith(" ") or
                                  not lines[i].strip()):
            body.append(lines[i])
            i += 1
        text = "\n".join(body).strip()
        if not text:
            raise GuideError("%s: '.. test: %s' has no block" % (path, m[1]))
        blocks[m[1]] = text.replace("\\\n", " ")
    return blocks


def guide_guest_commands(path, name):
    """The shell commands the guide runs in the guest of block @name (its
    block @name-guest), one string; None if it has none."""
    return guide_blocks(path).get(name + "-guest")


def _props(value):
    """'a,k=v,...' -> (a, {k: v})"""
    head, *rest = value.split(",")
    return head, dict(p.split("=", 1) for p in rest if "=" in p)


def guide_cmdline(path, name, binary, kernel, initrd, append, topo):
    """The guide's block @name, which must run @binary, as its arguments.
    @topo: the tests' Topology the guide's devices must match (one type-3
    device per root port, in port order across host bridges): the guide's
    backend of the device on port p of host bridge h gets the path of the
    topology's device there."""
    blocks = guide_blocks(path)
    if name not in blocks:
        raise GuideError("%s has no '.. test: %s' block" % (path, name))
    argv = shlex.split(blocks[name])
    if argv[0] != binary:
        raise GuideError("guide block %s runs %s, not %s"
                         % (name, argv[0], binary))
    args = argv[1:]
    objects = {}        # backend id -> index of its -object value in args
    ports = {}          # root port id -> (host bridge id, port number)
    eps = []            # (root port id, memdev id)
    bridges = []
    for i, (opt, val) in enumerate(zip(args, args[1:])):
        if opt == "-object":
            kind, p = _props(val)
            if kind.startswith("memory-backend-") and "mem-path" in p:
                objects[p["id"]] = i + 1
        elif opt == "-device":
            kind, p = _props(val)
            if kind == "pxb-cxl":
                bridges.append(p["id"])
            elif kind == "cxl-rp":
                ports[p["id"]] = (p["bus"], int(p["port"]))
            elif kind == "cxl-type3":
                eps.append((p["bus"], p.get("volatile-memdev")))
    want = [(hb, len(rps)) for hb, rps in topo.hbs]
    have = [(hb, sum(1 for b, _ in ports.values() if b == hb))
            for hb in bridges]
    if [n for _, n in want] != [n for _, n in have] or len(eps) != topo.ways:
        raise GuideError("guide block %s: host bridges x root ports %s and "
                         "%d devices, the test topology has %s and %d"
                         % (name, [n for _, n in have], len(eps),
                            [n for _, n in want], topo.ways))
    for rp, memdev in eps:
        if rp not in ports or memdev not in objects:
            raise GuideError("guide block %s: device on %s with memdev %s "
                             "has no root port or file backend"
                             % (name, rp, memdev))
        hb, port = ports[rp]
        ep = topo.hbs[bridges.index(hb)][1][port]
        j = objects[memdev]
        args[j] = re.sub(r"mem-path=[^,]*", "mem-path=" + ep.path, args[j])
    out, skip = [], False
    for i, a in enumerate(args):
        if skip:
            skip = False
            continue
        if a == "-nographic":
            continue
        if a in ("-kernel", "-initrd", "-append"):
            out += [a, {"-kernel": kernel, "-initrd": initrd}.get(
                a, args[i + 1] + " " + append)]
            skip = True
            continue
        out.append(a)
    for a in ("-kernel", "-initrd", "-append"):
        if a not in out:
            raise GuideError("guide block %s has no %s" % (name, a))
    return out
