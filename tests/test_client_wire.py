"""The client wire on plain TCP (net/client_wire.py): a node's endpoint and the clients'
links, in-process, against the contract the clients' failover relies on -- frames sent
before a node listens wait and go once it does (zmq's queue and reconnect did that), a
refused connect loses nothing and says "down", a connection lost after it was up counts a
drop and takes its unsent frames with it, late answers to earlier requests are dropped,
and a node never buffers without bound for a client that does not read."""
from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from ddb_node.cluster import free_ports
from ddb_node.net.client_wire import HELLO
from ddb_node.net.codec import KIND_REQUEST, KIND_RESPONSE, decode_client, encode_client
from ddb_node.net.tcp_endpoint import ClientTcpEndpoint
from ddb_node.net.tcp_link import AsyncTcpLink, TcpLink, TcpPoller
from ddb_node.net.tcp_transport import frame

from tests.client_wire import ClientConn
from tests.nodehelpers import wait_until


class EchoNode:
    """A ClientTcpEndpoint on its own loop thread that answers every request with its id and
    body; `hold` keeps answers back (a slow node), `drop_all()` closes every connection."""

    def __init__(self, port: int | None = None, **kw):
        self.port = port or free_ports(1)[0]
        self.addr = f"tcp://127.0.0.1:{self.port}"
        self.seen: list[dict] = []
        self.hold = False
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.kw = kw
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        assert self.ready.wait(10)

    def _run(self):
        asyncio.set_event_loop(self.loop)
        self.ep = ClientTcpEndpoint(self.addr, self._on_frames, **self.kw)
        self.ep.start()
        self.loop.call_soon(self.ready.set)
        self.loop.run_forever()

    def _on_frames(self, parts):
        ident, frame = parts
        _, body = decode_client(frame, None, KIND_REQUEST)
        self.seen.append(body)
        if not self.hold:
            self.ep.reply(ident, encode_client("c", KIND_RESPONSE, {"id": body["id"], "ok": True,
                                                                     "echo": body.get("x")}))

    def call(self, fn, *args):
        done = threading.Event()
        box = {}

        def run():
            box["v"] = fn(*args)
            done.set()
        self.loop.call_soon_threadsafe(run)
        assert done.wait(10)
        return box.get("v")

    def drop_all(self):
        def drop():
            for conn in list(self.ep._conns.values()):
                conn.tr.abort()
        self.call(drop)

    def close(self):
        self.call(self.ep.close)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.t.join(10)
        self.loop.close()


def request(rid: int, x=None) -> bytes:
    return encode_client("", KIND_REQUEST, {"op": "echo", "id": rid, "x": x})


def answer(link: TcpLink, rid: int, timeout: float = 5.0):
    poller = TcpPoller()
    poller.add(link)

    def got():
        poller.wait(0.05)
        return link.take(rid)
    return wait_until(got, timeout, what=f"the answer to request {rid}", interval=0)


@pytest.fixture
def node():
    n = EchoNode()
    yield n
    n.close()


def test_a_request_is_answered_and_late_answers_to_earlier_requests_are_dropped(node):
    link = TcpLink(node.addr)
    try:
        node.hold = True
        link.send(request(1))
        wait_until(lambda: link.poll_events() and node.seen, 5, what="the first request to arrive")
        node.hold = False
        node.call(lambda: node._on_frames([next(iter(node.ep._conns)), request(1, "late")]))
        link.send(request(2, "fresh"))
        cluster, body = answer(link, 2)
        assert body["echo"] == "fresh" and cluster == "c"
        assert link.up is True and link.drops == 0
    finally:
        link.close()


def test_frames_sent_before_the_node_listens_wait_and_go_once_it_does():
    """A node still starting: the connect is refused (down, nothing lost) and retried with a
    backoff; the queued request is delivered and answered once the port listens."""
    port = free_ports(1)[0]
    link = TcpLink(f"tcp://127.0.0.1:{port}")
    n = None
    try:
        link.send(request(1, "early"))
        wait_until(lambda: link.poll_events() is False, 5, what="the refused connect")
        assert link.drops == 0                           # refused: nothing was sent
        n = EchoNode(port)
        _, body = answer(link, 1, timeout=10)
        assert body["echo"] == "early" and link.up is True
    finally:
        link.close()
        if n is not None:
            n.close()


