"""HTTP read workers (`--http-workers N`, http.worker / http.workers): processes that accept
the API's connections, answer plain reads from the database file, and hand every other
connection to the node, which then serves it as if it had accepted it.

What is pinned: a worker's answer is the node's answer, byte for byte (bar the Date); a
write on a worker's connection is the node's; errors, reads that write and follower reads
are the node's; pipelined requests keep their order across a handover; linearizable reads
see every acknowledged write; a worker that dies is replaced; the workers die with the
node; a snapshot that replaces a follower's database file is what its workers read next."""
from __future__ import annotations

import asyncio
import http.client
import json
import os
import signal
import socket
import time

import pytest

from ddb_node.cluster import LocalCluster
from ddb_node.server.http.worker import NodeView, ReadIndexRounds
from ddb_node.server.http.workers import listen_like, reserve_port

from tests.http_support import request
from tests.nodehelpers import wait_until


def _status(addr: str) -> dict:
    return request("GET", f"http://{addr}/status").json()


def _workers(addr: str) -> dict:
    return _status(addr)["http"]["workers"]


def _exchange(addr: str, raw: bytes, answers: int) -> list[tuple[int, dict, bytes]]:
    """Send raw request bytes on one connection; read `answers` responses (status, headers
    without Date, body)."""
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=10)
    try:
        s.sendall(raw)
        f = s.makefile("rb")
        out = []
        for _ in range(answers):
            status = int(f.readline().split()[1])
            headers = {}
            while True:
                line = f.readline().rstrip(b"\r\n")
                if not line:
                    break
                k, _, v = line.decode("latin-1").partition(":")
                headers[k.strip().lower()] = v.strip()
            body = f.read(int(headers.get("content-length", "0")))
            headers.pop("date", None)
            out.append((status, headers, body))
        return out
    finally:
        s.close()


def _get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def _post(path: str, body) -> bytes:
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


def _node_answer(addr: str, raw_read: bytes) -> tuple:
    """The node's own answer to a read: a request no worker answers (and that writes
    nothing, so the log index stays) first moves the connection to the node."""
    return _exchange(addr, _get("/readyz") + raw_read, 2)[1]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = LocalCluster(3, data_dir=str(tmp_path_factory.mktemp("workers")), http=True,
                     extra_args=("--http-workers", "2"))
    try:
        lid = c.wait_for_leader()
        leader = c.nodes[lid].http_addr
        r = request("POST", f"http://{leader}/db/execute",
                    [["CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, b BLOB, r REAL)"],
                     ["INSERT INTO t(name, b, r) VALUES ('a', x'00ff', 1.5)"],
                     ["INSERT INTO t(name, b, r) VALUES ('b', NULL, -2)"]])
        assert r.status == 200, r
        yield c
    finally:
        c.close()


def _leader_http(c) -> str:
    return c.nodes[c.wait_for_leader()].http_addr


@pytest.mark.parametrize("query", [
    "/db/query?q=SELECT+*+FROM+t+ORDER+BY+id&level=none",
    "/db/query?q=SELECT+*+FROM+t+ORDER+BY+id",
    "/db/query?q=SELECT+name+FROM+t&level=linearizable&associative",
    "/db/query?q=SELECT+b+FROM+t&level=weak&blob_array&pretty",
    "/db/query/?q=SELECT+count(*)+AS+n+FROM+t&level=none",
])
def test_a_read_a_worker_answers_is_the_nodes_answer_byte_for_byte(cluster, query):
    addr = _leader_http(cluster)
    before = _workers(addr)["reads_served"]
    ours = _exchange(addr, _get(query), 1)[0]
    theirs = _node_answer(addr, _get(query))
    assert ours[0] == 200 and ours == theirs
    wait_until(lambda: _workers(addr)["reads_served"] > before, 10, "the worker to count its read")


