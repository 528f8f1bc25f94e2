"""A raw peer connection for tests that send what no node would: the TCP peer transport's
wire (a hello with a claimed identity, then length-prefixed frames), or any bytes at all."""
from __future__ import annotations

import socket

from ddb_node.net.tcp_transport import HELLO, frame, parse_tcp


class PeerConn:
    def __init__(self, addr: str, identity: bytes | None = b"", hello: bool = True):
        self.s = socket.create_connection(parse_tcp(addr), timeout=10)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if hello:
            self.send_raw(frame(HELLO + (identity or b"")))

    def send(self, data: bytes) -> None:
        """One frame (its length prefix added)."""
        self.send_raw(frame(data))

    def send_raw(self, data: bytes) -> None:
        self.s.sendall(data)

    def closed_by_peer(self, timeout: float = 10.0) -> bool:
        """True once the node closed this connection (it sends nothing on it otherwise)."""
        self.s.settimeout(timeout)
        try:
            return self.s.recv(1) == b""
        except ConnectionResetError:
            return True
        except socket.timeout:
            return False

    def close(self) -> None:
        self.s.close()
