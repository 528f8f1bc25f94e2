"""The bank workload in the simulator (issue 16): transfers as interactive transactions with
conflict retries and concurrent audits, under the random fault schedule. Every run checks
that the total never changes (every audit, and the end), that no transfer is applied twice
or half, that every member holds the same state, and that the committed history is
serializable (sim/serializability.py). Replay: `ddb sim --bank --seed N`.

Default: DDB_SIM_BANK_SEEDS seeds (40) over DDB_SIM_WORKERS processes (2)."""
from __future__ import annotations

import os

import pytest

from ddb_node.sim.bank import run_bank
from ddb_node.sim.serializability import Txn, check
from ddb_node.sql import StateMachine

from tests.sim_seeds import chunks, failed_reports, run_first

SEEDS = int(os.environ.get("DDB_SIM_BANK_SEEDS", "40"))


def _one(seed: int):
    r = run_bank(seed)
    return seed, r.ok, r.report(), r.ops


@pytest.fixture(scope="module")
def results():
    return run_first(_one, SEEDS)


@pytest.mark.parametrize("seeds", chunks(SEEDS, 20), ids=lambda s: f"seeds{s[0]}-{s[-1]}")
def test_bank_runs_keep_the_money_and_stay_serializable(results, seeds):
    failed = failed_reports(results, seeds)
    assert not failed, "\n\n".join(failed)


def test_bank_runs_are_not_vacuous(results):
    """Transfers commit, conflicts happen and are retried, audits read, under faults."""
    total: dict = {}
    for _ok, _report, ops in results.values():
        for k, v in ops.items():
            total[k] = total.get(k, 0) + v
    assert total["transfer:ok"] > 30 * len(results), total
    assert total["conflicts"] > 10 * len(results), total
    assert total["audit:ok"] > 5 * len(results), total
    assert total["transfer:fail"] + total["transfer:info"] < total["transfer:ok"] // 20, total


# ---------------------------------------------------------------- the checker bites
def test_the_checker_accepts_a_serial_history():
    txns = [Txn("t1", 0, {1: 100, 2: 100}, {1: 90, 2: 110}, index=2),
            Txn("audit", 2, {1: 90, 2: 110}),
            Txn("t2", 2, {1: 90}, {1: 80}, index=3)]
    assert check({1: 100, 2: 100}, txns) == []


def test_the_checker_catches_a_lost_update():
    """Both read 100 at the same point and both committed: the second overwrote the first."""
    txns = [Txn("t1", 1, {1: 100}, {1: 90}, index=2), Txn("t2", 1, {1: 100}, {1: 80}, index=3)]
    (v,) = check({1: 100}, txns)
    assert "t2 read 1=100" in v and "not serializable" in v


def test_the_checker_catches_an_audit_of_a_half_applied_transfer():
    txns = [Txn("t1", 0, {1: 100, 2: 100}, {1: 90, 2: 110}, index=2), Txn("audit", 2, {1: 90, 2: 100})]
    assert check({1: 100, 2: 100}, txns)


def test_a_bank_run_without_validation_is_caught(monkeypatch):
    """With the commit condition ignored (no conflict is ever seen) transfers lose updates:
    the run must fail: an audit sees money made or lost, or the history is not serializable."""
    monkeypatch.setattr(StateMachine, "_tx_conflict", lambda self, begin, tables: None)
    reports = []
    for seed in range(1, 6):
        r = run_bank(seed, steps=3000)
        if not r.ok:
            reports.append(r.report())
            break
    assert reports and ("not serializable" in reports[0] or "audit total" in reports[0]), reports
