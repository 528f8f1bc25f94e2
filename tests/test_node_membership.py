"""Membership changes at run time under a write load: add a node (joins as a learner, catches
up, is promoted), remove a follower, remove the leader. No acknowledged write is lost, none is
applied twice, and the remaining replicas converge."""
from __future__ import annotations

import pytest

from ddb_node.cluster import LocalCluster

from tests.nodehelpers import (Writers, assert_replicas_identical, check_no_loss_no_dup,
                          follower_of, node_status, wait_until)


def test_add_remove_follower_remove_leader_under_load():
    with LocalCluster(3, snapshot_entries=200) as lc:
        with lc.client(timeout=20.0) as c:
            c.execute("CREATE TABLE acked(k TEXT PRIMARY KEY, w INTEGER, i INTEGER)")
            c.execute("CREATE TABLE log(id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT)")
            w = Writers(lc, 4, "mem").start()
            try:
                wait_until(lambda: w.total_acked() >= 40, 20, what="initial writes")

                # add a node while writing: learner, catches up, promoted to voter
                new = lc.add_node(timeout=60)
                c.refresh()
                st = node_status(c, new)
                assert new in st["voters"], st["voters"]
                n = w.total_acked()
                wait_until(lambda: w.total_acked() >= n + 40, 20, what="writes after add")

                # remove a follower
                leader = lc.wait_for_leader(10)
                victim = follower_of(lc, leader)
                lc.remove_node(victim)
                c.refresh()
                assert victim not in c.members
                wait_until(lambda: victim not in node_status(c, lc.wait_for_leader(10))["voters"],
                           10, what="the follower to leave the configuration")
                n = w.total_acked()
                wait_until(lambda: w.total_acked() >= n + 40, 20, what="writes after remove")

                # remove the leader itself
                leader = lc.wait_for_leader(10)
                lc.remove_node(leader)
                new_leader = lc.wait_for_leader(20, exclude=(leader,))
                assert new_leader != leader
                c.refresh()
                assert set(c.members) == set(lc.node_ids())
                assert leader not in node_status(c, new_leader)["voters"]
                n = w.total_acked()
                wait_until(lambda: w.total_acked() >= n + 40, 30,
                           what="writes after removing the leader")
            finally:
                w.finish()
            assert lc.crashed() == []
            check_no_loss_no_dup(c, w)
            ids = lc.node_ids()
            assert len(ids) == 2 and new in ids
            assert_replicas_identical(lc, c, ids, table="acked", order="k")
            assert_replicas_identical(lc, c, ids, table="log", order="id")
            # two voters: both needed; still serving
            c.execute("INSERT INTO log(k) VALUES('two-voters')")


def test_transfer_leadership():
    with LocalCluster(3) as lc, lc.client() as c:
        c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY)")
        leader = lc.wait_for_leader(10)
        target = follower_of(lc, leader)
        assert lc.transfer_leader(target) == target
        assert lc.wait_for_leader(10) == target
        r = c.execute("INSERT INTO t VALUES(1)")
        assert r.node == target
        with pytest.raises(Exception):
            lc.transfer_leader(99)
