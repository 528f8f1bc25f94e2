"""HTTP/1.1 server on an ``asyncio.Protocol`` with httptools' C parser, in the node's loop.

One job: bytes on a socket <-> ``Request`` / ``Response`` objects for an application with
two methods, ``head(request)`` (at the end of the headers: the body limit, or an early
answer such as 404/405/413 before any body byte is read) and ``async handle(request)``.
Measured on this machine, this costs ~12 µs of CPU per request where tornado's HTTPServer
and RequestHandler cost ~290 µs (benchmarks/http_stacks.py), which is most of a read.

Requests on one connection are answered in order (pipelining is allowed; reading pauses
while too many wait). Limits, all enforced here: a cap on open connections (503 beyond),
header size (431), body size (413 before the body is read), and time limits for an idle
connection, for the headers and for the body, checked by one sweep per second rather than
a timer per request. A response with ``upgrade`` set hands the socket to another protocol
(the WebSocket stream). A response with ``stream`` set sends its body as it is produced
(a backup of a large database), waiting for the socket whenever the client reads slower than
the body is made, so memory holds a few chunks, never the body.
"""
from __future__ import annotations

import asyncio
import collections
import email.utils
import http
import logging
from codecs import escape_decode as _escape_decode
from urllib.parse import unquote_to_bytes

import httptools

log = logging.getLogger("ddb.http.server")

REASONS = {s.value: s.phrase for s in http.HTTPStatus}
_STATUS_LINES = {code: b"HTTP/1.1 %d %s\r\n" % (code, phrase.encode()) for code, phrase in REASONS.items()}
MAX_PIPELINED = 16


class Request:
    """One parsed request. ``headers`` has lower-case names; a repeated header's values are
    joined with commas. ``path`` and ``query`` are raw (not percent-decoded)."""

    __slots__ = ("method", "url", "path", "query", "headers", "body", "keep_alive", "upgrade",
                 "peer", "ctx", "_args")

    def __init__(self, method: str, url: bytes, headers: dict, peer):
        self.method = method
        self.url = url
        if url[:1] == b"/":
            path, _, query = url.partition(b"?")
        else:   # absolute form ("GET http://host:port/path?q HTTP/1.1"), as pyrqlite sends after a 301
            u = httptools.parse_url(url)
            path, query = u.path or b"/", u.query or b""
        self.path = path.decode("latin-1")
        self.query = query.decode("latin-1")
        self.headers = headers
        self.body = b""
        self.keep_alive = True
        self.upgrade = False
        self.peer = peer
        self.ctx = None                # the application's (the endpoint found for it)
        self._args = None

    def header(self, name: str, default=None):
        return self.headers.get(name, default)

    @property
    def arguments(self) -> dict[str, list[bytes]]:
        """Query arguments as tornado gives them: {name: [raw bytes, ...]}, blanks kept."""
        if self._args is None:
            self._args = parse_query(self.query)
        return self._args


def unquote(raw: bytes) -> bytes:
    """``urllib.parse.unquote_to_bytes``, ~4x faster for the usual case (an SQL text in a
    URL has an escape every few characters: urllib's loop costs ~3 µs a read): every %XX
    becomes \\xXX (backslashes doubled first) for the C decoder of escapes; anything it
    refuses (a % without two hex digits after it) is urllib's to decode."""
    try:
        return _escape_decode(raw.replace(b"\\", b"\\\\").replace(b"%", b"\\x"))[0]
    except ValueError:
        return unquote_to_bytes(raw)


def parse_query(query: str) -> dict[str, list[bytes]]:
    """``parse_qs(query, keep_blank_values=True)`` with latin-1 keys and bytes values (what
    tornado gives), without urllib's per-call overhead for the common all-ASCII case."""
    out: dict[str, list[bytes]] = {}
    for part in query.split("&"):
        if not part:
            continue
        k, _, v = part.partition("=")
        if "+" in k or "%" in k:
            k = unquote(k.replace("+", " ").encode("latin-1")).decode("latin-1")
        if "+" in v or "%" in v:
            val = unquote(v.replace("+", " ").encode("latin-1"))
        else:
            val = v.encode("latin-1")
        vals = out.get(k)
        if vals is None:
            out[k] = [val]
        else:
            vals.append(val)
    return out


