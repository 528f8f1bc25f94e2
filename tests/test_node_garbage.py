"""Garbage on every socket: random bytes, truncated msgpack, valid msgpack of the wrong shape,
oversized frames, frames of another cluster or protocol version, extra frame parts and
impostors, sent to the peer port of every node (over raw TCP, in the peer transport's
framing, and as a stream that is not that framing at all) and to its client port (raw TCP
in the client wire's framing, and streams that are not it). The cluster keeps serving and stays consistent, the counters show the drops, and a
client frame of garbage gets a BadRequest answer rather than silence."""
from __future__ import annotations

import random

import msgpack
import pytest

from ddb_node.cluster import LocalCluster
from ddb_node.net.client_wire import MAX_FRAME
from ddb_node.net.codec import (KIND_RAFT, KIND_REQUEST, KIND_RESPONSE, MAX_CLIENT_FRAME,
                                MAX_PEER_FRAME, PROTOCOL_VERSION, encode_message)
from ddb_node.net.codec import peer_identity
from ddb_node.net.tcp_transport import HELLO, frame
from ddb_node.raft.types import Entry, Message, MsgType

from tests.nodehelpers import assert_replicas_identical, node_status, wait_until
from tests.client_wire import ClientConn
from tests.peer_wire import PeerConn

RNG = random.Random(20240611)


@pytest.fixture(scope="module")
def c(lc):
    with lc.client() as client:
        client.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
        for i in range(20):
            client.execute("INSERT INTO t(v) VALUES(?)", [i])
        yield client


def _pack(obj) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)


def common_garbage(cid: str, kind: int) -> list[bytes]:
    """Frames every port must drop: none of them is a valid frame of this cluster."""
    frames = [b"", b"\x00", b"\xc1", b"\xff" * 64]
    frames += [RNG.randbytes(RNG.randint(1, 3000)) for _ in range(40)]
    good = _pack([PROTOCOL_VERSION, cid, kind, {"op": "ping"}])
    frames += [good[:k] for k in range(1, len(good))]                  # every truncation
    frames += [_pack(x) for x in (None, 42, -1, 3.5, "x", b"x", [], {}, [1, 2, 3],
                                  {"a": 1}, [PROTOCOL_VERSION, cid, kind],
                                  [PROTOCOL_VERSION, cid, kind, {}, 5],
                                  [PROTOCOL_VERSION, 17, kind, {}],
                                  [PROTOCOL_VERSION, None, kind, {"op": "ping"}])]
    frames += [_pack([PROTOCOL_VERSION + 1, cid, kind, {"op": "ping"}]),  # another version
               _pack([0, cid, kind, {"op": "ping"}]),
               _pack(["1", cid, kind, {"op": "ping"}]),
               _pack([PROTOCOL_VERSION, cid, 99, {"op": "ping"}]),          # unknown kind
               b"\x91" * 5000 + b"\xc0",                                    # nesting bomb
               b"\xdd\xff\xff\xff\xff",                                     # array32 of 4G items
               b"\xc6\x7f\xff\xff\xff" + b"x" * 10,                         # bin32 claims 2 GB
               _pack({1: 2, 3: 4})]                                         # int map keys
    return frames


def raft_garbage(cid: str, to: int, frm: int) -> list[bytes]:
    hb = Message(MsgType.HEARTBEAT, to, frm, 1)
    good = encode_message(cid, hb)
    body = msgpack.unpackb(good, raw=False)[3]

    def with_(**kw):
        b = list(body)
        names = ["type", "to", "frm", "term", "log_term", "index", "ents", "commit", "reject",
                 "hint", "ctx", "snap"]
        for k, v in kw.items():
            b[names.index(k)] = v
        return _pack([PROTOCOL_VERSION, cid, KIND_RAFT, b])

    frames = [good[:k] for k in range(1, len(good), 3)]
    frames += [encode_message("another-cluster", hb),
               _pack([PROTOCOL_VERSION + 1, cid, KIND_RAFT, body]),
               _pack([PROTOCOL_VERSION, cid, KIND_REQUEST, body]),
               _pack([PROTOCOL_VERSION, cid, KIND_RAFT, body[:11]]),
               _pack([PROTOCOL_VERSION, cid, KIND_RAFT, {"type": 1}]),
               with_(type=999), with_(type="heartbeat"), with_(to=-1), with_(term=-5),
               with_(term="1"), with_(index=1.5), with_(commit=None),
               with_(reject=1), with_(ctx="text"), with_(ents="x"), with_(ents=[[1, 2]]),
               with_(ents=[[1, 1, 7, b""]]), with_(ents=[[1, 1, 0, "str"]]),
               with_(ents=[[1, 1, 0, b""], [1, 3, 0, b""]]),                 # not contiguous
               with_(ents=[[-1, 1, 0, b""]]),
               with_(snap=[1, 1, [1], [], 0, b"x", True]),                  # short chunk
               with_(snap=[1, 1, "voters", [], 0, b"x", True, 1]),
               with_(snap=[1, 1, [1], [], 5, b"xxxx", True, 6]),            # beyond its total
               with_(type=int(MsgType.SNAP), snap=None)]                    # snap without chunk
    return frames


