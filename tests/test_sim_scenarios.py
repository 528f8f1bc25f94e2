"""The simulator's controls, faults and hooks, on the real Raft core."""
from __future__ import annotations

import random

import pytest

from ddb_node.raft.types import EntryType, MsgType, NotLeader, Role
from ddb_node.sim import kv
from ddb_node.sim.events import DELIVER, PERSIST, TICK
from ddb_node.sim.simulator import STAGES, Simulator
from ddb_node import cli


def _leader(sim, steps=20_000):
    assert sim.run_until(lambda s: s.leader() is not None, steps)
    return sim.leader()


def _write(sim, i, key, value, tag):
    out = {}
    sim.submit(i, kv.put(key, value, tag), lambda st, res, e: out.setdefault("status", st))
    return out


def test_step_fires_exactly_one_event_and_time_only_moves_forward():
    sim = Simulator(3, seed=2)
    kinds, last = set(), 0.0
    for _ in range(500):
        steps = sim.steps
        ev = sim.step()
        assert sim.steps == steps + 1
        assert sim.now >= last
        last = sim.now
        kinds.add(ev.kind)
    assert kinds == {TICK, DELIVER, PERSIST}


def test_step_node_fires_only_that_nodes_event():
    sim = Simulator(3, seed=2)
    _leader(sim)
    for _ in range(20):
        ev = sim.step_node(2)
        assert ev.node == 2


def test_replicated_writes_and_linearizable_reads():
    sim = Simulator(5, seed=3)
    lead = _leader(sim)
    outs = [_write(sim, lead, "k", i, f"w{i}") for i in range(10)]
    assert sim.run_until(lambda s: s.converged() and all(o for o in outs), 20_000)
    assert all(o["status"] == "ok" for o in outs)
    got = {}
    follower = next(i for i in sim.nodes if i != lead)
    sim.read(follower, lambda st, sm, idx: got.update(st=st, v=sm.read("k"), idx=idx))
    assert sim.run_until(lambda s: got, 20_000)
    assert got["st"] == "ok" and got["v"] == 9


def test_follower_refuses_proposals_with_leader_hint():
    sim = Simulator(3, seed=4)
    lead = _leader(sim)
    sim.run_until(lambda s: all(n.raft.leader_id == lead for n in s.nodes.values()), 10_000)
    follower = next(i for i in sim.nodes if i != lead)
    with pytest.raises(NotLeader) as e:
        sim.submit(follower, kv.put("a", 1, "x"))
    assert e.value.leader_hint == lead


def test_crash_loses_what_was_not_persisted():
    sim = Simulator(3, seed=5)
    lead = _leader(sim)
    sim.run_until(lambda s: s.converged(), 10_000)
    victim = next(i for i in sim.nodes if i != lead)
    before = sim.nodes[victim].storage.last_index()
    crashed = []

    def hook(s, node_id, stage, rd):  # crash the follower right before its log write
        if node_id == victim and stage == "before_persist" and rd.entries and not crashed:
            crashed.append(rd.entries[-1].index)
            s.crash(node_id)
    sim.add_ready_hook(hook)
    out = _write(sim, lead, "a", 1, "t1")
    sim.run_until(lambda s: crashed, 10_000)
    assert sim.nodes[victim].storage.last_index() == before < crashed[0]
    sim.run_until(lambda s: out, 10_000)  # the other two still commit it
    assert out["status"] == "ok"
    sim.restart(victim)
    assert sim.run_until(lambda s: s.converged(), 20_000)
    assert sim.nodes[victim].sm.read("a") == 1


def test_ready_hooks_see_every_stage_in_order_and_apply_callback():
    sim = Simulator(3, seed=6)
    seen, applied = [], []
    sim.add_ready_hook(lambda s, i, stage, rd: seen.append(stage) if i == 1 else None)
    sim.on_apply(lambda s, i, e, res: applied.append((i, e.index, e.type, res)))
    lead = _leader(sim)
    _write(sim, lead, "a", 1, "t")
    sim.run_until(lambda s: s.converged(), 10_000)
    assert set(seen) == set(STAGES)
    order = [st for st in seen if st in STAGES]
    first = order.index("before_send")
    assert order[first:first + 8] == list(STAGES)
    mine = [a for a in applied if a[0] == lead]
    assert [a[1] for a in mine] == list(range(1, len(mine) + 1))
    assert any(a[2] == EntryType.NORMAL and a[3] == {"ok": True, "v": 1, "prev": None} for a in mine)


def test_message_hook_sees_everything_and_can_drop_delay_alter():
    sim = Simulator(3, seed=7)
    lead = _leader(sim)
    seen = []

    def hook(s, env):
        seen.append(env.msg.type)
        if env.msg.type == MsgType.HEARTBEAT and env.src == lead:
            env.drop("test")  # the leader's heartbeats vanish: followers time out
    sim.add_message_hook(hook)
    term = sim.raft(lead).term
    assert sim.run_until(lambda s: any(n.raft.term > term for n in s.nodes.values()), 20_000)
    assert MsgType.HEARTBEAT in seen
    sim.message_hooks.clear()
    sim.add_message_hook(lambda s, env: env.delay(5.0))
    sim.run_until(lambda s: s.converged(), 20_000)


def test_partition_isolate_cut_and_heal():
    sim = Simulator(5, seed=8)
    lead = _leader(sim)
    sim.isolate(lead)
    others = [i for i in sim.nodes if i != lead]
    assert sim.run_until(lambda s: any(s.raft(i).role == Role.LEADER for i in others), 20_000)
    sim.heal()
    assert sim.run_until(lambda s: s.converged(), 20_000)
    lead = sim.leader()
    sim.partition([[lead, others[0]], [i for i in sim.nodes if i not in (lead, others[0])]])
    sim.run_for(1000)
    sim.heal()
    sim.cut(sim.leader(), others[1])
    sim.run_for(500)
    sim.heal()
    assert sim.run_until(lambda s: s.converged(), 20_000)
    assert not sim.violations


