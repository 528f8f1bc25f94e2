"""Change capture's cost in user-space instructions per entry (valgrind's callgrind), capture
on vs off: a count that does not move with the host's load, unlike wall time (this machine
kind's speed varies by up to 1.5x minutes apart). It leaves out the kernel: the WAL bytes the
change log adds are written by system calls valgrind does not count, so wall time's overhead
(benchmarks/cdc.py) is higher.

For each workload of benchmarks/cdc.py and each setting, one process applies the schema and
seed entries and then N entries; another only the schema and seed: the difference over N is
the cost of an entry.

    .venv/bin/python benchmarks/cdc_instructions.py [--entries 4000] [--workloads single,session,update] [--json out.json]

Needs valgrind (`apt-get install valgrind`); ~3 minutes on 2 cores. A benchmark, not a test:
nothing in the suite calls it.
"""
from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

CHILD = """
import sys, tempfile
sys.path.insert(0, {root!r}); sys.path.insert(0, {here!r})
import cdc
entries = cdc.build({workload!r}, {n})
cdc.run_apply(tempfile.mkdtemp(), entries, {on}, 100)
"""


def instructions(workload: str, on: bool, n: int) -> int:
    code = CHILD.format(root=ROOT, here=HERE, workload=workload, n=n, on=on)
    out = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null",
                          sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=1800, cwd=tempfile.gettempdir())
    m = re.search(r"Collected : (\d+)", out.stderr)
    if out.returncode != 0 or m is None:
        raise RuntimeError(f"valgrind failed: {out.stderr[-2000:]}")
    return int(m.group(1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=4000)
    ap.add_argument("--workloads", default="single,session,update")
    ap.add_argument("--json", default=None)
    a = ap.parse_args(argv)
    jobs = [(w, on, n) for w in a.workloads.split(",") for on in (False, True) for n in (0, a.entries)]
    with ThreadPoolExecutor(2) as ex:          # two valgrinds at a time: one per core
        counts = dict(zip(jobs, ex.map(lambda j: instructions(*j), jobs)))
    out = {"benchmark": "cdc_instructions", "entries": a.entries, "workloads": {}}
    for w in a.workloads.split(","):
        per = {on: (counts[(w, on, a.entries)] - counts[(w, on, 0)]) / a.entries for on in (False, True)}
        out["workloads"][w] = {"off_instructions_per_entry": round(per[False]),
                               "on_instructions_per_entry": round(per[True]),
                               "overhead_pct": round(100 * (per[True] - per[False]) / per[False], 1)}
    print(json.dumps(out, indent=2))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(out, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
