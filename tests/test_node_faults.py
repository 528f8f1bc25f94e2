"""Fault filters driven through LocalCluster on real processes: drop rate, every-n-th drop,
delay, isolate, cut, partition and heal; the status shows what is active and the transport
counters show what was dropped."""
from __future__ import annotations

import asyncio
import time

import pytest

from ddb_node.client import AsyncClient, Client
from ddb_node.errors import DdbError

from tests.nodehelpers import (assert_replicas_identical, follower_of, node_status, wait_converged,
                          wait_until, restore_health)


@pytest.fixture(scope="module")
def c(lc):
    with lc.client(timeout=20.0) as client:
        client.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
        yield client


@pytest.fixture(autouse=True)
def _heal_after(lc, c):
    yield
    restore_health(lc)


def _faults(lc):
    return {i: s.get("faults", {}) for i, s in lc.status().items()}


def _fault_drops(c, ids):
    return {i: node_status(c, i)["transport"]["dropped_fault"] for i in ids}


def test_drop_rate_slows_but_does_not_break(lc, c):
    ids = lc.node_ids()
    d0 = _fault_drops(c, ids)
    out = lc.drop(0.3)
    assert all(v.get("drop_rate") == 0.3 for v in out.values()), out
    assert all(f["drop_rate"] == 0.3 for f in _faults(lc).values())
    for i in range(30):
        c.execute("INSERT INTO t(v) VALUES(?)", [f"drop-{i}"])
    d1 = _fault_drops(c, ids)
    assert sum(d1.values()) > sum(d0.values()), "a 30% drop rate dropped nothing"
    lc.heal()
    assert all(f["drop_rate"] == 0.0 and not f["blocked"] for f in _faults(lc).values())
    rows = assert_replicas_identical(lc, c)
    assert sum(1 for r in rows if str(r[1]).startswith("drop-")) == 30


def test_drop_every_nth(lc, c):
    out = lc.drop(0.0, every=4)
    assert all(v.get("drop_every") == 4 for v in out.values()), out
    for i in range(10):
        c.execute("INSERT INTO t(v) VALUES(?)", [f"every-{i}"])
    lc.heal()
    assert_replicas_identical(lc, c)


def test_delay_adds_latency_and_heal_removes_it(lc, c):
    def write_time():
        t0 = time.perf_counter()
        c.execute("INSERT INTO t(v) VALUES('lat')")
        return time.perf_counter() - t0

    base = min(write_time() for _ in range(3))
    # the delay stays well inside the election timeout (150-300 ms by default): Raft needs
    # message delays far below it, or elections never complete
    lc.delay(60, jitter=10)
    assert all(f["delay_ms"] == 60 for f in _faults(lc).values())
    # a commit needs leader -> follower -> leader: two delayed hops of at least 50 ms
    slow = min(write_time() for _ in range(3))
    assert slow >= 0.1, f"write took {slow:.3f}s under a 60 ms delay per hop"
    lc.heal()
    wait_until(lambda: write_time() < 0.1, 10, what="latency back to normal after heal")
    assert base < 0.1


def test_isolate_follower_then_heal(lc, c):
    leader = lc.wait_for_leader(10)
    f = follower_of(lc, leader)
    wait_converged(lc, c)
    applied_before = node_status(c, f)["applied"]
    lc.isolate(f)
    st = node_status(c, f)
    assert st["faults"]["isolated"] == f
    for i in range(10):
        c.execute("INSERT INTO t(v) VALUES(?)", [f"iso-{i}"])
    assert node_status(c, f)["applied"] == applied_before, "an isolated follower got entries"
    wait_until(lambda: leader not in node_status(c, f)["reachable"], 10,
               what="the isolated follower to stop hearing from the leader")
    assert lc.wait_for_leader(10) == leader, "isolating a follower must not move leadership"
    lc.heal()
    assert_replicas_identical(lc, c)
    # (a follower hears only from the leader in the steady state)
    wait_until(lambda: lc.wait_for_leader(5) in node_status(c, f)["reachable"], 10,
               what="the follower to hear from the leader again")


def test_isolate_leader_elects_another_and_old_one_steps_down(lc, c):
    old = lc.wait_for_leader(10)
    lc.isolate(old)
    new = lc.wait_for_leader(20, exclude=(old,))
    assert new != old
    c.execute("INSERT INTO t(v) VALUES('under-new-leader')")
    lc.heal()
    wait_until(lambda: node_status(c, old)["role"] == "follower"
               and node_status(c, old)["leader"] == new, 20, what="the old leader to step down")
    rows = assert_replicas_identical(lc, c)
    assert any(r[1] == "under-new-leader" for r in rows)


def test_cut_one_link_keeps_quorum(lc, c):
    leader = lc.wait_for_leader(10)
    f = follower_of(lc, leader)
    lc.cut(leader, f, both=True)
    assert [leader, f] in node_status(c, leader)["faults"]["blocked"]
    for i in range(5):
        c.execute("INSERT INTO t(v) VALUES(?)", [f"cut-{i}"])
    lc.heal()
    assert_replicas_identical(lc, c)


def test_partition_minority_cannot_write(lc, c):
    leader = lc.wait_for_leader(10)
    others = [i for i in lc.node_ids() if i != leader]
    lc.partition([[leader], others])
    new = lc.wait_for_leader(20, exclude=(leader,))
    assert new in others
    # straight to the cut-off node, no client retries elsewhere: it must not acknowledge
    body = {"op": "request", "statements": [["INSERT INTO t(v) VALUES('minority-write')"]],
            "level": "weak", "timeout": 1.5, "session": ["minority", 1]}
    with lc.client(timeout=2.0) as mc:
        reply = mc.call(lc.nodes[leader].client_addr, body, 3.0)
    assert not reply.get("ok") and reply["error"]["type"] in ("Timeout", "NoLeader"), reply
    # a client that knows every node finds the majority's leader, even asked old-leader-first
    addrs = [lc.nodes[i].client_addr for i in [leader, *others]]
    with Client(addrs, timeout=10.0) as fc:
        assert fc.refresh()["leader"] == new
        fc.execute("INSERT INTO t(v) VALUES('majority-write')")

    async def async_write():      # the asyncio client too: short attempts, then the majority
        async with AsyncClient(addrs, timeout=10.0) as ac:
            ac._leader = leader
            ac.members = {leader: lc.nodes[leader].client_addr}
            await ac.execute("INSERT INTO t(v) VALUES('majority-write-async')")
    asyncio.run(async_write())
    lc.heal()
    lc.wait_for_leader(20)
    rows = assert_replicas_identical(lc, c)
    # the minority write timed out: it may never have committed (it was not acknowledged),
    # and in this scenario it cannot have, as the old leader's entry is overwritten
    assert not any(r[1] == "minority-write" for r in rows)
    assert any(r[1] == "majority-write" for r in rows)
    assert any(r[1] == "majority-write-async" for r in rows)


def test_bad_fault_commands_are_rejected(lc, c):
    leader = lc.wait_for_leader(10)
    for cmd in ({"action": "drop", "rate": 2}, {"action": "explode"},
                {"action": "partition", "groups": [[1]]}, {"action": "delay", "ms": -5},
                {"action": "cut", "a": "x", "b": 2}):
        with pytest.raises(DdbError):
            c.admin(leader, {"op": "faults", "cmd": cmd})
    assert not any(f.get("drop_rate") for f in _faults(lc).values())
