"""The rest of rqlite's API (issue 14, items 1-4 and 9) against real clusters, with rqlite's
exact JSON: result types of expressions, redirects before preparing, /db/load's answer,
/boot, /snapshot, /reap, node reaping, /debug/vars, /status and /nodes fields, and
`ddb rqlited`. Each test names the rqlite documentation section (rqlite.io, docs/...) or
source file (rqlite/rqlite) whose behaviour it pins."""
from __future__ import annotations

import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from ddb_node.client import Client
from ddb_node.cluster import LocalCluster, free_ports
from ddb_node.procs import stop_processes
from ddb_node.server.http import format as fmt
from ddb_node.server.reaper import Reaper

from tests.http_support import follower_url, leader_url, request, wait_until


# `cluster` (conftest.py): on disk, for snapshots, WALs and reader pragmas


def execute(url, stmts, **params):
    return request("POST", url + "/db/execute", stmts, params=params)


def query(url, q, **params):
    return request("GET", url + "/db/query", params={"q": q, **params})


def node_url(cluster, nid) -> str:
    return "http://" + cluster.nodes[nid].http_addr


# ---------------------------------------------------------------------- 1. result types
def test_a_column_without_declared_type_has_its_first_values_storage_class(cluster):
    """rqlite.io docs/API/api "Querying Data"; rqlite db/db.go populateEmptyTypes: a column
    with no declared type (an expression, COUNT(*), SELECT 1) is typed by the first row's
    value -- integer, real, text, blob; "" for NULL and when there is no row."""
    L = leader_url(cluster)
    execute(L, ["CREATE TABLE ty (id INTEGER PRIMARY KEY, name TEXT, v)",
                "INSERT INTO ty(name, v) VALUES('a', NULL)", "INSERT INTO ty(name, v) VALUES('b', 2)"])
    r = query(L, "SELECT COUNT(*), 1.5 AS r, 'x' AS t, x'01' AS b, NULL AS z FROM ty")
    assert r.body == (b'{"results":[{"columns":["COUNT(*)","r","t","b","z"],'
                      b'"types":["integer","real","text","blob",""],"values":[[2,1.5,"x","AQ==",null]]}]}')
    # the first row decides: a NULL there leaves "" although a later row has an integer
    r = query(L, "SELECT v FROM ty ORDER BY id")
    assert r.body == b'{"results":[{"columns":["v"],"types":[""],"values":[[null],[2]]}]}'
    # no rows: nothing to look at
    assert query(L, "SELECT 1 AS one FROM ty WHERE 0").body == \
        b'{"results":[{"columns":["one"],"types":[""]}]}'
    # a declared type always wins, also in the associative form and on /db/request
    r = query(L, "SELECT name, length(name) AS n FROM ty WHERE id = 1", associative=None)
    assert r.body == b'{"results":[{"types":{"n":"integer","name":"text"},"rows":[{"n":1,"name":"a"}]}]}'
    r = request("POST", L + "/db/request", ["SELECT 1"])
    assert r.body == b'{"results":[{"columns":["1"],"types":["integer"],"values":[[1]]}]}'


# ---------------------------------------------------------------------- 2. redirect
def test_redirect_answers_301_before_the_statements_are_prepared(cluster):
    """rqlite.io docs/API/api "Disabling Request Forwarding": with `redirect` a follower
    answers 301 with the leader's URL for anything only the leader serves -- before it looks
    at the statements, so one that would fail (a missing table, bad SQL) is redirected too."""
    L, F = leader_url(cluster), follower_url(cluster)
    r = execute(F, ["INSERT INTO no_such_table VALUES(1)"], redirect=None)
    assert (r.status, r.headers["location"]) == (301, L + "/db/execute?redirect")
    r = query(F, "SELEC nonsense", redirect=None)
    assert r.status == 301 and r.headers["location"].startswith(L + "/db/query?")
    r = request("POST", F + "/db/request", ["SELECT * FROM no_such_table"],
                params={"redirect": None, "level": "none"})
    assert r.status == 301          # a statement that does not prepare may write: the leader's
    # level none reads are the follower's own: answered there, errors included
    r = query(F, "SELECT * FROM no_such_table", redirect=None, level="none")
    assert r.body == b'{"results":[{"error":"no such table: no_such_table"}]}'
    # without redirect the follower forwards and the leader's error comes back
    r = execute(F, ["INSERT INTO no_such_table VALUES(1)"])
    assert r.body == b'{"results":[{"error":"no such table: no_such_table"}]}'


