"""Unit tests of the simulator's pieces that need no Raft core: event queue, network
fault model, KV state machine, linearizability checker, invariant checks."""
from __future__ import annotations

import math
import random
from types import SimpleNamespace

import pytest

from ddb_node.raft.types import Entry, HardState, Message, MsgType, Role
from ddb_node.sim import kv
from ddb_node.sim.events import DELIVER, TICK, EventQueue
from ddb_node.sim.history import FAIL, INFO, OK, History
from ddb_node.sim.invariants import InvariantChecker, InvariantViolation
from ddb_node.sim.linearizability import LINEARIZABLE, UNKNOWN, VIOLATION, check_kv, check_register
from ddb_node.sim.network import Network


# ---------------------------------------------------------------- event queue
def test_event_queue_orders_by_time_then_schedule_order():
    q = EventQueue()
    q.schedule(2.0, TICK, 1)
    a = q.schedule(1.0, TICK, 2)
    b = q.schedule(1.0, DELIVER, 3)
    c = q.schedule(0.5, TICK, 4)
    q.cancel(c)
    assert len(q) == 3
    assert [q.pop().node for _ in range(3)] == [2, 3, 1]
    assert q.pop() is None and (a.seq < b.seq)


def test_event_queue_take_one_node():
    q = EventQueue()
    q.schedule(1.0, TICK, 1)
    q.schedule(2.0, TICK, 2)
    q.schedule(3.0, DELIVER, 2)
    ev = q.take(lambda e: e.node == 2)
    assert ev.time == 2.0 and len(q) == 2
    assert q.pop().node == 1 and q.pop().kind == DELIVER


# ---------------------------------------------------------------- network
def _msg(frm, to, t=MsgType.APP):
    return Message(t, to, frm, 1)


def _net(**kw):
    return Network(random.Random(1), (1.0, 1.0), 10.0, **kw)


def test_partition_isolate_cut_heal():
    net = _net()
    net.partition([[1, 2], [3]])
    assert net.reachable(1, 2) and not net.reachable(1, 3) and not net.reachable(3, 2)
    net.partition([[1], [2]])  # 3 is named nowhere: its own implicit group with other unnamed nodes
    assert not net.reachable(1, 3) and not net.reachable(2, 3)
    net.heal()
    net.isolate(2)
    assert not net.reachable(1, 2) and not net.reachable(2, 3) and net.reachable(1, 3)
    net.heal()
    net.cut(1, 2)
    assert not net.reachable(1, 2) and net.reachable(2, 1)
    net.cut(1, 3, both=True)
    assert not net.reachable(3, 1)
    net.heal()
    assert net.describe() == "healthy"


def test_route_drop_rules():
    net = _net()
    net.drop(every=3)
    fates = [net.route(_msg(1, 2), 0.0)[0].dropped for _ in range(9)]
    assert fates == [False, False, True] * 3
    net.clear()
    net.drop_next(link=(1, 2), type=MsgType.HEARTBEAT)
    assert not net.route(_msg(1, 2), 0)[0].dropped
    assert not net.route(_msg(2, 1, MsgType.HEARTBEAT), 0)[0].dropped
    assert net.route(_msg(1, 2, MsgType.HEARTBEAT), 0)[0].dropped
    assert not net.route(_msg(1, 2, MsgType.HEARTBEAT), 0)[0].dropped  # only one
    net.clear()
    net.drop(rate=0.5)
    dropped = sum(net.route(_msg(1, 2), 0)[0].dropped for _ in range(2000))
    assert 850 < dropped < 1150


def test_route_delay_reorder_duplicate():
    net = _net()
    net.delay(ms=5, jitter=0, link=(1, 2))
    assert net.route(_msg(1, 2), 10.0)[0].deliver_at == 16.0
    assert net.route(_msg(2, 1), 10.0)[0].deliver_at == 11.0
    net.delay(ticks=1)
    assert net.route(_msg(2, 1), 0.0)[0].deliver_at == 11.0
    net.clear()
    net.duplicate(1.0)
    envs = net.route(_msg(1, 2), 0.0)
    assert len(envs) == 2 and envs[1].duplicate and envs[1].deliver_at >= envs[0].deliver_at
    net.clear()
    net.reorder(1.0, 50.0)
    times = [net.route(_msg(1, 2), 0.0)[0].deliver_at for _ in range(50)]
    assert times != sorted(times)


