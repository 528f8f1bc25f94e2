"""Clustering as rqlite operators do it (issue 14, item 5), on real node processes.

rqlite docs, "Clustering" (rqlite.io/docs/clustering/general-guidelines/ and
/automatic-clustering/) and "Read-only nodes" (/docs/clustering/read-only-nodes/)."""
from __future__ import annotations

import json
import os

import pytest

from ddb_node.cluster import LocalCluster
from ddb_node.node_ids import internal_id

from tests.http_support import request
from tests.nodehelpers import wait_until
from tests.rqlite_procs import Clients, Procs


@pytest.fixture
def clients():
    made = Clients()
    yield made
    made.close()


@pytest.fixture
def procs(tmp_path):
    p = Procs(str(tmp_path), "rq-" + os.urandom(3).hex())
    yield p
    p.close()


def _leader_of(procs, nodes) -> dict:
    """Every node's status, once all name one leader in one term and each holds a
    configuration: a node that had not bootstrapped yet learns its leader from the first
    AppendEntries (Raft 5.2) a moment before the founding entry reaches it by replication."""
    sts = {p.name: procs.status(p) for p in nodes}
    leaders = {s["leader"] for s in sts.values()}
    terms = {s["term"] for s in sts.values()}
    configured = all(s["voters"] for s in sts.values())
    return sts if len(leaders) == 1 and 0 not in leaders and len(terms) == 1 and configured else {}


@pytest.mark.parametrize("via", ["client", "http"])
def test_bootstrap_expect_forms_exactly_one_cluster_of_the_expected_nodes(procs, via):
    """Automatic clustering, "-bootstrap-expect": the nodes wait until the expected number
    are up, then form one cluster together; no node is designated to go first. The -join
    addresses may be the nodes' HTTP API addresses, as rqlite's are."""
    nodes = [procs.new(n) for n in ("1", "2", "3")]
    join = ",".join(p.client if via == "client" else f"http://{p.http}" for p in nodes)
    for p in nodes[:2]:
        procs.start(p, "--bootstrap-expect", "3", "--join", join)
    # two of three are up: they answer, but no configuration exists and nobody leads
    sts = wait_until(lambda: [procs.status(p) for p in nodes[:2]], 20, what="two nodes up")
    assert all(s["voters"] == [] and s["leader"] == 0 for s in sts), sts
    procs.start(nodes[2], "--bootstrap-expect", "3", "--join", join)
    sts = wait_until(lambda: _leader_of(procs, nodes), 30, what="one leader for all three")
    assert {tuple(s["voters"]) for s in sts.values()} == {(1, 2, 3)}
    # one cluster: a write through any node is applied by all three
    resp = request("POST", f"http://{nodes[1].http}/db/execute",
                   ["CREATE TABLE t(x)", "INSERT INTO t VALUES (7)"])
    assert resp.status == 200, resp
    for p in nodes:
        wait_until(lambda p=p: request("GET", f"http://{p.http}/db/query",
                                       params={"q": "SELECT x FROM t", "level": "none"}
                                       ).json()["results"][0].get("values") == [[7]],
                   20, what=f"node {p.name} to apply the write")


def test_bootstrap_expect_with_disagreeing_join_lists_still_forms_one_cluster(procs):
    """A node given another -join list (1, 2, 4 where the others say 1, 2, 3) must not found
    a second cluster with nodes 1 and 2: a node bootstraps only the configuration every
    other member of it proposes too. Node 4 then joins the cluster that formed."""
    n1, n2, n3, n4 = (procs.new(n) for n in ("1", "2", "3", "4"))
    good = ",".join(p.client for p in (n1, n2, n3))
    for p in (n1, n2):
        procs.start(p, "--bootstrap-expect", "3", "--join", good)
    procs.start(n4, "--bootstrap-expect", "3", "--join", ",".join(p.client for p in (n1, n2, n4)))
    # 1, 2 and 4 are all up: node 4 sees its three, but nodes 1 and 2 propose another set
    wait_until(lambda: procs.status(n4)["bootstrap_candidate"] == [1, 2, 4], 60,
               what="node 4 to have its candidate")
    assert all(procs.status(p)["voters"] == [] for p in (n1, n2, n4))
    procs.start(n3, "--bootstrap-expect", "3", "--join", good)
    sts = wait_until(lambda: (s := _leader_of(procs, [n1, n2, n3, n4]))
                     and {tuple(x["voters"]) for x in s.values()} == {(1, 2, 3, 4)} and s,
                     60, what="one cluster of four (node 4 joined it)")
    assert len({s["leader"] for s in sts.values()}) == 1