def test_network_rules_through_the_simulator():
    sim = Simulator(3, seed=9)
    lead = _leader(sim)
    sim.drop(rate=0.2)
    sim.delay(ms=3, jitter=4)
    sim.reorder(0.5, 20)
    sim.duplicate(0.3)
    outs = [_write(sim, lead, "a", i, f"t{i}") for i in range(5)]
    sim.run_for(3000)
    sim.clear_faults()
    assert sim.run_until(lambda s: s.converged(), 50_000)
    assert sim.net.stats.duplicated > 0 and sim.net.stats.reordered > 0 and sim.net.stats.dropped > 0
    assert all(o for o in outs)


def test_pause_and_resume():
    sim = Simulator(3, seed=10)
    lead = _leader(sim)
    sim.pause(lead)
    assert sim.run_until(lambda s: any(n.raft.role == Role.LEADER and n.id != lead
                                       for n in s.nodes.values()), 20_000)
    assert sim.nodes[lead].raft.role == Role.LEADER  # frozen, still thinks it leads
    sim.resume(lead)
    assert sim.run_until(lambda s: s.converged(), 20_000)
    assert sim.leader() != lead or sim.raft(lead).term > 1


def test_force_election_and_transfer_leadership():
    sim = Simulator(3, seed=11)
    lead = _leader(sim)
    sim.run_until(lambda s: s.converged(), 10_000)
    other = next(i for i in sim.nodes if i != lead)
    sim.transfer_leader(other)
    assert sim.run_until(lambda s: s.leader() == other, 10_000)
    third = next(i for i in sim.nodes if i not in (lead, other))
    sim.run_until(lambda s: s.converged(), 10_000)
    sim.campaign(third)
    assert sim.run_until(lambda s: s.converged(), 20_000)


def test_add_promote_and_remove_nodes_including_the_leader():
    sim = Simulator(3, seed=12)
    lead = _leader(sim)
    for i in range(20):
        _write(sim, lead, "a", i, f"t{i}")
    sim.run_until(lambda s: s.converged(), 20_000)
    sim.compact(lead)  # the newcomer must catch up by snapshot
    sim.add_node(4)
    assert sim.run_until(lambda s: 4 in s.members().learners and s.caught_up(4), 20_000)
    sim.promote(4)
    assert sim.run_until(lambda s: s.converged() and 4 in s.members().voters, 20_000)
    assert sim.nodes[4].sm.read("a") == 19
    lead = sim.leader()
    sim.remove_node(lead)
    assert sim.run_until(lambda s: s.converged() and lead not in s.members().voters, 50_000)
    assert sim.leader() != lead
    sim.retire(lead)
    assert sim.run_until(lambda s: s.converged(), 20_000)
    assert not sim.violations


def test_custom_rng_and_custom_state_machine():
    calls = []

    def rng_factory(seed, node_id, incarnation):
        calls.append((node_id, incarnation))
        return random.Random(node_id * 1000 + incarnation)

    class Counter:  # the minimal interface: no apply_noop, no read
        def __init__(self):
            self.applied_index, self.total = 0, 0

        def apply(self, index, term, data):
            self.applied_index = index
            self.total += len(data)
            return self.total

        def snapshot(self):
            return f"{self.applied_index}:{self.total}".encode()

        def restore(self, data):
            a, t = data.decode().split(":")
            self.applied_index, self.total = int(a), int(t)

    sim = Simulator(3, seed=13, rng_factory=rng_factory, sm_factory=Counter, auto_compact=(5, 0))
    lead = _leader(sim)
    for i in range(12):
        sim.submit(lead, b"xx")
    sim.run_until(lambda s: s.converged(), 20_000)
    victim = next(i for i in sim.nodes if i != lead)
    sim.crash(victim)
    sim.restart(victim)
    assert sim.run_until(lambda s: s.converged(), 20_000)
    assert {n.sm.total for n in sim.nodes.values()} == {24}
    assert (victim, 1) in calls and len(calls) == 4


def test_cli_tour_and_random(capsys):
    assert cli.main(["sim", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    for phrase in ("won the election", "partition", "became leader", "stepped down",
                   "Nothing acknowledged was lost"):
        assert phrase in out
    assert cli.main(["sim", "--random", "--seed", "2", "--steps", "2000"]) == 0
    assert "seed 2: OK" in capsys.readouterr().out
    assert cli.main(["sim", "--seed", "3", "--quiet"]) == 0


def test_invariants_catch_a_broken_cluster():
    """The checks are not vacuous: a network that turns every vote rejection into a
    grant (so two candidates can win one term) is caught within a few seeds."""
    from ddb_node.sim.clients import Workload
    from ddb_node.sim.invariants import InvariantViolation
    from ddb_node.sim.nemesis import Nemesis

    def forge(s, env):
        if env.msg.type in (MsgType.VOTE_RESP, MsgType.PRE_VOTE_RESP):
            env.msg.reject = False

    caught = set()
    for seed in range(8):
        sim = Simulator(3, seed)
        sim.add_message_hook(forge)
        wl, nem = Workload(sim, 3), Nemesis(sim, random.Random(seed))
        try:
            for _ in range(20_000):
                nem.poll()
                wl.poll()
                sim.step()
        except InvariantViolation as v:
            caught.add(v.name)
    assert caught & {"election safety", "leader completeness", "committed entries never change"}
