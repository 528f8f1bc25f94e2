"""The rqlite-compatible HTTP API against a real 3-node LocalCluster, with exact JSON.

Expected bodies are rqlite's (system_test/cluster_test.go, the API docs); the comparisons are
on the raw bytes where rqlite's encoding matters (field omission, order, escaping)."""
from __future__ import annotations

import base64
import re
import shutil
import sqlite3
import subprocess

import pytest

from ddb_node.cluster import LocalCluster
from ddb_node.server.http import format as fmt

from tests.http_support import follower_url, leader_url, request, wait_until


CLUSTER_OPTIONS = {"storage": "memory"}   # see conftest.py


@pytest.fixture
def L(cluster):
    """The leader now (per test: on a loaded machine leadership can move between tests)."""
    return leader_url(cluster)


@pytest.fixture
def F(cluster):
    return follower_url(cluster)


def execute(url, stmts, **params):
    return request("POST", url + "/db/execute", stmts, params=params)


def test_rqlite_shapes_exact(L, F):
    r = execute(L, ["CREATE TABLE foo (id integer not null primary key, name text)"])
    assert (r.status, r.body) == (200, b'{"results":[{}]}')
    assert r.headers["content-type"] == "application/json; charset=utf-8"
    r = execute(L, ['INSERT INTO foo(name) VALUES("fiona")'])
    assert r.body == b'{"results":[{"last_insert_id":1,"rows_affected":1}]}'
    r = request("GET", L + "/db/query", params={"q": "SELECT * FROM foo"})
    assert r.body == b'{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"fiona"]]}]}'
    r = request("GET", L + "/db/query", params={"q": "SELECT * FROM foo WHERE id > 100"})
    assert r.body == b'{"results":[{"columns":["id","name"],"types":["integer","text"]}]}'
    r = execute(L, ["CREATE TABLE foo (id integer not null primary key, name text)"])
    assert (r.status, r.body) == (200, b'{"results":[{"error":"table foo already exists"}]}')
    r = request("GET", L + "/db/query", params={"q": "SELECT * FROM foo", "associative": None})
    assert r.body == b'{"results":[{"types":{"id":"integer","name":"text"},"rows":[{"id":1,"name":"fiona"}]}]}'
    r = request("GET", L + "/db/query", params={"q": "SELECT * FROM foo WHERE 0", "associative": None})
    assert r.body == b'{"results":[{"types":{"id":"integer","name":"text"},"rows":[]}]}'
    r = request("POST", L + "/db/request", ['INSERT INTO foo(name) VALUES("declan")', "SELECT name FROM foo"],
                params={"associative": None})
    assert r.json() == {"results": [{"last_insert_id": 2, "rows_affected": 1, "rows": None},
                                    {"types": {"name": "text"}, "rows": [{"name": "fiona"}, {"name": "declan"}]}]}
    r = request("POST", L + "/db/request", ['INSERT INTO foo(name) VALUES("x")', "SELECT count(*) FROM foo"])
    assert r.json() == {"results": [{"last_insert_id": 3, "rows_affected": 1},
                                    {"columns": ["count(*)"], "types": ["integer"], "values": [[3]]}]}
    # expressions have no declared type: the first row's storage class; PRAGMA works through /db/query
    r = request("GET", L + "/db/query", params={"q": "PRAGMA foreign_keys"})
    assert r.body == b'{"results":[{"columns":["foreign_keys"],"types":["integer"],"values":[[0]]}]}'
    # the same answers from a follower (forwarded to the leader by default)
    r = request("GET", F + "/db/query", params={"q": "SELECT * FROM foo WHERE id = 1"})
    assert r.body == b'{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"fiona"]]}]}'


