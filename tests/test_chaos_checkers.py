"""The chaos checkers on hand-made histories: they must catch what they claim to catch."""
from __future__ import annotations

from ddb_node.chaos.checkers import (check_appends, check_bank, check_registers,
                                    measure_staleness)
from ddb_node.chaos.history import FAIL, INFO, OK, History
from ddb_node.chaos.report import recovery


def _op(h, f, key=None, value=None, expected=None, t0=0.0, t1=1.0, status=OK, output=None,
        wl="register", level=""):
    op = h.invoke(1, wl, f, key, value, expected, level)
    op.invoke = t0
    h.complete(op, status, output)
    op.complete = t1
    return op


def test_register_linearizable_history_passes():
    h = History(0.0)
    _op(h, "write", "k", 1, t0=0, t1=1)
    _op(h, "read", "k", t0=2, t1=3, output=1)
    _op(h, "cas", "k", 2, 1, t0=4, t1=5, output=True)
    _op(h, "read", "k", t0=6, t1=7, output=2)
    _op(h, "cas", "k", 3, 1, t0=8, t1=9, output=False)
    r = check_registers(h.ops)
    assert r["valid"] is True, r


def test_register_stale_read_is_a_violation():
    h = History(0.0)
    _op(h, "write", "k", 1, t0=0, t1=1)
    _op(h, "write", "k", 2, t0=2, t1=3)
    _op(h, "read", "k", t0=4, t1=5, output=1)       # reads an overwritten value
    r = check_registers(h.ops)
    assert r["valid"] is False and r["anomalies"], r


def test_register_unknown_write_may_or_may_not_happen():
    h = History(0.0)
    _op(h, "write", "k", 1, t0=0, t1=1)
    _op(h, "write", "k", 2, t0=2, t1=3, status=INFO)
    _op(h, "read", "k", t0=4, t1=5, output=1)
    _op(h, "read", "k", t0=6, t1=7, output=2)       # the unknown write took effect late
    assert check_registers(h.ops)["valid"] is True
    _op(h, "read", "k", t0=8, t1=9, output=1)       # ...and cannot be undone
    assert check_registers(h.ops)["valid"] is False


def test_register_search_bound_gives_unknown():
    h = History(0.0)
    for i in range(14):      # many concurrent unknown writes: a large search space
        _op(h, "write", "k", i, t0=0, t1=100, status=INFO)
    for i in range(6):
        _op(h, "read", "k", t0=1 + i, t1=50 + i, output=99)   # never written: unplaceable
    r = check_registers(h.ops, max_states=50)
    assert r["valid"] == "unknown", r


def test_bank_detects_a_broken_total():
    h = History(0.0)
    _op(h, "read", wl="bank", output={0: 50, 1: 50}, level="linearizable")
    assert check_bank(h.ops, 2, 100, {0: 40, 1: 60})["valid"] is True
    _op(h, "read", wl="bank", output={0: 50, 1: 60}, level="strong")
    r = check_bank(h.ops, 2, 100, {0: 40, 1: 60})
    assert r["valid"] is False and "total 110" in r["anomalies"][0]


def test_appends_lost_duplicated_and_phantom():
    h = History(0.0)
    _op(h, "append", value="a", wl="append", output=1)
    _op(h, "append", value="b", wl="append", output=2)
    _op(h, "append", value="c", wl="append", status=INFO)
    _op(h, "append", value="d", wl="append", status=FAIL)
    assert check_appends(h.ops, {"a": 1, "b": 1, "c": 1})["valid"] is True
    assert check_appends(h.ops, {"a": 1, "b": 1})["valid"] is True       # c unknown: may be absent
    r = check_appends(h.ops, {"a": 1, "b": 2, "d": 1, "z": 1})
    assert r["valid"] is False and r["duplicated"] == 1
    assert any("never attempted" in a for a in r["anomalies"])
    assert check_appends(h.ops, {"a": 1})["lost"] == 1


def test_staleness_is_measured():
    h = History(0.0)
    _op(h, "append", value="a", wl="append", output=1, t0=0, t1=1)
    _op(h, "append", value="b", wl="append", output=2, t0=1, t1=2)
    _op(h, "stale-read", wl="stale", output={"count": 1, "max_id": 1}, t0=5, t1=5.1)
    r = measure_staleness(h.ops)
    assert r["stale_reads"] == 1 and r["staleness_seconds"]["max"] == 3.0


def test_recovery_measures_time_to_first_ok_write():
    h = History(0.0)
    ev = h.fault_start("kill-leader", {}, True)
    ev.start = 10.0
    ev.end = 15.0
    _op(h, "write", "k", 1, t0=9.0, t1=9.5)        # before the fault: not counted
    _op(h, "write", "k", 2, t0=10.5, t1=12.0)
    _op(h, "write", "k", 3, t0=11.0, t1=11.75)
    r = recovery(h.ops, h.faults, 20.0)
    assert r["worst_after_leader_fault"]["unavailable_s"] == 1.75
