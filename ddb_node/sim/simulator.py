"""A cluster of RaftNodes in one process, on virtual time, driven one event at a time.

Events (see events.py) are: a node's tick, the delivery of a message, and the
completion of a node's Ready persistence. `step()` fires exactly one; the state
checks in invariants.py run after every step. One seed drives everything: the
network, persistence latencies and tick phases draw from streams derived from it,
and every RaftNode gets its own rng derived from (seed, node id, incarnation)
unless a custom `rng_factory` is given.

The Ready contract, as the real server will follow it:
    1. send rd.messages at once
    2. storage.save(hard state, entries, snapshot)   <- a separate PERSIST event
    3. send rd.persisted_messages
    4. restore rd.snapshot into the state machine
    5. apply rd.committed_entries
    6. handle rd.read_states, then node.advance(rd)
A crash between 1 and 2 loses what the Ready carried, as a real crash before fsync
would. Only one Ready is outstanding per node; the node keeps receiving ticks and
messages while its Ready is being persisted (etcd's RawNode allows the same), and sends
what needs nothing persisted meanwhile (RaftNode.take_messages), as the node's loop does.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable

import msgpack

from ddb_node.raft.config import Config
from ddb_node.raft.types import (ConfChange, ConfChangeType, ConfState, Entry, Message, NotLeader,
                                 Role)
from ddb_node.replica import Replica

from .events import DELIVER, PERSIST, TICK, EventQueue
from .invariants import InvariantChecker, term_at
from .kv import KVStateMachine
from .network import ClientMessage, Envelope, Network, describe_message

EPOCH_MS = 1_767_225_600_000      # 2026-01-01T00:00:00Z: virtual time 0 on the entries' clock
CLIENT = 0                        # the source id of a client's request (outside the network)

STAGES = ("before_send", "after_send", "before_persist", "after_persist",
          "before_send_persisted", "after_send_persisted", "before_apply", "after_apply")


def default_rng_factory(seed, node_id: int, incarnation: int) -> random.Random:
    return random.Random(f"ddb-sim/{seed}/node/{node_id}/{incarnation}")


def default_node_factory(config: Config, storage, rng: random.Random):
    from ddb_node.raft import RaftNode
    return RaftNode(config, storage, rng=rng)


class OneEntryAtATime:
    """The Replica's application interface (apply_batch, snapshot_image, restore_image)
    over a simulator state machine that applies one entry at a time (see kv.py)."""

    def __init__(self, sm):
        self.sm = sm

    @property
    def applied_index(self) -> int:
        return self.sm.applied_index

    def apply_batch(self, entries) -> list:
        sm, out = self.sm, []
        noop = getattr(sm, "apply_noop", None)
        for index, term, data in entries:
            if index <= sm.applied_index:
                out.append(None)
            elif data:
                out.append(sm.apply(index, term, data))
            else:
                out.append(None)
                if noop is not None:
                    noop(index, term)
                else:
                    sm.applied_index = index
        return out

    def snapshot_image(self) -> bytes:
        return self.sm.snapshot()

    def restore_image(self, data: bytes) -> None:
        self.sm.restore(data)


def as_application(sm):
    return sm if hasattr(sm, "apply_batch") else OneEntryAtATime(sm)


class _Observer:
    """What the simulator sees of a Replica's work: the checker's and the hooks' feed."""

    def __init__(self, sim: "Simulator", node: "SimNode"):
        self.sim, self.node = sim, node

    def _halt_if_crashed(self, replica) -> None:
        if replica is not self.node.replica:
            replica.halted = True

    def applied(self, replica, entry, result) -> None:
        sim, node = self.sim, self.node
        if sim.checker:
            sim.checker.on_apply(node, entry)
        for cb in sim.apply_callbacks:
            cb(sim, node.id, entry, result)
        self._halt_if_crashed(replica)

    def acked(self, replica, entry) -> None:
        if self.sim.checker:
            self.sim.checker.on_ack(self.node, entry)

    def restored(self, replica, snap) -> None:
        sim = self.sim
        if sim.checker:
            sim.checker.on_restore(self.node, snap)
        sim._note("restore", self.node.id, snap.meta.index)

    def read_state(self, replica, rs) -> None:
        for cb in self.sim.read_state_callbacks:
            cb(self.sim, self.node.id, rs)

    def served(self, replica, level: str, index: int) -> None:
        for cb in self.sim.serve_callbacks:
            cb(self.sim, self.node.id, level, index)