def test_parameters_blobs_and_text_plain(L):
    execute(L, ["CREATE TABLE p (id INTEGER PRIMARY KEY, name TEXT, age INTEGER, data BLOB, r REAL)"])
    r = execute(L, [["INSERT INTO p(name, age) VALUES(?, ?)", "fiona", 20],
                    ["INSERT INTO p(name, age) VALUES(:name, :age)", {"name": "declan", "age": 30}],
                    ["INSERT INTO p(name, data, r) VALUES(?, ?, ?)", "blob", [0, 1, 2, 255], 1.0]])
    assert r.json() == {"results": [{"last_insert_id": 1, "rows_affected": 1},
                                    {"last_insert_id": 2, "rows_affected": 1},
                                    {"last_insert_id": 3, "rows_affected": 1}]}
    r = request("POST", L + "/db/execute", "INSERT INTO p(name, r) VALUES('plain', 2.5)", ctype="text/plain")
    assert r.json() == {"results": [{"last_insert_id": 4, "rows_affected": 1}]}
    r = request("GET", L + "/db/query", params={"q": "SELECT name, age, data, r FROM p ORDER BY id"})
    assert r.json()["results"][0]["values"] == [["fiona", 20, None, None], ["declan", 30, None, None],
                                                 ["blob", None, base64.b64encode(b"\x00\x01\x02\xff").decode(), 1],
                                                 ["plain", None, None, 2.5]]
    r = request("GET", L + "/db/query", params={"q": "SELECT data FROM p WHERE id = 3", "blob_array": None})
    assert r.json()["results"][0]["values"] == [[[0, 1, 2, 255]]]
    r = request("POST", L + "/db/query", [["SELECT name FROM p WHERE age > ?", 25]])
    assert r.json()["results"][0]["values"] == [["declan"]]


def test_datetime_values_are_rfc3339(L):
    execute(L, ["CREATE TABLE t (d DATE, dt DATETIME, ts TIMESTAMP, x TEXT)",
                "INSERT INTO t VALUES('2004-02-14', '2004-02-14 07:15:00.5', 1076742900, '2004-02-14 07:15:00.5')",
                "INSERT INTO t VALUES('not a date', '2004-02-14T07:15:00-07:00', '2004-02-14 07:15', NULL)"])
    r = request("GET", L + "/db/query", params={"q": "SELECT * FROM t"})
    assert r.json()["results"][0] == {
        "columns": ["d", "dt", "ts", "x"], "types": ["date", "datetime", "timestamp", "text"],
        "values": [["2004-02-14T00:00:00Z", "2004-02-14T07:15:00.5Z", "2004-02-14T07:15:00Z",
                    "2004-02-14 07:15:00.5"],
                   ["not a date", "2004-02-14T07:15:00-07:00", "2004-02-14T07:15:00Z", None]]}


def test_flags_timings_raft_index_pretty_transaction(L):
    execute(L, ["CREATE TABLE f (id INTEGER PRIMARY KEY, v TEXT UNIQUE)"])
    r = execute(L, ["INSERT INTO f(v) VALUES('a')"], timings=None, raft_index=None)
    d = r.json()
    assert set(d) == {"results", "time", "raft_index"} and d["raft_index"] > 0
    assert set(d["results"][0]) == {"last_insert_id", "rows_affected", "time"}
    r = execute(L, ["INSERT INTO f(v) VALUES('b')"], pretty="true")
    assert r.text == '{\n    "results": [\n        {\n            "last_insert_id": 2,\n' \
                     '            "rows_affected": 1\n        }\n    ]\n}'
    # without transaction: the failing statement reports its error, the others run
    r = execute(L, ["INSERT INTO f(v) VALUES('c')", "INSERT INTO f(v) VALUES('a')", "INSERT INTO f(v) VALUES('d')"])
    assert r.json() == {"results": [{"last_insert_id": 3, "rows_affected": 1},
                                    {"error": "UNIQUE constraint failed: f.v"},
                                    {"last_insert_id": 4, "rows_affected": 1}]}
    # with transaction: everything rolled back, results end at the failing statement
    r = execute(L, ["INSERT INTO f(v) VALUES('e')", "INSERT INTO f(v) VALUES('a')", "INSERT INTO f(v) VALUES('g')"],
                transaction="true")
    res = r.json()["results"]
    assert len(res) == 2 and res[1] == {"error": "UNIQUE constraint failed: f.v"}
    r = request("GET", L + "/db/query", params={"q": "SELECT v FROM f ORDER BY id", "level": "strong"})
    assert r.json()["results"][0]["values"] == [["a"], ["b"], ["c"], ["d"]]
    # a syntax error is a statement error (HTTP 200), the rest still runs
    r = execute(L, ["SELEC nonsense", "INSERT INTO f(v) VALUES('h')"])
    assert r.json() == {"results": [{"error": 'near "SELEC": syntax error'},
                                    {"last_insert_id": 5, "rows_affected": 1}]}
    # HTML characters are escaped as Go's encoder does
    r = request("GET", L + "/db/query", params={"q": "SELECT '<a&b>' AS s"})
    assert r.body == b'{"results":[{"columns":["s"],"types":["text"],"values":[["\\u003ca\\u0026b\\u003e"]]}]}'


