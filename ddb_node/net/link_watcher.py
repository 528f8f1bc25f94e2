"""Reads the monitors of a sync client's links on a thread of its own.

A socket monitor that nobody reads stops the whole zmq context: libzmq's I/O thread writes
each event into the monitor's inproc pipe and blocks once it holds about 2,000. A DEALER
to a node that is gone retries its connection every 100 ms and reports each retry, so a
link nobody asks about (a removed node, a thread that went idle) fills its pipe in a few
minutes, and from then on no socket of that client sends or receives: every node seems
dead at once (issue 13's 60 s write stall near 10^7 rows was exactly this). The asyncio
client reads each monitor in a task of its own; the sync client cannot rely on its callers
coming back, so this thread reads every link's monitor as events come, whatever thread the
link belongs to, and wakes a caller waiting on a link when its connection drops.
"""
from __future__ import annotations

import os
import threading

import zmq

from .sockets import EVENTS, POLLIN


class LinkWatcher:
    """One thread that owns the monitor sockets of many links (see the module docstring).

    `watch(link)` hands a link's monitor over (the caller must not touch it again);
    `forget(link)` closes it here, after the link's own DEALER is closed by its owner."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._todo: list[tuple[str, object]] = []
        self._wake_r, self._wake_w = os.pipe()
        os.set_blocking(self._wake_r, False)
        os.set_blocking(self._wake_w, False)
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="ddb-link-watcher", daemon=True)
        self._thread.start()

    def watch(self, link) -> None:
        self._ask("watch", link)

    def forget(self, link) -> None:
        self._ask("forget", link)

    def close(self) -> None:
        """Close every monitor still watched and end the thread (before the context's term)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._ask("stop", None, force=True)
        self._thread.join()
        os.close(self._wake_r)
        os.close(self._wake_w)

    def _ask(self, what: str, link, force: bool = False) -> None:
        with self._lock:
            if self._closed and not force:
                if what == "watch" or what == "forget":
                    link.close_monitor()     # the thread is gone: nobody else will
                return
            self._todo.append((what, link))
        try:
            os.write(self._wake_w, b"x")
        except BlockingIOError:    # the pipe is full of wake-ups already: it will be read
            pass

    def _run(self) -> None:
        poller = zmq.Poller()
        poller.register(self._wake_r, zmq.POLLIN)
        links: dict = {}       # monitor socket -> link
        while True:
            for s, _ in poller.poll():
                if s == self._wake_r:
                    try:
                        while os.read(self._wake_r, 4096):
                            pass
                    except BlockingIOError:
                        pass
                    with self._lock:
                        todo, self._todo = self._todo, []
                    for what, link in todo:
                        if what == "watch":
                            links[link.monitor] = link
                            poller.register(link.monitor, zmq.POLLIN)
                            self._read(link)
                        elif what == "forget":
                            if links.pop(link.monitor, None) is not None:
                                poller.unregister(link.monitor)
                            link.close_monitor()
                        else:   # stop
                            for mon, link in links.items():
                                link.close_monitor()
                            return
                else:
                    link = links.get(s)
                    if link is not None:
                        self._read(link)

    @staticmethod
    def _read(link) -> None:
        mon = link.monitor
        while mon.getsockopt(EVENTS) & POLLIN:
            try:
                link.note(mon.recv_multipart())
            except zmq.ZMQError:
                return
