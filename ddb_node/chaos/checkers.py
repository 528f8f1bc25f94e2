"""Checkers: decide from the recorded history alone whether anything went wrong.

Each returns a dict with `valid` (True, False or "unknown"), `anomalies` (a list of short
descriptions, empty when valid) and figures worth reporting.
"""
from __future__ import annotations

import hashlib
import math
import time

import msgpack

from ddb_node.sim.history import FAIL as SFAIL, INFO as SINFO, OK as SOK, Op as SimOp
from ddb_node.sim.linearizability import LINEARIZABLE, UNKNOWN, VIOLATION, check_register

from .history import FAIL, INFO, OK


# ------------------------------------------------------------------ registers
def to_sim_ops(ops) -> dict:
    """Chaos register ops -> the simulator checker's Op, per key."""
    by_key: dict = {}
    status = {OK: SOK, FAIL: SFAIL, INFO: SINFO}
    for o in ops:
        if o.status is None:
            continue
        s = SimOp(o.id, o.process, o.f, o.key, o.value, o.expected, call=o.invoke,
                  ret=o.complete if o.status == OK else math.inf, status=status[o.status],
                  output=o.output, node=o.node or 0, index=o.index or 0)
        by_key.setdefault(o.key, []).append(s)
    return by_key


def check_registers(ops, max_states: int = 200_000) -> dict:
    """Linearizability per key (P-compositionality), each search bounded by `max_states`:
    a key whose search exceeds it is reported "unknown", never silently passed."""
    t0 = time.monotonic()
    by_key = to_sim_ops(ops)
    keys, anomalies = [], []
    verdicts = {LINEARIZABLE: 0, VIOLATION: 0, UNKNOWN: 0}
    for key in sorted(by_key, key=str):
        r = check_register(by_key[key], None, max_states, key=str(key))
        verdicts[r.verdict] += 1
        if r.verdict != LINEARIZABLE:
            keys.append({"key": key, "verdict": r.verdict, "ops": r.ops, "explored": r.explored,
                         "detail": r.detail})
        if r.verdict == VIOLATION:
            anomalies.append(f"register key {key!r} is not linearizable: {r.detail}")
    valid = False if verdicts[VIOLATION] else ("unknown" if verdicts[UNKNOWN] else True)
    return {"valid": valid, "anomalies": anomalies, "keys": len(by_key), "verdicts": verdicts,
            "not_linearizable_or_unknown": keys, "seconds": round(time.monotonic() - t0, 2),
            "max_states": max_states}


# ------------------------------------------------------------------ bank
def check_bank(ops, accounts: int, total: int, final: dict | None) -> dict:
    anomalies = []
    reads = [o for o in ops if o.f == "read" and o.status == OK]
    bad = 0
    for o in reads:
        bal = o.output or {}
        problems = []
        if len(bal) != accounts:
            problems.append(f"{len(bal)} accounts instead of {accounts}")
        s = sum(bal.values())
        if s != total:
            problems.append(f"total {s} instead of {total}")
        neg = {k: v for k, v in bal.items() if v < 0}
        if neg:
            problems.append(f"negative balances {neg}")
        if problems:
            bad += 1
            if len(anomalies) < 20:
                anomalies.append(f"bank read #{o.id} at {o.level} on node {o.node} "
                                 f"(t={o.invoke:.2f}): " + "; ".join(problems))
    if final is not None:
        s = sum(final.values())
        if s != total or len(final) != accounts or any(v < 0 for v in final.values()):
            anomalies.append(f"final balances {final} (total {s}, expected {total})")
    transfers = [o for o in ops if o.f == "transfer"]
    by_level: dict = {}
    for o in reads:
        by_level[o.level] = by_level.get(o.level, 0) + 1
    return {"valid": not anomalies, "anomalies": anomalies, "reads": len(reads),
            "reads_by_level": by_level, "bad_reads": bad,
            "transfers_ok": sum(1 for o in transfers if o.status == OK and o.output),
            "transfers_refused": sum(1 for o in transfers if o.status == OK and not o.output),
            "transfers_unknown": sum(1 for o in transfers if o.status == INFO),
            "final": final}


