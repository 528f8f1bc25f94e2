"""SQL clients through the Replica's request path, and the checks that watch them.

Closed-loop clients (one operation outstanding each, as Jepsen's) send real client request
frames (`protocol.ClientRequest`) to any node through `Simulator.request`, over a register
table `reg(k PRIMARY KEY, v)`:

    write   INSERT OR REPLACE, with a session (client id, sequence number); retried after a
            timeout or a retryable refusal with the *same* session, so it applies once
    cas     UPDATE ... WHERE v IS expected: ok(True) when a row changed; session too
    read    SELECT v at a random level: none / weak / linearizable / strong, from any
            node (followers forward or read locally, as the level says)

History: writes, cas and the `linearizable` / `strong` reads form the history whose
linearizability is checked at the end (`none` and `weak` reads may be stale by design; they
are checked by their own rules instead). A write that never got a definite answer is
`info`, resolved after convergence by whether its session was applied anywhere.

Checks, after every step (each fed by what the simulator sees when it happens):
    session exactly-once    a session's write is applied (not as a duplicate) at most once
                            per node incarnation
    weak reads              served by a node that is the leader, never beyond the highest
                            commit index in the cluster
    none reads              served at the node's own applied index, never beyond its commit
    replies only committed  a write's or strong read's reply names an index its node has
                            committed
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass, field

from ddb_node.protocol import LINEARIZABLE, NONE, STRONG, WEAK, ClientRequest, statement
from ddb_node.raft.types import Role
from ddb_node.sql.codec import EntryDecodeError, decode_entry

from .clients import ClientLoop
from .history import FAIL, INFO, OK, History, Op

LEVEL_MIX = (NONE, WEAK, LINEARIZABLE, LINEARIZABLE, STRONG)
SCHEMA = "CREATE TABLE reg(k TEXT PRIMARY KEY, v TEXT)"
RETRYABLE = ("NotLeader", "NoLeader", "Unavailable", "Timeout")


@dataclass
class _Attempt:
    op: Op
    body: dict
    deadline: float            # give up on the whole operation (virtual ms)
    attempt_deadline: float    # give up on this attempt
    token: object = None
    attempts: int = 0
    session: tuple | None = None
    unknown: bool = False      # some attempt may have taken effect


@dataclass
class SqlClient:
    id: int
    w: "SqlWorkload"
    rng: random.Random
    hint: int | None = None
    pending: _Attempt | None = None
    next_at: float = 0.0
    seq: int = 0
    retry_at: float = math.inf

    def due(self) -> float:
        if self.pending is None:
            return self.next_at
        return min(self.pending.attempt_deadline, self.retry_at)

    # ---- the loop --------------------------------------------------------------
    def act(self) -> None:
        sim, now = self.w.sim, self.w.sim.now
        p = self.pending
        if p is None:
            if now >= self.next_at:
                self._start()
            return
        if now >= self.retry_at:
            self.retry_at = math.inf
            self._send(p)
        elif now >= p.attempt_deadline:
            sim.forget_request(p.token)
            p.unknown = p.unknown or p.op.kind != "read"
            self._again(p, "no answer")

    def _pick_node(self) -> int | None:
        up = [n.id for n in self.w.sim.nodes.values() if n.alive and not n.retired]
        if not up:
            return None
        if self.hint in up and self.rng.random() < 0.7:
            return self.hint
        return self.rng.choice(up)

    def _start(self) -> None:
        w, rng, now = self.w, self.rng, self.w.sim.now
        key = rng.choice(w.keys)
        r = rng.random()
        self.seq += 1
        session = (f"c{self.id}", self.seq)
        timeout_s = w.request_timeout_ms / 1000.0
        if r < w.read_ratio:
            level = rng.choice(LEVEL_MIX)
            op = Op(0, self.id, "read", key, call=now)
            if level in (LINEARIZABLE, STRONG):
                op = w.history.invoke(self.id, "read", key, now)
            req = ClientRequest([statement("SELECT v FROM reg WHERE k = ?", [key])], level=level,
                                timeout=timeout_s)
            op.note = level
            session = None
        else:
            value = f"{self.id}.{self.seq}"
            # (a row that does not exist matches no UPDATE: cas only from a value seen)
            if r < w.read_ratio + w.cas_ratio and w.last_seen.get(self.id, {}).get(key) is not None:
                expected = w.last_seen[self.id][key]
                op = w.history.invoke(self.id, "cas", key, now, value=value, expected=expected)
                sql = [statement("UPDATE reg SET v = ? WHERE k = ? AND v IS ?", [value, key, expected])]
            else:
                op = w.history.invoke(self.id, "write", key, now, value=value)
                sql = [statement("INSERT OR REPLACE INTO reg(k, v) VALUES (?, ?)", [key, value])]
            req = ClientRequest(sql, level=WEAK, session=session, timeout=timeout_s)
            w.ops_by_session[session] = op
        self.pending = _Attempt(op, req.to_wire(), now + w.op_deadline_ms, now, session=session)
        self._send(self.pending)

    def _send(self, p: _Attempt) -> None:
        sim = self.w.sim
        node = self._pick_node()
        now = sim.now
        if node is None or now >= p.deadline:
            return self._give_up(p, "no node up" if node is None else "deadline")
        p.attempts += 1
        p.op.node = node
        p.attempt_deadline = now + self.w.request_timeout_ms + 3 * sim.tick_ms
        p.token = sim.request(node, p.body, lambda reply, p=p: self._answered(p, reply))

    def _again(self, p: _Attempt, why: str) -> None:
        """Retry (same body: same session) after a short pause, within the op's deadline."""
        now = self.w.sim.now
        if now >= p.deadline or (p.op.kind == "read" and p.attempts >= 2):
            return self._give_up(p, why)
        p.attempt_deadline = math.inf
        self.retry_at = now + 1.0 + 20.0 * self.rng.random()
        self.w._changed()

    def _give_up(self, p: _Attempt, why: str) -> None:
        self._finish(p, INFO if p.unknown else FAIL, note=why)

    def _finish(self, p: _Attempt, status: str, output=None, note: str = "") -> None:
        w = self.w
        op = p.op
        if op.id and op.status is None:
            w.history.complete(op, status, w.sim.now, output, note)
        self.pending = None
        self.retry_at = math.inf
        lo, hi = w.think_ms
        self.next_at = w.sim.now + lo + (hi - lo) * self.rng.random()
        w._changed()

    # ---- answers ---------------------------------------------------------------
    def _answered(self, p: _Attempt, reply: dict) -> None:
        if self.pending is not p:
            return                       # a late answer to an attempt we gave up on
        w = self.w
        if reply.get("forwarded_by") is None:
            self.hint = reply.get("node") if p.op.kind != "read" else self.hint
        if not reply.get("ok"):
            err = reply.get("error") or {}
            typ = err.get("type")
            leader = (err.get("leader") or {}).get("id")
            if leader:
                self.hint = leader
            if typ in RETRYABLE or typ == "Stale":
                # a Timeout may have taken effect (a proposal still in the log)
                p.unknown = p.unknown or (p.op.kind != "read" and typ == "Timeout")
                return self._again(p, typ)
            w.errors.append(f"c{self.id} {p.op.describe()}: unexpected {typ}: {err.get('message')}")
            return self._finish(p, FAIL, note=str(typ))
        res = (reply.get("results") or [{}])[0]
        if res.get("error"):
            w.errors.append(f"c{self.id} {p.op.describe()}: statement error {res['error']}")
            return self._finish(p, FAIL, note="statement error")
        op = p.op
        if op.kind == "read":
            vals = (res.get("values") or [[]])[0]
            value = vals[0] if vals else None
            w.last_seen.setdefault(self.id, {})[op.key] = value
            return self._finish(p, OK, value, note=op.note)
        if op.kind == "cas":
            ok = (res.get("rows_affected") or 0) > 0
            if ok:
                w.last_seen.setdefault(self.id, {})[op.key] = op.value
            return self._finish(p, OK, ok)
        w.last_seen.setdefault(self.id, {})[op.key] = op.value
        self._finish(p, OK, True)


