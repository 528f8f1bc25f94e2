"""The protocol views: `%ddb_sequence` (a Lamport diagram of the recent messages) and
`%ddb log` (every node's log side by side), on a simulated cluster and on real processes."""
from __future__ import annotations

import re

import pytest

from ddb_magic import magics_of
from ddb_magic.log_grid import LogGrid
from ddb_magic.sequence import Sequence

from tests.magic_helpers import run, shell


def _sim(sh, name, seed, n=3):
    run(sh, f"%ddb launch --sim -n {n} --seed {seed} --name {name}")
    b = magics_of(sh).clusters[name]
    b.sim.trace = []          # the simulator's own record of every event, to compare with
    return b


def _peer_records(b, kind):
    """(src, dst) of the simulator's own trace records of one kind between nodes."""
    return [(r[2], r[3]) for r in b.sim.trace if r[0] == kind and r[2] in b.sim.nodes
            and r[3] in b.sim.nodes]


# ================================================================ %ddb_sequence, simulated
def test_sequence_has_one_lifeline_per_node_and_one_arrow_per_delivered_message():
    sh = shell()
    b = _sim(sh, "seq", seed=1, n=4)
    run(sh, "%ddb_run_until leader")
    run(sh, "%%ddb\nCREATE TABLE t(x)")
    seq = run(sh, "%ddb_sequence --last 100000").value
    assert isinstance(seq, Sequence)
    svg = seq.svg()
    assert re.findall(r'class="lifeline" data-node="(\d+)"', svg) == ["1", "2", "3", "4"]
    delivered = _peer_records(b, "deliver")
    assert delivered, "the election and the write exchanged messages"
    assert svg.count('class="msg delivered"') == len(delivered)
    assert sorted((a.src, a.dst) for a in seq.arrows if a.fate == "delivered") == sorted(delivered)
    # every role change and commit is on its node's lifeline
    assert svg.count('class="mark role"') >= 2          # a candidate, then a leader
    assert 'class="mark commit"' in svg
    assert seq.window(nodes=[1, 2]).nodes == [1, 2]
    run(sh, "%ddb stop --name seq")


def test_dropped_messages_are_crossed_and_delayed_ones_dashed():
    sh = shell()
    b = _sim(sh, "seqf", seed=2)
    run(sh, "%ddb_run_until leader")
    run(sh, "%ddb_drop 40%")
    run(sh, "%ddb_tick 30")
    run(sh, "%ddb_heal")
    run(sh, "%ddb_delay 20")
    run(sh, "%ddb_tick 10")
    seq = run(sh, "%ddb_sequence --last 100000").value
    svg = seq.svg()
    dropped = _peer_records(b, "drop")
    assert dropped
    assert svg.count('class="msg dropped"') == len(dropped)
    assert svg.count('class="cross"') >= len(dropped)
    delayed = [a for a in seq.arrows if a.delayed]
    assert delayed and all(a.sent >= b.sim.now - 10 * b.sim.tick_ms - 1e-6 for a in delayed)
    assert 'stroke-dasharray="5 3"' in svg
    text = repr(run(sh, "%ddb_sequence --last 5 --node 1,2").value)
    assert "between n1, n2" in text and "n3" not in text.split("\n", 1)[1]
    run(sh, "%ddb stop --name seqf")


def test_sequence_is_the_same_for_the_same_seed():
    sh = shell()
    texts = []
    for _ in range(2):
        _sim(sh, "same", seed=5)
        run(sh, "%ddb_run_until leader")
        texts.append(repr(run(sh, "%ddb_sequence --last 30").value))
    assert texts[0] == texts[1]
    assert "VOTE" in texts[0] and "leader (term" in texts[0]
    run(sh, "%ddb stop --name same")


# ================================================================ %ddb log, simulated
def test_log_grid_marks_commit_applied_down_nodes_and_conflicts():
    sh = shell()
    b = _sim(sh, "lg", seed=3)
    run(sh, "%%ddb\nCREATE TABLE t(x)")
    old = b.leader()
    run(sh, f"%ddb_partition --isolate {old}")
    r = run(sh, f"%%ddb --no-wait --node {old}\nINSERT INTO t VALUES ('lost')")
    assert "proposed at index 3" in r.out, r.out
    run(sh, f"%ddb wait leader --not {old}")
    new = b.leader()
    run(sh, f"%%ddb --node {new}\nINSERT INTO t VALUES ('kept')")
    grid = run(sh, "%ddb log 5").value
    assert isinstance(grid, LogGrid)
    # the isolated old leader's entry at index 3 (term 1) is what the new leader overwrites
    assert grid.conflicts() == [(old, 3)]
    html = grid._repr_html_()
    assert len(re.findall(r'<th class="node"', html)) == 3
    assert re.search(rf'class="entry conflict" data-node="{old}" data-index="3" data-term="1"', html) \
        or re.search(rf'class="entry[^"]*conflict[^"]*" data-node="{old}" data-index="3"', html)
    assert f'class="entry committed applied" data-node="{new}" data-index="4"' in html
    text = repr(grid)
    assert "CREATE TABLE t(x)" in text and "(no-op)" in text
    other = next(i for i in (1, 2, 3) if i not in (old, new))
    run(sh, f"%ddb_kill {other}")
    assert f"n{other} down" in repr(run(sh, "%ddb log").value)
    run(sh, "%ddb stop --name lg")


