"""benchmarks/compare.py on made-up result files: every issue-12 ratio beside its target,
met / not met, and older sessions (no http.jsonl, failover.jsonl, ...) without a crash."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "compare.py"


def compare():
    spec = importlib.util.spec_from_file_location("ddb_bench_compare", PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def lines(path: Path, recs) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in recs))


def ddb(meas, clients, ops, p50=2.0, **kw):
    return {"system": "ddb", "measurement": meas, "clients": clients, "ops_per_s": ops,
            "p50_ms": p50, "p99_ms": 2 * p50, **kw}


def peer(name, meas, clients, ops, p50=2.0, client="python-http.client"):
    return {"peer": name, "run": 1, "measurement": meas, "clients": clients, "client": client,
            "ops_per_s": ops, "p50_ms": p50, "p99_ms": 2 * p50, "own_cpu_cores": 1.5}


def http(name, meas, conns, ops, **kw):
    r = {"peer": name, "measurement": meas, "clients": conns, "client": "wrk", "ops_per_s": ops,
         "p50_ms": 2.0, "p99_ms": 4.0, "foreign_cpu_cores": 0.0, **kw}
    if name == "etcd":
        r["run"] = 1
    return r


def old_session(d: Path) -> None:
    lines(d / "ddb.jsonl", [ddb("put_seq", 1, 500, p50=1.5), ddb("put", 64, 6000),
                            ddb("get_linearizable", 16, 5000), ddb("batch100", 16, 100, rows_per_s=10000)])
    lines(d / "etcd.jsonl", [{"peer": "etcd", "versions": {}},
                             peer("etcd", "put_seq", 1, 900, p50=1.0), peer("etcd", "put", 64, 4000),
                             peer("etcd", "get_linearizable", 16, 4000),
                             {"peer": "etcd", "measurement": "put", "clients": 64, "summary": True,
                              "ops_per_s_median": 1}])
    lines(d / "dqlite.jsonl", [peer("dqlite", "put", 64, 200)])
    (d / "sql_apply.json").write_text(json.dumps({
        "target_ratio": 0.5,
        "single_row_entries": {"ddb_rows_per_s": 100, "raw_apsw_rows_per_s": 1000, "ratio": 0.1},
        "batch_100_row_entries": {"ddb_rows_per_s": 600, "raw_apsw_rows_per_s": 1000, "ratio": 0.6},
    }, indent=2))


def test_old_session_without_http_failover_soak(tmp_path):
    old_session(tmp_path)
    out = compare().report(str(tmp_path))
    assert "| INSERT / put, 64 clients | 6,000 |" in out and "| 1.50 | 200 | 30.00 |" in out
    assert "| one single-row INSERT per entry | 100 | 1,000 | 0.10 |" in out
    assert "HTTP with wrk" not in out and "Failover" not in out and "Soak" not in out
    assert ("| Python client: INSERT / put, 64 clients, ddb/etcd | 1.50x (6,000 vs 4,000/s) "
            "| >= 1.5x | met |") in out
    assert "| Python client: linearizable reads, ddb/etcd | 1.25x" in out and "**not met**" in out
    assert ("| Python client: single-client write p50 | 1.50 ms vs etcd 1.00 ms | <= etcd's "
            "| **not met** |") in out
    assert "| SQL apply: single-row entries, ddb/raw apsw rows/s | 0.10x | >= 0.5x | **not met** |" in out
    assert "1 of 4 targets met." in out


def test_full_session_every_ratio_beside_its_target(tmp_path):
    old_session(tmp_path)
    wrk = [http("ddb", "put", 16, 4000, wrk_cpu_cores=0.05, leader_cpu_us_per_op=200.0,
                leader_user_us_per_op=160.0, leader_system_us_per_op=40.0),
           http("ddb", "put", 64, 8000, wrk_cpu_cores=0.1),
           http("ddb", "put_queued", 16, 1500, errors=10, durable_rows_per_s=1400),
           http("ddb", "get_linearizable", 16, 9000, wrk_cpu_cores=0.1),
           http("ddb", "get_weak", 16, 12000, wrk_cpu_cores=0.2),
           http("ddb", "get_none", 16, 13000, wrk_cpu_cores=0.2)]
    lines(tmp_path / "http.jsonl", wrk + wrk + [      # http_wrk.py prints its lines twice
        http("etcd", "put", 16, 4000), http("etcd", "put", 64, 4000),
        http("etcd", "get_linearizable", 16, 4000), http("etcd", "get_serializable", 16, 6000)])
    lines(tmp_path / "failover.jsonl", [
        {"measurement": "failover", "fault": "kill", "n": 20, "median_ms": 200.0, "p99_ms": 290.0,
         "max_ms": 290.0, "failed_rounds": 0},
        {"measurement": "failover", "fault": "stop", "n": 20, "median_ms": 310.0, "p99_ms": 400.0,
         "max_ms": 400.0, "failed_rounds": 0},
        {"measurement": "failover", "fault": "isolate", "n": 10, "median_ms": 200.0, "p99_ms": 250.0,
         "max_ms": 250.0, "failed_rounds": 0}])
    lines(tmp_path / "soak.jsonl", [{"measurement": "soak", "clients": 64, "seconds": 600.0,
                                     "ops_per_s": 4000, "term_changes": 0,
                                     "leader_gap_max_ms": {"1": 0, "2": 240}}])
    out = compare().report(str(tmp_path))
    assert ("| HTTP (wrk): INSERT / put, 16 connections, ddb/etcd | 1.00x (4,000 vs 4,000/s) "
            "| >= 2.0x | **not met** |") in out
    assert "| HTTP (wrk): INSERT / put, 64 connections, ddb/etcd | 2.00x" in out
    assert "| HTTP (wrk): read, linearizable / linearizable get, ddb/etcd | 2.25x" in out
    assert "| HTTP (wrk): read, level weak / serializable get, ddb/etcd | 2.00x" in out
    assert "| HTTP (wrk): read, level none / serializable get, ddb/etcd | 2.17x" in out
    assert "200.0 (160.0+40.0)" in out
    assert "wrk used 0.05-0.20 cores in ddb's runs: not the bottleneck" in out
    assert "1,500 accepted/s, 1,400 durable rows/s, 10 requests refused" in out
    assert "| failover, kill: median / p99 over 20 rounds | 200.0 / 290.0 ms |" in out
    assert ("| failover, stop: median / p99 over 20 rounds | 310.0 / 400.0 ms "
            "| <= 300 / 1000 ms, >= 20 rounds | **not met** |") in out
    assert ("| failover, isolate: median / p99 over 10 rounds | 200.0 / 250.0 ms "
            "| <= 300 / 1000 ms, >= 20 rounds | **not met** |") in out
    assert "| soak: term changes in 10 min at 64 clients | 0 | 0 | met |" in out
    assert "longest leader silence a follower saw 240 ms" in out
    # kill, soak, 4 HTTP rows and the 64-client Python puts of 17
    assert "7 of 13 targets met." in out


def test_empty_directory_and_chart(tmp_path):
    mod = compare()
    assert "No result files" in mod.report(str(tmp_path))
    assert mod.chart([], {"etcd": [], "dqlite": []}, [], str(tmp_path / "none.png")) is False
    pytest.importorskip("matplotlib")
    old_session(tmp_path)
    lines(tmp_path / "http.jsonl", [http("ddb", "put", 16, 4000), http("etcd", "put", 16, 3000)])
    png = tmp_path / "compare.png"
    mod.report(str(tmp_path), str(png))
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    groups = mod.chart_groups(mod.load(str(tmp_path / "ddb.jsonl")),
                              {"etcd": mod.load(str(tmp_path / "etcd.jsonl")),
                               "dqlite": mod.load(str(tmp_path / "dqlite.jsonl"))},
                              mod.load(str(tmp_path / "http.jsonl")))
    assert [len(rows) for _, rows in groups] == [3, 1]           # batch100 is rows/s: not drawn
    assert groups[0][1][1] == ("INSERT / put, 64 clients", {"ddb": 6000, "etcd": 4000, "dqlite": 200})
    assert groups[1][1][0][1] == {"ddb": 4000, "etcd": 3000, "dqlite": None}
