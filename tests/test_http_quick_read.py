"""An HTTP read worker's short path (server/http/quick_read.py) gives the general path's
answer byte for byte, for the reads it takes, and takes only those.

Both paths run in this process over one worker's LocalReads on a real database file: the
short path on, then off, for every request of a corpus (values of each storage class, empty
results, several statements in one text, errors, percent-encoding, every level), and the
status, headers and body must be equal. The corpus also pins down which requests the short
path takes (it must take the plain reads, or the speed it exists for is gone)."""
from __future__ import annotations

import asyncio
import dataclasses
import os
import time
import urllib.parse

import pytest

from ddb_node.server.http import worker as W
from ddb_node.server.http.server import Request
from ddb_node.sql import Request as SqlRequest, StateMachine, Statement, encode_entry
from ddb_node.sql.limits import Limits

SCHEMA = [
    "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)",
    "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT, b BLOB, r REAL, ts DATETIME, n NUMERIC)",
]
ROWS = [
    ("INSERT INTO kv(k, v) VALUES (?, ?)", ["s-1", "v" * 100]),
    ("INSERT INTO kv(k, v) VALUES (?, ?)", ["ünï <&> \u2028", "x"]),
    ("INSERT INTO t(name, b, r, ts, n) VALUES (?, ?, ?, ?, ?)", ["a", b"\x00\xff", 1.5, "2024-01-02 03:04:05", 7]),
    ("INSERT INTO t(name, b, r, ts, n) VALUES (?, ?, ?, ?, ?)", [None, None, -2.0, None, "text in numeric"]),
    ("INSERT INTO t(name, b, r, ts, n) VALUES (?, ?, ?, ?, ?)", ["c", b"", 1e300, 1700000000, 3.25]),
]


def q(sql: str, extra: str = "") -> bytes:
    return f"/db/query?q={urllib.parse.quote(sql)}{extra}".encode()


TAKEN = [  # plain reads: the short path answers these
    q("SELECT v FROM kv WHERE k='s-1'", "&level=none"),
    q("SELECT v FROM kv WHERE k='s-1'", "&level=weak"),
    q("SELECT v FROM kv WHERE k='s-1'"),                                   # weak by default
    q("SELECT v FROM kv WHERE k='nope'", "&level=none"),                   # no row
    q("SELECT * FROM t ORDER BY id", "&level=none"),                       # every storage class
    q("SELECT count(*), max(r), NULL, x'01', 1.0 FROM t", "&level=none"),  # undeclared types
    q("SELECT * FROM kv ORDER BY k", "&level=none"),                       # HTML-escaped JSON
    q("SELECT 1; SELECT 2 AS two", "&level=none"),                         # two statements, one text
    b"/db/query?q=SELECT+name+FROM+t+WHERE+id%3D1&level=none",             # '+' for spaces
    b"/db/query/?level=none&q=SELECT%201",                                 # trailing slash, order
    q("SELECT v FROM kv WHERE k='s-1'", "&level=linearizable"),
]
DECLINED = [  # everything else takes the general path
    q("SELECT 1", "&level=none&pretty"),
    q("SELECT 1", "&level=none&timings"),
    q("SELECT * FROM t", "&level=none&associative"),
    q("SELECT b FROM t", "&level=none&blob_array"),
    q("SELECT 1", "&level=NONE"),
    q("SELECT 1", "&level=none&level=weak"),
    q("SELECT 1", "&q=SELECT%202"),
    q("PRAGMA read_uncommitted", "&level=none"),
    b"/db/query?level=none",
    b"/db/query?q=&level=none",
]


@pytest.fixture(scope="module")
def apps(tmp_path_factory):
    path = os.path.join(str(tmp_path_factory.mktemp("quick")), "data.db")
    sm = StateMachine(path, sync="normal")
    sm.apply_batch([(1, 1, encode_entry(SqlRequest([Statement(s) for s in SCHEMA]), timestamp_ms=0, seed=1))])
    sm.apply_batch([(2, 1, encode_entry(SqlRequest([Statement(s, p) for s, p in ROWS]), timestamp_ms=0, seed=2))])
    cfg = {"node": 1, "limits": dataclasses.asdict(Limits()), "db": path, "statement_cache": 64,
           "extension_files": [], "max_body": 1 << 20, "max_result": 1 << 20, "auth": None}
    view = W.NodeView()
    view.update({"leader": True, "until": time.monotonic() + 3600, "term": 3, "gen": 1, "schema": 1})
    rounds = W.ReadIndexRounds(lambda rid: asyncio.get_running_loop().call_soon(rounds.answered, rid, 2, None))
    local = W.LocalReads(cfg, view, rounds)
    service = W.WorkerService(cfg, local)
    yield W.WorkerApp(service, quick=True), W.WorkerApp(service, quick=False)
    local.close()
    sm.close()                    # the writer last, as on a node


