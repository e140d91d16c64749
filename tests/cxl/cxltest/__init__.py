"""The CXL test harness: the qtest/QMP protocol (qtest), topologies and
their decode model (topology), a running QEMU with one (rig), scenario
runners and their result reporting (runner), and host settings the tests
change (host).

Imported through PYTHONPATH=tests/cxl, which the Makefile sets (and
exports to scripts/check.sh); e.g. from the top of the tree:

    PYTHONPATH=tests/cxl python3 tests/cxl/routing-test.py --qemu-dir ...
"""

from . import qtest
from .host import (MAX_MAP_COUNT, MapCountAtLeast, MaxMapCount, fs_type,
                   max_map_count, set_max_map_count)
from .rig import CHECK_BYTES, MACHINES, RANDOM_SAMPLES, Rig, pcie_cap
from .runner import Failure, Runner, Step, check, report, scenario_cli
from .topology import DEV_SIZE, EP, TARGET_PAGE, Switch, Topology, pattern

__all__ = ["qtest", "MAX_MAP_COUNT", "MapCountAtLeast", "MaxMapCount",
           "fs_type", "max_map_count", "set_max_map_count", "CHECK_BYTES",
           "MACHINES", "RANDOM_SAMPLES", "Rig", "pcie_cap", "Failure",
           "Runner", "Step", "scenario_cli", "check", "report", "DEV_SIZE",
           "EP", "TARGET_PAGE", "Switch", "Topology", "pattern"]
