"""Real node processes over loopback: elections, writes, forwarding, redirects and every
consistency level (including a stale `none` read on a partitioned follower, a `linearizable`
read that refuses to answer from a minority, and a `freshness` bound that refuses it too).

One 3-node cluster is shared by the module; tests that cut links heal them and wait for the
cluster to settle before they return.
"""
from __future__ import annotations

import time

import pytest

from ddb_node.errors import BadRequest, NoLeader, NotLeader, Stale, StatementError, Timeout

from tests.nodehelpers import (assert_replicas_identical, follower_of, node_status, raw_call,
                          wait_converged, wait_until, restore_health)


@pytest.fixture(scope="module")
def c(lc):
    with lc.client() as client:
        client.execute("CREATE TABLE kv(k TEXT PRIMARY KEY, v INTEGER)")
        client.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v)")
        yield client


@pytest.fixture(autouse=True)
def _healthy(lc, c):
    """Each test starts and ends with a healed cluster that has a leader."""
    yield
    restore_health(lc)


def _count(c, table="kv", where="1", level="linearizable"):
    return c.query(f"SELECT count(*) FROM {table} WHERE {where}", level=level)[0].values[0][0]


# ------------------------------------------------------------------ elections and writes
def test_one_leader_and_everyone_agrees(lc, c):
    leader = lc.wait_for_leader(10)
    sts = lc.status()
    leaders = [i for i, s in sts.items() if s["role"] == "leader"]
    assert leaders == [leader]
    terms = {s["term"] for s in sts.values()}
    assert len(terms) == 1
    assert all(s["leader"] == leader for s in sts.values())
    assert c.leader() == leader


def test_writes_are_replicated_everywhere(lc, c):
    c.execute("CREATE TABLE replicated(id INTEGER PRIMARY KEY, v)")
    r = c.execute("INSERT INTO replicated(id, v) VALUES(?, ?)", [1, "one"])
    assert r.rows_affected == 1 and r.last_insert_id == 1
    assert r.index and r.index > 0
    assert "forwarded_by" not in r.raw, "steady-state writes go straight to the leader"
    c.request([("INSERT INTO replicated(id, v) VALUES(?, ?)", [2, "two"]),
               ("INSERT INTO replicated(id, v) VALUES(?, ?)", [3, "three"])], transaction=True)
    rows = assert_replicas_identical(lc, c, table="replicated")
    assert rows == [(1, "one"), (2, "two"), (3, "three")]


def test_a_write_costs_the_leader_one_fsync_not_two(lc, c):
    """Ready.must_sync: the leader flushes the Ready that carries the entry; the Ready that
    only moves its commit index is saved without fsync."""
    leader = lc.wait_for_leader(10)
    before = node_status(c, leader)["counters"]
    for i in range(20):
        c.execute("INSERT INTO t(v) VALUES(?)", [f"fsync-{i}"])
    after = node_status(c, leader)["counters"]
    assert after["unsynced_saves"] - before["unsynced_saves"] >= 10
    assert after["fsyncs"] - before["fsyncs"] <= 20 + 5   # + elections/heartbeat noise at most


def test_sql_error_is_per_statement_and_transaction_rolls_back(lc, c):
    with pytest.raises(StatementError) as ei:
        c.request([("INSERT INTO t(id, v) VALUES(?, ?)", [100, "a"]),
                   ("INSERT INTO t(id, v) VALUES(?, ?)", [100, "dup"])])
    assert ei.value.statement == 1
    # outside a transaction the first statement took effect
    assert _count(c, "t", "id = 100") == 1
    c.execute("DELETE FROM t WHERE id = 100")
    # inside one, nothing does (the node names the failing statement)
    with pytest.raises((StatementError, BadRequest), match="statement 1"):
        c.request([("INSERT INTO t(id, v) VALUES(?, ?)", [100, "a"]),
                   ("INSERT INTO t(id, v) VALUES(?, ?)", [100, "dup"])], transaction=True)
    assert _count(c, "t", "id = 100") == 0
    with pytest.raises(BadRequest):
        c.query("SELEC nonsense")


def test_new_leader_after_leader_stops_and_old_one_rejoins(lc, c):
    old = lc.wait_for_leader(10)
    lc.stop(old)
    new = lc.wait_for_leader(20, exclude=(old,))
    assert new != old
    c.execute("INSERT INTO kv VALUES('after-stop', 1)")
    lc.restart(old)
    wait_until(lambda: node_status(c, old).get("leader") == new, 20,
               what="the old leader to follow the new one")
    assert_replicas_identical(lc, c, table="kv", order="k")


