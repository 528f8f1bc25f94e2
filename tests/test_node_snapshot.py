"""Snapshot install to a node that was down for a long time.

With a small `snapshot_entries`, the live nodes snapshot and compact their logs while one node
is stopped; when it comes back the entries it misses are gone, so the leader sends it a
snapshot (its `snapshots_installed` counter moves) and it converges with the others.
"""
from __future__ import annotations

import os
import threading

import pytest

from ddb_node.cluster import LocalCluster

from tests.nodehelpers import (assert_replicas_identical, follower_of, live_ids, node_status,
                          restore_health, wait_compacted, wait_converged, wait_until)


def test_snapshot_install_after_long_downtime():
    with LocalCluster(3, snapshot_entries=40) as lc, lc.client() as c:
        c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT, pad BLOB)")
        leader = lc.wait_for_leader(10)
        down = follower_of(lc, leader)
        lc.stop(down)
        assert node_status(c, leader)["counters"]["snapshots_installed"] == 0
        # enough single-entry writes for several snapshots and a compaction past the
        # stopped node's last index
        for i in range(300):
            c.execute("INSERT INTO t(v, pad) VALUES(?, randomblob(200))", [f"row-{i}"])
        st = wait_compacted(c, leader)
        assert st["counters"]["snapshots_taken"] >= 2, st["counters"]
        lc.restart(down)
        wait_until(lambda: node_status(c, down)["counters"]["snapshots_installed"] >= 1, 30,
                   what="the restarted node to install a snapshot")
        rows = assert_replicas_identical(lc, c)
        assert len(rows) == 300
        # and it keeps following by log afterwards
        c.execute("INSERT INTO t(v) VALUES('after-snapshot')")
        rows = assert_replicas_identical(lc, c)
        assert rows[-1][1] == "after-snapshot"
        # the installed state survives a restart of that node (recovers from its own disk)
        lc.stop(down)
        lc.restart(down)
        wait_until(lambda: node_status(c, down)["applied"] > 0, 20, what="restart")
        assert len(assert_replicas_identical(lc, c)) == 301


def test_node_restored_by_snapshot_learns_addresses_of_nodes_added_meanwhile():
    """A node is down while another joins and the log is compacted past the join: the
    address of the new member was only in the compacted conf-change entry. After catching up
    by snapshot, the restarted node must still be able to talk to the new member (here: it is
    made leader, and the new member must keep receiving its writes)."""
    with LocalCluster(3, snapshot_entries=30) as lc, lc.client() as c:
        c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        leader = lc.wait_for_leader(10)
        down = follower_of(lc, leader)
        lc.stop(down)
        new = lc.add_node(timeout=60)
        for i in range(150):
            c.execute("INSERT INTO t(v) VALUES(?)", [f"row-{i}"])
        wait_compacted(c, lc.wait_for_leader(10))
        lc.restart(down)
        wait_until(lambda: node_status(c, down)["counters"]["snapshots_installed"] >= 1, 30,
                   what="the restarted node to install a snapshot")
        assert_replicas_identical(lc, c)
        assert str(new) in node_status(c, down)["members"], \
            "the restarted node does not know the address of the node added while it was down"
        assert lc.transfer_leader(down) == down
        c.refresh()
        c.execute("INSERT INTO t(v) VALUES('from-restored-leader')")
        rows = assert_replicas_identical(lc, c, timeout=20)
        assert rows[-1][1] == "from-restored-leader"


BATCH = 1000
INSERT = "INSERT INTO big(k, v) VALUES " + ",".join(["(?, ?)"] * BATCH)


def _load(c, rows: int) -> None:
    for start in range(0, rows, BATCH):
        params = []
        for i in range(start, start + BATCH):
            params += [f"key-{i:010d}", "v" * 100]
        c.execute(INSERT, params, timeout=60)


