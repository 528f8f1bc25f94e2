"""The Replica: one node's whole request path as one deterministic object.

It holds the Raft core, its storage, the state machine (the application), the proposal
table, read-index and applied-index waiters, leader waiters and map-step results, and it
decides for each request what a consistency level asks for (see `requests.py`). It has no
asyncio, sockets, clocks or threads: time (`clock`, seconds, and `wall_ms`, the timestamp
stamped on entries) and randomness (`rng`) are injected, so the node process, the
simulator and the notebook's simulated cluster drive the very same code.

Inputs:  `tick()`, `step(message)`, `handle(token, body)`, `forward_done(token, reply)`,
         and the Ready stages `ready()` / `persist(rd)` / `apply_ready(rd)`.
Outputs: Raft messages in each Ready (the driver sends them), and the outbox
         (`take_outbox()`): ("reply", token, body), ("forward", token, leader_id, body),
         ("event", event), ("peer", node_id, peer_address_or_None), and, with
         `offload_reads`, ("read", token, request, meta): a read decided at meta["index"]
         that the shell runs off its loop and answers itself.

The Ready contract (the core's, see raft/DESIGN.md), driven by `process_ready` for a
driver that persists synchronously, or stage by stage by the simulator:
    1. rd = ready(); send rd.messages
    2. persist(rd)                       (storage.save; fsync when rd.must_sync)
    3. send rd.persisted_messages
    4. apply_ready(rd): restore the snapshot, apply committed entries, answer read states,
       note the soft state, advance the core, release waiters, compact.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

from ddb_node.protocol import RequestError, timeout_error
from ddb_node.raft import (NONE, Config, ConfChange, ConfChangeType, Entry, EntryType, HardState, MsgType,
                           NotLeader, ProposalDropped, RaftNode, Role)

from .compaction import Compaction
from .entries import FAIL, INFO, OK, decode_address_update, is_address_update, is_map_step
from .members import AddressBook, decode_addresses
from .requests import Requests


@dataclass(slots=True)
class _Proposal:
    term: int
    on_done: Callable       # on_done(status, result, entry)


@dataclass(slots=True)
class _ReadWait:
    on_ready: Callable      # on_ready(read_index)
    on_fail: Callable       # on_fail(RequestError)


@dataclass(slots=True)
class _Deadline:
    at: float
    seconds: float
    what: str               # what did not complete, for the Timeout error
    cleanup: Callable | None = None
    on_expire: Callable | None = None    # instead of the Timeout error (a long poll's answer)


class PersistJob:
    """One Ready's persistence split for a driver that writes off its loop: `write()` on
    any one thread (snapshot chunks, the log transaction and its fsync) while the driver
    keeps stepping the Replica -- the core allows steps, ticks and proposals while a Ready
    is outstanding, as the simulator exercises -- then `finish()` back on the driver's
    thread (the storage's in-memory view the core reads, counters) before the persisted
    messages go out. `background`: worth a thread (an fsync), else run both in place.
    A storage without `stage_save` (MemoryStorage) saves whole in `write()`."""

    __slots__ = ("r", "rd", "snap", "saves", "pending", "whole", "background")

    def __init__(self, replica, rd):
        self.r, self.rd = replica, rd
        st = replica.storage
        snap = rd.snapshot if rd.snapshot is not None and not rd.snapshot.is_empty() else None
        self.snap = snap
        self.pending = None
        self.whole = False
        self.saves = saves = rd.hard_state is not None or bool(rd.entries) or snap is not None
        stage = getattr(st, "stage_save", None)
        if saves:
            if stage is None:
                self.whole = True
            else:
                self.pending = stage(rd.hard_state, rd.entries, snap, sync=rd.must_sync)
        self.background = stage is not None and rd.must_sync and \
            (self.pending is not None or bool(rd.snapshot_chunks))

    def write(self) -> None:
        st, rd = self.r.storage, self.rd
        for c in rd.snapshot_chunks:       # staged before their acknowledgements go out
            st.stage_snapshot_chunk(c)
        if self.pending is not None:
            st.write_save(self.pending)
        elif self.whole:
            st.save(rd.hard_state, rd.entries, self.snap, sync=rd.must_sync)

    def finish(self) -> None:
        r, rd = self.r, self.rd
        if self.pending is not None:
            r.storage.finish_save(self.pending)
        c = r.counters
        for ch in rd.snapshot_chunks:
            c["snapshot_bytes_staged"] += len(ch.data)
        if self.saves:
            c["fsyncs" if rd.must_sync else "unsynced_saves"] += 1


class Replica:
    def __init__(self, node_id: int, storage, app, *, config: Config, rng: random.Random,
                 clock: Callable[[], float], wall_ms: Callable[[], int],
                 book: AddressBook | None = None, snapshot_entries: int = 20_000,
                 snapshot_trailing: int = 2_000, snapshot_bytes: int = 0,
                 request_timeout: float = 10.0,
                 durable: bool = False, observer=None, raft_rng: random.Random | None = None,
                 raft_factory: Callable | None = None, offload_reads: bool = False):
        self.id = node_id
        self.storage = storage
        self.app = app
        self.rng = rng
        self.clock = clock
        self.wall_ms = wall_ms
        self.snapshot_at_ms = wall_ms()    # when the current snapshot was taken or installed
        self.book = book if book is not None else AddressBook(None)
        self.request_timeout = request_timeout
        self.durable = durable          # storage and app survive a crash (compaction bound)
        self.observer = observer        # the simulator's checker bridge; None on a node
        self.offload_reads = offload_reads  # reads go out as ("read", ...) for the shell to run
        self.halted = False             # set by a driver that crashed this replica mid-Ready
        self.compaction = Compaction(self, every=snapshot_entries, trailing=snapshot_trailing,
                                     log_bytes=snapshot_bytes)
        self.compaction.recover()
        config.applied = app.applied_index
        raft_rng = raft_rng if raft_rng is not None else random.Random(rng.getrandbits(64))
        self.raft = (raft_factory or RaftNode)(config, storage, raft_rng)
        self.proposals: dict[int, _Proposal] = {}
        self.read_waits: dict[bytes, _ReadWait] = {}
        self.applied_waits: list[tuple[int, Callable, Callable | None]] = []
        self.leader_waits: list[Callable] = []       # fn(leader_id) on the next named leader
        self.deadlines: dict[Any, _Deadline] = {}
        self._next_deadline = float("inf")
        self.pending_tokens: set = set()              # requests not yet answered
        self.read_seq = 0
        self.last_leader_contact: float | None = None
        self.auto_promote: set[int] = set()
        self.cluster_identity: str | None = None    # which cluster this is (the shell's)
        self.map_results: dict[int, dict] = {}
        self.outbox: list[tuple] = []
        self.counters = {"requests": 0, "proposals": 0, "applied_entries": 0, "readies": 0,
                         "fsyncs": 0, "unsynced_saves": 0, "snapshots_taken": 0,
                         "snapshots_installed": 0, "snapshot_images": 0,
                         "snapshot_bytes_staged": 0, "forwarded": 0, "errors": 0, "timeouts": 0,
                         "leader_gap_max_ms": 0,
                         # SQL requests this replica answered itself (a forward is counted
                         # where it is served): summed over nodes, each request once
                         "reads_served": 0, "writes_applied": 0}
        self.requests = Requests(self)

    # ================================================================ lifecycle
    # ================================================================ inputs
    def tick(self) -> None:
        self.raft.tick()
        self._housekeeping()
        now = self.clock()
        if now >= self._next_deadline:
            self._expire(now)

    def step(self, m) -> None:
        if m.type in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP):
            now = self.clock()
            if m.frm == self.raft.leader_id and self.last_leader_contact is not None:
                # the longest silence of our leader as this replica saw it: the margin left
                # before an election timeout (benchmarks/soak.py reads it)
                gap = int((now - self.last_leader_contact) * 1000)
                if gap > self.counters["leader_gap_max_ms"]:
                    self.counters["leader_gap_max_ms"] = gap
            self.last_leader_contact = now
        self.raft.step(m)

    def handle(self, token, body: dict) -> None:
        """The one request entry point (zmq clients, HTTP, forwarded requests, the
        simulator's clients). The answer arrives in the outbox as ("reply", token, body)."""
        self.counters["requests"] += 1
        self.pending_tokens.add(token)
        try:
            self.requests.handle(token, body)
        except RequestError as e:
            self.fail(token, e)
        except Exception as e:  # noqa: BLE001  one bad request never takes the node down
            self.counters["errors"] += 1
            self.fail(token, RequestError("Internal", f"{type(e).__name__}: {e}"))

    def abandon(self) -> None:
        """The replica is gone (its process crashed): settle every low-level continuation,
        as a client would see it -- proposals unknown, reads failed. Requests get no answer."""
        proposals, self.proposals = self.proposals, {}
        for p in proposals.values():
            p.on_done(INFO, None, None)
        err = RequestError("Unavailable", "the node went down", retry=True)
        reads, self.read_waits = self.read_waits, {}
        for w in reads.values():
            w.on_fail(err)
        waits, self.applied_waits = self.applied_waits, []
        for _i, _fn, on_abandon in waits:
            if on_abandon is not None:
                on_abandon()
        self.outbox.clear()

    def forward_done(self, token, reply: dict) -> None:
        """The leader's answer to a request this replica forwarded."""
        if token not in self.pending_tokens:
            return                           # timed out meanwhile
        reply = dict(reply)
        reply.setdefault("forwarded_by", self.id)
        self.reply(token, reply)

    # ================================================================ outputs
    def take_outbox(self) -> list[tuple]:
        out, self.outbox = self.outbox, []
        return out

    def reply(self, token, body: dict) -> None:
        if token not in self.pending_tokens:
            return                           # answered already (timeout) or never asked
        self.pending_tokens.discard(token)
        self.deadlines.pop(token, None)
        body.setdefault("ok", True)
        body.setdefault("node", self.id)
        body.setdefault("term", self.raft.term)
        self.outbox.append(("reply", token, body))

    def hand_off(self, token, item: tuple) -> None:
        """The request is decided; the shell finishes it (answers it) from this outbox item."""
        if token not in self.pending_tokens:
            return
        self.pending_tokens.discard(token)
        self.deadlines.pop(token, None)
        self.outbox.append(item)

    def fail(self, token, err: RequestError) -> None:
        self.reply(token, {"ok": False, "error": err.to_dict()})

    def forward(self, token, leader_id: int, body: dict) -> None:
        self.counters["forwarded"] += 1
        self.outbox.append(("forward", token, leader_id, body))

    def event(self, kind: str, **fields) -> None:
        self.outbox.append(("event", {"t": self.wall_ms() / 1000.0, "node": self.id,
                                      "kind": kind, **fields}))

    # ================================================================ deadlines
    def set_deadline(self, token, seconds: float, what: str,
                     on_expire: Callable | None = None) -> None:
        """Answer `token` with a Timeout naming `what` (or call `on_expire`) unless it is
        answered within `seconds` of the injected clock (checked at every tick)."""
        at = self.clock() + seconds
        self.deadlines[token] = _Deadline(at, seconds, what, on_expire=on_expire)
        if at < self._next_deadline:
            self._next_deadline = at

    def waiting_for(self, token, what: str, cleanup: Callable | None = None) -> None:
        """Name the stage a request is waiting in (and what to undo if it times out there)."""
        d = self.deadlines.get(token)
        if d is not None:
            d.what = what
            d.cleanup = cleanup

    def _expire(self, now: float) -> None:
        due = [(t, d) for t, d in self.deadlines.items() if d.at <= now]
        for t, d in due:
            self.deadlines.pop(t, None)
            if d.cleanup is not None:
                d.cleanup()
            if d.on_expire is not None:
                d.on_expire()
            else:
                self.counters["timeouts"] += 1
                self.fail(t, timeout_error(d.what, d.seconds))
        self._next_deadline = min((d.at for d in self.deadlines.values()), default=float("inf"))

    # ================================================================ primitives
    @property
    def is_leader(self) -> bool:
        return self.raft.role == Role.LEADER

    def leader_info(self) -> dict | None:
        lid = self.raft.leader_id
        if lid == NONE:
            return None
        a = self.book.get(lid) or {}
        return {"id": lid, "client": a.get("client"), "peer": a.get("peer"), "http": a.get("http")}

    def propose(self, data: bytes, on_done: Callable) -> int:
        """Append data to the leader's log; on_done(status, result, entry) once the entry at
        that index is applied here (OK if it is ours, FAIL if another leader's) or a
        snapshot covers it (INFO). Raises NotLeader / ProposalDropped like the core."""
        idx = self.raft.propose(data)
        self.proposals[idx] = _Proposal(self.raft.term, on_done)
        self.counters["proposals"] += 1
        return idx

    def propose_conf_change(self, cc: ConfChange, on_done: Callable) -> int:
        idx = self.raft.propose_conf_change(cc)
        self.proposals[idx] = _Proposal(self.raft.term, on_done)
        return idx

    def read_index(self, on_ready: Callable, on_fail: Callable) -> bytes:
        """ReadIndex (diss. 6.4): on_ready(index) once a quorum confirmed this node's leader
        at `index` and this replica has applied it; on_fail(error) if leadership changes
        first. Raises NotLeader when no leader is known."""
        self.read_seq += 1
        ctx = b"r" + self.read_seq.to_bytes(8, "big")
        self.read_waits[ctx] = _ReadWait(on_ready, on_fail)
        try:
            self.raft.read_index(ctx)
        except NotLeader:
            self.read_waits.pop(ctx, None)
            raise
        return ctx

    def cancel_read(self, ctx: bytes) -> None:
        self.read_waits.pop(ctx, None)

    def wait_applied(self, index: int, fn: Callable, on_abandon: Callable | None = None) -> None:
        """fn() once the application has applied `index` (at once if it has)."""
        if self.app.applied_index >= index:
            fn()
        else:
            self.applied_waits.append((index, fn, on_abandon))

    def wait_leader(self, fn: Callable) -> None:
        """fn(leader_id) at the next soft-state change that names a leader."""
        self.leader_waits.append(fn)

    # ================================================================ the Ready stages
    def has_ready(self) -> bool:
        return self.raft.has_ready()

    def ready(self):
        self.counters["readies"] += 1
        return self.raft.ready()

    def persist(self, rd) -> None:
        job = self.start_persist(rd)
        if job is not None:
            job.write()
            job.finish()

    def start_persist(self, rd) -> "PersistJob | None":
        """Stage 2 in halves, for a driver that fsyncs off its loop (see PersistJob)."""
        return PersistJob(self, rd) if self.needs_persist(rd) else None

    @staticmethod
    def needs_persist(rd) -> bool:
        return rd.hard_state is not None or bool(rd.entries) or bool(rd.snapshot_chunks) or \
            (rd.snapshot is not None and not rd.snapshot.is_empty())

    def apply_ready(self, rd, after_apply: Callable[[], bool] | None = None) -> None:
        """Stage 4 of the contract. after_apply() runs between applying and advancing; when
        it returns False (the driver crashed us) processing stops there."""
        ob = self.observer
        snap = rd.snapshot if rd.snapshot is not None and not rd.snapshot.is_empty() else None
        if snap is not None:
            self._restore(snap)
            if self.halted:
                return
        if rd.committed_entries:
            self._apply(rd.committed_entries)
            if self.halted:
                return
        if after_apply is not None and not after_apply():
            return
        for rs in rd.read_states:
            if ob is not None:
                ob.read_state(self, rs)
            w = self.read_waits.pop(rs.ctx, None)
            if w is not None:
                self.wait_applied(rs.index, lambda w=w, i=rs.index: w.on_ready(i),
                                  lambda w=w: w.on_fail(RequestError(
                                      "Unavailable", "the node went down", retry=True)))
        if rd.soft_state is not None:
            self._on_soft_state(rd.soft_state)
        self.raft.advance(rd)
        if snap is not None:
            self._sync_peers_with_config()
        self._release_applied()
        self.compaction.maybe_compact()

    def process_ready(self, send: Callable, write_later: Callable | None = None) -> None:
        """The whole contract for a driver. Without `write_later` it persists in place;
        with it, a Ready whose save is worth a thread (PersistJob.background) is handed to
        `write_later(job)` and processing stops there: the driver runs `job.write()` off
        its loop and then calls `persisted(job, send)`, which finishes the Ready and goes
        on. No Ready is taken meanwhile (the core has one outstanding)."""
        while not self.halted and self.raft.has_ready():
            rd = self.ready()
            for m in rd.messages:
                send(m)
            job = self.start_persist(rd)
            if job is not None:
                if write_later is not None and job.background:
                    write_later(job)
                    return
                job.write()
                job.finish()
            self._after_persist(rd, send)

    def send_while_persisting(self, send: Callable) -> None:
        """While a Ready is being written: send what may go out at once (a leader's
        heartbeats and appends, heartbeat answers; RaftNode.take_messages), so that a slow
        fsync does not silence the node for its peers' election timers."""
        for m in self.raft.take_messages():
            send(m)

    def persisted(self, job: PersistJob, send: Callable, write_later: Callable | None = None) -> None:
        """A job handed to `write_later` has been written: finish its Ready, then go on."""
        job.finish()
        self._after_persist(job.rd, send)
        self.process_ready(send, write_later)

    def _after_persist(self, rd, send: Callable) -> None:
        for m in rd.persisted_messages:
            send(m)
        self.apply_ready(rd)

    # ================================================================ applying
    def _restore(self, snap) -> None:
        self.compaction.install(snap.meta.index)
        self.counters["snapshots_installed"] += 1
        self.snapshot_at_ms = self.wall_ms()
        if self.observer is not None:
            self.observer.restored(self, snap)
        for idx in [i for i in self.proposals if i <= snap.meta.index]:
            self.proposals.pop(idx).on_done(INFO, None, None)
        self.event("snapshot_installed", index=snap.meta.index)

    def _apply(self, entries) -> None:
        app, ob = self.app, self.observer
        batch: list = []
        results: list = []
        for e in entries:
            if e.type == EntryType.CONF_CHANGE:
                self.compaction.conf_changed_at = e.index
                self._on_conf_change(ConfChange.decode(e.data))
                batch.append((e.index, e.term, b""))
            elif is_address_update(e.data):
                self._on_address_update(e.data)
                batch.append((e.index, e.term, b""))
            elif is_map_step(e.data):
                # a map step: everything before it is applied first, so every replica
                # computes its share at exactly this log position
                if batch:
                    results.extend(app.apply_batch(batch))
                batch = []
                results.extend(app.apply_batch([(e.index, e.term, b"")]))
                self._run_map(e.index, e.data)
            else:
                batch.append((e.index, e.term, e.data))
        if batch:
            results.extend(app.apply_batch(batch))
        self.counters["applied_entries"] += len(entries)
        self.compaction.note_applied(entries)
        proposals = self.proposals
        for e, r in zip(entries, results):
            if ob is not None:
                ob.applied(self, e, r)
                if self.halted:
                    return
            p = proposals.pop(e.index, None)
            if p is None:
                continue
            if p.term == e.term:       # (index, term) names one entry: it is ours
                if ob is not None:
                    ob.acked(self, e)
                p.on_done(OK, r, e)
            else:
                p.on_done(FAIL, None, e)
        self.event("applied", index=entries[-1].index, count=len(entries))

    def _run_map(self, index: int, data: bytes) -> None:
        self.map_results[index] = self.requests.run_map(index, data)
        while len(self.map_results) > 64:
            self.map_results.pop(next(iter(self.map_results)))

    def _on_conf_change(self, cc: ConfChange) -> None:
        addrs = decode_addresses(cc.context) if cc.context else None
        if cc.type == ConfChangeType.REMOVE:
            self.auto_promote.discard(cc.node_id)
            if cc.node_id != self.id:
                self.book.members.pop(cc.node_id, None)
                self.book.save()
                self.outbox.append(("peer", cc.node_id, None))
        elif addrs:
            self.book.set(cc.node_id, addrs)
            self.outbox.append(("peer", cc.node_id, addrs["peer"]))
        self.event("conf_change", change=ConfChangeType(cc.type).name.lower(), node=cc.node_id)

    def _on_address_update(self, data: bytes) -> None:
        upd = decode_address_update(data)
        if upd is None:
            return
        nid, addrs = upd
        cs = self.raft.conf_state
        if nid not in cs.voters and nid not in cs.learners:
            return                      # removed meanwhile: nothing to route to
        if (self.book.get(nid) or {}).get("promote"):
            addrs = dict(addrs, promote=True)     # a new address keeps the promotion intent
        self.book.set(nid, addrs)
        if nid != self.id:
            self.outbox.append(("peer", nid, addrs["peer"]))
        self.event("address", node=nid, peer=addrs["peer"])

    def _sync_peers_with_config(self) -> None:
        cs = self.raft.conf_state
        for nid in sorted(set(cs.voters) | set(cs.learners)):
            a = self.book.get(nid)
            if a and nid != self.id:
                self.outbox.append(("peer", nid, a["peer"]))

    def _on_soft_state(self, ss) -> None:
        self.event("role", role=Role(ss.role).name.lower(), leader=ss.leader, term=self.raft.term)
        if ss.leader != NONE:
            waits, self.leader_waits = self.leader_waits, []
            for fn in waits:
                fn(ss.leader)
        if ss.role not in (Role.LEADER, Role.FOLLOWER) or ss.leader == NONE:
            # a read waiting for a quorum round of a leadership that is gone is never answered
            waits, self.read_waits = self.read_waits, {}
            err = RequestError("NoLeader", "leadership changed during the read", retry=True)
            for w in waits.values():
                w.on_fail(err)

    def _release_applied(self) -> None:
        if not self.applied_waits:
            return
        applied = self.app.applied_index
        ready = [w[1] for w in self.applied_waits if w[0] <= applied]
        if ready:
            self.applied_waits = [w for w in self.applied_waits if w[0] > applied]
            for fn in ready:
                fn()

    # ================================================================ bootstrap
    def bootstrap(self, voters) -> None:
        """Form a new cluster of `voters` (`--bootstrap-expect`): every one of them writes the
        same first entry, (1, 1, configuration = sorted voters), already committed, so their
        logs agree wherever they overlap and no node needs a leader to learn the members.
        Only for a node that belongs to no configuration and has an empty log."""
        cs = self.raft.conf_state
        if cs.voters or cs.learners or self.storage.last_index() != 0:
            raise ValueError("this node already has Raft state: it cannot bootstrap a cluster")
        voters = tuple(sorted(set(voters)))
        if self.id not in voters:
            raise ValueError(f"node {self.id} is not among the voters it bootstraps")
        cc = ConfChange(ConfChangeType.PROMOTE, self.id, b"", voters, ())
        # a vote this node already cast (answering a founder that bootstrapped first) stays:
        # the term never goes back and the vote is never forgotten
        term, vote = self.raft.term, self.raft.vote
        hs = HardState(term, vote, 1) if term >= 1 else HardState(1, NONE, 1)
        self.storage.save(hs, [Entry(1, 1, EntryType.CONF_CHANGE, cc.encode())], None, sync=True)
        cfg = self.raft.cfg
        cfg.applied = self.app.applied_index
        self.raft = RaftNode(cfg, self.storage, random.Random(self.rng.getrandbits(64)))
        self.event("bootstrap", voters=list(voters))

    # ================================================================ housekeeping
    def promotion_wanted(self) -> set[int]:
        """Learners to promote once caught up: those whose joining conf change said so (in the
        replicated address book, so any leader knows) and those a join asked this leader for."""
        raft = self.raft
        return set(self.auto_promote) | {nid for nid in raft.learners
                                         if (self.book.get(nid) or {}).get("promote")}

    def _housekeeping(self) -> None:
        raft = self.raft
        if raft.role != Role.LEADER or not raft.learners:
            return
        for nid in sorted(self.promotion_wanted()):
            pr = raft.prs.get(nid)
            if pr is None:
                continue
            if nid not in raft.learners:
                self.auto_promote.discard(nid)
                continue
            if pr.match >= raft.commit_index and raft.pending_conf_index <= raft.applied:
                try:
                    self.propose_conf_change(ConfChange(ConfChangeType.PROMOTE, nid), _ignore)
                    self.auto_promote.discard(nid)
                    self.event("promote", node=nid)
                except (ValueError, NotLeader, ProposalDropped):
                    pass

    def take_snapshot(self, trailing: int | None = None, sync: bool = True) -> int:
        """Snapshot at the applied index and compact the log (see `Compaction.take`)."""
        return self.compaction.take(trailing, sync)

    # ================================================================ looking
    def status(self) -> dict:
        r = self.raft
        st = r.status()
        if "progress" in st:
            st["progress"] = {str(k): v for k, v in st["progress"].items()}
        contact = self.last_leader_contact
        st.update({
            "node": self.id,
            "applied": self.app.applied_index,
            "durable_applied": getattr(self.app, "durable_index", self.app.applied_index),
            "log_first_index": self.storage.first_index(),
            "log_last_index": self.storage.last_index(),
            "snapshot_index": self.storage.snapshot_meta().index,
            "leader_addr": self.leader_info(),
            "members": self.book.to_dict(),
            "counters": dict(self.counters),
            "last_leader_contact_ms": (None if r.role == Role.LEADER or contact is None
                                       else int((self.clock() - contact) * 1000)),
        })
        return st


def _ignore(*_args) -> None:
    pass
