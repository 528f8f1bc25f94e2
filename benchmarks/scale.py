"""How ddb behaves as the database grows (issue 13): one 3-node durable LocalCluster, grown to
each size in turn (10^4, 10^5, 10^6 rows of ~120 bytes; 10^7 with --huge), and at each size:

- bulk load rows/s (1,000-row INSERT batches, one client, as a new user would load)
- full scan time (an aggregate over every row, on the leader) and `SELECT *` time with the
  client's RSS (today's client; a failure, e.g. the frame limit, is reported as is)
- snapshot time (the `snapshot` admin call) and the write latency (max, p99) of single-row
  writes across automatic snapshots (`--snapshot-entries`, 3,000 as in the issue), against a
  control window of writes in which no node takes a snapshot (the machine's own noise)
- node RSS (every node, current and peak), the database size
- restart time of a follower (SIGTERM, start, until it has applied the leader's commit)
- time for a new node to join and catch up (by snapshot), its peak RSS; it is removed again
- failover time (SIGKILL the leader until a write succeeds on the new one)
- the term before and after every phase but the failover: it must not change

Every phase is bounded in count and time. Prints one JSON line per size (and appends them to
--out); --chart draws a log-log PNG of the JSON lines (matplotlib: `pip install .[bench]`).

    python benchmarks/scale.py [--sizes 10000,100000,1000000] [--huge] [--out F] [--chart F.png]
    python benchmarks/scale.py --chart-only F.jsonl --chart F.png
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ddb_node.cluster import LocalCluster  # noqa: E402
from ddb_node.errors import DdbError  # noqa: E402

BATCH = 1000
VALUE = "v" * 100             # with the key and the integer: ~120 bytes a row
INSERT = "INSERT INTO t(k, v, n) VALUES " + ",".join(["(?, ?, ?)"] * BATCH)


def rss_mb(pid: int | str = "self") -> tuple[float, float]:
    """(current, peak) resident set of a process, MB, from /proc."""
    cur = peak = 0.0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    return round(cur, 1), round(peak, 1)


def pct(xs: list[float], p: float) -> float | None:
    if not xs:
        return None
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while True:
        try:
            v = pred()
            if v:
                return v
        except DdbError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} within {timeout:g}s")
        time.sleep(0.02)


def term(lc, c) -> int:
    """The highest term any running node reports."""
    out = 0
    for i, n in lc.nodes.items():
        if n.state == "running":
            out = max(out, c.status(i, timeout=2.0).get("term", 0))
    return out


STALL_S = 10.0     # a batch slower than this gets every node's status (and stack) on stderr


def _report_stall(lc, row: int, c=None) -> None:
    """What every node is doing while one write hangs (an intermittent 60 s stall was seen
    near 10^7 rows): the writing client's view (whom it believes, and the nodes' real
    addresses), every node's status, and its Python stack when py-spy is installed."""
    import subprocess
    from ddb_node.client import Client
    print(f"scale: a write at row {row} is taking over {STALL_S:g}s", file=sys.stderr, flush=True)
    if c is not None:
        v = c.view
        print(f"scale: client view members={v.members} leader={v.leader} term={v.term}; "
              f"nodes {dict((i, n.client_addr) for i, n in lc.nodes.items())}",
              file=sys.stderr, flush=True)
    spy = shutil.which("py-spy") or os.path.join(os.path.dirname(sys.executable), "py-spy")
    with Client(lc.client_addresses(), timeout=5.0) as c2:
        for nid, n in lc.nodes.items():
            try:
                st = c2.status(nid, timeout=3.0)
                keep = ("role", "term", "leader", "commit", "applied", "durable_applied",
                        "log_first_index", "snapshot_index", "counters")
                print(f"scale: node {nid}", json.dumps({k: st.get(k) for k in keep}),
                      file=sys.stderr, flush=True)
            except Exception as e:  # noqa: BLE001  (a diagnosis must not fail the run)
                print(f"scale: node {nid}: no status ({e})", file=sys.stderr, flush=True)
            if n.pid and os.path.exists(spy):
                out = subprocess.run([spy, "dump", "-p", str(n.pid)], capture_output=True,
                                     text=True, timeout=30).stdout
                print(out[-4000:], file=sys.stderr, flush=True)


