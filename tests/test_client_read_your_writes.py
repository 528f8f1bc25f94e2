"""Read-your-writes: every write reply carries its log index, and a read that names it
(`min_index`) is answered by the node it reaches, follower included, once that node has
applied the index: never with a state older than the client's own write."""
import pytest

from ddb_node.errors import Timeout

from tests.nodehelpers import restore_health


@pytest.fixture(scope="module", autouse=True)
def schema(lc):
    with lc.client() as c:
        c.execute("CREATE TABLE kv(k INTEGER PRIMARY KEY, v TEXT)")


@pytest.fixture(autouse=True)
def _restore(lc):
    yield
    restore_health(lc)


def test_a_follower_waits_for_the_index_instead_of_answering_stale(lc):
    with lc.client() as c:
        leader = lc.wait_for_leader(10)
        follower = next(n for n in lc.node_ids() if n != leader)
        lc.isolate(follower)                   # it stops hearing of new entries
        w = c.execute("INSERT INTO kv VALUES (1, 'mine')")
        assert isinstance(w.index, int) and w.index > 0
        with pytest.raises(Timeout):
            c.query_on(follower, "SELECT v FROM kv WHERE k = 1", min_index=w.index, timeout=0.5)
        lc.heal()
        r = c.query_on(follower, "SELECT v FROM kv WHERE k = 1", min_index=w.index, timeout=10)
        assert r[0].rows == [("mine",)] and r.node == follower and r.index >= w.index


def test_a_read_your_writes_client_sees_its_write_on_any_node(lc):
    with lc.client(read_your_writes=True) as c:
        for i in range(20):
            w = c.execute("INSERT OR REPLACE INTO kv VALUES (2, ?)", [f"v{i}"])
            assert c.last_index == w.index
            r = c.query("SELECT v FROM kv WHERE k = 2", level="none")
            assert r[0].rows == [(f"v{i}",)]
            assert r.index >= w.index


def test_the_async_client_waits_for_min_index_too(lc):
    import asyncio

    from ddb_node.client import AsyncClient

    leader = lc.wait_for_leader(10)
    follower = next(n for n in lc.node_ids() if n != leader)

    async def main():
        async with AsyncClient([lc.nodes[follower].client_addr], read_your_writes=True) as ac:
            w = await ac.execute("INSERT OR REPLACE INTO kv VALUES (3, 'async')")
            assert ac.last_index == w.index
            r = await ac.query("SELECT v FROM kv WHERE k = 3", level="none")
            return r[0].rows, r.index, w.index
    rows, index, written = asyncio.run(main())
    assert rows == [("async",)] and index >= written
