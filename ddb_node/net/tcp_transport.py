"""Peer transport on plain TCP, written and read by the node's own loop (no I/O thread).

Why not zmq here: a zmq send hands the frame to libzmq's I/O thread (an eventfd write, a
thread wake-up) and the receiver's I/O thread hands it on to its loop the same way, so every
Raft message costs two thread hops. On a 2-core machine shared by three nodes those hops
are context switches on the write path (measured: a loopback round trip of 80 µs with
zmq against 36 µs with a socket written from the loop; `benchmarks/peer_rtt.py`). Here a
send is one ``write`` on a non-blocking socket from the loop, and a receive is the loop's
reader. zmq's transport (``transport.py``) stays for CurveZMQ, which this one does not do.

The same contract as ``PeerTransport``: one-way links (each node connects one socket to
every peer and only writes on it; it only reads what peers connect to it), a peer never
blocks the others, sends never wait, and what cannot be sent now is dropped (no
connection: like zmq's IMMEDIATE; a link whose unsent bytes exceed ``MAX_BUFFERED``: like a
high-water mark) — Raft retries.

Wire: every frame is a 4-byte big-endian length and that many bytes. The first frame of a
connection is the hello, ``HELLO`` + the sender's identity (``peer_identity``); every later
frame is one ``codec`` Raft frame, whose ``frm`` must match the hello's identity (a peer
cannot speak for another node). A connection that starts with anything else, or announces
a frame above the size limit, is closed and counted (``dropped_bad_frame``).
"""
from __future__ import annotations

import asyncio
import logging
import random
import socket
import time
from typing import Callable

from ddb_node.raft.types import Message

from .codec import MAX_PEER_FRAME, FrameError, decode_message, encode_message, peer_identity
from .faults import FaultFilter

log = logging.getLogger("ddb.net")

HELLO = b"ddb-peer/1 "
MAX_FRAME = MAX_PEER_FRAME + 1024          # a codec frame's limit, plus its envelope
MAX_BUFFERED = 64 << 20                    # unsent bytes per link before sends drop
RECONNECT_MIN, RECONNECT_MAX = 0.05, 1.0   # seconds (zmq's RECONNECT_IVL / _IVL_MAX here)


def parse_tcp(addr: str) -> tuple[str, int]:
    """'tcp://host:port' (or 'host:port'; IPv6 hosts in brackets) -> (host, port)."""
    rest = addr[6:] if addr.startswith("tcp://") else addr
    host, sep, port = rest.rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"not a tcp://host:port address: {addr!r}")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if host in ("*", ""):
        host = "0.0.0.0"
    return host, int(port)


def listen(addr: str, backlog: int = 128) -> socket.socket:
    """A non-blocking listening socket bound to addr now (a taken port fails here, at once,
    not later inside the loop's server)."""
    host, port = parse_tcp(addr)
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(backlog)
        s.setblocking(False)
    except OSError:
        s.close()
        raise
    return s


def frame(data: bytes) -> bytes:
    return len(data).to_bytes(4, "big") + data


class FrameReader:
    """Splits a byte stream into length-prefixed frames; ``feed`` returns the whole frames
    (raises FrameError for a length above ``limit``)."""

    def __init__(self, limit: int = MAX_FRAME):
        self.limit = limit
        self.buf = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        buf = self.buf
        if buf:
            buf += data
            view = buf
        else:
            view = data
        out = []
        pos, end = 0, len(view)
        while end - pos >= 4:
            n = int.from_bytes(view[pos:pos + 4], "big")
            if n > self.limit:
                raise FrameError(f"a frame of {n} bytes exceeds the limit of {self.limit}")
            if end - pos - 4 < n:
                break
            out.append(bytes(view[pos + 4:pos + 4 + n]))
            pos += 4 + n
        if view is buf:
            del buf[:pos]
        elif pos < end:
            buf += view[pos:]
        return out


class _Inbound(asyncio.Protocol):
    """A connection a peer made to us: its hello, then Raft frames."""

    def __init__(self, owner: "TcpPeerTransport"):
        self.owner = owner
        self.reader = FrameReader()
        self.ident: bytes | None = None
        self.tr = None

    def connection_made(self, tr) -> None:
        self.tr = tr
        self.owner._inbound.add(self)

    def connection_lost(self, exc) -> None:
        self.owner._inbound.discard(self)

    def data_received(self, data: bytes) -> None:
        owner = self.owner
        owner.stats["bytes_received"] += len(data)
        try:
            frames = self.reader.feed(data)
        except FrameError as exc:
            self._refuse(str(exc))
            return
        for f in frames:
            if self.ident is None:
                if not f.startswith(HELLO) or len(f) > len(HELLO) + 256:
                    self._refuse("a connection that does not start with a peer hello")
                    return
                self.ident = f[len(HELLO):]
                continue
            owner._handle(self.ident, f)
            if self.tr is None or self.tr.is_closing():
                return

    def _refuse(self, why: str) -> None:
        self.owner.stats["dropped_bad_frame"] += 1
        log.debug("closed a peer connection: %s", why)
        self.tr.abort()