class StatusProbe:
    """Asks one node for its status every 50 ms on a thread of its own (its own client), for
    as long as a phase runs: the slowest answer says how long that node's loop was held (a
    snapshot being sent, a join), and a failed answer is counted, not fatal."""

    def __init__(self, lc, node_id: int):
        import threading
        from ddb_node.client import Client
        self._client = Client(lc.client_addresses(), timeout=10.0)
        self._node = node_id
        self._stop = threading.Event()
        self.latencies: list[float] = []
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            t = time.perf_counter()
            try:
                st = self._client.status(self._node, timeout=10.0)
                if "commit" not in st:
                    self.errors.append(json.dumps(st)[:200])
            except DdbError as e:
                self.errors.append(f"{type(e).__name__}: {e}"[:200])
            self.latencies.append(time.perf_counter() - t)

    def stop(self, prefix: str) -> dict:
        self._stop.set()
        self._thread.join()
        self._client.close()
        lat = self.latencies
        return {f"{prefix}_status_max_ms": round(max(lat) * 1000, 1) if lat else None,
                f"{prefix}_status_p99_ms": round(pct(lat, 99) * 1000, 1) if lat else None,
                f"{prefix}_status_errors": len(self.errors),
                **({f"{prefix}_status_first_error": self.errors[0]} if self.errors else {})}


def leader_commit(c, leader: int, time_limit: float) -> int:
    """The leader's commit index (its status may fail while it is busy: asked again)."""
    return wait(lambda: c.status(leader, timeout=5.0).get("commit"), time_limit,
                f"a status answer from the leader (node {leader})")


def load(c, start: int, stop: int, time_limit: float, lc=None) -> dict:
    import threading
    t0 = time.perf_counter()
    i = start
    while i < stop and time.perf_counter() - t0 < time_limit:
        params = []
        for j in range(i, i + BATCH):
            params += [f"key-{j:010d}", VALUE, j]
        timer = threading.Timer(STALL_S, _report_stall, (lc, i, c)) if lc is not None else None
        if timer is not None:
            timer.daemon = True
            timer.start()
        try:
            c.execute(INSERT, params, timeout=60)
        finally:
            if timer is not None:
                timer.cancel()
        i += BATCH
    dt = time.perf_counter() - t0
    return {"rows_loaded": i - start, "load_s": round(dt, 2),
            "load_rows_per_s": round((i - start) / dt) if dt else None, "rows": i}


def counters(c, node: int, time_limit: float = 30.0) -> dict:
    """A node's counters (its status may come back without them while it is busy, e.g. an
    error answer during an election: asked again)."""
    return wait(lambda: c.status(node, timeout=5.0).get("counters"), time_limit,
                f"a status answer with counters from node {node}")


def writes(lc, c, count: int, time_limit: float, prefix: str) -> dict:
    """Single-row writes from one client until `count` entries or the time limit."""
    leader = lc.wait_for_leader(10)
    before = counters(c, leader)["snapshots_taken"]
    lat = []
    errors = 0
    t0 = time.perf_counter()
    while len(lat) + errors < count and time.perf_counter() - t0 < time_limit:
        s = time.perf_counter()
        try:
            c.execute("INSERT INTO w(v) VALUES (?)", [VALUE])
            lat.append(time.perf_counter() - s)
        except DdbError:
            errors += 1
    after = counters(c, leader)["snapshots_taken"]
    return {f"{prefix}_ops": len(lat), f"{prefix}_errors": errors,
            f"{prefix}_p50_ms": round(pct(lat, 50) * 1000, 2) if lat else None,
            f"{prefix}_p99_ms": round(pct(lat, 99) * 1000, 2) if lat else None,
            f"{prefix}_max_ms": round(max(lat) * 1000, 2) if lat else None,
            f"{prefix}_snapshots": after - before}