def test_levels_and_query_is_read_only(L, F):
    execute(L, ["CREATE TABLE lv (id INTEGER PRIMARY KEY)", "INSERT INTO lv VALUES(1)"])
    for level in ("none", "weak", "linearizable", "strong", "auto"):
        for url in (L, F):
            r = request("GET", url + "/db/query", params={"q": "SELECT count(*) FROM lv", "level": level})
            assert r.status == 200, (level, r)
            if level != "none":
                assert r.json()["results"][0]["values"] == [[1]], (level, url)
    r = request("GET", F + "/db/query", params={"q": "SELECT 1", "level": "none", "freshness": "5s"})
    assert r.json()["results"][0]["values"] == [[1]]
    r = request("GET", F + "/db/query", params={"q": "SELECT 1", "level": "bogus"})
    assert r.status == 400
    r = request("POST", L + "/db/query", ["INSERT INTO lv VALUES(2)", "SELECT count(*) FROM lv"])
    assert r.json() == {"results": [{"error": "attempt to write a readonly database"},
                                    {"columns": ["count(*)"], "types": ["integer"], "values": [[1]]}]}


def test_http_errors(L):
    assert request("POST", L + "/db/execute", "not json").status == 400
    assert request("POST", L + "/db/execute", "[]").status == 400
    assert request("POST", L + "/db/execute", '{"a": 1}').status == 400
    assert request("POST", L + "/db/execute", "[[1, 2]]").status == 400
    assert request("GET", L + "/db/execute").status == 405
    assert request("PUT", L + "/db/query", ["SELECT 1"]).status == 405
    assert request("GET", L + "/db/query").status == 400
    assert request("GET", L + "/nope").status == 404
    assert request("GET", L + "/db/query", params={"q": "SELECT 1", "timeout": "soon"}).status == 400
    r = request("OPTIONS", L + "/db/execute")
    assert r.status == 200 and "POST" in r.headers["access-control-allow-methods"]


def test_redirect_and_forwarding(cluster, L, F):
    execute(L, ["CREATE TABLE rd (v TEXT)"])
    r = execute(F, ["INSERT INTO rd VALUES('x')"], redirect=None)
    assert r.status == 301
    assert r.headers["location"] == f"{L}/db/execute?redirect"
    r = request("GET", F + "/db/query", params={"q": "SELECT 1", "redirect": "true", "level": "weak"})
    assert r.status == 301 and r.headers["location"].startswith(L + "/db/query?")
    r = execute(F, ["INSERT INTO rd VALUES('y')"])          # default: forwarded
    assert r.json() == {"results": [{"last_insert_id": 1, "rows_affected": 1}]}


def test_queued_writes(L, F):
    execute(L, ["CREATE TABLE qw (v INTEGER)"])
    seqs = []
    for i in range(5):
        r = execute(F, [["INSERT INTO qw VALUES(?)", i]], queue=None)
        d = r.json()
        assert d["results"] == [] and isinstance(d["sequence_number"], int)
        seqs.append(d["sequence_number"])
    assert seqs == sorted(seqs) and len(set(seqs)) == 5
    r = execute(F, [["INSERT INTO qw VALUES(?)", 99]], queue=None, wait=None, timeout="10s")
    assert r.status == 200 and r.json()["results"] == []
    r = request("GET", F + "/db/query", params={"q": "SELECT count(*) FROM qw", "level": "linearizable"})
    assert r.json()["results"][0]["values"] == [[6]]


def test_cluster_endpoints(cluster, L, F):
    lid = cluster.wait_for_leader()
    # a node counts as reachable once its last contact is recent: after another module's
    # load it may take a heartbeat or two
    legacy = wait_until(lambda: (lambda d: d if all(n["reachable"] for n in d.values()) else None)(
        request("GET", F + "/nodes").json()), 10, what="every node reachable in /nodes")
    assert sorted(legacy) == ["1", "2", "3"]
    assert legacy[str(lid)]["leader"] is True and legacy[str(lid)]["api_addr"] == L
    assert all(n["reachable"] and n["voter"] for n in legacy.values())
    r = request("GET", F + "/nodes", params={"ver": "2", "nonvoters": None})
    nodes = r.json()["nodes"]
    assert [n["id"] for n in nodes] == ["1", "2", "3"]
    assert list(nodes[0])[:7] == ["id", "api_addr", "addr", "version", "voter", "reachable", "leader"]
    r = request("GET", F + "/readyz")
    assert (r.status, r.text) == (200, "[+]node ok\n[+]leader ok\n[+]store ok")
    assert request("GET", F + "/readyz", params={"noleader": None}).text == "[+]node ok"
    r = request("GET", F + "/readyz", params={"sync": None, "timeout": "5s"})
    assert r.status == 200 and r.text.endswith("[+]sync ok")
    r = request("GET", F + "/leader")
    assert r.json() == {"id": str(lid), "api_addr": L, "addr": cluster.nodes[lid].peer_addr.removeprefix("tcp://"),
                        "version": "ddb-0.1.0", "voter": True, "reachable": True, "leader": True}
    st = request("GET", F + "/status").json()
    assert st["store"]["raft"]["state"] == "Follower"
    assert st["store"]["leader"]["node_id"] == str(lid)
    assert st["store"]["raft"]["applied_index"] <= st["store"]["raft"]["commit_index"]
    assert st["ddb"]["node"] != lid and "http" in st and st["http"]["auth"] == "disabled"
    assert request("GET", F + "/status", params={"key": "store.raft.state"}).json() == "Follower"
    assert request("POST", F + "/status").status == 405


