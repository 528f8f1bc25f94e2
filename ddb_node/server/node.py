"""The node process: one asyncio loop gluing the Raft core, the durable log, the SQL state
machine and the pyzmq transport.

Every input (peer message, client request, tick) only feeds the core and schedules one
`_process_ready` for the end of the loop turn, so everything that arrived in a turn shares
one Ready: one log transaction and fsync, one apply transaction (group commit). The Ready
is handled in the order the core demands: send the leader's messages, persist, send the
rest, restore a snapshot, apply, advance.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import time
from collections import deque
from dataclasses import dataclass

import msgpack
import zmq
import zmq.asyncio

from ddb_node.net.codec import KIND_REQUEST, KIND_RESPONSE, FrameError, decode_client, encode_client
from ddb_node.net.endpoint import ClientEndpoint
from ddb_node.net.sockets import connect_dealer
from ddb_node.net.transport import PeerTransport
from ddb_node.raft import (NONE, Config, ConfChange, ConfChangeType, ConfState, EntryType, Message,
                           MsgType, NotLeader, ProposalDropped, RaftNode, Role)
from ddb_node.storage import MemoryStorage, SqliteLogStorage

from .errors import ErrorReply, bad_request, no_leader, not_leader, timeout_error, unavailable
from .members import (AddressBook, decode_addresses, encode_addresses, unwrap_snapshot,
                      wrap_snapshot)
from .options import NodeOptions

log = logging.getLogger("ddb.node")

MAP_MARKER = b"M"   # entry payloads of map steps (SQL entries are msgpack arrays)


def _retrieve(fut: asyncio.Future) -> None:
    """Mark a proposal's outcome as seen: when the client's wait timed out before the entry
    was replaced, nobody awaits the future, and asyncio would log its exception as 'never
    retrieved' (once per abandoned proposal)."""
    if not fut.cancelled():
        fut.exception()


@dataclass
class _Proposal:
    term: int
    future: asyncio.Future