def test_a_lost_connection_counts_a_drop_and_the_link_connects_again(node):
    link = TcpLink(node.addr)
    try:
        link.send(request(1))
        answer(link, 1)
        node.drop_all()                          # the node's process died, say
        wait_until(lambda: link.down, 5, what="the lost connection to be seen")
        assert link.drops == 1
        wait_until(lambda: link.poll_events() is True, 5, what="the reconnection")
        link.send(request(2, "again"))
        assert answer(link, 2)[1]["echo"] == "again"
        assert link.drops == 1
    finally:
        link.close()


def test_a_poller_returns_the_links_with_answers_and_a_large_frame_arrives_whole(node):
    other = EchoNode()
    a, b = TcpLink(node.addr), TcpLink(other.addr)
    try:
        big = "x" * (3 << 20)          # larger than a socket buffer: written in pieces
        a.send(request(1, big))
        b.send(request(2, "small"))
        poller = TcpPoller()
        poller.add(a)
        poller.add(b)
        got = {}
        wait_until(lambda: [got.update({l.addr: l.take(1 if l is a else 2)})
                            for l in poller.wait(0.1)] and len([v for v in got.values() if v]) == 2,
                   10, what="both answers")
        assert got[node.addr][1]["echo"] == big and got[other.addr][1]["echo"] == "small"
    finally:
        a.close()
        b.close()
        other.close()


def test_a_connection_without_the_hello_is_closed_and_counted(node):
    conn = ClientConn(node.addr, hello=False)
    try:
        conn.send(request(1))
        assert conn.closed_by_peer()
        assert node.ep.bad_connections == 1
    finally:
        conn.close()


def test_an_answer_for_a_connection_that_is_gone_is_dropped(node):
    conn = ClientConn(node.addr)
    conn.send(request(1))
    assert conn.recv_all(1)
    ident = next(iter(node.ep._conns))
    conn.close()
    wait_until(lambda: not node.ep._conns, 5, what="the node to see the connection go")
    node.call(node.ep.reply, ident, b"nobody reads this")      # no error, nothing kept


def test_a_client_that_does_not_read_is_disconnected_not_buffered_for():
    n = EchoNode(max_buffered=1 << 20)
    s = socket.create_connection(("127.0.0.1", n.port))
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.sendall(frame(HELLO))
        try:
            for i in range(40):         # 40 answers of 256 KiB each, none read
                s.sendall(frame(request(i, "y" * (256 << 10))))
        except (ConnectionResetError, BrokenPipeError):
            pass                        # closed by the node while we were still sending
        wait_until(lambda: not n.ep._conns and n.seen, 10, what="the node to close the connection")
    finally:
        s.close()
        n.close()


def test_the_async_link_queues_until_connected_and_reports_a_drop(node):
    async def main():
        answers, drops = asyncio.Queue(), []
        link = AsyncTcpLink(node.addr, lambda f: answers.put_nowait(decode_client(f, None, KIND_RESPONSE)[1]),
                            lambda: drops.append(1))
        try:
            link.send(request(1, "a"))           # before any connection: queued, in order
            link.send(request(2, "b"))
            got = [await asyncio.wait_for(answers.get(), 5) for _ in range(2)]
            assert [g["echo"] for g in got] == ["a", "b"] and link.up is True
            node.drop_all()
            for _ in range(200):
                if drops:
                    break
                await asyncio.sleep(0.01)
            assert drops == [1] and link.drops == 1 and link.up is False
            link.send(request(3, "c"))           # connects again
            assert (await asyncio.wait_for(answers.get(), 5))["echo"] == "c"
        finally:
            link.close()
    asyncio.run(main())


def test_the_async_link_to_a_closed_port_says_down():
    async def main():
        link = AsyncTcpLink(f"tcp://127.0.0.1:{free_ports(1)[0]}", lambda f: None)
        try:
            link.send(request(1))
            for _ in range(200):
                if link.up is False:
                    break
                await asyncio.sleep(0.01)
            assert link.up is False and link.drops == 0
        finally:
            link.close()
    asyncio.run(main())
