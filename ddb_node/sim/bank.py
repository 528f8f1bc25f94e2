"""The bank workload: interactive transactions through the Replica's request path, under the
random fault schedule (issue 16). `ddb sim --bank --seed N` replays one run.

Accounts `acct(id, balance)` start with `INITIAL` each. Closed-loop clients either
    transfer  BEGIN (read_index), read both balances (tx op), write both and a row of
              `transfers(tid, src, dst, amount)` (tx op), COMMIT (a write with the condition
              and a session); a TransactionConflict anywhere, or a TransactionAborted for
              a leader change (the transaction lives in the term it began in), starts the
              transfer again
    audit     BEGIN, read every balance in one transaction (read-only: no commit)
Every step goes to a random live node (followers serve tx ops once they applied the read
point); lost answers are retried with the same body (a commit with the same session).

Checks: every audit sums to the total (at once); after convergence every member holds the
same accounts, transfers, sessions and table versions; the balances are the initial ones
plus the transfers recorded (no half transfer); every acknowledged transfer is recorded
exactly once and none recorded that was refused; the committed history (commit order, reads
and writes of every transfer, audits at their read points) is serializable
(serializability.py). Unknown commits are resolved by whether their session was applied.
"""
from __future__ import annotations

import math
import random
import time
from dataclasses import dataclass, field

from ddb_node.protocol import ClientRequest, statement
from ddb_node.sql import StateMachine
from ddb_node.sql.codec import EntryDecodeError, decode_entry

from .clients import ClientLoop
from .invariants import InvariantViolation
from .nemesis import ACTIONS, Nemesis
from .request_runner import setup_through_log
from .runner import RunResult, choose_settings, close_state_machines, play
from .serializability import Txn, check
from .simulator import Simulator

DEFAULT_STEPS = 6_000
INITIAL = 100
RETRYABLE = ("NotLeader", "NoLeader", "Unavailable", "Timeout")


def replay_command(seed: int, steps: int | None) -> str:
    cmd = f"ddb sim --bank --seed {seed}"
    return cmd + (f" --steps {steps}" if steps not in (None, DEFAULT_STEPS) else "")