# ------------------------------------------------------------------ appends
def check_appends(ops, final: dict | None) -> dict:
    """final: {val: count} read at the end (linearizable)."""
    if final is None:
        return {"valid": "unknown", "anomalies": ["no final read of the appends table"]}
    acked = {o.value for o in ops if o.status == OK}
    attempted = {o.value for o in ops if o.status in (OK, INFO)}
    failed = {o.value for o in ops if o.status == FAIL}
    present = set(final)
    lost = sorted(acked - present)
    dup = sorted(v for v, n in final.items() if n > 1)
    phantom = sorted(present - attempted)
    anomalies = []
    if lost:
        anomalies.append(f"{len(lost)} acknowledged appends lost, e.g. {lost[:5]}")
    if dup:
        anomalies.append(f"{len(dup)} appends present more than once, e.g. {dup[:5]}")
    if phantom:
        anomalies.append(f"{len(phantom)} appends present that were never attempted or had "
                         f"failed, e.g. {phantom[:5]}" + (" (failed ones)" if set(phantom) & failed else ""))
    unknown = {o.value for o in ops if o.status == INFO}
    return {"valid": not anomalies, "anomalies": anomalies, "acknowledged": len(acked),
            "unknown": len(unknown), "unknown_present": len(unknown & present),
            "present": len(present), "lost": len(lost), "duplicated": len(dup)}


# ------------------------------------------------------------------ staleness (measured)
def measure_staleness(ops) -> dict:
    """For each `none` read: acknowledged appends (acked before the read was invoked) that it
    did not see, and how long the oldest of those had been acknowledged."""
    acks = sorted((o.complete, o.output) for o in ops
                  if o.workload == "append" and o.status == OK and isinstance(o.output, int))
    reads = [o for o in ops if o.f == "stale-read" and o.status == OK]
    lags_s, lags_rows = [], []
    for r in reads:
        mx = (r.output or {}).get("max_id", 0)
        missing = [t for t, i in acks if t < r.invoke and i > mx]
        lags_rows.append(len(missing))
        lags_s.append(r.invoke - min(missing) if missing else 0.0)
    stale = sum(1 for n in lags_rows if n)
    return {"valid": True, "anomalies": [], "reads": len(reads), "stale_reads": stale,
            "staleness_seconds": percentiles(lags_s), "missing_appends": percentiles(lags_rows),
            "note": "measured, not judged: level none may read a replica that is behind"}


def percentiles(xs) -> dict:
    if not xs:
        return {"n": 0}
    s = sorted(xs)

    def p(q):
        return s[min(len(s) - 1, int(q * len(s)))]
    r = lambda v: round(v, 4) if isinstance(v, float) else v  # noqa: E731
    return {"n": len(s), "p50": r(p(0.5)), "p90": r(p(0.9)), "p99": r(p(0.99)), "max": r(s[-1])}


# ------------------------------------------------------------------ convergence
def content_hash(rows) -> str:
    return hashlib.sha256(msgpack.packb([list(r) for r in rows], use_bin_type=True)).hexdigest()


def check_convergence(cluster, c, tables, timeout: float = 60.0) -> dict:
    """Every member at one applied index (= the leader's commit index), then an identical
    hash of every table's full ordered dump on each, with nothing applied meanwhile."""
    ids = [i for i in cluster.node_ids() if cluster.nodes[i].state == "running"]
    deadline = time.monotonic() + timeout
    last = None
    index = None
    while time.monotonic() < deadline:
        try:
            c.refresh()
            sts = {i: c.status(i, timeout=2.0) for i in ids}
            if all("error" not in s for s in sts.values()):
                applied = {s["applied"] for s in sts.values()}
                commits = {s.get("commit") for s in sts.values()}
                last = {i: (s["applied"], s.get("commit")) for i, s in sts.items()}
                if len(applied) == 1 and applied == commits:
                    index = applied.pop()
                    break
            else:
                last = {i: s.get("error") for i, s in sts.items()}
        except Exception as e:  # noqa: BLE001
            last = repr(e)
        time.sleep(0.2)
    if index is None:
        return {"valid": False, "anomalies": [f"replicas did not converge within {timeout:g}s: {last}"]}
    hashes = {}
    for i in ids:
        h = hashlib.sha256()
        for t in tables:
            r = c.query_on(i, f"SELECT * FROM {t} ORDER BY 1", level="none")
            h.update(content_hash(r[0].rows).encode())
        hashes[i] = h.hexdigest()[:16]
    after = {i: c.status(i, timeout=2.0).get("applied") for i in ids}
    anomalies = []
    if set(after.values()) != {index}:
        anomalies.append(f"applied index moved during the dump: {after} vs {index}")
    if len(set(hashes.values())) != 1:
        anomalies.append(f"replicas differ at applied index {index}: {hashes}")
    return {"valid": not anomalies, "anomalies": anomalies, "index": index, "hashes": hashes,
            "nodes": ids}