# ---------------------------------------------------------------------- 3. load, boot, snapshot, reap
def test_load_of_a_dump_answers_with_its_last_statements_result(cluster, tmp_path):
    """rqlite.io docs/Guides/backup "Loading a node"; rqlite http/service.go handleLoad: a
    text dump runs as one statement, so the answer is SQLite's after the last one (the
    last insert rowid and the last row count; the CREATE INDEX after the rows changes
    neither)."""
    src = tmp_path / "restore.sqlite"
    with sqlite3.connect(src) as c:
        c.executescript("CREATE TABLE foo (id integer not null primary key, name text);"
                        "INSERT INTO foo VALUES(1,'fiona'); INSERT INTO foo VALUES(2,'declan');"
                        "CREATE INDEX foo_name ON foo(name);")
    dump = "\n".join(sqlite3.connect(src).iterdump()) + "\n"
    F = follower_url(cluster)
    r = request("POST", F + "/db/load", dump, ctype="text/plain")
    assert (r.status, r.body) == (200, b'{"results":[{"last_insert_id":2,"rows_affected":1}]}')
    r = query(F, "SELECT name FROM foo ORDER BY id", level="linearizable")
    assert r.json()["results"][0]["values"] == [["fiona"], ["declan"]]
    # a failing dump rolls back and answers the failing statement's error
    r = request("POST", F + "/db/load", "CREATE TABLE ok1 (a);\nINSERT INTO nope VALUES(1);\n",
                ctype="text/plain")
    assert r.body == b'{"results":[{"error":"no such table: nope"}]}'
    assert "values" not in query(F, "SELECT name FROM sqlite_schema WHERE name = 'ok1'",
                                 level="linearizable").json()["results"][0]
    # a SQLite file still answers rqlite's empty result
    r = request("POST", F + "/db/load", src.read_bytes(), ctype="application/octet-stream")
    assert (r.status, r.body) == (200, b'{"results":[{}]}')


def test_boot_is_refused_on_a_cluster_and_on_a_follower(cluster):
    """rqlite.io docs/Guides/backup "Booting with a SQLite Database": booting is for a
    single-node setup only; rqlite store.ReadFrom answers "not leader" and "not
    single-node" (HTTP 503), and "invalid SQLite data" (400) for anything but a database."""
    L, F = leader_url(cluster), follower_url(cluster)
    db = sqlite3.connect(":memory:")
    db.execute("CREATE TABLE b (x)")
    image = db.serialize()
    r = request("POST", L + "/boot", image, ctype="application/octet-stream")
    assert (r.status, r.body) == (503, b"not single-node\n")
    r = request("POST", F + "/boot", image, ctype="application/octet-stream")
    assert (r.status, r.body) == (503, b"not leader\n")
    r = request("POST", L + "/boot", b"CREATE TABLE x (a);", ctype="text/plain")
    assert (r.status, r.body) == (400, b"invalid SQLite data\n")
    assert request("GET", L + "/boot").status == 405