def test_a_posted_read_with_parameters_is_answered_by_a_worker_as_by_the_node(cluster):
    addr = _leader_http(cluster)
    raw = _post("/db/query?level=none", [["SELECT name FROM t WHERE id = ?", 2]])
    ours = _exchange(addr, raw, 1)[0]
    assert ours == _node_answer(addr, raw)
    assert json.loads(ours[2])["results"][0]["values"] == [["b"]]


@pytest.mark.parametrize("raw", [
    _get("/db/query?q=SELECT+*+FROM+nope&level=none"),                # SQLite's error
    _get("/db/query?q=SELEKT+1&level=none"),                          # a syntax error
    _get("/db/query?q=INSERT+INTO+t(name)+VALUES('x')&level=none"),   # a write on /db/query
    _get("/db/query?q=SELECT+1&level=bogus"),                          # a bad flag: 400
    _get("/db/query?level=none"),                                      # no statement
    _get("/readyz"),
    _get("/nope"),
])
def test_anything_but_a_plain_read_is_the_nodes_answer(cluster, raw):
    addr = _leader_http(cluster)
    assert _exchange(addr, raw, 1)[0] == _node_answer(addr, raw)


def test_a_write_on_a_workers_connection_is_applied_and_the_connection_goes_on(cluster):
    addr = _leader_http(cluster)
    handed = _workers(addr)["adopted"]
    got = _exchange(addr, _get("/db/query?q=SELECT+count(*)+FROM+t&level=none")
                    + _post("/db/execute", [["INSERT INTO t(name) VALUES ('w')"]])
                    + _get("/db/query?q=SELECT+name+FROM+t+WHERE+name='w'&level=linearizable"), 3)
    assert [g[0] for g in got] == [200, 200, 200]
    assert json.loads(got[1][2])["results"][0]["rows_affected"] == 1
    assert json.loads(got[2][2])["results"][0]["values"] == [["w"]]
    assert _workers(addr)["adopted"] == handed + 2   # and this /status's own connection


def test_a_workers_reads_follow_schema_changes(cluster):
    """A table that did not exist, then a new column: the worker's kept verdicts and
    prepared statements never answer from the old schema."""
    addr = _leader_http(cluster)
    q = _get("/db/query?q=SELECT+*+FROM+later&level=linearizable")
    assert "no such table" in _exchange(addr, q, 1)[0][2].decode()
    assert request("POST", f"http://{addr}/db/execute",
                   [["CREATE TABLE later(a)"], ["INSERT INTO later VALUES (1)"]]).status == 200
    assert json.loads(_exchange(addr, q, 1)[0][2])["results"][0]["values"] == [[1]]
    assert request("POST", f"http://{addr}/db/execute",
                   [["ALTER TABLE later ADD COLUMN b DEFAULT 'x'"]]).status == 200
    got = json.loads(_exchange(addr, q, 1)[0][2])["results"][0]
    assert got["columns"] == ["a", "b"] and got["values"] == [[1, "x"]]


def test_a_large_write_handed_over_mid_body_reaches_the_node_whole(cluster):
    """A body larger than a worker keeps moves with its connection while it is still
    arriving: the node parses the bytes the worker read before any it reads itself (a race
    once gave it the rest of the body first: 400 for 7 of 40 such writes)."""
    addr = _leader_http(cluster)
    assert request("POST", f"http://{addr}/db/execute", [["CREATE TABLE big(k, v)"]]).status == 200
    for t in range(40):
        rows = [["INSERT INTO big VALUES(?, ?)", f"{t}-{j}", "v" * (100 + 3000 * (t % 5))]
                for j in range(300)]
        got = _exchange(addr, _post("/db/execute", rows), 1)[0]
        assert got[0] == 200, (t, got)
    got = _exchange(addr, _get("/db/query?q=SELECT+count(*)+FROM+big&level=linearizable"), 1)[0]
    assert json.loads(got[2])["results"][0]["values"] == [[40 * 300]]


