"""Failover as a client sees it (issue 12, part 3).

A 3-node durable LocalCluster under a steady write load (a few writer threads, each with its
own Client, one INSERT OR REPLACE after the other). The current leader is faulted `--rounds`
times per kind:

* `kill`: SIGKILL. The kernel closes the leader's connections; restarted afterwards.
* `stop`: SIGSTOP. Its connections stay up and nothing answers; SIGCONT afterwards.
* `isolate`: the transport's fault filters cut every peer link of the leader (clients still
  reach it; it can no longer commit); healed afterwards.

Per round and writer: the time from the fault to that writer's next write acknowledged by
another node (the client-observed gap; a write in flight at the fault counts). A round's gap
is its slowest writer's. After each round the node is brought back and the cluster settles
(the node has caught up, every writer acked again), each wait bounded in time; the whole run
is bounded by `--time-limit`. Prints one JSON line per fault kind (median, p99, max, n):

    python benchmarks/failover.py [--rounds 20] [--faults kill,stop,isolate] [--out FILE]
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

from ddb_node.cluster import LocalCluster  # noqa: E402
from ddb_node.server.options import ELECTION_TICK, HEARTBEAT_TICK, TICK_MS  # noqa: E402

VALUE = "v" * 100


def pct(xs: list[float], p: float) -> float | None:
    """Nearest-rank percentile (of 20 samples, p99 is the largest)."""
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, -(-len(xs) * p // 100) - 1))]


def summary(xs: list[float]) -> dict:
    ms = [x * 1000 for x in xs]
    r = lambda v: None if v is None else round(v, 1)   # noqa: E731
    return {"n": len(ms), "median_ms": r(statistics.median(ms)) if ms else None,
            "p99_ms": r(pct(ms, 99)), "max_ms": r(max(ms)) if ms else None}


class Writers:
    """Threads writing one row after the other; each keeps (ack time, answering node)."""

    def __init__(self, lc: LocalCluster, n: int, keys: int = 1000):
        self.lc, self.n, self.keys = lc, n, keys
        self.acks: list[list[tuple[float, int]]] = [[] for _ in range(n)]
        self.errors = [0] * n
        self.stop = threading.Event()
        self.cond = threading.Condition()
        self.threads = [threading.Thread(target=self._run, args=(w,), daemon=True) for w in range(n)]

    def start(self) -> "Writers":
        for t in self.threads:
            t.start()
        return self

    def _run(self, w: int) -> None:
        with self.lc.client(timeout=30.0) as c:
            i = 0
            while not self.stop.is_set():
                try:
                    r = c.execute("INSERT OR REPLACE INTO kv VALUES(?, ?)",
                                  [f"w{w}-{i % self.keys}", VALUE])
                except Exception:   # noqa: BLE001 - a write may time out during a fault: count it
                    self.errors[w] += 1
                    continue
                with self.cond:
                    self.acks[w].append((time.monotonic(), r.node))
                    del self.acks[w][:-200]     # only recent acks are ever asked about
                    self.cond.notify_all()
                i += 1

    def first_acks_after(self, t: float, not_node: int | None, timeout: float) -> list:
        """Per writer: (time, node) of its first ack after t from a node other than not_node,
        or None if none came within timeout."""
        deadline = time.monotonic() + timeout

        def firsts():
            return [next(((a, node) for a, node in acks if a > t and node != not_node), None)
                    for acks in self.acks]
        with self.cond:
            while True:
                got = firsts()
                left = deadline - time.monotonic()
                if all(g is not None for g in got) or left <= 0:
                    return got
                self.cond.wait(left)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(40)


FAULTS = {
    "kill": (LocalCluster.kill, lambda lc, n: lc.restart(n)),
    "stop": (LocalCluster.pause, lambda lc, n: lc.resume(n)),
    "isolate": (LocalCluster.isolate, lambda lc, n: lc.heal()),
}


def settle(lc: LocalCluster, writers: Writers, node: int, timeout: float) -> bool:
    """Wait (bounded) until `node` has caught up with the leader and every writer acked again."""
    deadline = time.monotonic() + timeout
    c = lc._admin_client()
    while time.monotonic() < deadline:
        try:
            leader = lc.wait_for_leader(max(0.1, deadline - time.monotonic()))
            lead, st = c.status(leader, timeout=1.0), c.status(node, timeout=1.0)
            if "error" not in st and st.get("leader") == leader \
                    and st.get("applied", 0) >= lead.get("commit", 1) - 200:
                now = time.monotonic()
                return all(a is not None for a in
                           writers.first_acks_after(now, None, max(0.1, deadline - now)))
        except Exception:   # noqa: BLE001 - the cluster may still be moving
            pass
        time.sleep(0.05)
    return False


def run_fault(lc: LocalCluster, writers: Writers, kind: str, rounds: int, round_timeout: float,
              stop_at: float, log) -> dict:
    fault, recover = FAULTS[kind]
    round_gaps, writer_gaps, details, failed = [], [], [], 0
    for rnd in range(rounds):
        if time.monotonic() > stop_at:
            log(f"{kind}: time limit reached after {rnd} rounds")
            break
        leader = lc.wait_for_leader(20)
        t0 = time.monotonic()
        fault(lc, leader)
        firsts = writers.first_acks_after(t0, leader, round_timeout)
        gaps = [None if a is None else a[0] - t0 for a in firsts]
        ok = [g for g in gaps if g is not None]
        if len(ok) < len(gaps):
            failed += 1
        else:
            round_gaps.append(max(ok))
        writer_gaps.extend(ok)
        new = min((a for a in firsts if a is not None), default=(None, None))[1]
        details.append({"round": rnd, "leader": leader, "new_leader": new,
                        "gaps_ms": [None if g is None else round(g * 1000, 1) for g in gaps]})
        log(f"{kind} {rnd}: leader {leader} -> {new}, gaps "
            + " ".join("-" if g is None else f"{g * 1000:.0f}" for g in gaps) + " ms")
        recover(lc, leader)
        if not settle(lc, writers, leader, 30.0):
            log(f"{kind} {rnd}: the cluster did not settle within 30 s")
    return {"fault": kind, **summary(round_gaps), "failed_rounds": failed,
            "writer_gaps": summary(writer_gaps), "rounds": details}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=20, help="faults per kind")
    ap.add_argument("--faults", default="kill,stop,isolate")
    ap.add_argument("--writers", type=int, default=4)
    ap.add_argument("--round-timeout", type=float, default=15.0,
                    help="longest wait for the writes after one fault")
    ap.add_argument("--time-limit", type=float, default=1200.0, help="seconds for the whole run")
    ap.add_argument("--tick-ms", type=int, default=TICK_MS)
    ap.add_argument("--election-tick", type=int, default=ELECTION_TICK)
    ap.add_argument("--heartbeat-tick", type=int, default=HEARTBEAT_TICK)
    ap.add_argument("--out", default=None, help="also append the JSON lines to this file")
    ap.add_argument("--quiet", action="store_true", help="no per-round progress on stderr")
    args = ap.parse_args(argv)

    def log(msg):
        if not args.quiet:
            print("# " + msg, file=sys.stderr, flush=True)

    stop_at = time.monotonic() + args.time_limit
    config = {"tick_ms": args.tick_ms, "election_tick": args.election_tick,
              "heartbeat_tick": args.heartbeat_tick, "writers": args.writers, "storage": "disk"}
    meta = {"python": platform.python_version(), "cpus": os.cpu_count(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    lines = []
    with LocalCluster(3, tick_ms=args.tick_ms, election_tick=args.election_tick,
                      heartbeat_tick=args.heartbeat_tick) as lc:
        with lc.client() as c:
            c.execute("CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT)")
        writers = Writers(lc, args.writers).start()
        try:
            for kind in [k for k in args.faults.split(",") if k]:
                res = run_fault(lc, writers, kind, args.rounds, args.round_timeout, stop_at, log)
                rec = {"system": "ddb", "measurement": "failover", **res, "config": config, **meta}
                rec["write_errors"] = sum(writers.errors)
                line = json.dumps(rec)
                print(line, flush=True)
                lines.append(line)
        finally:
            writers.finish()
    if args.out:
        with open(args.out, "a") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
