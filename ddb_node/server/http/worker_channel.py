"""The channel between a node and one of its HTTP read workers: a Unix SOCK_SEQPACKET
socket pair, one msgpack list per datagram, file descriptors beside it (SCM_RIGHTS).

Messages (first item the kind):
  worker -> node  ["handoff", id, chunk, more] (+ the connection's fd with the first chunk)
                  ["read_index", rid]
                  ["ready"] (it listens: the node's HTTP API is up once all are)
                  ["counts", reads answered, connections handed over] (now and then)
  node -> worker  ["state", {"leader": bool, "until": monotonic s, "term", "leader_id", "gen"}]
                  ["index", rid, index or None, error message or None]

A handed-over connection's bytes go in chunks of at most CHUNK bytes: a datagram must fit
the socket's send buffer (net.core.wmem_max, ~208 KiB by default)."""
from __future__ import annotations

import os
import socket

import msgpack

CHUNK = 48 << 10
RECV_BYTES = CHUNK + 4096


def pair() -> tuple[socket.socket, socket.socket]:
    """(the node's end, the worker's end)."""
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    return a, b


def send(sock: socket.socket, msg: list, fds: tuple = ()) -> None:
    data = msgpack.packb(msg, use_bin_type=True)
    if fds:
        socket.send_fds(sock, [data], list(fds))
    else:
        sock.send(data)


def recv(sock: socket.socket) -> tuple[list | None, list[int]]:
    """One message -> (msg, fds); (None, []) at the end (the other side closed). Raises
    BlockingIOError when nothing is waiting (a non-blocking socket)."""
    data, fds, _flags, _addr = socket.recv_fds(sock, RECV_BYTES, 4)
    if not data:
        for fd in fds:
            _close(fd)
        return None, []
    try:
        msg = msgpack.unpackb(data, raw=False)
    except Exception:           # noqa: BLE001  never expected between our own processes
        msg = []
    if not isinstance(msg, list) or not msg:
        for fd in fds:
            _close(fd)
        return [], []
    return msg, fds


def waiting(sock: socket.socket):
    """The messages waiting on a non-blocking socket, as recv gives them; (None, []) last
    if the other side is gone (closed, or the socket failed)."""
    while True:
        try:
            msg, fds = recv(sock)
        except BlockingIOError:
            return
        except OSError:
            msg, fds = None, []
        yield msg, fds
        if msg is None:
            return


def _close(fd: int) -> None:
    try:
        os.close(fd)
    except OSError:
        pass
