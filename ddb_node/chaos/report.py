"""The short report of a run: operations, faults, anomalies, latencies, availability during
faults and recovery after them. `summarize` builds a dict (saved as report.json);
`render` turns it into the text printed at the end and saved as report.md."""
from __future__ import annotations

import math

from .checkers import percentiles
from .history import INFO, OK

WRITE_FS = ("write", "cas", "transfer", "append")


def op_counts(ops) -> dict:
    out: dict = {}
    for o in ops:
        d = out.setdefault(o.workload, {}).setdefault(o.f, {})
        d[o.status or "pending"] = d.get(o.status or "pending", 0) + 1
    return out


def latencies(ops) -> dict:
    out: dict = {}
    groups: dict = {}
    for o in ops:
        if o.status == OK and o.latency is not None:
            name = f"{o.workload}:{o.f}" + (f"@{o.level}" if o.level else "")
            groups.setdefault(name, []).append(o.latency * 1000)
    for k, v in sorted(groups.items()):
        out[k] = {kk: (round(vv, 1) if isinstance(vv, float) else vv)
                  for kk, vv in percentiles(v).items()}
    return out


def _in_windows(t, windows) -> bool:
    return any(s <= t <= e for s, e in windows)


def availability(ops, faults, end: float) -> dict:
    """Share of operations that succeeded, invoked during a fault versus outside any."""
    windows = [(f.start, f.end if f.end is not None else end) for f in faults]
    during = [o for o in ops if _in_windows(o.invoke, windows)]
    outside = [o for o in ops if not _in_windows(o.invoke, windows)]

    def share(xs):
        return round(sum(1 for o in xs if o.status == OK) / len(xs), 4) if xs else None
    per: dict = {}
    for f in faults:
        e = f.end if f.end is not None else end
        xs = [o for o in ops if f.start <= o.invoke <= e]
        a = per.setdefault(f.nemesis, [0, 0])
        a[0] += sum(1 for o in xs if o.status == OK)
        a[1] += len(xs)
    return {"ok_share_during_faults": share(during), "ok_share_outside_faults": share(outside),
            "ops_during_faults": len(during), "ops_outside_faults": len(outside),
            "ok_share_by_nemesis": {k: round(a / b, 4) if b else None for k, (a, b) in sorted(per.items())}}


def recovery(ops, faults, end: float) -> dict:
    """Per fault: seconds from its start until the first write invoked after the start
    completed ok (unavailability for writes). Also the longest gap between ok writes."""
    writes = sorted((o for o in ops if o.f in WRITE_FS and o.status == OK), key=lambda o: o.invoke)
    per = []
    for f in faults:
        first = min((o.complete for o in writes if o.invoke >= f.start), default=None)
        per.append({"fault": f.id, "nemesis": f.nemesis, "targets_leader": f.targets_leader,
                    "start": round(f.start, 3),
                    "held": round((f.end or end) - f.start, 3),
                    "unavailable_s": round(first - f.start, 3) if first is not None else None})
    leader = [p for p in per if p["targets_leader"] and p["unavailable_s"] is not None]
    worst = max(leader, key=lambda p: p["unavailable_s"], default=None)
    done = sorted(o.complete for o in writes)
    gap, at = 0.0, None
    for a, b in zip(done, done[1:]):
        if b - a > gap:
            gap, at = b - a, a
    return {"per_fault": per,
            "worst_after_leader_fault": worst,
            "leader_fault_unavailability_s": percentiles([p["unavailable_s"] for p in leader]),
            "longest_gap_between_ok_writes_s": round(gap, 3), "longest_gap_at": at}


