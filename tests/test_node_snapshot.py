"""Snapshot install to a node that was down for a long time.

With a small `snapshot_entries`, the live nodes snapshot and compact their logs while one node
is stopped; when it comes back the entries it misses are gone, so the leader sends it a
snapshot (its `snapshots_installed` counter moves) and it converges with the others.
"""
from __future__ import annotations

import pytest

from ddb_node.cluster import LocalCluster

from .nodehelpers import assert_replicas_identical, follower_of, node_status, wait_until


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
        st = node_status(c, leader)
        assert st["counters"]["snapshots_taken"] >= 2, st["counters"]
        assert st["log_first_index"] > 10, \
            f"the leader's log was not compacted (first index {st['log_first_index']})"
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
        assert node_status(c, lc.wait_for_leader(10))["log_first_index"] > 10
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
