"""A node's client-facing ROUTER: a plain zmq socket drained by a loop reader.

As for the peer transport (see transport.py): pyzmq's asyncio sockets cost a future per
message and a task wake-up per hop, on every request's way in and its reply's way out.
Every frame is handed to `on_frames` in the loop turn it arrives in; replies never block.
"""
from __future__ import annotations

import asyncio
from typing import Callable

import zmq

from .sockets import EVENTS, NOBLOCK, POLLIN


class ClientEndpoint:
    def __init__(self, ctx, addr: str, on_frames: Callable[[list], None], *,
                 curve: dict | None = None, max_msg: int = 40 << 20):
        self._zctx = zmq.Context.shadow(ctx.underlying)   # the same context, plain sockets
        s = self.sock = self._zctx.socket(zmq.ROUTER)
        s.setsockopt(zmq.LINGER, 0)
        s.setsockopt(zmq.MAXMSGSIZE, max_msg)
        if curve:
            s.curve_secretkey = curve["secret"]
            s.curve_publickey = curve["public"]
            s.curve_server = True
        s.bind(addr)
        self.on_frames = on_frames
        self.loop = asyncio.get_event_loop()
        self._fd = s.getsockopt(zmq.FD)
        self._reading = False

    def start(self) -> None:
        self.loop.add_reader(self._fd, self._drain)
        self._reading = True
        self.loop.call_soon(self._drain)   # requests that came before the reader was added

    def _drain(self) -> None:
        # the zmq descriptor is edge-triggered: it signals again only once the queue was
        # emptied, so a turn that stops early schedules the rest itself
        s = self.sock
        for _ in range(10_000):
            try:
                parts = s.recv_multipart(NOBLOCK)
            except zmq.ZMQError:    # Again: empty; anything else: closed
                return
            self.on_frames(parts)
        self.loop.call_soon(self._drain)

    def reply(self, ident: bytes, frame: bytes) -> None:
        """Send without blocking (raises zmq.ZMQError if it cannot)."""
        s = self.sock
        s.send_multipart([ident, frame], NOBLOCK)
        # a send may consume the descriptor's edge for requests that arrived meanwhile
        if s.getsockopt(EVENTS) & POLLIN:
            self.loop.call_soon(self._drain)

    def close(self) -> None:
        if self._reading:
            self._reading = False
            self.loop.remove_reader(self._fd)
        self.sock.close(0)
