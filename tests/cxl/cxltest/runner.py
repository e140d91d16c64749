"""Running scenarios and reporting their results, the same way in every
runner: a line "ok NAME ..." or "FAIL NAME reason" per scenario, a final
line "N passed, N failed", and (with $CXLTEST_RESULTS set) the same
counts as JSON in that file, which scripts/check.sh reads.
"""

import argparse
import json
import os
import random
import shutil
import sys
import tempfile
import time
import traceback

RESULTS_ENV = "CXLTEST_RESULTS"


class Failure(Exception):
    pass


def check(cond, msg):
    if not cond:
        raise Failure(msg)


class Runner:
    """Runs named scenarios, each on a Rig of its own in a fresh
    directory (the rig's: removed with it), and prints "ok"/"FAIL" per
    scenario (with QEMU's stderr on a failure) and the counts at the end
    (report())."""

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
            with rig:       # closes QEMU, removes tmp
                fn(rig)
        except (Failure, RuntimeError, OSError) as e:
            err = str(e)
            if not isinstance(e, Failure):
                err += "\n" + traceback.format_exc()
        finally:
            if rig:
                rc = rig.q.proc.returncode
                if rc:
                    err = (err or "") + " QEMU exited %d" % rc
                log = rig.q.stderr().strip()
                if err and log:
                    err += "\n     QEMU stderr: " + log[-2000:]
            if after:
                after()
            shutil.rmtree(tmp, ignore_errors=True)     # make_rig failed
        if err:
            self.failed += 1
            print("FAIL %-28s %s" % (name, err))
        else:
            self.passed += 1
            print("ok   %-28s %5.1fs" % (name, time.time() - t0))
        sys.stdout.flush()

    def summary(self):
        """Reports the counts (report()); the exit status (1 if anything
        failed or nothing ran)."""
        report(self.passed, self.failed)
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


def report(passed, failed, skipped=0):
    """Print the final line "N passed, N failed" and, when
    $CXLTEST_RESULTS names a file, write {"passed": N, "failed": N,
    "skipped": N} to it."""
    print("%d passed, %d failed" % (passed, failed))
    sys.stdout.flush()
    path = os.environ.get(RESULTS_ENV)
    if path:
        with open(path, "w") as f:
            json.dump({"passed": passed, "failed": failed,
                       "skipped": skipped}, f)
            f.write("\n")


def scenario_cli(doc, name):
    """The command line every scenario runner takes: --qemu-dir,
    --guest-dir (default: QEMU_DIR/../guest), --tier ci|full, -k NAME
    (only scenarios whose name holds it), --seed.  Returns the options,
    the seed (printed, random unless given) and a Runner."""
    ap = argparse.ArgumentParser(description=doc.splitlines()[0])
    ap.add_argument("--qemu-dir", required=True)
    ap.add_argument("--guest-dir", default=None,
                    help="guest payloads (default: QEMU_DIR/../guest)")
    ap.add_argument("--tier", choices=("ci", "full"), default="ci")
    ap.add_argument("-k", dest="match", default="")
    ap.add_argument("--seed", type=int, default=None)
    opt = ap.parse_args()
    opt.guest_dir = os.path.abspath(opt.guest_dir or
                                    os.path.join(opt.qemu_dir, "..", "guest"))
    seed = opt.seed if opt.seed is not None else random.randrange(1 << 32)
    print("%s: seed %d" % (name, seed))
    return opt, seed, Runner(opt.match)
