"""Peer transport on pyzmq: one ROUTER to receive, one DEALER per peer to send.

Why ROUTER/DEALER: Raft is one-way message passing, so a request/reply lockstep (REQ/REP)
would only add waiting; DEALER sends without waiting for answers, and a DEALER per peer
gives each link its own queue and high-water mark, so one dead or slow peer never blocks
the others (sends are non-blocking and a full queue drops, which Raft tolerates). The
ROUTER prefixes every frame with the sender's socket identity, which we check against
the message's `frm`, so a peer cannot speak for another node.

Why plain (not asyncio) sockets: sends never wait and receives are drained whenever the
ROUTER's descriptor turns readable (a loop reader), so pyzmq's asyncio layer would only add
a future per message and a task wake-up per hop; on the single-client write path that layer
was a quarter of a node's CPU.
"""
from __future__ import annotations

import asyncio
import logging
import random
import time
from typing import Callable

import zmq
import zmq.asyncio

from ddb_node.raft.types import Message

from .codec import FrameError, decode_message, encode_message, peer_identity
from .faults import FaultFilter
from .sockets import NOBLOCK

log = logging.getLogger("ddb.net")


class PeerTransport:
    def __init__(self, ctx: zmq.asyncio.Context, node_id: int, cluster_id: str, bind_addr: str,
                 on_message: Callable[[Message], None], curve: dict | None = None,
                 rng: random.Random | None = None):
        self.ctx = ctx
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.bind_addr = bind_addr
        self.on_message = on_message
        self.curve = curve
        self.faults = FaultFilter(node_id, rng)
        self._zctx = zmq.Context.shadow(ctx.underlying)   # the same context, plain sockets
        self.peers: dict[int, zmq.Socket] = {}
        self.addresses: dict[int, str] = {}
        self.stats = {"sent": 0, "received": 0, "dropped_bad_frame": 0, "dropped_full": 0,
                      "dropped_fault": 0, "dropped_impostor": 0, "bytes_sent": 0,
                      "bytes_received": 0}
        self.router = self._zctx.socket(zmq.ROUTER)
        self.router.setsockopt(zmq.LINGER, 0)
        self.router.setsockopt(zmq.RCVHWM, 100_000)
        self.router.setsockopt(zmq.MAXMSGSIZE, 80 << 20)
        if curve:
            self.router.curve_secretkey = curve["secret"]
            self.router.curve_publickey = curve["public"]
            self.router.curve_server = True
        self.router.bind(bind_addr)
        self._reading = False
        self.loop = asyncio.get_event_loop()
        self.observers: list[Callable[[str, Message], None]] = []
        self.last_seen: dict[int, float] = {}

    # ---- peers ---------------------------------------------------------------------
    def set_peer(self, node_id: int, addr: str) -> None:
        if node_id == self.node_id:
            return
        if self.addresses.get(node_id) == addr:
            return
        self.remove_peer(node_id)
        s = self._zctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.SNDHWM, 20_000)
        s.setsockopt(zmq.IMMEDIATE, 1)
        s.setsockopt(zmq.RECONNECT_IVL, 50)
        s.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)
        s.setsockopt(zmq.IDENTITY, peer_identity(self.cluster_id, self.node_id))
        if self.curve:
            s.curve_secretkey = self.curve["secret"]
            s.curve_publickey = self.curve["public"]
            s.curve_serverkey = self.curve["server"]
        s.connect(addr)
        self.peers[node_id] = s
        self.addresses[node_id] = addr

    def remove_peer(self, node_id: int) -> None:
        s = self.peers.pop(node_id, None)
        self.addresses.pop(node_id, None)
        if s is not None:
            s.close(0)

    # ---- sending -------------------------------------------------------------------
    def send(self, m: Message) -> None:
        sock = self.peers.get(m.to)
        if sock is None:
            self.stats["dropped_full"] += 1
            return
        delays = self.faults.outgoing(m.to)
        if not delays:
            self.stats["dropped_fault"] += 1
            self._observe("drop", m)
            return
        frame = encode_message(self.cluster_id, m)
        for d in delays:
            if d <= 0:
                self._send_now(m.to, frame)
            else:
                self.loop.call_later(d, self._send_now, m.to, frame)
        self._observe("send", m)

    def _observe(self, what: str, m: Message) -> None:
        """Observers see ("send" | "recv" | "drop", message): the dashboard, the trace."""
        for ob in self.observers:
            ob(what, m)

    def _send_now(self, to: int, frame: bytes) -> None:
        sock = self.peers.get(to)
        if sock is None:
            return
        try:
            # never blocks: no connected peer (IMMEDIATE) or a full queue drops the message
            sock.send(frame, NOBLOCK)
        except zmq.ZMQError:
            self.stats["dropped_full"] += 1
            return
        self.stats["sent"] += 1
        self.stats["bytes_sent"] += len(frame)

    # ---- receiving -----------------------------------------------------------------
    def start(self) -> None:
        self.loop.add_reader(self.router.getsockopt(zmq.FD), self._drain)
        self._reading = True
        self.loop.call_soon(self._drain)   # frames that came before the reader was added

    def _drain(self) -> None:
        """Handle every frame waiting; one loop turn, one Ready (group commit). The zmq
        descriptor is edge-triggered: it signals again only once the queue was emptied, so
        a turn that stops early schedules the rest itself."""
        r = self.router
        for _ in range(10_000):
            try:
                parts = r.recv_multipart(NOBLOCK)
            except zmq.ZMQError:    # Again: empty; anything else: closed
                return
            self._handle(parts)
        self.loop.call_soon(self._drain)

    def _handle(self, parts: list[bytes]) -> None:
        if len(parts) != 2:
            self.stats["dropped_bad_frame"] += 1
            return
        ident, frame = parts
        self.stats["bytes_received"] += len(frame)
        try:
            m = decode_message(frame, self.cluster_id)
        except FrameError as exc:
            self.stats["dropped_bad_frame"] += 1
            log.debug("dropped peer frame: %s", exc)
            return
        if ident != peer_identity(self.cluster_id, m.frm) or m.to != self.node_id:
            self.stats["dropped_impostor"] += 1
            return
        if not self.faults.incoming_ok(m.frm):
            self.stats["dropped_fault"] += 1
            self._observe("drop", m)
            return
        self.stats["received"] += 1
        self.last_seen[m.frm] = time.monotonic()
        self._observe("recv", m)
        self.on_message(m)

    def reachable(self, within: float) -> list[int]:
        """Peers we received a message from in the last `within` seconds."""
        now = time.monotonic()
        return sorted(p for p, t in self.last_seen.items() if now - t <= within and p in self.peers)

    def close(self) -> None:
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self.router.getsockopt(zmq.FD))
        for nid in list(self.peers):
            self.remove_peer(nid)
        self.router.close(0)
