"""Core bugs found by the simulator, as minimal reproductions (regression tests once
fixed; an unfixed one is marked xfail(strict=False) with the symptom as its reason).

Found: a node joining with empty storage that replays the leader's log from index 1
never learned the bootstrap voters (they lived only in the initial ConfState, not in
the log), so after ADD_LEARNER + PROMOTE it believed it was the only voter, elected
itself alone and committed alone (random seeds 1, 29, 37, 39 at 20k steps). Fixed in
the core by carrying the resulting configuration in every ConfChange entry."""
from __future__ import annotations

import pytest

from ddb_node.sim import kv
from ddb_node.sim.simulator import Simulator


def test_joining_node_learns_the_whole_configuration():
    sim = Simulator(3, seed=1)
    assert sim.run_until(lambda s: s.leader() is not None, 10_000)
    for i in range(3):
        sim.propose(kv.put("k", i, f"op{i}"))
    assert sim.run_until(lambda s: s.converged(), 10_000)
    sim.add_node(4)  # no compaction happened: n4 gets the log from index 1
    assert sim.run_until(lambda s: 4 in s.members().learners and s.caught_up(4), 10_000)
    sim.run_until(lambda s: s.converged(), 10_000)
    assert sim.nodes[4].raft.conf_state == sim.members()  # fails: voters=() learners=(4,)


def test_promoted_node_cannot_win_alone():
    sim = Simulator(3, seed=1)
    sim.run_until(lambda s: s.leader() is not None, 10_000)
    sim.propose(kv.put("k", 0, "op0"))
    sim.run_until(lambda s: s.converged(), 10_000)
    sim.add_node(4)
    sim.run_until(lambda s: 4 in s.members().learners and s.caught_up(4) and s.converged(), 10_000)
    sim.promote(4)
    sim.run_until(lambda s: 4 in s.members().voters and s.converged(), 10_000)
    sim.isolate(4)
    sim.run_for(1000)
    # n4 alone is 1 of 4 voters: it must never become leader on its own
    assert sim.nodes[4].raft.role != 3, "isolated n4 elected itself (believes voters=(4,))"