def test_bootstrap_expect_refuses_a_join_list_naming_more_nodes(procs):
    """-bootstrap-expect N with -join naming more than N nodes: a clear error, no cluster."""
    nodes = [procs.new(n) for n in ("1", "2", "3")]
    join = ",".join(p.client for p in nodes)
    for p in nodes[1:]:
        procs.start(p, "--bootstrap-expect", "3", "--join", join)
    out = procs.run(nodes[0], "--bootstrap-expect", "2", "--join", join)
    assert out.returncode == 2, out
    assert "--bootstrap-expect 2, but the --join addresses name 3 nodes" in out.stderr


def test_non_voter_replicates_never_votes_and_serves_auto_reads_locally(procs, clients):
    """Read-only nodes: "-raft-non-voter=true"; the node receives every change but never
    votes, and the `auto` read level is `none` on it."""
    with LocalCluster(3, http=True, cluster_id=procs.cluster_id) as lc:
        c = clients(lc)
        c.execute("CREATE TABLE t(x)")
        ro = procs.new("4")
        procs.start(ro, "--non-voter", "--join", ",".join(lc.client_addresses()))
        wait_until(lambda: 4 in procs.status(ro)["learners"], 30, what="the non-voter to join")
        c.execute("INSERT INTO t VALUES (1)")
        leader = lc.wait_for_leader()
        commit = c.status(leader)["commit"]
        wait_until(lambda: procs.status(ro)["applied"] >= commit, 20, what="the non-voter to catch up")
        st = c.status(leader)
        assert 4 in st["learners"] and 4 not in st["voters"], st   # caught up, still no voter
        assert procs.status(ro)["non_voter"] is True
        # level=auto on the read-only node: served there (level none), not by the leader
        reply = c.call(ro.client, {"op": "request", "statements": [["SELECT x FROM t"]],
                                   "level": "auto"}, 5.0)
        assert reply["ok"] and reply["node"] == 4 and "forwarded_by" not in reply, reply
        assert reply["results"][0]["values"] == [[1]]
        # over HTTP ("Read Consistency" > "Auto"): with `redirect` a voting follower sends an
        # auto read to the leader (weak), the read-only node answers it itself (none)
        q = {"q": "SELECT x FROM t", "level": "auto", "redirect": None}
        follower = next(i for i in lc.nodes if i != leader)
        resp = request("GET", f"http://{lc.nodes[follower].http_addr}/db/query", params=q)
        assert resp.status == 301, resp
        resp = request("GET", f"http://{ro.http}/db/query", params=q)
        assert resp.status == 200 and resp.json()["results"][0]["values"] == [[1]], resp
        # "Nodes API": only with `nonvoters` is the read-only node listed, live, not voting
        url = f"http://{lc.nodes[leader].http_addr}/nodes"
        assert [n["id"] for n in request("GET", url, params={"ver": "2"}).json()["nodes"]] == \
            ["1", "2", "3"]
        nodes = request("GET", url, params={"ver": "2", "nonvoters": None}).json()["nodes"]
        assert [(n["id"], n["voter"], n["reachable"]) for n in nodes] == \
            [("1", True, True), ("2", True, True), ("3", True, True), ("4", False, True)]
        assert (nodes[3]["api_addr"], nodes[3]["addr"], nodes[3]["leader"]) == \
            (f"http://{ro.http}", ro.peer.removeprefix("tcp://"), False)
        assert "Suffrage:Nonvoter ID:4 Address:" + ro.peer.removeprefix("tcp://") in request(
            "GET", f"http://{ro.http}/status").json()["store"]["raft"]["latest_configuration"]


