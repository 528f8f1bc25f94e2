"""Crash consistency on real node processes.

1. kill -9 at random points during a concurrent write load (a random node, the leader, two
   nodes at once, the whole cluster), restart from the data directories: every acknowledged
   write present, none applied twice, replicas identical, and every database file the kills
   left behind passes PRAGMA integrity_check.
2. Power loss: the same, but each victim is restarted from an image of its disk as synced
   (everything written after the last fsync/fdatasync is dropped; see ddb_node.chaos.crash),
   for a follower, the leader, and the whole cluster at once.
"""
from __future__ import annotations

import glob
import os
import random
import shutil
import threading
import time

import pytest

from ddb_node.chaos.checkers import check_convergence
from ddb_node.chaos.crash import PowerLossCluster, integrity_check
from ddb_node.cluster import LocalCluster
from ddb_node.errors import DdbError, StatementError

pytestmark = pytest.mark.timeout(400)


class Writers:
    """Each write inserts a unique value into `items` (PRIMARY KEY) and `wlog` (no
    constraint) in one transaction: a lost ack shows in `items`, a double apply in `wlog`."""

    def __init__(self, lc, n=4):
        self.lc = lc
        self.acked, self.unknown, self.errors = set(), set(), []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run, args=(w,), daemon=True) for w in range(n)]

    def run(self, w):
        c = self.lc.client(timeout=8.0, attempt_timeout=1.0)
        i = 0
        try:
            while not self.stop.is_set():
                v = f"w{w}-{i}"
                try:
                    c.request([("INSERT INTO items(v) VALUES(?)", [v]),
                               ("INSERT INTO wlog(v) VALUES(?)", [v])], transaction=True)
                    self.acked.add(v)
                except StatementError as e:
                    self.errors.append((v, str(e)))
                except DdbError:
                    self.unknown.add(v)
                i += 1
        finally:
            c.close()

    def __enter__(self):
        with self.lc.client(timeout=30.0) as c:
            c.execute("CREATE TABLE IF NOT EXISTS items(v TEXT PRIMARY KEY)")
            c.execute("CREATE TABLE IF NOT EXISTS wlog(id INTEGER PRIMARY KEY, v TEXT)")
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(30)

    def wait_progress(self, n=20, timeout=30.0):
        target = len(self.acked) + n
        deadline = time.monotonic() + timeout
        while len(self.acked) < target:
            assert time.monotonic() < deadline, f"no progress: {len(self.acked)} acked"
            time.sleep(0.05)


def verify(lc, w: Writers):
    assert not w.errors, f"a retried write was applied twice (constraint error): {w.errors[:3]}"
    assert lc.crashed() == []
    with lc.client(timeout=60.0) as c:
        items = {r[0] for r in c.query("SELECT v FROM items", level="linearizable")[0].rows}
        lost = w.acked - items
        assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {sorted(lost)[:5]}"
        assert not items - w.acked - w.unknown, "rows that nobody wrote"
        dup = c.query("SELECT v, count(*) FROM wlog GROUP BY v HAVING count(*) > 1",
                      level="linearizable")[0].rows
        assert dup == [], f"applied twice: {dup[:5]}"
        conv = check_convergence(lc, c, ["items", "wlog"])
        assert conv["valid"], conv["anomalies"]
    return len(w.acked)


def check_files(d: str) -> None:
    for f in glob.glob(os.path.join(d, "*.db")):
        res = integrity_check(f)
        assert res == "ok", f"{f}: {res}"


def _restart_all(lc):
    for i, n in lc.nodes.items():
        if n.state in ("killed", "stopped"):
            lc.restart(i)


def test_kill9_at_random_points(tmp_path):
    rng = random.Random(7)
    with LocalCluster(3, str(tmp_path / "c")) as lc, Writers(lc) as w:
        w.wait_progress()
        images = 0
        for rnd in range(10):
            time.sleep(rng.uniform(0.05, 1.0))
            kind = rng.choice(["one", "one", "leader", "leader", "two", "all"] if rnd else ["all"])
            lead = lc.leader() or 1
            ids = {"one": [rng.choice(list(lc.nodes))], "leader": [lead],
                   "two": rng.sample(list(lc.nodes), 2), "all": list(lc.nodes)}[kind]
            for i in ids:
                lc.kill(i)
            for i in ids:       # what the kill left on disk must be a sound database
                img = str(tmp_path / f"img{images}")
                shutil.copytree(lc.nodes[i].data_dir, img)
                check_files(img)
                shutil.rmtree(img)
                images += 1
            time.sleep(rng.uniform(0.0, 0.5))
            _restart_all(lc)
            lc.wait_for_leader(30)
            w.wait_progress(10)
        w.__exit__()
        n = verify(lc, w)
        assert n > 100
    for d in glob.glob(str(tmp_path / "c" / "node*")):
        if os.path.isdir(d):
            check_files(d)


def test_power_loss_drops_unsynced_data_without_losing_acks(tmp_path, shim):
    rng = random.Random(11)
    with PowerLossCluster(3, str(tmp_path / "c"), shim=shim) as lc, Writers(lc) as w:
        w.wait_progress(40)
        dropped = 0
        plan = ["follower", "leader", "all", "follower", "leader", "all"]
        for kind in plan:
            time.sleep(rng.uniform(0.1, 1.0))
            lead = lc.leader() or 1
            ids = {"follower": [rng.choice([i for i in lc.nodes if i != lead])], "leader": [lead],
                   "all": list(lc.nodes)}[kind]
            report = lc.power_loss(ids)
            dropped += sum(sum(r.values()) for r in report.values())
            print(f"power loss {kind} {ids}: dropped {report}")
            lc.wait_for_leader(30)
            w.wait_progress(15)
        w.__exit__()
        verify(lc, w)
        assert dropped > 0, "the simulation never dropped unsynced data: it tested nothing"
        assert any(os.path.getsize(lc.sync_log(i)) > 0 for i in lc.nodes), "the shim recorded no sync"
    for d in glob.glob(str(tmp_path / "c" / "node*")):
        if os.path.isdir(d):
            check_files(d)
