"""One randomized simulation run, as the test suite and `ddb sim --random` do it.

    chaos     a random cluster (3 or 5 nodes, random flow-control and snapshot
              settings), clients writing/reading/cas-ing, the nemesis injecting a
              fault or a control action every few dozen virtual milliseconds
    calm      heal and clear the network, restart and resume every node, stop
              issuing new operations
    converge  run until the leader's log is fully committed, applied and identical
              on every member (a run that never converges is reported as a
              liveness failure)
    verify    same state machine state on every member, every acknowledged write
              in the final log, and the client history linearizable

Invariants (invariants.py) are checked after every single step throughout.
Everything derives from the seed; `replay_command` reproduces the run exactly.
"""
from __future__ import annotations

import random
import time
import traceback
from dataclasses import dataclass, field

from .clients import Workload
from .invariants import InvariantViolation, term_at
from .linearizability import VIOLATION, check_kv
from .nemesis import ACTIONS, Nemesis
from .simulator import Simulator

DEFAULT_STEPS = 15_000
CONVERGE_STEPS = 60_000


@dataclass
class RunResult:
    seed: int
    nodes: int
    steps: int = 0
    virtual_ms: float = 0.0
    wall_s: float = 0.0
    violations: list = field(default_factory=list)
    error: str = ""
    converged: bool = False
    linearizability: str = ""
    lin_summary: str = ""
    ops: dict = field(default_factory=dict)
    faults: dict = field(default_factory=dict)
    settings: dict = field(default_factory=dict)
    replay_command: str = ""
    nemesis_log: list = field(default_factory=list)
    final: str = ""

    @property
    def ok(self) -> bool:
        return not self.violations and not self.error and self.converged and \
            self.linearizability != VIOLATION

    def report(self) -> str:
        lines = [f"seed {self.seed}: {'OK' if self.ok else 'FAILED'} — {self.nodes} nodes, "
                 f"{self.steps} steps, {self.virtual_ms:.0f} virtual ms, {self.wall_s:.2f}s wall",
                 f"  settings: {self.settings}",
                 f"  faults/actions: {dict(sorted(self.faults.items()))}",
                 f"  operations: {dict(sorted(self.ops.items()))}",
                 f"  invariant violations: {len(self.violations)}",
                 f"  converged: {self.converged}",
                 f"  linearizability: {self.lin_summary or self.linearizability}"]
        for v in self.violations:
            lines.append(f"  VIOLATION {v}")
        if self.error:
            lines.append("  ERROR " + self.error.rstrip().replace("\n", "\n  "))
        if not self.ok:
            lines.append("  last nemesis actions:\n    " + "\n    ".join(self.nemesis_log[-15:]))
            lines.append("  final cluster:\n    " + self.final.replace("\n", "\n    "))
            lines.append(f"  replay: {self.replay_command}")
        return "\n".join(lines)


def replay_command(seed: int, nodes: int | None, steps: int | None) -> str:
    cmd = f"ddb sim --random --seed {seed}"
    if nodes is not None:
        cmd += f" --nodes {nodes}"
    if steps is not None and steps != DEFAULT_STEPS:
        cmd += f" --steps {steps}"
    return cmd


def choose_settings(rng: random.Random, nodes: int | None) -> dict:
    return {
        "nodes": nodes or rng.choice([3, 3, 5]),
        "config": {
            "pre_vote": rng.random() < 0.8,
            "check_quorum": rng.random() < 0.8,
            "max_entries_per_msg": rng.choice([1, 3, 64]),
            "max_inflight_msgs": rng.choice([1, 4, 256]),
            "max_snapshot_chunk": rng.choice([64, 512, 1 << 20]),
        },
        "auto_compact": rng.choice([None, (10, 0), (30, 5)]),
        "clients": rng.choice([2, 3, 4]),
        "keys": rng.choice([("a",), ("a", "b"), ("a", "b", "c", "d")]),
    }