def _stats(c, nid):
    st = node_status(c, nid)
    return st["transport"], st["counters"], st["term"]


def test_garbage_on_peer_ports(lc, c):
    cid = lc.cluster_id
    ids = lc.node_ids()
    leader = lc.wait_for_leader(10)
    before = {i: _stats(c, i) for i in ids}
    sent = {}
    for nid in ids:
        node = lc.nodes[nid]
        other = next(i for i in ids if i != nid)
        frames = common_garbage(cid, KIND_RAFT) + raft_garbage(cid, nid, other)
        # a sender with no identity
        d = PeerConn(node.peer_addr)
        for f in frames:
            d.send(f)
        # a sender that claims to be a member (right identity) but sends garbage
        d2 = PeerConn(node.peer_addr, identity=b"garbage/" + str(nid).encode())
        for f in frames:
            d2.send(f)
        sent[nid] = 2 * len(frames)
        # impostors: a well-formed message whose sender is not the connection's identity, or
        # addressed to another node
        imp = PeerConn(node.peer_addr, identity=peer_identity(cid, 9999))
        imp.send(encode_message(cid, Message(MsgType.HEARTBEAT, nid, other, 10 ** 6)))
        imp.send(encode_message(cid, Message(MsgType.HEARTBEAT, other, 9999, 10 ** 6)))
        # oversized: above the codec's limit (dropped and counted) ...
        d.send(b"\x00" * (MAX_PEER_FRAME + 1))
        sent[nid] += 1
        # streams that are not the framing: no hello (a zmq greeting), a hello too long,
        # and a length above the transport's limit: each connection is closed and counted
        for conn, data in ((PeerConn(node.peer_addr, hello=False), b"\xff" + b"\x00" * 8 + b"\x7f"),
                           (PeerConn(node.peer_addr, hello=False), frame(HELLO + b"x" * 300)),
                           (PeerConn(node.peer_addr), (81 << 20).to_bytes(4, "big") + b"\x00" * 64)):
            conn.send_raw(data)
            assert conn.closed_by_peer(), f"node {nid} kept a connection of garbage open"
            conn.close()
            sent[nid] += 1
        wait_until(lambda: _stats(c, nid)[0]["dropped_bad_frame"]
                   >= before[nid][0]["dropped_bad_frame"] + sent[nid], 30,
                   what=f"node {nid} to count its bad peer frames")
        wait_until(lambda: _stats(c, nid)[0]["dropped_impostor"]
                   >= before[nid][0]["dropped_impostor"] + 2, 10,
                   what=f"node {nid} to count impostors")
        for s in (d, d2, imp):
            s.close()

    after = {i: _stats(c, i) for i in ids}
    assert lc.crashed() == []
    # the forged heartbeat with a huge term reached no core: terms did not jump
    assert all(after[i][2] < 10 ** 6 for i in ids), {i: after[i][2] for i in ids}
    assert all(after[i][1]["errors"] == before[i][1]["errors"] for i in ids)
    assert lc.wait_for_leader(10) == leader, "garbage must not disturb the leadership"
    c.execute("INSERT INTO t(v) VALUES('after-peer-garbage')")
    assert_replicas_identical(lc, c)


def test_garbage_on_client_ports(lc, c):
    cid = lc.cluster_id
    ids = lc.node_ids()
    before = {i: node_status(c, i)["counters"]["bad_frames"] for i in ids}
    for nid in ids:
        node = lc.nodes[nid]
        frames = common_garbage(cid, KIND_REQUEST)
        frames += [_pack([PROTOCOL_VERSION, "another-cluster", KIND_REQUEST, {"op": "ping", "id": 1}]),
                   _pack([PROTOCOL_VERSION, cid, KIND_RESPONSE, {"op": "ping", "id": 1}])]
        d = ClientConn(node.client_addr)
        for f in frames:
            d.send(f)
        replies = d.recv_all(len(frames))
        assert len(replies) == len(frames), \
            f"node {nid}: {len(frames) - len(replies)} garbage frames got no answer"
        assert all(not r["ok"] and r["error"]["type"] == "BadRequest" for r in replies), \
            [r for r in replies if r["ok"] or r["error"]["type"] != "BadRequest"][:3]
        # an oversized frame (above the codec's limit, below the socket's) is answered too
        d.send(b"\x00" * (MAX_CLIENT_FRAME + 1))
        r = d.recv_all(1, timeout=20)
        assert r and r[0]["error"]["type"] == "BadRequest"
        # and the same connection still works for a proper request afterwards
        d.send(_pack([PROTOCOL_VERSION, cid, KIND_REQUEST, {"op": "ping", "id": 7}]))
        r = d.recv_all(1)
        assert r and r[0]["ok"] and r[0]["id"] == 7
        d.close()
        # a stream that cannot be framed is closed and counted: no hello (a zmq DEALER's
        # greeting, say), or a length above the wire's limit
        for conn, data in ((ClientConn(node.client_addr, hello=False), b"\xff" + b"\x00" * 8 + b"\x7f"),
                           (ClientConn(node.client_addr), (MAX_FRAME + 1).to_bytes(4, "big"))):
            conn.send_raw(data)
            assert conn.closed_by_peer(), f"node {nid} kept a connection it cannot frame"
            conn.close()
        n = len(frames) + 3
        wait_until(lambda: node_status(c, nid)["counters"]["bad_frames"] >= before[nid] + n, 10,
                   what=f"node {nid} to count its bad client frames")
    assert lc.crashed() == []
    c.execute("INSERT INTO t(v) VALUES('after-client-garbage')")
    assert_replicas_identical(lc, c)


