"""Turn one benchmark session's result files into the README's report: the Python-client
table against etcd and dqlite, the HTTP (wrk) table against etcd's gateway, failover, soak,
SQL apply and scale, then every target of issue 12 with its value and met / not met; with
matplotlib, a grouped bar chart of ddb against etcd and dqlite for each throughput row.

    python benchmarks/compare.py benchmarks/results/<session> [--chart F.png]

Reads what the session has (ddb.jsonl, etcd.jsonl, dqlite.jsonl, http.jsonl,
failover.jsonl, soak.jsonl, core.json, sql_apply.json, scale.jsonl) and leaves out the
parts whose file is missing, so older sessions still print their tables.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

# (ddb measurement, clients) -> the peers' comparable measurement
ROWS = [
    ("put_seq", 1, "single-client INSERT / put", {"etcd": "put_seq", "dqlite": "put_seq"}),
    ("put", 16, "INSERT / put, 16 clients", {"etcd": "put", "dqlite": "put"}),
    ("put", 64, "INSERT / put, 64 clients", {"etcd": "put", "dqlite": "put"}),
    ("batch100", 16, "100-row batch INSERT, 16 clients (rows/s)", {}),
    ("get_none", 16, "read, level none / serializable", {"etcd": "get_serializable", "dqlite": "get"}),
    ("get_weak", 16, "read, level weak", {}),
    ("get_linearizable", 16, "read, linearizable", {"etcd": "get_linearizable"}),
    ("get_strong", 16, "read, strong (through the log)", {}),
]

# HTTP with wrk (benchmarks/http_wrk.py): (ddb measurement, connections, etcd measurement, label)
HTTP_ROWS = [
    ("put", 16, "put", "INSERT / put, 16 connections"),
    ("put", 64, "put", "INSERT / put, 64 connections"),
    ("get_linearizable", 16, "get_linearizable", "read, linearizable / linearizable get"),
    ("get_weak", 16, "get_serializable", "read, level weak / serializable get"),
    ("get_none", 16, "get_serializable", "read, level none / serializable get"),
]

# issue 12's targets
HTTP_TARGET = 2.0               # ddb/etcd over HTTP, every row of HTTP_ROWS
PY_TARGET = 1.5                 # ddb/etcd, Python client, 64-client puts and linearizable reads
FAILOVER_MEDIAN_MS = 300.0
FAILOVER_P99_MS = 1000.0
FAILOVER_ROUNDS = 20
WRK_MAX_CORES = 0.3             # wrk at or below this: the load generator is not the bottleneck


def load(path: str) -> list[dict]:
    """The JSON objects of a file: one per line, or one spread over several (sql_apply.json)."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        text = f.read()
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            try:
                out.append(json.loads(line))
            except ValueError:
                pass
    if not out and text.strip().startswith("{"):
        try:
            out.append(json.loads(text))
        except ValueError:
            pass
    return out


def pick(recs, measurement, clients, client="python-http.client"):
    """ddb's record (cluster.py: "system": "ddb") or a peer's per-run record (etcd_bench.py,
    dqlite_bench.py: "run", not the "summary" line) of one measurement."""
    for r in recs:
        if r.get("measurement") != measurement or r.get("clients") != clients:
            continue
        if r.get("system") == "ddb":
            return r
        if r.get("client", client) == client and "ops_per_s" in r and "run" in r:
            return r
    return None


def pick_http(recs, peer, measurement, clients):
    """One wrk measurement of `peer` in http.jsonl (the first, if it was written twice)."""
    for r in recs:
        if r.get("peer") == peer and r.get("client") == "wrk" and not r.get("summary") \
                and r.get("measurement") == measurement and r.get("clients") == clients:
            return r
    return None


def fmt(v, nd=0):
    if v is None:
        return "-"
    return f"{v:,.{nd}f}"


def ratio(a, b):
    return a / b if a and b else None


def verdict(ok):
    return "-" if ok is None else ("met" if ok else "**not met**")


class Targets:
    """Issue 12's targets as the report goes: (what, value, target, met or None)."""

    def __init__(self):
        self.rows: list[tuple[str, str, str, bool | None]] = []

    def add(self, what, value, target, ok):
        self.rows.append((what, value, target, ok))

    def markdown(self) -> str:
        out = ["| target (issue 12) | this session | target | |", "|---|---|---|---|"]
        for what, value, target, ok in self.rows:
            out.append(f"| {what} | {value} | {target} | {verdict(ok)} |")
        met = sum(1 for r in self.rows if r[3])
        known = sum(1 for r in self.rows if r[3] is not None)
        return "\n".join(out) + f"\n\n{met} of {known} targets met.\n"


