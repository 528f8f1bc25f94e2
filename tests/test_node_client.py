"""The Python client against real nodes: context manager, thread safety, exactly-once retries
across a leader change (client sessions), map/reduce against the same query on one node,
the asyncio client."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from ddb_node.client import AsyncClient, Client
from ddb_node.errors import DdbError

from tests.nodehelpers import (Writers, assert_replicas_identical, check_no_loss_no_dup,
                          wait_converged, wait_until)


@pytest.fixture(scope="module", autouse=True)
def schema(lc):
    with lc.client() as c:
        c.execute("CREATE TABLE acked(k TEXT PRIMARY KEY, w INTEGER, i INTEGER)")
        c.execute("CREATE TABLE log(id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT)")
        c.execute("CREATE TABLE nums(id INTEGER PRIMARY KEY, g TEXT, x INTEGER, y REAL)")
        c.request([("INSERT INTO nums(id, g, x, y) VALUES(?, ?, ?, ?)",
                    [i, "abc"[i % 3], i * 7 % 101, i / 4]) for i in range(1, 501)],
                  transaction=True)


def test_context_manager_closes(lc):
    with lc.client() as c:
        assert c.query("SELECT count(*) FROM nums")[0].values == [[500]]
        links = list(c._links)
        assert links
    assert c._closed
    assert all(link.closed for link in links)
    with pytest.raises(DdbError):
        c.query("SELECT 1")
    c.close()   # idempotent


def test_client_discovers_members_from_one_seed(lc):
    leader = lc.wait_for_leader(10)
    seed = next(n.client_addr for i, n in lc.nodes.items() if i != leader)
    with Client(seed) as c:
        # (polled: on a busy machine a spurious election may move the leadership meanwhile)
        wait_until(lambda: c.leader() == lc.wait_for_leader(5), 10, what="the client to find the leader")
        assert set(c.members) == set(lc.node_ids())
        r = c.execute("INSERT INTO log(k) VALUES('seeded')")
        assert "forwarded_by" not in r.raw, "the client sends writes straight to the leader"
        assert r.node == c._leader


def test_many_threads_share_one_client(lc):
    with lc.client() as c:
        errors = []

        def work(t):
            try:
                for i in range(25):
                    k = f"thr-{t}-{i}"
                    r = c.execute("INSERT INTO acked(k, w, i) VALUES(?, ?, ?)", [k, t, i])
                    assert r.rows_affected == 1
                    q = c.query("SELECT w, i FROM acked WHERE k = ?", [k], level="linearizable")
                    assert q[0].rows == [(t, i)], (k, q[0].rows)
                    if i % 5 == 0:
                        c.query("SELECT count(*) FROM nums", level="none")
            except Exception as e:  # noqa: BLE001
                errors.append(repr(e))

        threads = [threading.Thread(target=work, args=(t,)) for t in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert not errors, errors[:5]
        n = c.query("SELECT count(*) FROM acked WHERE k LIKE 'thr-%'", level="linearizable")
        assert n[0].values == [[12 * 25]]


def test_shared_client_retries_exactly_once_across_leader_kill(lc):
    """Many threads, one Client, the leader killed mid-load: the client's retries (same
    session sequence number) never apply a write twice and never lose an acknowledged one."""
    with lc.client(timeout=20.0) as shared:
        w = Writers(lc, 8, "xo", shared_client=shared).start()
        try:
            leader = lc.wait_for_leader(10)
            wait_until(lambda: w.total_acked() >= 80, 20, what="writes before the kill")
            lc.kill(leader)
            lc.wait_for_leader(20, exclude=(leader,))
            n = w.total_acked()
            wait_until(lambda: w.total_acked() >= n + 80, 30, what="writes after the kill")
        finally:
            w.finish()
        lc.restart(leader)
        check_no_loss_no_dup(shared, w)
        assert_replicas_identical(lc, shared, table="acked", order="k", timeout=40)


def test_map_reduce_equals_single_node_query(lc):
    with lc.client() as c:
        wait_converged(lc, c)
        want = c.query("SELECT g, count(*) AS n, sum(x) AS sx, min(y) AS mn, max(y) AS mx "
                       "FROM nums GROUP BY g ORDER BY g", level="linearizable")[0].rows
        got = c.map_reduce(
            "SELECT g, count(*) AS n, sum(x) AS sx, min(y) AS mn, max(y) AS mx FROM nums "
            "WHERE id % :ddb_parts = :ddb_part GROUP BY g",
            "SELECT g, sum(n), sum(sx), min(mn), max(mx) FROM map GROUP BY g ORDER BY g")
        assert [tuple(r) for r in got.rows] == [tuple(r) for r in want]

        # a Python reducer, and the default (concatenate the partial results)
        total = c.map_reduce("SELECT sum(x) AS s FROM nums WHERE rowid % :ddb_parts = :ddb_part",
                             lambda parts: sum(p.values[0][0] or 0 for p in parts))
        assert total == c.query("SELECT sum(x) FROM nums", level="strong")[0].values[0][0]
        ids = c.map_reduce("SELECT id FROM nums WHERE id % :ddb_parts = :ddb_part AND x > :lo",
                           params={"lo": 50})
        want_ids = c.query("SELECT id FROM nums WHERE x > 50", level="linearizable")[0].values[0]
        assert sorted(ids.values[0]) == sorted(want_ids)
        # every member took a share
        assert len(set(ids.values[0])) == len(ids.values[0])

        with pytest.raises(DdbError):
            c.map_reduce("DELETE FROM nums WHERE id % :ddb_parts = :ddb_part")
        assert c.query("SELECT count(*) FROM nums", level="linearizable")[0].values == [[500]]


def test_to_pandas(lc):
    pd = pytest.importorskip("pandas")
    with lc.client() as c:
        df = c.query("SELECT id, g, x, y FROM nums WHERE id <= 3 ORDER BY id").to_pandas()
        assert list(df.columns) == ["id", "g", "x", "y"]
        assert len(df) == 3
        assert str(df["x"].dtype) == "Int64"
        assert df["g"].tolist() == ["b", "c", "a"]
        assert isinstance(df, pd.DataFrame)


def test_async_client(lc):
    async def main():
        async with AsyncClient(lc.client_addresses()) as ac:
            await ac.execute("INSERT INTO log(k) VALUES(?)", ["async-1"])
            rs = await asyncio.gather(*(ac.execute("INSERT INTO log(k) VALUES(?)", [f"async-m-{i}"])
                                        for i in range(20)))
            assert all(r.rows_affected == 1 for r in rs)
            r = await ac.query("SELECT count(*) FROM log WHERE k LIKE 'async-%'", level="linearizable")
            return r[0].values[0][0]

    assert asyncio.run(main()) == 21


def test_the_async_client_offers_the_clients_operations_with_the_same_errors(lc):
    """Issue 15: one routing engine (ddb_node/routing.py) behind both clients, so the
    asyncio client has the same operations (all but the blocking iterator query_iter) and
    raises what the blocking one raises."""
    from ddb_node.errors import StatementError
    sync_ops = {n for n in dir(Client) if not n.startswith("_")}
    async_ops = {n for n in dir(AsyncClient) if not n.startswith("_")}
    assert sync_ops - async_ops == {"query_iter"}

    async def main():
        async with AsyncClient(lc.client_addresses(), level="linearizable") as ac:
            want = (await ac.query("SELECT count(*), sum(x) FROM nums"))[0].rows
            leader = await ac.leader()
            follower = next(i for i in sorted(ac.members) if i != leader)
            st = await ac.status(follower)
            assert st["node"] == follower
            assert set(await ac.status()) == set(lc.node_ids())
            on = await ac.query_on(follower, "SELECT count(*) FROM nums")
            assert on.node == follower
            none = await ac.query("SELECT count(*) FROM nums", level="none")
            mixed = await ac.request([("INSERT INTO log(k) VALUES ('async-req')", None),
                                      ("SELECT count(*) FROM log WHERE k = 'async-req'", None)])
            mr = await ac.map_reduce("SELECT count(*) AS n FROM nums "
                                     "WHERE id % :ddb_parts = :ddb_part", "SELECT sum(n) FROM map")
            with pytest.raises(StatementError):
                await ac.execute("INSERT INTO no_such_table VALUES (1)")
            with pytest.raises(DdbError):
                await ac.query_on(999, "SELECT 1")
            return want, on[0].rows, none[0].rows, mixed[1].rows, mr.rows

    want, on, none, mixed, mr = asyncio.run(main())
    assert [tuple(r) for r in want] == [(500, sum(i * 7 % 101 for i in range(1, 501)))]
    assert [tuple(r) for r in on] == [tuple(r) for r in none] == [(500,)]
    assert [tuple(r) for r in mixed] == [(1,)] and [tuple(r) for r in mr] == [(500,)]
    with lc.client() as c, pytest.raises(StatementError):
        c.execute("INSERT INTO no_such_table VALUES (1)")


def test_client_parallel_reads_at_every_level(lc):
    with lc.client() as c:
        wait_converged(lc, c)
        with ThreadPoolExecutor(8) as ex:
            futs = [ex.submit(c.query, "SELECT count(*) FROM nums", level=lvl)
                    for lvl in ("none", "weak", "linearizable", "strong") * 10]
            assert {f.result()[0].values[0][0] for f in futs} == {500}


def test_refresh_believes_the_leader_named_at_the_highest_term():
    """A deposed leader cut off from the others still names itself, at its old term; the
    majority names the new leader at a higher term. A node still electing names nobody."""
    from ddb_node.client import choose_nodes_reply
    replies = {"a": {"leader": 1, "term": 3}, "b": {"leader": 2, "term": 4},
               "c": {"leader": 0, "term": 5}}
    assert choose_nodes_reply(replies)["leader"] == 2
    tie = {"a": {"leader": 0, "term": 2}, "b": {"leader": 0, "term": 2}}
    assert choose_nodes_reply(tie, prefer="b") is tie["b"]
    assert choose_nodes_reply(tie, prefer="a") is tie["a"]