def test_pipelined_requests_are_answered_in_order_across_a_handover(cluster):
    addr = _leader_http(cluster)
    reads = [_get(f"/db/query?q=SELECT+{i}&level=none") for i in range(5)]
    raw = b"".join(reads[:3]) + _get("/status") + b"".join(reads[3:])
    got = _exchange(addr, raw, 6)
    values = [json.loads(b)["results"][0]["values"][0][0] for s, _, b in got if b.startswith(b'{"results"')]
    assert values == [0, 1, 2, 3, 4]
    assert json.loads(got[3][2])["store"]                 # the node's /status, in its place


def test_linearizable_reads_through_workers_see_every_acknowledged_write(cluster):
    addr = _leader_http(cluster)
    for i in range(30):
        r = request("POST", f"http://{addr}/db/execute", [["INSERT INTO t(name) VALUES (?)", f"l{i}"]])
        assert r.status == 200
        got = _exchange(addr, _get(f"/db/query?q=SELECT+count(*)+FROM+t+WHERE+name='l{i}'"
                                   "&level=linearizable"), 1)[0]
        assert json.loads(got[2])["results"][0]["values"] == [[1]], i


def test_a_followers_weak_read_is_the_nodes_redirect_or_forward(cluster):
    lid = cluster.wait_for_leader()
    fid = next(i for i in cluster.nodes if i != lid)
    addr = cluster.nodes[fid].http_addr
    for q in ("/db/query?q=SELECT+count(*)+FROM+t&redirect", "/db/query?q=SELECT+count(*)+FROM+t"):
        ours = _exchange(addr, _get(q), 1)[0]
        assert ours == _node_answer(addr, _get(q))
    # level none is the follower's own: its workers answer it
    ours = _exchange(addr, _get("/db/query?q=SELECT+name+FROM+t+WHERE+id=1&level=none"), 1)[0]
    assert json.loads(ours[2])["results"][0]["values"] == [["a"]]


def test_a_worker_that_dies_is_replaced_and_the_api_keeps_answering(cluster):
    addr = _leader_http(cluster)
    st = _workers(addr)
    victim = st["pids"][0]
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: (w := _workers(addr))["running"] == 2 and victim not in w["pids"]
               and w["exited"] >= st["exited"] + 1, 20, "a new worker")
    for _ in range(20):
        got = _exchange(addr, _get("/db/query?q=SELECT+1&level=none"), 1)[0]
        assert got[0] == 200


def test_the_workers_die_with_their_node(tmp_path):
    c = LocalCluster(1, data_dir=str(tmp_path), http=True, extra_args=("--http-workers", "2"))
    try:
        c.wait_for_leader()
        pids = _workers(c.nodes[1].http_addr)["pids"]
        assert len(pids) == 2
        os.kill(c.nodes[1].proc.pid, signal.SIGKILL)

        def gone():
            return all(not os.path.exists(f"/proc/{p}") or
                       open(f"/proc/{p}/stat").read().split()[2] == "Z" for p in pids)
        wait_until(gone, 20, "the workers to exit")
    finally:
        c.close()


def test_a_snapshot_that_replaces_a_followers_database_is_what_its_workers_read(tmp_path):
    c = LocalCluster(3, data_dir=str(tmp_path), http=True, snapshot_entries=50,
                     extra_args=("--http-workers", "1"))
    try:
        lid = c.wait_for_leader()
        laddr = c.nodes[lid].http_addr
        fid = next(i for i in c.nodes if i != lid)
        faddr = c.nodes[fid].http_addr
        assert request("POST", f"http://{laddr}/db/execute", [["CREATE TABLE s(x)"]]).status == 200
        q = _get("/db/query?q=SELECT+count(*)+FROM+s&level=none")
        wait_until(lambda: json.loads(_exchange(faddr, q, 1)[0][2])["results"][0].get("values") == [[0]],
                   20, "the follower to have the table")
        # cut off (its worker keeps the old file open), it misses more than the log keeps
        c.isolate(fid)
        for i in range(300):
            assert request("POST", f"http://{laddr}/db/execute", [["INSERT INTO s VALUES (?)", i]]).status == 200
        assert json.loads(_exchange(faddr, q, 1)[0][2])["results"][0]["values"] == [[0]]
        installed = _status(faddr)["ddb"]["counters"].get("snapshots_installed", 0)
        c.heal()
        wait_until(lambda: _status(faddr)["ddb"]["counters"].get("snapshots_installed", 0) > installed,
                   30, "the follower to install a snapshot")
        # the node tells its workers of the new file beside answering: a read may still
        # see the old one for a moment (level none allows that), never for good
        wait_until(lambda: json.loads(_exchange(faddr, q, 1)[0][2])["results"][0]["values"] == [[300]],
                   10, "the worker to read the installed database")
    finally:
        c.close()


