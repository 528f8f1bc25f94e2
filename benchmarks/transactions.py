"""Interactive transactions: transfer throughput and conflict rate (issue 16).

A 3-node durable LocalCluster, `--accounts` accounts. Each of C client threads (its own
Client) runs transfers as interactive transactions for `--seconds`: BEGIN, read both
balances, write both, COMMIT, re-run on TransactionConflict (`run_transaction`). Reported
per client count: committed transfers per second, the conflict rate (conflicts per attempt),
the median and p99 latency of one committed transfer (retries included), and that the total
is unchanged. One JSON line per client count:

    python benchmarks/transactions.py [--clients 1,16] [--seconds 10] [--accounts 100] [--out FILE]

Conflicts are per table, so every transfer conflicts with every concurrent one: the rate at
16 clients measures that granularity, not the accounts chosen.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import random
import statistics
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ddb_node.cluster import LocalCluster  # noqa: E402
from ddb_node.errors import TransactionConflict  # noqa: E402


def transfer(tx, src, dst, amount):
    r = tx.query("SELECT id, balance FROM acct WHERE id IN (?, ?)", [src, dst])
    bal = dict(r.rows)
    tx.execute("UPDATE acct SET balance = ? WHERE id = ?", [bal[src] - amount, src])
    tx.execute("UPDATE acct SET balance = ? WHERE id = ?", [bal[dst] + amount, dst])


def run(lc, clients: int, seconds: float, accounts: int, retries: int) -> dict:
    stop = time.monotonic() + seconds
    lat: list[float] = []
    counts = {"ok": 0, "attempts": 0, "conflicts": 0, "gave_up": 0, "errors": 0}
    lock = threading.Lock()

    def worker(k):
        rng = random.Random(k)
        with lc.client(timeout=10.0) as c:
            while time.monotonic() < stop:
                src, dst = rng.sample(range(1, accounts + 1), 2)
                tries = [0]

                def fn(tx):
                    tries[0] += 1
                    transfer(tx, src, dst, rng.randint(1, 10))
                t0 = time.perf_counter()
                try:
                    c.run_transaction(fn, retries=retries)
                    ok = True
                except TransactionConflict:
                    ok = False
                except Exception:  # noqa: BLE001  counted
                    with lock:
                        counts["errors"] += 1
                    continue
                dt = time.perf_counter() - t0
                with lock:
                    counts["attempts"] += tries[0]
                    counts["conflicts"] += tries[0] - (1 if ok else 0)
                    if ok:
                        counts["ok"] += 1
                        lat.append(dt)
                    else:
                        counts["gave_up"] += 1
    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 60)
    wall = time.monotonic() - t0
    with lc.client() as c:
        total = c.query("SELECT sum(balance) FROM acct", level="linearizable")[0].rows[0][0]
    lat.sort()
    ms = lambda v: round(v * 1000, 1)  # noqa: E731
    return {"bench": "transactions", "clients": clients, "seconds": round(wall, 1),
            "accounts": accounts, "transfers_per_s": round(counts["ok"] / wall, 1),
            "conflict_rate": round(counts["conflicts"] / max(1, counts["attempts"]), 3),
            "median_ms": ms(statistics.median(lat)) if lat else None,
            "p99_ms": ms(lat[min(len(lat) - 1, int(len(lat) * 0.99))]) if lat else None,
            **counts, "total_ok": total == 1000 * accounts,
            "machine": f"{platform.machine()} {os.cpu_count()} cpu"}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--clients", default="1,16")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--accounts", type=int, default=100)
    ap.add_argument("--retries", type=int, default=100)
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    rows = []
    with LocalCluster(3) as lc:
        with lc.client() as c:
            c.execute("CREATE TABLE acct(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")
            c.execute("INSERT INTO acct VALUES " + ", ".join(f"({i}, 1000)"
                                                             for i in range(1, a.accounts + 1)))
        for n in [int(x) for x in a.clients.split(",")]:
            row = run(lc, n, a.seconds, a.accounts, a.retries)
            print(json.dumps(row), flush=True)
            rows.append(row)
    if a.out:
        with open(a.out, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
