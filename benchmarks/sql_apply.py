"""Apply throughput of the SQL state machine against raw apsw, in the same run.

Workloads (rows/s, best of --repeat runs each):
  single: one single-row INSERT per log entry, entries applied in groups (--group per batch)
  batch:  100 single-row INSERT statements per log entry, --group/100 entries per batch
Raw apsw runs the very same statements and parameters with the same transaction boundaries
(one transaction per batch), in WAL mode with synchronous=NORMAL like the state machine.

    .venv/bin/python benchmarks/sql_apply.py [--rows 200000] [--group 1000] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import sys
import tempfile
import time

import apsw

from ddb_node.sql import Request, StateMachine, Statement, encode_entry

SCHEMA = "CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, n INTEGER)"
INSERT = "INSERT INTO t(name, score, n) VALUES (?, ?, ?)"


def params(i):
    return [f"name-{i}", i * 0.5, i]


def build_entries(rows, per_entry):
    entries = []
    idx = 2
    for start in range(0, rows, per_entry):
        req = Request([Statement(INSERT, params(i)) for i in range(start, min(rows, start + per_entry))])
        entries.append((idx, 1, encode_entry(req, timestamp_ms=1_700_000_000_000 + idx, seed=idx)))
        idx += 1
    return entries


def run_sm(dirname, entries, group_entries):
    path = os.path.join(dirname, "sm.db")
    sm = StateMachine(path, sync="normal")
    sm.apply_batch([(1, 1, encode_entry(Request([Statement(SCHEMA)]), timestamp_ms=0, seed=1))])
    t0 = time.perf_counter()
    for s in range(0, len(entries), group_entries):
        sm.apply_batch(entries[s:s + group_entries])
    dt = time.perf_counter() - t0
    n = sm.query(Request(["SELECT count(*) FROM t"]))[0].values[0][0]
    sm.close()
    return dt, n


def run_raw(dirname, rows, per_entry, group_entries):
    path = os.path.join(dirname, "raw.db")
    conn = apsw.Connection(path)
    list(conn.execute("PRAGMA journal_mode=WAL"))
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute(SCHEMA)
    stmts = [(INSERT, params(i)) for i in range(rows)]
    per_batch = per_entry * group_entries
    t0 = time.perf_counter()
    for s in range(0, rows, per_batch):
        conn.execute("BEGIN")
        for sql, p in stmts[s:s + per_batch]:
            conn.execute(sql, p)
        conn.execute("COMMIT")
    dt = time.perf_counter() - t0
    n = conn.execute("SELECT count(*) FROM t").fetchall()[0][0]
    conn.close()
    return dt, n


def measure(rows, per_entry, group_rows, repeat):
    group_entries = max(1, group_rows // per_entry)
    entries = build_entries(rows, per_entry)
    best_sm = best_raw = None
    for _ in range(repeat):
        d = tempfile.mkdtemp(prefix="ddb-bench-")
        try:
            dt_raw, n_raw = run_raw(d, rows, per_entry, group_entries)
            dt_sm, n_sm = run_sm(d, entries, group_entries)
        finally:
            shutil.rmtree(d)
        assert n_raw == n_sm == rows, (n_raw, n_sm, rows)
        best_raw = dt_raw if best_raw is None else min(best_raw, dt_raw)
        best_sm = dt_sm if best_sm is None else min(best_sm, dt_sm)
    return {
        "rows": rows, "statements_per_entry": per_entry, "entries": len(entries),
        "entries_per_batch": group_entries,
        "ddb_rows_per_s": round(rows / best_sm), "raw_apsw_rows_per_s": round(rows / best_raw),
        "ratio": round(best_raw / best_sm, 3),
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=200_000)
    ap.add_argument("--group", type=int, default=1000, help="rows per apply_batch / raw transaction")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--json", help="also write the JSON here")
    a = ap.parse_args(argv)
    out = {
        "benchmark": "sql_apply",
        "python": sys.version.split()[0], "apsw": apsw.apsw_version(), "sqlite": apsw.sqlite_lib_version(),
        "machine": platform.machine(), "target_ratio": 0.5,
        "single_row_entries": measure(a.rows, 1, a.group, a.repeat),
        "batch_100_row_entries": measure(a.rows, 100, a.group, a.repeat),
    }
    text = json.dumps(out, indent=2)
    print(text)
    if a.json:
        with open(a.json, "w") as f:
            f.write(text + "\n")
    return out


if __name__ == "__main__":
    main()
