"""A node's `trace` ring (server/trace.py): what `%ddb_sequence` reads of a live node."""
from __future__ import annotations

from types import SimpleNamespace

from ddb_node.raft.types import Entry, Message, MsgType
from ddb_node.server.trace import MAX_RECORDS, PeerTrace


def _node():
    return SimpleNamespace(id=1, raft=SimpleNamespace(commit_index=0, term=2), observers=[])


def test_the_ring_is_bounded_and_keeps_fields_not_messages():
    node = _node()
    clock = iter(range(10_000))
    tr = PeerTrace(node, clock=lambda: float(next(clock)))
    big = Message(MsgType.APP, to=2, frm=1, term=2, index=5, commit=4,
                  entries=[Entry(2, 6, data=b"x" * 1000)])
    for _ in range(MAX_RECORDS + 500):
        tr.on_message("send", big)
    assert len(tr.records) == MAX_RECORDS
    assert all(not isinstance(r[3], Message) for r in tr.records)
    out = tr.answer({"last": 3})
    assert out["ok"] and out["node"] == 1 and len(out["trace"]) == 3
    assert out["trace"][-1] | {"t": 0, "seq": 0} == {
        "type": "APP", "from": 1, "to": 2, "term": 2, "index": 5, "n": 1, "commit": 4,
        "kind": "send", "t": 0, "seq": 0}


def test_commits_and_role_changes_are_recorded_in_order():
    node = _node()
    tr = PeerTrace(node)
    hb = Message(MsgType.HEARTBEAT, to=1, frm=2, term=2)
    tr.on_message("recv", hb)
    node.raft.commit_index = 7
    tr.on_event({"kind": "role", "role": "follower", "term": 2})
    tr.on_event({"kind": "applied"})                         # not a role change: ignored
    tr.on_message("drop", hb)
    kinds = [(r["kind"], r.get("index"), r.get("role")) for r in tr.answer({})["trace"]]
    assert kinds == [("recv", None, None), ("role", None, "follower"), ("drop", None, None),
                     ("commit", 7, None)]
    seqs = [r["seq"] for r in tr.answer({})["trace"]]
    assert seqs == sorted(seqs)