def _wrong_shapes():
    return [
        {"op": 5}, {"op": ["request"]}, {"op": None}, {"op": {"a": 1}}, {},
        {"op": "request"}, {"op": "request", "statements": None},
        {"op": "request", "statements": [None]}, {"op": "request", "statements": [[]]},
        {"op": "request", "statements": [[5]]}, {"op": "request", "statements": [["SELECT ?", [1]]]},
        {"op": "request", "statements": [["SELECT ?", {"a": [1]}]]},
        {"op": "request", "statements": [["SELECT :a", {"a": {"b": 1}}]]},
        {"op": "request", "statements": [["SELECT 1"]], "level": 3},
        {"op": "request", "statements": [["SELECT 1"]], "level": ["weak"]},
        {"op": "request", "statements": [["SELECT 1"]], "timeout": "soon"},
        {"op": "request", "statements": [["SELECT 1"]], "timeout": True},
        {"op": "request", "statements": [["SELECT 1"]], "freshness": "x", "level": "none"},
        {"op": "request", "statements": [["SELECT 1"]], "max_rows": "x"},
        {"op": "request", "statements": [["INSERT INTO t(v) VALUES(1)"]], "session": "abc"},
        {"op": "request", "statements": [["INSERT INTO t(v) VALUES(1)"]], "session": ["a", "b"]},
        {"op": "request", "statements": [["INSERT INTO t(v) VALUES(1)"]], "session": ["a", -1]},
        {"op": "map", "sql": 5}, {"op": "map", "sql": "SELECT 1", "params": [1]},
        {"op": "map_result", "index": "x"}, {"op": "map_result", "index": -3},
        {"op": "faults", "cmd": "heal"}, {"op": "faults", "cmd": {"action": "drop", "rate": "x"}},
        {"op": "faults", "cmd": {"action": "partition", "groups": "x"}},
        {"op": "faults", "cmd": {"action": "isolate", "node": [1]}},
        {"op": "join", "node_id": "x"}, {"op": "remove", "node_id": "x"},
        {"op": "promote", "node_id": "x"}, {"op": "transfer", "to": "x"},
    ]


def test_valid_frames_of_the_wrong_shape_get_typed_errors(lc, c):
    """Decodable frames with nonsense inside: each gets an error reply (never an Internal
    error, never silence), the node keeps serving, no fault state is left behind."""
    cid = lc.cluster_id
    leader = lc.wait_for_leader(10)
    for nid in lc.node_ids():
        d = ClientConn(lc.nodes[nid].client_addr)
        bodies = _wrong_shapes()
        for i, b in enumerate(bodies):
            d.send(_pack([PROTOCOL_VERSION, cid, KIND_REQUEST, dict(b, id=1000 + i)]))
        replies = d.recv_all(len(bodies), timeout=15)
        d.close()
        assert len(replies) == len(bodies), f"node {nid}: some requests got no answer"
        by_id = {r["id"]: r for r in replies}
        bad = {}
        for i, b in enumerate(bodies):
            r = by_id[1000 + i]
            if r["ok"]:
                # only acceptable as a per-statement SQL error
                if not any(res.get("error") for res in r.get("results") or []):
                    bad[repr(b)] = "ok"
            elif r["error"]["type"] != "BadRequest":
                bad[repr(b)] = r["error"]
        assert not bad, f"node {nid}: {bad}"
    assert lc.crashed() == []
    assert lc.wait_for_leader(10) == leader
    assert all(not s["faults"]["drop_rate"] and not s["faults"]["blocked"]
               for s in lc.status().values())
    c.execute("INSERT INTO t(v) VALUES('after-wrong-shapes')")
    assert_replicas_identical(lc, c)


def test_join_with_malformed_membership_fields_is_a_clear_bad_request():
    """The fields a rejoining node adds (member_of, cluster) are checked like the others."""
    with LocalCluster(1, storage="memory") as lc:
        c = lc.client()
        for extra in ({"member_of": 5}, {"member_of": ["a"]}, {"cluster": 7}):
            body = {"op": "join", "node_id": 9, "peer": "tcp://127.0.0.1:1",
                    "client": "tcp://127.0.0.1:2", **extra}
            reply = c.call(lc.nodes[1].client_addr, body, 5.0)
            assert reply["ok"] is False and reply["error"]["type"] == "BadRequest", reply
        assert c.status(1)["voters"] == [1] and c.status(1)["learners"] == []
