"""The `txbank` workload: the bank of issue 16 on real processes, as interactive transactions.

Accounts `txacct(id, balance, ver)`. A transfer is `Client.run_transaction`: read both
accounts' (balance, ver), write (balance -/+ amount, ver + 1) to each and insert its id into
`txlog`; conflicts are re-run (up to `retries`). An audit is a read-only transaction
reading every account. The history records what the last attempt read and wrote.

`check_txbank` needs no log indexes (a retried commit's answer names its duplicate's index):
the versions give each account's version order, `txlog` tells which transfers committed
(acknowledged or not), and the history is checked for
  - money: every audit and the final state sum to the total;
  - no lost update: no two committed transfers installed the same version of an account;
  - read consistency: every value read at version k is the one written at version k;
  - acknowledged transfers committed, refused ones not;
  - serializability: Adya's direct serialization graph (write-read, write-write and
    read-write anti-dependency edges between committed transfers and audits) is acyclic.
"""
from __future__ import annotations

import itertools
import threading

from ddb_node.errors import TransactionAborted, TransactionConflict

from .history import FAIL, INFO, OK
from .workloads import OpSpec, Workload


class _NoResponse:
    node = index = None


class TxBank(Workload):
    name = "txbank"

    def __init__(self, accounts: int = 4, balance: int = 100, clients: int = 3, retries: int = 20):
        self.accounts, self.balance, self.clients, self.retries = accounts, balance, clients, retries
        self.total = accounts * balance
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self.inflight: dict = {}      # tid -> what its last attempt read and wrote

    def setup(self, c):
        c.execute("CREATE TABLE IF NOT EXISTS txacct(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL, "
                  "ver INTEGER NOT NULL)")
        c.execute("CREATE TABLE IF NOT EXISTS txlog(tid TEXT PRIMARY KEY)")
        c.execute("INSERT OR IGNORE INTO txacct VALUES " +
                  ", ".join(f"({i}, {self.balance}, 0)" for i in range(self.accounts)))

    def next(self, rng, process):
        if rng.random() < 0.3:
            def audit(c):
                with c.transaction() as tx:
                    r = tx.query("SELECT id, balance, ver FROM txacct ORDER BY id")
                return {"begin": tx.begin, "reads": {i: [b, v] for i, b, v in r.rows}}, _NoResponse()
            return OpSpec("audit", audit, write=False)
        a, b = rng.sample(range(self.accounts), 2)
        amt = rng.randint(1, 10)
        with self._lock:
            tid = f"p{process}.{next(self._ids)}"

        def transfer(c, a=a, b=b, amt=amt, tid=tid):
            last = {}

            def fn(tx):
                r = tx.query("SELECT id, balance, ver FROM txacct WHERE id IN (?, ?)", [a, b])
                rows = {i: [bal, v] for i, bal, v in r.rows}
                new = {a: [rows[a][0] - amt, rows[a][1] + 1], b: [rows[b][0] + amt, rows[b][1] + 1]}
                for k, (bal, v) in new.items():
                    tx.execute("UPDATE txacct SET balance = ?, ver = ? WHERE id = ?", [bal, v, k])
                tx.execute("INSERT INTO txlog VALUES (?)", [tid])
                last.update(tx=tx, reads=rows, writes=new)
                self.inflight[tid] = {"reads": rows, "writes": new}   # in case the answer is lost
            try:
                c.run_transaction(fn, retries=self.retries)
            except (TransactionConflict, TransactionAborted):
                return {"tid": tid, "committed": False}, _NoResponse()
            tx = last["tx"]
            return ({"tid": tid, "committed": True, "begin": tx.begin, "reads": last["reads"],
                     "writes": last["writes"]}, tx.response or _NoResponse())
        return OpSpec("transfer", transfer, tid, amt)

    def final_read(self, c):
        acct = c.query("SELECT id, balance, ver FROM txacct ORDER BY id", level="linearizable")
        log = c.query("SELECT tid FROM txlog", level="linearizable")
        return {"accounts": {i: [b, v] for i, b, v in acct[0].rows},
                "txlog": sorted(r[0] for r in log[0].rows)}

    def check(self, ops, c, final=None, **kw) -> dict:
        return check_txbank([o for o in ops if o.workload == self.name], self.accounts,
                            self.balance, final, self.inflight)