def cores(r) -> float | None:
    n = r.get("node_cpu_cores")
    return round(sum(n.values()), 2) if isinstance(n, dict) and n else None


def python_table(ddb, peers, targets: Targets) -> str:
    cpu = any("loadgen_cpu_cores" in r for r in ddb)
    head = ("| measurement | ddb ops/s | ddb p50 / p99 ms | etcd ops/s | etcd p50 ms | ddb/etcd | "
            "dqlite ops/s | ddb/dqlite |")
    sep = "|---|---|---|---|---|---|---|---|"
    if cpu:
        head += " ddb cores: load generator / 3 nodes | etcd cores: 3 nodes + load generator |"
        sep += "---|---|"
    out = [head, sep]
    for meas, clients, label, peer_names in ROWS:
        r = pick(ddb, meas, clients)
        if r is None:
            continue
        ops = r.get("rows_per_s") if meas == "batch100" else r.get("ops_per_s")
        cells = [label, fmt(ops), f"{fmt(r.get('p50_ms'), 2)} / {fmt(r.get('p99_ms'), 1)}"]
        etcd = None
        for peer in ("etcd", "dqlite"):
            pm = peer_names.get(peer)
            pr = pick(peers[peer], pm, clients) if pm else None
            pops = pr.get("ops_per_s") if pr else None
            q = ratio(ops, pops)
            if peer == "etcd":
                etcd = pr
                cells += [fmt(pops), fmt(pr.get("p50_ms"), 2) if pr else "-", fmt(q, 2)]
            else:
                cells += [fmt(pops), fmt(q, 2)]
        if cpu:
            cells += [f"{fmt(r.get('loadgen_cpu_cores'), 2)} / {fmt(cores(r), 2)}",
                      fmt((etcd or {}).get("own_cpu_cores"), 2)]
        out.append("| " + " | ".join(cells) + " |")

    def row(meas, clients, peer_meas):
        r, e = pick(ddb, meas, clients), pick(peers["etcd"], peer_meas, clients)
        return r, e, ratio((r or {}).get("ops_per_s"), (e or {}).get("ops_per_s"))

    for meas, clients, what in (("put", 64, "Python client: INSERT / put, 64 clients, ddb/etcd"),
                                ("get_linearizable", 16, "Python client: linearizable reads, ddb/etcd")):
        r, e, q = row(meas, clients, meas)
        if r and e:
            targets.add(what, f"{q:.2f}x ({fmt(r['ops_per_s'])} vs {fmt(e['ops_per_s'])}/s)",
                        f">= {PY_TARGET}x", q >= PY_TARGET)
    r, e = pick(ddb, "put_seq", 1), pick(peers["etcd"], "put_seq", 1)
    if r and e and r.get("p50_ms") is not None and e.get("p50_ms") is not None:
        targets.add("Python client: single-client write p50",
                    f"{r['p50_ms']:.2f} ms vs etcd {e['p50_ms']:.2f} ms",
                    "<= etcd's", r["p50_ms"] <= e["p50_ms"])
    text = "\n".join(out) + "\n"
    lg = [r["loadgen_cpu_cores"] for r in ddb if r.get("loadgen_cpu_cores") is not None]
    if lg:
        text += (f"\nThe Python load generator used {min(lg):.2f}-{max(lg):.2f} of the "
                 f"{ddb[0].get('machine_cores') or ddb[0].get('cpus') or '?'} cores in ddb's runs"
                 "; etcd_bench.py and dqlite_bench.py record their process tree, the nodes and "
                 "the load generator together.\n")
    return text


