"""kill -9 and restarts on real node processes.

- kill -9 of the leader in the middle of a concurrent write load: every acknowledged write
  survives, nothing is applied twice, and afterwards every replica holds the same content
  (hash of a full ordered dump taken with level `none` once all report one applied index);
- a whole-cluster stop (SIGTERM) and a whole-cluster kill -9, each followed by a restart from
  the data directories alone: the data is still there and a leader is elected again.
"""
from __future__ import annotations

import os
import random
import time

import pytest

from ddb_node.cluster import LocalCluster

from tests.nodehelpers import (Writers, assert_replicas_identical, check_no_loss_no_dup, live_ids,
                          node_status, wait_until)


@pytest.fixture(scope="module", autouse=True)
def schema(lc):
    with lc.client() as c:
        c.execute("CREATE TABLE acked(k TEXT PRIMARY KEY, w INTEGER, i INTEGER)")
        c.execute("CREATE TABLE log(id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT)")


def test_kill9_leader_under_write_load(lc):
    with lc.client() as c:
        leader = lc.wait_for_leader(10)
        w = Writers(lc, 6, "k9").start()
        try:
            wait_until(lambda: w.total_acked() >= 60, 20, what="writes before the kill")
            lc.kill(leader)
            new = lc.wait_for_leader(20, exclude=(leader,))
            assert new != leader
            at_kill = w.total_acked()
            wait_until(lambda: w.total_acked() >= at_kill + 60, 30,
                       what="writes to resume under the new leader")
            lc.restart(leader)
            wait_until(lambda: node_status(c, leader)["applied"] > 0, 20,
                       what="the killed node to come back")
            at_restart = w.total_acked()
            wait_until(lambda: w.total_acked() >= at_restart + 30, 30,
                       what="writes with the old leader back")
        finally:
            w.finish()
        assert lc.crashed() == []
        check_no_loss_no_dup(c, w)
        rows = assert_replicas_identical(lc, c, table="acked", order="k")
        assert len(rows) >= w.total_acked()
        assert_replicas_identical(lc, c, table="log", order="id")


def test_kill9_follower_and_then_new_leader(lc):
    """Two kills in a row, a follower then the leader, each restarted while writes go on."""
    with lc.client() as c:
        w = Writers(lc, 4, "k9b").start()
        try:
            for pick_leader in (False, True):
                leader = lc.wait_for_leader(20)
                victim = leader if pick_leader else next(i for i in live_ids(lc) if i != leader)
                n0 = w.total_acked()
                wait_until(lambda: w.total_acked() >= n0 + 30, 30, what="writes before the kill")
                lc.kill(victim)
                lc.wait_for_leader(20, exclude=(victim,))
                n1 = w.total_acked()
                wait_until(lambda: w.total_acked() >= n1 + 30, 30, what="writes after the kill")
                lc.restart(victim)
                wait_until(lambda: node_status(c, victim)["applied"] > 0, 20, what="restart")
        finally:
            w.finish()
        check_no_loss_no_dup(c, w)
        assert_replicas_identical(lc, c, table="acked", order="k")


def test_restart_whole_cluster_from_disk(lc):
    with lc.client() as c:
        c.execute("CREATE TABLE IF NOT EXISTS durable(id INTEGER PRIMARY KEY, v TEXT)")
        c.request([("INSERT INTO durable(v) VALUES(?)", [f"row{i}"]) for i in range(50)],
                  transaction=True)
        before = assert_replicas_identical(lc, c, table="durable")
        before_acked = c.query("SELECT count(*) FROM acked", level="linearizable")[0].values[0][0]
    ids = live_ids(lc)
    for i in ids:
        lc.stop(i)                      # SIGTERM: clean shutdown
    assert all(lc.nodes[i].proc.returncode == 0 for i in ids), \
        {i: lc.nodes[i].proc.returncode for i in ids}
    lc.start(timeout=30)
    lc.wait_for_leader(30)
    with lc.client() as c:
        assert assert_replicas_identical(lc, c, table="durable") == before
        assert c.query("SELECT count(*) FROM acked", level="linearizable")[0].values[0][0] == before_acked
        c.execute("INSERT INTO durable(v) VALUES('after-restart')")
        last_written = c.execute("INSERT INTO durable(v) VALUES('acked-before-kill')").index

    # kill -9 all at once: acknowledged writes must survive (the log was fsynced)
    for i in live_ids(lc):
        lc.kill(i)
    lc.start(timeout=30)
    with lc.client() as c:
        r = c.query("SELECT v FROM durable ORDER BY id DESC LIMIT 2", level="linearizable")
        assert r[0].values == [["acked-before-kill", "after-restart"]]
        assert r.index >= last_written
        assert_replicas_identical(lc, c, table="durable")


@pytest.mark.soak
def test_soak_random_nemesis_under_load():
    """Long run (DDB_SOAK_SECONDS, default 180): kill -9, SIGTERM, SIGSTOP, partitions and
    isolations at random under a write load; then nothing acknowledged is lost, nothing is
    applied twice, and all replicas are identical."""
    seconds = float(os.environ.get("DDB_SOAK_SECONDS", "180"))
    rng = random.Random(int(os.environ.get("DDB_SOAK_SEED", "1")))
    with LocalCluster(5, snapshot_entries=500) as lc, lc.client(timeout=30.0) as c:
        c.execute("CREATE TABLE acked(k TEXT PRIMARY KEY, w INTEGER, i INTEGER)")
        c.execute("CREATE TABLE log(id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT)")
        w = Writers(lc, 6, "soak").start()
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                ids = lc.node_ids()
                victim = rng.choice(ids)
                action = rng.choice(["kill", "stop", "pause", "partition", "isolate"])
                if action == "kill":
                    lc.kill(victim)
                elif action == "stop":
                    lc.stop(victim)
                elif action == "pause":
                    lc.pause(victim)
                elif action == "partition":
                    rng.shuffle(ids)
                    k = rng.randint(1, len(ids) // 2)
                    lc.partition([ids[:k], ids[k:]])
                else:
                    lc.isolate(victim)
                n = w.total_acked()
                wait_until(lambda: w.total_acked() >= n + 20, 60,
                           what=f"progress during {action} of {victim}")
                if action in ("kill", "stop"):
                    lc.restart(victim)
                elif action == "pause":
                    lc.resume(victim)
                else:
                    lc.heal()
                lc.wait_for_leader(30)
        finally:
            w.finish()
        lc.heal()
        check_no_loss_no_dup(c, w)
        assert_replicas_identical(lc, c, table="acked", order="k", timeout=60)
        assert_replicas_identical(lc, c, table="log", order="id", timeout=60)
