"""Smoke test of benchmarks/core.py (correctness only; no timing assertions)."""
from __future__ import annotations

import importlib.util
from pathlib import Path


def test_core_benchmark_commits_every_entry_on_every_node():
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "core.py"
    spec = importlib.util.spec_from_file_location("ddb_bench_core", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    res = mod.run(entries=5000, batch=128, max_seconds=60, compact_every=1000)
    assert res["entries"] == 5000 and res["applied_on_all_nodes"] == 5000
    assert res["batch"] == 128 and res["payload_bytes"] == 16
