"""The WebSocket event stream (``/ws``): what one node sees, sampled and aggregated.

Node events (role and leader changes, conf changes, snapshots, faults) go out as they
happen. Commits/applies and peer messages are aggregated per interval (default 250 ms):
per link and message type a count and byte total, plus a few sampled messages with their
type, from, to, term, index and size. Observers are registered on the node only while a
client is connected, every observer does O(1) work per message, and a client that reads
too slowly loses frames (counted) rather than buffering without bound, so observing never
slows the Raft loop.

Frames (JSON objects, each with ``type`` and ``node``):
``hello`` (node, topics, status), ``event`` (kind, ...), ``messages`` (links, samples,
interval), ``applied`` (index, count), ``status`` (role, term, leader, commit, applied,
last_index, voters, learners, faults) once a second.
Clients choose topics with ``?topics=event,messages,applied,status`` or by sending
``{"subscribe": [...]}``. ``/ws?cluster=1`` relays the streams of every member through the
node serving the page, so one socket shows the whole cluster.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time

from tornado import websocket
from tornado.httpclient import HTTPRequest

from ddb_node.raft import MsgType, Role

log = logging.getLogger("ddb.http.ws")

TOPICS = ("event", "messages", "applied", "status")
MAX_PENDING = 64          # unacknowledged frames per client before we start dropping
SAMPLES_PER_INTERVAL = 12


def light_status(server) -> dict:
    r = server.raft
    tr = server.transport
    return {"id": server.id, "role": Role(r.role).name.lower(), "term": r.term, "leader": r.leader_id,
            "commit": r.commit_index, "applied": server.sm.applied_index, "last_index": r.last_index,
            "voters": sorted(r.voters), "learners": sorted(r.learners),
            "faults": tr.faults.state.describe() if tr else {},
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
        self._registered = False
        self._ticks = 0

    # ---- clients -------------------------------------------------------------
    def add(self, client) -> None:
        self.clients.add(client)
        if not self._registered:
            self.server.observers.append(self._on_event)
            if self.server.transport is not None:
                self.server.transport.observers.append(self._on_msg)
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
                    self.broadcast("status", dict(light_status(self.server), type="status", node=node))
        except asyncio.CancelledError:
            pass


def _topics(text: str | None) -> set:
    if not text:
        return set(TOPICS)
    return {t.strip() for t in text.split(",") if t.strip() in TOPICS}


class EventSocket(websocket.WebSocketHandler):
    """``/ws``: one node's stream, or with ``?cluster=1`` all members' streams relayed."""

    def initialize(self, service):
        self.service = service
        self.topics: set = set(TOPICS)
        self.pending = 0
        self.relays: list = []
        self._closed = False

    def check_origin(self, origin: str) -> bool:
        # same host (any port: every node serves the dashboard), or no browser origin at all
        from urllib.parse import urlparse
        host = urlparse(origin).hostname
        req_host = (self.request.host or "").rsplit(":", 1)[0].strip("[]")
        return host in (req_host, "localhost", "127.0.0.1", "::1") or host is None

    async def prepare(self):
        await self.service.authorize(self, ("status",))

    def open(self):
        self.topics = _topics(self.get_argument("topics", None))
        hub = self.service.hub
        hub.add(self)
        self.send_frame(json.dumps({"type": "hello", "node": self.service.server.id,
                                    "topics": sorted(self.topics),
                                    "status": light_status(self.service.server)}, default=str))
        if self.get_argument("cluster", "") not in ("", "0", "false"):
            self._start_relays()

    def on_message(self, message):
        try:
            msg = json.loads(message)
        except ValueError:
            return
        if isinstance(msg, dict) and isinstance(msg.get("subscribe"), list):
            self.topics = {t for t in msg["subscribe"] if t in TOPICS}

    def on_close(self):
        self._closed = True
        self.service.hub.remove(self)
        for t in self.relays:
            t.cancel()

    def send_frame(self, data: str) -> None:
        if self._closed or self.ws_connection is None:
            return
        if self.pending >= MAX_PENDING:
            self.service.hub.dropped_frames += 1
            return
        self.pending += 1
        try:
            fut = self.write_message(data)
        except websocket.WebSocketClosedError:
            self.pending -= 1
            return
        fut.add_done_callback(self._sent)

    def _sent(self, fut) -> None:
        self.pending -= 1
        if not fut.cancelled():
            fut.exception()   # retrieve, so a closed socket is not logged as unhandled

    # ---- cluster relay -----------------------------------------------------------
    def _start_relays(self) -> None:
        own = self.service.server.id
        auth = self.request.headers.get("Authorization")
        for nid in self.service.member_http():
            if nid != own:
                self.relays.append(asyncio.ensure_future(self._relay(nid, auth)))

    async def _relay(self, nid: int, auth: str | None) -> None:
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
