"""The whole request path, simulated (issue 11, item 4): SQL clients send real request frames
to Replicas -- writes with sessions and retries after timeouts, reads at none / weak /
linearizable / strong from any node, forwarding from followers, leader changes mid-request
-- under the random fault schedule. After every step: the core's invariants, a session's
write applied once, weak reads only on the leader and never beyond the cluster's commit,
none reads at the node's own applied index, replies only for committed entries. At the
end: identical registers and sessions on every member, and a linearizable history.

Default run: DDB_SIM_REQUEST_SEEDS seeds (300) over DDB_SIM_WORKERS processes (2).
Soak:        pytest -m soak tests/test_sim_requests.py  (DDB_SIM_REQUEST_SOAK_SEEDS, 3000)
Replay:      ddb sim --requests --seed N
"""
from __future__ import annotations

import os

import pytest

from tests.sim_seeds import chunks, failed_reports, run_first, soak_requested

from ddb_node.protocol import ClientRequest, statement
from ddb_node.sim.request_runner import _sql_state_machine, run_requests
from ddb_node.sim.simulator import Simulator

SEEDS = int(os.environ.get("DDB_SIM_REQUEST_SEEDS", "300"))
SOAK_SEEDS = int(os.environ.get("DDB_SIM_REQUEST_SOAK_SEEDS", "3000"))


def _one(seed: int):
    r = run_requests(seed)
    return seed, r.ok, r.report(), r.linearizability, r.ops


@pytest.fixture(scope="module")
def default_results():
    return run_first(_one, SEEDS)


@pytest.mark.parametrize("seeds", chunks(SEEDS, 25), ids=lambda s: f"seeds{s[0]}-{s[-1]}")
def test_request_path_random_seeds(default_results, seeds):
    failed = failed_reports(default_results, seeds)
    assert not failed, "\n\n".join(failed)