@dataclass
class SqlWorkload(ClientLoop):
    sim: object
    clients: int = 3
    keys: tuple = ("a", "b", "c")
    seed_tag: str = ""
    read_ratio: float = 0.45
    cas_ratio: float = 0.15
    think_ms: tuple = (2.0, 30.0)
    request_timeout_ms: float = 300.0
    op_deadline_ms: float = 1500.0
    history: History = field(default_factory=History)
    errors: list = field(default_factory=list)
    violations: list = field(default_factory=list)
    last_seen: dict = field(default_factory=dict)
    ops_by_session: dict = field(default_factory=dict)
    first_applied: dict = field(default_factory=dict)   # session -> (time, EntryResult)
    applied_sessions: set = field(default_factory=set)  # (node, incarnation, session)
    served: dict = field(default_factory=dict)          # level -> count
    active: bool = True

    def __post_init__(self):
        tag = self.seed_tag or f"ddb-sim/{self.sim.seed}/sql"
        self.members = [SqlClient(i + 1, self, random.Random(f"{tag}/client/{i + 1}"))
                        for i in range(self.clients)]
        self._next_due = 0.0
        sim = self.sim
        sim.on_apply(self._on_apply)
        sim.serve_callbacks.append(self._on_serve)
        sim.reply_callbacks.append(self._on_reply)

    def _clients(self) -> list:
        return self.members

    # ---- checks fed by the simulator ---------------------------------------------
    def _violation(self, name: str, detail: str) -> None:
        from .invariants import InvariantViolation
        v = InvariantViolation(name, detail, self.sim.steps, self.sim.now)
        self.violations.append(v)
        self.sim.violations.append(v)
        raise v

    def _on_apply(self, sim, node_id, entry, result) -> None:
        if not entry.data or result is None or not hasattr(result, "session_duplicate"):
            return
        try:
            _req, _ts, _seed, session = decode_entry(entry.data)
        except EntryDecodeError:
            return
        if session is None:
            return
        session = (session[0], session[1])
        if result.session_duplicate:
            return
        key = (node_id, sim.nodes[node_id].incarnation, session)
        if key in self.applied_sessions:
            self._violation("session exactly-once", f"n{node_id} applied session {session} twice "
                            f"(again at index {entry.index})")
        self.applied_sessions.add(key)
        self.first_applied.setdefault(session, (sim.now, result))

    def _on_serve(self, sim, node_id, level, index) -> None:
        self.served[level] = self.served.get(level, 0) + 1
        node = sim.nodes[node_id]
        raft = node.raft
        if level == NONE:
            if index != node.sm.applied_index or index > raft.commit_index:
                self._violation("none read from the future", f"n{node_id} served a none read at "
                                f"{index} (applied {node.sm.applied_index}, commit {raft.commit_index})")
        elif level == WEAK:
            top = max((n.raft.commit_index for n in sim.nodes.values() if n.raft is not None),
                      default=0)
            if raft.role != Role.LEADER or index > top:
                self._violation("weak read newer than the leader", f"n{node_id} "
                                f"({Role(raft.role).name}) served a weak read at {index}; "
                                f"highest commit in the cluster {top}")
        elif index > node.sm.applied_index:
            self._violation("read before apply", f"n{node_id} served a {level} read at {index} "
                            f"before applying it (applied {node.sm.applied_index})")

    def _on_reply(self, sim, node_id, token, reply) -> None:
        """A reply names an index its own node has committed (relayed answers of a
        forward are checked where they were made)."""
        if not reply.get("ok") or reply.get("index") is None or "forwarded_by" in reply:
            return
        commit = sim.nodes[node_id].raft.commit_index
        if reply["index"] > commit:
            self._violation("reply for an uncommitted entry", f"n{node_id} answered with index "
                            f"{reply['index']} beyond its commit index {commit}")

    # ---- the end ---------------------------------------------------------------
    def resolved(self) -> list[Op]:
        """The history with each unknown write replaced by what the cluster did: ok when its
        session was applied (returning at its first application, with that outcome), fail
        when never. Only sound once the cluster has converged."""
        out = []
        for op in self.history.ops:
            if op.status != INFO:
                out.append(op)
                continue
            session = next((s for s, o in self.ops_by_session.items() if o is op), None)
            first = self.first_applied.get(session)
            if first is None:
                r = Op(op.id, op.client, op.kind, op.key, op.value, op.expected, op.call, op.call,
                       FAIL, None, op.node, op.index, "never applied")
            else:
                t, er = first
                output = True
                if op.kind == "cas":
                    output = bool(er.results and er.results[0].rows_affected)
                r = Op(op.id, op.client, op.kind, op.key, op.value, op.expected, op.call,
                       max(t, op.call), OK, output, op.node, op.index, "resolved")
            out.append(r)
        return out