def http_table(http, targets: Targets) -> str:
    out = ["| measurement | ddb ops/s | ddb p50 / p99 ms | etcd ops/s | etcd p50 / p99 ms | ddb/etcd "
           "| target | ddb leader CPU µs/op (user+sys) | wrk cores (ddb) | etcd cores: 3 nodes + wrk "
           "| foreign cores (ddb / etcd) |",
           "|---|---|---|---|---|---|---|---|---|---|---|"]
    wrk = []
    for meas, conns, emeas, label in HTTP_ROWS:
        r = pick_http(http, "ddb", meas, conns)
        e = pick_http(http, "etcd", emeas, conns)
        if r is None and e is None:
            continue
        r, e = r or {}, e or {}
        q = ratio(r.get("ops_per_s"), e.get("ops_per_s"))
        if r.get("wrk_cpu_cores") is not None:
            wrk.append(r["wrk_cpu_cores"])
        cpu = r.get("leader_cpu_us_per_op")
        cpu_s = "-" if cpu is None else (f"{cpu:.1f} ({fmt(r.get('leader_user_us_per_op'), 1)}"
                                         f"+{fmt(r.get('leader_system_us_per_op'), 1)})")
        if r.get("leader_node_cpu_us_per_op") is not None:     # with read workers
            cpu_s = f"{r['leader_node_cpu_us_per_op']:.1f} (process {fmt(cpu, 1)})"
        out.append("| " + " | ".join([
            label, fmt(r.get("ops_per_s")),
            f"{fmt(r.get('p50_ms'), 2)} / {fmt(r.get('p99_ms'), 1)}",
            fmt(e.get("ops_per_s")), f"{fmt(e.get('p50_ms'), 2)} / {fmt(e.get('p99_ms'), 1)}",
            fmt(q, 2), f">= {HTTP_TARGET}x: {verdict(None if q is None else q >= HTTP_TARGET)}",
            cpu_s, fmt(r.get("wrk_cpu_cores"), 2), fmt(e.get("own_cpu_cores"), 2),
            f"{fmt(r.get('foreign_cpu_cores'), 2)} / {fmt(e.get('foreign_cpu_cores'), 2)}"]) + " |")
        if q is not None:
            targets.add(f"HTTP (wrk): {label}, ddb/etcd",
                        f"{q:.2f}x ({fmt(r['ops_per_s'])} vs {fmt(e['ops_per_s'])}/s)",
                        f">= {HTTP_TARGET}x", q >= HTTP_TARGET)
    text = "\n".join(out) + "\n"
    if wrk:
        text += (f"\nwrk used {min(wrk):.2f}-{max(wrk):.2f} cores in ddb's runs: "
                 + ("not the bottleneck" if max(wrk) <= WRK_MAX_CORES else
                    f"**above {WRK_MAX_CORES} cores, the load generator may be the bottleneck**")
                 + f" (threshold {WRK_MAX_CORES}); etcd's runs record wrk and etcd's nodes "
                 "together.\n")
    qd = pick_http(http, "ddb", "put_queued", 16)
    if qd:
        text += (f"\nQueued writes (`POST /db/execute?queue`, 16 connections): "
                 f"{fmt(qd.get('ops_per_s'))} accepted/s, {fmt(qd.get('durable_rows_per_s'))} "
                 f"durable rows/s, {fmt(qd.get('errors'))} requests refused with 503 (queue full), "
                 f"leader {fmt(qd.get('leader_cpu_us_per_op'), 1)} µs per request; no etcd "
                 "counterpart.\n")
    return text


def failover_table(recs, targets: Targets) -> str:
    recs = [r for r in recs if r.get("measurement") == "failover"]
    if not recs:
        return ""
    out = ["| fault (the leader) | rounds | failed rounds | median ms | p99 ms | max ms | target |",
           "|---|---|---|---|---|---|---|"]
    for r in recs:
        n, med, p99 = r.get("n") or 0, r.get("median_ms"), r.get("p99_ms")
        ok = (None if med is None or p99 is None else
              med <= FAILOVER_MEDIAN_MS and p99 <= FAILOVER_P99_MS and n >= FAILOVER_ROUNDS
              and not r.get("failed_rounds"))
        out.append(f"| {r.get('fault')} | {n} | {r.get('failed_rounds', '-')} | {fmt(med, 1)} | "
                   f"{fmt(p99, 1)} | {fmt(r.get('max_ms'), 1)} | {verdict(ok)} |")
        targets.add(f"failover, {r.get('fault')}: median / p99 over {n} rounds",
                    f"{fmt(med, 1)} / {fmt(p99, 1)} ms",
                    f"<= {FAILOVER_MEDIAN_MS:.0f} / {FAILOVER_P99_MS:.0f} ms, >= {FAILOVER_ROUNDS} rounds",
                    ok)
    return "\n".join(out) + "\n"