class NodeServer:
    def __init__(self, opts: NodeOptions):
        opts.validate()
        self.opts = opts
        self.id = opts.node_id
        self.cluster_id = opts.cluster_id
        self.started = time.time()
        self.rng = random.Random(int.from_bytes(os.urandom(8), "big"))
        if opts.storage == "disk":
            os.makedirs(opts.data_dir, exist_ok=True)
        self.book = AddressBook(opts.path("members.json") if opts.storage == "disk" else None,
                                opts.peers)
        self.book.set(self.id, {"peer": opts.peer_addr, "client": opts.client_addr,
                                "http": opts.http_addr})
        bootstrap = ConfState() if opts.join else ConfState(tuple(sorted(int(k) for k in opts.peers)) or (self.id,))
        if opts.storage == "disk":
            self.storage = SqliteLogStorage(opts.path("raft.db"), conf_state=bootstrap)
        else:
            self.storage = MemoryStorage(conf_state=bootstrap)
        self.sm = self._open_state_machine()
        self._recover_state_machine()
        cfg = Config(id=self.id, election_tick=opts.election_tick, heartbeat_tick=opts.heartbeat_tick,
                     applied=self.sm.applied_index)
        self.raft = RaftNode(cfg, self.storage, random.Random(self.rng.getrandbits(64)))
        self.proposals: dict[int, _Proposal] = {}
        self.read_waiters: dict[bytes, asyncio.Future] = {}
        self.applied_waiters: list[tuple[int, asyncio.Future]] = []
        self.leader_waiters: list[asyncio.Future] = []
        self.read_seq = 0
        self.last_leader_contact = 0.0
        self.events: deque = deque(maxlen=500)
        self.counters = {"requests": 0, "bad_frames": 0, "proposals": 0, "applied_entries": 0,
                         "readies": 0, "fsyncs": 0, "unsynced_saves": 0, "snapshots_taken": 0, "snapshots_installed": 0,
                         "forwarded": 0, "errors": 0, "leader_gap_max_ms": 0}
        self.auto_promote: set[int] = set()
        self.map_results: dict[int, dict] = {}
        self._scheduled = False
        self._stopping: asyncio.Event | None = None
        self.ctx: zmq.asyncio.Context | None = None
        self.transport: PeerTransport | None = None
        self.client_sock = None
        self.forwarders: dict[str, zmq.asyncio.Socket] = {}
        self.forward_waiters: dict[int, asyncio.Future] = {}
        self.forward_seq = 0
        self.http = None
        self.observers: list = []          # callables(event: dict) for the event stream

    # ================================================================ setup
    def _open_state_machine(self):
        from ddb_node.sql import StateMachine
        path = self.opts.path("data.db") if self.opts.storage == "disk" else ":memory:"
        return StateMachine(path, sync=self.opts.user_db_sync)

    def _recover_state_machine(self) -> None:
        """A restart resumes from the user db; if the log was compacted past it, restore."""
        if self.storage.snapshot_meta().index > self.sm.applied_index:
            snap = self.storage.snapshot()
            log.info("node %d: restoring state machine from snapshot at %d", self.id, snap.meta.index)
            members, data = unwrap_snapshot(snap.data)
            self.book.add_missing(members, self.id)
            self.sm.restore([data])

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self.ctx = zmq.asyncio.Context()
        self.auth = self._start_curve_auth()
        self.transport = PeerTransport(self.ctx, self.id, self.cluster_id, self.opts.peer_addr,
                                       self._on_peer_message, curve=self.opts.curve,
                                       rng=random.Random(self.rng.getrandbits(64)))
        for nid, addrs in self.book.members.items():
            if nid != self.id:
                self.transport.set_peer(nid, addrs["peer"])
        self.client_sock = ClientEndpoint(self.ctx, self.opts.client_addr, self._on_client_frames,
                                          curve=self.opts.curve)
        self.transport.start()
        self.client_sock.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._stopping.set)
            except (NotImplementedError, RuntimeError):
                pass
        if self.opts.http_addr:
            from .http_api import start_http
            self.http = await start_http(self)
        tasks = [asyncio.ensure_future(self._ticker())]
        if self.opts.join:
            tasks.append(asyncio.ensure_future(self._join()))
        self._event("started", node=self.id)
        try:
            await self._stopping.wait()
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.close()

    def _start_curve_auth(self):
        """With CURVE on, only keys in the allow-list (plus the cluster's own key, which the
        peers use) may connect; everyone else fails the handshake (ZAP)."""
        curve = self.opts.curve
        if not curve:
            return None
        from zmq.auth.asyncio import AsyncioAuthenticator

        allowed = {k if isinstance(k, bytes) else k.encode() for k in curve.get("authorized", [])}
        allowed.add(curve["public"])

        class _AllowList:
            def callback(self, domain, key):
                return key in allowed

        auth = AsyncioAuthenticator(self.ctx)
        auth.start()
        auth.configure_curve_callback(domain="*", credentials_provider=_AllowList())
        return auth

    def stop(self) -> None:
        if self._stopping is not None:
            self._stopping.set()

    def close(self) -> None:
        if self.http is not None:
            try:
                self.http.stop()
            except Exception:
                pass
        if self.transport:
            self.transport.close()
        if getattr(self, "auth", None) is not None:
            self.auth.stop()
        if self.client_sock is not None:
            self.client_sock.close()
        for s in self.forwarders.values():
            s.close(0)
        self.forwarders.clear()
        try:
            self.sm.close()
        finally:
            self.storage.close()
        if self.ctx is not None:
            self.ctx.term()
            self.ctx = None

    # ================================================================ inputs
    async def _ticker(self) -> None:
        interval = self.opts.tick_ms / 1000.0
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        while True:
            next_t += interval
            await asyncio.sleep(max(0.0, next_t - loop.time()))
            if loop.time() - next_t > 5 * interval:
                next_t = loop.time()   # we were paused (SIGSTOP): don't fire a burst of ticks
            self.raft.tick()
            self._housekeeping()
            self._kick()

    def _on_peer_message(self, m: Message) -> None:
        if m.type in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP):
            now = time.monotonic()
            if m.frm == self.raft.leader_id and self.last_leader_contact:
                # the longest silence of our leader, as this loop saw it: the margin left
                # before the election timeout (a measure for benchmarks/soak.py)
                gap = int((now - self.last_leader_contact) * 1000)
                if gap > self.counters["leader_gap_max_ms"]:
                    self.counters["leader_gap_max_ms"] = gap
            self.last_leader_contact = now
        try:
            self.raft.step(m)
        except Exception:  # a core assertion: never take the node down for one message
            self.counters["errors"] += 1
            log.exception("node %d: error stepping %s from %d", self.id, m.type, m.frm)
        self._kick()

    def _kick(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._process_ready)

    # ================================================================ the Ready loop
    def _process_ready(self) -> None:
        self._scheduled = False
        raft = self.raft
        send = self.transport.send
        while raft.has_ready():
            rd = raft.ready()
            self.counters["readies"] += 1
            for m in rd.messages:
                send(m)
            if rd.hard_state is not None or rd.entries or rd.snapshot is not None:
                self.storage.save(rd.hard_state, rd.entries, rd.snapshot, sync=rd.must_sync)
                self.counters["fsyncs" if rd.must_sync else "unsynced_saves"] += 1
            for m in rd.persisted_messages:
                send(m)
            if rd.snapshot is not None:
                members, data = unwrap_snapshot(rd.snapshot.data)
                self.book.add_missing(members, self.id)
                self.sm.restore([data])
                self.counters["snapshots_installed"] += 1
                self._event("snapshot_installed", index=rd.snapshot.meta.index)
            if rd.committed_entries:
                self._apply(rd.committed_entries)
            for rs in rd.read_states:
                fut = self.read_waiters.pop(rs.ctx, None)
                if fut is not None and not fut.done():
                    fut.set_result(rs.index)
            if rd.soft_state is not None:
                self._on_soft_state(rd.soft_state)
            raft.advance(rd)
            if rd.snapshot is not None:
                self._sync_peers_with_config()
            self._release_applied()
        self._maybe_compact()

    def _apply(self, entries) -> None:
        batch, results = [], []
        for e in entries:
            if e.type == EntryType.CONF_CHANGE:
                self._on_conf_change(ConfChange.decode(e.data))
                batch.append((e.index, e.term, b""))
            elif e.data[:1] == MAP_MARKER:
                # a map step: everything before it is applied first, so every replica
                # computes its share at exactly this log position
                results.extend(self.sm.apply_batch(batch) if batch else [])
                batch = []
                results.extend(self.sm.apply_batch([(e.index, e.term, b"")]))
                self._run_map(e.index, e.data)
            else:
                batch.append((e.index, e.term, e.data))
        if batch:
            results.extend(self.sm.apply_batch(batch))
        self.counters["applied_entries"] += len(entries)
        proposals = self.proposals
        for e, r in zip(entries, results):
            p = proposals.pop(e.index, None)
            if p is None or p.future.done():
                continue
            if p.term == e.term:
                p.future.set_result(r)
            else:
                p.future.set_exception(ErrorReply(
                    "NotLeader", f"the proposal at index {e.index} was replaced by another "
                    f"leader's entry; it did not take effect", retry=True))
        if self.observers:
            self._event("applied", index=entries[-1].index, count=len(entries))

    def _run_map(self, index: int, data: bytes) -> None:
        from ddb_node.sql import Request, Statement
        try:
            spec = msgpack.unpackb(data[1:], raw=False, strict_map_key=False)
            part = spec["parts"].get(self.id)
            if part is None:
                out = {"ok": False, "error": {"type": "BadRequest",
                                              "message": f"node {self.id} has no share in this map"}}
            else:
                params = dict(spec.get("params") or {})
                params.update({"ddb_part": part, "ddb_parts": spec["nparts"]})
                res = self.sm.query(Request([Statement(spec["sql"], params)]))
                out = {"ok": True, "results": [r.to_dict() for r in res], "index": index,
                       "part": part}
        except Exception as exc:
            out = {"ok": False, "error": {"type": "BadRequest", "message": f"map failed: {exc}"}}
        self.map_results[index] = out
        while len(self.map_results) > 64:
            self.map_results.pop(next(iter(self.map_results)))

    def _on_conf_change(self, cc: ConfChange) -> None:
        addrs = decode_addresses(cc.context) if cc.context else None
        if cc.type == ConfChangeType.REMOVE:
            self.auto_promote.discard(cc.node_id)
            if cc.node_id != self.id:
                self.transport.remove_peer(cc.node_id)
                self.book.members.pop(cc.node_id, None)
                self.book.save()
        elif addrs:
            self.book.set(cc.node_id, addrs)
            self.transport.set_peer(cc.node_id, addrs["peer"])
        self._event("conf_change", change=ConfChangeType(cc.type).name.lower(), node=cc.node_id)

    def _sync_peers_with_config(self) -> None:
        cs = self.raft.conf_state
        for nid in set(cs.voters) | set(cs.learners):
            a = self.book.get(nid)
            if a and nid != self.id:
                self.transport.set_peer(nid, a["peer"])

    def _on_soft_state(self, ss) -> None:
        self._event("role", role=Role(ss.role).name.lower(), leader=ss.leader, term=self.raft.term)
        if ss.leader != NONE:
            waiters, self.leader_waiters = self.leader_waiters, []
            for f in waiters:
                if not f.done():
                    f.set_result(ss.leader)
        if ss.role != Role.LEADER:
            # reads waiting for a quorum round of a leadership we lost will never be answered
            for ctx, fut in list(self.read_waiters.items()):
                if not fut.done() and ss.role != Role.FOLLOWER:
                    fut.set_exception(ErrorReply("NoLeader", "leadership changed during the read",
                                                 retry=True))
                    self.read_waiters.pop(ctx, None)

    def _release_applied(self) -> None:
        if not self.applied_waiters:
            return
        applied = self.sm.applied_index
        keep = []
        for idx, fut in self.applied_waiters:
            if idx <= applied:
                if not fut.done():
                    fut.set_result(applied)
            else:
                keep.append((idx, fut))
        self.applied_waiters = keep

    # ================================================================ housekeeping
    def _housekeeping(self) -> None:
        raft = self.raft
        if raft.role == Role.LEADER and self.auto_promote:
            st = raft.prs
            for nid in sorted(self.auto_promote):
                pr = st.get(nid)
                if pr is None:
                    continue
                if nid not in raft.learners:
                    self.auto_promote.discard(nid)
                    continue
                if pr.match >= raft.commit_index and raft.pending_conf_index <= raft.applied:
                    try:
                        self._propose_conf(ConfChange(ConfChangeType.PROMOTE, nid))
                        self.auto_promote.discard(nid)
                        self._event("promote", node=nid)
                    except (ValueError, NotLeader, ProposalDropped):
                        pass

    def _maybe_compact(self) -> None:
        st = self.storage
        applied = self.sm.applied_index
        # runs every loop turn: only cheap, in-memory questions here
        if applied - max(st.first_index() - 1, st.snapshot_meta().index) < self.opts.snapshot_entries:
            return
        self.take_snapshot()

    def take_snapshot(self) -> int:
        applied = self.sm.applied_index
        if applied <= self.storage.snapshot_meta().index:
            return applied
        data = wrap_snapshot(self.book.members, b"".join(self.sm.snapshot_chunks(1 << 20)))
        conf = self.raft.conf_state
        self.storage.create_snapshot(applied, conf, data)
        # never discard entries the user database has not made durable (relaxed sync);
        # with memory storage nothing survives a crash anyway, so only the trailing rule holds
        keep_from = applied - self.opts.snapshot_trailing
        if self.opts.storage == "disk":
            # snapshots are rare: make the user db durable now rather than wait for a WAL
            # checkpoint (4096 pages by default), which would keep the log from compacting
            if self.sm.durable_index < keep_from:
                self.sm.sync()
            keep_from = min(keep_from, self.sm.durable_index)
        if keep_from > self.storage.first_index():
            self.storage.compact(keep_from)
        self.counters["snapshots_taken"] += 1
        self._event("snapshot", index=applied, bytes=len(data))
        return applied

    # ================================================================ events
    def _event(self, kind: str, **fields) -> None:
        ev = {"t": time.time(), "node": self.id, "kind": kind, **fields}
        if kind != "applied":
            self.events.append(ev)
        for ob in list(self.observers):
            try:
                ob(ev)
            except Exception:
                self.observers.remove(ob)

    # ================================================================ client loop
    def _on_client_frames(self, parts: list) -> None:
        if len(parts) != 2:
            self.counters["bad_frames"] += 1
            return
        asyncio.ensure_future(self._serve(parts[0], parts[1]))

    async def _serve(self, ident: bytes, frame: bytes) -> None:
        try:
            _, body = decode_client(frame, self.cluster_id, KIND_REQUEST)
        except FrameError as exc:
            self.counters["bad_frames"] += 1
            self._reply(ident, {"id": None, "ok": False,
                                "error": {"type": "BadRequest", "message": str(exc)}})
            return
        rid = body.get("id")
        from .api import handle_request
        try:
            resp = await handle_request(self, body)
        except ErrorReply as e:
            resp = {"ok": False, "error": e.to_dict()}
        except Exception as e:  # never let one request take the node down
            self.counters["errors"] += 1
            log.exception("node %d: request failed", self.id)
            resp = {"ok": False, "error": {"type": "Internal", "message": f"{type(e).__name__}: {e}"}}
        resp["id"] = rid
        resp.setdefault("node", self.id)
        resp.setdefault("term", self.raft.term)
        self._reply(ident, resp)

    def _reply(self, ident: bytes, resp: dict) -> None:
        try:
            self.client_sock.reply(ident, encode_client(self.cluster_id, KIND_RESPONSE, resp))
        except (zmq.ZMQError, TypeError, ValueError) as exc:
            log.warning("node %d: cannot send reply: %s", self.id, exc)

    # ================================================================ operations used by the API
    def propose(self, payload: bytes) -> asyncio.Future:
        return self.propose_indexed(payload)[1]

    def propose_indexed(self, payload: bytes) -> tuple[int, asyncio.Future]:
        idx = self.raft.propose(payload)
        fut = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)   # its waiter may have timed out already
        self.proposals[idx] = _Proposal(self.raft.term, fut)
        self.counters["proposals"] += 1
        self._kick()
        return idx, fut

    def _propose_conf(self, cc: ConfChange) -> asyncio.Future:
        idx = self.raft.propose_conf_change(cc)
        fut = asyncio.get_running_loop().create_future()
        fut.add_done_callback(_retrieve)
        self.proposals[idx] = _Proposal(self.raft.term, fut)
        self._kick()
        return fut

    async def propose_conf(self, cc: ConfChange, timeout: float) -> None:
        fut = self._propose_conf(cc)
        await self.wait(fut, timeout, "configuration change")

    async def read_index(self, timeout: float) -> int:
        self.read_seq += 1
        ctx = self.read_seq.to_bytes(8, "big")
        fut = asyncio.get_running_loop().create_future()
        self.read_waiters[ctx] = fut
        try:
            self.raft.read_index(ctx)
        except NotLeader:
            self.read_waiters.pop(ctx, None)
            raise no_leader()
        self._kick()
        try:
            return await self.wait(fut, timeout, "linearizable read (no quorum confirmed the leader)")
        finally:
            self.read_waiters.pop(ctx, None)

    async def wait_applied(self, index: int, timeout: float) -> None:
        if self.sm.applied_index >= index:
            return
        fut = asyncio.get_running_loop().create_future()
        self.applied_waiters.append((index, fut))
        await self.wait(fut, timeout, f"apply of index {index}")

    async def wait_leader(self, timeout: float) -> int:
        if self.raft.leader_id != NONE:
            return self.raft.leader_id
        fut = asyncio.get_running_loop().create_future()
        self.leader_waiters.append(fut)
        return await self.wait(fut, timeout, "leader election")

    async def wait_leader_change(self, timeout: float) -> int | None:
        """Wait for the next soft-state change that names a leader (None on timeout)."""
        fut = asyncio.get_running_loop().create_future()
        self.leader_waiters.append(fut)
        try:
            return await asyncio.wait_for(fut, max(0.0, timeout))
        except asyncio.TimeoutError:
            return None

    async def wait(self, fut: asyncio.Future, timeout: float, what: str):
        try:
            return await asyncio.wait_for(asyncio.shield(fut), timeout)
        except asyncio.TimeoutError:
            raise timeout_error(what, timeout) from None

    def leader_info(self) -> dict | None:
        lid = self.raft.leader_id
        if lid == NONE:
            return None
        a = self.book.get(lid) or {}
        return {"id": lid, "client": a.get("client"), "peer": a.get("peer"), "http": a.get("http")}

    # ---- forwarding to the leader ------------------------------------------------
    async def forward(self, body: dict, timeout: float) -> dict:
        info = self.leader_info()
        if info is None or not info.get("client"):
            raise no_leader()
        addr = info["client"]
        sock = self.forwarders.get(addr)
        if sock is None:
            sock = connect_dealer(self.ctx, addr, self.opts.curve)
            self.forwarders[addr] = sock
            asyncio.ensure_future(self._forward_reader(sock))
        self.forward_seq += 1
        fid = self.forward_seq
        fut = asyncio.get_running_loop().create_future()
        self.forward_waiters[fid] = fut
        fwd = dict(body)
        fwd["id"] = fid
        fwd["forwarded"] = True
        self.counters["forwarded"] += 1
        try:
            await sock.send(encode_client(self.cluster_id, KIND_REQUEST, fwd))
            return await self.wait(fut, timeout, "forwarded request")
        finally:
            self.forward_waiters.pop(fid, None)

    async def _forward_reader(self, sock) -> None:
        while True:
            try:
                frame = await sock.recv()
            except (asyncio.CancelledError, zmq.ZMQError):
                return
            try:
                _, body = decode_client(frame, self.cluster_id, KIND_RESPONSE)
            except FrameError:
                continue
            fut = self.forward_waiters.get(body.get("id"))
            if fut is not None and not fut.done():
                fut.set_result(body)

    # ---- join --------------------------------------------------------------------
    async def _join(self) -> None:
        """Ask the members to add us as a learner (the leader promotes us once caught up)."""
        from ddb_node.client import AsyncClient
        if self.raft.conf_state.voters or self.raft.conf_state.learners:
            return  # already part of a configuration (restart after joining)
        body = {"op": "join", "node_id": self.id, "peer": self.opts.peer_addr,
                "client": self.opts.client_addr, "http": self.opts.http_addr}
        delay = 0.2
        while True:
            try:
                async with AsyncClient(self.opts.join, cluster_id=self.cluster_id,
                                       curve=self.opts.curve) as c:
                    resp = await c.call(body, timeout=10.0)
                if resp.get("ok"):
                    self.book.merge({int(k): v for k, v in (resp.get("members") or {}).items()})
                    for nid, a in self.book.members.items():
                        if nid != self.id:
                            self.transport.set_peer(nid, a["peer"])
                    self._event("joined")
                    return
                log.warning("node %d: join refused: %s", self.id, resp.get("error"))
            except Exception as exc:
                log.warning("node %d: join attempt failed: %s", self.id, exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    # ---- status --------------------------------------------------------------------
    def status(self) -> dict:
        r = self.raft
        st = r.status()
        if "progress" in st:
            st["progress"] = {str(k): v for k, v in st["progress"].items()}
        st.update({
            "node": self.id, "cluster_id": self.cluster_id,
            "applied": self.sm.applied_index,
            "durable_applied": self.sm.durable_index,
            "log_first_index": self.storage.first_index(),
            "log_last_index": self.storage.last_index(),
            "snapshot_index": self.storage.snapshot_meta().index,
            "leader_addr": self.leader_info(),
            "members": self.book.to_dict(),
            "reachable": self.transport.reachable(
                2 * self.opts.election_tick * self.opts.tick_ms / 1000.0) if self.transport else [],
            "faults": self.transport.faults.state.describe() if self.transport else {},
            "transport": dict(self.transport.stats) if self.transport else {},
            "counters": dict(self.counters),
            "uptime": time.time() - self.started,
            "last_leader_contact_ms": (None if r.role == Role.LEADER or not self.last_leader_contact
                                       else int((time.monotonic() - self.last_leader_contact) * 1000)),
            "storage": self.opts.storage, "data_dir": self.opts.data_dir,
            "addresses": {"peer": self.opts.peer_addr, "client": self.opts.client_addr,
                          "http": self.opts.http_addr},
            "pid": os.getpid(),
        })
        return st


def run_node(opts: NodeOptions) -> None:
    server = NodeServer(opts)
    asyncio.run(server.run())