def default_storage_factory(conf_state: ConfState | None):
    from ddb_node.storage import MemoryStorage
    return MemoryStorage(conf_state=conf_state) if conf_state is not None else MemoryStorage()


@dataclass(eq=False)
class SimNode:
    id: int
    storage: object
    sm: object                           # the state machine (KV, SQL, ...)
    replica: object = None               # the Replica driving it (None while down)
    alive: bool = False
    paused: bool = False
    retired: bool = False
    incarnation: int = 0
    pending: object = None               # the Ready being persisted
    persist_event: object = None
    tick_event: object = None
    tick_due: bool = False               # a tick came while paused
    stash: list = field(default_factory=list)      # events that arrived while paused
    forwards: dict = field(default_factory=dict)   # forward id -> request token here
    crashes: int = 0

    @property
    def raft(self):
        return self.replica.raft if self.replica is not None else None

    @property
    def up(self) -> bool:
        return self.alive and not self.paused

    def describe(self) -> str:
        if self.retired:
            return f"n{self.id} retired"
        if not self.alive:
            return f"n{self.id} DOWN"
        r = self.raft
        role = Role(r.role).name
        s = f"n{self.id} {role:<13} term {r.term:<3} commit {r.commit_index:<4} " \
            f"applied {self.sm.applied_index:<4} last {r.last_index:<4}"
        return s + (" (paused)" if self.paused else "")