# ------------------------------------------------------------------ forwarding / redirects
def test_write_to_follower_is_forwarded_and_applied_once(lc, c):
    leader = lc.wait_for_leader(10)
    f = follower_of(lc, leader)
    before = node_status(c, f)["counters"]["forwarded"]
    body = {"op": "request", "statements": [["INSERT INTO kv VALUES(?, ?)", "fwd-1", 7]],
            "level": "weak", "session": ["fwd-test-client", 1]}
    reply = raw_call(lc.nodes[f].client_addr, body)
    assert reply["ok"], reply
    assert reply.get("forwarded_by") == f
    assert reply["node"] == leader
    assert reply["results"][0]["rows_affected"] == 1
    assert node_status(c, f)["counters"]["forwarded"] == before + 1
    # the same session/sequence again (a client retry) is answered, not applied twice
    again = raw_call(lc.nodes[f].client_addr, body)
    assert again["ok"] and again.get("duplicate") is True
    assert _count(c, "kv", "k = 'fwd-1'") == 1
    # a strong read sent to a follower is forwarded through the log as well
    rd = raw_call(lc.nodes[f].client_addr, {"op": "request", "level": "strong",
                                             "statements": [["SELECT v FROM kv WHERE k = 'fwd-1'"]]})
    assert rd["ok"] and rd["results"][0]["values"] == [[7]]


def test_redirect_mode_answers_not_leader_with_the_leader_address(lc, c):
    leader = lc.wait_for_leader(10)
    f = follower_of(lc, leader)
    before = node_status(c, f)["counters"]["forwarded"]
    body = {"op": "request", "statements": [["INSERT INTO kv VALUES('redir', 1)"]],
            "redirect": True}
    reply = raw_call(lc.nodes[f].client_addr, body)
    assert not reply["ok"]
    err = reply["error"]
    assert err["type"] == "NotLeader" and err.get("retry")
    assert err["leader"]["id"] == leader
    assert err["leader"]["client"] == lc.nodes[leader].client_addr
    assert _count(c, "kv", "k = 'redir'") == 0, "a redirected write must not be applied"
    # a Client in redirect mode that believes a follower leads asks it for a redirect
    # (no forwarding hop) and follows the hint itself
    with lc.client(redirect=True) as rc:
        rc.refresh()
        rc._leader = f
        r = rc.execute("INSERT INTO kv VALUES('redir', 2)")
        assert r.node == leader
        assert rc._leader == leader
    assert node_status(c, f)["counters"]["forwarded"] == before, \
        "redirect mode must not cost a forwarding hop"
    assert _count(c, "kv", "k = 'redir'") == 1


def test_not_leader_error_class_carries_hint(lc):
    leader = lc.wait_for_leader(10)
    f = follower_of(lc, leader)
    with lc.client() as c2:
        c2.refresh()
        body = {"op": "request", "statements": [["INSERT INTO kv VALUES('x', 1)"]], "redirect": True}
        with pytest.raises(NotLeader) as ei:
            c2.admin(f, body)
        assert ei.value.leader["id"] == leader


# ------------------------------------------------------------------ consistency levels
@pytest.mark.parametrize("level", ["none", "weak", "linearizable", "strong"])
def test_every_level_reads_own_write(lc, c, level):
    key = f"lvl-{level}"
    c.execute("INSERT INTO kv VALUES(?, ?)", [key, 42])
    if level == "none":
        # a `none` read may be served by any node: wait for that node to catch up
        leader = lc.wait_for_leader(5)
        idx = node_status(c, leader)["applied"]
        for nid in lc.node_ids():
            wait_until(lambda: node_status(c, nid)["applied"] >= idx, 10, what="catch-up")
    r = c.query("SELECT v FROM kv WHERE k = ?", [key], level=level)
    assert r[0].values == [[42]]
    assert r.level == level
    assert r.index is not None


@pytest.mark.parametrize("level", ["weak", "linearizable", "strong"])
def test_leader_levels_from_a_follower_address(lc, c, level):
    """weak and strong are the leader's business: a follower forwards; linearizable is served
    by the follower itself after a ReadIndex round with the leader."""
    leader = lc.wait_for_leader(10)
    f = follower_of(lc, leader)
    c.execute("INSERT INTO kv VALUES(?, ?) ON CONFLICT(k) DO UPDATE SET v = excluded.v",
              ["from-follower", 9])
    reply = raw_call(lc.nodes[f].client_addr,
                     {"op": "request", "level": level,
                      "statements": [["SELECT v FROM kv WHERE k = 'from-follower'"]]})
    assert reply["ok"], reply
    assert reply["results"][0]["values"] == [[9]]
    if level == "linearizable":
        assert reply["node"] == f
    else:
        assert reply["node"] == leader


