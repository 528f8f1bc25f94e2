"""What a round trip from the event loop to a worker thread and back costs (CPU and wall),
for an empty job: `loop.run_in_executor` on a ThreadPoolExecutor against `server.lanes.Lane`
(a queue put, one `call_soon_threadsafe` back). The node's log writes and reads take this hop.

    .venv/bin/python benchmarks/thread_hop.py [--jobs 20000] [--repeat 3] [--json out.json]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ddb_node.server.lanes import Lane  # noqa: E402


def _job():
    return 1


async def _executor(ex, n):
    loop = asyncio.get_running_loop()
    for _ in range(n):
        await loop.run_in_executor(ex, _job)


async def _lane(lane, n):
    for _ in range(n):
        await lane.call(_job)


def measure(kind: str, n: int) -> tuple[float, float]:
    ex = ThreadPoolExecutor(1) if kind == "run_in_executor" else Lane(1, "hop")
    body = _executor if kind == "run_in_executor" else _lane
    t0, c0 = time.perf_counter(), time.process_time()
    asyncio.run(body(ex, n))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    ex.shutdown()
    return wall / n * 1e6, cpu / n * 1e6


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    out = {"benchmark": "thread_hop", "jobs": a.jobs}
    for kind in ("run_in_executor", "lane"):
        runs = [measure(kind, a.jobs) for _ in range(a.repeat)]
        wall, cpu = min(r[0] for r in runs), min(r[1] for r in runs)
        out[kind] = {"wall_us": round(wall, 1), "cpu_us": round(cpu, 1)}
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