def soak_text(recs, targets: Targets) -> str:
    recs = [r for r in recs if r.get("measurement") == "soak"]
    out = []
    for r in recs:
        gaps = r.get("leader_gap_max_ms") or {}
        gap = max(gaps.values()) if gaps else None
        tc = r.get("term_changes")
        out.append(f"{fmt(r.get('seconds'))} s, {r.get('clients')} clients, no fault: "
                   f"{fmt(tc)} term changes (term {r.get('term_start')} -> {r.get('term_end')}), "
                   f"{fmt(r.get('leader_changes_sampled'))} leader changes seen in "
                   f"{fmt(r.get('samples'))} samples, {fmt(r.get('ops_per_s'))} writes/s "
                   f"(p50 {fmt(r.get('p50_ms'), 1)} / p99 {fmt(r.get('p99_ms'), 1)} ms, "
                   f"{fmt(r.get('errors'))} errors), longest leader silence a follower saw "
                   f"{fmt(gap)} ms; load generator {fmt(r.get('loadgen_cpu_cores'), 2)} cores, "
                   f"other processes {fmt(r.get('other_cpu_cores'), 2)} cores, load average "
                   f"{fmt(r.get('loadavg1'), 1)}.")
        if tc is not None:
            targets.add(f"soak: term changes in {fmt((r.get('seconds') or 0) / 60)} min at "
                        f"{r.get('clients')} clients", fmt(tc), "0", tc == 0)
    return "\n".join(out) + ("\n" if out else "")


def sql_table(s: dict, targets: Targets) -> str:
    target = s.get("target_ratio", 0.5)
    out = [f"SQL apply vs raw apsw in the same run (`benchmarks/sql_apply.py`, target ratio "
           f"{target}):\n", "| entries | ddb rows/s | raw apsw rows/s | ratio |", "|---|---|---|---|"]
    for key, label in (("single_row_entries", "one single-row INSERT per entry"),
                       ("batch_100_row_entries", "100 INSERTs per entry")):
        r = s.get(key)
        if r:
            out.append(f"| {label} | {fmt(r['ddb_rows_per_s'])} | {fmt(r['raw_apsw_rows_per_s'])} "
                       f"| {r['ratio']:.2f} |")
    r = s.get("single_row_entries")
    if r and r.get("ratio") is not None:
        targets.add("SQL apply: single-row entries, ddb/raw apsw rows/s", f"{r['ratio']:.2f}x",
                    f">= {target}x", r["ratio"] >= target)
    return "\n".join(out) + "\n"


def chart_groups(ddb, peers, http):
    """[(panel title, [(label, {system: ops/s or None})])] for every throughput row."""
    py = []
    for meas, clients, label, peer_names in ROWS:
        r = pick(ddb, meas, clients)
        if r is None or meas == "batch100":      # rows/s, no peer: another scale
            continue
        vals = {"ddb": r.get("ops_per_s")}
        for peer in ("etcd", "dqlite"):
            pm = peer_names.get(peer)
            pr = pick(peers[peer], pm, clients) if pm else None
            vals[peer] = (pr or {}).get("ops_per_s")
        py.append((label, vals))
    web = []
    for meas, conns, emeas, label in HTTP_ROWS:
        r, e = pick_http(http, "ddb", meas, conns), pick_http(http, "etcd", emeas, conns)
        if r or e:
            web.append((label, {"ddb": (r or {}).get("ops_per_s"), "etcd": (e or {}).get("ops_per_s"),
                                "dqlite": None}))
    groups = []
    if py:
        groups.append(("Python client (benchmarks/cluster.py, peers' *_bench.py)", py))
    if web:
        groups.append(("HTTP with wrk (benchmarks/http_wrk.py; no dqlite run)", web))
    return groups


