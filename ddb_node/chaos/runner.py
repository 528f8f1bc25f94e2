"""Run one chaos test: start a cluster, run the workloads' clients while the nemesis injects
faults, heal everything, check the history, write history.jsonl + report.{json,md}."""
from __future__ import annotations

import glob
import json
import os
import random
import shutil
import sys
import threading
import time
from dataclasses import dataclass, field

from ddb_node.cluster import LocalCluster
from ddb_node.client import Client
from ddb_node.errors import BadRequest, DdbError, StatementError

from . import nemesis as nem
from .checkers import check_convergence
from .history import FAIL, INFO, OK, History
from .report import render, summarize
from .txbank import TxBank
from .workloads import WORKLOADS as _BASE_WORKLOADS

# every workload by name; txbank (interactive transactions, issue 16) builds on workloads.py
WORKLOADS = {**_BASE_WORKLOADS, "txbank": TxBank}

ALL_WORKLOADS = ["register", "bank", "append", "stale"]


@dataclass
class Config:
    name: str = "run"
    profile: str = "custom"
    seed: int = 1
    duration: float = 30.0
    nodes: int = 3
    workloads: list = field(default_factory=lambda: list(ALL_WORKLOADS))
    nemeses: list = field(default_factory=lambda: ["kill", "pause", "partition-halves"])
    netns: bool = False
    hold: tuple = (2.0, 4.0)           # seconds a fault stays
    quiet: tuple = (1.5, 3.0)          # seconds between faults
    out_dir: str = "chaos-runs"
    max_states: int = 200_000
    op_timeout: float = 5.0
    think: tuple = (0.005, 0.03)       # seconds a client waits between operations
    clients: dict = field(default_factory=dict)   # workload -> number of client threads
    keep_data: bool = False
    register_levels: tuple = ("linearizable", "strong")   # weak/none: to show the checker bite
    snapshot_entries: int = 2_000      # small: snapshots and log compaction happen under faults

    def describe(self) -> dict:
        return {"name": self.name, "profile": self.profile, "seed": self.seed,
                "duration": self.duration, "nodes": self.nodes, "workloads": self.workloads,
                "nemeses": self.nemeses, "netns": self.netns, "hold": list(self.hold),
                "quiet": list(self.quiet), "max_states": self.max_states,
                "op_timeout": self.op_timeout, "snapshot_entries": self.snapshot_entries,
                "register_levels": list(self.register_levels)}

    def reproduce(self) -> str:
        cmd = (f"python -m ddb_node.chaos --seed {self.seed} --duration {self.duration:g} "
               f"--nodes {self.nodes} --workloads {','.join(self.workloads)} "
               f"--nemeses {','.join(self.nemeses)} --hold {self.hold[0]:g},{self.hold[1]:g} "
               f"--quiet {self.quiet[0]:g},{self.quiet[1]:g}")
        if self.netns:
            cmd += " --netns"
        cmd += f" --snapshot-entries {self.snapshot_entries}"
        if tuple(self.register_levels) != ("linearizable", "strong"):
            cmd += f" --register-levels {','.join(self.register_levels)}"
        return cmd + "   # faults follow the seed; thread timing does not"


