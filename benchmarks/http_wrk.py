#!/usr/bin/env python3
"""HTTP write and read throughput of a 3-node ddb cluster with wrk, beside etcd's gateway.

The workload follows ../shared/peers/README.md: 100-byte values, short keys, all load to the
leader, wrk with 1 thread and N connections for a fixed time (default 10 s, safety cap
1M requests). ddb writes are rqlite-style ``POST /db/execute`` with a parameterised INSERT
(one statement, one Raft entry per request); reads are ``GET /db/query`` at level weak
(leader-local, like etcd's serializable get) and linearizable (ReadIndex, like etcd's
default get). Then, unless --no-etcd, etcd's own benchmark script runs (one fresh
cluster, wrk only) so both come from the same session.

Prints one JSON line per measurement and a markdown table at the end. Bounded: every wrk
run has a fixed duration and a subprocess timeout; the cluster is stopped at exit.

    python benchmarks/http_wrk.py [--secs 10] [--clients 16,64] [--no-etcd]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
PEERS = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "peers")

LUA = r"""
local mode = os.getenv("WRK_MODE") or "put"
local prefix = os.getenv("WRK_PREFIX") or "w"
local nkeys = tonumber(os.getenv("WRK_NKEYS") or "2000")
local vsize = tonumber(os.getenv("WRK_VALUE_SIZE") or "100")
local limit = tonumber(os.getenv("WRK_LIMIT_PER_THREAD") or "1000000")
local threads = {}
local next_id = 0
function setup(thread) thread:set("id", next_id); next_id = next_id + 1; table.insert(threads, thread) end
sent, got, errs = 0, 0, 0
local value
function init(args) sent, got, errs = 0, 0, 0; value = string.rep("v", vsize); math.randomseed(os.time() + id) end
local hdr = { ["Content-Type"] = "application/json" }
function request()
  sent = sent + 1
  if mode == "put" or mode == "putq" then
    local body = '[["INSERT INTO kv(k, v) VALUES(?, ?)","' .. prefix .. "-" .. id .. "-" .. sent .. '","' .. value .. '"]]'
    return wrk.format("POST", mode == "put" and "/db/execute" or "/db/execute?queue", hdr, body)
  else
    local k = "s-" .. math.random(0, nkeys - 1)
    return wrk.format("GET", "/db/query?level=" .. mode .. "&q=SELECT%20v%20FROM%20kv%20WHERE%20k%3D%27" .. k .. "%27")
  end
end
function response(status, headers, body)
  got = got + 1
  local bad = (status ~= 200) or (body == nil) or (body:find('"error"', 1, true) ~= nil)
  if mode == "put" then bad = bad or (body:find('"rows_affected":1', 1, true) == nil)
  elseif mode == "putq" then bad = bad or (body:find('"sequence_number"', 1, true) == nil)
  else bad = bad or (body:find('"values"', 1, true) == nil) end
  if bad then errs = errs + 1 end
  if got >= limit then wrk.thread:stop() end
end
function done(summary, latency, requests)
  local body_errs = 0
  for _, t in ipairs(threads) do body_errs = body_errs + (t:get("errs") or 0) end
  local e = summary.errors
  io.write(string.format('WRKJSON {"requests":%d,"errors":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, body_errs + e.connect + e.read + e.write + e.timeout, summary.duration,
    latency:percentile(50), latency:percentile(99), latency.max))
end
"""


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


_CLK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds (user, system) a process has used so far (all its threads)."""
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    fl = st[st.rindex(")") + 2:].split()
    return int(fl[11]) / _CLK, int(fl[12]) / _CLK


def _machine_busy() -> float:
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:9]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / _CLK