def measure(lc, c, rows: int, args, rec: dict) -> dict:
    """Every phase at this size, into `rec` as it goes (a phase that fails leaves what the
    earlier ones measured, and main records the failure)."""
    leader = lc.wait_for_leader(10)
    data_db = os.path.join(lc.nodes[leader].data_dir, "data.db")
    rec["db_mb"] = round(sum(os.path.getsize(data_db + s) for s in ("", "-wal")
                             if os.path.exists(data_db + s)) / 1e6, 1)
    raft_db = os.path.join(lc.nodes[leader].data_dir, "raft.db")
    rec["raft_db_mb"] = round(sum(os.path.getsize(raft_db + s) for s in ("", "-wal")
                                  if os.path.exists(raft_db + s)) / 1e6, 1)
    rec["loadavg_1m"] = round(os.getloadavg()[0], 1)    # the machine is shared

    t = time.perf_counter()
    try:
        r = c.query("SELECT count(*), sum(length(v)), max(n) FROM t", level="weak", timeout=600)
        rec["scan_s"] = round(time.perf_counter() - t, 3)
        assert r[0].rows[0][0] == rows, (r[0].rows, rows)
    except DdbError as e:      # reads run on the node's loop, capped (issue 13, items 1-2)
        rec["scan_s"] = None
        rec["scan_error"] = f"{type(e).__name__}: {str(e)[:120]}"

    rss = {i: rss_mb(n.pid) for i, n in lc.nodes.items() if n.state == "running"}
    rec["node_rss_mb"] = max(v[0] for v in rss.values())
    rec["node_peak_rss_mb"] = max(v[1] for v in rss.values())

    if rows <= args.select_all_max:
        rss0 = rss_mb()[0]
        t = time.perf_counter()
        try:
            res = c.query("SELECT * FROM t", level="weak", timeout=600)
            rec["select_all_s"] = round(time.perf_counter() - t, 3)
            rec["select_all_rows"] = len(res[0].rows)
        except DdbError as e:
            rec["select_all_s"] = None
            rec["select_all_error"] = f"{type(e).__name__}: {str(e)[:120]}"
        rec["client_rss_mb"] = rss_mb()[0]
        rec["client_rss_delta_mb"] = round(rec["client_rss_mb"] - rss0, 1)
        res = None

    t0 = term(lc, c)
    t = time.perf_counter()
    c.admin(None, {"op": "snapshot"}, timeout=60)
    rec["snapshot_s"] = round(time.perf_counter() - t, 4)
    # control: a snapshot on every node now, then fewer writes than the snapshot interval,
    # so none falls in this window (the machine's own latency, for comparison)
    for i, n in lc.nodes.items():
        if n.state == "running":
            c.admin(i, {"op": "snapshot"}, timeout=60)
    rec.update(writes(lc, c, max(100, args.snapshot_entries - 500), args.time_limit, "control"))
    rec.update(writes(lc, c, args.writes, args.time_limit, "write"))
    rec["term_change_writes"] = term(lc, c) != t0

    # restart of a follower
    t0 = term(lc, c)
    follower = next(i for i, n in lc.nodes.items() if n.state == "running" and i != leader)
    lc.stop(follower)
    t = time.perf_counter()
    lc.restart(follower)
    target = leader_commit(c, leader, args.time_limit)
    wait(lambda: c.status(follower, timeout=1.0).get("applied", 0) >= target, args.time_limit,
         "the restarted follower to catch up")
    rec["follower_restart_s"] = round(time.perf_counter() - t, 2)
    rec["term_change_restart"] = term(lc, c) != t0

    # a new node joins and catches up (by snapshot: the log is compacted)
    t0 = term(lc, c)
    t = time.perf_counter()
    probe = StatusProbe(lc, leader)
    try:
        new = lc.add_node(timeout=args.time_limit * 4)
        target = leader_commit(c, leader, args.time_limit)
        wait(lambda: c.status(new, timeout=1.0).get("applied", 0) >= target, args.time_limit,
             "the new node to catch up")
        rec["join_catch_up_s"] = round(time.perf_counter() - t, 2)
    finally:
        rec.update(probe.stop("join_leader"))
    rec["join_snapshots_installed"] = counters(c, new)["snapshots_installed"]
    rec["join_node_peak_rss_mb"] = rss_mb(lc.nodes[new].pid)[1]
    rec["leader_peak_rss_mb"] = rss_mb(lc.nodes[leader].pid)[1]
    rec["term_change_join"] = term(lc, c) != t0
    lc.remove_node(new)
    shutil.rmtree(lc.nodes[new].data_dir, ignore_errors=True)

    # failover: kill the leader, time until a write succeeds
    leader = lc.wait_for_leader(10)
    lc.kill(leader)
    t = time.perf_counter()
    wait(lambda: c.execute("INSERT INTO w(v) VALUES ('failover')", timeout=2.0), args.time_limit,
         "a write after the leader was killed")
    rec["failover_s"] = round(time.perf_counter() - t, 2)
    lc.restart(leader)
    new_leader = lc.wait_for_leader(10)
    target = leader_commit(c, new_leader, args.time_limit)
    wait(lambda: c.status(leader, timeout=1.0).get("applied", 0) >= target, args.time_limit,
         "the killed leader to catch up")
    return rec