# ---------------------------------------------------------------- KV state machine
def test_kv_apply_snapshot_restore():
    sm = kv.KVStateMachine()
    assert sm.apply(1, 1, kv.put("a", 1, "o1")) == {"ok": True, "v": 1, "prev": None}
    sm.apply_noop(2, 1)
    assert sm.apply(3, 1, kv.cas("a", 1, 2, "o2"))["ok"]
    assert not sm.apply(4, 2, kv.cas("a", 1, 3, "o3"))["ok"]
    assert sm.apply(5, 2, kv.get("a", "o4"))["v"] == 2
    snap = sm.snapshot()
    other = kv.KVStateMachine()
    other.restore(snap)
    assert other.applied_index == 5 and other.read("a") == 2 and other.snapshot() == snap
    with pytest.raises(AssertionError):
        sm.apply(7, 2, kv.put("a", 1, "gap"))


# ---------------------------------------------------------------- linearizability
def _h(*ops):
    """ops: (kind, key, value/expected-new, call, ret, status, output)"""
    h = History()
    for kind, key, arg, call, ret, status, out in ops:
        if kind == "cas":
            op = h.invoke(1, kind, key, call, value=arg[1], expected=arg[0])
        else:
            op = h.invoke(1, kind, key, call, value=arg)
        h.complete(op, status, ret, out)
        if status == INFO:
            op.ret = math.inf
    return h.ops


def test_catches_stale_read():
    # write x=1 completes, then a later read still sees the initial value
    ops = _h(("write", "x", 1, 0, 1, OK, True),
             ("read", "x", None, 2, 3, OK, None))
    res = check_kv(ops)
    assert res.verdict == VIOLATION
    assert "read(x) -> None" in res.summary()


def test_catches_stale_read_after_newer_read():
    # two sequential reads go back in time: 2 then 1
    ops = _h(("write", "x", 1, 0, 1, OK, True),
             ("write", "x", 2, 2, 10, OK, True),
             ("read", "x", None, 3, 4, OK, 2),
             ("read", "x", None, 5, 6, OK, 1))
    assert check_kv(ops).verdict == VIOLATION


def test_accepts_concurrent_histories():
    # reads overlapping a write may see either value, but once one read saw the new
    # value, later reads must too
    ops = _h(("write", "x", 1, 0, 1, OK, True),
             ("write", "x", 2, 2, 10, OK, True),
             ("read", "x", None, 3, 4, OK, 1),
             ("read", "x", None, 5, 6, OK, 2),
             ("read", "x", None, 7, 12, OK, 2),
             ("write", "y", "a", 0, 5, OK, True),
             ("read", "y", None, 1, 2, OK, None))
    assert check_kv(ops).verdict == LINEARIZABLE


def test_unknown_writes_may_or_may_not_happen():
    ops = _h(("write", "x", 1, 0, 1, OK, True),
             ("write", "x", 2, 2, None, INFO, None),
             ("read", "x", None, 5, 6, OK, 1),
             ("read", "x", None, 7, 8, OK, 2))  # the unknown write landed late: fine
    assert check_kv(ops).verdict == LINEARIZABLE
    ops = _h(("write", "x", 1, 0, 1, OK, True),
             ("write", "x", 2, 2, None, FAIL, None),  # failed writes never happen
             ("read", "x", None, 7, 8, OK, 2))
    assert check_kv(ops).verdict == VIOLATION


def test_cas():
    ok = _h(("write", "x", 1, 0, 1, OK, True),
            ("cas", "x", (1, 2), 2, 3, OK, True),
            ("cas", "x", (1, 3), 4, 5, OK, False),
            ("read", "x", None, 6, 7, OK, 2))
    assert check_kv(ok).verdict == LINEARIZABLE
    bad = _h(("write", "x", 1, 0, 1, OK, True),
             ("cas", "x", (1, 2), 2, 3, OK, True),
             ("cas", "x", (1, 3), 4, 5, OK, True))  # 1 was already replaced
    assert check_kv(bad).verdict == VIOLATION


def test_search_bound_gives_unknown():
    # many concurrent writes and a read that sees none of them: refuting it needs
    # an exhaustive search, which the bound cuts short
    ops = [("write", "x", i, 0, 100, OK, True) for i in range(14)]
    ops.append(("read", "x", None, 0, 100, OK, "nope"))
    r = check_register(_h(*ops), max_states=500)
    assert r.verdict == UNKNOWN
    assert check_register(_h(*ops), max_states=10_000_000).verdict == VIOLATION


def test_large_sequential_history_is_fast():
    ops = []
    t = 0
    for i in range(2000):
        ops.append(("write", "x", i, t, t + 1, OK, True))
        ops.append(("read", "x", None, t + 2, t + 3, OK, i))
        t += 4
    assert check_kv(_h(*ops)).verdict == LINEARIZABLE


