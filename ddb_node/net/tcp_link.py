"""A client's TCP link to one node (see client_wire.py), sync (`TcpLink`, one per thread and
node, waited on with `TcpPoller`) and asyncio (`AsyncTcpLink`).

Both keep the contract the zmq `liveness.Link` had, which the clients' failover relies on:
`up` is None until the first connect, then whether the connection is up; `drops` counts
connections lost after they were up (what was sent on one is gone with it, so a caller
that sees `drops` move knows the outcome of its request is unknown); frames sent while not
connected wait and go once it connects, and a refused connect is retried with a backoff,
as zmq's queue and reconnect did. Here the kernel's word is direct: a dead node's
connection reads EOF or a reset at once, a closed port refuses the connect. A stopped or
partitioned node keeps its connection; the clients ask the other members about those.
"""
from __future__ import annotations

import asyncio
import collections
import errno
import select
import socket
import time

from .client_wire import HELLO, MAX_FRAME, RECONNECT_MAX, RECONNECT_MIN
from .codec import KIND_RESPONSE, FrameError, decode_client
from .tcp_transport import FrameReader, frame, parse_tcp

POLLIN, POLLOUT = select.POLLIN, select.POLLOUT
_RECV = 256 << 10
MAX_QUEUED = 4096          # frames an AsyncTcpLink keeps while it is not connected
_IN_PROGRESS = (errno.EINPROGRESS, errno.EAGAIN, errno.EWOULDBLOCK, errno.EALREADY)


def _open(host: str):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    s.setblocking(False)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def decode_reply(data: bytes):
    """(cluster id, reply map) of an answer frame, or None for one that must be dropped."""
    try:
        return decode_client(data, None, KIND_RESPONSE)
    except FrameError:
        return None


