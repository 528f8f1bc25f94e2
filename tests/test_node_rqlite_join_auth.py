"""Join authorization with a users file (issue 14, item 7), on real node processes.

rqlite docs, "Security" > "User-level permissions" (rqlite.io/docs/guides/security/):
`join` lets a node join the cluster, `join-read-only` only as a read-only (non-voting) node;
with a users file a join without credentials is refused. `-join-as` names the user a joining
node authenticates as."""
from __future__ import annotations

import json
import os

import pytest

from ddb_node.cluster import LocalCluster, free_ports

from tests.http_support import request
from tests.nodehelpers import wait_until
from tests.rqlite_procs import Clients, Procs


@pytest.fixture
def clients():
    made = Clients()
    yield made
    made.close()


@pytest.fixture(scope="module")
def users_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("join-auth") / "users.json"
    path.write_text(json.dumps([
        {"username": "joiner", "password": "j0in", "perms": ["join", "status"]},
        {"username": "replica", "password": "r3ad", "perms": ["join-read-only"]},
        {"username": "replica2", "password": "r3ad2", "perms": ["join-read-replica"]},
        {"username": "querier", "password": "q", "perms": ["query"]},
        {"username": "admin", "password": "adm", "perms": ["remove", "status"]},
        {"username": "*", "perms": ["status", "ready"]},
    ]))
    return str(path)


@pytest.fixture(scope="module")
def cluster(users_file, tmp_path_factory):
    with LocalCluster(3, http=True, extra_args=("--auth", users_file)) as lc:
        procs = Procs(str(tmp_path_factory.mktemp("joiners")), lc.cluster_id)
        try:
            yield lc, procs
        finally:
            procs.close()


def _join_url(lc) -> str:
    return f"http://{lc.nodes[lc.wait_for_leader()].http_addr}/join"


JOIN = {"id": "77", "addr": "127.0.0.1:1", "client": "127.0.0.1:2", "api_addr": "127.0.0.1:3"}


@pytest.mark.parametrize("auth, voter", [(None, True), (None, False), (("querier", "q"), True),
                                         (("replica", "r3ad"), True), (("joiner", "wrong"), True)])
def test_http_join_without_the_permission_is_401(cluster, auth, voter, clients):
    lc, _ = cluster
    resp = request("POST", _join_url(lc), dict(JOIN, voter=voter), auth=auth)
    assert resp.status == 401, resp
    assert 77 not in clients(lc).status(lc.wait_for_leader())["learners"]


@pytest.mark.parametrize("auth, voter, nid", [(("joiner", "j0in"), True, "71"),
                                              (("joiner", "j0in"), False, "72"),
                                              (("replica", "r3ad"), False, "73"),
                                              (("replica2", "r3ad2"), False, "74")])
def test_http_join_with_the_permission_is_200(cluster, auth, voter, nid, clients):
    """"User-level permissions": `join` lets a node join (as a voter or not), `join-read-only`
    (also spelled `join-read-replica`) only with "voter": false. The joined node is a member
    at once (ddb: a learner, promoted once caught up when it asked to vote), and /nodes
    ("Nodes API", `nonvoters`) lists a node that joined with "voter": false as a non-voter."""
    lc, _ = cluster
    peer, client = free_ports(2)
    body = {"id": nid, "addr": f"127.0.0.1:{peer}", "client": f"127.0.0.1:{client}",
            "voter": voter}
    resp = request("POST", _join_url(lc), body, auth=auth)
    assert resp.status == 200, resp
    try:
        assert int(nid) in clients(lc).status(lc.wait_for_leader())["learners"]
        nodes = request("GET", f"http://{lc.nodes[1].http_addr}/nodes",
                        params={"ver": "2", "nonvoters": None, "timeout": "1s"}).json()["nodes"]
        [joined] = [n for n in nodes if n["id"] == nid]
        assert (joined["addr"], joined["voter"], joined["reachable"]) == \
            (f"127.0.0.1:{peer}", False, False)        # it never answers: a learner still
    finally:
        resp = request("DELETE", f"http://{lc.nodes[lc.wait_for_leader()].http_addr}/remove",
                       {"id": nid}, auth=("admin", "adm"))
        assert resp.status == 200, resp


def test_node_with_join_permission_joins_as_a_voter(cluster, users_file, clients):
    lc, procs = cluster
    p = procs.start(procs.new("4"), "--join", ",".join(lc.client_addresses()),
                    "--auth", users_file, "--join-as", "joiner")
    c = clients(lc)
    wait_until(lambda: 4 in c.status(lc.wait_for_leader())["voters"], 30, what="node 4 to vote")
    assert p.popen.poll() is None


def test_join_read_only_permission_joins_only_as_a_non_voter(cluster, users_file, clients):
    lc, procs = cluster
    ro = procs.start(procs.new("5"), "--join", ",".join(lc.client_addresses()), "--non-voter",
                     "--auth", users_file, "--join-as", "replica")
    c = clients(lc)
    wait_until(lambda: 5 in c.status(lc.wait_for_leader())["learners"], 30,
               what="node 5 to join as a non-voter")
    assert ro.popen.poll() is None
    # "Nodes API" with `nonvoters`: the read-only node is there, live, and not a voter
    url = f"http://{lc.nodes[1].http_addr}/nodes"
    five = wait_until(lambda: next(n for n in request("GET", url, params={
        "ver": "2", "nonvoters": None}).json()["nodes"] if n["id"] == "5" and n["reachable"]),
        20, what="node 5 to answer /nodes")
    assert (five["voter"], five["api_addr"], five["addr"]) == \
        (False, f"http://{ro.http}", ro.peer.removeprefix("tcp://"))
    # the same user may not bring in a voter: the node refuses to start
    out = procs.run(procs.new("6"), "--join", ",".join(lc.client_addresses()),
                    "--auth", users_file, "--join-as", "replica")
    assert out.returncode == 2, out
    assert "join refused" in out.stderr and "'join' permission" in out.stderr, out.stderr
    assert 6 not in c.status(lc.wait_for_leader())["learners"]


def test_node_without_credentials_is_refused(cluster, users_file, clients):
    lc, procs = cluster
    out = procs.run(procs.new("8"), "--join", ",".join(lc.client_addresses()),
                    "--auth", users_file)
    assert out.returncode == 2, out
    assert "join refused" in out.stderr, out.stderr
    st = clients(lc).status(lc.wait_for_leader())
    assert 8 not in st["voters"] and 8 not in st["learners"]
