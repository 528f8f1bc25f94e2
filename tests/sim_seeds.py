"""Many simulator seeds for one test module: run in worker processes, reported a chunk per
test so that a failure names its seeds (and each seed's report names its replay command)."""
from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

FIRST = int(os.environ.get("DDB_SIM_FIRST_SEED", "1"))
WORKERS = int(os.environ.get("DDB_SIM_WORKERS", str(min(2, os.cpu_count() or 1))))


def run_many(one, seeds: list[int]) -> dict:
    """{seed: rest of one(seed)}, where one(seed) returns (seed, ...) and is picklable."""
    if WORKERS > 1 and len(seeds) > 1:
        with ProcessPoolExecutor(WORKERS) as pool:
            out = list(pool.map(one, seeds, chunksize=4))
    else:
        out = [one(s) for s in seeds]
    return {r[0]: r[1:] for r in out}


def chunks(n: int, size: int) -> list[list[int]]:
    """Seeds FIRST .. FIRST + n - 1 in runs of `size`."""
    return [list(range(FIRST + i, FIRST + min(i + size, n))) for i in range(0, n, size)]


def run_first(one, n: int) -> dict:
    """`run_many` over the first n seeds (FIRST .. FIRST + n - 1)."""
    return run_many(one, list(range(FIRST, FIRST + n)))


def failed_reports(results: dict, seeds=None) -> list[str]:
    """The reports of the failed runs among `seeds` (all by default); each result is
    (ok, report, ...)."""
    seeds = results if seeds is None else seeds
    return [results[s][1] for s in seeds if not results[s][0]]


def soak_requested(request) -> bool:
    """A soak runs on demand only: `pytest -m soak`, or DDB_SIM_SOAK=1."""
    return "soak" in (request.config.getoption("-m") or "") or bool(os.environ.get("DDB_SIM_SOAK"))