def test_boot_restores_a_single_node_that_then_grows_into_a_cluster(tmp_path):
    """rqlite.io docs/Guides/backup "Booting with a SQLite Database": POST /boot with the
    file's bytes (chunked, as the docs' curl sends it) answers 200 with no body; the node
    holds exactly the file's tables, and nodes that join later get them."""
    src = tmp_path / "largedb.sqlite"
    with sqlite3.connect(src) as c:
        c.executescript("CREATE TABLE foo (id integer not null primary key, name text);"
                        "INSERT INTO foo VALUES(1,'fiona');")
    with LocalCluster(1, http=True) as lc:
        url = node_url(lc, 1)
        execute(url, ["CREATE TABLE before_boot (a)"])
        # a file that only starts like a database is refused, and nothing changes
        r = request("POST", url + "/boot", src.read_bytes()[:100] + b"\xff" * 4000,
                    ctype="application/octet-stream")
        assert r.status == 400 and r.text.startswith("not a usable SQLite file")
        assert "values" in query(url, "SELECT 1 FROM sqlite_schema WHERE name = 'before_boot'").json()["results"][0]
        data = src.read_bytes()
        chunked = b"".join(b"%x\r\n%s\r\n" % (len(data[i:i + 4096]), data[i:i + 4096])
                           for i in range(0, len(data), 4096)) + b"0\r\n\r\n"
        r = request("POST", url + "/boot", chunked, ctype="application/octet-stream",
                    headers={"Transfer-Encoding": "chunked"})
        assert (r.status, r.body) == (200, b"")
        r = query(url, "SELECT name FROM sqlite_schema WHERE type = 'table' "
                       "AND name NOT LIKE '\\_ddb\\_%' ESCAPE '\\' ORDER BY name")   # ddb's own
        assert r.json()["results"][0]["values"] == [["foo"]]
        assert query(url, "SELECT * FROM foo").body == \
            b'{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"fiona"]]}]}'
        new = [lc.add_node(), lc.add_node()]
        with Client(lc.client_addresses(), cluster_id=lc.cluster_id) as c:
            for nid in new:
                wait_until(lambda: c.query_on(nid, "SELECT name FROM foo")[0].rows == [("fiona",)],
                           20, f"node {nid} has the booted data")


def test_snapshot_on_request_and_the_status_that_shows_it(cluster):
    """rqlite.io docs/Guides/Security "User-level permissions" ("_snapshot_: user may
    initiate a Raft Snapshot via the endpoint `/snapshot`") and docs/Guides/Performance
    "Snapshotting" (a snapshot truncates the log); the answer's details are rqlite
    http/service.go handleSnapshot's, which no page documents: 200 with no body, 204 when
    there is nothing new; /status store.raft.last_snapshot_index then shows it."""
    F = follower_url(cluster)
    L = leader_url(cluster)
    execute(L, ["CREATE TABLE sn (a)", "INSERT INTO sn VALUES(1)"])
    wait_until(lambda: query(F, "SELECT count(*) FROM sn", level="none").json()["results"][0]
               .get("values") == [[1]], 10, "the follower applied the rows")
    r = request("POST", F + "/snapshot", params={"trailing_logs": "0"})
    assert (r.status, r.body) == (200, b"")
    raft = request("GET", F + "/status").json()["store"]["raft"]
    assert raft["last_snapshot_index"] == raft["applied_index"]
    assert raft["first_log_index"] == raft["last_snapshot_index"] + 1     # trailing_logs=0
    r = request("POST", F + "/snapshot")
    assert (r.status, r.body) == (204, b"")
    assert request("POST", F + "/snapshot", params={"trailing_logs": "many"}).status == 400
    assert request("GET", F + "/snapshot").status == 405


def test_reap_deletes_unreferenced_snapshot_files_and_checkpoints_the_wal(cluster):
    """rqlite.io has no page for /reap; it is guarded by the `snapshot` permission like
    /snapshot (docs/Guides/Security "User-level permissions"), and its answer is rqlite
    http/service.go handleReap's: {"snapshots_reaped": n, "wals_checkpointed": c}, encoded
    by Go's json.Encoder."""
    lid = cluster.wait_for_leader()
    url = node_url(cluster, lid)
    request("POST", url + "/snapshot")
    current = request("GET", url + "/status").json()["store"]["raft"]["last_snapshot_index"]
    orphan = os.path.join(cluster.nodes[lid].data_dir, f"raft.db-snapshot-{current + 1000}.bin")
    with open(orphan, "wb") as f:
        f.write(b"left behind by a crash")
    r = request("POST", url + "/reap")
    assert (r.status, r.headers["content-type"]) == (200, "application/json; charset=utf-8")
    assert r.body == b'{"snapshots_reaped":1,"wals_checkpointed":1}\n'
    assert not os.path.exists(orphan)
    assert request("POST", url + "/reap").body == b'{"snapshots_reaped":0,"wals_checkpointed":1}\n'
    assert request("GET", url + "/reap").status == 405


