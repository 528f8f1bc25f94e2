"""/db/backup of a database larger than what a node should hold in memory (issue 13: node
memory bounded as the database grows; rqlite's "Backup and Restore" API).

The node copies the database to a file and streams the answer from it a chunk at a time
(binary with Content-Length, SQL text and gzip chunked), so the body is never held whole; a
client that stops reading holds the node to a few chunks, and one that goes away leaves no
copy behind.
"""
from __future__ import annotations

import glob
import gzip
import http.client
import os
import sqlite3

import pytest

from tests.http_support import request, wait_until

LC_OPTIONS = {"http": True}
BLOBS = 48                     # 1 MB blobs: a 48 MB database
MB = 1 << 20


def _vm_hwm_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _reset_hwm(pid: int) -> None:
    """Writing 5 to clear_refs resets the peak RSS (VmHWM) to the current RSS."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def _copies(lc) -> list[str]:
    return [p for n in lc.nodes.values() for p in glob.glob(os.path.join(n.data_dir, "**", ".ddb-backup-*"),
                                                          recursive=True)]


@pytest.fixture(scope="module")
def big(lc):
    with lc.client(timeout=60.0) as c:
        c.execute("CREATE TABLE blobs(id INTEGER PRIMARY KEY, b BLOB)")
        for i in range(BLOBS // 8):      # 8 MB per entry
            c.execute("WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 8) "
                      "INSERT INTO blobs(b) SELECT randomblob(1048576) FROM n")
        c.query("SELECT count(*) FROM blobs", level="linearizable")
    leader = lc.wait_for_leader()
    follower = next(i for i in lc.nodes if i != leader)
    return lc, follower


def _url(lc, i: int) -> str:
    return "http://" + lc.nodes[i].http_addr


def test_a_binary_backup_streams_with_its_length_and_holds_a_few_chunks(big, tmp_path):
    lc, node = big
    pid = lc.nodes[node].pid
    _reset_hwm(pid)
    before = _vm_hwm_mb(pid)
    r = request("GET", _url(lc, node) + "/db/backup", timeout=60.0)
    assert r.status == 200 and r.body[:16] == b"SQLite format 3\x00"
    assert int(r.headers["content-length"]) == len(r.body) > BLOBS * MB
    path = tmp_path / "b.db"
    path.write_bytes(r.body)
    with sqlite3.connect(path) as c:
        assert c.execute("SELECT count(*), sum(length(b)) FROM blobs").fetchone() == (BLOBS, BLOBS * MB)
    grew = _vm_hwm_mb(pid) - before
    # the whole body in memory would be +48 MB; a few 1 MB chunks in flight are the budget
    assert grew < 16, f"the node's peak RSS grew {grew:.1f} MB for a {BLOBS} MB backup"
    assert _copies(lc) == []


def test_a_compressed_sql_backup_streams_chunked_and_is_the_whole_dump(big):
    lc, node = big
    pid = lc.nodes[node].pid
    _reset_hwm(pid)
    before = _vm_hwm_mb(pid)
    r = request("GET", _url(lc, node) + "/db/backup", params={"fmt": "sql", "compress": None},
                timeout=120.0)
    assert r.status == 200 and r.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in r.headers
    text = gzip.decompress(r.body)
    assert text.startswith(b"PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE blobs")
    assert text.endswith(b"COMMIT;\n") and text.count(b"\nINSERT INTO \"blobs\" VALUES(") == BLOBS
    grew = _vm_hwm_mb(pid) - before
    # the hex text is 2x the data: held whole it would be ~100 MB before compression
    assert grew < 24, f"the node's peak RSS grew {grew:.1f} MB for a {2 * BLOBS} MB dump"
    assert _copies(lc) == []


def test_a_client_that_goes_away_mid_backup_leaves_no_copy_and_a_healthy_node(big):
    lc, node = big
    host, port = lc.nodes[node].http_addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=30)
    conn.request("GET", "/db/backup")
    resp = conn.getresponse()
    assert resp.status == 200
    assert len(resp.read(MB)) == MB      # the first megabyte, then hang up
    conn.close()
    assert wait_until(lambda: _copies(lc) == [], 20, "the backup copy removed")
    r = request("GET", _url(lc, node) + "/db/query", params={"q": "SELECT count(*) FROM blobs"})
    assert r.status == 200 and r.json()["results"][0]["values"] == [[BLOBS]]

