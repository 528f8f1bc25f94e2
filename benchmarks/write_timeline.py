"""Where one write's time goes: a single client's writes to a 3-node durable cluster, one at
a time, each placed on the nodes' own clocks by their peer-message rings (the `trace`
operation, `server/trace.py`; on one machine the nodes' wall clocks are comparable).

For each write, from the moment the client sends it (median over --writes):
  append_sent    the leader sends the entry to a follower (decided, proposed, in a Ready)
  follower_recv  that follower reads the append
  follower_ack   it acknowledges (after its log write and fsync)
  leader_ack     the leader reads the first acknowledgement covering it (either follower)
  commit         the leader's next peer message sees the entry committed
  reply          the client has the answer (the leader applied the entry and answered)

The leader's own log write runs beside the follower's; a write is committed once both
are done, then applied. One JSON line, medians in µs.

    .venv/bin/python benchmarks/write_timeline.py [--writes 200] [--json out.jsonl]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ddb_node.cluster import LocalCluster  # noqa: E402
from ddb_node.server.trace import MAX_RECORDS  # noqa: E402

STAGES = ("append_sent", "follower_recv", "follower_ack", "leader_ack", "commit", "reply")


def place(marks, traces, leader) -> list[dict]:
    """Each write's stages (seconds after it was sent), from the nodes' trace records."""
    lead = traces[leader]
    rows = []
    for t0, t1 in marks:
        apps = [r for r in lead if r["kind"] == "send" and r["type"] == "APP" and r.get("n")
                and t0 <= r["t"] <= t1]
        if not apps:
            continue
        a = apps[0]
        last = a["index"] + a["n"]
        out = {"append_sent": a["t"] - t0, "reply": t1 - t0}
        fol = traces.get(a["to"]) or []
        recv = [r for r in fol if r["kind"] == "recv" and r["type"] == "APP" and r.get("n")
                and r["index"] == a["index"] and a["t"] <= r["t"] <= t1]
        if recv:
            out["follower_recv"] = recv[0]["t"] - t0
            ack = [r for r in fol if r["kind"] == "send" and r["type"] == "APP_RESP"
                   and r["index"] >= last and r["t"] >= recv[0]["t"]]
            if ack:
                out["follower_ack"] = ack[0]["t"] - t0
        lack = [r for r in lead if r["kind"] == "recv" and r["type"] == "APP_RESP"
                and r["index"] >= last and a["t"] <= r["t"] <= t1]
        if lack:
            out["leader_ack"] = lack[0]["t"] - t0
        com = [r for r in lead if r["kind"] == "commit" and r["index"] >= last and a["t"] <= r["t"]]
        if com:
            out["commit"] = com[0]["t"] - t0
        rows.append(out)
    return rows


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--writes", type=int, default=200)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--json", help="append the JSON line to this file")
    args = p.parse_args(argv)
    # a write leaves ~6 records on the leader (its heartbeats a few more): keep every one
    writes = max(1, min(args.writes, MAX_RECORDS // 10))
    with LocalCluster(3, data_dir=tempfile.mkdtemp(prefix="ddb-timeline-")) as lc:
        c = lc.client()
        c.execute("CREATE TABLE kv(k TEXT PRIMARY KEY, v TEXT)")
        for i in range(args.warmup):
            c.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", [f"k{i}", "v" * 100])
        leader = lc.leader()
        marks = []
        for i in range(writes):
            t0 = time.time()
            c.execute("INSERT OR REPLACE INTO kv VALUES (?, ?)", [f"k{i}", "v" * 100])
            marks.append((t0, time.time()))
        c.refresh()
        traces = {nid: c.call(addr, {"op": "trace", "last": MAX_RECORDS}, 5.0)["trace"]
                  for nid, addr in c.members.items()}
    rows = place(marks, traces, leader)
    out = {"benchmark": "write_timeline", "writes": len(marks), "placed": len(rows),
           "python": platform.python_version(), "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    for k in STAGES:
        v = [r[k] for r in rows if k in r]
        out[f"{k}_us"] = round(statistics.median(v) * 1e6, 1) if v else None
    line = json.dumps(out)
    print(line)
    if args.json:
        with open(args.json, "a") as f:
            f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