def test_the_leader_reaps_a_node_unreachable_for_longer_than_the_timeout():
    """rqlite.io docs/Clustering/general-guidelines "Automatically removing failed nodes":
    with -raft-reap-node-timeout the leader removes a voting node it cannot reach for that
    long, with -raft-reap-read-only-node-timeout a read replica (docs/Clustering/
    read-replicas "Automatically reaping failed replicas"); the others stay."""
    with LocalCluster(3, http=True, storage="memory",
                      extra_args=("--raft-reap-node-timeout", "3s",
                                  "--raft-reap-read-only-node-timeout", "3s")) as lc:
        nid = lc.add_node()
        url = leader_url(lc)
        assert sorted(request("GET", url + "/nodes").json()) == ["1", "2", "3", str(nid)]
        lc.kill(nid)
        lc.nodes[nid].state = "removed"
        wait_until(lambda: sorted(request("GET", url + "/nodes").json()) == ["1", "2", "3"],
                   30, "the dead node reaped")
        nodes = request("GET", url + "/nodes", params={"ver": "2"}).json()["nodes"]
        assert [(n["id"], n["reachable"]) for n in nodes] == [("1", True), ("2", True), ("3", True)]
        reaped = [request("GET", node_url(lc, i) + "/status").json()["ddb"]["counters"]["nodes_reaped"]
                  for i in (1, 2, 3)]
        assert sum(reaped) == 1           # by the leader of the moment, once
        # a read replica that never answers: listed by ?nonvoters, then reaped
        peer, client = free_ports(2)
        r = request("POST", url + "/join", {"id": "9", "addr": f"127.0.0.1:{peer}",
                                            "client": f"127.0.0.1:{client}", "voter": False})
        assert r.status == 200, r
        with Client(lc.client_addresses(), cluster_id=lc.cluster_id) as c:
            assert 9 in c.status(lc.wait_for_leader())["learners"]    # the clock starts now: 3 s
        wait_until(lambda: [n["id"] for n in request("GET", url + "/nodes", params={
            "ver": "2", "nonvoters": None, "timeout": "1s"}).json()["nodes"]] == ["1", "2", "3"],
            30, "the read replica reaped")
        assert sum(request("GET", node_url(lc, i) + "/status").json()["ddb"]["counters"]
                   ["nodes_reaped"] for i in (1, 2, 3)) == 2


def test_reap_policy_counts_silence_from_this_leaderships_start():
    """The policy behind -raft-reap-node-timeout: silence is measured from the last message
    and never from before this node led; each kind has its own timeout (0: never); the
    leader never reaps itself."""
    r = Reaper(voter_timeout=10.0, learner_timeout=0.0)
    assert r.due(100.0, 1, [1, 2, 3], [4], {2: 95.0}) == []          # a new leader waits a whole timeout
    assert r.due(109.0, 1, [1, 2, 3], [4], {2: 105.0}) == []
    assert r.due(111.0, 1, [1, 2, 3], [4], {2: 105.0}) == [3]        # 3 never heard: 11 s since 100
    assert r.due(116.0, 1, [1, 2, 3], [4], {2: 105.0}) == [2, 3]     # 2 silent 11 s; 4 (learner) never
    r.not_leader()
    assert r.due(200.0, 1, [1, 2, 3], [], {}) == []                  # leadership again: clocks restart
    with pytest.raises(ValueError):
        Reaper(voter_timeout=-1)