class Run:
    def __init__(self, cfg: Config, log=print):
        self.cfg = cfg
        self.log = log
        self.rng = random.Random(cfg.seed)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        self.dir = os.path.abspath(os.path.join(cfg.out_dir, f"{stamp}-{cfg.name}-seed{cfg.seed}"))
        os.makedirs(self.dir, exist_ok=True)
        self.hist = History()
        self.stop = threading.Event()
        self.crashes: list = []
        self.harness_errors: list = []
        self.liveness: list = []
        self.cluster = None

    # ------------------------------------------------------------------ cluster
    def _start_cluster(self):
        data = os.path.join(self.dir, "cluster")
        if self.cfg.netns:
            from .netns import NetnsCluster
            return NetnsCluster(self.cfg.nodes, data, timeout=60.0,
                                snapshot_entries=self.cfg.snapshot_entries)
        return LocalCluster(self.cfg.nodes, data, timeout=60.0,
                            snapshot_entries=self.cfg.snapshot_entries)

    # ------------------------------------------------------------------ clients
    def _worker(self, process: int, wl) -> None:
        rng = random.Random(self.cfg.seed * 1000 + process)
        c = Client(self.cluster.client_addresses(), timeout=self.cfg.op_timeout,
                   attempt_timeout=1.0)
        h = self.hist
        try:
            while not self.stop.is_set():
                spec = wl.next(rng, process)
                op = h.invoke(process, wl.name, spec.f, spec.key, spec.value, spec.expected, spec.level)
                try:
                    out, resp = spec.run(c)
                except (StatementError, BadRequest) as e:
                    # the request was refused as a whole (a failed transaction rolls back)
                    h.complete(op, FAIL, error=f"{type(e).__name__}: {e}")
                except DdbError as e:
                    h.complete(op, INFO if spec.write else FAIL, error=f"{type(e).__name__}: {e}")
                except Exception as e:  # noqa: BLE001 - a harness bug: record, keep going
                    h.complete(op, INFO if spec.write else FAIL, error=f"harness {type(e).__name__}: {e}")
                    self.harness_errors.append(f"{wl.name} {spec.f}: {type(e).__name__}: {e}")
                else:
                    h.complete(op, OK, out, node=resp.node, index=resp.index)
                    wl.observe(spec, out)
                self.stop.wait(rng.uniform(*self.cfg.think))
        finally:
            c.close()

    # ------------------------------------------------------------------ nemesis
    def _check_crashes(self) -> None:
        for i in self.cluster.crashed():
            n = self.cluster.nodes[i]
            self.crashes.append({"node": i, "time": round(self.hist.now(), 2),
                                 "exit": n.proc.returncode, "log_tail": _tail(n.log_path)})
            self.hist.note("crash", node=i, exit=n.proc.returncode)
            self.log(f"  !! node {i} crashed (exit {n.proc.returncode}); restarting it")
            n.state = "killed"
            try:
                self.cluster.restart(i)
            except Exception as e:  # noqa: BLE001
                self.log(f"  !! cannot restart node {i}: {e}")

    def _nemesis_loop(self, t_end: float) -> None:
        cfg, rng, h = self.cfg, self.rng, self.hist
        while time.monotonic() < t_end and cfg.nemeses:
            if self.stop.wait(min(rng.uniform(*cfg.quiet), max(0.0, t_end - time.monotonic()))):
                break
            self._check_crashes()
            if time.monotonic() >= t_end:
                break
            name = rng.choice(cfg.nemeses)
            ev = h.fault_start(name, {})
            try:
                inj = nem.NEMESES[name](self.cluster, rng)
            except Exception as e:  # noqa: BLE001
                h.fault_end(ev, error=f"inject: {type(e).__name__}: {e}")
                self.log(f"  {h.now():7.1f}s {name}: could not inject: {e}")
                self._recover()
                continue
            h.fault_update(ev, inj.detail, inj.targets_leader)
            self.log(f"  {h.now():7.1f}s {name} {inj.detail}")
            hold = rng.uniform(*cfg.hold)
            self.stop.wait(max(0.0, min(hold, t_end - time.monotonic() + 1.0)))
            err = ""
            try:
                inj.heal()
            except Exception as e:  # noqa: BLE001
                err = f"heal: {type(e).__name__}: {e}"
                self.log(f"  {h.now():7.1f}s {name}: heal failed: {e}")
                self._recover()
            h.fault_end(ev, err)
            self._check_crashes()
            try:
                self.cluster.wait_for_leader(30.0)
            except DdbError as e:
                self.liveness.append(f"no leader 30s after healing {name}#{ev.id}: {e}")
                self.log(f"  !! {e}")
                self._recover()

    def _recover(self) -> None:
        """Undo every fault: transport filters, network, paused and killed processes."""
        cl = self.cluster
        for i, n in list(cl.nodes.items()):
            try:
                if n.state == "paused":
                    cl.resume(i)
                elif n.state in ("killed", "stopped"):
                    cl.restart(i)
            except Exception as e:  # noqa: BLE001
                self.log(f"  recover node {i}: {e}")
        if hasattr(cl, "net_heal"):
            cl.net_heal()
        try:
            cl.heal()
        except Exception as e:  # noqa: BLE001
            self.log(f"  recover heal: {e}")

    # ------------------------------------------------------------------ the run
    def execute(self) -> dict:
        cfg = self.cfg
        self.log(f"chaos run {cfg.name}: seed {cfg.seed}, {cfg.duration:g}s, {cfg.nodes} nodes"
                 f"{' (network namespaces)' if cfg.netns else ''}, nemeses {','.join(cfg.nemeses)}")
        self.log(f"  output: {self.dir}")
        self.cluster = self._start_cluster()
        workloads = []
        results: dict = {}
        extra: dict = {}
        try:
            with Client(self.cluster.client_addresses(), timeout=30.0) as admin:
                for name in cfg.workloads:
                    wl = WORKLOADS[name](levels=tuple(cfg.register_levels)) if name == "register" \
                        else WORKLOADS[name]()
                    if name in cfg.clients:
                        wl.clients = cfg.clients[name]
                    wl.setup(admin)
                    workloads.append(wl)
            threads = []
            proc = 0
            for wl in workloads:
                for _ in range(wl.clients):
                    proc += 1
                    t = threading.Thread(target=self._worker, args=(proc, wl), daemon=True,
                                         name=f"chaos-{wl.name}-{proc}")
                    threads.append(t)
            self.hist.t0 = time.monotonic()
            for t in threads:
                t.start()
            t_end = time.monotonic() + cfg.duration
            self._nemesis_loop(t_end)
            remaining = t_end - time.monotonic()
            if remaining > 0:
                self.stop.wait(remaining)
            self.stop.set()
            for t in threads:
                t.join(cfg.op_timeout + 15)
            stuck = [t.name for t in threads if t.is_alive()]
            if stuck:
                self.harness_errors.append(f"client threads still running: {stuck}")
            self.hist.close_pending()
            self.log(f"  {self.hist.now():7.1f}s clients stopped; healing and checking")
            self._check_crashes()
            self._recover()
            try:
                self.cluster.wait_for_leader(60.0)
            except DdbError as e:
                self.liveness.append(f"no leader 60s after the final heal: {e}")
            with Client(self.cluster.client_addresses(), timeout=60.0) as c:
                finals = {}
                for wl in workloads:
                    if hasattr(wl, "final_read"):
                        try:
                            finals[wl.name] = wl.final_read(c)
                        except DdbError as e:
                            finals[wl.name] = None
                            self.liveness.append(f"final read of {wl.name} failed: {e}")
                for wl in workloads:
                    kw = {"final": finals.get(wl.name), "max_states": cfg.max_states}
                    results[wl.name] = wl.check(self.hist.ops, c, **kw)
                tables = sorted({t for wl in workloads for t in _TABLES.get(wl.name, ())})
                results["convergence"] = check_convergence(self.cluster, c, tables)
            self._check_crashes()
            results["crashes"] = {"valid": not self.crashes,
                                  "anomalies": [f"node {x['node']} exited with {x['exit']} at "
                                                f"t={x['time']}s outside the nemesis" for x in self.crashes],
                                  "crashed": self.crashes}
            extra["node_log_errors"] = _log_errors(self.cluster)
        finally:
            self.stop.set()
            try:
                self.cluster.close()
            except Exception as e:  # noqa: BLE001
                self.log(f"  close: {e}")
        extra["liveness"] = self.liveness
        extra["harness_errors"] = self.harness_errors[:50]
        hist_path = os.path.join(self.dir, "history.jsonl")
        self.hist.write(hist_path)
        extra["history_file"] = hist_path
        extra["run_dir"] = self.dir
        rep = summarize(cfg, self.hist, results, extra)
        with open(os.path.join(self.dir, "report.json"), "w") as f:
            json.dump(rep, f, indent=1, default=repr)
        text = render(rep)
        with open(os.path.join(self.dir, "report.md"), "w") as f:
            f.write(text)
        if rep["valid"] is True and not cfg.keep_data:
            # keep the node logs, drop the databases
            data = os.path.join(self.dir, "cluster")
            for p in glob.glob(os.path.join(data, "node*.log")):
                shutil.copy(p, self.dir)
            shutil.rmtree(data, ignore_errors=True)
        return rep


_TABLES = {"register": ("reg",), "bank": ("accounts",), "append": ("appends",),
           "stale": ("appends",), "txbank": ("txacct", "txlog")}


def _tail(path: str, n: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4000))
            return "\n".join(f.read().decode(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


def _log_errors(cluster) -> dict:
    """Tracebacks and ERROR lines the nodes logged (reported; a crash is judged separately)."""
    out = {}
    for i, n in cluster.nodes.items():
        try:
            with open(n.log_path, errors="replace") as f:
                lines = f.read().splitlines()
        except OSError:
            continue
        errs = [ln for ln in lines if " ERROR " in ln or ln.startswith("Traceback")]
        if errs:
            out[i] = {"count": len(errs), "first": errs[:5]}
    return out


def run(cfg: Config, log=print) -> dict:
    rep = Run(cfg, log).execute()
    return rep


def main_print(rep: dict, stream=sys.stdout) -> None:
    stream.write(render(rep))
