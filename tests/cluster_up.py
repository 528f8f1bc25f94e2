"""Cleaning up after a test of `ddb cluster up`: its nodes and its control process are
separate processes the test did not start itself, so a failed test must still end them."""
from __future__ import annotations

import json
import os
import signal

from ddb_node.cli.cluster import alive, stop_control


def leave_nothing_behind(d) -> None:
    """SIGKILL every node `cluster.json` in `d` names that is still alive, then stop the
    control process (only if it is still this cluster's)."""
    state_file = os.path.join(d, "cluster.json")
    if os.path.exists(state_file):
        with open(state_file) as f:
            nodes = json.load(f)["nodes"]
        for n in nodes:
            if alive(n):
                os.kill(n["pid"], signal.SIGKILL)
    if os.path.isdir(d):
        stop_control(str(d))
