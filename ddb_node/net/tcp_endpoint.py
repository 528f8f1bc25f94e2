"""A node's client-facing TCP endpoint, read and written by the node's loop (see
client_wire.py): the same face as endpoint.ClientEndpoint (start, reply, close), so the
node does not care which wire its clients speak.

Each connection gets an identity (bytes, like a ROUTER's) that `on_frames([ident, frame])`
receives and `reply(ident, frame)` answers to; an answer for a connection that is gone is
dropped, as a ROUTER drops what it cannot route. A client that stops reading cannot make
the node buffer without bound: past `max_buffered` unsent bytes its connection is closed.
"""
from __future__ import annotations

import asyncio
import logging
import socket
from typing import Callable

from .client_wire import HELLO, MAX_FRAME
from .codec import FrameError
from .tcp_transport import FrameReader, listen

log = logging.getLogger("ddb.net")


class _ClientConn(asyncio.Protocol):
    def __init__(self, owner: "ClientTcpEndpoint"):
        self.owner = owner
        self.reader = FrameReader(owner.max_frame)
        self.ident = b""
        self.hello = False
        self.tr = None

    def connection_made(self, tr) -> None:
        self.tr = tr
        sock = tr.get_extra_info("socket")
        if sock is not None:
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
        self.ident = self.owner._add(self)

    def connection_lost(self, exc) -> None:
        self.owner._conns.pop(self.ident, None)
        self.tr = None

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except FrameError as exc:
            self._refuse(str(exc))
            return
        on_frames = self.owner.on_frames
        for f in frames:
            if not self.hello:
                if f != HELLO:
                    self._refuse("a connection that does not start with a client hello")
                    return
                self.hello = True
                continue
            on_frames([self.ident, f])
            if self.tr is None:
                return

    def _refuse(self, why: str) -> None:
        self.owner.bad_connections += 1
        if self.owner.on_bad is not None:
            self.owner.on_bad()
        log.debug("closed a client connection: %s", why)
        if self.tr is not None:
            self.tr.abort()


class ClientTcpEndpoint:
    def __init__(self, addr: str, on_frames: Callable[[list], None], *,
                 max_msg: int = MAX_FRAME, max_buffered: int = 256 << 20,
                 on_bad: Callable[[], None] | None = None):
        self.on_frames = on_frames
        self.on_bad = on_bad          # a connection closed for a bad or oversized frame
        self.max_frame = max_msg
        self.max_buffered = max_buffered
        self.loop = asyncio.get_event_loop()
        self.bad_connections = 0
        self._conns: dict[bytes, _ClientConn] = {}
        self._next = 0
        self._server = None
        self._starting = None
        self._listener = listen(addr, 1024)

    def _add(self, conn: _ClientConn) -> bytes:
        self._next += 1
        ident = self._next.to_bytes(8, "big")
        self._conns[ident] = conn
        return ident

    def start(self) -> None:
        self._starting = self.loop.create_task(self._serve())

    async def _serve(self) -> None:
        self._server = await self.loop.create_server(lambda: _ClientConn(self), sock=self._listener)

    def reply(self, ident: bytes, frame: bytes) -> None:
        """Write without blocking; dropped if the connection is gone."""
        conn = self._conns.get(ident)
        if conn is None or conn.tr is None:
            return
        tr = conn.tr
        if tr.get_write_buffer_size() > self.max_buffered:
            log.warning("closed a client connection that does not read its answers")
            self._conns.pop(ident, None)
            tr.abort()
            return
        tr.writelines((len(frame).to_bytes(4, "big"), frame))

    def close(self) -> None:
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        if self._server is not None:
            self._server.close()
        else:
            self._listener.close()
        for conn in list(self._conns.values()):
            if conn.tr is not None:
                conn.tr.abort()
        self._conns.clear()