@dataclass
class BankClient:
    id: int
    w: "BankWorkload"
    rng: random.Random
    pending: object = None           # the current operation (a dict) or None
    next_at: float = 0.0
    retry_at: float = math.inf
    attempt_deadline: float = math.inf
    seq: int = 0
    transfers: int = 0

    def due(self) -> float:
        if self.pending is None:
            return self.next_at
        return min(self.attempt_deadline, self.retry_at)

    def act(self) -> None:
        now = self.w.sim.now
        if self.pending is None:
            if now >= self.next_at:
                self._start()
        elif now >= self.retry_at:
            self.retry_at = math.inf
            self._send()
        elif now >= self.attempt_deadline:
            self.w.sim.forget_request(self.pending["token"])
            if self.pending["step"] == "commit":
                self.pending["unknown"] = True
            self._again("no answer")

    # ---- an operation: a sequence of steps --------------------------------------
    def _start(self) -> None:
        w, rng, now = self.w, self.rng, self.w.sim.now
        op = {"kind": "audit" if rng.random() < w.audit_ratio else "transfer",
              "deadline": now + w.op_deadline_ms, "conflicts": 0}
        if op["kind"] == "transfer":
            src, dst = rng.sample(range(1, w.accounts + 1), 2)
            self.transfers += 1
            op.update(src=src, dst=dst, amount=rng.randint(1, 10), tid=f"{self.id}.{self.transfers}")
        self.pending = op
        self._begin()

    def _begin(self) -> None:
        op = self.pending
        op.update(step="begin", reads={}, tables=set(), writes=[], unknown=False,
                  body={"op": "read_index", "timeout": self.w.timeout_s})
        self._send()

    def _tx(self, statements, read_only: bool, writes=()) -> dict:
        return {"op": "tx", "begin": self.pending["begin"], "term": self.pending["term"],
                "writes": list(writes), "statements": statements, "read_only": read_only,
                "timeout": self.w.timeout_s}

    def _next_step(self, reply: dict) -> None:
        op, w = self.pending, self.w
        step = op["step"]
        if step == "begin":
            op["begin"], op["term"] = reply["index"], reply["term"]
            op["step"] = "read"
            if op["kind"] == "audit":
                op["body"] = self._tx([statement("SELECT id, balance FROM acct ORDER BY id")], True)
            else:
                op["body"] = self._tx([statement("SELECT id, balance FROM acct WHERE id IN (?, ?) "
                                                 "ORDER BY id", [op["src"], op["dst"]])], True)
            return self._send()
        op["tables"].update(reply.get("tables") or ())
        if step == "read":
            cols = reply["results"][0].get("values") or [[], []]
            op["reads"] = dict(zip(cols[0], cols[1])) if cols else {}
            if op["kind"] == "audit":
                total = sum(op["reads"].values())
                if total != w.total or len(op["reads"]) != w.accounts:
                    w.violation("audit total", f"c{self.id} audit at index {op['begin']} read "
                                f"{op['reads']} (sum {total}, expected {w.total})")
                w.txns.append(Txn(f"audit c{self.id}@{op['begin']}", op["begin"], op["reads"]))
                w.counts["audit:ok"] += 1
                return self._finish()
            src, dst, amount = op["src"], op["dst"], op["amount"]
            op["new"] = {src: op["reads"][src] - amount, dst: op["reads"][dst] + amount}
            op["writes"] = [statement("UPDATE acct SET balance = ? WHERE id = ?", [op["new"][src], src]),
                            statement("UPDATE acct SET balance = ? WHERE id = ?", [op["new"][dst], dst]),
                            statement("INSERT INTO transfers VALUES (?, ?, ?, ?)",
                                      [op["tid"], src, dst, amount])]
            op["step"] = "write"
            op["body"] = self._tx(op["writes"], False)
            return self._send()
        if step == "write":
            self.seq += 1
            session = (f"bank{self.id}", self.seq)
            op["session"] = session
            op["step"] = "commit"
            op["body"] = ClientRequest(op["writes"], transaction=True, session=session,
                                       timeout=w.timeout_s,
                                       condition={"index": op["begin"], "term": op["term"],
                                                  "tables": sorted(op["tables"])}).to_wire()
            w.by_session[session] = op
            return self._send()
        # committed
        w.committed_ok.append(op)
        op["index"] = reply["index"]
        w.counts["transfer:ok"] += 1
        self._finish()

    # ---- sending and answers ------------------------------------------------------
    def _send(self) -> None:
        sim, op = self.w.sim, self.pending
        up = [n.id for n in sim.nodes.values() if n.alive and not n.retired]
        now = sim.now
        if not up or now >= op["deadline"]:
            return self._give_up("no node up" if not up else "deadline")
        node = self.rng.choice(up)
        self.attempt_deadline = now + self.w.timeout_s * 1000 + 3 * sim.tick_ms
        op["token"] = sim.request(node, op["body"], lambda reply, op=op: self._answered(op, reply))

    def _again(self, why: str) -> None:
        now = self.w.sim.now
        if now >= self.pending["deadline"]:
            return self._give_up(why)
        self.attempt_deadline = math.inf
        self.retry_at = now + 1.0 + 20.0 * self.rng.random()
        self.w._changed()

    def _give_up(self, why: str) -> None:
        op = self.pending
        if op["step"] == "commit" and op.get("unknown"):
            self.w.unknown.append(op)
            self.w.counts["transfer:info"] += 1
        else:
            self.w.counts[f"{op['kind']}:fail"] += 1
        self._finish()

    def _finish(self) -> None:
        self.pending = None
        self.retry_at = self.attempt_deadline = math.inf
        lo, hi = self.w.think_ms
        self.next_at = self.w.sim.now + lo + (hi - lo) * self.rng.random()
        self.w._changed()

    def _answered(self, op, reply: dict) -> None:
        if self.pending is not op:
            return
        if reply.get("ok"):
            res = reply.get("results") or []
            bad = next((r.get("error") for r in res if r.get("error")), None)
            if bad:
                self.w.errors.append(f"c{self.id} {op['kind']} {op['step']}: statement error {bad}")
                return self._give_up("statement error")
            return self._next_step(reply)
        err = reply.get("error") or {}
        typ = err.get("type")
        if typ == "TransactionConflict" or (typ == "TransactionAborted" and err.get("rerun")):
            self.w.counts["conflicts" if typ == "TransactionConflict" else "aborts"] += 1
            op["conflicts"] += 1
            if op["step"] == "commit":
                self.w.refused.append(op)
            if op["conflicts"] > self.w.max_conflicts or self.w.sim.now >= op["deadline"]:
                return self._give_up("conflicts")
            return self._begin()         # run the whole transaction again
        if typ in RETRYABLE:
            if op["step"] == "commit" and typ == "Timeout":
                op["unknown"] = True
            return self._again(typ)
        self.w.errors.append(f"c{self.id} {op['kind']} {op['step']}: unexpected {typ}: "
                             f"{err.get('message')}")
        self._give_up(str(typ))