def test_restarted_node_rejoins_from_new_addresses(procs, clients):
    """General guidelines, "Restarting a node": a node that restarts re-sends its join; a
    known id that comes back at a new address is accepted, and every member routes to it."""
    with LocalCluster(3, http=True, cluster_id=procs.cluster_id) as lc:
        c = clients(lc)
        c.execute("CREATE TABLE t(x)")
        lc.stop(3)
        c.execute("INSERT INTO t VALUES (42)")
        moved = procs.new("3")        # same id and data directory, new ports
        moved.data_dir = lc.nodes[3].data_dir
        procs.start(moved, "--join", ",".join(lc.nodes[i].client_addr for i in (1, 2)))

        def everyone_knows():
            sts = [c.status(i) for i in (1, 2)]
            return all(s["members"]["3"]["peer"] == moved.peer for s in sts)
        wait_until(everyone_knows, 30, what="members to learn node 3's new address")
        # "Nodes API": the members show and reach node 3 at its new addresses
        for i in (1, 2):
            three = wait_until(lambda i=i: next(n for n in request(
                "GET", f"http://{lc.nodes[i].http_addr}/nodes", params={"ver": "2"}
            ).json()["nodes"] if n["id"] == "3" and n["reachable"]), 30,
                what=f"node {i} to reach node 3 at its new address")
            assert (three["addr"], three["api_addr"], three["voter"]) == \
                (moved.peer.removeprefix("tcp://"), f"http://{moved.http}", True)
        wait_until(lambda: request("GET", f"http://{moved.http}/db/query",
                                   params={"q": "SELECT x FROM t", "level": "none"}
                                   ).json()["results"][0].get("values") == [[42]],
                   30, what="the moved node to catch up")
        assert 3 in c.status(lc.wait_for_leader())["voters"]


def test_node_of_one_cluster_refuses_to_join_another(procs):
    """General guidelines: a node that already belongs to a cluster ignores nothing silently:
    given -join of another cluster it refuses to start, with a clear error."""
    with LocalCluster(3, cluster_id=procs.cluster_id) as a, \
            LocalCluster(1, cluster_id=procs.cluster_id) as b:
        b.stop(1)
        other = procs.new("1")
        other.data_dir = b.nodes[1].data_dir
        out = procs.run(other, "--join", ",".join(a.client_addresses()))
        assert out.returncode == 2, out
        assert "already belongs to another cluster" in out.stderr, out.stderr
        assert a.status()[1]["voters"] == [1, 2, 3]


def test_remove_on_shutdown_leaves_the_cluster(procs, clients):
    """"-raft-cluster-remove-shutdown": a node stopped gracefully leaves the configuration,
    so the others keep a quorum of those still there."""
    with LocalCluster(3, http=True, cluster_id=procs.cluster_id,
                      extra_args=("--raft-cluster-remove-shutdown",)) as lc:
        c = clients(lc)
        lc.stop(3)
        wait_until(lambda: c.status(lc.wait_for_leader())["voters"] == [1, 2], 20,
                   what="node 3 to leave the configuration")
        # "Nodes API": node 3 is no longer a member at all (not listed, not unreachable)
        for i in (1, 2):
            nodes = request("GET", f"http://{lc.nodes[i].http_addr}/nodes",
                            params={"ver": "2", "nonvoters": None}).json()["nodes"]
            assert [(n["id"], n["reachable"]) for n in nodes] == [("1", True), ("2", True)]
        lc.stop(lc.wait_for_leader())          # the leader leaves too: one voter remains
        rest = next(i for i in (1, 2) if lc.nodes[i].state == "running")
        wait_until(lambda: c.status(rest)["voters"] == [rest] and c.status(rest)["role"] == "leader",
                   20, what="the last node to lead alone")
        c.refresh()
        c.execute("CREATE TABLE alone(x)")       # a quorum of one: writes go on


