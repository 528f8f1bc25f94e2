#!/usr/bin/env python3
"""Every test must pass alone: run a seeded random sample of the default suite's test ids,
each in its own pytest process, and report the ones that fail there.

    scripts/check_isolation.py [--sample 30] [--seed N] [--python .venv/bin/python] [ID ...]

The seed is printed first; pass it back with --seed to rerun the same sample. Explicit IDs
replace the sample. A notebook (nbval) counts as one test: its cells run in order by design.
Exits 1 when any sampled test fails alone, 2 when nothing could be collected.
"""
from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def default_python() -> str:
    venv = os.path.join(ROOT, ".venv", "bin", "python")
    return venv if os.path.exists(venv) else sys.executable


def collect(python: str, cwd: str, extra: list[str]) -> list[str]:
    """The default suite's test ids, one per notebook for nbval items."""
    p = subprocess.run([python, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", *extra],
                       cwd=cwd, capture_output=True, text=True)
    if p.returncode != 0:
        sys.stderr.write(p.stdout[-4000:] + p.stderr[-4000:])
        return []
    ids: list[str] = []
    for line in p.stdout.splitlines():
        if "::" not in line or line.startswith(" "):
            continue
        path = line.split("::", 1)[0]
        tid = path if path.endswith(".ipynb") else line
        if tid not in ids:
            ids.append(tid)
    return ids


def run_one(python: str, cwd: str, tid: str, extra: list[str], timeout: float) -> tuple[bool, float, str]:
    t0 = time.monotonic()
    try:
        p = subprocess.run([python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *extra, tid],
                           cwd=cwd, capture_output=True, text=True, timeout=timeout)
        ok, out = p.returncode == 0, p.stdout + p.stderr
    except subprocess.TimeoutExpired as e:
        ok, out = False, f"timed out after {timeout:.0f}s\n{e.stdout or ''}"
    return ok, time.monotonic() - t0, out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("ids", nargs="*", help="test ids to run one by one instead of a sample")
    ap.add_argument("--sample", type=int, default=30, help="how many test ids to draw (default 30)")
    ap.add_argument("--seed", type=int, default=None, help="the sample's seed (default: a fresh one)")
    ap.add_argument("--python", default=None, help="the interpreter with pytest (default: .venv/bin/python)")
    ap.add_argument("--rootdir", default=ROOT, help="where to run pytest (default: this checkout)")
    ap.add_argument("--timeout", type=float, default=900.0, help="seconds per test process")
    ap.add_argument("--pytest-arg", action="append", default=[], dest="pytest_args",
                    help="an extra argument for every pytest run (repeatable)")
    args = ap.parse_args(argv)
    python = args.python or default_python()
    seed = args.seed if args.seed is not None else int.from_bytes(os.urandom(4), "big")

    if args.ids:
        chosen = list(args.ids)
        print(f"check_isolation: {len(chosen)} given test ids, each in its own pytest process", flush=True)
    else:
        print(f"check_isolation: seed {seed} (rerun with --seed {seed})", flush=True)
        ids = collect(python, args.rootdir, args.pytest_args)
        if not ids:
            print("check_isolation: no test ids collected", file=sys.stderr)
            return 2
        chosen = random.Random(seed).sample(ids, min(args.sample, len(ids)))
        print(f"check_isolation: {len(chosen)} of {len(ids)} test ids, each in its own pytest process",
              flush=True)

    failed: list[tuple[str, str]] = []
    t_all = time.monotonic()
    for k, tid in enumerate(chosen, 1):
        ok, took, out = run_one(python, args.rootdir, tid, args.pytest_args, args.timeout)
        print(f"  [{k:>2}/{len(chosen)}] {'ok  ' if ok else 'FAIL'} {took:6.1f}s  {tid}", flush=True)
        if not ok:
            failed.append((tid, out))
    for tid, out in failed:
        print(f"\n---- {tid} failed when run alone; its output ends:\n{out[-3000:]}")
    took = time.monotonic() - t_all
    seed_note = "" if args.ids else f" (seed {seed})"
    if failed:
        print(f"\ncheck_isolation: {len(failed)} of {len(chosen)} failed alone{seed_note} in {took:.0f}s:")
        for tid, _ in failed:
            print(f"  {tid}")
        return 1
    print(f"\ncheck_isolation: all {len(chosen)} passed alone{seed_note} in {took:.0f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
