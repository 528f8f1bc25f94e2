"""`ddb bench`: a quick load generator. N client threads share one thread-safe `Client` and
run a bounded number of operations (and never longer than --duration); prints one JSON object
with throughput and latency percentiles.

Kinds: `insert` (one single-row INSERT per op), `batch` (one request of --batch-size INSERTs
in a transaction per op), `read` (a point SELECT at --level per op; the table is filled first
if it has fewer than --rows rows). Rows go into the table --table (default ddb_bench), which
is left in place.
"""
from __future__ import annotations

import json
import os
import platform
import random
import sys
import threading
import time

from ddb_node.cli.cluster import CliError, resolve_addresses
from ddb_node.cli.output import error_line
from ddb_node.client import LEVELS, Client
from ddb_node.errors import DdbError


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def percentile(sorted_vals: list[float], q: float) -> float | None:
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


def _fill(client: Client, table: str, rows: int, payload: str) -> int:
    have = client.query(f"SELECT count(*), coalesce(max(id), 0) FROM {table}", level="weak")[0]
    count, top = have.values[0][0], have.values[1][0]
    while count < rows:
        n = min(500, rows - count)
        client.request([(f"INSERT INTO {table}(client, v) VALUES(?, ?)", [-1, payload])] * n,
                       transaction=True, level="weak")
        count += n
    have = client.query(f"SELECT coalesce(max(id), 0) FROM {table}", level="weak")[0]
    return int(have.values[0][0] or top or 0)


def run(addresses: list[str], *, clients: int = 4, ops: int = 1000, kind: str = "insert",
        level: str = "weak", batch_size: int = 100, duration: float = 60.0, rows: int = 1000,
        payload: int = 16, table: str = "ddb_bench", timeout: float = 10.0) -> dict:
    if kind not in ("insert", "batch", "read"):
        raise CliError(f"unknown kind {kind!r}: use insert, batch or read")
    if level not in LEVELS:
        raise CliError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
    if clients < 1 or ops < 1 or batch_size < 1:
        raise CliError("--clients, --ops and --batch-size must be at least 1")
    qt = _quote(table)
    value = "x" * payload
    client = Client(addresses, timeout=timeout, level=level)
    try:
        client.refresh()
        client.execute(f"CREATE TABLE IF NOT EXISTS {qt}(id INTEGER PRIMARY KEY, "
                       f"client INTEGER, v TEXT)")
        top = _fill(client, qt, rows, value) if kind == "read" else 0

        lock = threading.Lock()
        issued = [0]
        lat: list[float] = []
        errors: dict[str, int] = {}
        first_error: list[str] = []
        stop_at = time.monotonic() + duration

        def take() -> bool:
            with lock:
                if issued[0] >= ops or time.monotonic() >= stop_at:
                    return False
                issued[0] += 1
                return True

        def worker(cid: int) -> None:
            rng = random.Random(cid)
            mine: list[float] = []
            ins = f"INSERT INTO {qt}(client, v) VALUES(?, ?)"
            while take():
                t0 = time.perf_counter()
                try:
                    if kind == "insert":
                        client.execute(ins, [cid, value])
                    elif kind == "batch":
                        client.request([(ins, [cid, value])] * batch_size, transaction=True,
                                       level="weak")
                    else:
                        client.query(f"SELECT v FROM {qt} WHERE id = ?", [rng.randint(1, max(1, top))],
                                     level=level)
                except DdbError as e:
                    with lock:
                        errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1
                        if not first_error:
                            first_error.append(error_line(e))
                    continue
                mine.append(time.perf_counter() - t0)
            with lock:
                lat.extend(mine)

        threads = [threading.Thread(target=worker, args=(i + 1,), daemon=True) for i in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(duration + timeout + 5)
        elapsed = time.perf_counter() - t0
    finally:
        client.close()
    lat.sort()
    done = len(lat)

    def ms(v):
        return None if v is None else round(v * 1000, 3)

    out = {"kind": kind, "clients": clients, "level": level if kind == "read" else "weak",
           "ops": done, "errors": sum(errors.values()), "seconds": round(elapsed, 3),
           "ops_per_s": round(done / elapsed, 1) if elapsed > 0 else None,
           "p50_ms": ms(percentile(lat, 0.50)), "p90_ms": ms(percentile(lat, 0.90)),
           "p99_ms": ms(percentile(lat, 0.99)), "max_ms": ms(lat[-1] if lat else None),
           "nodes": len(addresses), "host": platform.node(), "cpus": os.cpu_count()}
    if kind == "batch":
        out["batch_size"] = batch_size
        out["rows_per_s"] = round(done * batch_size / elapsed, 1) if elapsed > 0 else None
    if errors:
        out["error_types"] = errors
        out["first_error"] = first_error[0]
    if issued[0] < ops:
        out["stopped_by_duration"] = True
    return out


def main(args) -> int:
    addrs = resolve_addresses(args.addresses, args.dir)
    res = run(addrs, clients=args.clients, ops=args.ops, kind=args.kind, level=args.level,
              batch_size=args.batch_size, duration=args.duration, rows=args.rows,
              payload=args.payload, table=args.table, timeout=args.timeout)
    print(json.dumps(res, indent=2 if sys.stdout.isatty() else None))
    if res["ops"] == 0:
        raise CliError(f"no operation succeeded: {res.get('first_error', 'unknown error')}")
    return 0
