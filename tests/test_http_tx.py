"""Interactive transactions over HTTP: POST /db/tx, statements with ?tx=ID, then
POST /db/tx/ID/commit or /rollback (server/http/tx.py)."""
from __future__ import annotations

import pytest

from tests.http_support import follower_url, leader_url, request

CLUSTER_OPTIONS = {"storage": "memory"}   # see conftest.py


@pytest.fixture(scope="module", autouse=True)
def schema(cluster):
    L = leader_url(cluster)
    request("POST", L + "/db/execute", ["CREATE TABLE acct(id INTEGER PRIMARY KEY, balance INTEGER)"])


@pytest.fixture
def L(cluster):
    url = leader_url(cluster)
    request("POST", url + "/db/execute", ["DELETE FROM acct", "INSERT INTO acct VALUES (1, 100), (2, 100)"])
    return url


def begin(url):
    r = request("POST", url + "/db/tx")
    assert r.status == 200, r.text
    return r.json()["tx"]


def balances(url):
    r = request("GET", url + "/db/query", params={"q": "SELECT balance FROM acct ORDER BY id",
                                                  "level": "linearizable"})
    return [row[0] for row in r.json()["results"][0]["values"]]


def test_a_transfer_over_http_commits_once(L):
    tx = begin(L)
    r = request("POST", L + "/db/query", [["SELECT balance FROM acct WHERE id = ?", 1]], params={"tx": tx})
    assert r.json()["results"][0]["values"] == [[100]]
    r = request("POST", L + "/db/execute", [["UPDATE acct SET balance = balance - 10 WHERE id = ?", 1],
                                            ["UPDATE acct SET balance = balance + 10 WHERE id = ?", 2]],
                params={"tx": tx})
    assert [x["rows_affected"] for x in r.json()["results"]] == [1, 1]
    r = request("POST", L + "/db/query", ["SELECT balance FROM acct ORDER BY id"], params={"tx": tx})
    assert r.json()["results"][0]["values"] == [[90], [110]]       # its own writes
    assert balances(L) == [100, 100]                                 # nobody else's yet
    r = request("POST", L + f"/db/tx/{tx}/commit")
    assert r.status == 200 and r.json()["raft_index"] > 0, r.text
    assert balances(L) == [90, 110]
    r = request("POST", L + f"/db/tx/{tx}/commit")                  # it is over
    assert r.status == 404


def test_a_conflicting_commit_is_409_and_applies_nothing(cluster, L):
    tx = begin(L)
    request("POST", L + "/db/execute", ["UPDATE acct SET balance = 0 WHERE id = 1"], params={"tx": tx})
    request("POST", follower_url(cluster) + "/db/execute", ["UPDATE acct SET balance = 1 WHERE id = 2"])
    r = request("POST", L + f"/db/tx/{tx}/commit")
    assert r.status == 409 and "conflict" in r.text
    assert balances(L) == [100, 1]


def test_a_leader_change_ends_the_transaction_with_409_and_applies_nothing(cluster, L):
    """A transaction lives in the term it began in: after a leadership transfer (a new term)
    its next statement answers 409, the transaction is gone (404 after), nothing applied."""
    url = follower_url(cluster)
    old = cluster.wait_for_leader()
    tx = begin(url)
    r = request("POST", url + "/db/execute", ["UPDATE acct SET balance = 0 WHERE id = 1"],
                params={"tx": tx})
    assert r.status == 200, r.text
    target = next(i for i, n in cluster.nodes.items() if i != old and n.state == "running")
    cluster.transfer_leader(target)
    r = request("POST", url + "/db/execute", ["UPDATE acct SET balance = 0 WHERE id = 2"],
                params={"tx": tx})
    assert r.status == 409 and "leader changed" in r.text, r.text
    assert request("POST", url + f"/db/tx/{tx}/commit").status == 404
    assert balances(leader_url(cluster)) == [100, 100]


def test_a_commit_after_a_leader_change_is_409_and_applies_nothing(cluster, L):
    url = follower_url(cluster)
    old = cluster.wait_for_leader()
    tx = begin(url)
    request("POST", url + "/db/execute", ["UPDATE acct SET balance = 0 WHERE id = 1"], params={"tx": tx})
    target = next(i for i, n in cluster.nodes.items() if i != old and n.state == "running")
    cluster.transfer_leader(target)
    r = request("POST", url + f"/db/tx/{tx}/commit")
    assert r.status == 409 and "leader changed" in r.text, r.text
    assert balances(leader_url(cluster)) == [100, 100]


def test_rollback_and_unknown_transactions(L):
    tx = begin(L)
    request("POST", L + "/db/execute", ["UPDATE acct SET balance = 0"], params={"tx": tx})
    assert request("POST", L + f"/db/tx/{tx}/rollback").status == 200
    assert balances(L) == [100, 100]
    r = request("POST", L + "/db/query", ["SELECT 1"], params={"tx": tx})
    assert r.status == 404 and "unknown, expired" in r.text
    assert request("POST", L + "/db/tx/nope/commit").status == 404


def test_an_idle_transaction_expires(monkeypatch):
    from ddb_node.server.http import tx as txmod
    from ddb_node.server.http.errors import HttpError
    now = [1000.0]
    monkeypatch.setattr(txmod.time, "monotonic", lambda: now[0])
    tab = txmod.TxTable(idle=30.0)
    kept, left = tab.add(5), tab.add(5)
    now[0] += 20
    tab.get(kept.id)                      # used: its idle time starts again
    now[0] += 20
    assert tab.get(kept.id) is kept
    with pytest.raises(HttpError) as e:
        tab.get(left.id)
    assert e.value.status == 404 and left.id not in tab.open


def test_read_your_writes_over_http_with_min_index(cluster, L):
    r = request("POST", L + "/db/execute", [["UPDATE acct SET balance = ? WHERE id = 1", 42]],
                params={"raft_index": None})
    index = r.json()["raft_index"]
    F = follower_url(cluster)
    r = request("GET", F + "/db/query", params={"q": "SELECT balance FROM acct WHERE id = 1",
                                                "level": "none", "min_index": index})
    assert r.json()["results"][0]["values"] == [[42]]
    assert int(r.headers["x-ddb-index"]) >= index
    r = request("GET", F + "/db/query", params={"q": "SELECT 1", "min_index": "x"})
    assert r.status == 400


def test_a_request_in_a_transaction_answers_its_reads_and_commits_its_writes(L):
    tx = begin(L)
    r = request("POST", L + "/db/request", ["SELECT count(*) FROM acct",
                                            "UPDATE acct SET balance = 1 WHERE id = 1"], params={"tx": tx})
    assert r.status == 200 and r.json()["results"][0]["values"] == [[2]], r.text
    assert request("POST", L + f"/db/tx/{tx}/commit").status == 200
    assert balances(L) == [1, 100]
