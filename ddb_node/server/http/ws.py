"""The WebSocket event stream (``/ws``): what one node sees, sampled and aggregated.

Node events (role and leader changes, conf changes, snapshots, faults) go out as they
happen. Commits/applies and peer messages are aggregated per interval (default 250 ms):
per link and message type a count and byte total, plus a few sampled messages with their
type, from, to, term, index and size. Observers are registered on the node only while a
client is connected, every observer does O(1) work per message, and a client that reads
too slowly loses frames (counted) rather than buffering without bound, so observing never
slows the Raft loop. The socket is served by wsproto (handshake and framing) on the HTTP
server's connection; the cluster relay connects to the other members with tornado's client.

Frames (JSON objects, each with ``type`` and ``node``):
``hello`` (node, topics, status), ``event`` (kind, ...), ``messages`` (links, samples,
interval), ``applied`` (index, count), ``status`` (role, term, leader, commit, applied,
last_index, voters, learners, faults, pid, started, and the cumulative ``reads`` / ``writes``
this node served) once a second, with ``latency``: the SQL requests answered since the last
status frame (n, p50_ms, p99_ms, buckets; see metrics.py).
Clients choose topics with ``?topics=event,messages,applied,status`` or by sending
``{"subscribe": [...]}``. ``/ws?cluster=1`` relays the streams of every member through the
node serving the page, so one socket shows the whole cluster.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import time

from urllib.parse import urlparse

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import AcceptConnection, CloseConnection, Ping, TextMessage
from wsproto.events import Request as WsRequest
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ddb_node.raft import MsgType, Role

from .server import Response
from ..metrics import LatencyWindow

log = logging.getLogger("ddb.http.ws")

TOPICS = ("event", "messages", "applied", "status")
MAX_BUFFER = 256 << 10   # unsent bytes per client before its frames are dropped
SAMPLES_PER_INTERVAL = 12


def light_status(server) -> dict:
    r = server.raft
    tr = server.transport
    c = server.replica.counters
    return {"id": server.id, "role": Role(r.role).name.lower(), "term": r.term, "leader": r.leader_id,
            "commit": r.commit_index, "applied": server.sm.applied_index, "last_index": r.last_index,
            "voters": sorted(r.voters), "learners": sorted(r.learners),
            "faults": tr.faults.state.describe() if tr else {},
            "reads": c["reads_served"], "writes": c["writes_applied"],
            "pid": os.getpid(), "started": server.started,
            "http": server.opts.http_addr, "t": time.time()}


def _msg_size(m) -> int:
    n = 40 + len(m.context or b"")
    for e in m.entries:
        n += len(e.data) + 16
    if m.snapshot is not None:
        n += len(getattr(m.snapshot, "data", b"") or b"")
    return n


class EventHub:
    def __init__(self, server, interval: float = 0.25):
        self.server = server
        self.interval = interval
        self.clients: set = set()
        self.links: dict[tuple, list] = {}
        self.samples: list = []
        self.applied_last = 0
        self.applied_count = 0
        self.dropped_frames = 0
        self._task: asyncio.Task | None = None
        self.latency: LatencyWindow | None = None
        self._registered = False
        self._ticks = 0

    # ---- clients -------------------------------------------------------------
    def add(self, client) -> None:
        self.clients.add(client)
        if not self._registered:
            self.server.observers.append(self._on_event)
            if self.server.transport is not None:
                self.server.transport.observers.append(self._on_msg)
            self.latency = LatencyWindow(self.server.latency)   # windows start now
            self._registered = True
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._flush_loop())

    def remove(self, client) -> None:
        self.clients.discard(client)
        if not self.clients:
            self._unregister()

    def _unregister(self) -> None:
        if self._registered:
            try:
                self.server.observers.remove(self._on_event)
            except ValueError:
                pass
            tr = self.server.transport
            if tr is not None:
                try:
                    tr.observers.remove(self._on_msg)
                except ValueError:
                    pass
            self._registered = False
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.links.clear()
        self.samples.clear()

    def close(self) -> None:
        for c in list(self.clients):
            try:
                c.close()
            except Exception:
                pass
        self.clients.clear()
        self._unregister()

    def broadcast(self, topic: str, frame: dict) -> None:
        if not self.clients:
            return
        data = json.dumps(frame, default=str)
        for c in list(self.clients):
            if topic in c.topics:
                c.send_frame(data)

    # ---- observers (called on the node's loop; O(1) each) -----------------------
    def _on_event(self, ev: dict) -> None:
        if ev.get("kind") == "applied":
            self.applied_last = ev.get("index", self.applied_last)
            self.applied_count += ev.get("count", 1)
            return
        frame = {"type": "event"}
        frame.update(ev)
        self.broadcast("event", frame)

    def _on_msg(self, direction: str, m) -> None:
        if direction != "send":
            return
        key = (m.frm, m.to, m.type)
        size = _msg_size(m)
        agg = self.links.get(key)
        if agg is None:
            self.links[key] = [1, size]
        else:
            agg[0] += 1
            agg[1] += size
        if len(self.samples) < SAMPLES_PER_INTERVAL:
            self.samples.append({"type": MsgType(m.type).name, "from": m.frm, "to": m.to,
                                 "term": m.term, "index": m.index, "entries": len(m.entries),
                                 "commit": m.commit, "size": size})

    # ---- periodic frames ---------------------------------------------------------
    async def _flush_loop(self) -> None:
        node = self.server.id
        try:
            while True:
                await asyncio.sleep(self.interval)
                self._ticks += 1
                if self.links:
                    links = [{"from": f, "to": t, "type": MsgType(ty).name, "count": c, "bytes": b}
                             for (f, t, ty), (c, b) in sorted(self.links.items())]
                    self.broadcast("messages", {"type": "messages", "node": node,
                                                "interval": self.interval, "links": links,
                                                "samples": self.samples})
                    self.links = {}
                    self.samples = []
                if self.applied_count:
                    self.broadcast("applied", {"type": "applied", "node": node,
                                               "index": self.applied_last, "count": self.applied_count})
                    self.applied_count = 0
                if self._ticks % max(1, int(round(1.0 / self.interval))) == 0:
                    self.broadcast("status", dict(light_status(self.server), type="status", node=node,
                                                  latency=self.latency.take()))
        except asyncio.CancelledError:
            pass


def _topics(text: str | None) -> set:
    if not text:
        return set(TOPICS)
    return {t.strip() for t in text.split(",") if t.strip() in TOPICS}


def serve_frames(ws, transport, data: bytes, on_text=None) -> bool:
    """A server-side WebSocket's bytes in: accept the handshake, answer pings, hand text
    messages to `on_text`, answer a close. False when the connection is to end (closed by
    the peer, or a protocol error); the caller closes the transport."""
    try:
        ws.receive_data(data)
        for ev in ws.events():
            if isinstance(ev, WsRequest):
                transport.write(ws.send(AcceptConnection()))
            elif isinstance(ev, TextMessage):
                if on_text is not None:
                    on_text(ev.data)
            elif isinstance(ev, Ping):
                transport.write(ws.send(ev.response()))
            elif isinstance(ev, CloseConnection):
                transport.write(ws.send(ev.response()))
                return False
    except (LocalProtocolError, RemoteProtocolError):
        return False
    return True


class EventSocket:
    """``/ws``: one node's stream, or with ``?cluster=1`` all members' streams relayed.

    The socket's protocol after the upgrade (see ``websocket_endpoint``): wsproto does the
    handshake and the framing, this class the topics, the relays and the bounded output."""

    def __init__(self, service, req):
        self.service = service
        args = req.arguments
        self.topics: set = _topics(_arg(args, "topics"))
        self.cluster = _arg(args, "cluster") not in (None, "", "0", "false")
        self.auth = req.headers.get("authorization")
        self.relays: list = []
        self._closed = False
        self.transport = None
        self.ws = WSConnection(ConnectionType.SERVER)
        self._handshake = _request_bytes(req)

    # ---- the protocol the HTTP server hands the socket to ---------------------------
    def start(self, transport, req, leftover: bytes) -> "EventSocket":
        self.transport = transport
        self._feed(self._handshake)
        self.service.hub.add(self)
        self.send_frame(json.dumps({"type": "hello", "node": self.service.server.id,
                                    "topics": sorted(self.topics),
                                    "status": light_status(self.service.server)}, default=str))
        if self.cluster:
            self._start_relays()
        if leftover:
            self._feed(leftover)
        return self

    def data_received(self, data: bytes) -> None:
        self._feed(data)

    def connection_lost(self, exc) -> None:
        self._on_close()

    def close(self) -> None:
        if not self._closed and self.transport is not None:
            try:
                self.transport.write(self.ws.send(CloseConnection(code=1001)))
            except Exception:
                pass
            self.transport.close()
        self._on_close()

    def _feed(self, data: bytes) -> None:
        if self._closed:
            return
        if not serve_frames(self.ws, self.transport, data, self.on_message):
            self.transport.close()
            self._on_close()

    def on_message(self, message: str) -> None:
        try:
            msg = json.loads(message)
        except ValueError:
            return
        if isinstance(msg, dict) and isinstance(msg.get("subscribe"), list):
            self.topics = {t for t in msg["subscribe"] if t in TOPICS}

    def _on_close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.service.hub.remove(self)
        for t in self.relays:
            t.cancel()

    def send_frame(self, data: str) -> None:
        """Queue one frame; a client whose unread output passes MAX_BUFFER loses frames."""
        if self._closed or self.ws.state is not ConnectionState.OPEN:
            return
        if self.transport.get_write_buffer_size() > MAX_BUFFER:
            self.service.hub.dropped_frames += 1
            return
        try:
            self.transport.write(self.ws.send(TextMessage(data=data)))
        except LocalProtocolError:
            pass

    # ---- cluster relay -----------------------------------------------------------
    def _start_relays(self) -> None:
        own = self.service.server.id
        for nid in self.service.member_http():
            if nid != own:
                self.relays.append(asyncio.ensure_future(self._relay(nid, self.auth)))

    async def _relay(self, nid: int, auth: str | None) -> None:
        from tornado import websocket
        from tornado.httpclient import HTTPRequest
        topics = ",".join(sorted(self.topics))
        headers = {"Authorization": auth} if auth else {}
        while not self._closed:
            conn = None
            try:
                addr = self.service.member_http().get(nid)
                if not addr:
                    await self.service.member_status(nid, 2.0)   # learns its HTTP address
                    addr = self.service.member_http().get(nid)
                if not addr:
                    raise ConnectionError("no HTTP address")
                url = f"{self.service.ws_scheme}://{addr}/ws?topics={topics}"
                req = HTTPRequest(url, headers=headers, connect_timeout=2.0, request_timeout=2.0,
                                  validate_cert=False)
                conn = await websocket.websocket_connect(req)
                while not self._closed:
                    msg = await conn.read_message()
                    if msg is None:
                        break
                    self.send_frame(msg)
            except asyncio.CancelledError:
                if conn is not None:
                    conn.close()
                return
            except Exception as e:   # the member is down or isolated from us: say so, retry
                self.send_frame(json.dumps({"type": "relay", "node": nid, "ok": False,
                                            "error": type(e).__name__}))
            if conn is not None:
                conn.close()
            await asyncio.sleep(1.0)


def _arg(args: dict, name: str) -> str | None:
    v = args.get(name)
    return v[-1].decode("utf-8", "replace") if v else None


def _request_bytes(req) -> bytes:
    """The upgrade request as wsproto reads it (the HTTP server has parsed it already)."""
    lines = [f"GET {req.url.decode('latin-1')} HTTP/1.1"]
    lines += [f"{k}: {v}" for k, v in req.headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def _origin_ok(req) -> bool:
    """Same host (any port: every node serves the dashboard), or no browser origin at all."""
    origin = req.headers.get("origin")
    if origin is None:
        return True
    host = urlparse(origin).hostname
    req_host = (req.headers.get("host") or "").rsplit(":", 1)[0].strip("[]")
    return host in (req_host, "localhost", "127.0.0.1", "::1") or host is None


def websocket_endpoint(service, req):
    """GET /ws: the checks tornado's WebSocketHandler made, then the upgrade."""
    if req.method != "GET":
        return Response(405, b"", [])
    if (req.headers.get("upgrade") or "").lower() != "websocket":
        return Response(400, b'Can "Upgrade" only to "WebSocket".',
                        [("Content-Type", "text/html; charset=UTF-8")])
    if "upgrade" not in (req.headers.get("connection") or "").lower():
        return Response(400, b'"Connection" must be "Upgrade".',
                        [("Content-Type", "text/html; charset=UTF-8")])
    if not _origin_ok(req):
        return Response(403, b"Cross origin websockets not allowed",
                        [("Content-Type", "text/html; charset=UTF-8")])
    sock = EventSocket(service, req)
    return Response(101, b"", [], upgrade=sock.start)
