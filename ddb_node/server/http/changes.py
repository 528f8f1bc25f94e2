"""``GET /db/changes``: the node's change log (CDC) over HTTP, as newline-delimited JSON or a
WebSocket. Every node serves its own applied changes (replica/changes.py), so any node will do.

Arguments: ``since=N`` (the log index to read after, default 0), ``tables=a,b`` (only these),
``follow`` (keep the response open and stream new changes as they are applied), ``wait=S``
(without follow: wait up to S seconds for a first change), ``limit=M`` (entries per read).

- Plain GET: one answer, ``application/x-ndjson``, one event per line
  (``{"index", "table", "op", "key", "old", "new"}``); headers ``X-DDB-Changes-Through`` (resume
  from it) and ``X-DDB-Changes-Oldest`` (the oldest retained index).
- ``follow``: the same lines as they come (chunked), and after each read a line
  ``{"through": T}`` (also once per poll when nothing changed: a heartbeat and the resume point).
- WebSocket (``Upgrade: websocket``): one text frame per event, and ``{"through": T}`` frames.
- A reader behind retention: 410 with ``{"error": ..., "oldest": O}``.

Blobs are base64 strings, as in rqlite's query results.
"""
from __future__ import annotations

import asyncio
import base64
import json
import logging

from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, TextMessage
from wsproto.utilities import LocalProtocolError

from ddb_node.replica.changes import MAX_ENTRIES

from . import format as fmt
from .endpoint import DEFAULT_HEADERS, Endpoint
from .errors import HttpError, from_error
from .server import Request, Response
from .ws import _origin_ok, _request_bytes, serve_frames

log = logging.getLogger("ddb.http.changes")

POLL_S = 1.0                # a follow stream's long poll (and heartbeat) period
MAX_BUFFER = 1 << 20        # unsent bytes before the stream waits for the client to read
_NDJSON = [("Content-Type", "application/x-ndjson; charset=utf-8")] + DEFAULT_HEADERS


def _jsonable(v):
    return base64.b64encode(v).decode("ascii") if isinstance(v, bytes) else v


def _row(d):
    return None if d is None else {k: _jsonable(v) for k, v in d.items()}


def event_json(ev: list) -> dict:
    index, table, op, key, old, new = ev
    if isinstance(key, list):
        key = [_jsonable(k) for k in key]
    return {"index": index, "table": table, "op": op, "key": _jsonable(key),
            "old": _row(old), "new": _row(new)}


def _line(obj) -> bytes:
    return fmt.encode_json(obj) + b"\n"


def _arg(req: Request, name: str, default=None):
    v = req.arguments.get(name)
    return v[-1].decode("utf-8", "replace") if v else default


def _int_arg(req: Request, name: str, default: int, low: int) -> int:
    raw = _arg(req, name)
    if raw is None:
        return default
    try:
        v = int(raw)
    except ValueError:
        raise HttpError(400, f"{name} must be an integer") from None
    if v < low:
        raise HttpError(400, f"{name} must be >= {low}")
    return v


class Query:
    """One reader's position and filter; `read()` is one long poll of the node."""

    def __init__(self, req: Request):
        self.since = _int_arg(req, "since", 0, 0)
        t = _arg(req, "tables")
        self.tables = [x for x in t.split(",") if x] if t else None
        self.limit = min(_int_arg(req, "limit", MAX_ENTRIES, 1), MAX_ENTRIES)
        self.follow = "follow" in req.arguments and _arg(req, "follow") not in ("0", "false")
        try:
            self.wait = float(_arg(req, "wait", "0"))
        except ValueError:
            raise HttpError(400, "wait must be a number of seconds") from None
        if self.wait < 0:
            raise HttpError(400, "wait must not be negative")

    def body(self, wait: float) -> dict:
        b = {"op": "changes", "since": self.since, "wait": wait, "max_entries": self.limit}
        if self.tables is not None:
            b["tables"] = self.tables
        return b

    async def read(self, server, wait: float) -> dict:
        """-> the node's answer (events, through, oldest); the position advances."""
        reply = await server.handle(self.body(wait))
        if not reply.get("ok", True):
            raise _changes_error(reply.get("error") or {})
        self.since = max(self.since, reply.get("through", self.since))
        return reply


