"""Recovery after losing quorum for good (issue 14, item 6), on real node processes.

rqlite docs, "Dealing with failure" > "Recovering a cluster that has permanently lost
quorum" (rqlite.io/docs/clustering/general-guidelines/#dealing-with-failure): write the
surviving members to `raft/peers.json` in the data directory and restart them."""
from __future__ import annotations

import json
import os

import pytest

from ddb_node.cluster import LocalCluster, free_ports

from tests.http_support import request
from tests.nodehelpers import wait_until
from tests.rqlite_procs import Clients


@pytest.fixture
def clients():
    made = Clients()
    yield made
    made.close()


def _values(lc, i, sql):
    r = request("GET", f"http://{lc.nodes[i].http_addr}/db/query",
                params={"q": sql, "level": "none"}).json()
    return r["results"][0].get("values")


def test_peers_json_recovers_a_three_node_cluster_that_lost_two_nodes_forever(clients):
    with LocalCluster(3, http=True) as lc:
        c = clients(lc)
        c.execute("CREATE TABLE t(x)")
        for i in range(20):
            c.execute("INSERT INTO t VALUES (?)", [i])
        leader = lc.wait_for_leader()
        survivor = next(i for i in lc.nodes if i != leader)
        commit = c.status(leader)["commit"]
        wait_until(lambda: c.status(survivor)["applied"] >= commit, 20, what="survivor caught up")
        for i in lc.nodes:                       # two nodes are gone for good
            if i != survivor:
                lc.kill(i)
        # without a quorum the survivor cannot write
        resp = request("POST", f"http://{lc.nodes[survivor].http_addr}/db/execute",
                       ["INSERT INTO t VALUES (99)"], params={"timeout": "1s"})
        assert resp.status != 200 or "error" in resp.text, resp

        lc.stop(survivor)
        node = lc.nodes[survivor]
        os.makedirs(os.path.join(node.data_dir, "raft"), exist_ok=True)
        with open(os.path.join(node.data_dir, "raft", "peers.json"), "w") as f:
            json.dump([{"id": str(survivor), "address": node.peer_addr.removeprefix("tcp://"),
                        "non_voter": False}], f)
        lc.restart(survivor)

        st = wait_until(lambda: (s := c.status(survivor))["role"] == "leader" and s, 30,
                        what="the survivor to lead the recovered cluster")
        assert st["voters"] == [survivor] and st["learners"] == []
        assert not os.path.exists(os.path.join(node.data_dir, "raft", "peers.json"))
        assert os.path.exists(os.path.join(node.data_dir, "raft", "peers.info"))
        assert _values(lc, survivor, "SELECT count(*) FROM t") == [[20]]
        status = request("GET", f"http://{node.http_addr}/status").json()
        # hashicorp raft's Stats()["latest_configuration"], Go's %+v of the servers
        assert status["store"]["raft"]["latest_configuration"] == \
            f"[{{Suffrage:Voter ID:{survivor} Address:{node.peer_addr.removeprefix('tcp://')}}}]"
        resp = request("POST", f"http://{node.http_addr}/db/execute", ["INSERT INTO t VALUES (20)"])
        assert resp.status == 200 and "error" not in resp.json()["results"][0], resp

        # the forced configuration is in the log: it survives a restart without peers.json...
        lc.stop(survivor)
        lc.restart(survivor)
        wait_until(lambda: c.status(survivor)["role"] == "leader", 30, what="leader again")
        assert c.status(survivor)["voters"] == [survivor]
        assert _values(lc, survivor, "SELECT count(*) FROM t") == [[21]]
        # ...and a node that joins the recovered cluster gets the data and the configuration
        c.refresh()
        new = lc.add_node(timeout=60)
        wait_until(lambda: _values_zmq(c, new) == [[21]], 30, what="the new node to catch up")
        assert sorted(c.status(new)["voters"]) == sorted([survivor, new])


def _values_zmq(c, nid):
    return c.query_on(nid, "SELECT count(*) FROM t").results[0].values


def test_a_bad_peers_json_is_refused_with_a_clear_error(tmp_path, clients):
    """A peers.json that is not the documented shape stops the node with a clear message
    (and changes nothing): the operator fixes the file and starts again."""
    with LocalCluster(1) as lc:
        lc.stop(1)
        d = lc.nodes[1].data_dir
        os.makedirs(os.path.join(d, "raft"), exist_ok=True)
        for text, message in [("{not json", "cannot read the recovery file"),
                              ("[]", "must be a non-empty JSON array"),
                              ('[{"id": "7", "address": "127.0.0.1:1", "client": "127.0.0.1:2"}]',
                               "must be one of its voters")]:
            with open(os.path.join(d, "raft", "peers.json"), "w") as f:
                f.write(text)
            lc.restart(1)
            assert lc.nodes[1].proc.wait(30) == 2
            with open(lc.nodes[1].log_path) as f:
                assert message in f.read()
        os.remove(os.path.join(d, "raft", "peers.json"))
        lc.restart(1)
        c = clients(lc)
        wait_until(lambda: c.status(1)["role"] == "leader", 30, what="the node to start")


def test_peers_json_naming_several_voters_forces_only_a_confirmed_sole_survivor(clients):
    """rqlite's procedure writes peers.json on every survivor; ddb forces the log of the node
    that reads it, and two survivors each forcing their own log could commit different
    entries at one index. So a file naming several voters, on a node with a log, stops the
    node (exit 2, the file kept) unless --recover-sole-survivor says this is the one
    survivor; then it forces that configuration, and the other voter is expected to come
    back empty and --join it."""
    with LocalCluster(1, http=True) as lc:
        c = clients(lc)
        c.execute("CREATE TABLE t(x)")
        lc.stop(1)
        node = lc.nodes[1]
        peer, client = free_ports(2)
        path = os.path.join(node.data_dir, "raft", "peers.json")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump([{"id": "1", "address": node.peer_addr.removeprefix("tcp://")},
                       {"id": "2", "address": f"127.0.0.1:{peer}", "client": f"127.0.0.1:{client}"}], f)
        lc.restart(1)
        assert node.proc.wait(30) == 2
        with open(node.log_path) as f:
            assert "lists 2 voters and this node has a log" in f.read()
        assert os.path.exists(path)                      # nothing was changed
        lc.extra_args += ("--recover-sole-survivor",)
        lc.restart(1)
        st = wait_until(lambda: (s := c.status(1))["voters"] == [1, 2] and s, 30,
                        what="the forced configuration of two voters")
        assert st["role"] != "leader"                    # node 2 must come back to make a quorum
        # "Once recovery is completed, the peers.json file is renamed to peers.info"
        assert os.path.exists(os.path.join(os.path.dirname(path), "peers.info"))
        assert not os.path.exists(path)
        raft = request("GET", f"http://{node.http_addr}/status").json()["store"]["raft"]
        assert raft["latest_configuration"] == (
            f"[{{Suffrage:Voter ID:1 Address:{node.peer_addr.removeprefix('tcp://')}}} "
            f"{{Suffrage:Voter ID:2 Address:127.0.0.1:{peer}}}]")
