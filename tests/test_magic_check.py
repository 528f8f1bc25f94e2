"""`%ddb_check`: the session's register reads and writes (or a short workload) checked for
linearizability and drawn as a timeline, with the smallest offending part of a violation."""
from __future__ import annotations

import math
import re

import pytest

from ddb_magic import magics_of
from ddb_magic.check import CheckView, check, classify, smallest_offending
from ddb_node.sim.history import History

from tests.magic_helpers import run, shell

REG = "%%ddb\nCREATE TABLE reg(k TEXT PRIMARY KEY, v TEXT)"


def test_register_statements_are_recognised_and_others_are_not():
    assert classify("SELECT v FROM reg WHERE k = 'x'") == ("read", "reg/x", None)
    assert classify("INSERT OR REPLACE INTO reg(k, v) VALUES ('x', 'it''s')") == \
        ("write", "reg/x", "it's")
    assert classify("UPDATE reg SET v = 3 WHERE k = 7") == ("write", "reg/7", 3)
    assert classify("SELECT * FROM reg") is None
    assert classify("INSERT INTO reg(k, v) VALUES ('x', 'y')") is None   # may fail: not a write


def test_a_stale_read_is_a_violation_and_its_smallest_offending_part_is_shown():
    sh = shell()
    run(sh, "%ddb launch --sim -n 3 --seed 3 --name chk")
    run(sh, REG)
    run(sh, "%%ddb\nINSERT OR REPLACE INTO reg(k, v) VALUES ('x', 'one')")
    run(sh, "%%ddb\nSELECT 1")                                   # not a register operation
    b = magics_of(sh).clusters["chk"]
    old = b.leader()
    run(sh, f"%ddb_partition --isolate {old}")
    run(sh, f"%ddb wait leader --not {old}")
    new = b.leader()
    run(sh, f"%%ddb --node {new}\nINSERT OR REPLACE INTO reg(k, v) VALUES ('x', 'two')")
    r = run(sh, f"%%ddb --node {old} --level none\nSELECT v FROM reg WHERE k = 'x'")
    assert "one" in r.out                                        # the cut-off node's stale value
    view = run(sh, "%ddb_check").value
    assert isinstance(view, CheckView)
    assert view.verdict == "violation" and len(view.ops) == 3
    assert [(o.kind, o.value or o.output) for o in view.offending] == \
        [("write", "one"), ("write", "two"), ("read", "one")]
    svg = view.svg()
    assert re.findall(r'class="client"[^>]*>([^<]+)<', svg) == \
        ["notebook", f"notebook\u2192n{old}", f"notebook\u2192n{new}"]
    assert svg.count('class="op ok offending"') == 3
    assert "smallest offending part" in view._repr_html_()
    assert "cannot be linearized" in repr(view)
    assert run(sh, "%ddb_check --reset").value.ops == []
    run(sh, "%ddb stop --name chk")


def test_reads_after_writes_through_the_leader_are_linearizable():
    sh = shell()
    run(sh, "%ddb launch --sim -n 3 --seed 1 --name chk2")
    run(sh, REG)
    for v in ("a", "b"):
        run(sh, f"%%ddb\nINSERT OR REPLACE INTO reg(k, v) VALUES ('k', '{v}')")
        run(sh, "%%ddb --level linearizable\nSELECT v FROM reg WHERE k = 'k'")
    view = run(sh, "%ddb_check").value
    assert view.ok and len(view.ops) == 4 and view.offending == []
    assert [o.output for o in view.ops if o.kind == "read"] == ["a", "b"]
    run(sh, "%ddb stop --name chk2")


def test_a_simulated_workload_has_one_row_per_client_and_one_bar_per_operation():
    sh = shell()
    run(sh, "%ddb launch --sim -n 3 --seed 2 --name wl")
    view = run(sh, "%ddb_check --workload --ops 30 --clients 3 --keys 2").value
    assert isinstance(view, CheckView), run(sh, "%ddb_check --workload").out
    assert view.ok, repr(view)
    assert len(view.ops) >= 30 and {o.client for o in view.ops} == {1, 2, 3}
    svg = view.svg()
    assert re.findall(r'class="client"[^>]*>([^<]+)<', svg) == ["client 1", "client 2", "client 3"]
    assert svg.count("<rect") == len(view.ops)
    assert all(o.status is not None for o in view.ops)
    run(sh, "%ddb stop --name wl")


def test_shrinking_keeps_what_explains_the_violation():
    h = History()
    w1 = h.invoke(1, "write", "x", 0.0, value=1)
    h.complete(w1, "ok", 1.0, True)
    w2 = h.invoke(1, "write", "x", 2.0, value=2)
    h.complete(w2, "ok", 3.0, True)
    noise = h.invoke(2, "write", "y", 0.5, value=9)
    h.complete(noise, "ok", 0.7, True)
    stale = h.invoke(3, "read", "x", 4.0)
    h.complete(stale, "ok", 5.0, 1)
    fine = h.invoke(3, "read", "x", 6.0)
    h.complete(fine, "info", math.inf)
    view = check(h.ops)
    assert view.verdict == "violation"
    assert smallest_offending(h.ops, "x") == [w1, w2, stale] == view.offending


def test_check_usage_is_one_line():
    sh = shell()
    run(sh, "%ddb launch --sim -n 3 --name cu")
    assert "usage" in run(sh, "%ddb_check --workload --ops 0").out
    run(sh, "%ddb stop --name cu")


LC_OPTIONS = {"storage": "memory"}


@pytest.fixture(scope="module")
def live(lc):
    sh = shell()
    run(sh, "%ddb attach " + " ".join(lc.client_addresses()) + " --name lchk")
    yield sh
    run(sh, "%ddb stop --name lchk")


def test_live_session_history_and_workload_are_checked(live):
    run(live, "%%ddb\nCREATE TABLE IF NOT EXISTS reg(k TEXT PRIMARY KEY, v TEXT)")
    run(live, "%%ddb\nINSERT OR REPLACE INTO reg(k, v) VALUES ('s', 'live')")
    run(live, "%%ddb --level linearizable\nSELECT v FROM reg WHERE k = 's'")
    view = run(live, "%ddb_check").value
    assert view.ok and [o.output for o in view.ops if o.kind == "read"] == ["live"]
    wl = run(live, "%ddb_check --workload --ops 16 --clients 2").value
    assert isinstance(wl, CheckView), run(live, "%ddb_check --workload").out
    assert wl.ok and len(wl.ops) == 16 and {o.client for o in wl.ops} == {1, 2}
