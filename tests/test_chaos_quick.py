"""The quick chaos profile (CI): five short runs with fixed seeds, one nemesis family each,
all four workloads, on real node processes. Each must find no anomaly, no crash, converge,
and leave a history file and a report naming the command that reproduces it.

The `network` run needs root and network namespaces (real link-down, iptables partitions and
loss, kernel delay); it is skipped where those are not available.
"""
from __future__ import annotations

import json
import os

import pytest

from ddb_node.chaos import profiles
from ddb_node.chaos.netns import available, iptables_unavailable
from ddb_node.chaos.runner import run

pytestmark = pytest.mark.timeout(300)

NAMES = [name for name, _, _ in profiles.QUICK]


@pytest.mark.parametrize("name", NAMES)
def test_quick_profile(name, tmp_path):
    if name == "network" and available() is not None:
        pytest.skip(f"network namespaces unavailable: {available()}")
    if name == "network" and iptables_unavailable():
        pytest.skip(iptables_unavailable())
    (cfg,) = profiles.quick(duration=float(os.environ.get("DDB_CHAOS_QUICK_SECONDS", 20)),
                            only=[name], out_dir=str(tmp_path))
    rep = run(cfg, log=lambda *a: None)
    assert rep["anomalies"] == [], rep["anomalies"]
    assert rep["valid"] is True, (rep["unknown"], rep["checkers"].get("register"))
    assert rep["faults"]["total"] >= 2, rep["faults"]
    assert rep["checkers"]["crashes"]["crashed"] == []
    assert rep["checkers"]["convergence"]["valid"]
    assert not rep["liveness"], rep["liveness"]
    assert not rep["harness_errors"], rep["harness_errors"]
    ok = rep["ops"]["ok"]
    assert ok > 200, f"too little progress: {rep['ops']}"
    run_dir = rep["run_dir"]
    assert os.path.getsize(os.path.join(run_dir, "history.jsonl")) > 0
    with open(os.path.join(run_dir, "report.json")) as f:
        assert json.load(f)["reproduce"].startswith("python -m ddb_node.chaos --seed")
    assert "Reproduce:" in open(os.path.join(run_dir, "report.md")).read()


def test_checkers_catch_stale_reads_on_a_real_cluster(tmp_path):
    """The same harness with register reads at `none` (any replica's local state) must find
    non-linearizable histories: proof that a PASS above is not vacuous."""
    from ddb_node.chaos.runner import Config
    cfg = Config(name="negative-control", seed=21, duration=15.0, workloads=["register"],
                 nemeses=["isolate-leader", "partition-halves"], register_levels=("none",),
                 out_dir=str(tmp_path), max_states=50_000)
    rep = run(cfg, log=lambda *a: None)
    assert rep["valid"] is False
    assert any("not linearizable" in a for a in rep["anomalies"]), rep["anomalies"][:3]