def check_txbank(ops, accounts: int, balance: int, final: dict | None,
                 inflight: dict | None = None) -> dict:
    anomalies: list[str] = []
    total = accounts * balance
    if final is None:
        return {"valid": "unknown", "anomalies": ["no final read"]}
    logged = set(final["txlog"])
    transfers = [o for o in ops if o.f == "transfer"]
    audits = [o for o in ops if o.f == "audit" and o.status == OK]
    committed = {}
    for o in transfers:
        out = o.output or {}
        tid = o.key
        if o.status == OK and out.get("committed") and tid not in logged:
            anomalies.append(f"acknowledged transfer {tid} is not in txlog")
        if (o.status == FAIL or (o.status == OK and not out.get("committed"))) and tid in logged:
            anomalies.append(f"refused transfer {tid} is in txlog")
        if tid in logged:
            if o.status == OK and out.get("committed"):
                committed[tid] = out
            elif o.status == INFO:
                # committed although its answer was lost: its last attempt is what applied
                committed[tid] = (inflight or {}).get(tid)
    for tid in logged:
        if tid not in {o.key for o in transfers}:
            anomalies.append(f"txlog holds {tid}, which nobody attempted")
    # versions: who installed (account, version)
    writer: dict = {}
    for tid, out in committed.items():
        if out is None:
            continue
        for acct, (bal, ver) in out["writes"].items():
            key = (int(acct), ver)
            if key in writer:
                anomalies.append(f"lost update: {writer[key][0]} and {tid} both installed version "
                                 f"{ver} of account {acct}")
            writer[key] = (tid, bal)
    unknown_writers = any(out is None for out in committed.values())

    def value_at(acct, ver):
        if ver == 0:
            return balance
        w = writer.get((acct, ver))
        return None if w is None else w[1]
    readers = [(tid, out["reads"]) for tid, out in committed.items() if out is not None] + \
              [(f"audit#{o.id}", o.output["reads"]) for o in audits]
    for name, reads in readers:
        for acct, (bal, ver) in reads.items():
            v = value_at(int(acct), ver)
            if v is None and not unknown_writers:
                anomalies.append(f"{name} read version {ver} of account {acct}, which no committed "
                                 "transfer wrote")
            elif v is not None and v != bal:
                anomalies.append(f"{name} read account {acct} = {bal} at version {ver}, which was "
                                 f"written as {v}")
    for o in audits:
        s = sum(b for b, _v in o.output["reads"].values())
        if s != total or len(o.output["reads"]) != accounts:
            anomalies.append(f"audit#{o.id} read {o.output['reads']}: total {s}, expected {total}")
    fs = sum(b for b, _v in final["accounts"].values())
    if fs != total:
        anomalies.append(f"final balances {final['accounts']} total {fs}, expected {total}")
    # the direct serialization graph
    edges: dict = {}

    def edge(x, y):
        if x != y:
            edges.setdefault(x, set()).add(y)
    for (acct, ver), (tid, _bal) in writer.items():
        nxt = writer.get((acct, ver + 1))
        if nxt is not None:
            edge(tid, nxt[0])                                  # ww
    for name, reads in readers:
        for acct, (_bal, ver) in reads.items():
            w = writer.get((int(acct), ver))
            if w is not None:
                edge(w[0], name)                               # wr
            nxt = writer.get((int(acct), ver + 1))
            if nxt is not None:
                edge(name, nxt[0])                             # rw (anti-dependency)
    cycle = find_cycle(edges)
    if cycle:
        anomalies.append("not serializable: dependency cycle " + " -> ".join(cycle))
    return {"valid": not anomalies, "anomalies": anomalies[:20],
            "transfers_committed": len(committed), "audits": len(audits),
            "transfers_unknown_committed": sum(1 for v in committed.values() if v is None),
            "final": final["accounts"]}


def find_cycle(edges: dict) -> list | None:
    """A cycle of the directed graph (as a list of nodes, first repeated last) or None."""
    color: dict = {}
    for start in sorted(edges):
        if color.get(start):
            continue
        stack = [(start, iter(sorted(edges.get(start, ()))))]
        path = [start]
        color[start] = 1
        while stack:
            node, it = stack[-1]
            nxt = next(it, None)
            if nxt is None:
                color[node] = 2
                stack.pop()
                path.pop()
            elif color.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            elif not color.get(nxt):
                color[nxt] = 1
                stack.append((nxt, iter(sorted(edges.get(nxt, ())))))
                path.append(nxt)
    return None
