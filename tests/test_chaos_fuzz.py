"""Mutation-based fuzzing of a live cluster's peer and client sockets (Hypothesis).

Valid frames built with ddb_node.net.codec are mutated (structure and bytes) and sent to the
nodes while a writer keeps appending; afterwards every node is alive, the cluster still
serves writes and linearizable reads, no acknowledged append is lost or doubled, and the
replicas are identical (content hashes at one applied index).
"""
from __future__ import annotations

import threading
import time

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from ddb_node.chaos import fuzz
from ddb_node.chaos.checkers import check_convergence
from ddb_node.cluster import LocalCluster
from ddb_node.errors import DdbError
from ddb_node.net.codec import KIND_RESPONSE, FrameError, decode_client, peer_identity
from ddb_node.net.tcp_transport import frame as frame_of

from tests.client_wire import ClientConn
from tests.peer_wire import PeerConn

pytestmark = pytest.mark.timeout(400)


class Appender:
    def __init__(self, lc):
        self.c = lc.client(timeout=10.0)
        self.acked, self.unknown = set(), set()
        self.stop = threading.Event()
        self.t = threading.Thread(target=self.run, daemon=True)

    def run(self):
        i = 0
        while not self.stop.is_set():
            v = f"a{i}"
            try:
                self.c.execute("INSERT INTO fz_appends(val) VALUES(?)", [v])
                self.acked.add(v)
            except DdbError:
                self.unknown.add(v)
            i += 1
            self.stop.wait(0.02)


@pytest.fixture
def env():
    with LocalCluster(3) as lc:
        with lc.client(timeout=10.0) as c:
            c.execute("CREATE TABLE fuzz(id INTEGER PRIMARY KEY, v)")
            c.execute("CREATE TABLE fz_appends(id INTEGER PRIMARY KEY, val TEXT)")
        app = Appender(lc)
        app.t.start()
        yield lc, None, app
        app.stop.set()
        app.t.join(15)
        app.c.close()
        for s in _socks.values():
            s.close()
        _socks.clear()
        for p in _peers.values():
            p.close()
        _peers.clear()


_socks: dict = {}
_peers: dict = {}


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def fuzz_peer_sockets(env, data):
    lc, ctx, _ = env
    frame, how, m = data.draw(fuzz.peer_frames(lc.cluster_id))
    target = data.draw(st.sampled_from(sorted(lc.nodes)))
    who = data.draw(st.sampled_from(["impostor", "stranger", "garbage", "member"]))
    members = set(lc.nodes)
    if who == "member":
        frm = data.draw(st.sampled_from(sorted(members - {target})))
        if fuzz.decodes_as_member(frame, lc.cluster_id, {frm}):
            who = "stranger"    # a well-formed message from a member: Byzantine, not sent as one
        ident = peer_identity(lc.cluster_id, frm)
    if who == "impostor":
        ident = peer_identity(lc.cluster_id, (m.frm % 3) + 1 if m.frm in members else 2)
        if fuzz.decodes_as_member(frame, lc.cluster_id, {int(ident.split(b"/")[-1])}):
            who = "stranger"
    if who == "stranger":
        ident = peer_identity(lc.cluster_id, 99)
    if who == "garbage":
        ident = data.draw(st.sampled_from([b"x", b"\xff" * 20, b"ddb/1", lc.cluster_id.encode() + b"/",
                                           lc.cluster_id.encode() + b"/-1"]))
    framed = data.draw(st.booleans())
    # unframed: the bytes as a stream, so the length prefix is garbage too; the node closes
    # such a connection, and the next example opens a new one
    payload = frame_of(frame) if framed else frame[:data.draw(st.integers(1, 40))]
    key = ("peer", target, ident)
    for attempt in (0, 1):
        conn = _peers.get(key)
        if conn is None:
            conn = _peers[key] = PeerConn(lc.nodes[target].peer_addr, identity=ident)
        try:
            conn.send_raw(payload)
            break
        except OSError:          # closed by the node after an earlier unframed example
            _peers.pop(key).close()


@settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def fuzz_client_sockets(env, data):
    lc, ctx, _ = env
    frame, how = data.draw(fuzz.client_frames(lc.cluster_id))
    if fuzz.unsafe_client_frame(frame):
        return
    target = data.draw(st.sampled_from(sorted(lc.nodes)))
    key = ("client", target, how)
    s = _socks.get(key)
    if s is None or s.eof:
        s = _socks[key] = ClientConn(lc.nodes[target].client_addr)
    s.send(frame)
    # whatever comes back must be a well-formed response frame
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline and s.poll(0.05):
        reply = s.frames.popleft()
        try:
            _, body = decode_client(reply, None, KIND_RESPONSE)
        except FrameError as e:
            raise AssertionError(f"node {target} answered an undecodable frame: {e}") from None
        assert isinstance(body, dict) and "ok" in body, body
        if not body["ok"]:
            assert body.get("error", {}).get("type") != "Internal", \
                f"internal error for {msgpack.unpackb(frame, raw=False, strict_map_key=False)!r}: {body}"


def test_fuzzed_peer_and_client_sockets_leave_the_cluster_serving_everything_acked(env):
    """The fuzzing and the checks after it are one test: the checks need the fuzzing."""
    fuzz_peer_sockets(env)
    fuzz_client_sockets(env)
    lc, ctx, app = env
    for s in _socks.values():
        s.close()
    _socks.clear()
    for p in _peers.values():
        p.close()
    _peers.clear()
    assert lc.crashed() == [], "a node process died while being fuzzed"
    with lc.client(timeout=20.0) as c:
        c.execute("INSERT INTO fuzz(v) VALUES('after')")
        assert c.query("SELECT count(*) FROM fuzz WHERE v = 'after'", level="linearizable")[0].rows[0][0] >= 1
        app.stop.set()
        app.t.join(15)
        assert app.acked, "the writer made no progress during fuzzing"
        rows = c.query("SELECT val, count(*) FROM fz_appends GROUP BY val", level="linearizable")[0].rows
        present = {v: n for v, n in rows}
        lost = app.acked - set(present)
        assert not lost, f"acknowledged appends lost: {sorted(lost)[:5]}"
        assert not [v for v, n in present.items() if n > 1], "appends applied twice"
        conv = check_convergence(lc, c, ["fuzz", "fz_appends"])
        assert conv["valid"], conv["anomalies"]
        dropped = bad = 0
        for i in lc.nodes:
            st_ = c.status(i)
            assert "error" not in st_, st_
            dropped += st_["transport"]["dropped_bad_frame"] + st_["transport"]["dropped_impostor"]
            bad += st_["counters"]["bad_frames"]
        assert dropped > 0 and bad > 0, "the fuzzed frames never reached the decoders"