@pytest.mark.parametrize("name", ["0", "node-a"])
def test_string_node_ids_join_and_are_removed_by_name(procs, name, clients):
    """Node ids are strings in rqlite (`-node-id`), "0" included: a node joins with one, is
    shown by it wherever rqlite shows an id ("Nodes API" `id` and the legacy map's keys,
    sorted as strings; "Status API" `store.node_id`, `store.leader.node_id`,
    `store.raft.latest_configuration`), and is removed by it (DELETE /remove {"id": ...})."""
    with LocalCluster(3, http=True, cluster_id=procs.cluster_id) as lc:
        p = procs.new(name)
        procs.start(p, "--join", ",".join(lc.client_addresses()))
        nid = internal_id(name)
        c = clients(lc)
        wait_until(lambda: nid in c.status(lc.wait_for_leader())["voters"], 30,
                   what=f"node {name!r} to become a voter")
        st = c.status(lc.wait_for_leader())
        assert st["members"][str(nid)]["name"] == name
        url = f"http://{lc.nodes[1].http_addr}"
        nodes = request("GET", url + "/nodes", params={"ver": "2"}).json()["nodes"]
        assert [(n["id"], n["reachable"]) for n in nodes] == \
            sorted([("1", True), ("2", True), ("3", True), (name, True)])
        assert next(n for n in nodes if n["id"] == name)["api_addr"] == f"http://{p.http}"
        assert sorted(request("GET", url + "/nodes").json()) == sorted(["1", "2", "3", name])
        own = request("GET", f"http://{p.http}/status").json()["store"]
        assert own["node_id"] == name
        assert f"ID:{name} Address:{p.peer.removeprefix('tcp://')}}}" in own["raft"]["latest_configuration"]
        assert request("GET", url + "/status").json()["store"]["raft"]["latest_configuration"] \
            == own["raft"]["latest_configuration"]
        # the new node leading: /leader and every store.leader.node_id name it as written
        resp = request("POST", url + "/leader", {"id": name})
        assert resp.status == 200 and resp.json() == {"leader": {"id": name}}, resp
        wait_until(lambda: request("GET", url + "/status").json()["store"]["leader"]["node_id"]
                   == name, 20, what=f"node {name!r} to be shown as the leader")
        assert request("GET", url + "/leader").json()["id"] == name
        resp = request("POST", url + "/leader", {"id": "1"})     # hand it back before removal
        assert resp.status == 200, resp
        wait_until(lambda: c.status(1)["role"] == "leader", 20, what="node 1 to lead again")
        resp = request("DELETE", f"http://{lc.nodes[lc.wait_for_leader()].http_addr}/remove",
                       {"id": name})
        assert resp.status == 200, resp
        wait_until(lambda: nid not in c.status(lc.wait_for_leader())["voters"], 20,
                   what=f"node {name!r} to be removed")