def chart(jsonl: str, png: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    recs = [json.loads(line) for line in open(jsonl) if line.strip()]
    recs.sort(key=lambda r: r["rows"])
    xs = [r["rows"] for r in recs]
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.8))
    times = [("scan_s", "full scan"), ("select_all_s", "SELECT * (today's client)"),
             ("snapshot_s", "snapshot (compaction)"), ("write_max_ms", "max write latency across snapshots"),
             ("control_max_ms", "max write latency, no snapshot"),
             ("follower_restart_s", "follower restart"), ("join_catch_up_s", "new node joins + catches up"),
             ("failover_s", "failover")]
    for key, label in times:
        pts = [(x, r[key] / (1000 if key.endswith("_ms") else 1)) for x, r in zip(xs, recs)
               if r.get(key)]
        if pts:
            a.plot(*zip(*pts), marker="o", label=label)
    a.axhline(0.1, color="grey", ls=":", lw=1)
    a.set(xscale="log", yscale="log", xlabel="rows", ylabel="seconds", title="time")
    a.legend(fontsize=7)
    mems = [("node_rss_mb", "node RSS"), ("node_peak_rss_mb", "node peak RSS"),
            ("join_node_peak_rss_mb", "joining node peak RSS"), ("client_rss_mb", "client RSS"),
            ("db_mb", "data.db size"), ("raft_db_mb", "raft.db (log) size")]
    for key, label in mems:
        pts = [(x, r[key]) for x, r in zip(xs, recs) if r.get(key)]
        if pts:
            b.plot(*zip(*pts), marker="o", label=label)
    b.set(xscale="log", yscale="log", xlabel="rows", ylabel="MB", title="memory and size")
    b.legend(fontsize=7)
    fig.suptitle("ddb, 3-node durable LocalCluster on loopback (benchmarks/scale.py)")
    fig.tight_layout()
    fig.savefig(png, dpi=110)


COLUMNS = [("rows", "rows", 0), ("db_mb", "data.db MB", 1), ("raft_db_mb", "raft.db MB", 1),
           ("load_rows_per_s", "bulk load rows/s", 0),
           ("scan_s", "full scan s", 3), ("select_all_s", "`SELECT *` s", 3),
           ("client_rss_delta_mb", "client RSS growth MB", 1), ("snapshot_s", "snapshot s", 4),
           ("control_max_ms", "write max ms, no snapshot", 1),
           ("write_p99_ms", "write p99 ms across snapshots", 1),
           ("write_max_ms", "write max ms across snapshots", 1), ("node_rss_mb", "node RSS MB", 1),
           ("join_node_peak_rss_mb", "joining node peak RSS MB", 1),
           ("leader_peak_rss_mb", "leader peak RSS MB", 1), ("follower_restart_s", "follower restart s", 2),
           ("join_catch_up_s", "new node catch-up s", 2), ("failover_s", "failover s", 2),
           ("loadavg_1m", "load avg", 1)]
TERM_KEYS = ("term_change_writes", "term_change_restart", "term_change_join")


