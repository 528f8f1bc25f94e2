"""Client models: closed-loop clients issuing KV operations against the simulated
cluster and recording a History.

Each client has at most one operation outstanding (as a Jepsen client does):
    write / cas   proposed on the node the client believes is the leader; ok when
                  that node applies it, fail when it definitely cannot happen
                  (NotLeader, ProposalDropped, another entry took its index), info
                  when the outcome is unknown (the node crashed, or the client
                  gave up waiting)
    read          ReadIndex on any node (followers forward it to the leader); ok
                  when that node has applied up to the read index; a read that
                  fails or times out is simply a failed read (it changes nothing)

The workload also remembers when each command was first applied anywhere, so that
after a run that ended converged every unknown write can be resolved (see
`resolved`).
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
import random
from dataclasses import dataclass

from ddb_node.raft.types import NotLeader, ProposalDropped

from . import kv
from .history import FAIL, INFO, OK, History, Op


@dataclass
class _Pending:
    op: Op
    deadline: float


class KVClient:
    def __init__(self, cid: int, workload: "Workload"):
        self.id = cid
        self.w = workload
        self.rng = random.Random(f"{workload.seed_tag}/client/{cid}")
        self.hint: int | None = None
        self.pending: _Pending | None = None
        self.next_at = self.rng.random() * workload.think_ms[1]
        self.counter = 0
        self.seen: dict[str, object] = {}

    def due(self) -> float:
        return self.pending.deadline if self.pending else self.next_at

    def act(self) -> None:
        sim, now = self.w.sim, self.w.sim.now
        if self.pending is not None:
            if now >= self.pending.deadline:
                op = self.pending.op
                self._finish(op, INFO if op.kind != "read" else FAIL, note="timeout")
            return
        if now >= self.next_at:
            self._start(sim)

    def _finish(self, op: Op, status: str, output=None, note: str = "") -> None:
        if op.status is not None:
            return
        w = self.w
        w.history.complete(op, status, w.sim.now, output, note)
        if self.pending is not None and self.pending.op is op:
            self.pending = None
        lo, hi = w.think_ms
        self.next_at = w.sim.now + lo + (hi - lo) * self.rng.random()
        w._changed()

    def _pick_node(self, sim) -> int | None:
        up = [n.id for n in sim.nodes.values() if n.up]
        if not up:
            return None
        if self.hint in up and self.rng.random() < 0.8:
            return self.hint
        return self.rng.choice(up)

    def _start(self, sim) -> None:
        w, rng = self.w, self.rng
        node = self._pick_node(sim)
        if node is None:
            self.next_at = sim.now + w.think_ms[1]
            return
        key = rng.choice(w.keys)
        r = rng.random()
        self.counter += 1
        now = sim.now
        if r < w.read_ratio:
            op = w.history.invoke(self.id, "read", key, now, node=node)
            self.pending = _Pending(op, now + w.timeout_ms)
            try:
                sim.read(node, lambda status, sm, idx, op=op: self._read_done(op, status, sm))
            except NotLeader as e:
                self.hint = e.leader_hint or None
                self._finish(op, FAIL, note="not leader")
            except ProposalDropped:
                self._finish(op, FAIL, note="dropped")
            return
        value = f"{self.id}.{self.counter}"
        op_id = f"c{self.id}.{self.counter}"
        if r < w.read_ratio + w.cas_ratio and key in self.seen:
            expected = self.seen[key]
            op = w.history.invoke(self.id, "cas", key, now, value=value, expected=expected, node=node)
            data = kv.cas(key, expected, value, op_id)
        else:
            op = w.history.invoke(self.id, "write", key, now, value=value, node=node)
            data = kv.put(key, value, op_id)
        w.data_of[op.id] = data
        self.pending = _Pending(op, now + w.timeout_ms)
        try:
            op.index = sim.submit(node, data, lambda s, res, e, op=op: self._write_done(op, s, res))
        except NotLeader as e:
            self.hint = e.leader_hint or None
            self._finish(op, FAIL, note="not leader")
        except ProposalDropped:
            self._finish(op, FAIL, note="dropped")

    def _read_done(self, op: Op, status: str, sm) -> None:
        if status == "ok":
            value = sm.read(op.key)
            if op.status is None:
                self.seen[op.key] = value
            self._finish(op, OK, value)
        else:
            self._finish(op, FAIL, note="node crashed")

    def _write_done(self, op: Op, status: str, result) -> None:
        if status == "ok":
            if op.status is None:
                if op.kind == "cas":
                    self._finish(op, OK, bool(result["ok"]))
                    if result["ok"]:
                        self.seen[op.key] = op.value
                else:
                    self.seen[op.key] = op.value
                    self._finish(op, OK, True)
                self.hint = op.node
        elif status == "fail":
            self._finish(op, FAIL, note="overwritten")
        else:
            self._finish(op, INFO, note="node crashed")


class ClientLoop(ABC):
    """Closed-loop clients polled between simulator steps (cheap when nothing is due): each
    client has `due()`, `act()` and `pending`; `_clients()` names them."""

    _next_due = 0.0
    active = True

    @abstractmethod
    def _clients(self) -> list:
        """The workload's clients."""

    def _changed(self) -> None:
        self._next_due = 0.0

    def poll(self) -> None:
        now = self.sim.now
        if now < self._next_due:
            return
        nxt = math.inf
        for c in self._clients():
            if not self.active and c.pending is None:
                continue
            if c.due() <= now:
                c.act()
            if self.active or c.pending is not None:
                nxt = min(nxt, c.due())
        self._next_due = nxt

    def stop(self) -> None:
        """No new operations; outstanding ones still complete or time out."""
        self.active = False
        self._next_due = 0.0

    def idle(self) -> bool:
        return all(c.pending is None for c in self._clients())