@dataclass
class BankWorkload(ClientLoop):
    sim: object
    clients: int = 4
    accounts: int = 4
    audit_ratio: float = 0.25
    think_ms: tuple = (1.0, 15.0)
    timeout_s: float = 0.3
    op_deadline_ms: float = 3000.0
    max_conflicts: int = 30
    errors: list = field(default_factory=list)
    violations: list = field(default_factory=list)
    txns: list = field(default_factory=list)          # audits (transfers are added at the end)
    committed_ok: list = field(default_factory=list)
    refused: list = field(default_factory=list)       # commits answered a conflict or abort
    unknown: list = field(default_factory=list)
    by_session: dict = field(default_factory=dict)
    first_applied: dict = field(default_factory=dict)  # session -> (index, error)
    counts: dict = field(default_factory=lambda: {k: 0 for k in (
        "transfer:ok", "transfer:fail", "transfer:info", "audit:ok", "audit:fail", "conflicts", "aborts")})

    def __post_init__(self):
        self.total = INITIAL * self.accounts
        tag = f"ddb-sim/{self.sim.seed}/bank"
        self.members = [BankClient(i + 1, self, random.Random(f"{tag}/client/{i + 1}"))
                        for i in range(self.clients)]
        self.sim.on_apply(self._on_apply)

    def _clients(self) -> list:
        return self.members

    def violation(self, name: str, detail: str) -> None:
        v = InvariantViolation(name, detail, self.sim.steps, self.sim.now)
        self.violations.append(v)
        self.sim.violations.append(v)
        raise v

    def _on_apply(self, sim, node_id, entry, result) -> None:
        if not entry.data or result is None or not hasattr(result, "session_duplicate") \
                or result.session_duplicate:
            return
        try:
            _req, _ts, _seed, session = decode_entry(entry.data)
        except EntryDecodeError:
            return
        if session is not None:
            self.first_applied.setdefault((session[0], session[1]), (entry.index, result.error))

    def schema(self) -> list:
        rows = ", ".join(f"({i}, {INITIAL})" for i in range(1, self.accounts + 1))
        return [statement("CREATE TABLE acct(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)"),
                statement("CREATE TABLE transfers(tid TEXT PRIMARY KEY, src, dst, amount)"),
                statement(f"INSERT INTO acct VALUES {rows}")]

    # ---- the end ---------------------------------------------------------------
    def verify(self, sim) -> list[str]:
        """After convergence: what the class docstring lists. -> problems."""
        out = []
        lid = sim.leader()
        cs = sim.nodes[lid].raft.conf_state
        ref = _tables(sim.nodes[lid])
        for i in tuple(cs.voters) + tuple(cs.learners):
            if _tables(sim.nodes[i]) != ref:
                out.append(f"n{i}'s accounts, transfers, sessions or versions differ from n{lid}'s")
        conn = sim.nodes[lid].sm.connection
        bal = dict(conn.execute("SELECT id, balance FROM acct").fetchall())
        expect = {i: INITIAL for i in range(1, self.accounts + 1)}
        recorded = conn.execute("SELECT tid, src, dst, amount FROM transfers").fetchall()
        for _tid, src, dst, amount in recorded:
            expect[src] -= amount
            expect[dst] += amount
        if bal != expect:
            out.append(f"balances {bal} are not the initial ones plus the {len(recorded)} "
                       f"transfers recorded ({expect}): a half-applied transfer")
        if sum(bal.values()) != self.total:
            out.append(f"the total is {sum(bal.values())}, not {self.total}")
        tids = {r[0] for r in recorded}
        for op in self.committed_ok:
            if op["tid"] not in tids:
                out.append(f"acknowledged transfer {op['tid']} is not recorded")
        commits = []
        # the index a commit took effect at is its first application (a retried commit's
        # duplicate answer names the index of the duplicate entry instead)
        for op in self.committed_ok + self.unknown:
            first = self.first_applied.get(op["session"])
            if first is not None and first[1] is None:
                op["index"] = first[0]
                commits.append(op)
            elif op in self.committed_ok:
                out.append(f"acknowledged transfer {op['tid']} was never applied")
        committed_tids = {op["tid"] for op in commits}
        for tid in tids - committed_tids:
            out.append(f"transfer {tid} is recorded but was never committed")
        txns = list(self.txns) + [Txn(f"transfer {op['tid']}", op["begin"], op["reads"], op["new"],
                                      op["index"]) for op in commits]
        out += check(dict(expect_initial(self.accounts)), txns)
        return out