class CpuMeter:
    """Where the CPU of one measurement went: each ddb node (the leader apart), wrk (the load
    generator, a waited-for child) and everything else on the machine (other developers)."""

    def __init__(self, pids: dict[str, int]):
        self.pids = pids

    def __enter__(self):
        self.t0 = time.monotonic()
        self.busy0 = _machine_busy()
        self.child0 = _children_cpu()
        self.cpu0 = {k: _proc_cpu(p) for k, p in self.pids.items()}
        return self

    def __exit__(self, *exc):
        self.wall = time.monotonic() - self.t0
        now = {k: _proc_cpu(p) for k, p in self.pids.items()}
        self.user = {k: now[k][0] - self.cpu0[k][0] for k in now}
        self.system = {k: now[k][1] - self.cpu0[k][1] for k in now}
        self.cpu = {k: self.user[k] + self.system[k] for k in now}
        self.wrk = _children_cpu() - self.child0
        self.busy = _machine_busy() - self.busy0

    def fields(self, ops: int) -> dict:
        ours = sum(self.cpu.values()) + self.wrk
        out = {f"{k}_cpu_cores": round(v / self.wall, 2) for k, v in self.cpu.items()}
        out.update({"wrk_cpu_cores": round(self.wrk / self.wall, 2),
                    "foreign_cpu_cores": round(max(0.0, self.busy - ours) / self.wall, 2),
                    "machine_busy_cores": round(self.busy / self.wall, 2)})
        node = [k for k in self.cpu if k == "leader" or k.startswith("leader_worker")]
        if len(node) > 1:       # the leader's node: its process and its HTTP read workers
            out["leader_node_cpu_cores"] = round(sum(self.cpu[k] for k in node) / self.wall, 2)
        if ops:
            out.update({f"{k}_cpu_us_per_op": round(v / ops * 1e6, 1) for k, v in self.cpu.items()})
            if len(node) > 1:
                out["leader_node_cpu_us_per_op"] = round(sum(self.cpu[k] for k in node) / ops * 1e6, 1)
            out["leader_user_us_per_op"] = round(self.user.get("leader", 0) / ops * 1e6, 1)
            out["leader_system_us_per_op"] = round(self.system.get("leader", 0) / ops * 1e6, 1)
            out["wrk_cpu_us_per_op"] = round(self.wrk / ops * 1e6, 1)
        return out


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def _py_spy() -> str:
    here = os.path.join(os.path.dirname(sys.executable), "py-spy")
    return here if os.path.exists(here) else (shutil.which("py-spy") or "py-spy")