class Response:
    """An answer. ``headers`` is a list of (name, value); the server adds Date,
    Content-Length and Connection. ``upgrade``, when set, is called with (transport, request,
    leftover bytes) after the response is written and returns the socket's new protocol.
    ``stream``, when set, is an async iterator of the body's chunks (sent with ``length`` as
    Content-Length if known, chunked otherwise); the server closes it (``aclose``) however
    the answer ends."""

    __slots__ = ("status", "body", "headers", "close", "upgrade", "stream", "length")

    def __init__(self, status: int = 200, body: bytes = b"", headers=None, *, close: bool = False,
                 upgrade=None, stream=None, length: int | None = None):
        self.status = status
        self.body = body
        self.headers = headers or []
        self.close = close
        self.upgrade = upgrade
        self.stream = stream
        self.length = length


def plain(status: int, text: str | None = None, headers=None, close: bool = False) -> Response:
    """A short text/plain answer (the reason phrase by default), newline-terminated."""
    msg = REASONS.get(status, "") if text is None else text
    return Response(status, (msg + "\n").encode("utf-8"),
                    [("Content-Type", "text/plain; charset=utf-8")] + list(headers or []), close=close)


class HttpServer:
    """Listening sockets, the open connections and the one-per-second sweep."""

    def __init__(self, app, *, max_connections: int = 1024, max_header_size: int = 64 << 10,
                 idle_timeout: float = 30.0, header_timeout: float = 30.0, body_timeout: float = 30.0,
                 ssl=None, on_refused=None, protocol=None):
        self.app = app
        self.protocol = protocol or HttpProtocol     # a read worker's serves the same way
        self.max_connections = max_connections
        self.max_header_size = max_header_size
        self.idle_timeout = idle_timeout
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.ssl = ssl
        self.on_refused = on_refused
        self.connections: set[HttpProtocol] = set()
        self.servers: list = []
        self.date = email.utils.formatdate(usegmt=True).encode()
        self._sweeper = None

    async def listen(self, host: str, port: int, backlog: int = 1024) -> list:
        loop = asyncio.get_running_loop()
        srv = await loop.create_server(lambda: self.protocol(self), host or None, port,
                                       backlog=backlog, ssl=self.ssl, reuse_address=True)
        self.servers.append(srv)
        self._start_sweeping()
        return list(srv.sockets)

    async def serve_on(self, sock) -> None:
        """Accept connections on a listening socket made elsewhere (a read worker's own,
        on the port its node reserved: http.workers)."""
        srv = await asyncio.get_running_loop().create_server(lambda: self.protocol(self), sock=sock,
                                                             ssl=self.ssl)
        self.servers.append(srv)
        self._start_sweeping()

    def serving_elsewhere(self) -> None:
        """This server accepts nothing itself: it serves the connections it adopts."""
        self._start_sweeping()

    async def adopt(self, sock, data: bytes) -> None:
        """Serve a connection another process accepted (a read worker hands over every
        connection it does not answer itself), `data` being what it had read of it."""
        self._start_sweeping()

        def protocol():
            p = self.protocol(self)
            p.adopted = data           # parsed in connection_made, before the socket is read
            return p
        await asyncio.get_running_loop().connect_accepted_socket(protocol, sock)

    def _start_sweeping(self) -> None:
        if self._sweeper is None:
            self._sweeper = asyncio.ensure_future(self._sweep())

    def close(self) -> None:
        for srv in self.servers:
            srv.close()
        self.servers.clear()
        for conn in list(self.connections):
            conn.abort()
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None

    async def _sweep(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(1.0)
            self.date = email.utils.formatdate(usegmt=True).encode()
            now = loop.time()
            for conn in list(self.connections):
                if conn.deadline is not None and now > conn.deadline:
                    conn.abort()


class HttpProtocol(asyncio.Protocol):
    """One connection: parse, queue, answer in order."""

    def __init__(self, server: HttpServer):
        self.server = server
        self.loop = asyncio.get_running_loop()
        self.transport = None
        self.parser = httptools.HttpRequestParser(self)
        self.peer = None
        self.queue: collections.deque = collections.deque()
        self.task = None
        self.deadline = None
        self.closing = False
        self.paused = False
        self.delegate = None           # the protocol the socket was handed to (WebSocket)
        self._leftover = None          # bytes after an Upgrade request, for the new protocol
        self._url = b""
        self._headers: dict = {}
        self._head_size = 0
        self._req: Request | None = None
        self._body: list = []
        self._body_size = 0
        self._limit = 0
        self._writable: asyncio.Future | None = None    # set while the transport is full
        self.adopted = b""             # what another process read of this connection (adopt)
        # the application's short path, if it has one: answer_soon(request, reply) -> True
        # when it took the request and will call reply(response) once (no task)
        self._soon = getattr(server.app, "answer_soon", None)
        self._soon_req: Request | None = None     # the request it is answering

    # ---- flow control (asyncio calls these when the write buffer passes its marks) ---
    def pause_writing(self) -> None:
        if self._writable is None:
            self._writable = self.loop.create_future()

    def resume_writing(self) -> None:
        w, self._writable = self._writable, None
        if w is not None and not w.done():
            w.set_result(None)

    # ---- connection ----------------------------------------------------------------
    def connection_made(self, transport) -> None:
        self.transport = transport
        srv = self.server
        if len(srv.connections) >= srv.max_connections:
            if srv.on_refused:
                srv.on_refused()
            transport.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                            b"Connection: close\r\n\r\n")
            transport.close()
            self.closing = True
            return
        srv.connections.add(self)
        self.peer = transport.get_extra_info("peername")
        self.deadline = self.loop.time() + srv.idle_timeout
        if self.adopted:
            # before the first read of the socket: these bytes came first
            data, self.adopted = self.adopted, b""
            self.data_received(data)

    def connection_lost(self, exc) -> None:
        self.server.connections.discard(self)
        self.closing = True
        self.deadline = None
        if self.task is not None and not self.task.done():
            self.task.cancel()
        self.resume_writing()          # a stream waiting for the socket ends (closing is set)
        if self.delegate is not None:
            self.delegate.connection_lost(exc)

    def abort(self) -> None:
        self.closing = True
        self.server.connections.discard(self)
        if self.delegate is not None:
            self.delegate.close()
        elif self.transport is not None:
            self.transport.abort()

    def data_received(self, data: bytes) -> None:
        if self.delegate is not None:
            self.delegate.data_received(data)
            return
        if self.closing:
            return
        if self._leftover is not None:
            self._leftover += data
            return
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade as up:
            self._upgrade_pending(data[up.args[0]:])
        except httptools.HttpParserError:
            self._refuse(plain(400, close=True))

    # ---- parser callbacks ------------------------------------------------------------
    def on_message_begin(self) -> None:
        self._url = b""
        self._headers = {}
        self._head_size = 0
        self._body = []
        self._body_size = 0
        self.deadline = self.loop.time() + self.server.header_timeout

    def on_url(self, url: bytes) -> None:
        self._url += url
        self._head_size += len(url)
        if self._head_size > self.server.max_header_size:
            self._too_big_head()

    def on_header(self, name: bytes, value: bytes) -> None:
        self._head_size += len(name) + len(value) + 4
        if self._head_size > self.server.max_header_size:
            self._too_big_head()
            return
        key = name.decode("latin-1").lower()
        val = value.decode("latin-1")
        old = self._headers.get(key)
        self._headers[key] = val if old is None else old + "," + val

    def on_headers_complete(self) -> None:
        if self.closing:
            return
        p = self.parser
        req = Request(p.get_method().decode("latin-1"), self._url, self._headers, self.peer)
        req.keep_alive = p.should_keep_alive()
        req.upgrade = p.should_upgrade()
        limit, early = self.server.app.head(req)
        if early is not None:
            early.close = True         # the body (if any) is never read
            self._req = None
            self._refuse(early, req)
            return
        self._req = req
        self._limit = limit
        if req.headers.get("expect", "").lower() == "100-continue":
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        self.deadline = self.loop.time() + self.server.body_timeout

    def on_body(self, body: bytes) -> None:
        if self._req is None:
            return
        self._body_size += len(body)
        if self._body_size > self._limit:
            req, self._req = self._req, None
            self._refuse(self.server.app.too_large(req), req)
            return
        self._body.append(body)

    def on_message_complete(self) -> None:
        req, self._req = self._req, None
        if req is None or self.closing:
            return
        if self._body:
            req.body = self._body[0] if len(self._body) == 1 else b"".join(self._body)
        self.deadline = None
        if self._soon is not None and self.task is None and self._soon_req is None \
                and not self.queue:
            self._soon_req = req
            if self._soon(req, self._answered_soon):
                return
            self._soon_req = None
        self.queue.append(req)
        if len(self.queue) > MAX_PIPELINED and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        if self.task is None and self._soon_req is None:
            self.task = self.loop.create_task(self._serve())

    def _answered_soon(self, resp: Response) -> None:
        """The short path's answer: written as `_serve` writes one, then the queue goes on."""
        req, self._soon_req = self._soon_req, None
        if self.closing or req is None:
            return
        self._write(resp, req)
        if resp.close or not req.keep_alive:
            self.closing = True
            self.transport.close()
            return
        if self.queue:
            nxt = self.queue.popleft()          # pipelined: the next may take the short path too
            self._soon_req = nxt
            if self._soon(nxt, self._answered_soon):
                self._resume_if_drained()
                return
            self._soon_req = None
            self.queue.appendleft(nxt)
            self.task = self.loop.create_task(self._serve())
        else:
            self.deadline = self.loop.time() + self.server.idle_timeout

    def _resume_if_drained(self) -> None:
        if self.paused and len(self.queue) <= MAX_PIPELINED // 2:
            self.paused = False
            self.transport.resume_reading()

    def _too_big_head(self) -> None:
        self._refuse(plain(431, close=True))

    def _upgrade_pending(self, rest: bytes) -> None:
        """The parser stops after an Upgrade request: its bytes beyond are the new protocol's."""
        self._leftover = rest

    # ---- answering --------------------------------------------------------------------
    async def _serve(self) -> None:
        app = self.server.app
        try:
            while self.queue and not self.closing:
                req = self.queue.popleft()
                try:
                    resp = await app.handle(req)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("HTTP handler failed: %s %s", req.method, req.path)
                    resp = plain(500)
                if self.closing:
                    return
                if resp.upgrade is not None:    # the new protocol writes its own handshake
                    self.delegate = resp.upgrade(self.transport, req, self._leftover or b"")
                    self.deadline = None
                    return
                if resp.stream is not None:
                    if not await self._write_stream(resp, req):
                        return
                else:
                    self._write(resp, req)
                if resp.close or not req.keep_alive or req.upgrade:
                    self.closing = True
                    self.transport.close()
                    return
                self._resume_if_drained()
            self.deadline = self.loop.time() + self.server.idle_timeout
        finally:
            self.task = None

    def _write(self, resp: Response, req: Request | None) -> None:
        status = resp.status
        head = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status,
                b"Date: ", self.server.date, b"\r\n"]
        for k, v in resp.headers:
            head.append(f"{k}: {v}\r\n".encode("latin-1"))
        body = resp.body
        if resp.upgrade is None:
            head.append(b"Content-Length: %d\r\n" % len(body))
        if resp.close or (req is not None and not req.keep_alive):
            head.append(b"Connection: close\r\n")
        head.append(b"\r\n")
        if req is not None and req.method == "HEAD":
            body = b""
        self.transport.write(b"".join(head) + body if len(body) < 65536 else b"".join(head))
        if len(body) >= 65536:
            self.transport.write(body)

    async def _write_stream(self, resp: Response, req: Request) -> bool:
        """Send a streamed body; False if the connection ended (or the stream failed, which
        can only be told to the client by closing: the status line is already sent)."""
        stream = resp.stream
        try:
            status = resp.status
            head = [_STATUS_LINES.get(status) or b"HTTP/1.1 %d Unknown\r\n" % status,
                    b"Date: ", self.server.date, b"\r\n"]
            for k, v in resp.headers:
                head.append(f"{k}: {v}\r\n".encode("latin-1"))
            chunked = resp.length is None
            head.append(b"Transfer-Encoding: chunked\r\n" if chunked
                        else b"Content-Length: %d\r\n" % resp.length)
            if resp.close or not req.keep_alive:
                head.append(b"Connection: close\r\n")
            head.append(b"\r\n")
            self.transport.write(b"".join(head))
            if req.method == "HEAD":
                return True
            sent = 0
            async for chunk in stream:
                if self.closing:
                    return False
                if not chunk:
                    continue
                sent += len(chunk)
                self.transport.write(b"%x\r\n%b\r\n" % (len(chunk), chunk) if chunked else chunk)
                if self._writable is not None:
                    await self._writable
                    if self.closing:
                        return False
            if not chunked and sent != resp.length:
                raise ValueError(f"streamed {sent} bytes of a body announced as {resp.length}")
            if chunked:
                self.transport.write(b"0\r\n\r\n")
            return True
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("HTTP streamed answer failed: %s %s", req.method, req.path)
            self.closing = True
            self.transport.close()
            return False
        finally:
            await stream.aclose()

    def _refuse(self, resp: Response, req: Request | None = None) -> None:
        """Answer at once and close: the rest of what the client sends is not read."""
        if self.closing:
            return
        self.closing = True
        if self.task is not None or self.queue:
            # earlier pipelined requests are still being answered: drop the connection
            self.transport.close()
            return
        resp.close = True
        if self._soon_req is not None:
            self.transport.close()       # an earlier request is still being answered
            return
        self._write(resp, req)
        self.transport.close()
