"""Big reads never hurt the cluster (issue 13, items 1-2): reads run on the node's worker
threads with their own read-only connections, long results come in chunks from one
consistent state, and the deterministic apply is never disturbed by a concurrent reader."""
from __future__ import annotations

import os
import tempfile
import threading

import pytest

from ddb_node.cluster import LocalCluster
from ddb_node.sql import Request, StateMachine, encode_entry
from ddb_node.sql import determinism
from ddb_node.sql.reader import Reader

ROWS = 60_000


def _entry(sql, *params, seed=1):
    return encode_entry(Request([[sql, *params]]), timestamp_ms=1_000, seed=seed)


@pytest.fixture(scope="module")
def cluster():
    with LocalCluster(3) as lc:
        c = lc.client()
        c.execute("CREATE TABLE big(id INTEGER PRIMARY KEY, v TEXT)")
        sql = "INSERT INTO big(v) VALUES " + ",".join(["(?)"] * 500)
        for _ in range(ROWS // 500):
            c.execute(sql, ["x" * 100] * 500)
        yield lc, c
        c.close()


def test_query_iter_streams_one_consistent_state_in_chunks(cluster):
    lc, c = cluster
    sizes, ids = [], []
    with lc.client() as writer:
        for chunk in c.query_iter("SELECT id FROM big ORDER BY id", level="linearizable",
                                  chunk_rows=7_000):
            sizes.append(len(chunk.values[0]))
            ids.extend(chunk.values[0])
            writer.execute("INSERT INTO big(v) VALUES ('later')")   # commits while we read
    assert max(sizes) == 7_000 and len(sizes) >= ROWS // 7_000
    assert ids == sorted(ids) and len(ids) == len(set(ids))
    # the cursor read one state: none of the rows written while it ran
    n_before = len(ids)
    now = c.query("SELECT count(*) FROM big", level="linearizable").results[0].values[0][0]
    assert now == n_before + len(sizes)


def test_query_of_a_long_result_is_whole_and_typed(cluster):
    _lc, c = cluster
    r = c.query("SELECT id, v FROM big", level="none")
    n = c.query("SELECT count(*) FROM big", level="none").results[0].values[0][0]
    assert len(r.results[0].values[0]) >= ROWS and r.results[0].columns == ["id", "v"]
    df = r.to_pandas()
    assert len(df) == len(r.results[0].values[0]) and len(df) <= n
    assert str(df["id"].dtype).lower().startswith("int")


def test_stopping_early_closes_the_cursor(cluster):
    _lc, c = cluster
    it = c.query_iter("SELECT * FROM big", chunk_rows=1_000)
    first = next(it)
    assert len(first.values[0]) == 1_000
    it.close()
    opened = {nid: st["counters"]["open_cursors"] for nid, st in c.status().items()}
    assert set(opened.values()) == {0}, opened


def test_a_bad_read_answers_with_its_error_whole_or_chunked(cluster):
    """A read that prepares and then fails while running on the worker thread (malformed
    JSON) comes back as an error naming the cause, on the plain path and on the cursor path
    alike; it never leaves the asker waiting, and the node serves the next read."""
    _lc, c = cluster
    with pytest.raises(Exception, match="malformed JSON"):
        c.query("SELECT json('{')", level="none")
    with pytest.raises(Exception, match="malformed JSON"):
        list(c.query_iter("SELECT json('{')", chunk_rows=10))
    assert c.query("SELECT count(*) FROM big", level="none").results[0].values[0][0] >= ROWS


def test_a_node_with_all_its_cursors_open_refuses_one_more_clearly(cluster):
    """A node holds at most MAX_CURSORS open cursors (each keeps a read transaction and so
    the WAL); one more is refused with an error that says so, not left waiting, and once
    the open ones are closed a chunked read works again."""
    from ddb_node.server.reads import MAX_CURSORS
    _lc, c = cluster
    open_iters, refused = [], None
    for _ in range(3 * MAX_CURSORS + 1):          # the client may try every node in turn
        try:
            it = c.query_iter("SELECT id FROM big", chunk_rows=10)   # asks for the first chunk
            next(it)
        except Exception as e:  # noqa: BLE001  (the refusal under test)
            refused = e
            break
        open_iters.append(it)
    try:
        assert refused is not None and "open cursors" in str(refused), refused
    finally:
        for it in open_iters:
            it.close()
    assert len(next(c.query_iter("SELECT id FROM big", chunk_rows=10)).values[0]) == 10


def test_a_slow_query_on_a_follower_does_not_stop_the_leader(cluster):
    """A follower busy with a long query keeps answering heartbeats: no election, and the
    leader keeps committing writes meanwhile."""
    lc, c = cluster
    leader = lc.leader()
    follower = next(i for i in c.members if i != leader)
    term0 = c.status(leader)["term"]
    done = threading.Event()
    out = {}

    def slow():
        try:
            with lc.client() as reader:
                out["r"] = reader.query_on(follower, "SELECT count(*) FROM big a, big b "
                                           "WHERE a.id < 1500 AND b.id < 1500 AND a.v = b.v",
                                           timeout=60)
        finally:
            done.set()
    t = threading.Thread(target=slow)
    t.start()
    writes = 0
    with lc.client() as w:
        while not done.is_set() and writes < 2_000:
            w.execute("INSERT INTO big(v) VALUES ('during')")
            writes += 1
    t.join(120)
    assert out["r"].results[0].values[0][0] == 1499 * 1499
    assert writes > 10
    assert c.status(leader)["term"] == term0 and lc.leader() == leader


def test_an_unknown_cursor_is_a_clear_error(cluster):
    _lc, c = cluster
    nid = sorted(c.members)[0]
    reply = c.call(c.members[nid], {"op": "fetch", "cursor": 987654}, 5.0)
    assert not reply["ok"] and "no open cursor 987654" in reply["error"]["message"]


# ---------------------------------------------------------------- below the node
def test_a_reader_on_another_thread_never_draws_from_the_entry_streams():
    """determinism.EntryContext is active only on the applying thread: a concurrent reader's
    random() and clock are real, and the replicas' apply stays identical."""
    seen = {}
    ctx = determinism.context
    ctx.begin(5_000, 42)
    try:
        t = threading.Thread(target=lambda: seen.update(active=ctx.active))
        t.start()
        t.join()
        assert ctx.active and seen["active"] is False
    finally:
        ctx.end()


def test_apply_is_identical_with_and_without_a_concurrent_reader():
    def run(with_reader: bool):
        d = tempfile.mkdtemp()
        sm = StateMachine(os.path.join(d, "data.db"))
        sm.apply_batch([(1, 1, _entry("CREATE TABLE t(x, y DEFAULT (random()), z DEFAULT (datetime('now')))"))])
        stop = threading.Event()
        if with_reader:
            reader = Reader(os.path.join(d, "data.db"))

            def spin():
                while not stop.is_set():
                    reader.read(Request([["SELECT random(), randomblob(8), datetime('now'), count(*) FROM t"]]))
            th = threading.Thread(target=spin)
            th.start()
        for i in range(2, 300):
            sm.apply_batch([(i, 1, _entry("INSERT INTO t(x) VALUES (random())", seed=i))])
        stop.set()
        if with_reader:
            th.join()
            reader.close()
        rows = sm.connection.execute("SELECT rowid, x, y, z FROM t ORDER BY rowid").fetchall()
        sm.close()
        return rows
    assert run(False) == run(True)


def test_an_http_answer_over_the_cap_is_an_error_that_says_how_to_page(monkeypatch):
    from tests.http_support import leader_url, request
    monkeypatch.setenv("DDB_HTTP_MAX_RESULT", "50000")
    with LocalCluster(3, http=True) as lc:
        c = lc.client()
        c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        c.execute("INSERT INTO t(v) VALUES " + ",".join(["(?)"] * 1000), ["x" * 100] * 1000)
        url = leader_url(lc)
        big = request("GET", url + "/db/query", params={"q": "SELECT * FROM t"}).json()
        err = big["results"][0]["error"]
        assert "50,000 bytes" in err and "DDB_HTTP_MAX_RESULT" in err and "LIMIT" in err
        small = request("GET", url + "/db/query", params={"q": "SELECT * FROM t LIMIT 10"}).json()
        assert len(small["results"][0]["values"]) == 10


def test_a_short_read_is_answered_inline_and_a_long_one_by_the_workers(cluster):
    """Reads of microseconds stay on the loop (no thread handoff); one past the inline budget
    (or longer than a chunk) is run by a worker thread."""
    _lc, c = cluster
    leader = c.leader()

    def offloaded():
        return c.status(leader)["counters"]["reads_offloaded"]
    before = offloaded()
    for _ in range(20):
        c.query("SELECT v FROM big WHERE id = 7", level="weak")
    assert offloaded() == before
    c.query("SELECT * FROM big", level="weak")
    assert offloaded() > before