def test_stale_none_read_on_partitioned_follower(lc, c):
    leader = lc.wait_for_leader(10)
    c.execute("INSERT INTO kv VALUES('stale', 1) ON CONFLICT(k) DO UPDATE SET v = 1")
    f = follower_of(lc, leader)
    wait_converged(lc, c)
    others = [i for i in lc.node_ids() if i != f]
    lc.partition([[f], others])
    # the majority keeps a leader and takes a write
    lc.wait_for_leader(20, exclude=(f,))
    c.execute("UPDATE kv SET v = 2 WHERE k = 'stale'")
    assert c.query("SELECT v FROM kv WHERE k = 'stale'", level="linearizable")[0].values == [[2]]

    # level none on the cut-off follower: old data, answered at once
    r = c.query_on(f, "SELECT v FROM kv WHERE k = 'stale'", level="none")
    assert r[0].values == [[1]], "a `none` read on a partitioned follower serves its stale state"
    assert r.node == f

    # linearizable on the same follower refuses within the request timeout
    t0 = time.monotonic()
    with pytest.raises((Timeout, NoLeader)):
        c.query_on(f, "SELECT v FROM kv WHERE k = 'stale'", level="linearizable", timeout=1.5)
    assert time.monotonic() - t0 < 1.5 + 1.5

    # a freshness bound refuses the stale read once the follower has not heard from a
    # leader for longer than the bound
    wait_until(lambda: (node_status(c, f).get("last_leader_contact_ms") or 0) > 600, 10,
               what="the follower to lose contact")
    addr = lc.nodes[f].client_addr
    reply = raw_call(addr, {"op": "request", "level": "none", "freshness": 0.5,
                            "statements": [["SELECT v FROM kv WHERE k = 'stale'"]]})
    assert not reply["ok"] and reply["error"]["type"] == "Stale", reply
    with pytest.raises(Stale):   # the client maps the error type to its exception class
        c.admin(f, {"op": "request", "level": "none", "freshness": 0.5,
                    "statements": [["SELECT v FROM kv WHERE k = 'stale'"]]})
    # a generous bound still answers (with the stale value)
    reply = raw_call(addr, {"op": "request", "level": "none", "freshness": 3600,
                            "statements": [["SELECT v FROM kv WHERE k = 'stale'"]]})
    assert reply["ok"] and reply["results"][0]["values"] == [[1]]

    lc.heal()
    wait_until(lambda: c.query_on(f, "SELECT v FROM kv WHERE k = 'stale'").results[0].values == [[2]],
               20, what="the follower to catch up after heal")
    # fresh again
    reply = raw_call(addr, {"op": "request", "level": "none", "freshness": 1.0,
                            "statements": [["SELECT v FROM kv WHERE k = 'stale'"]]})
    assert reply["ok"], reply


def test_linearizable_read_refuses_on_isolated_leader(lc, c):
    """The deposed side of a partition: the old leader cannot confirm its leadership."""
    leader = lc.wait_for_leader(10)
    lc.isolate(leader)
    t0 = time.monotonic()
    reply = raw_call(lc.nodes[leader].client_addr,
                     {"op": "request", "level": "linearizable", "timeout": 1.5,
                      "statements": [["SELECT count(*) FROM kv"]]}, timeout=5)
    assert not reply["ok"], reply
    assert reply["error"]["type"] in ("Timeout", "NoLeader", "NotLeader"), reply
    assert time.monotonic() - t0 < 3.5
    # and a write there does not succeed either
    reply = raw_call(lc.nodes[leader].client_addr,
                     {"op": "request", "timeout": 1.0, "redirect": True,
                      "statements": [["INSERT INTO kv VALUES('minority', 1)"]]}, timeout=5)
    assert not reply["ok"], reply
    lc.heal()
    lc.wait_for_leader(20)
    assert _count(c, "kv", "k = 'minority'") == 0


def test_bad_level_and_timeout_are_bad_requests(lc, c):
    leader = lc.wait_for_leader(10)
    addr = lc.nodes[leader].client_addr
    for body in ({"op": "request", "level": "sometimes", "statements": [["SELECT 1"]]},
                 {"op": "request", "timeout": -1, "statements": [["SELECT 1"]]},
                 {"op": "request", "statements": []},
                 {"op": "request", "statements": "SELECT 1"},
                 {"op": "no-such-op"}):
        reply = raw_call(addr, body)
        assert not reply["ok"] and reply["error"]["type"] == "BadRequest", (body, reply)
    with pytest.raises(ValueError):
        c.query("SELECT 1", level="sometimes")
