"""Host settings the tests change, and put back: vm.max_map_count (one
host mapping per run of chunks of a stitched window counts against it).
Writing it needs root; where it cannot be written the tests and
benchmarks say so and go on.  And what the host's file systems are."""

import os

MAX_MAP_COUNT = "/proc/sys/vm/max_map_count"


def fs_type(path):
    """The file system type /proc/mounts gives for @path."""
    best, kind = "", "?"
    path = os.path.realpath(path)
    with open("/proc/mounts") as f:
        for line in f:
            mnt, typ = line.split()[1:3]
            if (path == mnt or path.startswith(mnt.rstrip("/") + "/")) and \
                    len(mnt) >= len(best):
                best, kind = mnt, typ
    return kind


def max_map_count():
    """The current vm.max_map_count."""
    with open(MAX_MAP_COUNT) as f:
        return int(f.read())


def set_max_map_count(n):
    """Set vm.max_map_count to @n; whether that could be done."""
    try:
        with open(MAX_MAP_COUNT, "w") as f:
            f.write("%d\n" % n)
        return True
    except OSError:
        return False


class MaxMapCount:
    """vm.max_map_count saved (on entry, or by save()) and put back (on
    exit, or by restore()) if it changed in between.  With @at_least,
    entry raises it to at least that (as root); .ok says whether the
    limit is then at least @at_least."""

    def __init__(self, at_least=0):
        self.n, self.saved, self.ok = at_least, None, False

    def save(self):
        self.saved = max_map_count()
        return self

    def raise_to(self, n):
        """Raise the limit to at least @n; OSError if it cannot be
        written."""
        if max_map_count() < n:
            with open(MAX_MAP_COUNT, "w") as f:
                f.write("%d\n" % n)

    def restore(self):
        if max_map_count() != self.saved:
            set_max_map_count(self.saved)

    def __enter__(self):
        self.save()
        try:
            self.raise_to(self.n)
        except OSError:
            pass
        self.ok = max_map_count() >= self.n
        return self

    def __exit__(self, *exc):
        self.restore()


class MapCountAtLeast(MaxMapCount):
    """A context that raises vm.max_map_count to at least @n (as root)
    and restores it; .ok says whether the limit is now at least @n."""

    def __init__(self, n):
        super().__init__(n)