def expect_initial(accounts: int) -> dict:
    return {i: INITIAL for i in range(1, accounts + 1)}


def _tables(node) -> list:
    return node.sm.connection.execute(
        "SELECT 'a', id, balance FROM acct UNION ALL SELECT 't', tid, amount FROM transfers "
        "UNION ALL SELECT 's', client, seq FROM _ddb_sessions "
        "UNION ALL SELECT 'v', tbl, idx FROM _ddb_versions ORDER BY 1, 2").fetchall()


def _setup(sim: Simulator, statements: list, budget_ms: float = 5_000.0) -> None:
    setup_through_log(sim, statements, "the bank's tables", budget_ms)


def run_bank(seed: int, steps: int | None = None, log=None, *, clients: int | None = None,
             accounts: int = 4) -> RunResult:
    """One randomized run of the bank workload under the nemesis; `res.ok` and `res.report()`."""
    t0 = time.perf_counter()
    rng = random.Random(f"ddb-sim/{seed}/bank/schedule")
    settings = choose_settings(rng, None)
    budget = steps or DEFAULT_STEPS
    res = RunResult(seed, settings["nodes"], settings=dict(settings),
                    replay_command=replay_command(seed, steps), linearizability="n/a")
    sim = Simulator(settings["nodes"], seed, sm_factory=lambda: StateMachine(":memory:"),
                    config=settings["config"], auto_compact=settings["auto_compact"], log=log)
    wl = BankWorkload(sim, clients or max(3, settings["clients"]), accounts)
    nem = None
    try:
        _setup(sim, wl.schema())
        nem = Nemesis(sim, rng, actions=dict(ACTIONS))
        res.converged = play(sim, nem, wl, budget)
        if res.converged:
            problems = wl.verify(sim)
            if problems:
                res.error = "bank checks failed:\n" + "\n".join(problems[:20])
    except InvariantViolation as v:
        res.violations.append(v)
    except Exception:  # noqa: BLE001  reported with the run
        import traceback
        res.error = traceback.format_exc()
    res.violations = list(sim.violations) or res.violations
    if wl.errors and not res.error:
        res.error = "unexpected replies:\n" + "\n".join(wl.errors[:10])
    res.steps, res.virtual_ms = sim.steps, sim.now
    res.ops = dict(wl.counts)
    if nem is not None:
        res.faults, res.nemesis_log = dict(nem.counts), nem.log
    res.final = sim.describe() + f"\nnetwork: {sim.net.describe()}"
    res.wall_s = time.perf_counter() - t0
    close_state_machines(sim)
    return res