def test_advertised_addresses_are_what_the_cluster_is_told(procs, clients):
    """"-http-adv-addr", "-raft-adv-addr": a node binds one address and advertises another;
    the members store and route to the advertised ones."""
    with LocalCluster(3, http=True, cluster_id=procs.cluster_id) as lc:
        bound = procs.new("4", host="0.0.0.0")
        adv = procs.new("adv4")                   # 127.0.0.1 with the same ports
        for attr in ("peer", "client", "http"):
            setattr(adv, attr, getattr(bound, attr).replace("0.0.0.0", "127.0.0.1"))
        adv.name, adv.data_dir, adv.log_path = "4", bound.data_dir, bound.log_path
        procs.start(adv, "--join", ",".join(lc.client_addresses()),
                    "--raft-adv-addr", adv.peer, "--client-adv-addr", adv.client,
                    "--http-adv-addr", adv.http.replace("127.0.0.1", "localhost"), bind=bound)
        c = clients(lc)
        wait_until(lambda: 4 in c.status(lc.wait_for_leader())["voters"], 30,
                   what="node 4 to become a voter")
        book = c.status(lc.wait_for_leader())["members"]["4"]
        assert book["peer"] == adv.peer and book["client"] == adv.client
        assert book["http"] == adv.http.replace("127.0.0.1", "localhost")
        st = procs.status(adv)
        assert st["addresses"]["peer"] == bound.peer and st["advertised"]["peer"] == adv.peer
        # "Nodes API" and "Status API" show the advertised addresses, never the bound ones
        four = wait_until(lambda: next(n for n in request(
            "GET", f"http://{lc.nodes[1].http_addr}/nodes", params={"ver": "2"}
        ).json()["nodes"] if n["id"] == "4" and n["reachable"]), 30, what="node 4 to answer")
        assert (four["addr"], four["api_addr"]) == \
            (adv.peer.removeprefix("tcp://"), "http://" + adv.http.replace("127.0.0.1", "localhost"))
        own = request("GET", f"http://{adv.http}/status").json()["store"]
        assert own["addr"] == adv.peer.removeprefix("tcp://")
        assert f"ID:4 Address:{adv.peer.removeprefix('tcp://')}}}" in own["raft"]["latest_configuration"]


@pytest.mark.parametrize("args, message", [
    (["--bootstrap-expect", "3"], "--bootstrap-expect needs --join"),
    (["--bootstrap-expect", "-1", "--join", "tcp://127.0.0.1:1"], "--bootstrap-expect must be"),
    (["--non-voter"], "a non-voter joins an existing cluster: give --join"),
    (["--raft-adv-addr", "no port here"], "--raft-adv-addr 'tcp://no port here' is not host:port"),
    (["--extensions-path", "/no/such/dir"], "--extensions-path /no/such/dir: no such file"),
    (["--join-as", "bob", "--join", "tcp://127.0.0.1:1"], "--join-as names a user of the users file"),
    (["--id", ""], "bad node id"),
])
def test_bad_clustering_flags_are_refused_with_a_clear_error(procs, args, message):
    """Every new flag validates its argument: exit status 2 and one clear line, no node."""
    p = procs.new("9")
    cmd_args = list(args)
    if cmd_args[:1] == ["--id"]:
        p.name = cmd_args[1]
        cmd_args = cmd_args[2:]
    out = procs.run(p, *cmd_args)
    assert out.returncode == 2, out
    assert message in out.stderr, out.stderr


def test_join_through_a_members_http_address_as_rqlite_nodes_do(procs, clients):
    """General guidelines: `-join http://host:4001` names a member's HTTP API address (any
    member: a follower passes the join on to the leader). A node of another cluster that
    does the same is refused: HTTP 409, and it does not start."""
    with LocalCluster(3, http=True, cluster_id=procs.cluster_id) as lc:
        leader = lc.wait_for_leader()
        follower = next(i for i in lc.nodes if i != leader)
        url = f"http://{lc.nodes[follower].http_addr}"
        p = procs.start(procs.new("4"), "--join", url)
        c = clients(lc)
        wait_until(lambda: 4 in c.status(lc.wait_for_leader())["voters"], 30,
                   what="node 4 to join over HTTP and vote")
        assert p.popen.poll() is None
        with LocalCluster(1, cluster_id=procs.cluster_id) as other:
            other.stop(1)
            stray = procs.new("1")
            stray.data_dir = other.nodes[1].data_dir
            out = procs.run(stray, "--join", url)
            assert out.returncode == 2, out
            assert "HTTP 409" in out.stderr and "another cluster" in out.stderr, out.stderr
