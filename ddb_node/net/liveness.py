"""Is the connection behind a client's DEALER up? Asked of the socket's monitor.

A timeout cannot tell a dead node from a slow one; the kernel can. When a node's process
dies its kernel closes the connections, and the monitor reports DISCONNECTED within a
millisecond; connecting to a port nobody listens on reports CLOSED / CONNECT_RETRIED. A
stopped (SIGSTOP) or partitioned node keeps its connections, so for those the monitor says
nothing: the client asks the other nodes instead (`nodes` with `after_term`).

A monitor must be read as its events come, or it stops the whole context (see
link_watcher.py): the asyncio client reads each in a task, the sync client hands them to a
LinkWatcher thread.
"""
from __future__ import annotations

import os

import zmq
from zmq.utils.monitor import parse_monitor_message

from .codec import KIND_RESPONSE, FrameError, decode_client
from .sockets import EVENTS, POLLIN, open_dealer

UP_EVENTS = int(zmq.EVENT_CONNECTED | zmq.EVENT_HANDSHAKE_SUCCEEDED)
DOWN_EVENTS = int(zmq.EVENT_DISCONNECTED | zmq.EVENT_CLOSED | zmq.EVENT_CONNECT_RETRIED
                  | zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
                  | zmq.EVENT_HANDSHAKE_FAILED_AUTH)


class Link:
    """A DEALER to one node and its monitor.

    `up` is None until the first connection event, then whether the connection is up;
    `drops` counts the connections lost after they were up, so a caller can tell "the
    connection was lost since I sent" (the request or its answer went with it) even when it
    is up again.

    With a `watcher` (a LinkWatcher) the monitor belongs to the watcher's thread from the
    start, and `wake_fd` turns readable whenever `up` changes, for a caller that polls it
    next to the DEALER."""

    def __init__(self, ctx, addr: str, curve: dict | None = None, watcher=None):
        self.addr = addr
        self.sock = open_dealer(ctx, curve)
        self.monitor = self.sock.get_monitor_socket(UP_EVENTS | DOWN_EVENTS)
        self.sock.connect(addr)
        self.up: bool | None = None
        self.drops = 0
        self.events = 0          # monitor messages taken (a dead node's retries add up)
        self._watcher = watcher
        self.wake_fd = self._wake_w = None
        if watcher is not None:
            self.wake_fd, self._wake_w = os.pipe()
            os.set_blocking(self.wake_fd, False)
            os.set_blocking(self._wake_w, False)
            watcher.watch(self)

    def note(self, frames: list) -> None:
        """Take one monitor message (the asyncio client and LinkWatcher read them)."""
        self.events += 1
        ev = parse_monitor_message(frames)["event"]
        was = self.up
        if ev & UP_EVENTS:
            self.up = True
        elif ev & DOWN_EVENTS:
            # a connection that was up and is lost takes what was sent with it; attempts that
            # never connected (a node still starting, or gone) lose nothing: zmq keeps the
            # messages queued and delivers them once it connects
            if self.up:
                self.drops += 1
            self.up = False
        if self._wake_w is not None and self.up != was:
            try:
                os.write(self._wake_w, b"x")
            except (BlockingIOError, OSError):
                pass

    def send(self, frame: bytes) -> None:
        self.sock.send(frame)

    def take(self, rid: int):
        """(cluster, reply) of the answer to request `rid` if it came; older answers are
        dropped (the same face as tcp_link.TcpLink.take)."""
        sock = self.sock
        while sock.getsockopt(EVENTS) & POLLIN:
            try:
                got = decode_client(sock.recv(), None, KIND_RESPONSE)
            except FrameError:
                continue
            if got[1].get("id") == rid:
                return got
        return None

    def take_wake(self) -> None:
        """Empty `wake_fd` (its caller then reads `up` and `drops`)."""
        try:
            while os.read(self.wake_fd, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def poll_events(self) -> bool | None:
        """Take the monitor messages waiting (sync sockets without a watcher); returns `up`."""
        if self._watcher is not None:
            return self.up
        mon = self.monitor
        while mon.getsockopt(EVENTS) & POLLIN:   # no system call, unlike poll(0)
            self.note(mon.recv_multipart())
        return self.up

    @property
    def closed(self) -> bool:
        return self.sock.closed

    @property
    def down(self) -> bool:
        return self.poll_events() is False

    def close(self) -> None:
        try:
            self.sock.disable_monitor()
        except zmq.ZMQError:
            pass
        self.sock.close(0)
        if self._watcher is not None:
            self._watcher.forget(self)     # the monitor is closed on the watcher's thread
        else:
            self.close_monitor()

    def close_monitor(self) -> None:
        """Close the monitor (and the wake pipe) on the thread that reads it."""
        self.monitor.close(0)
        for fd in (self.wake_fd, self._wake_w):
            if fd is not None:
                os.close(fd)
        self.wake_fd = self._wake_w = None


class ZmqPoller:
    """Waits on several sync Links at once (their DEALERs and wake pipes); `wait` returns the
    links with an answer to read or a changed connection (the face of tcp_link.TcpPoller)."""

    def __init__(self) -> None:
        self._poller = zmq.Poller()
        self._by: dict = {}       # socket or wake fd -> link

    def add(self, link: Link) -> None:
        if link.sock in self._by:
            return
        self._by[link.sock] = link
        self._poller.register(link.sock, zmq.POLLIN)
        if link.wake_fd is not None:
            self._by[link.wake_fd] = link
            self._poller.register(link.wake_fd, zmq.POLLIN)

    def remove(self, link: Link) -> None:
        for key in (link.sock, link.wake_fd):
            if key is not None and self._by.pop(key, None) is not None:
                self._poller.unregister(key)

    def wait(self, timeout: float) -> list[Link]:
        ready = []
        for key, _ in self._poller.poll(max(0, int(timeout * 1000)) + 1):
            link = self._by.get(key)
            if link is None:
                continue
            if key is link.wake_fd:
                link.take_wake()
            if link not in ready:
                ready.append(link)
        return ready