# ---------------------------------------------------------------- invariants on synthetic data
class _FakeRaft:
    def __init__(self, id, role=Role.FOLLOWER, term=1, commit=0, log=()):
        self.id, self.role, self.term, self.commit_index = id, role, term, commit
        self.terms = list(log)  # terms of entries 1..n

    @property
    def last_index(self):
        return len(self.terms)

    def log_term(self, i):
        return self.terms[i - 1] if 0 < i <= len(self.terms) else None


def _fake_sim(*rafts):
    nodes = {r.id: SimpleNamespace(id=r.id, raft=r, incarnation=0, storage=None,
                                   sm=SimpleNamespace(applied_index=0)) for r in rafts}
    sim = SimpleNamespace(nodes=nodes, steps=0, now=0.0, violations=[])
    return sim, InvariantChecker(sim)


def test_two_leaders_in_one_term():
    a, b = _FakeRaft(1, Role.LEADER, 3), _FakeRaft(2, Role.FOLLOWER, 3)
    sim, chk = _fake_sim(a, b)
    chk.after_step()
    b.role = Role.LEADER
    with pytest.raises(InvariantViolation, match="two leaders in term 3"):
        chk.after_step()


def test_commit_going_back():
    a = _FakeRaft(1, commit=2, log=[1, 1, 1])
    sim, chk = _fake_sim(a)
    chk.after_step()
    a.commit_index = 1
    with pytest.raises(InvariantViolation, match="went back"):
        chk.after_step()


def test_committed_entry_changing_and_leader_completeness():
    a = _FakeRaft(1, commit=3, log=[1, 1, 1])
    b = _FakeRaft(2, commit=0, log=[1, 2, 2])
    sim, chk = _fake_sim(a, b)
    chk.after_step()
    b.commit_index = 3
    with pytest.raises(InvariantViolation, match="committed entries never change"):
        chk.after_step()
    # a leader of a later term must hold what was committed before its term
    a = _FakeRaft(1, commit=3, term=1, log=[1, 1, 1])
    b = _FakeRaft(2, Role.LEADER, term=2, commit=0, log=[1, 1])
    sim, chk = _fake_sim(a, b)
    with pytest.raises(InvariantViolation, match="leader completeness"):
        chk.after_step()


def test_log_matching_from_messages():
    sim, chk = _fake_sim(_FakeRaft(1))
    m = Message(MsgType.APP, 2, 1, 1, log_term=0, index=0,
                entries=[Entry(1, 1, 0, b"a"), Entry(1, 2, 0, b"b")])
    chk.on_send(1, m)
    chk.on_send(1, m)  # the same again is fine
    m2 = Message(MsgType.APP, 3, 1, 1, log_term=1, index=1, entries=[Entry(1, 2, 0, b"other")])
    with pytest.raises(InvariantViolation, match="log matching"):
        chk.on_send(1, m2)


def test_state_machine_safety():
    r1, r2 = _FakeRaft(1, commit=5, log=[1] * 5), _FakeRaft(2, commit=5, log=[1] * 5)
    sim, chk = _fake_sim(r1, r2)
    n1, n2 = sim.nodes[1], sim.nodes[2]
    chk.on_apply(n1, Entry(1, 1, 0, b"x"))
    chk.on_apply(n2, Entry(1, 1, 0, b"x"))
    with pytest.raises(InvariantViolation, match="state machine safety"):
        chk.on_apply(n2, Entry(1, 3, 0, b"y"))  # a gap
    chk.applied_by[2] = 1
    with pytest.raises(InvariantViolation, match="state machine safety"):
        chk.on_apply(n2, Entry(1, 2, 0, b"y")) or chk.on_apply(n1, Entry(1, 2, 0, b"z"))


def test_durable_vote_never_changes_within_a_term():
    sim, chk = _fake_sim(_FakeRaft(1))
    node = SimpleNamespace(id=1, storage=SimpleNamespace(
        initial_state=lambda: (HardState(4, 2, 7), None)))
    chk.before_save(node, HardState(4, 2, 8), [], None)
    chk.before_save(node, HardState(5, 3, 7), [], None)
    with pytest.raises(InvariantViolation, match="voted for 3 after voting for 2"):
        chk.before_save(node, HardState(4, 3, 7), [], None)
    with pytest.raises(InvariantViolation, match="persisted commit"):
        chk.before_save(node, HardState(4, 2, 6), [], None)
