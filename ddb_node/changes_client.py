"""Reading the change log (CDC) from a client: ``Client.changes`` / ``AsyncClient.changes``.

A stream polls one node with the `changes` operation (replica/changes.py), a long poll that
answers as soon as that node applies an entry with changes after the stream's position. It
yields one `ChangeEvent` per row change, in log order. Every node records the same changes for
the same entries, so when the node goes away (killed, partitioned, removed) the stream goes
on from another member at the position it reached: no event is lost or repeated.

The position (`ChangeStream.since`) only ever advances past *whole* entries: after the last
event of an entry has been yielded, or past entries with nothing for the stream's tables.
Resume a stream with ``client.changes(since=stream.since)`` (or with the `index` of the last
event of an entry you have fully handled).
"""
from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any, Iterator

from ddb_node.errors import ChangesTruncated, ConnectionFailed, DdbError, from_reply

POLL_S = 1.0          # a long poll's wait at the node (seconds)
BACKOFF_S = 0.05      # before asking another node, after one failed


@dataclass(frozen=True, slots=True)
class ChangeEvent:
    """One row change: `op` is "insert", "update" or "delete"; `key` the row's primary key
    (a list for a composite one) or its rowid; `old` / `new` the row as {column: value}
    before / after (None for an insert / a delete). `index` is the log entry's."""
    index: int
    table: str
    op: str
    key: Any
    old: dict | None
    new: dict | None
    node: int | None = None       # the node that served it

    @classmethod
    def from_wire(cls, ev: list, node: int | None = None) -> "ChangeEvent":
        index, table, op, key, old, new = ev
        return cls(index, table, op, key, old, new, node)

    def to_dict(self) -> dict:
        return {"index": self.index, "table": self.table, "op": self.op, "key": self.key,
                "old": self.old, "new": self.new}


def changes_body(since: int, tables, wait: float, max_entries: int | None) -> dict:
    body = {"op": "changes", "since": since, "wait": wait, "timeout": wait + 5.0}
    if tables is not None:
        body["tables"] = list(tables)
    if max_entries is not None:
        body["max_entries"] = max_entries
    return body


class _Position:
    """What both streams share: the position, the node in use, the batching into events."""

    def __init__(self, since: int, tables, node: int | None, follow: bool, wait: float,
                 max_entries: int | None, timeout: float | None):
        if not isinstance(since, int) or isinstance(since, bool) or since < 0:
            raise ValueError("since must be a non-negative log index")
        if isinstance(tables, str):
            tables = [tables]
        self.since = since
        self.tables = tables
        self.node = node              # None: any member, chosen (and changed) by the stream
        self.pinned = node is not None
        self.follow = follow
        self.wait = wait if follow else 0.0
        self.max_entries = max_entries
        self.timeout = timeout        # give up after this long without a node (None: never)
        self.closed = False

    def body(self) -> dict:
        return changes_body(self.since, self.tables, self.wait, self.max_entries)

    def events(self, reply: dict) -> list[ChangeEvent]:
        if not reply.get("ok"):
            raise from_reply(reply.get("error") or {})
        node = reply.get("node")
        return [ChangeEvent.from_wire(e, node) for e in reply.get("events") or []]

    def next_node(self, members: dict, failed: int | None) -> int:
        """Another member than the one that failed (round robin by id)."""
        ids = sorted(members)
        if not ids:
            raise ConnectionFailed("no member is known to read changes from")
        if failed is None or failed not in ids:
            return ids[0]
        return ids[(ids.index(failed) + 1) % len(ids)]


class ChangeStream(_Position):
    """A blocking iterator of ChangeEvents (see the module's docstring). ``follow=False``
    stops once the node has nothing newer; otherwise it waits for new changes until
    ``close()`` (or ``break``)."""

    def __init__(self, client, since: int = 0, tables=None, *, node: int | None = None,
                 follow: bool = True, wait: float = POLL_S, max_entries: int | None = None,
                 timeout: float | None = None):
        super().__init__(since, tables, node, follow, wait, max_entries, timeout)
        self.client = client

    def __iter__(self) -> Iterator[ChangeEvent]:
        return self._run()

    def close(self) -> None:
        self.closed = True

    def _ask(self) -> dict:
        c = self.client
        if not c.members:
            c.refresh()
        if self.node is None:
            self.node = self.next_node(c.members, None)
        addr = c.members.get(self.node)
        if addr is None:
            c.refresh()
            addr = c.members.get(self.node)
            if addr is None:
                raise DdbError(f"node {self.node} is not a member")
        return c.call(addr, self.body(), self.wait + c.attempt_timeout + 1.0)

    def _run(self) -> Iterator[ChangeEvent]:
        down_since = None
        while not self.closed:
            try:
                reply = self._ask()
            except ConnectionFailed:
                # that node is gone or silent: the others have the same log
                now = time.monotonic()
                down_since = down_since or now
                if self.timeout is not None and now - down_since > self.timeout:
                    raise
                time.sleep(BACKOFF_S)      # a dead node answers NodeDown at once: no spinning
                if not self.pinned:
                    try:
                        self.client.refresh(timeout=self.client.attempt_timeout)
                    except DdbError:
                        pass
                    self.node = self.next_node(self.client.members, self.node)
                continue
            down_since = None
            events = self.events(reply)
            through = reply.get("through", self.since)
            for k, ev in enumerate(events):
                yield ev
                if k + 1 == len(events) or events[k + 1].index != ev.index:
                    self.since = max(self.since, ev.index)      # a whole entry was yielded
                if self.closed:
                    return
            self.since = max(self.since, through)
            if not self.follow and not events and through >= reply.get("applied", through):
                return


async def aiter_changes(client, pos: _Position):
    """The AsyncClient's stream (an async generator over the same protocol)."""
    loop = asyncio.get_running_loop()
    down_since = None
    while not pos.closed:
        try:
            if pos.node is None:
                if not client.members:
                    await client.refresh()
                pos.node = pos.next_node(client.members, None)
            addr = await client._member_addr(pos.node)
            reply = await client.call_addr(addr, pos.body(), pos.wait + client.attempt_timeout + 1.0)
        except ConnectionFailed:
            now = loop.time()
            down_since = down_since or now
            if pos.timeout is not None and now - down_since > pos.timeout:
                raise
            await asyncio.sleep(BACKOFF_S)
            if not pos.pinned:
                try:
                    await client.refresh(timeout=client.attempt_timeout)
                except DdbError:
                    pass
                pos.node = pos.next_node(client.members, pos.node)
            continue
        down_since = None
        events = pos.events(reply)
        through = reply.get("through", pos.since)
        for k, ev in enumerate(events):
            yield ev
            if k + 1 == len(events) or events[k + 1].index != ev.index:
                pos.since = max(pos.since, ev.index)
        pos.since = max(pos.since, through)
        if not pos.follow and not events and through >= reply.get("applied", through):
            return


__all__ = ["ChangeEvent", "ChangeStream", "ChangesTruncated", "aiter_changes", "changes_body"]