def run_random(seed: int, nodes: int | None = None, steps: int | None = None,
               log=None, max_lin_states: int = 200_000, exclude=(),
               compact_before_add: bool = False) -> RunResult:
    """exclude: nemesis action names to leave out (e.g. ("add",) to look past a
    known membership bug)."""
    t0 = time.perf_counter()
    rng = random.Random(f"ddb-sim/{seed}/schedule")
    settings = choose_settings(rng, nodes)
    # the disk's speed from a stream of its own, so the schedules of older seeds stay as
    # they were: one seed in four has log writes as slow as several network hops (up to 3
    # ticks), which keeps Readies in flight while messages come and go
    disk = random.Random(f"ddb-sim/{seed}/disk")
    settings["persist_ms"] = (0.1, 1.0) if disk.random() < 0.75 else (1.0, 30.0)
    n = settings["nodes"]
    budget = steps or DEFAULT_STEPS
    res = RunResult(seed, n, settings={k: v for k, v in settings.items()},
                    replay_command=replay_command(seed, nodes, steps))
    sim = Simulator(n, seed, config=settings["config"], auto_compact=settings["auto_compact"],
                    persist_ms=settings["persist_ms"], log=log)
    wl = Workload(sim, settings["clients"], settings["keys"])
    actions = {k: v for k, v in ACTIONS.items() if k not in exclude}
    play_and_check(sim, res, wl, budget,
                   lambda: Nemesis(sim, rng, actions=actions, compact_before_add=compact_before_add),
                   lambda: verify_final(sim, wl), max_lin_states=max_lin_states)
    res.wall_s = time.perf_counter() - t0
    return res


def play_and_check(sim: Simulator, res: RunResult, wl, budget: int, make_nemesis, verify, *,
                   setup=None, max_lin_states: int = 200_000) -> None:
    """What every randomized run does once its simulator and workload exist: `setup()`, play
    the workload against the nemesis for `budget` steps, `verify()` a converged end state;
    then violations, errors, counts, the final picture and the linearizability verdict of
    the history (the resolved one when converged: stronger) go into `res`."""
    nem = None
    try:
        if setup is not None:
            setup()
        nem = make_nemesis()
        res.converged = play(sim, nem, wl, budget)
        if res.converged:
            verify()
    except InvariantViolation as v:
        if v not in res.violations:
            res.violations.append(v)
    except Exception:
        res.error = traceback.format_exc()
    res.violations = list(sim.violations) or res.violations
    res.steps = sim.steps
    res.virtual_ms = sim.now
    res.ops = wl.history.counts()
    if nem is not None:
        res.faults = dict(nem.counts)
        res.nemesis_log = nem.log
    res.final = sim.describe() + f"\nnetwork: {sim.net.describe()}"
    ops = wl.resolved() if res.converged else wl.history.ops
    lin = check_kv(ops, max_states=max_lin_states)
    res.linearizability = lin.verdict
    res.lin_summary = lin.summary()


def close_state_machines(sim: Simulator) -> None:
    """After a run: close every node's SQL state machine (its connections and files)."""
    for node in sim.nodes.values():
        try:
            node.sm.close()
        except Exception:  # noqa: BLE001  (a crashed node's machine may be half closed)
            pass


def play(sim: Simulator, nem, wl, budget: int) -> bool:
    """Chaos for `budget` steps (nemesis and workload polled between steps), then calm and
    converge; True when the cluster converged with no operation outstanding."""
    for _ in range(budget):
        nem.poll()
        wl.poll()
        if sim.step() is None:  # everybody is down: let time pass to the next action
            sim.now = max(sim.now, nem.next_at)
    nem.calm()
    wl.stop()
    for k in range(CONVERGE_STEPS):
        wl.poll()
        if k % 64 == 0:
            nem.tend()
            if sim.converged() and wl.idle():
                break
        if sim.step() is None:
            break
    return sim.converged() and wl.idle()


def verify_final(sim: Simulator, wl: Workload) -> None:
    """After convergence: every member holds the same state, and every acknowledged
    write is in the final log."""
    chk = sim.checker
    lid = sim.leader()
    lr = sim.nodes[lid].raft
    cs = lr.conf_state
    ref = sim.nodes[lid].sm.snapshot()
    for i in tuple(cs.voters) + tuple(cs.learners):
        if sim.nodes[i].sm.snapshot() != ref:
            chk.fail("state machine safety", f"n{i}'s state differs from leader n{lid}'s "
                     f"after convergence")
    first = sim.nodes[lid].storage.first_index()
    for idx, (term, _data) in sorted(chk.acked_all.items()):
        if idx > lr.commit_index:
            chk.fail("acknowledged write lost", f"acknowledged index {idx} is beyond the final "
                     f"commit index {lr.commit_index}")
        t = term_at(lr, idx)
        if t is None and idx < first:
            t = chk.committed.get(idx)  # compacted into the leader's snapshot
        if t != term:
            chk.fail("acknowledged write lost", f"acknowledged ({idx}, {term}) but the final "
                     f"log has term {t} there")