def _changes_error(err: dict) -> HttpError:
    if err.get("type") == "ChangesTruncated":
        e = HttpError(410, json.dumps({"error": err.get("message"), "oldest": err.get("oldest")}))
        return e
    return from_error(err)


class ChangesEndpoint(Endpoint):
    perms = ("query",)

    async def handle(self, service, req: Request) -> Response:
        q = Query(req)
        if (req.headers.get("upgrade") or "").lower() == "websocket":
            if not _origin_ok(req):
                return Response(403, b"Cross origin websockets not allowed",
                                [("Content-Type", "text/html; charset=UTF-8")])
            return Response(101, b"", [], upgrade=ChangesSocket(service, req, q).start)
        if q.follow:
            return Response(200, b"", [], upgrade=NdjsonStream(service, q).start)
        reply = await q.read(service.server, min(q.wait, 60.0))
        body = b"".join(_line(event_json(e)) for e in reply.get("events") or [])
        return Response(200, body, _NDJSON + [("X-DDB-Changes-Through", str(q.since)),
                                              ("X-DDB-Changes-Oldest", str(reply.get("oldest")))])


class _Stream:
    """What the two streaming forms share: the poll loop, written out through `send`."""

    def __init__(self, service, q: Query):
        self.service = service
        self.q = q
        self.transport = None
        self.task = None
        self.closed = False

    async def _loop(self) -> None:
        server = self.service.server
        try:
            while not self.closed:
                try:
                    reply = await self.q.read(server, POLL_S)
                except HttpError as e:
                    self.send_obj({"error": e.message, "status": e.status})
                    break
                for ev in reply.get("events") or []:
                    self.send_obj(event_json(ev))
                self.send_obj({"through": self.q.since})
                while not self.closed and self.transport.get_write_buffer_size() > MAX_BUFFER:
                    await asyncio.sleep(0.05)          # the client reads slowly: wait for it
        except asyncio.CancelledError:
            return
        except Exception:  # noqa: BLE001  a stream's failure ends that stream only
            log.exception("change stream failed")
        self.finish()

    def data_received(self, data: bytes) -> None:
        pass

    def connection_lost(self, exc) -> None:
        self.closed = True
        if self.task is not None:
            self.task.cancel()

    def close(self) -> None:
        self.connection_lost(None)
        if self.transport is not None:
            self.transport.close()


class NdjsonStream(_Stream):
    """``follow``: a chunked response that never ends by itself."""

    def start(self, transport, req, leftover: bytes) -> "NdjsonStream":
        self.transport = transport
        head = [b"HTTP/1.1 200 OK\r\n"] + [f"{k}: {v}\r\n".encode("latin-1") for k, v in _NDJSON]
        head.append(b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n")
        transport.write(b"".join(head))
        self.task = asyncio.ensure_future(self._loop())
        return self

    def send_obj(self, obj) -> None:
        if not self.closed:
            data = _line(obj)
            self.transport.write(b"%x\r\n%s\r\n" % (len(data), data))

    def finish(self) -> None:
        if not self.closed:
            self.transport.write(b"0\r\n\r\n")
            self.closed = True
            self.transport.close()


class ChangesSocket(_Stream):
    """The WebSocket form: one frame per event, wsproto doing the handshake and framing."""

    def __init__(self, service, req: Request, q: Query):
        super().__init__(service, q)
        self.ws = WSConnection(ConnectionType.SERVER)
        self._handshake = _request_bytes(req)

    def start(self, transport, req, leftover: bytes) -> "ChangesSocket":
        self.transport = transport
        self.data_received(self._handshake + (leftover or b""))
        self.task = asyncio.ensure_future(self._loop())
        return self

    def data_received(self, data: bytes) -> None:
        if self.closed:
            return
        if not serve_frames(self.ws, self.transport, data):
            self.close()

    def send_obj(self, obj) -> None:
        if self.closed or self.ws.state is not ConnectionState.OPEN:
            return
        try:
            self.transport.write(self.ws.send(TextMessage(data=fmt.encode_json(obj).decode())))
        except LocalProtocolError:
            pass

    def finish(self) -> None:
        if not self.closed:
            try:
                self.transport.write(self.ws.send(CloseConnection(code=1000)))
            except LocalProtocolError:
                pass
            self.close()