class TcpLink:
    """One thread's connection to one node: non-blocking, pumped by its owner (`pump` from a
    poll, `take`, `down`); never touched by two threads at once."""

    def __init__(self, addr: str):
        self.addr = addr
        self._host, self._port = parse_tcp(addr)
        self.sock: socket.socket | None = None
        self.up: bool | None = None
        self.drops = 0
        self.closed = False
        self._connecting = False
        self._out = bytearray()
        self._reader = FrameReader(MAX_FRAME)
        self._frames: collections.deque = collections.deque()
        self._retry_at = 0.0
        self._backoff = RECONNECT_MIN

    # ---- connection -----------------------------------------------------------------
    def _connect(self) -> None:
        s = self.sock = _open(self._host)
        err = s.connect_ex((self._host, self._port))
        if err == 0:
            self._connected()
        elif err in _IN_PROGRESS:
            self._connecting = True
        else:
            self._refused()

    def _connected(self) -> None:
        self._connecting = False
        self.up = True
        self._backoff = RECONNECT_MIN
        self._out[:0] = frame(HELLO)      # before whatever waited for the connection
        self._flush()

    def _refused(self) -> None:
        """A connect that failed: nothing was sent, so what waits stays queued."""
        self._close_sock()
        self.up = False
        self._retry_at = time.monotonic() + self._backoff
        self._backoff = min(self._backoff * 2, RECONNECT_MAX)

    def _lost(self) -> None:
        """An established connection is gone, and with it what was sent or queued on it."""
        self._close_sock()
        if self.up:
            self.drops += 1
        self.up = False
        self._out.clear()
        self._reader = FrameReader(MAX_FRAME)
        self._retry_at = time.monotonic() + RECONNECT_MIN

    def _close_sock(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
        self.sock = None
        self._connecting = False

    def _check_connect(self) -> None:
        s = self.sock
        err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._refused()
            return
        try:
            s.getpeername()
        except OSError:
            return              # still connecting
        self._connected()

    # ---- traffic -------------------------------------------------------------------
    def send(self, data: bytes) -> None:
        if self.closed:
            raise OSError("the link is closed")
        self._out += len(data).to_bytes(4, "big")
        self._out += data
        if self.sock is None:
            if time.monotonic() >= self._retry_at:
                self._connect()
        elif not self._connecting:
            self._flush()

    def _flush(self) -> None:
        out = self._out
        while out:
            try:
                n = self.sock.send(out)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._lost()
                return
            del out[:n]

    def _read(self) -> None:
        while self.sock is not None:
            try:
                data = self.sock.recv(_RECV)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                self._lost()
                return
            if not data:
                self._lost()
                return
            try:
                self._frames.extend(self._reader.feed(data))
            except FrameError:
                self._lost()
                return
            if len(data) < _RECV:
                return

    def pump(self) -> None:
        """Make progress without blocking: finish a connect, write what waits, read what came,
        and reconnect once the backoff allows (so `up` follows a restarted node)."""
        if self.closed:
            return
        if self.sock is None:
            if time.monotonic() >= self._retry_at:
                self._connect()
            if self.sock is None or self._connecting:
                return
        elif self._connecting:
            self._check_connect()
            if self.sock is None or self._connecting:
                return
        if self._out:
            self._flush()
        self._read()

    def events(self) -> int:
        """What a poll should wait for (0: no socket, waiting to reconnect)."""
        if self.sock is None:
            return 0
        return POLLIN | POLLOUT if self._connecting or self._out else POLLIN

    def retry_in(self) -> float:
        return max(0.0, self._retry_at - time.monotonic())

    def take(self, rid: int):
        """(cluster, reply) of the answer to request `rid` if it came; older answers are
        dropped (no system call when the poll that woke us already read it)."""
        if not self._frames:
            self.pump()
        frames = self._frames
        while frames:
            got = decode_reply(frames.popleft())
            if got is not None and got[1].get("id") == rid:
                return got
        return None

    def poll_events(self) -> bool | None:
        self.pump()
        return self.up

    @property
    def down(self) -> bool:
        return self.poll_events() is False

    def close(self) -> None:
        self.closed = True
        self._close_sock()


class TcpPoller:
    """Waits on several TcpLinks at once (one `select.poll` per wait: links reconnect, so
    their descriptors change); `wait` pumps the links that turned ready and returns them."""

    def __init__(self) -> None:
        self.links: list[TcpLink] = []

    def add(self, link: TcpLink) -> None:
        if link not in self.links:
            self.links.append(link)

    def remove(self, link: TcpLink) -> None:
        if link in self.links:
            self.links.remove(link)

    def wait(self, timeout: float) -> list[TcpLink]:
        p = select.poll()
        fds: dict[int, TcpLink] = {}
        for link in self.links:
            ev = link.events()
            if ev:
                fd = link.sock.fileno()
                fds[fd] = link
                p.register(fd, ev)
            elif not link.closed:
                timeout = min(timeout, link.retry_in())
        ready = []
        for fd, _ in p.poll(max(0, int(timeout * 1000)) + (1 if timeout > 0 else 0)):
            link = fds.get(fd)
            if link is not None:
                link.pump()
                ready.append(link)
        for link in self.links:
            if link.sock is None and not link.closed and link.retry_in() <= 0:
                link.pump()          # its backoff ran out: connect again
                ready.append(link)
        return ready


# ============================================================================ asyncio
class _Conn(asyncio.Protocol):
    def __init__(self, link: "AsyncTcpLink"):
        self.link = link
        self.reader = FrameReader(MAX_FRAME)
        self.tr = None
        self.lost = asyncio.get_event_loop().create_future()

    def connection_made(self, tr) -> None:
        self.tr = tr
        sock = tr.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.reader.feed(data)
        except FrameError:
            self.tr.abort()
            return
        on_frame = self.link.on_frame
        for f in frames:
            on_frame(f)

    def connection_lost(self, exc) -> None:
        if not self.lost.done():
            self.lost.set_result(None)


class AsyncTcpLink:
    """An asyncio connection to one node, many requests in flight: `send` never waits (frames
    wait in order for a connection), `on_frame(bytes)` gets every answer frame, `on_drop()`
    is called when a connection that was up is lost."""

    def __init__(self, addr: str, on_frame, on_drop=None):
        self.addr = addr
        self.on_frame = on_frame
        self.on_drop = on_drop
        self.up: bool | None = None
        self.drops = 0
        self.closed = False
        self._tr = None
        self._queue: list[bytes] = []
        self._task: asyncio.Task | None = None

    def send(self, data: bytes) -> None:
        if self.closed:
            raise OSError("the link is closed")
        tr = self._tr
        if tr is not None and not tr.is_closing():
            tr.writelines((len(data).to_bytes(4, "big"), data))
            return
        if len(self._queue) < MAX_QUEUED:     # beyond: dropped, the request's deadline answers
            self._queue.append(data)
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        """Connect, write what waited, hold the connection until it is lost, and connect
        again with a backoff (for as long as the link lives, as zmq's reconnect did: `up`
        follows a node that comes back even when nobody sends to it)."""
        host, port = parse_tcp(self.addr)
        loop = asyncio.get_running_loop()
        backoff = RECONNECT_MIN
        while not self.closed:
            try:
                tr, proto = await loop.create_connection(lambda: _Conn(self), host, port)
            except OSError:
                self.up = False
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, RECONNECT_MAX)
                continue
            if self.closed:
                tr.abort()
                return
            tr.write(frame(HELLO))
            queued, self._queue = self._queue, []
            for data in queued:
                tr.writelines((len(data).to_bytes(4, "big"), data))
            self._tr = tr
            self.up = True
            backoff = RECONNECT_MIN
            await proto.lost
            self._tr = None
            self.up = False
            self.drops += 1
            self._queue.clear()     # sent after the loss: their requests fail with the rest
            if self.on_drop is not None and not self.closed:
                self.on_drop()
            await asyncio.sleep(RECONNECT_MIN)

    def close(self) -> None:
        self.closed = True
        if self._tr is not None:
            self._tr.abort()
            self._tr = None
        if self._task is not None:
            self._task.cancel()