def summarize(cfg, hist, results: dict, extra: dict) -> dict:
    end = hist.now()
    ops = hist.ops
    anomalies = []
    for name, r in results.items():
        for a in r.get("anomalies", []):
            anomalies.append(f"[{name}] {a}")
    unknown = [name for name, r in results.items() if r.get("valid") == "unknown"]
    statuses = {OK: 0, "fail": 0, INFO: 0}
    for o in ops:
        statuses[o.status] = statuses.get(o.status, 0) + 1
    fault_counts: dict = {}
    for f in hist.faults:
        fault_counts[f.nemesis] = fault_counts.get(f.nemesis, 0) + 1
    return {
        "valid": not anomalies and not unknown or (False if anomalies else "unknown"),
        "config": cfg.describe(), "reproduce": cfg.reproduce(),
        "seconds": round(end, 1),
        "ops": {"total": len(ops), **statuses, "by_workload": op_counts(ops)},
        "faults": {"total": len(hist.faults), "by_nemesis": fault_counts,
                   "failed_to_inject_or_heal": [f"{f.nemesis}#{f.id}: {f.error}" for f in hist.faults if f.error]},
        "anomalies": anomalies, "unknown": unknown,
        "checkers": results,
        "latency_ms": latencies(ops),
        "availability": availability(ops, hist.faults, end),
        "recovery": recovery(ops, hist.faults, end),
        **extra,
    }


def render(rep: dict) -> str:
    cfg = rep["config"]
    L = []
    verdict = {True: "PASS", False: "FAIL", "unknown": "UNKNOWN"}[rep["valid"]]
    L.append(f"# ddb chaos run: {verdict}")
    L.append("")
    L.append(f"- profile `{cfg['profile']}` run `{cfg['name']}`, seed {cfg['seed']}, "
             f"{rep['seconds']}s, {cfg['nodes']} nodes"
             f"{' in network namespaces' if cfg['netns'] else ' on loopback'}")
    L.append(f"- workloads: {', '.join(cfg['workloads'])}; nemeses: {', '.join(cfg['nemeses'])}")
    o = rep["ops"]
    L.append(f"- operations: {o['total']} (ok {o.get('ok', 0)}, fail {o.get('fail', 0)}, "
             f"info/unknown {o.get('info', 0)})")
    L.append(f"- faults: {rep['faults']['total']} " +
             "(" + ", ".join(f"{k} {v}" for k, v in sorted(rep["faults"]["by_nemesis"].items())) + ")")
    if rep["faults"]["failed_to_inject_or_heal"]:
        L.append(f"- fault steps that errored: {rep['faults']['failed_to_inject_or_heal'][:5]}")
    L.append(f"- anomalies: {len(rep['anomalies'])}")
    for a in rep["anomalies"][:20]:
        L.append(f"  - {a}")
    if rep["unknown"]:
        L.append(f"- inconclusive checkers: {rep['unknown']}")
    c = rep["checkers"]
    if "register" in c:
        r = c["register"]
        L.append(f"- register: {r['keys']} keys, verdicts {r['verdicts']} (bound {r['max_states']} "
                 f"states per key, {r['seconds']}s)")
    if "bank" in c:
        b = c["bank"]
        L.append(f"- bank: {b['reads']} reads {b['reads_by_level']}, {b['transfers_ok']} transfers, "
                 f"{b['transfers_unknown']} unknown, bad reads {b['bad_reads']}, final {b['final']}")
    if "append" in c:
        a = c["append"]
        L.append(f"- appends: {a.get('acknowledged')} acknowledged, {a.get('unknown')} unknown "
                 f"({a.get('unknown_present')} of them present), lost {a.get('lost')}, "
                 f"duplicated {a.get('duplicated')}")
    if "stale" in c:
        s = c["stale"]
        L.append(f"- level none reads: {s['reads']}, {s['stale_reads']} stale; staleness seconds "
                 f"{s['staleness_seconds']}, missing appends {s['missing_appends']}")
    if "convergence" in c:
        cv = c["convergence"]
        L.append(f"- convergence: {'identical' if cv['valid'] else 'DIFFERENT'} at applied index "
                 f"{cv.get('index')} on nodes {cv.get('nodes')}")
    if "crashes" in c:
        L.append(f"- processes crashed outside the nemesis: {c['crashes'].get('crashed') or 'none'}")
    av = rep["availability"]
    L.append(f"- availability: ok share {av['ok_share_during_faults']} during faults, "
             f"{av['ok_share_outside_faults']} outside")
    rc = rep["recovery"]
    w = rc["worst_after_leader_fault"]
    if w:
        L.append(f"- worst unavailability after a leader kill/pause/partition: {w['unavailable_s']}s "
                 f"({w['nemesis']} #{w['fault']}); all leader faults: {rc['leader_fault_unavailability_s']}")
    L.append(f"- longest gap between successful writes: {rc['longest_gap_between_ok_writes_s']}s")
    if rep.get("liveness"):
        L.append(f"- liveness problems (reported, not safety anomalies): {rep['liveness'][:5]}")
    if rep.get("harness_errors"):
        L.append(f"- harness errors: {rep['harness_errors'][:5]}")
    logerr = rep.get("node_log_errors") or {}
    if logerr:
        L.append("- node log ERROR/Traceback lines: " +
                 ", ".join(f"node {k}: {v['count']}" for k, v in sorted(logerr.items())))
    L.append("")
    L.append("## Latency of successful operations (ms)")
    L.append("")
    L.append("| operation | n | p50 | p90 | p99 | max |")
    L.append("|---|---|---|---|---|---|")
    for k, v in rep["latency_ms"].items():
        L.append(f"| {k} | {v.get('n')} | {v.get('p50')} | {v.get('p90')} | {v.get('p99')} | {v.get('max')} |")
    L.append("")
    L.append("## Availability by nemesis (share of ops ok, invoked during the fault)")
    L.append("")
    for k, v in av["ok_share_by_nemesis"].items():
        L.append(f"- {k}: {v}")
    L.append("")
    L.append(f"History: `{rep.get('history_file')}`")
    L.append("")
    L.append(f"Reproduce: `{rep['reproduce']}`")
    return "\n".join(L) + "\n"


