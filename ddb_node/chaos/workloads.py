"""Workloads: what the clients do, and what the history of each must satisfy.

register  read / write / compare-and-set on rows of `reg(k, v)`, several keys at a time, keys
          rotated every `ops_per_key` operations so each key's history stays small enough for
          an exhaustive linearizability search. Reads alternate `linearizable` and `strong`.
          CAS is `UPDATE reg SET v = ? WHERE k = ? AND v = ?`: it succeeded iff one row changed.
bank      transfers between accounts inside one transaction (debit guarded by the balance, the
          credit only if the debit happened: `changes() = 1`); reads of every balance at
          `linearizable` and `strong` must always sum to the same total, none negative.
append    unique inserts: every acknowledged one present at the end, none present twice, none
          present that nobody attempted.
stale     reads at level `none` from random nodes; their staleness (acknowledged appends they
          miss, and for how long those had been acknowledged) is measured, not judged.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import itertools
import threading
from dataclasses import dataclass
from typing import Callable

from ddb_node.client import Client


@dataclass
class OpSpec:
    f: str
    run: Callable[[Client], tuple]       # -> (output, Response)
    key: object = None
    value: object = None
    expected: object = None
    level: str = ""
    write: bool = True                   # may change state (an error leaves the outcome unknown)


class Workload(ABC):
    name = "?"
    clients = 1

    def setup(self, c: Client) -> None:
        """Create the workload's tables (none by default)."""

    @abstractmethod
    def next(self, rng, process: int) -> OpSpec:
        """The next operation for client `process`."""

    def observe(self, spec: OpSpec, output) -> None:
        """Called with each ok outcome (lets generators pick plausible CAS values)."""

    @abstractmethod
    def check(self, ops: list, c: Client, **kw) -> dict:
        """Judge the recorded history; a dict of findings."""


# =========================================================================== register
class Register(Workload):
    name = "register"

    def __init__(self, keys: int = 4, ops_per_key: int = 120, clients: int = 3,
                 levels=("linearizable", "strong")):
        self.keys = keys
        self.ops_per_key = ops_per_key
        self.clients = clients
        self.levels = levels
        self._n = itertools.count()
        self._vals = itertools.count(1)
        self._last: dict = {}
        self._lock = threading.Lock()

    def setup(self, c):
        c.execute("CREATE TABLE IF NOT EXISTS reg(k TEXT PRIMARY KEY, v INTEGER)")

    def _key(self, rng) -> str:
        n = next(self._n)
        gen = n // (self.ops_per_key * self.keys)
        return f"g{gen}k{rng.randrange(self.keys)}"

    def next(self, rng, process):
        key = self._key(rng)
        r = rng.random()
        if r < 0.5:
            level = self.levels[rng.randrange(len(self.levels))]

            def run(c, key=key, level=level):
                resp = c.query("SELECT v FROM reg WHERE k = ?", [key], level=level)
                rows = resp[0].rows
                return (rows[0][0] if rows else None), resp
            return OpSpec("read", run, key, level=level, write=False)
        with self._lock:
            v = next(self._vals)
            last = self._last.get(key)
        if r < 0.75 or last is None:
            def run(c, key=key, v=v):
                resp = c.execute("INSERT INTO reg(k, v) VALUES(?, ?) "
                                 "ON CONFLICT(k) DO UPDATE SET v = excluded.v", [key, v])
                return None, resp
            return OpSpec("write", run, key, v)

        def run(c, key=key, v=v, last=last):
            resp = c.execute("UPDATE reg SET v = ? WHERE k = ? AND v = ?", [v, key, last])
            n = resp[0].rows_affected
            if n not in (0, 1):
                raise AssertionError(f"CAS changed {n} rows")
            return n == 1, resp
        return OpSpec("cas", run, key, v, last)

    def observe(self, spec, output):
        with self._lock:
            if spec.f == "read" and output is not None:
                self._last[spec.key] = output
            elif spec.f == "write" or (spec.f == "cas" and output):
                self._last[spec.key] = spec.value

    def check(self, ops, c, max_states: int = 200_000, **kw) -> dict:
        from .checkers import check_registers
        return check_registers([o for o in ops if o.workload == self.name], max_states)


