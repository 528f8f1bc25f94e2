"""Bad HTTP traffic never stalls the Raft loop: a write load keeps running while 100 bad
requests arrive (garbage, oversized, slow and half-open connections); no election happens
(term and leader unchanged on every node) and every write succeeds."""
from __future__ import annotations

import socket
import threading
import time

import pytest

from ddb_node.cluster import LocalCluster

from tests.http_support import request


@pytest.fixture(scope="module")
def cluster():
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("DDB_HTTP_MAX_BODY", str(1 << 20))        # the nodes (children) inherit it
        with LocalCluster(3, http=True, storage="memory") as c:
            yield c


def _raw(addr, data: bytes, read=True, timeout=5.0) -> bytes:
    host, port = addr.split(":")
    s = socket.create_connection((host, int(port)), timeout=timeout)
    try:
        s.sendall(data)
        if not read:
            return b""
        out = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            out += chunk
            if b"\r\n\r\n" in out and len(out) > 12:
                break
        return out
    finally:
        s.close()


def _refused_or_status(send):
    """An oversized body may be answered 413 *and closed* while the client is still
    sending: a reset connection is a refusal too."""
    try:
        return send().status
    except (BrokenPipeError, ConnectionResetError):
        return "reset"


def test_bad_requests_do_not_stall_raft(cluster):
    lid = cluster.wait_for_leader()
    addr = cluster.nodes[lid].http_addr
    L = "http://" + addr
    assert request("POST", L + "/db/execute", ["CREATE TABLE w (i INTEGER)"]).status == 200
    before = {i: (s["term"], s["leader"]) for i, s in cluster.status().items()}

    stop = threading.Event()
    done, failed = [], []

    def writer():
        i = 0
        while not stop.is_set():
            r = request("POST", L + "/db/execute", [["INSERT INTO w VALUES(?)", i]], timeout=10)
            (done if r.status == 200 and "error" not in r.text else failed).append(r)
            i += 1
    t = threading.Thread(target=writer)
    t.start()
    # half-open and slow connections held open during the whole flood
    held = []
    for _ in range(20):
        host, port = addr.split(":")
        s = socket.create_connection((host, int(port)))
        s.sendall(b"POST /db/execute HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[\"SEL")
        held.append(s)
    for _ in range(10):
        host, port = addr.split(":")
        s = socket.create_connection((host, int(port)))
        s.sendall(b"GET /status HTTP/1.1\r\nHost: x\r\nX-Slow: ")    # headers never end
        held.append(s)
    statuses = []
    try:
        bad = [
            lambda: request("POST", L + "/db/execute", b"\x00\xff" * 500).status,
            lambda: request("POST", L + "/db/execute", "[" * 50_000).status,
            lambda: request("POST", L + "/db/execute", '{"not": "a list"}').status,
            lambda: _refused_or_status(lambda: request("POST", L + "/db/execute", "x" * (2 << 20))),
            lambda: request("POST", L + "/db/query", ["SELECT 1"] * 20_000).status,      # limits
            lambda: request("PATCH", L + "/db/execute", "[]").status,
            lambda: request("GET", L + "/db/query", params={"q": "SELECT", "level": "x"}).status,
            lambda: _raw(addr, b"\x16\x03\x01garbage not http\r\n\r\n")[:12],
            lambda: _raw(addr, b"POST /db/execute HTTP/1.1\r\nContent-Length: 99999999999\r\n\r\n")[:12],
            lambda: _raw(addr, b"GET /status HTTP/1.1\r\n" + b"X-Big: " + b"a" * (70 << 10) + b"\r\n\r\n")[:12],
        ]
        for k in range(100):
            statuses.append(bad[k % len(bad)]())
    finally:
        for s in held:
            s.close()
        # the writer must have made progress *during* the flood
        n_during = len(done)
        stop.set()
        t.join(30)
    assert not failed, failed[:3]
    assert n_during >= 10, n_during
    assert (413 in statuses or "reset" in statuses) and 400 in statuses and 405 in statuses
    raw = [s for s in statuses if isinstance(s, bytes)]
    assert all(s.startswith(b"HTTP/1.1 4") or s == b"" for s in raw), raw[:5]
    after = {i: (s["term"], s["leader"]) for i, s in cluster.status().items()}
    assert after == before, (before, after)       # no election: no heartbeat deadline missed
    st = request("GET", L + "/status").json()
    assert st["http"]["stats"]["too_large"] >= 10
    # the node still answers normally
    r = request("GET", L + "/db/query", params={"q": "SELECT count(*) FROM w", "level": "strong"})
    assert r.json()["results"][0]["values"] == [[len(done)]]


def test_connection_cap_and_idle_timeout(cluster):
    """Beyond the cap new connections get 503 at once; existing ones keep working."""
    lid = cluster.wait_for_leader()
    addr = cluster.nodes[lid].http_addr
    # the cap is 1024 by default: only check that many idle sockets do not block service
    socks = []
    host, port = addr.split(":")
    for _ in range(200):
        socks.append(socket.create_connection((host, int(port))))
    try:
        t0 = time.monotonic()
        assert request("GET", f"http://{addr}/readyz").status == 200
        assert time.monotonic() - t0 < 2.0
    finally:
        for s in socks:
            s.close()
