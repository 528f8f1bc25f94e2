"""A raw connection to a node's client port, speaking the client wire by hand (the tests of
what a node does with frames no ddb client would send: net/client_wire.py)."""
from __future__ import annotations

import select
import socket
import time
from collections import deque

from ddb_node.net.client_wire import HELLO, MAX_FRAME
from ddb_node.net.codec import KIND_RESPONSE, decode_client
from ddb_node.net.tcp_transport import FrameReader, frame, parse_tcp


class ClientConn:
    def __init__(self, addr: str, hello: bool = True):
        self.s = socket.create_connection(parse_tcp(addr), timeout=10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.reader = FrameReader(MAX_FRAME)
        self.frames: deque = deque()
        self.eof = False
        if hello:
            self.send_raw(frame(HELLO))

    def send(self, data: bytes) -> None:
        """One frame (its length prefix added)."""
        self.send_raw(frame(data))

    def send_raw(self, data: bytes) -> None:
        self.s.sendall(data)

    def poll(self, timeout: float) -> bool:
        """Is a whole answer frame here within `timeout` seconds?"""
        deadline = time.monotonic() + timeout
        while not self.frames and not self.eof:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self.s], [], [], left)[0]:
                break
            try:
                data = self.s.recv(1 << 20)
            except ConnectionResetError:
                data = b""
            if not data:
                self.eof = True
                break
            self.frames.extend(self.reader.feed(data))
        return bool(self.frames)

    def recv(self) -> bytes:
        assert self.poll(10), "no answer frame within 10 s"
        return self.frames.popleft()

    def recv_all(self, n: int, timeout: float = 10.0) -> list[dict]:
        """Up to n answers (decoded bodies), as many as come within `timeout` each."""
        out = []
        while len(out) < n and self.poll(timeout):
            _, body = decode_client(self.frames.popleft(), None, KIND_RESPONSE)
            out.append(body)
        return out

    def closed_by_peer(self, timeout: float = 10.0) -> bool:
        """True once the node closed this connection."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self.poll(deadline - time.monotonic())
            self.frames.clear()
        return self.eof

    def close(self) -> None:
        self.s.close()
