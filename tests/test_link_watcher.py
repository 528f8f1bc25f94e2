"""A sync client's socket monitors are read as their events come (net/link_watcher.py).

libzmq's I/O thread blocks once an unread monitor holds about 2,000 events, and with it every
socket of the context. A DEALER to a gone node retries every 100 ms and reports each retry,
so a client that kept a link to a removed node stopped dead a few minutes later: issue 13's
60 s write stall near 10^7 rows. These tests shorten the retry interval to 1 ms, so the
2,000 events come in about a second.
"""
from __future__ import annotations

import socket
import threading
import time

import pytest
import zmq

from ddb_node.cluster import LocalCluster
from ddb_node.net.codec import KIND_REQUEST, KIND_RESPONSE, decode_client, encode_client
from ddb_node.net.link_watcher import LinkWatcher
from ddb_node.net.liveness import Link

from tests.nodehelpers import wait_until

ENOUGH_EVENTS = 3_000     # well past what an unread monitor holds before the context stops


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


class Echo:
    """A ROUTER on its own thread that sends every message back (its socket is used and
    closed on that thread only)."""

    def __init__(self):
        self.ctx = zmq.Context()
        self._stop = threading.Event()
        bound = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(bound,), daemon=True)
        self._thread.start()
        bound.wait(10)

    def _run(self, bound):
        sock = self.ctx.socket(zmq.ROUTER)
        sock.setsockopt(zmq.LINGER, 0)
        self.addr = f"tcp://127.0.0.1:{sock.bind_to_random_port('tcp://127.0.0.1')}"
        bound.set()
        while not self._stop.is_set():
            if sock.poll(50):
                sock.send_multipart(sock.recv_multipart())
        sock.close()

    def close(self):
        self._stop.set()
        self._thread.join(10)
        self.ctx.term()


def _round_trips(live: Link, seconds: float, dead: Link | None = None) -> float | None:
    """Round trips on `live` for `seconds` (and, with `dead`, until it reported ENOUGH_EVENTS);
    the time into the run of the first that got no answer within 2 s, or None."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds or (dead is not None and dead.events < ENOUGH_EVENTS):
        if time.monotonic() - t0 > 60:
            raise AssertionError(f"only {dead.events} events from the dead link in 60 s")
        live.sock.send(b"ping")
        if not live.sock.poll(2000):
            return time.monotonic() - t0
        live.sock.recv()
    return None


@pytest.fixture()
def fast_retry_ctx():
    ctx = zmq.Context()
    ctx.setsockopt(zmq.RECONNECT_IVL, 1)
    yield ctx
    ctx.destroy(linger=0)


def test_an_unread_monitor_of_a_dead_link_stops_every_socket_of_its_context(fast_retry_ctx):
    """The hazard itself (libzmq 4.3): if this stops failing, the watcher is no longer needed."""
    echo = Echo()
    dead = Link(fast_retry_ctx, f"tcp://127.0.0.1:{_closed_port()}")
    live = Link(fast_retry_ctx, echo.addr)
    try:
        stalled_at = _round_trips(live, 30)
        assert stalled_at is not None, "30 s of round trips next to an unread dead link's monitor"
        n = 0
        while dead.monitor.poll(0):        # reading the monitor frees the I/O thread
            dead.monitor.recv_multipart()
            n += 1
        assert n >= 1000
        live.sock.send(b"again")
        assert live.sock.poll(5000), "the context stayed stopped after its monitor was read"
    finally:
        dead.close()
        live.close()
        echo.close()


def test_a_watched_dead_link_never_stops_its_context(fast_retry_ctx):
    echo = Echo()
    watcher = LinkWatcher()
    dead = Link(fast_retry_ctx, f"tcp://127.0.0.1:{_closed_port()}", watcher=watcher)
    live = Link(fast_retry_ctx, echo.addr, watcher=watcher)
    try:
        assert _round_trips(live, 2, dead) is None
        assert dead.events >= ENOUGH_EVENTS and dead.down
        assert live.up and live.drops == 0
    finally:
        dead.close()
        live.close()
        watcher.close()
        echo.close()


def test_a_watched_link_wakes_its_waiter_when_the_connection_drops(fast_retry_ctx):
    """`wake_fd` turns readable when `up` changes, so an attempt waiting on the DEALER learns
    of a lost connection at once (Client._attempt polls both)."""
    echo = Echo()
    watcher = LinkWatcher()
    link = Link(fast_retry_ctx, echo.addr, watcher=watcher)
    try:
        wait_until(lambda: link.up, 10, what="the connection to come up")
        link.take_wake()
        echo.close()
        poller = zmq.Poller()
        poller.register(link.wake_fd, zmq.POLLIN)
        assert poller.poll(10_000), "no wake-up after the server went away"
        link.take_wake()
        assert link.down and link.drops == 1
    finally:
        link.close()
        watcher.close()


def test_a_client_keeps_working_next_to_a_link_to_a_node_that_is_gone(monkeypatch):
    """The scale benchmark's stall: a long-lived Client once talked to a node that was later
    removed; its link stays (it is not asked again) and retries the dead port forever.
    (The zmq client wire, as with CURVE keys: a TcpLink has no monitor to forget.)"""
    monkeypatch.setenv("DDB_CLIENT_TRANSPORT", "zmq")
    fake_ctx = zmq.Context()
    fake = fake_ctx.socket(zmq.ROUTER)
    fake_addr = f"tcp://127.0.0.1:{fake.bind_to_random_port('tcp://127.0.0.1')}"

    def answer_once():
        ident, frame = fake.recv_multipart()
        _, body = decode_client(frame, None, KIND_REQUEST)
        fake.send_multipart([ident, encode_client("", KIND_RESPONSE, {"id": body["id"], "ok": True})])

    with LocalCluster(1, storage="memory") as lc:
        c = lc.client(timeout=10.0)
        try:
            c._ctx.setsockopt(zmq.RECONNECT_IVL, 1)    # before any link: every retry 1 ms apart
            server = threading.Thread(target=answer_once)
            server.start()
            assert c.call(fake_addr, {"op": "status"}, 10.0)["ok"]
            server.join()
            fake_ctx.destroy(linger=0)                 # the node is gone
            gone = c._local.links[fake_addr]
            wait_until(lambda: gone.down, 10, what="the gone node's connection to drop")
            c.execute("CREATE TABLE t(v)")
            t0 = time.monotonic()
            writes = 0
            while gone.events < ENOUGH_EVENTS or writes < 100:
                assert time.monotonic() - t0 < 60, f"{gone.events} events in 60 s"
                c.execute("INSERT INTO t VALUES (?)", [writes], timeout=5.0)
                writes += 1
            assert c.query("SELECT count(*) FROM t", level="strong")[0].rows[0][0] == writes
        finally:
            c.close()