def table(jsonl: str) -> str:
    """The README's table of a run, then each target of issue 13 and whether it was met."""
    recs = sorted((json.loads(line) for line in open(jsonl) if line.strip()), key=lambda r: r["rows"])

    def cell(r, key, nd):
        v = r.get(key)
        return "-" if v is None else (f"{v:,.0f}" if nd == 0 else f"{v:.{nd}f}")
    out = ["| " + " | ".join(label for _, label, _ in COLUMNS) + " | term changed |",
           "|" + "---|" * (len(COLUMNS) + 1)]
    for r in recs:
        changed = [k.removeprefix("term_change_") for k in TERM_KEYS if r.get(k)]
        out.append("| " + " | ".join(cell(r, k, nd) for k, _, nd in COLUMNS)
                   + f" | {', '.join(changed) or 'no'} |")
    by = {r["rows"]: r for r in recs}
    checks = []
    if 1_000_000 in by:
        m = by[1_000_000].get("write_max_ms")
        checks.append(f"max write latency across snapshots at 10^6 rows: {m} ms (target <= 100): "
                      + ("met" if m is not None and m <= 100 else "NOT met"))
    big = max(recs, key=lambda r: r.get("db_mb") or 0) if recs else None
    if big and big.get("join_catch_up_s") is not None:
        checks.append(f"new node catch-up on {big['db_mb']} MB: {big['join_catch_up_s']} s "
                      f"(target <= 30 s for 1 GB)" + ("" if big["db_mb"] >= 1000 else
                                                       " -- 1 GB needs --huge"))
    rss = [r["node_rss_mb"] for r in recs if r["rows"] >= 100_000 and r.get("node_rss_mb")]
    if len(rss) >= 2:
        checks.append(f"node RSS from 10^5 rows up: {min(rss)}-{max(rss)} MB (target within 2x): "
                      + ("met" if max(rss) <= 2 * min(rss) else "NOT met"))
    changed = [r["rows"] for r in recs if any(r.get(k) for k in TERM_KEYS)]
    checks.append("term changes outside the failover phase: "
                  + (f"at {changed} rows (target none)" if changed else "none (target none): met"))
    return "\n".join(out) + "\n\n" + "\n".join(f"- {c}" for c in checks) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="10000,100000,1000000")
    ap.add_argument("--huge", action="store_true", help="also 10^7 rows (~1.2 GB, ~10 minutes)")
    ap.add_argument("--snapshot-entries", type=int, default=3000)
    ap.add_argument("--writes", type=int, default=7000, help="single-row writes across snapshots")
    ap.add_argument("--time-limit", type=float, default=120.0, help="per phase, seconds")
    ap.add_argument("--select-all-max", type=int, default=1_000_000,
                    help="largest size at which SELECT * is tried")
    ap.add_argument("--out", default=None, help="append the JSON lines to this file")
    ap.add_argument("--chart", default=None, help="draw the JSON lines of --out (or --chart-only) here")
    ap.add_argument("--chart-only", default=None, help="a JSON lines file to chart, nothing run")
    ap.add_argument("--data-dir", default=None,
                    help="keep the nodes' data and logs here (default: a temporary directory)")
    ap.add_argument("--table", default=None, help="print the markdown table of a JSON lines file")
    args = ap.parse_args(argv)
    if args.table:
        print(table(args.table), end="")
        return 0
    if args.chart_only:
        chart(args.chart_only, args.chart)
        return 0
    sizes = [int(x) for x in args.sizes.split(",") if x]
    if args.huge:
        sizes.append(10_000_000)
    meta = {"python": platform.python_version(), "cpus": os.cpu_count(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%S"), "snapshot_entries": args.snapshot_entries}
    with LocalCluster(3, data_dir=args.data_dir, snapshot_entries=args.snapshot_entries) as lc:
        c = lc.client(timeout=30.0)
        c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, k TEXT, v TEXT, n INTEGER)")
        c.execute("CREATE TABLE w(id INTEGER PRIMARY KEY, v TEXT)")
        rows = 0
        for size in sorted(sizes):
            rec = {"system": "ddb", "measurement": "scale", **meta}
            t0 = term(lc, c)
            rec.update(load(c, rows, size, args.time_limit * 10, lc))
            rec["term_change_load"] = term(lc, c) != t0
            rows = rec["rows"]
            try:
                measure(lc, c, rows, args, rec)
            except (DdbError, TimeoutError, KeyError) as e:
                rec["error"] = f"{type(e).__name__}: {str(e)[:300]}"
            line = json.dumps(rec)
            print(line, flush=True)
            if args.out:
                with open(args.out, "a") as f:
                    f.write(line + "\n")
        c.close()
    if args.chart and args.out:
        chart(args.out, args.chart)
    return 0


if __name__ == "__main__":
    sys.exit(main())
