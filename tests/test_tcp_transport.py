"""The TCP peer transport's contract (net/tcp_transport.py), the same as zmq's PeerTransport:
one-way links that deliver a peer's messages in order, reconnect after the peer comes back,
never let one node speak for another, never block and never raise on a send (what cannot
go now is dropped and counted: Raft retries)."""
from __future__ import annotations

import asyncio
import random
import socket

import pytest

from ddb_node.cluster import free_ports
from ddb_node.net import tcp_transport
from ddb_node.net.codec import FrameError, encode_message
from ddb_node.net.tcp_transport import HELLO, FrameReader, TcpPeerTransport, frame, parse_tcp
from ddb_node.raft.types import Entry, Message, MsgType


def _addr(port: int) -> str:
    return f"tcp://127.0.0.1:{port}"


async def _until(pred, timeout=10.0):
    loop = asyncio.get_running_loop()
    end = loop.time() + timeout
    while not pred():
        if loop.time() > end:
            raise AssertionError("timed out")
        await asyncio.sleep(0.005)


def _run(coro):
    errors = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda lp, ctx: errors.append(ctx))
        return await coro()
    out = asyncio.run(main())
    assert errors == [], errors
    return out


def _append(to, frm, i):
    return Message(MsgType.APP, to, frm, 1, log_term=1, index=i,
                   entries=[Entry(1, i + 1, data=b"x" * (i % 50))], commit=i)


def test_a_peer_receives_every_message_in_order():
    p1, p2 = free_ports(2)

    async def main():
        got = []
        a = TcpPeerTransport(None, 1, "c", _addr(p1), lambda m: None)
        b = TcpPeerTransport(None, 2, "c", _addr(p2), got.append)
        a.set_peer(2, _addr(p2))
        a.start(), b.start()
        await _until(lambda: a.peers[2].tr is not None)
        for i in range(2000):
            a.send(_append(2, 1, i))
        await _until(lambda: len(got) == 2000)
        a.close(), b.close()
        return got, a.stats, b.stats
    got, sa, sb = _run(main)
    assert [m.index for m in got] == list(range(2000))
    assert got[7].entries[0].data == b"x" * 7 and got[7].frm == 1 and got[7].to == 2
    assert sa["sent"] == 2000 and sb["received"] == 2000 and sb["dropped_bad_frame"] == 0


def test_sends_to_an_unreachable_peer_are_dropped_quietly():
    (p1,) = free_ports(1)

    async def main():
        t = TcpPeerTransport(None, 1, "c", _addr(p1), lambda m: None)
        t.set_peer(2, "tcp://127.0.0.1:1")        # nobody listens there
        t.start()
        for _ in range(5):
            t.send(Message(MsgType.HEARTBEAT, 2, 1, 1))
            await asyncio.sleep(0.02)
        t.send(Message(MsgType.HEARTBEAT, 3, 1, 1))   # not a peer at all
        stats = dict(t.stats)
        t.close()
        await asyncio.sleep(0.05)
        return stats
    stats = _run(main)
    assert stats["sent"] == 0 and stats["dropped_full"] == 6


def test_a_restarted_peer_is_reached_again():
    p1, p2 = free_ports(2)

    async def main():
        got = []
        a = TcpPeerTransport(None, 1, "c", _addr(p1), lambda m: None)
        a.set_peer(2, _addr(p2))
        a.start()
        b = TcpPeerTransport(None, 2, "c", _addr(p2), got.append)
        b.start()
        await _until(lambda: a.peers[2].tr is not None)
        a.send(_append(2, 1, 1))
        await _until(lambda: len(got) == 1)
        b.close()                                  # the peer dies ...
        await _until(lambda: a.peers[2].tr is None)
        a.send(_append(2, 1, 2))                   # ... meanwhile sends drop
        b = TcpPeerTransport(None, 2, "c", _addr(p2), got.append)
        b.start()                                  # ... and it comes back on its port
        await _until(lambda: a.peers[2].tr is not None)
        a.send(_append(2, 1, 3))
        await _until(lambda: len(got) == 2)
        a.close(), b.close()
        return [m.index for m in got], a.stats
    indexes, stats = _run(main)
    assert indexes == [1, 3] and stats["dropped_full"] == 1