class Workload(ClientLoop):
    """A set of KV clients on one simulator. Call `poll()` between steps (cheap when
    nothing is due)."""

    def __init__(self, sim, clients: int = 3, keys=("a", "b", "c"), *, seed_tag: str | None = None,
                 read_ratio: float = 0.4, cas_ratio: float = 0.15,
                 think_ms: tuple[float, float] = (2.0, 30.0), timeout_ms: float = 400.0):
        self.sim = sim
        self.history = History()
        self.keys = list(keys)
        self.seed_tag = seed_tag or f"ddb-sim/{sim.seed}"
        self.read_ratio = read_ratio
        self.cas_ratio = cas_ratio
        self.think_ms = think_ms
        self.timeout_ms = timeout_ms
        self.data_of: dict[int, bytes] = {}
        self.first_applied: dict[bytes, tuple[float, object]] = {}
        self.clients = [KVClient(i + 1, self) for i in range(clients)]
        self.active = True
        self._next_due = 0.0
        sim.on_apply(self._on_apply)

    def _clients(self) -> list:
        return self.clients

    def _on_apply(self, sim, node_id, entry, result) -> None:
        if entry.data and entry.data not in self.first_applied:
            self.first_applied[entry.data] = (sim.now, result)

    def resolved(self) -> list[Op]:
        """The history with each unknown write replaced by what the cluster did: ok
        (returning when it was first applied anywhere, which is after it took
        effect) if it was applied, fail if not. Only sound once the cluster has
        converged (nothing uncommitted is left anywhere)."""
        out = []
        for op in self.history.ops:
            if op.kind != "read" and op.status in (INFO, None):
                first = self.first_applied.get(self.data_of.get(op.id, b""))
                new = Op(op.id, op.client, op.kind, op.key, op.value, op.expected, op.call,
                         node=op.node, index=op.index)
                if first is None:
                    new.status, new.note = FAIL, "resolved: never applied"
                else:
                    t, result = first
                    new.status, new.ret, new.note = OK, max(t, op.call), "resolved: applied"
                    new.output = bool(result["ok"]) if op.kind == "cas" else True
                out.append(new)
            else:
                out.append(op)
        return out