def test_leader_stepdown_and_transfer(cluster, L):
    lid = cluster.wait_for_leader()
    r = request("POST", L + "/leader")
    assert r.status == 200, r
    new = int(r.json()["leader"]["id"])
    assert new != lid
    assert wait_until(lambda: cluster.leader() == new, 10, "stepdown")
    r = request("POST", "http://" + cluster.nodes[lid].http_addr + "/leader", {"id": str(lid)})
    assert r.status == 200 and r.json()["leader"]["id"] == str(lid)
    assert wait_until(lambda: cluster.leader() == lid, 10, "transfer back")


def test_backup_and_load(tmp_path, cluster):
    L = leader_url(cluster)
    F = follower_url(cluster)
    execute(L, ["CREATE TABLE bk (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, data BLOB, r REAL)",
                "CREATE INDEX bk_name ON bk(name)",
                ["INSERT INTO bk(name, data, r) VALUES(?, ?, ?)", "it's", [1, 2, 3], 1.5],
                ["INSERT INTO bk(name, data, r) VALUES(?, ?, ?)", "two\nlines", None, 2.0],
                "CREATE VIEW bk_v AS SELECT name FROM bk"])
    r = request("GET", F + "/db/backup")
    assert r.status == 200 and r.body[:16] == b"SQLite format 3\x00"
    path = tmp_path / "b.db"
    path.write_bytes(r.body)
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT name FROM bk ORDER BY id").fetchall() == [("it's",), ("two\nlines",)]
        assert not c.execute("SELECT name FROM sqlite_schema WHERE name LIKE '\\_ddb%' ESCAPE '\\'").fetchall()
    # load the SQLite file into a fresh table set: replaces what is there
    execute(L, ["CREATE TABLE extra (x)"])
    r = request("POST", L + "/db/load", path.read_bytes(), ctype="application/octet-stream")
    assert r.status == 200, r
    q = request("GET", L + "/db/query", params={"q": "SELECT name FROM sqlite_schema WHERE name = 'extra'",
                                                "level": "strong"}).json()
    assert "values" not in q["results"][0]
    q = request("GET", L + "/db/query", params={"q": "SELECT count(*) FROM bk"}).json()
    assert q["results"][0]["values"] == [[2]]
    # load SQL text (a dump)
    r = request("POST", F + "/db/load", "BEGIN TRANSACTION;\nCREATE TABLE ld (a);\nINSERT INTO ld VALUES(1);\nCOMMIT;\n",
                ctype="text/plain")
    assert r.status == 200, r
    q = request("GET", L + "/db/query", params={"q": "SELECT a FROM ld", "level": "linearizable"}).json()
    assert q["results"][0]["values"] == [[1]]
    assert request("POST", L + "/db/load", b"\xff\xfe garbage").status == 400


def test_sql_dump_quotes_insert_table_names_as_rqlite(cluster):
    L, F = leader_url(cluster), follower_url(cluster)
    execute(L, ["CREATE TABLE dump_t(id INTEGER PRIMARY KEY, name TEXT, data BLOB, note TEXT)",
                ["INSERT INTO dump_t VALUES(?, ?, ?, ?)", 1, "text", [1, 2], None]])
    r = request("GET", F + "/db/backup", params={"fmt": "sql", "tables": "dump_t"})
    assert (r.status, r.headers["content-type"]) == (200, "application/sql")
    assert r.body == (b"PRAGMA foreign_keys=OFF;\n"
                      b"BEGIN TRANSACTION;\n"
                      b"CREATE TABLE dump_t(id INTEGER PRIMARY KEY, name TEXT, data BLOB, note TEXT);\n"
                      b"INSERT INTO \"dump_t\" VALUES(1,'text',X'0102',NULL);\n"
                      b"COMMIT;\n")