def test_a_connection_cannot_speak_for_another_node():
    (p1,) = free_ports(1)

    async def main():
        got = []
        t = TcpPeerTransport(None, 1, "c", _addr(p1), got.append)
        t.start()
        loop = asyncio.get_running_loop()
        r, w = await asyncio.open_connection("127.0.0.1", p1)
        w.write(frame(HELLO + b"c/2"))
        w.write(frame(encode_message("c", Message(MsgType.HEARTBEAT, 1, 3, 9))))   # says 3
        w.write(frame(encode_message("c", Message(MsgType.HEARTBEAT, 4, 2, 9))))   # not for 1
        w.write(frame(encode_message("c", Message(MsgType.HEARTBEAT, 1, 2, 9))))   # fine
        await w.drain()
        await _until(lambda: t.stats["received"] + t.stats["dropped_impostor"] == 3)
        w.close()
        t.close()
        del loop, r
        return got, t.stats
    got, stats = _run(main)
    assert [(m.frm, m.to) for m in got] == [(2, 1)] and stats["dropped_impostor"] == 2


def test_a_stream_without_a_hello_or_with_a_giant_frame_is_closed_and_counted():
    (p1,) = free_ports(1)

    async def main():
        t = TcpPeerTransport(None, 1, "c", _addr(p1), lambda m: None)
        t.start()
        closed = 0
        for data in (frame(b"GET / HTTP/1.1"), b"\xff\x00\x00\x00\x00\x00\x00\x00\x01\x7f",
                     frame(HELLO + b"c/2") + (1 << 31).to_bytes(4, "big")):
            r, w = await asyncio.open_connection("127.0.0.1", p1)
            w.write(data)
            await w.drain()
            if await asyncio.wait_for(r.read(), 10) == b"":     # EOF: the node closed it
                closed += 1
            w.close()
        stats = dict(t.stats)
        t.close()
        return closed, stats
    closed, stats = _run(main)
    assert closed == 3 and stats["dropped_bad_frame"] == 3


def test_a_link_whose_peer_stops_reading_drops_instead_of_growing(monkeypatch):
    """A stopped peer (SIGSTOP) keeps its connection but reads nothing: past the link's
    bound of unsent bytes, sends drop (as at zmq's high-water mark)."""
    monkeypatch.setattr(tcp_transport, "MAX_BUFFERED", 1 << 20)
    p1, p2 = free_ports(2)
    silent = socket.socket()
    silent.bind(("127.0.0.1", p2))
    silent.listen(1)                               # accepted by the kernel, never read

    async def main():
        t = TcpPeerTransport(None, 1, "c", _addr(p1), lambda m: None)
        t.set_peer(2, _addr(p2))
        t.start()
        await _until(lambda: t.peers[2].tr is not None)
        big = Message(MsgType.APP, 2, 1, 1, entries=[Entry(1, 1, data=b"z" * (256 << 10))])
        for _ in range(400):                       # 100 MB offered
            t.send(big)
        buffered = t.peers[2].tr.get_write_buffer_size()
        stats = dict(t.stats)
        t.close()
        return buffered, stats
    try:
        buffered, stats = _run(main)
    finally:
        silent.close()
    assert stats["dropped_full"] > 0 and stats["sent"] + stats["dropped_full"] == 400
    assert buffered < (1 << 20) + (300 << 10)


def test_a_taken_port_fails_at_once():
    (p1,) = free_ports(1)
    squat = socket.socket()
    squat.bind(("127.0.0.1", p1))
    squat.listen(1)

    async def main():
        with pytest.raises(OSError, match="(?i)address already in use"):
            TcpPeerTransport(None, 1, "c", _addr(p1), lambda m: None)
    try:
        _run(main)
    finally:
        squat.close()


def test_frames_are_whole_whatever_the_chunks_the_stream_arrives_in():
    rng = random.Random(7)
    frames = [rng.randbytes(rng.randint(0, 3000)) for _ in range(300)]
    stream = b"".join(frame(f) for f in frames)
    for _ in range(20):
        reader, got, pos = FrameReader(), [], 0
        while pos < len(stream):
            n = rng.choice([1, 2, 3, 5, 64, 4096, 100_000])
            got += reader.feed(stream[pos:pos + n])
            pos += n
        assert got == frames and not reader.buf
    with pytest.raises(FrameError, match="exceeds the limit"):
        FrameReader(limit=100).feed((101).to_bytes(4, "big"))


def test_peer_addresses_parse_like_zmq_endpoints():
    assert parse_tcp("tcp://127.0.0.1:4001") == ("127.0.0.1", 4001)
    assert parse_tcp("tcp://[::1]:4001") == ("::1", 4001)
    assert parse_tcp("tcp://*:4001") == ("0.0.0.0", 4001)
    with pytest.raises(ValueError):
        parse_tcp("ipc:///tmp/x")
