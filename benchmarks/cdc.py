"""Change data capture: what it costs to apply, and how soon a reader sees a change.

apply: entries/s and rows/s of StateMachine.apply_batch with capture on vs off, same entries,
  runs alternated, best of --repeat each (workloads: `single`, one single-row INSERT per
  entry; `session`, the same with a client session, as every Python client write carries;
  `multi`, 20 single-row INSERTs per entry; `update`, one UPDATE of 20 rows per entry).
latency: a 3-node LocalCluster, a reader on a follower (client.changes), a writer on the
  leader; for each of --writes writes, the time from the write's commit answer to the event
  at the reader (p50, p99). cluster_writes: write throughput of a 3-node cluster, capture
  on vs off (--writers threads x --per-writer INSERTs). Both skipped with --no-cluster.

    .venv/bin/python benchmarks/cdc.py [--entries 20000] [--repeat 3] [--writes 300] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import threading
import time

from ddb_node.sql import Request, StateMachine, Statement, encode_entry
from ddb_node.sql.changes import ChangeConfig

SCHEMA = "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, n INTEGER)"
INSERT = "INSERT INTO t(name, score, n) VALUES (?, ?, ?)"


def build(workload, entries):
    out = []
    for k in range(entries):
        idx = k + 3
        if workload in ("single", "session"):
            stmts = [Statement(INSERT, [f"name-{k}", k * 0.5, k])]
        elif workload == "multi":
            stmts = [Statement(INSERT, [f"name-{k}-{j}", j * 0.5, j]) for j in range(20)]
        else:
            lo = (k * 20) % 20_000
            stmts = [Statement("UPDATE t SET n = n + 1 WHERE id > ? AND id <= ?", [lo, lo + 20])]
        session = (f"client-{k % 16}", k // 16 + 1) if workload == "session" else None
        out.append((idx, 1, encode_entry(Request(stmts), timestamp_ms=1_700_000_000_000 + idx,
                                         seed=idx, session=session)))
    return out


def seed_rows():
    return encode_entry(Request([Statement(
        "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 20000) "
        "INSERT INTO t(name, score, n) SELECT 'seed', 0.5, i FROM c")]), timestamp_ms=0, seed=2)


def run_apply(dirname, entries, on, group):
    path = os.path.join(dirname, f"sm-{on}.db")
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    sm = StateMachine(path, changes=ChangeConfig(enabled=on))
    sm.apply_batch([(1, 1, encode_entry(Request([Statement(SCHEMA)]), timestamp_ms=0, seed=1)),
                    (2, 1, seed_rows())])
    t0 = time.perf_counter()
    for s in range(0, len(entries), group):
        sm.apply_batch(entries[s:s + group])
    dt = time.perf_counter() - t0
    size = sm.changes.bytes
    sm.close()
    return dt, size


def apply_bench(entries_n, repeat, group):
    out = {}
    with tempfile.TemporaryDirectory() as d:
        for workload in ("single", "session", "multi", "update"):
            entries = build(workload, entries_n)
            best = {True: float("inf"), False: float("inf")}
            size = 0
            for _ in range(repeat):
                for on in (False, True):
                    dt, sz = run_apply(d, entries, on, group)
                    best[on] = min(best[on], dt)
                    size = sz if on else size
            out[workload] = {
                "entries": entries_n, "group": group,
                "off_entries_per_s": round(entries_n / best[False]),
                "on_entries_per_s": round(entries_n / best[True]),
                "overhead_pct": round(100 * (best[True] - best[False]) / best[False], 1),
                "log_bytes": size,
            }
            print(workload, out[workload], file=sys.stderr)
    return out


def latency_bench(writes):
    from ddb_node.cluster import LocalCluster
    tmp = tempfile.mkdtemp(prefix="ddb-cdc-bench-")
    try:
        with LocalCluster(3, data_dir=tmp) as lc:
            leader = lc.wait_for_leader()
            follower = next(n for n in lc.node_ids() if n != leader)
            with lc.client() as c:
                c.execute("CREATE TABLE lat(id INTEGER PRIMARY KEY, t REAL)")
            seen: dict = {}
            done = threading.Event()

            def reader():
                with lc.client() as rc:
                    for ev in rc.changes(since=0, tables=["lat"], node=follower, timeout=30):
                        seen[ev.key] = time.perf_counter()
                        if len(seen) >= writes:
                            break
                done.set()
            th = threading.Thread(target=reader, daemon=True)
            th.start()
            sent, answered = {}, {}
            with lc.client() as c:
                deadline = time.monotonic() + 60
                for i in range(1, writes + 1):
                    sent[i] = time.perf_counter()
                    c.execute("INSERT INTO lat(id, t) VALUES (?, 0)", [i])
                    answered[i] = time.perf_counter()
                    if time.monotonic() > deadline:
                        break
            done.wait(30)
            if not seen:
                return {"error": "no events seen"}

            def pct(xs, p):
                xs = sorted(xs)
                return round(xs[min(len(xs) - 1, int(len(xs) * p))], 2)
            # the commit happens between the write's send and its answer: the event's delay
            # after the send bounds commit->event from above; after the answer (negative:
            # the event came first) from below
            after_send = [(seen[k] - sent[k]) * 1000 for k in answered if k in seen]
            after_answer = [(seen[k] - answered[k]) * 1000 for k in answered if k in seen]
            write = [(answered[k] - sent[k]) * 1000 for k in answered]
            return {"writes": len(answered), "events": len(after_send),
                    "reader": f"follower {follower}",
                    "event_after_send_ms": {"p50": pct(after_send, .5), "p99": pct(after_send, .99)},
                    "event_after_answer_ms": {"p50": pct(after_answer, .5),
                                              "p99": pct(after_answer, .99)},
                    "write_latency_ms": {"p50": pct(write, .5), "p99": pct(write, .99)}}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cluster_writes(on: bool, writers: int, per_writer: int) -> dict:
    """Write throughput of a real 3-node cluster with capture on or off: `writers` threads,
    each `per_writer` single-row INSERTs (one entry each), bounded at 120 s."""
    from ddb_node.cluster import LocalCluster
    tmp = tempfile.mkdtemp(prefix="ddb-cdc-bench-")
    try:
        with LocalCluster(3, data_dir=tmp, extra_args=("--changes", "on" if on else "off")) as lc:
            lc.wait_for_leader()
            with lc.client() as c:
                c.execute(SCHEMA)
            counts = [0] * writers
            deadline = time.monotonic() + 120

            def work(k):
                with lc.client() as c:
                    for i in range(per_writer):
                        if time.monotonic() > deadline:
                            return
                        c.execute(INSERT, [f"w{k}-{i}", 0.5, i])
                        counts[k] += 1
            threads = [threading.Thread(target=work, args=(k,)) for k in range(writers)]
            t0 = time.perf_counter()
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            dt = time.perf_counter() - t0
            return {"writes": sum(counts), "writes_per_s": round(sum(counts) / dt)}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def main(argv=None):
    ap = argparse.ArgumentParser()
    ap.add_argument("--entries", type=int, default=20_000)
    ap.add_argument("--group", type=int, default=100, help="entries per apply_batch")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--writes", type=int, default=300)
    ap.add_argument("--no-cluster", action="store_true")
    ap.add_argument("--writers", type=int, default=8)
    ap.add_argument("--per-writer", type=int, default=250)
    ap.add_argument("--json")
    a = ap.parse_args(argv)
    result = {"python": platform.python_version(), "machine": platform.machine(),
              "apply": apply_bench(a.entries, a.repeat, a.group)}
    if not a.no_cluster:
        result["latency"] = latency_bench(a.writes)
        runs = {True: [], False: []}
        for _ in range(2):                      # alternated: the machine's load drifts
            for on in (False, True):
                runs[on].append(cluster_writes(on, a.writers, a.per_writer)["writes_per_s"])
        off, on_ = max(runs[False]), max(runs[True])
        result["cluster_writes"] = {"writers": a.writers, "per_writer": a.per_writer,
                                    "off_writes_per_s": off, "on_writes_per_s": on_,
                                    "overhead_pct": round(100 * (off - on_) / off, 1),
                                    "runs": {"off": runs[False], "on": runs[True]}}
    text = json.dumps(result, indent=2)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