def test_sql_dump_is_the_sqlite3_shell_dump_with_quoted_insert_tables(tmp_path, cluster):
    """Everything else in the text is the sqlite3 shell's `.dump` of the same database:
    schema, value literals (quotes, newlines, reals, blobs), sqlite_sequence, indexes, views.
    The other difference is the shell's own: it adds IF NOT EXISTS to a CREATE TABLE whose
    name is quoted, where rqlite (and ddb) write the schema's SQL as it is stored."""
    if not shutil.which("sqlite3"):
        pytest.skip("the sqlite3 shell is not installed (apt-get install -y sqlite3)")
    L, F = leader_url(cluster), follower_url(cluster)
    execute(L, ["CREATE TABLE sh_t (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT, data BLOB, r REAL)",
                "CREATE INDEX sh_t_name ON sh_t(name)",
                ["INSERT INTO sh_t(name, data, r) VALUES(?, ?, ?)", "it's", [1, 2, 3], 1.5],
                ["INSERT INTO sh_t(name, data, r) VALUES(?, ?, ?)", "two\nlines", None, 2.0],
                'CREATE TABLE "odd name" (x)', """INSERT INTO "odd name" VALUES('y')""",
                "CREATE VIEW sh_v AS SELECT name FROM sh_t"])
    path = tmp_path / "b.db"
    path.write_bytes(request("GET", F + "/db/backup").body)
    r = request("GET", F + "/db/backup", params={"fmt": "sql"})
    shell = subprocess.run(["sqlite3", str(path), ".dump"], capture_output=True, text=True, check=True).stdout
    assert "INSERT INTO sh_t VALUES" in shell and 'INSERT INTO "sh_t" VALUES' in r.text
    assert 'INSERT INTO "sqlite_sequence" VALUES(\'sh_t\',2);' in r.text
    assert 'CREATE TABLE "odd name" (x);\nINSERT INTO "odd name" VALUES(\'y\');' in r.text
    shell = re.sub(r"^INSERT INTO (\w+) VALUES", r'INSERT INTO "\1" VALUES', shell, flags=re.M)
    assert r.text == re.sub(r"^CREATE TABLE IF NOT EXISTS \"", 'CREATE TABLE "', shell, flags=re.M)


def test_remove_and_join(cluster):
    nid = cluster.add_node()
    L = leader_url(cluster)
    r = request("DELETE", L + "/remove", {"id": str(nid)})
    assert r.status == 200, r
    assert wait_until(lambda: str(nid) not in request("GET", L + "/nodes").json(), 10, "removal")
    cluster.stop(nid)
    cluster.nodes[nid].state = "removed"
    assert request("DELETE", L + "/remove", {"id": "x"}).status == 400
    assert request("GET", L + "/remove").status == 405
    assert request("POST", L + "/join", {"id": "9"}).status == 400


def test_no_leader_is_503():
    with LocalCluster(3, http=True, storage="memory") as c:
        lid = c.wait_for_leader()
        survivor = next(i for i in c.nodes if i != lid)
        for i in c.nodes:
            if i != survivor:
                c.kill(i)
        url = "http://" + c.nodes[survivor].http_addr
        wait_until(lambda: request("GET", url + "/readyz").status == 503, 10, "leader loss")
        r = execute(url, ["CREATE TABLE z (a)"], timeout="1s")
        assert (r.status, r.text) == (503, "leader not found\n")
        r = request("GET", url + "/leader")
        assert r.status == 503
        assert request("GET", url + "/db/query", params={"q": "SELECT 1", "level": "none"}).status == 200


def test_format_units():
    assert fmt.parse_duration("1m30s") == 90.0 and fmt.parse_duration("500ms") == 0.5
    assert fmt.parse_duration("2") == 2.0
    with pytest.raises(fmt.FlagError):
        fmt.parse_duration("10 parsecs")
    assert fmt.rfc3339("2004-02-14 07:15:00.500") == "2004-02-14T07:15:00.5Z"
    assert fmt.rfc3339("2004-02-30") == "2004-02-30"
    assert fmt.rfc3339(1076742900123) == "2004-02-14T07:15:00.123Z"
    assert fmt.rfc3339("2004-02-14T07:15:00+00:00") == "2004-02-14T07:15:00Z"
    with pytest.raises(fmt.BodyError):
        fmt.parse_body(b"[" * 100000, "application/json")
    assert fmt.parse_body(b'[["x", {":a": 1, "b": [1, 2]}]]', None) == [["x", {"a": 1, "b": b"\x01\x02"}]]