class Simulator:
    def __init__(self, nodes: int | list[int] = 3, seed=0, *,
                 sm_factory: Callable[[], object] = KVStateMachine,
                 config: dict | None = None,
                 tick_ms: float = 10.0,
                 latency_ms: tuple[float, float] = (0.5, 2.0),
                 persist_ms: tuple[float, float] = (0.1, 1.0),
                 check: bool = True,
                 trace: bool = False,
                 rng_factory: Callable | None = None,
                 node_factory: Callable | None = None,
                 storage_factory: Callable | None = None,
                 copy_messages: bool = True,
                 auto_compact: tuple[int, ...] | None = None,
                 request_timeout_s: float = 2.0,
                 log: Callable[[str], None] | None = None):
        self.seed = seed
        self.sm_factory = sm_factory
        self.config = dict(config or {})
        self.tick_ms = tick_ms
        self.persist_ms = persist_ms
        self.rng = random.Random(f"ddb-sim/{seed}/sim")
        self.net = Network(random.Random(f"ddb-sim/{seed}/net"), latency_ms, tick_ms)
        self.rng_factory = rng_factory or default_rng_factory
        self.node_factory = node_factory or default_node_factory
        self.storage_factory = storage_factory or default_storage_factory
        self.copy_messages = copy_messages
        self.auto_compact = auto_compact
        self.request_timeout_s = request_timeout_s
        self.log = log
        self.queue = EventQueue()
        self.now = 0.0
        self.steps = 0
        self.nodes: dict[int, SimNode] = {}
        self.violations: list = []
        self.trace: list | None = [] if trace else None
        self.message_hooks: list[Callable] = []
        self.ready_hooks: list[Callable] = []
        self.apply_callbacks: list[Callable] = []
        self.read_state_callbacks: list[Callable] = []
        self.serve_callbacks: list[Callable] = []     # fn(sim, node, level, index) per read served
        self.reply_callbacks: list[Callable] = []     # fn(sim, node, token, reply) per client reply
        self._clients: dict = {}                      # request token -> on_reply(reply)
        self._tokens = 0
        self._forward_ids = 0
        self.checker = InvariantChecker(self) if check else None
        ids = list(range(1, nodes + 1)) if isinstance(nodes, int) else list(nodes)
        voters = ConfState(voters=tuple(ids))
        for i in ids:
            node = SimNode(i, self.storage_factory(voters), sm_factory())
            self.nodes[i] = node
            self._boot(node)

    # ==== node lifecycle =======================================================
    def _boot(self, node: SimNode) -> None:
        cfg = Config(id=node.id, **self.config)
        # (every entries, trailing entries[, log bytes]): the Replica's compaction thresholds
        every, keep, log_bytes = (tuple(self.auto_compact) + (0,))[:3] if self.auto_compact else (0, 0, 0)
        sim = self
        node.replica = Replica(
            node.id, node.storage, as_application(node.sm), config=cfg,
            rng=random.Random(f"ddb-sim/{self.seed}/replica/{node.id}/{node.incarnation}"),
            raft_rng=self.rng_factory(self.seed, node.id, node.incarnation),
            raft_factory=self.node_factory,
            clock=lambda: sim.now / 1000.0, wall_ms=lambda: EPOCH_MS + int(sim.now),
            snapshot_entries=every, snapshot_trailing=keep, snapshot_bytes=log_bytes,
            request_timeout=self.request_timeout_s, observer=_Observer(self, node))
        node.forwards = {}
        node.alive, node.paused, node.tick_due = True, False, False
        node.tick_event = self.queue.schedule(self.now + self.tick_ms * self.rng.random(),
                                              TICK, node.id, None, node.incarnation)

    def _note(self, kind: str, *detail) -> None:
        if self.trace is not None:
            self.trace.append((kind, round(self.now, 6)) + detail)

    def crash(self, i: int) -> None:
        """Kill node i: its raft object and everything not yet persisted are lost."""
        node = self.nodes[i]
        if not node.alive:
            return
        node.alive = False
        replica, node.replica = node.replica, None
        replica.halted = True
        node.incarnation += 1
        node.crashes += 1
        node.pending = None
        for ev in (node.persist_event, node.tick_event):
            if ev is not None:
                self.queue.cancel(ev)
        node.persist_event = node.tick_event = None
        node.stash.clear()
        node.forwards = {}
        replica.abandon()           # proposals: unknown ("info"); waiting reads: failed
        self._note("crash", i)
        self._say(f"n{i} crashed")

    def restart(self, i: int) -> None:
        """Bring node i back from its storage (and its state machine from the
        storage's snapshot, unless the state machine is durable itself)."""
        node = self.nodes[i]
        if node.alive or node.retired:
            return
        if not getattr(node.sm, "durable", False):
            node.sm = self.sm_factory()     # the Replica restores it from the snapshot
        self._boot(node)
        self._note("restart", i)
        self._say(f"n{i} restarted from storage (applied {node.sm.applied_index})")
        if self.checker:
            self.checker.on_restart(node)
        self._drive(node)
        self._check()

    def pause(self, i: int) -> None:
        node = self.nodes[i]
        if node.alive:
            node.paused = True
            self._note("pause", i)

    def resume(self, i: int) -> None:
        node = self.nodes[i]
        if not node.alive or not node.paused:
            return
        node.paused = False
        self._note("resume", i)
        stash, node.stash = node.stash, []
        for ev in stash:
            new = self.queue.schedule(self.now, ev.kind, ev.node, ev.payload, ev.incarnation)
            if ev.kind == PERSIST:
                node.persist_event = new
        if node.tick_due:
            node.tick_due = False
            node.tick_event = self.queue.schedule(self.now, TICK, i, None, node.incarnation)

    def start_node(self, i: int) -> SimNode:
        """Start a brand-new node with empty storage (it joins when the leader adds it)."""
        if i in self.nodes:
            raise ValueError(f"node {i} exists")
        node = SimNode(i, self.storage_factory(None), self.sm_factory())
        self.nodes[i] = node
        self._boot(node)
        self._say(f"n{i} started (empty)")
        return node

    def retire(self, i: int) -> None:
        """Stop a node for good (after it was removed from the configuration)."""
        self.crash(i)
        self.nodes[i].retired = True

    # ==== events ===============================================================
    def step(self):
        """Fire exactly one event; returns it (None when nothing is scheduled)."""
        ev = self.queue.pop()
        if ev is None:
            return None
        self._fire(ev)
        return ev

    def step_node(self, i: int):
        """Fire the earliest pending event of node i (tick, delivery or persistence),
        ahead of everything else."""
        ev = self.queue.take(lambda e: e.node == i)
        if ev is not None:
            self._fire(ev)
        return ev

    def _fire(self, ev) -> None:
        if ev.time > self.now:
            self.now = ev.time
        self.steps += 1
        kind = ev.kind
        if kind == DELIVER:
            self._deliver(ev)
        elif kind == TICK:
            self._tick(ev)
        else:
            self._persisted(ev)
        self._check()

    def _check(self) -> None:
        if self.checker is not None:
            self.checker.after_step()

    def run_until(self, predicate: Callable[["Simulator"], bool], max_steps: int = 100_000) -> bool:
        for _ in range(max_steps):
            if predicate(self):
                return True
            if self.step() is None:
                break
        return predicate(self)

    def run_for(self, ms: float, max_steps: int = 1_000_000) -> None:
        end = self.now + ms
        for _ in range(max_steps):
            ev = self.queue.peek()
            if ev is None or ev.time > end:
                break
            self.step()
        self.now = max(self.now, end)

    def _tick(self, ev) -> None:
        node = self.nodes[ev.node]
        if not node.alive or ev.incarnation != node.incarnation:
            return
        if node.paused:
            node.tick_due = True
            node.tick_event = None
            return
        node.tick_event = self.queue.schedule(self.now + self.tick_ms, TICK, node.id,
                                              None, node.incarnation)
        node.replica.tick()
        self._drive(node)

    def _deliver(self, ev) -> None:
        env: Envelope = ev.payload
        node = self.nodes.get(env.dst)
        if node is None or not node.alive:
            self.net.stats.dropped += 1
            self._note("lost", env.src, env.dst, "down")
            return
        if node.paused:
            node.stash.append(ev)
            return
        if env.src != CLIENT and not self.net.reachable(env.src, env.dst):
            self.net.stats.dropped += 1
            self._note("lost", env.src, env.dst, "partition")
            return
        msg = env.msg
        if self.copy_messages:
            msg = _copy_message(msg)
        self.net.stats.delivered += 1
        self._note("deliver", env.src, env.dst, repr(msg))
        if isinstance(msg, ClientMessage):
            self._deliver_client(node, msg)
        else:
            node.replica.step(msg)
        self._drive(node)

    def _deliver_client(self, node: SimNode, msg: ClientMessage) -> None:
        r = node.replica
        if msg.type == ClientMessage.REQUEST:
            token = msg.token if msg.frm == CLIENT else ("fwd", msg.frm, msg.token)
            r.handle(token, msg.body)
        else:
            token = node.forwards.pop(msg.token, None)
            if token is not None:
                r.forward_done(token, msg.body)

    def _persisted(self, ev) -> None:
        node = self.nodes[ev.node]
        if not node.alive or ev.incarnation != node.incarnation:
            return
        if node.paused:
            node.stash.append(ev)
            return
        node.persist_event = None
        rd = ev.payload
        self._finish_ready(node, rd)
        if node.alive and node.incarnation == ev.incarnation:
            self._drive(node)

    # ==== Ready processing: the Replica's stages, with a PERSIST event in between =====
    def _hooks(self, node: SimNode, stage: str, rd) -> bool:
        """Run the Ready hooks of one stage; False if a hook crashed the node."""
        if not self.ready_hooks:
            return True
        inc = node.incarnation
        for fn in list(self.ready_hooks):
            fn(self, node.id, stage, rd)
            if not node.alive or node.incarnation != inc:
                return False
        return True

    def _drive(self, node: SimNode) -> None:
        """Take Readies from node while it has some and none is being persisted; then carry
        out what its Replica asked for (replies, forwards)."""
        while node.alive and not node.paused and node.pending is None and node.replica.has_ready():
            inc = node.incarnation
            rd = node.replica.ready()
            if not self._hooks(node, "before_send", rd):
                return
            self._send(node, rd.messages)
            if not self._hooks(node, "after_send", rd):
                return
            node.pending = rd
            if Replica.needs_persist(rd):
                lo, hi = self.persist_ms
                node.persist_event = self.queue.schedule(
                    self.now + lo + (hi - lo) * self.rng.random(), PERSIST, node.id, rd, inc)
                break
            self._finish_ready(node, rd)
        if node.alive and not node.paused and node.pending is not None:
            early: list = []                      # as the node's loop does while it writes
            node.replica.send_while_persisting(early.append)
            self._send(node, early)
        if node.alive:
            self._outbox(node)

    def _finish_ready(self, node: SimNode, rd) -> None:
        """Stages 2-4 of the Ready contract, once the persistence is complete."""
        if not self._hooks(node, "before_persist", rd):
            return
        replica = node.replica
        if Replica.needs_persist(rd):
            snap = rd.snapshot if rd.snapshot is not None and not rd.snapshot.is_empty() else None
            if self.checker:
                self.checker.before_save(node, rd.hard_state, rd.entries, snap)
            replica.persist(rd)
            if self.checker:
                self.checker.after_save(node, rd.hard_state, rd.entries, snap)
            self._note("persist", node.id, len(rd.entries), repr(rd.hard_state),
                       snap.meta.index if snap else 0)
        if not self._hooks(node, "after_persist", rd):
            return
        if not self._hooks(node, "before_send_persisted", rd):
            return
        self._send(node, rd.persisted_messages)
        if not self._hooks(node, "after_send_persisted", rd):
            return
        if not self._hooks(node, "before_apply", rd):
            return
        replica.apply_ready(rd, after_apply=lambda: self._hooks(node, "after_apply", rd))
        if replica is node.replica and node.alive:
            node.pending = None

    def _outbox(self, node: SimNode) -> None:
        for item in node.replica.take_outbox():
            kind = item[0]
            if kind == "reply":
                token, reply = item[1], item[2]
                for cb in self.reply_callbacks:
                    cb(self, node.id, token, reply)
                if isinstance(token, tuple) and token and token[0] == "fwd":
                    self._send_client(ClientMessage(ClientMessage.RESPONSE, token[1], node.id,
                                                    token[2], reply))
                else:
                    on_reply = self._clients.pop(token, None)
                    if on_reply is not None:
                        on_reply(reply)
            elif kind == "forward":
                _, token, leader, body = item
                self._forward_ids += 1
                node.forwards[self._forward_ids] = token
                self._send_client(ClientMessage(ClientMessage.REQUEST, leader, node.id,
                                                self._forward_ids, body))
            # events and peer links have no meaning in the simulated network

    def _send_client(self, m: ClientMessage) -> None:
        """A forwarded request or its answer, between nodes: over the simulated network."""
        self._route(m)

    def _send(self, node: SimNode, msgs: list) -> None:
        for m in msgs:
            if self.checker:
                self.checker.on_send(node.id, m)
            self._route(m)

    def _route(self, m) -> None:
        """One message onto the network: its fate decided now, its delivery scheduled."""
        if self.trace is not None:
            self._note("send", m.frm, m.to, repr(m))
        for env in self.net.route(m, self.now):
            for hook in self.message_hooks:
                hook(self, env)
            if env.dropped:
                self.net.stats.dropped += 1
                self._note("drop", env.src, env.dst, env.reason)
                continue
            env.deliver_at = max(env.deliver_at, self.now)
            self.queue.schedule(env.deliver_at, DELIVER, env.dst, env)

    # ==== hooks ================================================================
    def add_message_hook(self, fn: Callable) -> Callable:
        """fn(sim, envelope) sees every message sent (including those the network
        already dropped: envelope.dropped); it may call envelope.drop(),
        envelope.delay(ms), set envelope.dropped = False, or replace envelope.msg."""
        self.message_hooks.append(fn)
        return fn

    def add_ready_hook(self, fn: Callable) -> Callable:
        """fn(sim, node_id, stage, ready) around each stage of Ready processing;
        stage is one of STAGES. A hook may crash the node; processing then stops."""
        self.ready_hooks.append(fn)
        return fn

    def on_apply(self, fn: Callable) -> Callable:
        """fn(sim, node_id, entry, result) after every entry a state machine applies
        (result is None for conf changes and empty entries)."""
        self.apply_callbacks.append(fn)
        return fn

    # ==== driving the cluster ==================================================
    def raft(self, i: int):
        return self.nodes[i].raft

    def leader(self) -> int | None:
        """The live leader with the highest term (None if there is none)."""
        best, best_term = None, -1
        for node in self.nodes.values():
            r = node.raft
            if r is not None and r.role == Role.LEADER and r.term > best_term:
                best, best_term = node.id, r.term
        return best

    def _live(self, i: int) -> SimNode:
        node = self.nodes[i]
        if not node.alive:
            raise RuntimeError(f"node {i} is down")
        return node

    def campaign(self, i: int) -> None:
        node = self._live(i)
        node.raft.campaign()
        self._drive(node)
        self._check()

    def submit(self, i: int, data: bytes, on_done: Callable | None = None) -> int:
        """Propose data on node i (raises NotLeader / ProposalDropped like the core).
        on_done(status, result, entry) fires once: "ok" when node i applies it,
        "fail" when node i applies a different entry at that index, "info" when
        node i crashes or installs a snapshot first."""
        node = self._live(i)
        idx = node.replica.propose(data, on_done or _ignore)
        self._drive(node)
        self._check()
        return idx

    def propose(self, data: bytes, node: int | None = None) -> int:
        i = node if node is not None else self.leader()
        if i is None:
            raise NotLeader(0, "no leader")
        return self.submit(i, data)

    def read(self, i: int, on_done: Callable) -> bytes:
        """A linearizable read on node i via ReadIndex: on_done("ok", state_machine,
        read_index) once node i has applied up to the read index, or
        on_done("fail", None, None) if node i crashes or loses its leader first.
        Raises NotLeader."""
        node = self._live(i)
        ctx = node.replica.read_index(lambda index: on_done("ok", node.sm, index),
                                      lambda _err: on_done("fail", None, None))
        self._drive(node)
        self._check()
        return ctx

    def request(self, i: int, body: dict, on_reply: Callable | None = None):
        """A client's request frame (protocol.ClientRequest.to_wire() or an admin op) sent to
        node i; on_reply(reply) once node i answers (never, if it crashes first). It reaches
        the node after a client latency, like a real request: a paused node takes it when it
        resumes, a down node never. Returns the request's token."""
        self._tokens += 1
        token = ("client", self._tokens)
        if on_reply is not None:
            self._clients[token] = on_reply
        lo, hi = self.net.latency_ms
        env = Envelope(ClientMessage(ClientMessage.REQUEST, i, CLIENT, token, body), CLIENT, i,
                       self.now, self.now + lo + (hi - lo) * self.rng.random())
        self.queue.schedule(env.deliver_at, DELIVER, i, env)
        return token

    def forget_request(self, token) -> None:
        """The client gave up on it: a late answer is dropped."""
        self._clients.pop(token, None)

    def transfer_leader(self, to: int, via: int | None = None) -> None:
        i = via if via is not None else self.leader()
        if i is None:
            raise RuntimeError("no leader to transfer from")
        node = self._live(i)
        node.raft.transfer_leader(to)
        self._drive(node)
        self._check()

    def propose_conf_change(self, cc: ConfChange, via: int | None = None) -> int:
        i = via if via is not None else self.leader()
        if i is None:
            from ddb_node.raft.types import NotLeader
            raise NotLeader(0, "no leader")
        node = self._live(i)
        idx = node.raft.propose_conf_change(cc)
        self._drive(node)
        self._check()
        return idx

    def add_node(self, i: int) -> int:
        """Start node i (if new) and propose it as a learner through the leader."""
        if i not in self.nodes:
            self.start_node(i)
        return self.propose_conf_change(ConfChange(ConfChangeType.ADD_LEARNER, i))

    def promote(self, i: int) -> int:
        return self.propose_conf_change(ConfChange(ConfChangeType.PROMOTE, i))

    def remove_node(self, i: int) -> int:
        return self.propose_conf_change(ConfChange(ConfChangeType.REMOVE, i))

    def caught_up(self, i: int, slack: int = 0) -> bool:
        lid = self.leader()
        node = self.nodes.get(i)
        if lid is None or node is None or not node.alive:
            return False
        return node.sm.applied_index + slack >= self.nodes[lid].raft.commit_index

    def members(self, via: int | None = None) -> ConfState | None:
        i = via if via is not None else self.leader()
        return None if i is None else self.nodes[i].raft.conf_state

    def compact(self, i: int, keep: int = 0) -> bool:
        """Snapshot node i's state machine at its applied index and drop its log up to
        applied - keep. Skipped while a Ready is being persisted."""
        node = self.nodes[i]
        if not node.alive or node.pending is not None:
            return False
        first = node.storage.first_index()
        node.replica.take_snapshot(trailing=keep)
        if node.storage.first_index() > first:
            self._note("compact", i, node.storage.first_index() - 1)
            return True
        return False

    # ==== the network vocabulary ==============================================
    def partition(self, *groups) -> None:
        if len(groups) == 1 and groups[0] and not isinstance(groups[0][0], int):
            groups = groups[0]
        self.net.partition(groups)
        self._note("partition", repr([sorted(g) for g in groups]))
        self._say("partition " + " | ".join(",".join(f"n{x}" for x in sorted(g)) for g in groups))

    def isolate(self, i: int) -> None:
        self.net.isolate(i)
        self._note("isolate", i)
        self._say(f"isolate n{i}")

    def cut(self, a: int, b: int, both: bool = False) -> None:
        self.net.cut(a, b, both)
        self._note("cut", a, b, both)

    def heal(self) -> None:
        self.net.heal()
        self._note("heal")
        self._say("heal the network")

    def drop(self, rate: float = 0.0, every: int = 0, link=None, type=None, count=None):
        self._note("drop", rate, every, repr(link), count)
        return self.net.drop(rate=rate, every=every, link=link, type=type, count=count)

    def drop_next(self, link=None, type=None, count: int = 1):
        self._note("drop_next", repr(link), type, count)
        return self.net.drop_next(link=link, type=type, count=count)

    def delay(self, ms: float = 0.0, ticks: float = 0.0, jitter: float = 0.0, link=None):
        self._note("delay", ms, ticks, jitter, repr(link))
        return self.net.delay(ms=ms, ticks=ticks, jitter=jitter, link=link)

    def reorder(self, rate: float = 0.3, window_ms: float | None = None) -> None:
        self._note("reorder", rate)
        self.net.reorder(rate, window_ms)

    def duplicate(self, rate: float = 0.1) -> None:
        self._note("duplicate", rate)
        self.net.duplicate(rate)

    def clear_faults(self) -> None:
        self._note("clear")
        self.net.clear()

    # ==== looking at the cluster ===============================================
    def _say(self, text: str) -> None:
        if self.log is not None:
            self.log(f"[t={self.now:8.2f}ms] {text}")

    def status(self) -> list[dict]:
        out = []
        for node in self.nodes.values():
            d = {"id": node.id, "alive": node.alive, "paused": node.paused,
                 "retired": node.retired}
            r = node.raft
            if r is not None:
                d.update(role=Role(r.role).name, term=r.term, leader=r.leader_id,
                         commit=r.commit_index, applied=node.sm.applied_index,
                         last_index=r.last_index)
            out.append(d)
        return out

    def describe(self) -> str:
        return "\n".join(node.describe() for node in self.nodes.values())

    def converged(self) -> bool:
        """A leader whose every member is up and holds exactly the leader's log,
        fully committed (including an entry of the leader's term) and applied."""
        lid = self.leader()
        if lid is None:
            return False
        lr = self.nodes[lid].raft
        if lr.commit_index != lr.last_index or term_at(lr, lr.commit_index) != lr.term:
            return False
        cs = lr.conf_state
        for i in tuple(cs.voters) + tuple(cs.learners):
            node = self.nodes.get(i)
            if node is None or not node.up:
                return False
            r = node.raft
            if r.last_index != lr.last_index or r.commit_index != lr.commit_index or \
                    node.sm.applied_index != lr.commit_index or node.pending is not None:
                return False
            if r.term != lr.term:
                return False
        return True


def _ignore(*_args) -> None:
    pass


def _copy_message(m):
    """What a real transport would do: the receiver gets its own copy."""
    if isinstance(m, ClientMessage):
        body = msgpack.unpackb(msgpack.packb(m.body, use_bin_type=True), raw=False,
                               strict_map_key=False)
        return ClientMessage(m.type, m.to, m.frm, m.token, body)
    entries = [Entry(e.term, e.index, e.type, e.data) for e in m.entries] if m.entries else []
    return Message(m.type, m.to, m.frm, m.term, m.log_term, m.index, entries, m.commit,
                   m.reject, m.reject_hint, m.context, m.snapshot)