# ---------------------------------------------------------------------- the worker's parts
def test_a_leaders_word_lapses_after_its_lease():
    v = NodeView()
    v.update({"leader": True, "until": time.monotonic() + 60, "term": 3, "leader_id": 1, "gen": 0})
    assert v.leads()
    v.update({"leader": True, "until": time.monotonic() - 0.001, "term": 3, "leader_id": 1, "gen": 0})
    assert not v.leads()          # the node stopped renewing it (stopped, stuck): weak reads go
    v.update({"leader": False, "until": time.monotonic() + 60})
    assert not v.leads()


def test_a_linearizable_read_waits_for_a_read_index_request_sent_after_it_arrived():
    """Raft 6.4: the read index must be taken after the read arrived. Reads of one turn of
    the loop share a request sent at its end; a read that comes once it went out waits for
    a newer one, never for the one already asked."""
    async def scenario():
        asked = []
        rounds = ReadIndexRounds(asked.append)
        first = [asyncio.ensure_future(rounds.wait()) for _ in range(3)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert asked == [1]                      # one request for the three
        late = asyncio.ensure_future(rounds.wait())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert asked == [1, 2]                   # sent at once, the first still in flight
        rounds.answered(2, 12, None)
        assert await late == 12 and not any(f.done() for f in first)
        rounds.answered(1, 10, None)
        assert [await f for f in first] == [10, 10, 10]
        failing = asyncio.ensure_future(rounds.wait())
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        rounds.answered(3, None, "no leader")
        with pytest.raises(Exception, match="no leader"):
            await failing
    asyncio.run(scenario())


def test_a_read_that_goes_away_leaves_the_others_of_its_round_waiting():
    """A client that hangs up cancels its own read only: the reads sharing its ReadIndex
    request still get the index."""
    async def scenario():
        asked = []
        rounds = ReadIndexRounds(asked.append)
        reads = [asyncio.ensure_future(rounds.wait()) for _ in range(3)]
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        reads[0].cancel()
        await asyncio.sleep(0)
        rounds.answered(1, 7, None)
        assert reads[0].cancelled() and [await f for f in reads[1:]] == [7, 7]
    asyncio.run(scenario())


def test_a_port_another_nodes_workers_listen_on_is_address_in_use():
    """SO_REUSEPORT lets a node's workers share its port; it must not let a second node
    with workers silently share it too (a misconfigured port is refused, as without)."""
    first = reserve_port("127.0.0.1", 0)
    listener = listen_like({"family": int(first.family), "addr": list(first.getsockname())})
    try:
        with pytest.raises(OSError):
            reserve_port("127.0.0.1", first.getsockname()[1])
    finally:
        listener.close()
        first.close()


def test_a_node_with_its_database_in_memory_serves_without_workers(tmp_path):
    """A worker reads the database file: with none, the node serves the API alone (and
    says so in /status) rather than failing to start."""
    c = LocalCluster(1, data_dir=str(tmp_path), storage="memory", http=True,
                     extra_args=("--http-workers", "2"))
    try:
        c.wait_for_leader()
        addr = c.nodes[1].http_addr
        assert _workers(addr) == {"count": 0}
        got = _exchange(addr, _get("/db/query?q=SELECT+1&level=none"), 1)[0]
        assert got[0] == 200 and json.loads(got[2])["results"][0]["values"] == [[1]]
    finally:
        c.close()