def test_log_grid_shows_a_compacted_prefix_as_a_snapshot_block():
    sh = shell()
    b = _sim(sh, "snap", seed=4)
    run(sh, "%%ddb\nCREATE TABLE t(x);\nINSERT INTO t VALUES (1)")
    for k in range(4):
        run(sh, f"%%ddb\nINSERT INTO t VALUES ({k})")
    run(sh, "%ddb_run_until quiet")
    lid = b.leader()
    assert b.sim.compact(lid, keep=2)
    grid = run(sh, "%ddb log 20").value
    snap = grid.views[lid]["snapshot"]
    assert snap["index"] > 0
    html = grid._repr_html_()
    assert html.count('class="snapshot"') == 1
    assert f"snapshot \u2264 {snap['index']}" in html
    assert f"n{lid}: snapshot up to {snap['index']}" in repr(grid)
    run(sh, "%ddb stop --name snap")


def test_log_and_sequence_usage_errors_are_one_line():
    sh = shell()
    _sim(sh, "u", seed=1)
    assert "usage" in run(sh, "%ddb log 0").out
    assert "usage" in run(sh, "%ddb_sequence --last x").out
    run(sh, "%ddb stop --name u")


# ================================================================ live cluster
LC_OPTIONS = {"storage": "memory"}


@pytest.fixture(scope="module")
def live(lc):
    sh = shell()
    r = run(sh, "%ddb attach " + " ".join(lc.client_addresses()) + " --name live")
    assert "attached 'live'" in r.out, r.out
    run(sh, "%%ddb --name live\nCREATE TABLE IF NOT EXISTS pv(x)")
    yield sh
    run(sh, "%ddb stop --name live")


def test_live_log_grid_has_every_node_and_the_same_committed_entries(live):
    run(live, "%%ddb\nINSERT INTO pv VALUES (1)")
    grid = run(live, "%ddb log 4").value
    assert isinstance(grid, LogGrid), run(live, "%ddb log 4").out
    assert sorted(grid.views) == [1, 2, 3] and all(grid.views.values())
    leader = grid.leader
    lv = grid.views[leader]
    last = lv["entries"][-1]
    assert last["what"] == "INSERT INTO pv VALUES (1)"
    assert grid.conflicts() == []


def test_live_sequence_pairs_sends_with_receipts(live):
    run(live, "%%ddb\nINSERT INTO pv VALUES (2)")
    seq = run(live, "%ddb_sequence --last 60").value
    assert isinstance(seq, Sequence), run(live, "%ddb_sequence").out
    svg = seq.svg()
    assert re.findall(r'class="lifeline" data-node="(\d+)"', svg) == ["1", "2", "3"]
    delivered = [a for a in seq.arrows if a.fate == "delivered"]
    assert delivered and all(a.arrived >= a.sent for a in delivered)
    assert {a.kind for a in seq.arrows} & {"APP", "HEARTBEAT", "APP_RESP", "HEARTBEAT_RESP"}



def test_live_sequence_draws_fault_dropped_messages_crossed(live):
    leader = magics_of(live).clusters["live"].leader()
    other = 1 if leader != 1 else 2          # followers do not talk to each other: cut a leader link
    run(live, f"%ddb_drop 100% --link {leader}-{other}")
    try:
        run(live, "%%ddb\nINSERT INTO pv VALUES (3)")
        run(live, "%ddb wait commit")
        seq = run(live, f"%ddb_sequence --last 200 --node {leader},{other}").value
    finally:
        run(live, "%ddb_heal")
    dropped = [a for a in seq.arrows if a.fate == "dropped"]
    assert dropped, repr(seq)
    assert seq.svg().count('class="cross"') >= len(dropped)


def test_live_log_grid_shows_a_snapshotted_prefix(live, lc):
    for k in range(3):
        run(live, f"%%ddb\nINSERT INTO pv VALUES ({10 + k})")
    b = magics_of(live).clusters["live"]
    leader = b.leader()
    b.client.admin(leader, {"op": "snapshot", "trailing": 0})     # compact the whole log
    grid = run(live, "%ddb log 30").value
    snap = grid.views[leader]["snapshot"]
    assert snap["index"] > 0 and snap["term"] > 0, grid.views[leader]
    assert grid.views[leader]["first_index"] == snap["index"] + 1
    assert grid._repr_html_().count('class="snapshot"') >= 1