def test_reap_timeouts_are_validated_at_start(tmp_path):
    """rqlite cmd/rqlited/flags.go: a reap timeout must parse as a duration."""
    r = subprocess.run([sys.executable, "-m", "ddb_node.cli", "node", "--id", "1",
                        "--data-dir", str(tmp_path), "--listen", "tcp://127.0.0.1:1",
                        "--client", "tcp://127.0.0.1:2", "--raft-reap-node-timeout", "soon"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "--raft-reap-node-timeout" in r.stderr and "bad duration" in r.stderr


# ---------------------------------------------------------------------- 4. monitoring
def _vars(url, **params) -> dict:
    r = request("GET", url + "/debug/vars", params=params or None)
    assert r.status == 200 and r.headers["content-type"] == "application/json; charset=utf-8"
    return json.loads(r.body)


def test_debug_vars_is_an_expvar_document_of_real_counters(cluster):
    """rqlite.io docs/Guides/Monitoring rqlite "expvar support": GET /debug/vars is Go's
    expvar JSON (cmdline and one map per part: http, store, ...), `key` keeps one. Every
    counter moves by exactly what was done."""
    F = follower_url(cluster)
    before = _vars(F)
    assert {"cmdline", "http", "store", "snapshot", "raft", "queue"} <= set(before)
    assert isinstance(before["cmdline"], list)
    execute(F, ["CREATE TABLE dv (a)", "INSERT INTO dv VALUES(1)"])
    execute(F, ["INSERT INTO dv VALUES(2)"])
    query(F, "SELECT * FROM dv")
    request("GET", F + "/status")
    request("POST", F + "/snapshot")
    after = _vars(F)
    delta = {k: after["http"][k] - before["http"][k] for k in after["http"]}
    assert {k: v for k, v in delta.items() if v} == {
        "executions": 2, "execute_stmts_rx": 3, "queries": 1, "query_stmts_rx": 1,
        "num_status": 1, "user_snapshots": 1}
    assert after["store"]["num_user_snapshots"] - before["store"]["num_user_snapshots"] == 1
    assert after["store"]["num_snapshots"] - before["store"]["num_snapshots"] == 1
    assert after["snapshot"]["snapshots_taken"] - before["snapshot"]["snapshots_taken"] == 1
    assert after["raft"]["applied_index"] >= before["raft"]["applied_index"] + 2
    # Go's expvar layout: one variable per line, names sorted; `key` keeps one
    body = request("GET", F + "/debug/vars", params={"key": "http"}).body
    assert re.fullmatch(rb'\{\n"http": \{"auth_fail": \d+, "auth_ok": \d+, .*\}\n\}\n', body)
    assert request("GET", F + "/debug/vars", params={"key": "nothing"}).body == b"{\n\n}\n"
    lines = request("GET", F + "/debug/vars").body.decode().split("\n")
    names = [json.loads(line.split(": ", 1)[0]) for line in lines[1:-2]]
    assert names == sorted(names) and lines[0] == "{" and lines[-2:] == ["}", ""]


def test_status_shows_snapshots_the_snapshot_store_and_sqlite_settings(cluster):
    """rqlite.io docs/Guides/Monitoring rqlite "Status API" (rqlite store/store.go Stats,
    which converts hashicorp raft's Stats() strings to numbers where they parse, and
    snapshot/store.go Stats; db/db.go pragmas): store.raft.last_snapshot_index a number,
    last_contact 0 on the leader and Go's duration elsewhere,
    store.raft.latest_configuration Go's `%+v` of the servers, store.dir_size,
    store.snapshot_store {dir, snapshots} with ids `term-index-msec`, store.sqlite3.version
    and .pragmas {ro, rw} of five settings as text."""
    F = follower_url(cluster)
    fid = next(i for i in cluster.nodes if node_url(cluster, i) == F)
    t0 = time.time()
    request("POST", F + "/snapshot")
    st = request("GET", F + "/status").json()
    store = st["store"]
    raft = store["raft"]
    assert isinstance(raft["last_snapshot_index"], int) and raft["last_snapshot_index"] > 0
    assert raft["latest_configuration"] == "[" + " ".join(
        f"{{Suffrage:Voter ID:{i} Address:{cluster.nodes[i].peer_addr.removeprefix('tcp://')}}}"
        for i in sorted(cluster.nodes)) + "]"
    assert re.fullmatch(r"[0-9.]+(ns|µs|ms|s)", raft["last_contact"]), raft   # a follower
    assert request("GET", leader_url(cluster) + "/status").json()["store"]["raft"][
        "last_contact"] == 0
    assert store["node_id"] == str(fid) and isinstance(store["dir_size"], int)
    assert store["dir_size"] >= os.path.getsize(os.path.join(cluster.nodes[fid].data_dir, "raft.db"))
    snap = store["snapshot_store"]
    assert set(snap) == {"dir", "snapshots"} and snap["dir"] == store["dir"]
    [sid] = snap["snapshots"]
    term, index, msec = (int(x) for x in sid.split("-"))
    assert (term, index) == (raft["last_snapshot_term"], raft["last_snapshot_index"])
    assert t0 - 1 <= msec / 1000 <= time.time() + 1          # when this node took it
    assert store["sqlite3"]["version"] == request("GET", F + "/db/query", params={
        "q": "SELECT sqlite_version()", "level": "none"}).json()["results"][0]["values"][0][0]
    pragmas = store["sqlite3"]["pragmas"]
    keys = {"synchronous", "journal_mode", "foreign_keys", "wal_autocheckpoint", "busy_timeout"}
    assert set(pragmas) == {"ro", "rw"} and all(set(p) == keys for p in pragmas.values())
    assert pragmas["rw"]["journal_mode"] == pragmas["ro"]["journal_mode"] == "wal"
    assert all(isinstance(v, str) for p in pragmas.values() for v in p.values())
    assert st["build"]["version"] == "ddb-0.1.0" and st["runtime"]["version"].startswith("python")
    assert request("GET", F + "/status", params={"key": "store.raft.last_snapshot_index"}).json() \
        == store["raft"]["last_snapshot_index"]


def test_nodes_in_both_of_rqlites_shapes(cluster):
    """rqlite.io docs/Guides/Monitoring rqlite "Nodes API"; rqlite http/nodes.go: the legacy
    form is a map by id, `ver=2` a list under "nodes", sorted by id; every node has time and
    time_s (Go's duration text: how long asking it took, Node.Test's deferred timing), one
    that did not answer has version "" and an error; `nonvoters` adds the non-voting nodes
    (ddb: learners)."""
    lid = cluster.wait_for_leader()
    F = follower_url(cluster)
    down = next(i for i in cluster.nodes if i != lid and node_url(cluster, i) != F)
    cluster.kill(down)
    try:
        v2 = request("GET", F + "/nodes", params={"ver": "2", "nonvoters": None, "timeout": "2s"})
        nodes = v2.json()["nodes"]
        assert [n["id"] for n in nodes] == ["1", "2", "3"]
        for n in nodes:
            nid = int(n["id"])
            addr = cluster.nodes[nid].peer_addr.removeprefix("tcp://")
            if nid == down:
                assert list(n) == ["id", "addr", "version", "voter", "reachable", "leader", "time",
                                   "time_s", "error"]
                assert isinstance(n["time"], float) and n["time"] > 0
                assert (n["addr"], n["version"], n["voter"], n["reachable"], n["leader"]) == \
                    (addr, "", True, False, False)
            else:
                assert list(n) == ["id", "api_addr", "addr", "version", "voter", "reachable", "leader",
                                   "time", "time_s"]
                assert (n["api_addr"], n["addr"], n["version"], n["voter"], n["reachable"],
                        n["leader"]) == (node_url(cluster, nid), addr, "ddb-0.1.0", True, True, nid == lid)
                assert re.fullmatch(r"[0-9.]+(ns|µs|ms|s)", n["time_s"])
        legacy = request("GET", F + "/nodes", params={"timeout": "2s"}).json()
        assert list(legacy) == ["1", "2", "3"]
        measured = ("time", "time_s", "error")        # differ from one probe to the next
        assert {k: {f: v for f, v in n.items() if f not in measured} for k, n in legacy.items()} == \
            {n["id"]: {f: v for f, v in n.items() if f not in measured} for n in nodes}
        assert legacy[str(down)]["error"]
    finally:
        cluster.restart(down)
        wait_until(lambda: request("GET", node_url(cluster, down) + "/readyz").status == 200,
                   30, "the node back")


def test_nodes_lists_non_voters_only_when_asked(cluster):
    """rqlite.io docs/Guides/Monitoring rqlite "Nodes API": "By default, the node only checks
    if voting nodes are contactable"; `nonvoters` adds them, with "voter": false. The
    non-voter here is a learner added through /join with "voter": false that never answers."""
    L = leader_url(cluster)
    peer, client = free_ports(2)
    r = request("POST", L + "/join", {"id": "9", "addr": f"tcp://127.0.0.1:{peer}",
                                      "client": f"tcp://127.0.0.1:{client}", "voter": False})
    assert r.status == 200, r
    try:
        assert list(request("GET", L + "/nodes", params={"timeout": "1s"}).json()) == ["1", "2", "3"]
        nodes = request("GET", L + "/nodes", params={"ver": "2", "nonvoters": None,
                                                      "timeout": "1s"}).json()["nodes"]
        assert [(n["id"], n["voter"], n["reachable"]) for n in nodes] == \
            [("1", True, True), ("2", True, True), ("3", True, True), ("9", False, False)]
        assert {k: v for k, v in nodes[3].items() if k not in ("error", "time", "time_s")} == {
            "id": "9", "addr": f"127.0.0.1:{peer}", "version": "", "voter": False,
            "reachable": False, "leader": False}
    finally:
        assert request("DELETE", L + "/remove", {"id": "9"}).status == 200


def test_go_duration_text():
    """Go's time.Duration.String, which rqlite's time_s is."""
    assert [fmt.go_duration(s) for s in (0, 5e-9, 312.4e-6, 0.0015, 1.5, 90, 3725.5)] == \
        ["0s", "5ns", "312.4µs", "1.5ms", "1.5s", "1m30s", "1h2m5.5s"]


def test_new_endpoints_need_rqlites_permissions(tmp_path, monkeypatch):
    """rqlite.io docs/Guides/Security "User-level permissions": /boot needs `load`,
    /snapshot and /reap `snapshot`, /debug/vars `status`; each check counts in
    /debug/vars' http auth_ok / auth_fail."""
    users = tmp_path / "users.json"
    users.write_text(json.dumps([{"username": "ops", "password": "pw", "perms": ["snapshot"]},
                                 {"username": "*", "perms": ["status"]}]))
    monkeypatch.setenv("DDB_HTTP_AUTH", str(users))      # the nodes inherit it
    with LocalCluster(3, http=True, storage="memory") as lc:
        L = leader_url(lc)
        ops = ("ops", "pw")
        before = _vars(L)["http"]
        assert request("POST", L + "/snapshot").status == 401
        assert request("POST", L + "/reap").status == 401
        assert request("POST", L + "/boot", b"SQLite format 3\x00", auth=ops).status == 401
        assert request("POST", L + "/snapshot", auth=ops).status in (200, 204)
        assert request("POST", L + "/reap", auth=ops).body == \
            b'{"snapshots_reaped":0,"wals_checkpointed":0}\n'         # a memory node: no files
        after = _vars(L)["http"]                # anonymous: `*` has status
        # the two /debug/vars reads are checks too (anonymous, allowed)
        assert (after["auth_fail"] - before["auth_fail"], after["auth_ok"] - before["auth_ok"]) == (3, 3)


# ---------------------------------------------------------------------- 9. rqlited's command line
def _free_raft_port() -> int:
    """A free port whose client port (+1000, ddb rqlited's rule) is free too."""
    for _ in range(50):
        port = free_ports(1)[0]
        if port + 1000 > 65535:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port + 1000))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise RuntimeError("no free port pair")


