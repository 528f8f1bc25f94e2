"""Replica.process_ready with `write_later`: the node's driver writes a Ready's log save
off its loop (PersistJob.write on its storage thread) and keeps stepping the Replica; the
Ready's persisted messages, its apply and the next Ready wait for `persisted`."""
from __future__ import annotations

import random

from ddb_node.raft import Config, ConfState
from ddb_node.replica import Replica
from ddb_node.sql import Request, Statement, StateMachine, encode_entry
from ddb_node.storage import SqliteLogStorage


def test_a_ready_handed_to_write_later_is_finished_by_persisted_and_nothing_applies_before(tmp_path):
    storage = SqliteLogStorage(tmp_path / "raft.db", conf_state=ConfState((1,)))
    r = Replica(1, storage, StateMachine(str(tmp_path / "data.db")), config=Config(id=1),
                rng=random.Random(1), clock=lambda: 0.0, wall_ms=lambda: 0)
    jobs, sent = [], []

    def settle():
        r.process_ready(sent.append, jobs.append)
        while jobs:
            job = jobs.pop()
            assert not r.has_ready()          # one Ready outstanding: none taken meanwhile
            job.write()
            r.persisted(job, sent.append, jobs.append)

    for _ in range(40):
        r.tick()
        settle()
    assert r.is_leader
    done = []
    payload = encode_entry(Request([Statement("CREATE TABLE t(a)")]), timestamp_ms=0, seed=1)
    r.propose(payload, lambda status, er, _e: done.append(status))
    r.process_ready(sent.append, jobs.append)
    assert len(jobs) == 1 and jobs[0].background    # the entry must be fsynced: handed over
    assert not done and r.app.applied_index < storage.last_index() + 1
    r.tick()                                        # the Replica keeps taking inputs
    job = jobs.pop()
    job.write()
    assert not done                                 # written, not finished: nothing applied
    r.persisted(job, sent.append, jobs.append)
    settle()
    assert done and r.app.applied_index == storage.last_index()
    r.app.close()
    storage.close()


def test_a_failed_log_write_halts_the_replica_and_stops_the_node_before_anything_is_sent(tmp_path):
    """NodeServer._persisted: when the storage thread's write raised (a failed fsync leaves
    the file unknown), nothing of that Ready is acknowledged or applied, the Replica is
    halted and the node stops; a good write finishes the Ready and sends its messages."""
    from types import SimpleNamespace

    from ddb_node.server.lanes import Handle
    from ddb_node.server.node import NodeServer

    calls = []
    replica = SimpleNamespace(halted=False,
                              persisted=lambda job, send, later: calls.append(("persisted", job)))
    node = NodeServer.__new__(NodeServer)
    node.id = 1
    node.replica = replica
    node.transport = SimpleNamespace(send=lambda m: calls.append(("send", m)))
    node._storage_thread = None
    node._flush = lambda: calls.append(("flush",))
    node.stop = lambda: calls.append(("stop",))

    bad = Handle()
    node._persisting, node._persist_job = bad, "job"
    node._persisted("job", bad, OSError(5, "Input/output error"))
    assert replica.halted and calls == [("stop",)]
    assert node._persisting is None

    calls.clear()
    replica.halted = False
    good = Handle()
    node._persisting, node._persist_job = good, "job"
    node._persisted("job", good, None)
    assert not replica.halted and calls == [("persisted", "job"), ("flush",)]

    calls.clear()
    node._persisting = None                 # close() already finished it
    node._persisted("job", Handle(), None)
    assert calls == []