def chart(ddb, peers, http, png: str, title: str = "") -> bool:
    """Grouped bars, one group per throughput row: ddb, etcd and dqlite ops/s, a panel for the
    Python client above one for HTTP (same y scale); each bar labelled with its ops/s, ddb's with its ratio to
    etcd. False (and no file) if there is nothing to draw."""
    groups = chart_groups(ddb, peers, http)
    if not groups:
        return False
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    colors = {"ddb": "#1f77b4", "etcd": "#ff7f0e", "dqlite": "#2ca02c"}
    most = max(len(rows) for _, rows in groups)
    fig, axes = plt.subplots(len(groups), 1, figsize=(11, 1.2 + 3.6 * len(groups)), sharey=True,
                             squeeze=False)
    axes = [a[0] for a in axes]
    width = 0.27
    for ax, (panel, rows) in zip(axes, groups):
        for k, name in enumerate(colors):
            xs = [i + (k - 1) * width for i in range(len(rows))]
            ys = [vals.get(name) for _, vals in rows]
            bars = ax.bar(xs, [y if y else 0 for y in ys], width, color=colors[name],
                          label=name if ax is axes[0] else None)
            for b, y, (_, vals) in zip(bars, ys, rows):
                if not y:
                    continue
                text = f"{y:,.0f}"
                q = ratio(vals.get("ddb"), vals.get("etcd"))
                if name == "ddb" and q is not None:
                    text += f"\n{q:.2f}x etcd"
                ax.annotate(text, (b.get_x() + b.get_width() / 2, y), ha="center", va="bottom",
                            fontsize=6, xytext=(0, 1), textcoords="offset points")
        ax.set_xticks(range(len(rows)), [lbl.replace(", ", ",\n").replace(" / ", " /\n")
                                         for lbl, _ in rows], fontsize=7)
        ax.set_xlim(-0.6, most - 0.4)          # the same bar width in every panel
        ax.set_title(panel, fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.margins(y=0.15)
    for ax in axes:
        ax.set_ylabel("ops/s")
    fig.legend(loc="upper right", fontsize=8)
    fig.suptitle("ddb vs etcd vs dqlite, one session" + (f" ({title})" if title else "")
                 + ": 3 durable nodes, loopback, 2 vCPU", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(png, dpi=110)
    plt.close(fig)
    return True


def report(d: str, png: str | None = None) -> str:
    """The markdown report of results directory `d` (and the chart, if `png`)."""
    ddb = load(os.path.join(d, "ddb.jsonl"))
    peers = {"etcd": load(os.path.join(d, "etcd.jsonl")), "dqlite": load(os.path.join(d, "dqlite.jsonl"))}
    http = load(os.path.join(d, "http.jsonl"))
    targets = Targets()
    parts = []
    if png:
        chart(ddb, peers, http, png, os.path.basename(os.path.normpath(d)))
    if ddb:
        parts.append("Python client (`benchmarks/cluster.py`; etcd and dqlite from "
                     "`../shared/peers`):\n\n" + python_table(ddb, peers, targets))
    core = load(os.path.join(d, "core.json"))
    if core:
        parts.append(f"Raft core alone (simulated 3 nodes, MemoryStorage): "
                     f"{fmt(core[0].get('entries_per_sec'))} entries/s (`benchmarks/core.py`).\n")
    if http:
        workers = max((r.get("http_workers") or 0 for r in http if r.get("peer") == "ddb"), default=0)
        how = (f"--queued --http-workers {workers}`: each node with {workers} HTTP read worker "
               "processes; the leader's CPU is its process and its workers'" if workers else "--queued`")
        parts.append(f"HTTP with wrk (`benchmarks/http_wrk.py {how}; ddb, then etcd's JSON "
                     "gateway in the same run; 1 wrk thread, 10 s per row):\n\n"
                     + http_table(http, targets))
    fo = failover_table(load(os.path.join(d, "failover.jsonl")), targets)
    if fo:
        parts.append("Failover (`benchmarks/failover.py --rounds 20`: time from the fault to "
                     "each writer's next acknowledged write; a round counts its slowest "
                     "writer):\n\n" + fo)
    soak = soak_text(load(os.path.join(d, "soak.jsonl")), targets)
    if soak:
        parts.append("Soak (`benchmarks/soak.py`): " + soak)
    sql = load(os.path.join(d, "sql_apply.json"))
    if sql:
        parts.append(sql_table(sql[0], targets))
    scale_jsonl = os.path.join(d, "scale.jsonl")
    if os.path.exists(scale_jsonl):
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from scale import table        # benchmarks/ is this script's directory
        parts.append("Big databases (`benchmarks/scale.py`):\n\n" + table(scale_jsonl))
    if targets.rows:
        parts.append("Against issue 12's targets:\n\n" + targets.markdown())
    if not parts:
        return (f"No result files this script reads in {d} (ddb.jsonl, etcd.jsonl, http.jsonl, "
                "failover.jsonl, soak.jsonl, sql_apply.json, scale.jsonl, core.json).\n")
    return "\n".join(parts)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("results", help="a directory under benchmarks/results")
    ap.add_argument("--chart", metavar="PNG", help="also draw the grouped bar chart (matplotlib)")
    args = ap.parse_args(argv)
    if not os.path.isdir(args.results):
        ap.error(f"not a directory: {args.results}")
    print(report(args.results, args.chart), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