def test_rqlited_command_line_starts_a_cluster(tmp_path):
    """rqlite.io docs/Clustering/general-guidelines "Creating a cluster": the same rqlited
    invocations (-node-id, -http-addr, -raft-addr, -join with the first node's Raft address,
    the data directory last) start a 3-node ddb cluster that answers rqlite's API."""
    http = free_ports(3)
    raft = [_free_raft_port() for _ in range(3)]
    procs = []
    try:
        for i in range(3):
            argv = [sys.executable, "-m", "ddb_node.cli", "rqlited", "-node-id", str(i + 1),
                    "-http-addr", f"127.0.0.1:{http[i]}", "-raft-addr", f"127.0.0.1:{raft[i]}"]
            if i:
                argv += ["-join", f"127.0.0.1:{raft[0]}"]
            argv.append(str(tmp_path / f"node.{i + 1}"))
            log = open(tmp_path / f"node{i + 1}.log", "wb")
            procs.append(subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT))
            log.close()
        first = f"http://127.0.0.1:{http[0]}"

        def voters():
            nodes = request("GET", first + "/nodes", params={"ver": "2"}, timeout=5).json()["nodes"]
            return [n["id"] for n in nodes if n["voter"] and n["reachable"]] == ["1", "2", "3"] and nodes

        nodes = wait_until(voters, 60, "three voters")
        assert [(n["api_addr"], n["addr"]) for n in nodes] == \
            [(f"http://127.0.0.1:{h}", f"127.0.0.1:{r}") for h, r in zip(http, raft)]
        r = execute(f"http://127.0.0.1:{http[2]}", ["CREATE TABLE cli (a)", "INSERT INTO cli VALUES(7)"])
        assert r.body == b'{"results":[{},{"last_insert_id":1,"rows_affected":1}]}'
        r = query(f"http://127.0.0.1:{http[1]}", "SELECT a FROM cli", level="linearizable")
        assert r.body == b'{"results":[{"columns":["a"],"types":["integer"],"values":[[7]]}]}'
    finally:
        stop_processes(procs)


