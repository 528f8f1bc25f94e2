"""CurveZMQ (issue 4, item 10): with CURVE on, peers and clients must hold an authorized key.

A node serves with the cluster key pair; peers authenticate with it too. Clients present
their own key pair, which must be in the cluster's `authorized` list. Unauthenticated or
unknown clients never get an answer (the handshake fails), and the cluster keeps working.
"""
import json

import pytest
import zmq

from ddb_node.client import Client
from ddb_node.cluster import LocalCluster
from ddb_node.errors import Timeout


def _pair():
    pub, sec = zmq.curve_keypair()
    return {"public": pub.decode(), "secret": sec.decode()}


@pytest.fixture(scope="module")
def curve_cluster(tmp_path_factory):
    d = tmp_path_factory.mktemp("curve")
    cluster_keys = _pair()
    good = _pair()
    cluster_keys["authorized"] = [good["public"]]
    keyfile = d / "cluster-keys.json"
    keyfile.write_text(json.dumps(cluster_keys))
    # the nodes themselves must use CURVE between each other to elect a leader at all
    lc = LocalCluster(3, curve_keys=str(keyfile))
    yield lc, cluster_keys, good
    lc.close()


def _curve(pair, server_pub):
    return {"public": pair["public"].encode(), "secret": pair["secret"].encode(),
            "server": server_pub.encode()}


def test_authorized_client_reads_and_writes(curve_cluster):
    lc, keys, good = curve_cluster
    with Client(lc.client_addresses(), curve=_curve(good, keys["public"])) as c:
        c.execute("CREATE TABLE authorized(x)")
        c.execute("INSERT INTO authorized VALUES (1)")
        assert c.query("SELECT count(*) FROM authorized", level="linearizable")[0].values == [[1]]


def test_client_without_curve_is_refused(curve_cluster):
    lc, _, _ = curve_cluster
    with Client(lc.client_addresses(), timeout=1.5, attempt_timeout=0.5) as c:
        with pytest.raises(Exception):
            c.query("SELECT 1")


def test_unknown_client_key_is_refused(curve_cluster):
    lc, keys, _ = curve_cluster
    stranger = _pair()
    with Client(lc.client_addresses(), curve=_curve(stranger, keys["public"]), timeout=1.5,
                attempt_timeout=0.5) as c:
        with pytest.raises(Exception):
            c.query("SELECT 1")


def test_unauthenticated_peer_cannot_disturb_the_cluster(curve_cluster):
    lc, keys, good = curve_cluster
    ctx = zmq.Context()
    try:
        s = ctx.socket(zmq.DEALER)
        s.setsockopt(zmq.LINGER, 0)
        s.connect(lc.nodes[1].peer_addr)
        for _ in range(50):
            s.send(b"\x94\x01\xa3ddb\x01\x90", zmq.NOBLOCK)
        s.close(0)
    finally:
        ctx.term()
    with Client(lc.client_addresses(), curve=_curve(good, keys["public"])) as c:
        c.execute("CREATE TABLE after_noise(x)")
        c.execute("INSERT INTO after_noise VALUES (2)")
        st = c.status(1)
        assert st["transport"]["dropped_bad_frame"] == 0   # never even reached the node


def test_client_takes_keys_from_environment(curve_cluster, tmp_path, monkeypatch):
    """$DDB_CURVE_KEYS lets every client (and so every `ddb` command) speak CURVE."""
    lc, keys, good = curve_cluster
    f = tmp_path / "me.json"
    f.write_text(json.dumps({"public": good["public"], "secret": good["secret"],
                             "server": keys["public"]}))
    monkeypatch.setenv("DDB_CURVE_KEYS", str(f))
    with Client(lc.client_addresses()) as c:
        assert c.query("SELECT 42")[0].values == [[42]]
