"""What the dashboard's console and charts read: the answering node, index and level of every
SQL answer (X-DDB-* headers), request counters that count each request once across the
cluster, and per-second latency windows in the /ws status frames."""
from __future__ import annotations

import asyncio
import json
import time

import pytest
from tornado.websocket import websocket_connect

from ddb_node.server.metrics import BOUNDS, LatencyHistogram, LatencyWindow, percentile

from tests.http_support import request, wait_until


def test_a_latency_window_holds_what_was_recorded_since_the_last_look():
    h = LatencyHistogram()
    w = LatencyWindow(h)
    for _ in range(98):
        h.record(0.001)
    h.record(0.040)
    h.record(0.200)
    got = w.take()
    assert got["n"] == 100
    assert 0.9 <= got["p50_ms"] <= 1.2            # inside the bucket that holds 1 ms
    assert 30 <= got["p99_ms"] <= 51              # the 99th of 100 is the 40 ms one
    assert sum(c for _, _, c in got["buckets"]) == 100
    assert all(lo < hi for lo, hi, _ in got["buckets"])
    assert w.take() == {"n": 0, "p50_ms": None, "p99_ms": None, "buckets": []}


def test_windows_of_several_nodes_merge_into_one_percentile():
    a, b = LatencyHistogram(), LatencyHistogram()
    wa, wb = LatencyWindow(a), LatencyWindow(b)
    for _ in range(50):
        a.record(0.001)
        b.record(0.010)
    merged = sorted(wa.take()["buckets"] + wb.take()["buckets"])
    assert 0.9 <= percentile(merged, 0.25) <= 1.2
    assert 8 <= percentile(merged, 0.99) <= 12.5


def test_a_latency_past_the_last_bound_lands_in_the_open_bucket():
    h = LatencyHistogram()
    w = LatencyWindow(h)
    h.record(3600.0)
    got = w.take()
    assert got["buckets"] == [[round(BOUNDS[-2] * 1000, 4), None, 1]]
    assert got["p99_ms"] == round(BOUNDS[-2] * 1000, 4)


CLUSTER_OPTIONS = {"storage": "memory"}   # see conftest.py


def _urls(c):
    lid = c.wait_for_leader()
    fid = next(i for i in c.nodes if i != lid)
    return lid, fid, f"http://{c.nodes[lid].http_addr}", f"http://{c.nodes[fid].http_addr}"


def _leadership(c):
    lid = c.wait_for_leader()
    return lid, c.status()[lid]["term"]


def in_one_term(c, check, attempts: int = 3):
    """Run `check(leader, follower, L, F)` until one run saw no leader change (on a loaded
    host an election may fall inside it; what is checked holds within one term)."""
    for _ in range(attempts):
        before = _leadership(c)
        lid, fid, L, F = _urls(c)
        try:
            return check(lid, fid, L, F)
        except AssertionError:
            if _leadership(c) == before and before[0] == lid:
                raise
    raise AssertionError(f"the leader changed during each of {attempts} attempts")


def _counts(url):
    return {n["id"]: (n["reads"], n["writes"]) for n in request("GET", url + "/ddb/cluster").json()["nodes"]}


def test_sql_answers_name_the_node_index_and_level(cluster):
    in_one_term(cluster, _answers_name_the_node)


def _answers_name_the_node(lid, fid, L, F):
    r = request("POST", F + "/db/execute", ["CREATE TABLE IF NOT EXISTS h(a)"])
    assert r.status == 200
    r = request("POST", F + "/db/execute?raft_index", ["INSERT INTO h VALUES (1)"])
    assert r.status == 200
    assert r.headers["x-ddb-node"] == str(lid)          # the leader ran the forwarded write
    assert r.headers["x-ddb-index"] == str(r.json()["raft_index"])
    r = request("GET", F + "/db/query", params={"q": "SELECT count(*) FROM h", "level": "none"})
    assert r.headers["x-ddb-node"] == str(fid) and r.headers["x-ddb-level"] == "none"
    assert int(r.headers["x-ddb-index"]) >= 1
    r = request("POST", F + "/db/request?level=linearizable", ["SELECT a FROM h"])
    # a follower serves a linearizable read itself once the leader confirmed the read index
    assert r.headers["x-ddb-level"] == "linearizable" and r.headers["x-ddb-node"] == str(fid)


def test_each_request_is_counted_once_where_it_was_served(cluster):
    in_one_term(cluster, _counted_once)


def _counted_once(lid, fid, L, F):
    request("POST", L + "/db/execute", ["CREATE TABLE IF NOT EXISTS k(a)"])
    before = _counts(L)
    assert request("POST", F + "/db/execute", ["INSERT INTO k VALUES (1)"]).status == 200
    assert request("GET", F + "/db/query", params={"q": "SELECT * FROM k", "level": "none"}).status == 200
    after = _counts(L)
    assert after[lid][1] == before[lid][1] + 1 and after[fid][1] == before[fid][1]
    assert after[fid][0] == before[fid][0] + 1 and after[lid][0] == before[lid][0]


def test_status_frames_carry_counters_and_the_latency_of_the_last_second(cluster):
    lid, fid, L, F = _urls(cluster)
    request("POST", L + "/db/execute", ["CREATE TABLE IF NOT EXISTS w(a)"])

    async def frame_with_requests():
        conn = await websocket_connect(L.replace("http", "ws") + "/ws?topics=status")
        try:
            hello = json.loads(await conn.read_message())
            assert {"reads", "writes", "pid", "started"} <= set(hello["status"])

            def load():
                for i in range(5):
                    request("POST", L + "/db/execute", [["INSERT INTO w VALUES (?)", i]])
            await asyncio.get_running_loop().run_in_executor(None, load)
            while True:       # the first status frame whose window holds the five writes
                f = json.loads(await asyncio.wait_for(conn.read_message(), 5))
                if f["type"] == "status" and f["latency"]["n"] >= 5:
                    return f
        finally:
            conn.close()

    f = asyncio.run(asyncio.wait_for(frame_with_requests(), 20))
    lat = f["latency"]
    assert f["node"] == lid and f["writes"] >= 5
    assert 0 < lat["p50_ms"] <= lat["p99_ms"]
    assert sum(c for _, _, c in lat["buckets"]) == lat["n"]


def test_a_follower_times_the_requests_it_forwards_the_leader_does_not(cluster):
    in_one_term(cluster, _forwards_timed_once)


def _forwards_timed_once(lid, fid, L, F):
    request("POST", L + "/db/execute", ["CREATE TABLE IF NOT EXISTS w(a)"])

    async def timed():
        conns = {n: await websocket_connect(u.replace("http", "ws") + "/ws?topics=status")
                 for n, u in ((lid, L), (fid, F))}
        try:
            for conn in conns.values():
                await conn.read_message()           # hello: the windows start here
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: [request("POST", F + "/db/execute", [["INSERT INTO w VALUES (?)", i]])
                               for i in range(3)])
            done = time.time()
            out = {}
            for n, conn in conns.items():           # the windows up to a frame made after that
                out[n] = 0
                while True:
                    f = json.loads(await asyncio.wait_for(conn.read_message(), 5))
                    if f["type"] != "status":
                        continue
                    out[n] += f["latency"]["n"]
                    if f["t"] >= done:
                        break
            return out
        finally:
            for conn in conns.values():
                conn.close()

    got = asyncio.run(asyncio.wait_for(timed(), 30))
    assert got == {fid: 3, lid: 0}, got
