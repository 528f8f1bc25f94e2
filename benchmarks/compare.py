"""Turn one benchmark session's JSON lines into the README's comparison table, and (with
matplotlib) a chart of ddb against etcd and dqlite for each row.

    python benchmarks/compare.py benchmarks/results/<session> [--chart F.png]
"""
from __future__ import annotations

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


def load(path: str) -> list[dict]:
    out = []
    if not os.path.exists(path):
        return out
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
    return out


def pick(recs, measurement, clients, client="python-http.client"):
    for r in recs:
        if r.get("measurement") == measurement and r.get("clients") == clients \
                and r.get("client", client) == client and "ops_per_s" in r and "run" in r or \
                (r.get("system") == "ddb" and r.get("measurement") == measurement
                 and r.get("clients") == clients):
            return r
    return None


def fmt(v, nd=0):
    if v is None:
        return "-"
    return f"{v:,.{nd}f}"


def chart(ddb, peers, png: str) -> None:
    """Grouped bars, one group per table row: ddb, etcd and dqlite ops/s (log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    labels, series = [], {"ddb": [], "etcd": [], "dqlite": []}
    for meas, clients, label, peer_names in ROWS:
        r = pick(ddb, meas, clients)
        if r is None or meas == "batch100":
            continue
        labels.append(label.replace(", ", ",\n").replace(" / ", " /\n"))
        series["ddb"].append(r.get("ops_per_s") or 0)
        for peer in ("etcd", "dqlite"):
            pm = peer_names.get(peer)
            pr = pick(peers[peer], pm, clients) if pm else None
            series[peer].append((pr or {}).get("ops_per_s") or 0)
    fig, ax = plt.subplots(figsize=(11, 4.5))
    width = 0.27
    for k, (name, ys) in enumerate(series.items()):
        xs = [i + (k - 1) * width for i in range(len(labels))]
        ax.bar(xs, [y or float("nan") for y in ys], width, label=name)
    ax.set_xticks(range(len(labels)), labels, fontsize=7)
    ax.set(yscale="log", ylabel="ops/s (log)", title="one benchmark session: ddb vs etcd vs dqlite "
           "(3 nodes, loopback, Python client)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(png, dpi=110)


def main(argv=None) -> int:
    args = list(argv or sys.argv[1:])
    png = None
    if "--chart" in args:
        i = args.index("--chart")
        png = args[i + 1]
        del args[i:i + 2]
    d = args[0]
    ddb = load(os.path.join(d, "ddb.jsonl"))
    peers = {"etcd": load(os.path.join(d, "etcd.jsonl")), "dqlite": load(os.path.join(d, "dqlite.jsonl"))}
    if png:
        chart(ddb, peers, png)
    print("| measurement | ddb ops/s | ddb p50 / p99 ms | etcd ops/s | etcd p50 ms | ddb/etcd | "
          "dqlite ops/s | ddb/dqlite |")
    print("|---|---|---|---|---|---|---|---|")
    for meas, clients, label, peer_names in ROWS:
        r = pick(ddb, meas, clients)
        if r is None:
            continue
        ops = r.get("rows_per_s") if meas == "batch100" else r.get("ops_per_s")
        cells = [label, fmt(ops), f"{fmt(r.get('p50_ms'), 2)} / {fmt(r.get('p99_ms'), 1)}"]
        for peer in ("etcd", "dqlite"):
            pm = peer_names.get(peer)
            pr = pick(peers[peer], pm, clients) if pm else None
            pops = pr.get("ops_per_s") if pr else None
            if peer == "etcd":
                cells += [fmt(pops), fmt(pr.get("p50_ms"), 2) if pr else "-",
                          f"{ops / pops:.2f}" if pops and ops else "-"]
            else:
                cells += [fmt(pops), f"{ops / pops:.2f}" if pops and ops else "-"]
        print("| " + " | ".join(cells) + " |")
    core = load(os.path.join(d, "core.json"))
    if core:
        c = core[0]
        print(f"\nRaft core alone (simulated 3 nodes, MemoryStorage): "
              f"{fmt(c.get('entries_per_sec'))} entries/s (`benchmarks/core.py`).")
    sql = os.path.join(d, "sql_apply.json")
    if os.path.exists(sql):
        with open(sql) as f:
            s = json.load(f)
        print("\nSQL apply vs raw apsw in the same run (`benchmarks/sql_apply.py`, target ratio "
              f"{s.get('target_ratio', 0.5)}):\n")
        print("| entries | ddb rows/s | raw apsw rows/s | ratio |")
        print("|---|---|---|---|")
        for key, label in (("single_row_entries", "one single-row INSERT per entry"),
                           ("batch_100_row_entries", "100 INSERTs per entry")):
            r = s.get(key)
            if r:
                print(f"| {label} | {fmt(r['ddb_rows_per_s'])} | {fmt(r['raw_apsw_rows_per_s'])} "
                      f"| {r['ratio']:.2f} |")
    scale_jsonl = os.path.join(d, "scale.jsonl")
    if os.path.exists(scale_jsonl):
        from scale import table        # benchmarks/ is this script's directory
        print("\nBig databases (`benchmarks/scale.py`):\n")
        print(table(scale_jsonl), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