def answer(app, url: bytes):
    async def go():
        req = Request("GET", url, {"host": "x"}, ("127.0.0.1", 1))
        limit, early = app.head(req)
        assert early is None
        resp = await app.handle(req)
        return None if resp is None else (resp.status, resp.headers, resp.body)
    return asyncio.run(go())


@pytest.mark.parametrize("url", TAKEN, ids=lambda u: u.decode())
def test_a_plain_read_takes_the_short_path_and_gets_the_general_paths_answer(apps, url):
    quick, general = apps
    before = quick.quick.served
    ours = answer(quick, url)
    assert quick.quick.served == before + 1, "the short path did not take a plain read"
    assert ours is not None and ours[0] == 200
    assert ours == answer(general, url)


@pytest.mark.parametrize("url", DECLINED, ids=lambda u: u.decode())
def test_any_other_read_takes_the_general_path(apps, url):
    quick, general = apps
    before = quick.quick.served
    ours = answer(quick, url)
    assert quick.quick.served == before
    if b"timings" not in url:     # `time` differs from run to run
        assert ours == answer(general, url)


@pytest.mark.parametrize("url", [q("INSERT INTO kv(k, v) VALUES ('w', 'w')", "&level=none"),
                                 q("SELECT * FROM nope", "&level=none"),
                                 q("SELEKT 1", "&level=none")], ids=lambda u: u.decode())
def test_a_write_or_an_error_is_handed_to_the_node_by_both_paths(apps, url):
    """The node words every answer but a successful read (see http/worker.py)."""
    quick, general = apps
    assert answer(quick, url) is None and answer(general, url) is None


def test_a_result_over_the_answer_limit_is_the_same_error_on_both_paths(apps):
    quick, general = apps
    url = q("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 20000) "
            "SELECT x, printf('%0100d', x) FROM c", "&level=none")
    ours = answer(quick, url)
    assert ours == answer(general, url)
    assert b"answer limit" in ours[2]


def answer_now(app, url: bytes):
    """`answer_soon`, the worker's path with no task: (taken, what reply got)."""
    async def go():
        req = Request("GET", url, {"host": "x"}, ("127.0.0.1", 1))
        limit, early = app.head(req)
        assert early is None
        got = []
        taken = app.answer_soon(req, got.append)
        assert len(got) == (1 if taken else 0), "reply must come at once, once"
        resp = got[0] if got else None
        return taken, None if resp is None else (resp.status, resp.headers, resp.body)
    return asyncio.run(go())


@pytest.mark.parametrize("url", TAKEN, ids=lambda u: u.decode())
def test_a_plain_none_or_weak_read_is_answered_at_once_with_the_same_bytes(apps, url):
    """No task per read: the short path runs to its end inside the parser's callback. A
    linearizable read waits for its ReadIndex round, so it keeps its task."""
    quick, general = apps
    taken, ours = answer_now(quick, url)
    if b"linearizable" in url:
        assert not taken
        return
    assert taken and ours is not None and ours[0] == 200
    assert ours == answer(general, url)


@pytest.mark.parametrize("url", [q("INSERT INTO kv(k, v) VALUES ('w', 'w')", "&level=none"),
                                 q("SELEKT 1", "&level=none")], ids=lambda u: u.decode())
def test_what_the_node_must_answer_is_handed_over_from_the_path_with_no_task(apps, url):
    quick, _ = apps
    assert answer_now(quick, url) == (True, None)
    assert answer_now(apps[1], url) == (False, None)     # the general app takes no short path


def test_a_text_judged_once_keeps_its_verdict_and_only_a_plain_read_skips_classification(apps):
    """LocalReads does not classify again a text it already judged a read (worker._judged_read),
    so a write text asked again is still handed over, and only one statement without
    parameters or a timeout is taken on the kept verdict."""
    quick, _general = apps
    write = q("INSERT INTO kv(k, v) VALUES ('again', 'w')", "&level=none")
    assert answer(quick, write) is None and answer(quick, write) is None   # judged, then kept
    read = q("SELECT v FROM kv WHERE k='s-1'", "&level=none")
    assert answer(quick, read)[0] == 200 and answer(quick, read)[0] == 200
    cache = quick.quick.local.cache
    sql = "SELECT v FROM kv WHERE k='s-1'"
    assert W._judged_read(SqlRequest([Statement(sql)], level="none"), cache)
    assert not W._judged_read(SqlRequest([Statement(sql, [])], level="none"), cache)
    assert not W._judged_read(SqlRequest([Statement(sql)], level="none", timeout=1.0), cache)
    assert not W._judged_read(SqlRequest([Statement(sql), Statement(sql)], level="none"), cache)
    assert not W._judged_read(SqlRequest([Statement("INSERT INTO kv(k, v) VALUES ('again', 'w')")],
                                         level="none"), cache)
    assert not W._judged_read(SqlRequest([Statement("SELECT 'never asked'")], level="none"), cache)