def _finite(x):
    return x if x is None or not isinstance(x, float) or math.isfinite(x) else None


def aggregate(report_paths) -> dict:
    """Totals over several runs' report.json files (for docs/reliability.md)."""
    import json
    tot = {"runs": 0, "seconds": 0.0, "ops": 0, "ok": 0, "info": 0, "fail": 0, "faults": 0,
           "by_nemesis": {}, "anomalies": 0, "unknown_checkers": 0, "crashes": 0,
           "worst_leader_fault_unavailability_s": None, "worst_run": None,
           "longest_gap_between_ok_writes_s": 0.0, "seeds": []}
    for p in report_paths:
        with open(p) as f:
            r = json.load(f)
        tot["runs"] += 1
        tot["seeds"].append(r["config"]["seed"])
        tot["seconds"] += r["seconds"]
        for k in ("ok", "info", "fail"):
            tot[k] += r["ops"].get(k, 0)
        tot["ops"] += r["ops"]["total"]
        tot["faults"] += r["faults"]["total"]
        for k, v in r["faults"]["by_nemesis"].items():
            tot["by_nemesis"][k] = tot["by_nemesis"].get(k, 0) + v
        tot["anomalies"] += len(r["anomalies"])
        tot["unknown_checkers"] += len(r["unknown"])
        tot["crashes"] += len(r["checkers"].get("crashes", {}).get("crashed", []))
        w = r["recovery"]["worst_after_leader_fault"]
        if w and (tot["worst_leader_fault_unavailability_s"] is None
                  or w["unavailable_s"] > tot["worst_leader_fault_unavailability_s"]):
            tot["worst_leader_fault_unavailability_s"] = w["unavailable_s"]
            tot["worst_run"] = f"{p} ({w['nemesis']} #{w['fault']})"
        tot["longest_gap_between_ok_writes_s"] = max(tot["longest_gap_between_ok_writes_s"],
                                                     r["recovery"]["longest_gap_between_ok_writes_s"])
    tot["seconds"] = round(tot["seconds"], 1)
    return tot
