"""Change data capture in the simulator: every replica records the same change log (equal
digests), through a crash, a snapshot install and leader changes; the `changes` operation
answers from any node. (Every seed of test_sim_requests.py checks the digests too.)"""
from __future__ import annotations

from ddb_node.protocol import ClientRequest, statement
from ddb_node.sim.simulator import Simulator
from ddb_node.sql import StateMachine


def _sim(seed: int) -> Simulator:
    return Simulator(3, seed, sm_factory=lambda: StateMachine(":memory:"))


def _call(sim: Simulator, body: dict, node=None, budget_ms: float = 5_000.0) -> dict:
    """Send `body` (to the leader by default) until a node answers it ok, on virtual time."""
    end = sim.now + budget_ms
    box: dict = {}
    while sim.now < end:
        if "reply" in box and box["reply"].get("ok"):
            return box["reply"]
        if not box.get("sent") or "reply" in box:
            target = node if node is not None else sim.leader()
            if target is not None and sim.nodes[target].alive:
                box.clear()
                box["sent"] = True
                sim.request(target, body, lambda reply: box.update(reply=reply))
        if sim.step() is None:
            break
    raise AssertionError(f"no ok answer to {body} within {budget_ms} ms of virtual time: {box}")


def _write(sim, sql, seq, *params):
    body = ClientRequest([statement(sql, list(params) or None)], session=("w", seq),
                         timeout=1.0).to_wire()
    return _call(sim, body)


def _converged(sim) -> bool:
    alive = [n for n in sim.nodes.values() if n.alive]
    lid = sim.leader()
    return lid is not None and len({n.sm.applied_index for n in alive}) == 1 and \
        alive[0].sm.applied_index >= sim.nodes[lid].raft.commit_index


def test_every_simulated_replica_records_the_same_change_log():
    sim = _sim(11)
    sim.run_until(lambda s: s.leader() is not None)
    _write(sim, "CREATE TABLE acct(id INTEGER PRIMARY KEY, bal INTEGER)", 1)
    seq = 1
    victim = None
    for i in range(1, 41):
        seq += 1
        if i % 3 == 0:
            _write(sim, "UPDATE acct SET bal = bal + 1 WHERE id = ?", seq, i - 1)
        elif i % 7 == 0:
            _write(sim, "DELETE FROM acct WHERE id = ?", seq, i - 2)
        else:
            _write(sim, "INSERT INTO acct(id, bal) VALUES (?, 0)", seq, i)
        if i == 12:
            victim = next(n for n in sim.nodes if n != sim.leader())
            sim.crash(victim)
        if i == 25:
            assert sim.compact(sim.leader(), keep=0)      # the victim needs a snapshot now
            sim.restart(victim)
        if i == 32:
            sim.crash(sim.leader())                      # and a new leader takes over
    for i, n in sim.nodes.items():
        if not n.alive:
            sim.restart(i)
    assert sim.run_until(_converged, max_steps=200_000)
    digests = {i: n.sm.changes.digest() for i, n in sim.nodes.items()}
    assert len(set(digests.values())) == 1, digests
    counts = {i: len(n.sm.changes.read(0, n.sm.applied_index, max_entries=1000)[0])
              for i, n in sim.nodes.items()}
    assert len(set(counts.values())) == 1 and counts[victim] >= 30, counts
    assert sim.nodes[victim].replica.counters["snapshots_installed"] >= 1


def test_the_changes_operation_answers_from_any_simulated_node():
    sim = _sim(5)
    sim.run_until(lambda s: s.leader() is not None)
    _write(sim, "CREATE TABLE t(k TEXT PRIMARY KEY, v)", 1)
    _write(sim, "INSERT INTO t VALUES ('a', 1)", 2)
    _write(sim, "UPDATE t SET v = 2 WHERE k = 'a'", 3)
    assert sim.run_until(_converged, max_steps=100_000)
    for node in sim.nodes:
        reply = _call(sim, {"op": "changes", "since": 0}, node=node)
        assert [(e[2], e[3], e[5]) for e in reply["events"]] == [
            ("insert", "a", {"k": "a", "v": 1}), ("update", "a", {"k": "a", "v": 2})]
        assert reply["node"] == node


def test_a_long_poll_that_times_out_leaves_no_wait_behind():
    sim = _sim(9)
    sim.run_until(lambda s: s.leader() is not None)
    _write(sim, "CREATE TABLE t(x)", 1)
    assert sim.run_until(_converged, max_steps=100_000)
    node = next(n for n in sim.nodes if n != sim.leader())
    replica = sim.nodes[node].replica
    for _ in range(3):          # nothing is written: each poll answers empty at its deadline
        reply = _call(sim, {"op": "changes", "since": 0, "wait": 0.2}, node=node)
        assert reply["events"] == [] and reply["through"] == sim.nodes[node].sm.applied_index
    assert replica.applied_waits == []