def wrk(url: str, env: dict, conns: int, secs: int, lua: str, cap: int = 1_000_000,
        pids: dict | None = None, profile: str | None = None) -> dict:
    """One wrk run; with ``profile`` (a file name), py-spy samples the leader meanwhile and
    writes collapsed stacks there (see profile_summary.py)."""
    e = dict(os.environ, **{k: str(v) for k, v in env.items()}, WRK_LIMIT_PER_THREAD=str(cap))
    argv = ["wrk", "-t", "1", "-c", str(conns), "-d", f"{secs}s", "--timeout", "30s", "-s", lua, url]
    spy = None
    if profile:
        spy = subprocess.Popen([_py_spy(), "record", "--pid", str(pids["leader"]), "--rate", "250",
                                "--duration", str(secs), "--nonblocking", "--format", "raw",
                                "--output", profile], stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    with CpuMeter(pids or {}) as meter:
        r = subprocess.run(argv, env=e, capture_output=True, text=True, timeout=secs + 60)
    if spy is not None:
        spy.wait(timeout=60)
    line = [x for x in r.stdout.splitlines() if x.startswith("WRKJSON ")]
    if r.returncode != 0 or not line:
        raise RuntimeError(f"wrk failed rc={r.returncode}: {r.stdout[-400:]} {r.stderr[-400:]}")
    d = json.loads(line[-1][8:])
    s = d["duration_us"] / 1e6
    ok = d["requests"] - d["errors"]
    return {"ops": ok, "errors": d["errors"], "secs": round(s, 3), "ops_per_s": round(ok / s, 1),
            "p50_ms": round(d["p50_us"] / 1e3, 3), "p99_ms": round(d["p99_us"] / 1e3, 3),
            "max_ms": round(d["max_us"] / 1e3, 3), **meter.fields(d["requests"])}


def post(url: str, body) -> dict:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        return json.loads(r.read())


def run_ddb(args) -> list[dict]:
    from ddb_node.cluster import LocalCluster
    out = []
    tmp = tempfile.mkdtemp(prefix="ddb-wrk-")
    lua = os.path.join(tmp, "ddb_kv.lua")
    with open(lua, "w") as f:
        f.write(LUA)
    try:
        extra = ("--http-workers", str(args.http_workers)) if args.http_workers else ()
        with LocalCluster(3, http=True, storage=args.storage, extra_args=extra) as c:
            lid = c.wait_for_leader()
            base = "http://" + c.nodes[lid].http_addr
            post(base + "/db/execute", ["CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT)"])
            v = "v" * 100
            for i in range(0, 2000, 500):
                post(base + "/db/execute", [["INSERT INTO kv(k, v) VALUES(?, ?)", f"s-{j}", v]
                                            for j in range(i, i + 500)])
            pids = {("leader" if i == lid else f"follower{i}"): n.proc.pid for i, n in c.nodes.items()}
            with urllib.request.urlopen(base + "/status", timeout=30) as r:
                workers = json.loads(r.read())["http"]["workers"].get("pids", [])
            pids.update({f"leader_worker{k}": pid for k, pid in enumerate(workers)})
            def prof(name):
                return os.path.join(args.profile, f"{name}.txt") if args.profile else None
            for conns in args.clients:
                r = wrk(base, {"WRK_MODE": "put", "WRK_PREFIX": f"p{conns}"}, conns, args.secs, lua,
                        pids=pids, profile=prof(f"put-{conns}"))
                out.append(dict(peer="ddb", measurement="put", clients=conns, client="wrk",
                                http_workers=args.http_workers, **r))
                log(json.dumps(out[-1]))
            if args.queued:
                out.append(queued_put(base, args, lua, pids))
                log(json.dumps(out[-1]))
            for level in args.levels:
                for conns in args.read_clients:
                    r = wrk(base, {"WRK_MODE": level}, conns, args.secs, lua, pids=pids,
                            profile=prof(f"get_{level}-{conns}"))
                    out.append(dict(peer="ddb", measurement=f"get_{level}", clients=conns, client="wrk",
                                    http_workers=args.http_workers, **r))
                    log(json.dumps(out[-1]))
            if c.crashed():
                raise RuntimeError(f"nodes crashed during the benchmark: {c.crashed()}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


def _count(base: str, prefix: str) -> int:
    q = urllib.parse.quote(f"SELECT count(*) FROM kv WHERE k LIKE '{prefix}-%'")
    with urllib.request.urlopen(f"{base}/db/query?level=strong&q={q}", timeout=30) as r:
        return json.loads(r.read())["results"][0]["values"][0][0]


def queued_put(base: str, args, lua: str, pids: dict) -> dict:
    """rqlite's queued writes (``?queue``): wrk counts the accepted requests; the durable rate
    is the rows that reached the database over the time until the queue had drained."""
    conns = args.clients[0] if args.clients else 16
    t0 = time.monotonic()
    r = wrk(base, {"WRK_MODE": "putq", "WRK_PREFIX": "q"}, conns, args.secs, lua, pids=pids)
    last, n, reached = -1, _count(base, "q"), time.monotonic()
    while n != last and time.monotonic() - t0 < args.secs + 30:
        time.sleep(0.2)                      # polling the row count until it stops growing
        last, n = n, _count(base, "q")
        if n != last:
            reached = time.monotonic()
    drained = reached - t0
    return dict(peer="ddb", measurement="put_queued", clients=conns, client="wrk", **r,
                rows_written=n, durable_rows_per_s=round(n / drained, 1))


def run_etcd(args) -> list[dict]:
    script = os.path.join(PEERS, "etcd_bench.py")
    if not os.path.exists(script):
        log(f"no etcd benchmark at {script}")
        return []
    argv = [sys.executable, script, "--runs", "1", "--seq-ops", "200", "--write-ops", "2000",
            "--read-ops", "2000", "--write-clients", ",".join(map(str, args.clients)),
            "--read-clients", ",".join(map(str, args.read_clients)), "--wrk-secs", str(args.secs),
            "--time-limit", "20", "--quiet-wait", "0"]
    log("running " + " ".join(argv))
    r = subprocess.run(argv, capture_output=True, text=True, timeout=900)
    rows = []
    for line in r.stdout.splitlines():
        try:
            d = json.loads(line)
        except ValueError:
            continue
        if d.get("client") == "wrk" and not d.get("summary"):
            rows.append(d)
    if r.returncode != 0:
        log(f"etcd benchmark rc={r.returncode}: {r.stderr[-800:]}")
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| peer | measurement | connections | ops/s | p50 ms | p99 ms | errors "
             "| leader CPU µs/op (user+sys) | wrk cores | foreign cores |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for d in rows:
        lines.append(f"| {d.get('peer')} | {d.get('measurement')} | {d.get('clients')} | "
                     f"{d.get('ops_per_s')} | {d.get('p50_ms')} | {d.get('p99_ms')} | {d.get('errors')} "
                     f"| {d.get('leader_cpu_us_per_op', '-')} ({d.get('leader_user_us_per_op', '-')}"
                     f"+{d.get('leader_system_us_per_op', '-')}) | {d.get('wrk_cpu_cores', '-')} "
                     f"| {d.get('foreign_cpu_cores', '-')} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--secs", type=int, default=10)
    p.add_argument("--clients", default="16,64")
    p.add_argument("--read-clients", default="16")
    p.add_argument("--levels", default="weak,linearizable,none", help="read levels to measure")
    p.add_argument("--storage", default="disk", choices=("disk", "memory"))
    p.add_argument("--no-etcd", action="store_true")
    p.add_argument("--http-workers", type=int, default=0,
                   help="the nodes' --http-workers (read worker processes; 0: none)")
    p.add_argument("--queued", action="store_true", help="also measure ?queue writes (WriteQueue)")
    p.add_argument("--profile", metavar="DIR", help="py-spy the leader during each run, stacks into DIR")
    args = p.parse_args(argv)
    args.clients = [int(x) for x in args.clients.split(",")]
    args.read_clients = [int(x) for x in args.read_clients.split(",")]
    args.clients = [x for x in args.clients if x > 0]
    args.levels = [x for x in args.levels.split(",") if x]
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)
    if not shutil.which("wrk"):
        log("wrk is not installed (apt-get install wrk)")
        return 2
    rows = run_ddb(args)
    if not args.no_etcd:
        time.sleep(1)
        rows += run_etcd(args)
    for d in rows:
        print(json.dumps(d))
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
