"""End-to-end benchmark of a 3-node durable ddb cluster on loopback (issue 4, item 12).

Same workload contract as ../shared/peers (etcd_bench.py, dqlite_bench.py): 100-byte values,
short keys, one Python process with a thread per client and its own connection, all writes
to the leader, ops/s = successful ops / wall time, p50/p99 over successful ops. Every
measurement is bounded in count and in time. Prints one JSON line per measurement.

    python benchmarks/cluster.py [--write-ops 20000] [--time-limit 30] [--clients 1,16,64]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from cpu import CpuMeter  # noqa: E402

from ddb_node.cluster import LocalCluster  # noqa: E402

VALUE = "v" * 100


def _pct(xs, p):
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100.0 * (len(xs) - 1))))]


def run_load(lc, clients: int, ops: int, time_limit: float, make_op) -> dict:
    """`clients` threads, each with its own Client, sharing `ops` operations."""
    lat: list[float] = []
    errors = [0]
    lock = threading.Lock()
    counter = iter(range(ops))
    deadline = time.monotonic() + time_limit
    barrier = threading.Barrier(clients + 1)

    def worker(w: int):
        c = lc.client(timeout=10.0)
        op = make_op(c, w)
        mine: list[float] = []
        try:
            op(-1)   # warm up: discover the leader, open the socket
        except Exception:
            pass
        barrier.wait()
        while time.monotonic() < deadline:
            with lock:
                i = next(counter, None)
            if i is None:
                break
            t0 = time.perf_counter()
            try:
                op(i)
                mine.append(time.perf_counter() - t0)
            except Exception:
                with lock:
                    errors[0] += 1
        with lock:
            lat.extend(mine)
        c.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    for t in threads:
        t.start()
    barrier.wait()
    t0 = time.perf_counter()
    # the load generator's CPU next to the nodes': near one core it is the bottleneck itself
    with CpuMeter({n: p.pid for n, p in lc.nodes.items() if p.pid}) as cpu:
        for t in threads:
            t.join()
    wall = time.perf_counter() - t0
    return {"ops": len(lat), "errors": errors[0], "seconds": round(wall, 3),
            "ops_per_s": round(len(lat) / wall, 1) if wall else None,
            "p50_ms": round(_pct(lat, 50) * 1000, 3) if lat else None,
            "p99_ms": round(_pct(lat, 99) * 1000, 3) if lat else None,
            "capped": len(lat) + errors[0] < ops, **cpu.result()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seq-ops", type=int, default=2000)
    ap.add_argument("--write-ops", type=int, default=20000)
    ap.add_argument("--read-ops", type=int, default=20000)
    ap.add_argument("--batch-ops", type=int, default=300, help="100-row batches")
    ap.add_argument("--clients", default="16,64")
    ap.add_argument("--read-clients", type=int, default=16)
    ap.add_argument("--time-limit", type=float, default=30.0)
    ap.add_argument("--levels", default="none,weak,linearizable,strong")
    ap.add_argument("--out", default=None, help="also append the JSON lines to this file")
    args = ap.parse_args(argv)

    meta = {"python": platform.python_version(), "machine": platform.machine(),
            "cpus": os.cpu_count(), "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    lines = []

    def emit(name, clients, res, **extra):
        rec = {"system": "ddb", "measurement": name, "clients": clients, **res, **extra, **meta}
        line = json.dumps(rec)
        print(line, flush=True)
        lines.append(line)

    with LocalCluster(3) as lc:
        setup = lc.client()
        setup.execute("CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT)")
        setup.execute("CREATE TABLE rows(id INTEGER PRIMARY KEY, v TEXT)")

        def put_seq(c, w):
            return lambda i: c.execute("INSERT OR REPLACE INTO kv VALUES(?, ?)", [f"s-{max(i, 0)}", VALUE])

        emit("put_seq", 1, run_load(lc, 1, args.seq_ops, args.time_limit, put_seq))

        for n in [int(x) for x in args.clients.split(",") if x]:
            def put(c, w, n=n):
                return lambda i: c.execute("INSERT OR REPLACE INTO kv VALUES(?, ?)",
                                           [f"p{n}-{w}-{i}", VALUE])
            emit("put", n, run_load(lc, n, args.write_ops, args.time_limit, put))

        sql100 = "INSERT INTO rows(v) VALUES " + ",".join(["(?)"] * 100)

        def batch(c, w):
            return lambda i: c.execute(sql100, [VALUE] * 100)

        res = run_load(lc, 16, args.batch_ops, args.time_limit, batch)
        res["rows_per_s"] = round(res["ops_per_s"] * 100, 1) if res["ops_per_s"] else None
        emit("batch100", 16, res)

        for level in [x for x in args.levels.split(",") if x]:
            def get(c, w, level=level):
                return lambda i: c.query("SELECT v FROM kv WHERE k = ?", [f"s-{abs(i) % args.seq_ops}"],
                                         level=level)
            emit(f"get_{level}", args.read_clients,
                 run_load(lc, args.read_clients, args.read_ops, args.time_limit, get))
        setup.close()
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