class _Outbound(asyncio.Protocol):
    """Our connection to a peer: written only; whatever the peer sends on it is ignored."""

    def __init__(self):
        self.lost = asyncio.get_event_loop().create_future()

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class _Link:
    """One peer: a connection kept up (reconnecting with backoff) and written from the loop."""

    def __init__(self, owner: "TcpPeerTransport", addr: str):
        self.owner = owner
        self.addr = addr
        self.tr = None
        self.closed = False
        self.task = owner.loop.create_task(self._keep_connected())

    async def _keep_connected(self) -> None:
        host, port = parse_tcp(self.addr)
        loop = self.owner.loop
        hello = frame(HELLO + self.owner.identity)
        backoff = RECONNECT_MIN
        while not self.closed:
            proto = None
            try:
                tr, proto = await loop.create_connection(_Outbound, host, port)
            except (OSError, asyncio.TimeoutError):
                pass
            else:
                if self.closed:
                    tr.abort()
                    return
                sock = tr.get_extra_info("socket")
                if sock is not None:
                    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                tr.write(hello)
                self.tr = tr
                backoff = RECONNECT_MIN
                await proto.lost
                self.tr = None
            if self.closed:
                return
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, RECONNECT_MAX)

    def write(self, data: bytes) -> bool:
        tr = self.tr
        if tr is None or tr.is_closing() or tr.get_write_buffer_size() > MAX_BUFFERED:
            return False
        tr.writelines((len(data).to_bytes(4, "big"), data))
        return True

    def close(self) -> None:
        self.closed = True
        if self.tr is not None:
            self.tr.abort()
            self.tr = None
        self.task.cancel()


class TcpPeerTransport:
    """PeerTransport's interface (send, set_peer, remove_peer, start, close, stats,
    observers, faults, last_seen, reachable) over ``_Link``s and one listening socket."""

    def __init__(self, ctx, node_id: int, cluster_id: str, bind_addr: str,
                 on_message: Callable[[Message], None], curve: dict | None = None,
                 rng: random.Random | None = None):
        if curve:
            raise ValueError("the TCP peer transport does not do CurveZMQ: use PeerTransport")
        self.node_id = node_id
        self.cluster_id = cluster_id
        self.bind_addr = bind_addr
        self.on_message = on_message
        self.identity = peer_identity(cluster_id, node_id)
        self.faults = FaultFilter(node_id, rng)
        self.peers: dict[int, _Link] = {}
        self.addresses: dict[int, str] = {}
        self.stats = {"sent": 0, "received": 0, "dropped_bad_frame": 0, "dropped_full": 0,
                      "dropped_fault": 0, "dropped_impostor": 0, "bytes_sent": 0,
                      "bytes_received": 0}
        self.loop = asyncio.get_event_loop()
        self.observers: list[Callable[[str, Message], None]] = []
        self.last_seen: dict[int, float] = {}
        self._inbound: set[_Inbound] = set()
        self._server = None
        self._starting = None
        self._listener = listen(bind_addr)

    # ---- peers ---------------------------------------------------------------------
    def set_peer(self, node_id: int, addr: str) -> None:
        if node_id == self.node_id or self.addresses.get(node_id) == addr:
            return
        self.remove_peer(node_id)
        self.peers[node_id] = _Link(self, addr)
        self.addresses[node_id] = addr

    def remove_peer(self, node_id: int) -> None:
        link = self.peers.pop(node_id, None)
        self.addresses.pop(node_id, None)
        if link is not None:
            link.close()

    # ---- sending -------------------------------------------------------------------
    def send(self, m: Message) -> None:
        if m.to not in self.peers:
            self.stats["dropped_full"] += 1
            return
        delays = self.faults.outgoing(m.to)
        if not delays:
            self.stats["dropped_fault"] += 1
            self._observe("drop", m)
            return
        data = encode_message(self.cluster_id, m)
        for d in delays:
            if d <= 0:
                self._send_now(m.to, data)
            else:
                self.loop.call_later(d, self._send_now, m.to, data)
        self._observe("send", m)

    def _observe(self, what: str, m: Message) -> None:
        for ob in self.observers:
            ob(what, m)

    def _send_now(self, to: int, data: bytes) -> None:
        link = self.peers.get(to)
        if link is None or not link.write(data):
            self.stats["dropped_full"] += 1
            return
        self.stats["sent"] += 1
        self.stats["bytes_sent"] += len(data)

    # ---- receiving -----------------------------------------------------------------
    def start(self) -> None:
        self._starting = self.loop.create_task(self._serve())

    async def _serve(self) -> None:
        self._server = await self.loop.create_server(lambda: _Inbound(self), sock=self._listener)

    def _handle(self, ident: bytes, data: bytes) -> None:
        try:
            m = decode_message(data, self.cluster_id)
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
        now = time.monotonic()
        return sorted(p for p, t in self.last_seen.items() if now - t <= within and p in self.peers)

    def close(self) -> None:
        for nid in list(self.peers):
            self.remove_peer(nid)
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        if self._server is not None:
            self._server.close()
        else:
            self._listener.close()
        for conn in list(self._inbound):
            if conn.tr is not None:
                conn.tr.abort()
        self._inbound.clear()