@pytest.mark.parametrize("args, message", [
    (["-node-id", "1", "-disco-mode", "dns", "d"], "flag -disco-mode is rqlited's, but ddb does not support it"),
    (["-node-id", "1", "-bootstrap-expect", "3", "d"], "-bootstrap-expect N needs -join"),
    (["-node-id", "1", "-join-as", "bob", "d"], "-join-as names a user of the users file"),
    (["-node-id", "1", "-no-such-flag", "d"], "flag provided but not defined: -no-such-flag"),
    (["-node-id", "1"], "data directory path is required"),
    (["-node-id", "1", "d", "-http-addr", "x:1"], "arguments after data directory (d) are not accepted"),
    (["-node-id", "1", "-raft-addr", "nowhere", "d"], "-raft-addr 'nowhere' must be host:port"),
    (["-node-id", "1", "-raft-reap-node-timeout", "0s", "d"], "-raft-reap-node-timeout must be greater than 0"),
    (["-node-id", "1", "-raft-snap", "lots", "d"], "invalid value 'lots' for flag -raft-snap"),
])
def test_rqlited_refuses_what_it_cannot_honour(args, message):
    """rqlite cmd/rqlited/flags.go: Go's flag errors, the data directory last; and a flag of
    rqlited's that ddb lacks is refused by name (exit status 2), never ignored."""
    r = subprocess.run([sys.executable, "-m", "ddb_node.cli", "rqlited", *args],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and message in r.stderr, r.stderr


def test_rqlited_clustering_flags_become_ddb_node_options():
    """rqlite.io docs/Clustering (general guidelines, automatic bootstrapping, read-only
    nodes, "advertised addresses") and docs/Guides/Extensions: rqlited's flags for them map
    onto `ddb node`'s; the id defaults to the Raft address, as rqlited's does."""
    from ddb_node.server.rqlited import translate
    argv, env, notes = translate([
        "-node-id", "node-a", "-raft-addr", "h:4002", "-raft-adv-addr", "ext:4002",
        "-http-adv-addr", "ext:4001", "-bootstrap-expect", "3", "-bootstrap-expect-timeout", "2m",
        "-join", "h:4002,h:4004,http://h:4005", "-raft-non-voter", "-raft-cluster-remove-shutdown",
        "-extensions-path", "/x", "-auth", "/u.json", "-join-as", "bob", "d"])
    opts = " ".join(argv)
    for want in ("--id node-a", "--join tcp://h:5002,tcp://h:5004,http://h:4005",
                 "--raft-adv-addr tcp://ext:4002", "--client-adv-addr tcp://ext:5002",
                 "--http-adv-addr ext:4001", "--bootstrap-expect 3", "--non-voter",
                 "--raft-cluster-remove-shutdown", "--extensions-path /x", "--auth /u.json",
                 "--join-as bob"):
        assert want in opts, (want, opts)
    assert env["DDB_HTTP_AUTH"] == "/u.json"
    assert any("-bootstrap-expect-timeout accepted, not used" in n for n in notes)
    assert translate(["d"])[0][:2] == ["--id", "localhost:4002"]