def _rss_kb(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


def _db_bytes(lc, nid: int) -> int:
    base = os.path.join(lc.nodes[nid].data_dir, "data.db")
    return sum(os.path.getsize(base + s) for s in ("", "-wal") if os.path.exists(base + s))


def test_snapshot_send_and_install_memory_is_bounded():
    """Issue 13: a snapshot is streamed from the leader's database file a chunk at a time and
    staged by the follower in a file, so neither holds it in memory: the leader's peak RSS
    moves by far less than the database while a new node catches up, and the new node's peak
    stays near an ordinary node's."""
    with LocalCluster(3, snapshot_entries=100) as lc, lc.client(timeout=30.0) as c:
        c.execute("CREATE TABLE big(id INTEGER PRIMARY KEY, k TEXT, v TEXT)")
        _load(c, 200_000)                                  # ~25 MB
        leader = lc.wait_for_leader(10)
        wait_compacted(c, leader)
        size = _db_bytes(lc, leader)
        assert size > 20_000_000, size
        follower = follower_of(lc, leader)
        before = _rss_kb(lc.nodes[leader].pid, "VmHWM")
        new = lc.add_node(timeout=120)
        assert node_status(c, new)["counters"]["snapshots_installed"] == 1
        _identical(lc, c)
        grown = (_rss_kb(lc.nodes[leader].pid, "VmHWM") - before) * 1024
        assert grown < size / 4, f"the leader's peak RSS grew by {grown} bytes for a {size}-byte db"
        joined = _rss_kb(lc.nodes[new].pid, "VmHWM") * 1024
        ordinary = _rss_kb(lc.nodes[follower].pid, "VmRSS") * 1024
        assert joined < ordinary + size / 4, \
            f"the new node peaked at {joined} bytes, an ordinary node has {ordinary}"
        restore_health(lc)


def test_snapshot_install_interrupted_by_a_kill_resumes_after_restart():
    """Issue 13: a new node is SIGKILLed in the middle of installing its snapshot. The bytes
    it had staged are still on disk; restarted, it resumes from them (it stages only the
    rest) and converges. Messages are delayed and chunks are small so the install is slow
    enough to be interrupted; the kill happens when part of it is on disk, not at a time."""
    with LocalCluster(3, snapshot_entries=20,
                      extra_args=("--snapshot-chunk", "65536")) as lc, lc.client(timeout=30.0) as c:
        c.execute("CREATE TABLE big(id INTEGER PRIMARY KEY, k TEXT, v TEXT)")
        _load(c, 60_000)                                   # ~7.5 MB: > 100 chunks
        leader = lc.wait_for_leader(10)
        wait_compacted(c, leader)
        lc.delay(20)
        nid = max(lc.nodes) + 1
        joining = threading.Thread(target=lambda: _try_add(lc), daemon=True)
        joining.start()
        part = os.path.join(lc.data_dir, f"node{nid}", "raft.db-incoming.part")
        wait_until(lambda: os.path.exists(part) and os.path.getsize(part) >= 4 * 65536, 60,
                   interval=0.002, what="part of the snapshot to be staged")
        lc.kill(nid)
        staged = os.path.getsize(part)
        lc.heal()
        lc.restart(nid)
        joining.join(120)
        wait_until(lambda: node_status(c, nid)["counters"]["snapshots_installed"] == 1, 60,
                   what="the restarted node to install the snapshot")
        st = node_status(c, nid)
        installed = _db_bytes(lc, nid)
        assert st["counters"]["snapshot_bytes_staged"] <= installed + 4096 - staged, \
            (f"the restarted node staged {st['counters']['snapshot_bytes_staged']} bytes: it did "
             f"not resume from the {staged} it had")
        assert not os.path.exists(part)
        assert _identical(lc, c) == 60_000
        restore_health(lc)


def _identical(lc, c) -> int:
    """Every replica at one applied index with the same rows; returns the row count. An
    aggregate, not a full dump: reading 10^5 rows on a node's loop is the other half of
    issue 13 (big reads still block the loop and can cost an election)."""
    wait_converged(lc, c, timeout=60)
    sums = {i: tuple(c.query_on(i, "SELECT count(*), sum(id), sum(length(k) + length(v)) "
                                   "FROM big", level="none")[0].rows[0])
            for i in live_ids(lc)}
    assert len(set(sums.values())) == 1, f"replicas differ: {sums}"
    return next(iter(sums.values()))[0]


def _try_add(lc) -> None:
    try:
        lc.add_node(timeout=60)
    except Exception:    # killed mid-join: the test restarts it and checks the outcome
        pass
