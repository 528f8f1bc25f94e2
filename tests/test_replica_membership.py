"""Joining through the Replica (rqlite's /join), simulated: the promotion of a learner that
joined as a voter is part of the replicated configuration, not one leader's memory.

Found at 10^7 rows (benchmarks/scale.py): a new node spent minutes receiving a 1.3 GB
snapshot, the leader changed meanwhile, and the node stayed a learner for good, because only
the leader that took the join knew it was to be promoted."""
from __future__ import annotations

from ddb_node.sim.simulator import Simulator


def _join(sim: Simulator, via: int, nid: int, **extra) -> dict:
    box: dict = {}
    body = {"op": "join", "node_id": nid, "peer": f"peer-{nid}", "client": f"client-{nid}",
            "timeout": 2.0, **extra}
    sim.request(via, body, lambda reply: box.setdefault("reply", reply))
    assert sim.run_until(lambda s: "reply" in box, max_steps=200_000)
    return box["reply"]


def _settle(sim: Simulator) -> int:
    assert sim.run_until(lambda s: s.leader() is not None, max_steps=200_000)
    return sim.leader()


def test_a_learner_is_promoted_by_whichever_node_leads_when_it_has_caught_up():
    sim = Simulator(3, seed=11)
    old = _settle(sim)
    sim.start_node(4)
    sim.isolate(4)                          # it cannot catch up while `old` leads
    assert _join(sim, old, 4)["ok"]
    assert 4 in sim.members(old).learners
    sim.crash(old)                          # the leader that took the join is gone
    assert sim.run_until(lambda s: s.leader() not in (None, old), max_steps=500_000)
    sim.heal()
    assert sim.run_until(lambda s: s.leader() is not None
                         and 4 in s.members().voters, max_steps=2_000_000), sim.members()
    assert 4 not in sim.members().learners


def test_a_non_voter_stays_a_learner_across_leader_changes():
    sim = Simulator(3, seed=12)
    old = _settle(sim)
    sim.start_node(4)
    assert _join(sim, old, 4, voter=False)["ok"]
    assert sim.run_until(lambda s: s.caught_up(4), max_steps=500_000)
    sim.crash(old)
    assert sim.run_until(lambda s: s.leader() not in (None, old), max_steps=500_000)
    sim.run_for(2_000)
    assert 4 in sim.members().learners and 4 not in sim.members().voters


def test_an_address_change_keeps_the_promotion_the_join_asked_for():
    sim = Simulator(3, seed=13)
    old = _settle(sim)
    sim.start_node(4)
    sim.isolate(4)
    assert _join(sim, old, 4)["ok"]
    # it comes back with other addresses (a restart on a new port): a logged address update
    assert _join(sim, old, 4, peer="peer-4b", client="client-4b")["ok"]
    assert sim.run_until(lambda s: all((n.replica.book.get(4) or {}).get("peer") == "peer-4b"
                                       for i, n in s.nodes.items() if i != 4 and n.alive),
                         max_steps=500_000)
    sim.crash(old)
    assert sim.run_until(lambda s: s.leader() not in (None, old), max_steps=500_000)
    sim.heal()
    assert sim.run_until(lambda s: s.leader() is not None
                         and 4 in s.members().voters, max_steps=2_000_000), sim.members()
