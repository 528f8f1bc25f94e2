"""The bank of interactive transactions (chaos/txbank.py) on real node processes with kill -9,
pauses and partitions of the leader; and its checker, which must catch a lost update, a read
of a value nobody wrote and a dependency cycle."""
from __future__ import annotations

import os

import pytest

from ddb_node.chaos.history import INFO, OK, ChaosOp
from ddb_node.chaos.runner import Config, run
from ddb_node.chaos.txbank import check_txbank, find_cycle

pytestmark = pytest.mark.timeout(300)


def test_txbank_under_process_and_partition_faults(tmp_path):
    cfg = Config(name="txbank", seed=21, duration=float(os.environ.get("DDB_CHAOS_TXBANK_SECONDS", 20)),
                 workloads=["txbank"], nemeses=["kill-leader", "pause-leader", "isolate-leader",
                                                "partition-halves"],
                 hold=(1.5, 3.0), quiet=(1.0, 2.0), out_dir=str(tmp_path), op_timeout=5.0)
    rep = run(cfg, log=lambda *a: None)
    tx = rep["checkers"]["txbank"]
    assert rep["anomalies"] == [], rep["anomalies"]
    assert tx["valid"] is True, tx
    assert tx["transfers_committed"] > 20 and tx["audits"] > 5, tx
    assert rep["faults"]["total"] >= 2, rep["faults"]
    assert rep["checkers"]["convergence"]["valid"]


def _op(i, f, key, status, output):
    return ChaosOp(i, 1, "txbank", f, key, status=status, output=output)


def _transfer(i, tid, reads, writes, status=OK):
    return _op(i, "transfer", tid, status, {"tid": tid, "committed": True, "reads": reads,
                                              "writes": writes})


FINAL = {"accounts": {0: [90, 1], 1: [110, 1]}, "txlog": ["t1"]}


def test_the_checker_accepts_a_serial_history():
    ops = [_transfer(1, "t1", {0: [100, 0], 1: [100, 0]}, {0: [90, 1], 1: [110, 1]}),
           _op(2, "audit", None, OK, {"reads": {0: [90, 1], 1: [110, 1]}})]
    assert check_txbank(ops, 2, 100, FINAL)["valid"] is True


def test_the_checker_catches_a_lost_update():
    ops = [_transfer(1, "t1", {0: [100, 0], 1: [100, 0]}, {0: [90, 1], 1: [110, 1]}),
           _transfer(2, "t2", {0: [100, 0], 1: [100, 0]}, {0: [95, 1], 1: [105, 1]})]
    final = {"accounts": {0: [95, 1], 1: [105, 1]}, "txlog": ["t1", "t2"]}
    r = check_txbank(ops, 2, 100, final)
    assert r["valid"] is False and any("lost update" in a for a in r["anomalies"]), r


def test_the_checker_catches_an_audit_of_a_value_never_written():
    ops = [_transfer(1, "t1", {0: [100, 0], 1: [100, 0]}, {0: [90, 1], 1: [110, 1]}),
           _op(2, "audit", None, OK, {"reads": {0: [90, 1], 1: [100, 0]}})]   # half a transfer
    r = check_txbank(ops, 2, 100, FINAL)
    assert r["valid"] is False and any("not serializable" in a or "total" in a for a in r["anomalies"]), r


def test_the_checker_counts_a_committed_transfer_whose_answer_was_lost():
    ops = [_op(1, "transfer", "t1", INFO, None)]
    inflight = {"t1": {"reads": {0: [100, 0], 1: [100, 0]}, "writes": {0: [90, 1], 1: [110, 1]}}}
    assert check_txbank(ops, 2, 100, FINAL, inflight)["valid"] is True


def test_find_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