def test_request_path_runs_exercise_every_level_and_retry(default_results):
    """The runs are not vacuous: all four levels served, writes retried, forwarding used."""
    total: dict = {}
    for _ok, _report, _lin, ops in default_results.values():
        for k, v in ops.items():
            total[k] = total.get(k, 0) + v
    for level in ("none", "weak", "linearizable"):
        assert total.get(f"served_{level}", 0) > 50, total
    assert total.get("write:ok", 0) > 1000 and total.get("cas:ok", 0) > 100, total
    unknown = [s for s, (_, _, lin, _) in default_results.items() if lin == "unknown"]
    assert len(unknown) <= max(3, len(default_results) // 50), f"linearizability unknown for {unknown}"


@pytest.mark.soak
def test_request_path_soak(request):
    if not soak_requested(request):
        pytest.skip("soak run: pytest -m soak (or DDB_SIM_SOAK=1)")
    res = run_first(_one, SOAK_SEEDS)
    failed = failed_reports(res)
    assert not failed, f"{len(failed)} of {len(res)} seeds failed:\n\n" + "\n\n".join(failed[:20])


def test_replay_command_reproduces_a_request_run():
    a = run_requests(5, steps=2000)
    b = run_requests(5, steps=2000)
    assert a.replay_command == "ddb sim --requests --seed 5 --steps 2000"
    assert (a.steps, a.virtual_ms, a.ops, a.faults) == (b.steps, b.virtual_ms, b.ops, b.faults)


# ---------------------------------------------------------------- the checks bite
def _failing_seed(monkeypatch, what: str, seeds=range(1, 25)) -> str:
    for seed in seeds:
        r = run_requests(seed, steps=3000)
        if not r.ok:
            return r.report()
    pytest.fail(f"no seed caught the broken {what}")


def test_a_broken_session_table_is_caught(monkeypatch):
    """Sessions forgotten (every retry applied again) -> 'session exactly-once'."""
    from ddb_node.sql.sessions import Sessions
    monkeypatch.setattr(Sessions, "check", lambda self, index, client, seq: None)
    report = _failing_seed(monkeypatch, "session table")
    assert "session exactly-once" in report and "ddb sim --requests --seed" in report


def test_weak_reads_served_by_a_follower_are_caught(monkeypatch):
    """A follower answering `weak` from its own state -> 'weak read newer than the leader'."""
    from ddb_node.replica.requests import Requests
    monkeypatch.setattr(Requests, "_forward_or_redirect",
                        lambda self, token, body: self._serve_local(token, body))

    def serve_local(self, token, body):
        req = ClientRequest.from_wire(body)
        from ddb_node.sql import Request
        sreq = Request(statements=req.statements, level=req.level)
        if self.r.app.classify(sreq).kind == "read":
            return self._serve_read(token, req, sreq, "weak", self.r.app.applied_index, self.r.clock())
        from ddb_node.protocol import no_leader
        raise no_leader()
    monkeypatch.setattr(Requests, "_serve_local", serve_local, raising=False)
    report = _failing_seed(monkeypatch, "weak read")
    assert "weak read newer than the leader" in report


def test_replies_before_commit_are_caught(monkeypatch):
    """A leader acknowledging a write as soon as it is appended -> 'reply for an uncommitted
    entry'."""
    from ddb_node.replica.replica import Replica
    from ddb_node.sql import EntryResult
    real = Replica.propose

    def eager(self, data, on_done):
        idx = real(self, data, on_done)
        on_done("ok", EntryResult(idx, []), None)
        return idx
    monkeypatch.setattr(Replica, "propose", eager)
    report = _failing_seed(monkeypatch, "early reply")
    assert "reply for an uncommitted entry" in report


# ---------------------------------------------------------------- scenarios, by hand
def _sim(seed=1):
    sim = Simulator(3, seed, sm_factory=_sql_state_machine)
    assert sim.run_until(lambda s: s.leader() is not None)
    return sim


def _ask(sim, node, body, ms=3000):
    box = {}
    end = sim.now + ms
    sim.request(node, body, lambda reply: box.update(reply=reply))
    sim.run_until(lambda s: "reply" in box or s.now > end, max_steps=200_000)
    assert "reply" in box, "no answer"
    return box["reply"]


def test_a_follower_forwards_a_write_to_the_leader_through_the_network():
    sim = _sim()
    lid = sim.leader()
    follower = next(i for i in sim.nodes if i != lid)
    r = _ask(sim, follower, ClientRequest([statement("CREATE TABLE t(x)")]).to_wire())
    assert r["ok"] and r["forwarded_by"] == follower and r["node"] == lid
    r = _ask(sim, follower, ClientRequest([statement("SELECT count(*) FROM t")],
                                          level="linearizable").to_wire())
    assert r["ok"] and r["node"] == follower and r["results"][0]["values"] == [[0]]


def test_a_retried_write_with_its_session_applies_once():
    """Raft diss. 6.3: the second copy of a session's write returns the first's result."""
    sim = _sim()
    lid = sim.leader()
    _ask(sim, lid, ClientRequest([statement("CREATE TABLE t(x)")]).to_wire())
    body = ClientRequest([statement("INSERT INTO t VALUES (1)")], session=("c", 1)).to_wire()
    first = _ask(sim, lid, body)
    again = _ask(sim, lid, body)
    assert first["ok"] and again["ok"] and again.get("duplicate") and again["index"] != first["index"]
    n = _ask(sim, lid, ClientRequest([statement("SELECT count(*) FROM t")]).to_wire())
    assert n["results"][0]["values"] == [[1]]


def test_a_minority_leader_answers_timeout_at_its_deadline():
    """Writes to a leader cut off from its majority are never acknowledged; the Replica's
    deadline (injected virtual time) answers Timeout with 'outcome unknown'."""
    sim = _sim()
    lid = sim.leader()
    sim.isolate(lid)
    r = _ask(sim, lid, ClientRequest([statement("CREATE TABLE t(x)")], timeout=0.5).to_wire())
    assert not r["ok"] and r["error"]["type"] == "Timeout" and "unknown" in r["error"]["message"]


def test_a_bad_statement_carries_its_position_as_a_field():
    sim = _sim()
    r = _ask(sim, sim.leader(), ClientRequest([statement("SELECT 1"), statement("SELEC x")]).to_wire())
    assert not r["ok"] and r["error"]["statement"] == 1 and "syntax error" in r["error"]["detail"]


def test_nodes_with_after_term_waits_for_a_newer_leader():
    """The long poll a client uses after losing its leader: answered as soon as this node
    knows a leader of a later term, or with what it knows at the deadline."""
    sim = _sim()
    lid = sim.leader()
    term = sim.nodes[lid].raft.term
    follower = next(i for i in sim.nodes if i != lid)
    box = {}
    sim.request(follower, {"op": "nodes", "after_term": term, "timeout": 5.0},
                lambda reply: box.update(reply=reply))
    sim.run_for(200)
    assert "reply" not in box               # nothing newer yet: the poll waits
    sim.crash(lid)
    assert sim.run_until(lambda s: "reply" in box, max_steps=200_000)
    assert box["reply"]["term"] > term and box["reply"]["leader"] not in (0, lid)
    quiet = _ask(sim, follower, {"op": "nodes", "after_term": box["reply"]["term"], "timeout": 0.3})
    assert quiet["ok"] and quiet["term"] == box["reply"]["term"]    # the deadline answers
