"""Read-your-writes and a transaction's read point on simulated Replicas (virtual time): a
follower that has not applied the index waits for it, and answers once it has."""
from __future__ import annotations

from ddb_node.protocol import ClientRequest, statement
from ddb_node.sim.request_runner import _sql_state_machine
from ddb_node.sim.simulator import Simulator


def _sim(seed=3):
    sim = Simulator(3, seed, sm_factory=_sql_state_machine)
    assert sim.run_until(lambda s: s.leader() is not None)
    return sim


def _send(sim, node, body):
    box = {}
    sim.request(node, body, lambda reply: box.update(reply=reply))
    return box


def _run(sim, box, ms):
    end = sim.now + ms
    sim.run_until(lambda s: "reply" in box or s.now > end, max_steps=200_000)
    return box.get("reply")


def _lagging_follower_after_a_write(sim):
    lid = sim.leader()
    assert _run(sim, _send(sim, lid, ClientRequest([statement("CREATE TABLE t(x)")]).to_wire()), 2000)["ok"]
    follower = next(i for i in sim.nodes if i != lid)
    sim.isolate(follower)
    w = _run(sim, _send(sim, lid, ClientRequest([statement("INSERT INTO t VALUES (7)")],
                                                 session=("c", 1)).to_wire()), 2000)
    assert w["ok"] and sim.nodes[follower].sm.applied_index < w["index"]
    return follower, w["index"]


def test_a_min_index_read_waits_on_the_follower_until_it_applied_the_write():
    sim = _sim()
    follower, index = _lagging_follower_after_a_write(sim)
    box = _send(sim, follower, ClientRequest([statement("SELECT x FROM t")], level="none",
                                             min_index=index, timeout=5.0).to_wire())
    assert _run(sim, box, 500) is None                 # no stale answer: it waits
    sim.heal()
    r = _run(sim, box, 3000)
    assert r["ok"] and r["node"] == follower and r["index"] >= index
    assert r["results"][0]["values"] == [[7]]


def test_a_transaction_statement_waits_for_its_read_point():
    sim = _sim()
    follower, index = _lagging_follower_after_a_write(sim)
    box = _send(sim, follower, {"op": "tx", "begin": index, "writes": [],
                                "statements": [statement("SELECT x FROM t")], "read_only": True,
                                "timeout": 5.0})
    assert _run(sim, box, 500) is None
    sim.heal()
    r = _run(sim, box, 3000)
    assert r["ok"] and r["results"][0]["values"] == [[7]] and r["tables"] == ["t"]


def test_a_min_index_read_times_out_when_the_index_never_arrives():
    sim = _sim()
    follower, index = _lagging_follower_after_a_write(sim)
    r = _run(sim, _send(sim, follower, ClientRequest([statement("SELECT x FROM t")], level="none",
                                                      min_index=index, timeout=0.3).to_wire()), 2000)
    assert not r["ok"] and r["error"]["type"] == "Timeout" and "min_index" in r["error"]["message"]
