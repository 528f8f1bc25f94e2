"""No fault, heavy load: does the cluster keep its leader? (issue 12, part 3)

Short election timeouts make failover fast but must not fire on their own when a loaded
2-core machine delays a heartbeat. This runs `--clients` writers (default 64, the
benchmarks/cluster.py load generator: a thread and a Client each, INSERT OR REPLACE over a
bounded key set so the database and its snapshots stay small) for `--seconds` (default
600) against a 3-node durable cluster, samples every node's term every few seconds, and
prints one JSON line: term changes (target 0), leader changes, throughput, latency, the
longest leader silence each follower saw (`leader_gap_max_ms`, to set against the election
timeout), and who used the CPU (the load generator included).

    python benchmarks/soak.py [--seconds 600] [--clients 64] [--out FILE]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from cluster import VALUE, run_load  # noqa: E402
from cpu import CpuMeter  # noqa: E402

from ddb_node.cluster import LocalCluster  # noqa: E402
from ddb_node.server.options import ELECTION_TICK, HEARTBEAT_TICK, TICK_MS  # noqa: E402


def sample(lc: LocalCluster) -> dict:
    """{node: (term, role, leader, leader_gap_max_ms)} of the nodes that answer."""
    out = {}
    for nid, st in lc.status().items():
        if "term" in st:
            out[nid] = (st["term"], st.get("role"), st.get("leader"),
                        (st.get("counters") or {}).get("leader_gap_max_ms"))
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=600.0)
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--keys", type=int, default=500, help="distinct keys per client")
    ap.add_argument("--every", type=float, default=5.0, help="seconds between term samples")
    ap.add_argument("--tick-ms", type=int, default=TICK_MS)
    ap.add_argument("--election-tick", type=int, default=ELECTION_TICK)
    ap.add_argument("--heartbeat-tick", type=int, default=HEARTBEAT_TICK)
    ap.add_argument("--snapshot-entries", type=int, default=20_000,
                    help="snapshot every N applied entries (the node's default)")
    ap.add_argument("--out", default=None, help="also append the JSON line to this file")
    args = ap.parse_args(argv)

    with LocalCluster(3, tick_ms=args.tick_ms, election_tick=args.election_tick,
                      heartbeat_tick=args.heartbeat_tick,
                      snapshot_entries=args.snapshot_entries) as lc:
        with lc.client() as c:
            c.execute("CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT)")
        first = sample(lc)
        samples, done = [], threading.Event()

        def sampler():
            while not done.wait(args.every):
                try:
                    samples.append(sample(lc))
                except Exception as e:   # noqa: BLE001 - report, never stop the load
                    samples.append({"error": repr(e)})

        def put(c, w):
            return lambda i: c.execute("INSERT OR REPLACE INTO kv VALUES(?, ?)",
                                       [f"k{w}-{abs(i) % args.keys}", VALUE])

        t = threading.Thread(target=sampler, daemon=True)
        t.start()
        with CpuMeter({n: p.pid for n, p in lc.nodes.items()}) as cpu:
            res = run_load(lc, args.clients, 10**9, args.seconds, put)
        done.set()
        t.join(30)
        last = sample(lc)

    terms = [max(v[0] for v in s.values()) for s in [first, *samples, last] if s and "error" not in s]
    leaders = [next((v[2] for v in s.values() if v[1] == "leader"), None)
               for s in [first, *samples, last] if s and "error" not in s]
    changes = sum(1 for a, b in zip(leaders, leaders[1:]) if a != b)
    rec = {"system": "ddb", "measurement": "soak", "clients": args.clients, **res,
           "term_start": terms[0], "term_end": terms[-1], "term_changes": terms[-1] - terms[0],
           "leader_changes_sampled": changes, "samples": len(samples),
           "sample_errors": sum(1 for s in samples if "error" in s),
           "leader_gap_max_ms": {str(n): v[3] for n, v in sorted(last.items())},
           **cpu.result(),
           "config": {"tick_ms": args.tick_ms, "election_tick": args.election_tick,
                      "heartbeat_tick": args.heartbeat_tick, "keys_per_client": args.keys,
                      "snapshot_entries": args.snapshot_entries},
           "python": platform.python_version(), "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    line = json.dumps(rec)
    print(line, flush=True)
    if args.out:
        with open(args.out, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
