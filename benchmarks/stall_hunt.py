"""A bounded hunt for issue 13's intermittent 60 s write stall (seen three times in
`scale.py --huge`, while loading toward 10^7 rows after the 10^6 phase).

Each round repeats the 10^6 phase's sequence on a small, growing database -- batch writes,
a snapshot on the leader, single-row writes, a follower stopped and restarted, a fourth node
joined (the client asks it for its status, so it may learn it) and removed with its data
deleted, the leader killed, a write retried until it is acknowledged, the old leader
restarted -- then batch writes with the same client for 6 s, every write timed. It prints
the slowest write of each round; a stall shows as a round near 60 s.

    python benchmarks/stall_hunt.py [ROUNDS]      # default 5; about 10 s a round

2026-12-02: 8 rounds, 4.7 M rows, slowest write after a round 17-30 ms: not reproduced.
"""
import shutil
import sys
import time

from ddb_node.cluster import LocalCluster

BATCH = 200
INSERT = "INSERT INTO t(k, v, n) VALUES " + ",".join(["(?, ?, ?)"] * BATCH)
VALUE = "v" * 100
rounds = min(int(sys.argv[1]) if len(sys.argv) > 1 else 5, 200)
worst = []
with LocalCluster(3, snapshot_entries=300) as lc:
    c = lc.client(timeout=30.0)
    c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v TEXT, n INTEGER)")
    c.execute("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
    j = 0

    def load(seconds):
        global j
        t_end = time.monotonic() + seconds
        mx = 0.0
        while time.monotonic() < t_end:
            params = []
            for k in range(j, j + BATCH):
                params += [f"key-{k:010d}", VALUE, k]
            s = time.monotonic()
            c.execute(INSERT, params, timeout=60)
            mx = max(mx, time.monotonic() - s)
            j += BATCH
        return mx

    for r in range(rounds):
        load(3)
        leader = lc.wait_for_leader(10)
        c.admin(None, {"op": "snapshot"}, timeout=60)
        for _ in range(200):
            c.execute("INSERT INTO w(v) VALUES (?)", [VALUE])
        follower = next(i for i, n in lc.nodes.items() if n.state == "running" and i != leader)
        lc.stop(follower)
        lc.restart(follower)
        new = lc.add_node(timeout=60)
        c.status(new, timeout=5.0)
        lc.remove_node(new)
        shutil.rmtree(lc.nodes[new].data_dir, ignore_errors=True)
        leader = lc.wait_for_leader(10)
        lc.kill(leader)
        t = time.monotonic()
        while True:
            try:
                c.execute("INSERT INTO w(v) VALUES ('failover')", timeout=2.0); break
            except Exception:      # noqa: BLE001  no leader yet: try again, 30 s at most
                if time.monotonic() - t > 30:
                    raise
        lc.restart(leader)
        lc.wait_for_leader(10)
        mx = load(6)
        worst.append(round(mx, 3))
        print(f"round {r}: kill to the end of the round {time.monotonic() - t:.2f}s, slowest "
              f"write after it {mx * 1e3:.0f} ms, rows {j}", flush=True)
print("worst per round:", worst)
