"""One randomized run of the whole request path: SQL state machines behind Replicas, SQL
clients sending real request frames to any node at every level, the nemesis breaking
things, then calm, converge, verify (see runner.py for the phases).

What it checks, beyond the core's invariants after every step (invariants.py): the checks
of sql_clients.py after every step (session exactly-once, weak/none read bounds, replies
only for committed entries), no unexpected error reply, the same register table and the
same session table on every member after convergence, and linearizability of the
writes, cas and `linearizable`/`strong` reads. Replay: `ddb sim --requests --seed N`.
"""
from __future__ import annotations

import random
import time

from ddb_node.protocol import ClientRequest, statement
from ddb_node.sql import StateMachine

from .linearizability import VIOLATION
from .nemesis import ACTIONS, Nemesis
from .runner import RunResult, choose_settings, close_state_machines, play_and_check
from .simulator import Simulator
from .sql_clients import SCHEMA, SqlWorkload

DEFAULT_STEPS = 6_000


def replay_command(seed: int, steps: int | None) -> str:
    cmd = f"ddb sim --requests --seed {seed}"
    return cmd + (f" --steps {steps}" if steps not in (None, DEFAULT_STEPS) else "")


def _sql_state_machine() -> StateMachine:
    return StateMachine(":memory:")


def _create_schema(sim: Simulator, budget_ms: float = 5_000.0) -> None:
    """The register table, through the log, before the chaos starts."""
    setup_through_log(sim, [statement(SCHEMA)], "the register table", budget_ms)


def setup_through_log(sim: Simulator, statements: list, what: str, budget_ms: float = 5_000.0) -> None:
    """Run `statements` through the log (retried at whoever leads) before a workload starts."""
    body = ClientRequest(statements, session=("setup", 1), timeout=1.0).to_wire()
    box: dict = {}
    end = sim.now + budget_ms
    while sim.now < end:
        if "reply" not in box:
            lid = sim.leader()
            if lid is not None and not box.get("sent"):
                box["sent"] = True
                sim.request(lid, body, lambda reply: box.update(reply=reply))
        elif box["reply"].get("ok"):
            return
        else:
            box.clear()
        if sim.step() is None:
            break
    raise RuntimeError(f"could not create {what} within the setup budget")


def _table(node) -> list:
    return node.sm.connection.execute(
        "SELECT 'reg', k, v FROM reg UNION ALL SELECT '_s', client, seq FROM _ddb_sessions "
        "ORDER BY 1, 2").fetchall()


def run_requests(seed: int, steps: int | None = None, log=None,
                 max_lin_states: int = 200_000) -> RunResult:
    t0 = time.perf_counter()
    rng = random.Random(f"ddb-sim/{seed}/requests/schedule")
    settings = choose_settings(rng, None)
    n = settings["nodes"]
    budget = steps or DEFAULT_STEPS
    res = RunResult(seed, n, settings=dict(settings), replay_command=replay_command(seed, steps))
    sim = Simulator(n, seed, sm_factory=_sql_state_machine, config=settings["config"],
                    auto_compact=settings["auto_compact"], log=log)
    wl = SqlWorkload(sim, settings["clients"], settings["keys"])
    play_and_check(sim, res, wl, budget, lambda: Nemesis(sim, rng, actions=dict(ACTIONS)),
                   lambda: _verify_final(sim, res), setup=lambda: _create_schema(sim),
                   max_lin_states=max_lin_states)
    if wl.errors and not res.error:
        res.error = "unexpected replies:\n" + "\n".join(wl.errors[:10])
    res.ops.update({f"served_{k}": v for k, v in sorted(wl.served.items())})
    res.wall_s = time.perf_counter() - t0
    close_state_machines(sim)
    return res


def _verify_final(sim: Simulator, res: RunResult) -> None:
    """After convergence every member holds the same registers and the same sessions."""
    lid = sim.leader()
    cs = sim.nodes[lid].raft.conf_state
    ref = _table(sim.nodes[lid])
    for i in tuple(cs.voters) + tuple(cs.learners):
        if _table(sim.nodes[i]) != ref:
            sim.checker.fail("state machine safety", f"n{i}'s registers or sessions differ from "
                             f"the leader n{lid}'s after convergence")
    # change data capture: every member recorded the very same change log
    digests = {i: sim.nodes[i].sm.changes.digest() for i in tuple(cs.voters) + tuple(cs.learners)}
    if len(set(digests.values())) > 1:
        sim.checker.fail("state machine safety", f"the change logs differ between members "
                         f"after convergence: {digests}")


def ok(res: RunResult) -> bool:
    return res.ok and res.linearizability != VIOLATION
