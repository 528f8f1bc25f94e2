"""A node's recent peer messages, role changes and commits: a bounded ring served by the
`trace` operation, from which `%ddb_sequence` draws a live cluster's sequence diagram.

Each record is a small dict stamped with wall-clock seconds (`time.time()`): on one machine
the nodes' stamps are comparable, which is what a diagram of a launched cluster needs. A
message is recorded where its node sees it: `send` at the sender (after the fault filter let
it out), `recv` at the receiver, `drop` where the fault filter dropped it (either side).
"""
from __future__ import annotations

import time
from collections import deque

from ddb_node.raft.types import MsgType

MAX_RECORDS = 2000


class _Fields:
    """The recorded fields of a message, read like the message by `message_fields`."""
    __slots__ = ("type", "frm", "to", "term", "index", "entries", "commit", "reject")

    def __init__(self, type_, frm, to, term, index, n, commit, reject):
        self.type, self.frm, self.to, self.term, self.index = type_, frm, to, term, index
        self.entries, self.commit, self.reject = range(n), commit, reject


def message_fields(m) -> dict:
    try:
        kind = MsgType(m.type).name
    except ValueError:
        kind = str(m.type)
    d = {"type": kind, "from": m.frm, "to": m.to, "term": m.term}
    if m.type in (MsgType.APP, MsgType.APP_RESP, MsgType.SNAP, MsgType.SNAP_RESP):
        d["index"] = m.index
    if m.type == MsgType.APP:
        d["n"] = len(m.entries)
        d["commit"] = m.commit
    if m.reject:
        d["reject"] = True
    return d


class PeerTrace:
    """Recording is on the peer-message path, so it keeps a tuple per message (no enum, no
    dict) and makes the records only when asked."""

    def __init__(self, node, maxlen: int = MAX_RECORDS, clock=time.time):
        self.node = node
        self.clock = clock
        self.records: deque = deque(maxlen=maxlen)
        self.seq = 0
        self.commit = 0

    def attach(self, transport) -> None:
        transport.observers.append(self.on_message)
        self.node.observers.append(self.on_event)

    def on_message(self, what: str, m) -> None:
        self.seq += 1
        # the fields, not the message: a kept message would pin its entries / snapshot chunk
        self.records.append((self.seq, self.clock(), what,
                             (m.type, m.frm, m.to, m.term, m.index, len(m.entries), m.commit,
                              m.reject)))
        try:
            commit = self.node.raft.commit_index
        except Exception:      # noqa: BLE001  no replica yet / closing
            return
        if commit > self.commit:
            self.commit = commit
            self.seq += 1
            self.records.append((self.seq, self.clock(), "commit",
                                 {"index": commit, "term": self.node.raft.term}))

    def on_event(self, ev: dict) -> None:
        if ev.get("kind") == "role":
            self.seq += 1
            self.records.append((self.seq, self.clock(), "role",
                                 {"role": ev.get("role"), "term": ev.get("term")}))

    @staticmethod
    def _record(item) -> dict:
        seq, t, kind, what = item
        rec = dict(what) if isinstance(what, dict) else message_fields(_Fields(*what))
        rec.update(kind=kind, seq=seq, t=t)
        return rec

    def answer(self, body: dict) -> dict:
        last = body.get("last", 200)
        if not isinstance(last, int) or isinstance(last, bool) or last < 1:
            last = 200
        recs = [self._record(x) for x in list(self.records)[-min(last, MAX_RECORDS):]]
        return {"ok": True, "node": self.node.id, "now": self.clock(), "trace": recs}