# =========================================================================== bank
class Bank(Workload):
    name = "bank"

    def __init__(self, accounts: int = 5, balance: int = 100, clients: int = 2,
                 levels=("linearizable", "strong")):
        self.accounts = accounts
        self.balance = balance
        self.total = accounts * balance
        self.clients = clients
        self.levels = levels

    def setup(self, c):
        c.execute("CREATE TABLE IF NOT EXISTS accounts(id INTEGER PRIMARY KEY, "
                  "balance INTEGER NOT NULL)")
        c.request([("INSERT OR IGNORE INTO accounts(id, balance) VALUES(?, ?)", [i, self.balance])
                   for i in range(self.accounts)], transaction=True)

    def next(self, rng, process):
        if rng.random() < 0.4:
            level = self.levels[rng.randrange(len(self.levels))]

            def run(c, level=level):
                resp = c.query("SELECT id, balance FROM accounts ORDER BY id", level=level)
                return {int(i): b for i, b in resp[0].rows}, resp
            return OpSpec("read", run, level=level, write=False)
        a, b = rng.sample(range(self.accounts), 2)
        amt = rng.randint(1, 10)

        def run(c, a=a, b=b, amt=amt):
            resp = c.request([
                ("UPDATE accounts SET balance = balance - ? WHERE id = ? AND balance >= ?", [amt, a, amt]),
                ("UPDATE accounts SET balance = balance + ? WHERE id = ? AND changes() = 1", [amt, b]),
            ], transaction=True)
            return resp[0].rows_affected == 1 and resp[1].rows_affected == 1, resp
        return OpSpec("transfer", run, (a, b), amt)

    def check(self, ops, c, final=None, **kw) -> dict:
        from .checkers import check_bank
        return check_bank([o for o in ops if o.workload == self.name], self.accounts, self.total, final)

    def final_read(self, c):
        resp = c.query("SELECT id, balance FROM accounts ORDER BY id", level="linearizable")
        return {int(i): b for i, b in resp[0].rows}


# =========================================================================== appends
class Appends(Workload):
    name = "append"

    def __init__(self, clients: int = 1):
        self.clients = clients
        self._n = itertools.count(1)

    def setup(self, c):
        c.execute("CREATE TABLE IF NOT EXISTS appends(id INTEGER PRIMARY KEY AUTOINCREMENT, "
                  "val TEXT NOT NULL, process INTEGER)")

    def next(self, rng, process):
        val = f"p{process}-{next(self._n)}"

        def run(c, val=val):
            resp = c.execute("INSERT INTO appends(val, process) VALUES(?, ?)", [val, process])
            return resp.last_insert_id, resp
        return OpSpec("append", run, None, val)

    def final_read(self, c):
        resp = c.query("SELECT val, count(*) FROM appends GROUP BY val", level="linearizable")
        return {v: n for v, n in resp[0].rows}

    def check(self, ops, c, final=None, **kw) -> dict:
        from .checkers import check_appends
        return check_appends([o for o in ops if o.workload == self.name], final)


# =========================================================================== stale reads
class StaleReads(Workload):
    """Reads at level `none` of the appends table: measured against the append history."""
    name = "stale"

    def __init__(self, clients: int = 1):
        self.clients = clients

    def next(self, rng, process):
        def run(c):
            resp = c.query("SELECT count(*), coalesce(max(id), 0) FROM appends", level="none")
            n, mx = resp[0].rows[0]
            return {"count": n, "max_id": mx}, resp
        return OpSpec("stale-read", run, level="none", write=False)

    def setup(self, c):
        Appends().setup(c)

    def check(self, ops, c, **kw) -> dict:
        from .checkers import measure_staleness
        return measure_staleness(ops)


WORKLOADS = {"register": Register, "bank": Bank, "append": Appends, "stale": StaleReads}

