"""The node process: a thin asyncio + pyzmq (+ HTTP) shell around one `Replica`.

All decisions live in the Replica (ddb_node/replica): this module only turns sockets and
time into its inputs and its outputs into sockets. Every input (peer message, client
request, tick) feeds the Replica and schedules one `_process_ready` for the end of the loop
turn (`_kick`), so everything that arrived in a turn shares one Ready: one log transaction
and fsync, one apply transaction (group commit).

The zmq client protocol and the HTTP API call the same entry point, `handle(body)`.
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import signal
import tempfile
import time
from collections import deque

import zmq
import zmq.asyncio

from ddb_node.net.codec import KIND_REQUEST, KIND_RESPONSE, FrameError, decode_client, encode_client
from ddb_node.net.client_wire import uses_tcp
from ddb_node.net.endpoint import ClientEndpoint
from ddb_node.net.tcp_endpoint import ClientTcpEndpoint
from ddb_node.net.tcp_link import AsyncTcpLink
from ddb_node.net.sockets import connect_dealer
from ddb_node.net.tcp_transport import TcpPeerTransport
from ddb_node.net.transport import PeerTransport
from ddb_node.protocol import RequestError, bad_request, no_leader
from ddb_node.raft import Config, ConfState, Message
from ddb_node.replica import AddressBook, Replica
from ddb_node.replica.members import encode_addresses
from ddb_node.replica.recovery import force_configuration
from ddb_node.sql import StateMachine
from ddb_node.sql.extensions import ExtensionError, resolve as resolve_extensions
from ddb_node.storage import MemoryStorage, SqliteLogStorage

from . import membership
from .cdc import Webhook
from .http.service import start_http
from .http.auth import CredentialStore, UsersFileError
from .lanes import Lane
from .client_port import ClientPort
from .loop import run as run_loop
from .membership import StartupRefused
from .metrics import LatencyHistogram
from .options import NodeOptions
from .reads import ReadService
from .reaper import Reaper
from .trace import PeerTrace

__all__ = ["NodeServer", "StartupRefused", "run_node"]

log = logging.getLogger("ddb.node")

SHELL_COUNTERS = ("bad_frames", "nodes_reaped")


class NodeServer:
    def __init__(self, opts: NodeOptions):
        opts.validate()
        self.opts = opts
        self.id = opts.node_id
        self.cluster_id = opts.cluster_id
        self.started = time.time()
        self.rng = random.Random(int.from_bytes(os.urandom(8), "big"))
        disk = opts.storage == "disk"
        if disk:
            os.makedirs(opts.data_dir, exist_ok=True)
        auth = opts.http_auth or os.environ.get("DDB_HTTP_AUTH") or None
        try:
            self.creds = CredentialStore.load(auth) if auth else None   # guards joins too
        except (OSError, UsersFileError) as e:
            raise StartupRefused(f"users file: {e}") from None
        self.book = AddressBook(opts.path("members.json") if disk else None, opts.peers)
        self.book.set(self.id, {k: v for k, v in opts.advertised.items() if v or k != "name"})
        # a joining, bootstrapping or non-voting node starts in no configuration: a member
        # gives it one (or, with --bootstrap-expect, all of them write the same one)
        bootstrap = ConfState() if (opts.join or opts.bootstrap_expect) else \
            ConfState(tuple(sorted(int(k) for k in opts.peers)) or (self.id,))
        storage = SqliteLogStorage(opts.path("raft.db"), conf_state=bootstrap) if disk \
            else MemoryStorage(conf_state=bootstrap)
        self.recovered = self._recover(storage) if disk else None
        self.identity_path = opts.path(membership.IDENTITY_FILE) if disk else None
        identity = membership.load_identity(self.identity_path)
        if identity is None and not (opts.join or opts.bootstrap_expect):
            identity = membership.founding_identity(self.cluster_id, self.book.members
                                                    if opts.peers else {self.id: opts.advertised})
            membership.save_identity(self.identity_path, identity)
        try:
            self.extension_files = resolve_extensions(opts.extensions_path, opts.path("extensions")
                                                      if disk else os.path.join(
                                                          tempfile.mkdtemp(prefix="ddb-ext-"), "x")) \
                if opts.extensions_path else []
            sm = StateMachine(opts.path("data.db") if disk else ":memory:", sync=opts.user_db_sync,
                              extension_files=tuple(self.extension_files),
                              changes=opts.change_config())
        except ExtensionError as e:
            storage.close()
            raise StartupRefused(str(e)) from None
        cfg = Config(id=self.id, election_tick=opts.election_tick, heartbeat_tick=opts.heartbeat_tick,
                     max_snapshot_chunk=opts.snapshot_chunk)
        self.replica = Replica(
            self.id, storage, sm, config=cfg, rng=random.Random(self.rng.getrandbits(64)),
            clock=time.monotonic, wall_ms=lambda: int(time.time() * 1000), book=self.book,
            snapshot_entries=opts.snapshot_entries, snapshot_trailing=opts.snapshot_trailing,
            snapshot_bytes=opts.snapshot_bytes,
            request_timeout=opts.request_timeout, durable=disk, offload_reads=disk)
        self.replica.cluster_identity = identity
        # reads run on worker threads with their own connections (a memory database has
        # none to share: it is read inline, on the loop)
        self.reads = ReadService(opts.path("data.db"), self.id,
                                 extension_files=tuple(self.extension_files)) if disk else None
        self.shell_counters = {k: 0 for k in SHELL_COUNTERS}
        self.events: deque = deque(maxlen=500)
        self.observers: list = []          # callables(event: dict) for the event stream
        self.trace = PeerTrace(self)       # recent peer messages for `trace` (%ddb_sequence)
        self.latency = LatencyHistogram()  # SQL requests as their askers see them (metrics.py)
        self.waiters: dict[int, asyncio.Future] = {}
        self.token_seq = 0
        self.forwards: dict[int, int] = {}        # forward frame id -> request token
        self.forward_of: dict[int, int] = {}      # request token -> forward frame id
        self.forward_seq = 0
        self._scheduled = False
        self._persisting = None      # the storage lane's Handle of a Ready being written
        self._persist_job = None
        # the log's writes and fsyncs, off the loop (one thread: saves stay in order)
        self._storage_thread = Lane(1, "ddb-log") if disk else None
        self._stopping: asyncio.Event | None = None
        self.ctx: zmq.asyncio.Context | None = None
        self.transport: PeerTransport | None = None
        self.client_sock = None
        self.client_port = ClientPort(self)       # its frames in, replies out
        self.forwarders: dict = {}     # leader's client address -> AsyncTcpLink or DEALER
        self.http = None
        self.reaper = Reaper(opts.reap_node_timeout, opts.reap_read_only_node_timeout)
        self.webhook = Webhook(self, opts.cdc_webhook) if opts.cdc_webhook else None
        self._startup: asyncio.Task | None = None     # joining / bootstrapping at start
        self.refused: StartupRefused | None = None     # why the node stopped by itself
        self.bootstrap_candidate: list | None = None   # --bootstrap-expect (membership.py)

    # ---- what the HTTP layer and tests look at -------------------------------------
    @property
    def raft(self):
        return self.replica.raft

    @property
    def sm(self):
        return self.replica.app

    @property
    def storage(self):
        return self.replica.storage

    @property
    def counters(self) -> dict:
        extra = self.reads.counters if self.reads is not None else {}
        return {**self.replica.counters, **self.shell_counters, **extra,
                "open_cursors": len(self.reads.cursors) if self.reads is not None else 0}

    def leader_info(self) -> dict | None:
        return self.replica.leader_info()

    # ================================================================ setup
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        self.ctx = zmq.asyncio.Context()
        self.auth = self._start_curve_auth()
        self.transport = self._transport_class()(self.ctx, self.id, self.cluster_id, self.opts.peer_addr,
                                       self._on_peer_message, curve=self.opts.curve,
                                       rng=random.Random(self.rng.getrandbits(64)))
        for nid, addrs in self.book.members.items():
            if nid != self.id:
                self.transport.set_peer(nid, addrs["peer"])
        self.trace.attach(self.transport)
        if uses_tcp(self.opts.curve):      # see net/client_wire.py
            self.client_sock = ClientTcpEndpoint(self.opts.client_addr, self.client_port.on_frames,
                                                 on_bad=self.client_port.bad_frame)
        else:
            self.client_sock = ClientEndpoint(self.ctx, self.opts.client_addr, self.client_port.on_frames,
                                              curve=self.opts.curve)
        self.transport.start()
        if self.opts.http_addr:
            # before the client endpoint answers: whoever sees the node up (a status over
            # zmq) finds its HTTP API listening too, read workers included
            self.http = await start_http(self)
        self.client_sock.start()
        for sig in (signal.SIGTERM, signal.SIGINT):
            try:
                loop.add_signal_handler(sig, self._stopping.set)
            except (NotImplementedError, RuntimeError):
                pass
        tasks = [asyncio.ensure_future(self._ticker())]
        if self.webhook is not None:           # rqlite's CDC webhook (cdc.py)
            tasks.append(asyncio.ensure_future(self.webhook.run()))
        if self.reaper.enabled:
            tasks.append(asyncio.ensure_future(self._reap_nodes()))
        if self.opts.bootstrap_expect:
            self._startup = asyncio.ensure_future(membership.bootstrap_expect(
                self, self.opts.join, self.opts.bootstrap_expect))
        elif self.opts.join:
            self._startup = asyncio.ensure_future(membership.join(self, self.opts.join))
        if self._startup is not None:
            self._startup.add_done_callback(self._startup_done)
            tasks.append(self._startup)
        self.replica.event("started")
        self._flush()
        try:
            await self._stopping.wait()
            if self.opts.remove_on_shutdown and self.refused is None:
                await membership.leave(self)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.close()
        if self.refused is not None:
            raise self.refused

    def _startup_done(self, task: asyncio.Task) -> None:
        if task.cancelled():
            return
        exc = task.exception()
        if isinstance(exc, StartupRefused):
            log.error("node %d: %s", self.id, exc)
            self.refused = exc
            self.stop()
        elif exc is not None:
            log.error("node %d: joining failed: %r", self.id, exc)

    def _recover(self, storage) -> int | None:
        """rqlite's peers.json (README "Recovery"): force the configuration it lists, as a
        committed entry of this node's log (replica/recovery.py), then remove the file."""
        path = self.opts.path(membership.PEERS_JSON)
        if not os.path.exists(path):
            return None
        try:
            voters, learners, addrs = membership.read_peers_json(path, self.book)
            membership.check_sole_survivor(path, voters, storage, self.opts.sole_survivor)
            own = addrs.get(self.id) or self.book.get(self.id)
            ctx = encode_addresses(own["peer"], own["client"], own.get("http"), own.get("name"))
            index = force_configuration(storage, self.id, voters, learners, ctx)
        except (StartupRefused, ValueError) as e:
            storage.close()
            raise StartupRefused(str(e)) from None
        for nid, a in addrs.items():
            if nid != self.id:
                self.book.set(nid, a)
        self.book.keep_only(set(voters) | set(learners))
        os.replace(path, os.path.join(os.path.dirname(path), "peers.info"))   # rqlite's name
        log.warning("node %d: recovered the cluster from %s: voters %s, learners %s (entry %d)",
                    self.id, path, voters, learners, index)
        return index

    # ---- what the membership module asks of the node ------------------------------------
    def joined(self, members: dict, identity: str | None = None) -> None:
        """A member accepted our join: learn where everyone listens, and which cluster this
        data directory now belongs to."""
        if identity and identity != self.replica.cluster_identity:
            self.replica.cluster_identity = identity
            membership.save_identity(self.identity_path, identity)
        self.book.merge({int(k): v for k, v in members.items() if int(k) != self.id})
        for nid, a in self.book.members.items():
            if nid != self.id:
                self.transport.set_peer(nid, a["peer"])
        self.replica.event("joined")
        self._flush()

    def learn_address(self, nid: int, a: dict) -> None:
        """Where a node we are about to form a cluster with listens."""
        if nid != self.id and isinstance(a.get("peer"), str) and isinstance(a.get("client"), str):
            new = {k: a.get(k) for k in ("peer", "client", "http", "name") if a.get(k) or k != "name"}
            if self.book.get(nid) != new:
                self.book.set(nid, new)
                self.transport.set_peer(nid, a["peer"])

    def bootstrap(self, seen: dict, identity: str) -> None:
        """--bootstrap-expect: every expected node is up; form the cluster of them all."""
        for nid, a in seen.items():
            self.learn_address(nid, a)
        self.replica.bootstrap(sorted(seen))
        self.replica.cluster_identity = identity
        membership.save_identity(self.identity_path, identity)
        self._flush()
        self._kick()

    def _transport_class(self):
        """Plain TCP from the loop (no I/O-thread hop per message), unless CurveZMQ is on:
        its encryption and key check are zmq's. ``DDB_PEER_TRANSPORT=zmq`` picks zmq anyway
        (to compare)."""
        if self.opts.curve or os.environ.get("DDB_PEER_TRANSPORT", "").lower() == "zmq":
            return PeerTransport
        return TcpPeerTransport

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
            if isinstance(s, AsyncTcpLink):
                s.close()
            else:
                s.close(0)
        self.forwarders.clear()
        if self.reads is not None:
            self.reads.close()
        if self._storage_thread is not None:
            self._storage_thread.shutdown(wait=True)      # a save in flight completes first
            handle, job = self._persisting, self._persist_job
            self._persisting = self._persist_job = None
            if job is not None and handle.finished and handle.exc is None:
                job.finish()       # so that close() writes nothing older than it
        try:
            self.replica.app.close()
        finally:
            self.replica.storage.close()
        if self.ctx is not None:
            self.ctx.term()
            self.ctx = None

    # ================================================================ inputs
    async def _ticker(self) -> None:
        interval = self.opts.tick_ms / 1000.0
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        next_expiry = next_t + 1.0
        while True:
            next_t += interval
            await asyncio.sleep(max(0.0, next_t - loop.time()))
            if loop.time() - next_t > 5 * interval:
                next_t = loop.time()   # we were paused (SIGSTOP): don't fire a burst of ticks
            self.replica.tick()
            self._kick()
            if self.reads is not None and next_t >= next_expiry:
                next_expiry = next_t + 1.0
                self.reads.expire()

    def _on_peer_message(self, m: Message) -> None:
        try:
            self.replica.step(m)
        except Exception:  # a core assertion: never take the node down for one message
            self.replica.counters["errors"] += 1
            log.exception("node %d: error stepping %s from %d", self.id, m.type, m.frm)
        self._kick()

    def _kick(self) -> None:
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._process_ready)

    def _process_ready(self) -> None:
        """The Ready contract, with the log's fsync off the loop. A Ready that must be
        synced is written by the storage thread while the loop goes on serving: requests
        are decided and proposed (into the core's unstable log: the next Ready, one more
        group commit), reads are answered and peer messages stepped. Its persisted
        messages, the apply and `advance` follow on the loop once the write is done (and
        only then may the next Ready be taken). A leader's appends have gone out before
        the write starts, as in the synchronous order (diss. 10.2.1); while it runs, what
        needs nothing persisted (heartbeats, their answers, appends of new proposals) goes
        out as it comes, so a slow fsync does not stop heartbeats."""
        self._scheduled = False
        if self._persisting is None:
            self.replica.process_ready(self.transport.send, self._write_later
                                       if self._storage_thread is not None else None)
        else:
            self.replica.send_while_persisting(self.transport.send)
        self._flush()

    def _write_later(self, job) -> None:
        handle = None

        def written(_result, exc) -> None:
            self._persisted(job, handle, exc)
        handle = self._storage_thread.post(asyncio.get_running_loop(), job.write, (), written)
        self._persisting, self._persist_job = handle, job

    def _persisted(self, job, handle, exc) -> None:
        if self._persisting is not handle:
            return                 # close() finished it
        self._persisting = self._persist_job = None
        if exc is not None:
            # the log could not be written: nothing of this Ready may be acknowledged, and
            # the core cannot go on without it (a failed fsync leaves the file unknown)
            log.critical("node %d: writing the Raft log failed, the node stops: %s", self.id,
                         repr(exc))
            self.replica.halted = True
            self.stop()
            return
        self.replica.persisted(job, self.transport.send, self._write_later)
        self._flush()

    # ================================================================ outputs
    def _flush(self) -> None:
        """Carry out what the Replica asked for: replies, forwards, events, peer links."""
        if self.http is not None and self.http.workers is not None:
            self.http.workers.changed()
        for item in self.replica.take_outbox():
            kind = item[0]
            if kind == "reply":
                fid = self.forward_of.pop(item[1], None)
                if fid is not None:
                    self.forwards.pop(fid, None)
                self._read_done(item[1], item[2])
            elif kind == "forward":
                self._forward(item[1], item[2], item[3])
            elif kind == "read":
                token = item[1]
                self.reads.start(item[2], item[3], self.raft.term,
                                 lambda reply, token=token: self._read_done(token, reply))
            elif kind == "event":
                self._event(item[1])
            elif kind == "peer" and self.transport is not None:
                if item[2] is None:
                    self.transport.remove_peer(item[1])
                else:
                    self.transport.set_peer(item[1], item[2])

    def _read_done(self, token: int, reply: dict) -> None:
        """The reply to the request `token` (a read's, from the read workers, or any)."""
        fut = self.waiters.pop(token, None)
        if fut is not None and not fut.done():
            fut.set_result(reply)

    def _event(self, ev: dict) -> None:
        if ev["kind"] != "applied":
            self.events.append(ev)
        for ob in list(self.observers):
            try:
                ob(ev)
            except Exception:
                self.observers.remove(ob)

    # ================================================================ the request entry point
    async def handle(self, body: dict) -> dict:
        """Serve one request frame (zmq client, HTTP, or a follower's forward)."""
        op = body.get("op") if isinstance(body, dict) else None
        if op == "faults":
            return self._faults(body)
        if op == "status":
            return {"ok": True, "status": self.status(), "node": self.id, "term": self.raft.term}
        if op == "trace":
            return self.trace.answer(body)
        if op == "join" and self.creds is not None and not await self._may_join(body):
            return {"ok": False, "node": self.id, "error": {
                "type": "Unauthorized",
                "message": "joining needs the credentials of a users-file user with the "
                           "'join' permission ('join-read-only' to join as a non-voter)"}}
        if op in ("fetch", "close"):
            if self.reads is None:
                return {"ok": False, "node": self.id, "error": bad_request(
                    "this node keeps its database in memory: it serves no cursors").to_dict()}
            return await self.reads.fetch(body) if op == "fetch" else self.reads.close_cursor(body)
        return await self._to_replica(body)

    def _to_replica(self, body) -> asyncio.Future:
        """Give a frame to the Replica under a new token -> the future of its reply."""
        self.token_seq += 1
        token = self.token_seq
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.waiters[token] = fut
        if isinstance(body, dict) and body.get("op") == "request" and not body.get("forwarded"):
            # where the asker is: a forwarded request is timed by the node that forwarded it
            t0 = loop.time()
            fut.add_done_callback(lambda f: f.cancelled() or self.latency.record(loop.time() - t0))
        self.replica.handle(token, body)
        self._flush()
        self._kick()
        return fut

    def submit(self, body: dict, done) -> None:
        """`handle` for a request frame (op "request") with no task of its own: `done(reply)`
        runs when the Replica answers (the short write path, http.quick_write; client frames)."""
        fut = self._to_replica(body)
        fut.add_done_callback(lambda f: None if f.cancelled() else done(f.result()))

    async def _may_join(self, body: dict) -> bool:
        """rqlite's join permissions: `join` for any node, `join-read-only` (also spelled
        `join-read-replica`) for a non-voter only. No credentials, no join."""
        auth = body.get("auth") if isinstance(body.get("auth"), dict) else {}
        user, pw = auth.get("username"), auth.get("password")
        if not isinstance(user, str) or not isinstance(pw, str):
            user = pw = None          # anonymous: only what the users file gives "*"
        if await self.creds.check(user, pw, ("join",)):
            return True
        if body.get("voter", True) is not False:
            return False
        return (await self.creds.check(user, pw, ("join-read-only",))
                or await self.creds.check(user, pw, ("join-read-replica",)))

    def _faults(self, body: dict) -> dict:
        cmd = body.get("cmd")
        try:
            if not isinstance(cmd, dict):
                raise bad_request("'cmd' must be a fault command map")
            try:
                state = self.transport.faults.apply(cmd)
            except (ValueError, TypeError) as e:
                raise bad_request(str(e)) from None
        except RequestError as e:
            return {"ok": False, "error": e.to_dict(), "node": self.id}
        self.replica.event("fault", cmd=cmd)
        self._flush()
        return {"ok": True, "faults": state, "node": self.id, "term": self.raft.term}

    # ---- forwarding to the leader ------------------------------------------------
    def _forward(self, token: int, leader_id: int, body: dict) -> None:
        addr = (self.book.get(leader_id) or {}).get("client")
        if not addr or self.ctx is None:
            self.replica.forward_done(token, {"ok": False, "error": no_leader().to_dict()})
            return
        sock = self.forwarders.get(addr)
        if sock is None:
            if uses_tcp(self.opts.curve):
                sock = AsyncTcpLink(addr, self._forward_answer)
            else:
                sock = connect_dealer(self.ctx, addr, self.opts.curve)
                asyncio.ensure_future(self._forward_reader(sock))
            self.forwarders[addr] = sock
        self.forward_seq += 1
        fid = self.forward_seq
        self.forwards[fid] = token
        self.forward_of[token] = fid
        frame = encode_client(self.cluster_id, KIND_REQUEST, dict(body, id=fid))
        try:
            if isinstance(sock, AsyncTcpLink):
                sock.send(frame)
            else:
                sock.send(frame, zmq.NOBLOCK)
        except (zmq.ZMQError, OSError):
            pass       # the request's deadline answers it

    async def _forward_reader(self, sock) -> None:
        while True:
            try:
                frame = await sock.recv()
            except (asyncio.CancelledError, zmq.ZMQError):
                return
            self._forward_answer(frame)

    def _forward_answer(self, frame: bytes) -> None:
        """The leader answered a forwarded request."""
        try:
            _, body = decode_client(frame, self.cluster_id, KIND_RESPONSE)
        except FrameError:
            return
        token = self.forwards.pop(body.get("id"), None)
        if token is None:
            return
        self.forward_of.pop(token, None)
        body.pop("id", None)
        self.replica.forward_done(token, body)
        self._flush()

    # ---- reaping failed nodes -------------------------------------------------------
    async def _reap_nodes(self) -> None:
        """While leading, remove the members silent for longer than the reap timeouts."""
        while True:
            await asyncio.sleep(1.0)
            if not self.replica.is_leader:
                self.reaper.not_leader()
                continue
            due = self.reaper.due(time.monotonic(), self.id, self.raft.voters,
                                  self.raft.learners, self.transport.last_seen)
            for nid in due:
                resp = await self.handle({"op": "remove", "node_id": nid})
                if resp.get("ok"):
                    self.shell_counters["nodes_reaped"] += 1
                    log.warning("node %d: reaped node %d (unreachable for longer than the "
                                "reap timeout)", self.id, nid)
                else:
                    log.warning("node %d: reaping node %d failed: %s", self.id, nid,
                                resp.get("error"))

    # ---- status --------------------------------------------------------------------
    def take_snapshot(self) -> int:
        index = self.replica.take_snapshot()
        self._flush()
        return index

    def status(self) -> dict:
        st = self.replica.status()
        st.update({
            "cluster_id": self.cluster_id,
            "reachable": self.transport.reachable(
                2 * self.opts.election_tick * self.opts.tick_ms / 1000.0) if self.transport else [],
            "faults": self.transport.faults.state.describe() if self.transport else {},
            "transport": dict(self.transport.stats) if self.transport else {},
            "counters": self.counters,
            "uptime": time.time() - self.started,
            "storage": self.opts.storage, "data_dir": self.opts.data_dir,
            "addresses": {"peer": self.opts.peer_addr, "client": self.opts.client_addr,
                          "http": self.opts.http_addr},
            "advertised": self.opts.advertised,
            "extensions": [os.path.basename(f) for f in self.extension_files],
            "non_voter": self.opts.non_voter,
            "bootstrap_candidate": self.bootstrap_candidate,
            "pid": os.getpid(),
            "cdc": self.webhook.status() if self.webhook is not None else None,
        })
        return st


def run_node(opts: NodeOptions) -> None:
    server = NodeServer(opts)
    run_loop(server.run())
