"""`%ddb_check`: is what this session saw linearizable? The history as a timeline, as
Porcupine draws it, checked with the project's checker (`ddb_node/sim/linearizability.py`).

Two sources of history:
- the session's own cells: every `%%ddb` cell that reads or writes a register row of a table
  with columns `k`, `v` is recorded as an operation (`recorded`, called by
  `DdbMagic._run_sql`), with its invocation and completion time (virtual on a simulated
  cluster, monotonic on a live one): `SELECT v FROM T WHERE k = 'x'` is a read of T/x,
  `INSERT OR REPLACE INTO T(k, v) VALUES ('x', 'y')` and `UPDATE T SET v = 'y' WHERE k = 'x'`
  are writes. A read at level `none` from a cut-off node is where a stale value shows up.
- `--workload`: a short register workload of concurrent closed-loop clients on table `reg`:
  on a simulated cluster the simulator's SQL clients (`sim/sql_clients.py`, every level,
  sessions, retries), on a live one a few threads each with its own `Client`.

When the history is not linearizable, the smallest offending part is found by shrinking the
failing key's operations one at a time while the violation remains (each check is small),
and drawn outlined in red with its list of operations.
"""
from __future__ import annotations

import math
import re
import threading
import time
from dataclasses import dataclass, field
from html import escape

from ddb_node.sim.history import FAIL, INFO, OK, History, Op
from ddb_node.sim.linearizability import LINEARIZABLE, VIOLATION, check_kv, check_register

from .parsing import arg_parser

_LIT = r"(?:'((?:[^']|'')*)'|(-?\d+(?:\.\d+)?))"
_READ = re.compile(rf"^\s*SELECT\s+v\s+FROM\s+(\w+)\s+WHERE\s+k\s*=\s*{_LIT}\s*;?\s*$", re.I)
_WRITE = re.compile(rf"^\s*(?:INSERT\s+OR\s+REPLACE|REPLACE)\s+INTO\s+(\w+)\s*\(\s*k\s*,\s*v\s*\)"
                    rf"\s*VALUES\s*\(\s*{_LIT}\s*,\s*{_LIT}\s*\)\s*;?\s*$", re.I)
_UPDATE = re.compile(rf"^\s*UPDATE\s+(\w+)\s+SET\s+v\s*=\s*{_LIT}\s+WHERE\s+k\s*=\s*{_LIT}\s*;?\s*$",
                     re.I)
CERTAIN_FAILURES = ("NotLeader", "NoLeader", "BadRequest", "StatementError", "ReadOnly")
MAX_SHRINK_OPS = 120


def _lit(s, n):
    if s is not None:
        return s.replace("''", "'")
    return float(n) if "." in n else int(n)


def classify(sql: str):
    """-> (kind, key, value) for a register read or write, else None."""
    m = _READ.match(sql)
    if m:
        return "read", f"{m.group(1)}/{_lit(m.group(2), m.group(3))}", None
    m = _WRITE.match(sql)
    if m:
        return "write", f"{m.group(1)}/{_lit(m.group(2), m.group(3))}", _lit(m.group(4), m.group(5))
    m = _UPDATE.match(sql)
    if m:
        return "write", f"{m.group(1)}/{_lit(m.group(4), m.group(5))}", _lit(m.group(2), m.group(3))
    return None


def _now_ms(backend) -> float:
    """Virtual milliseconds on a simulated cluster, monotonic ones on a live one."""
    if backend.kind == "sim":
        return backend.sim.now
    return time.monotonic() * 1000.0


def history_of(magic, backend) -> History:
    hs = magic.__dict__.setdefault("_ddb_histories", {})
    return hs.setdefault(backend.name, History())


def recorded(magic, backend, bound, level, node, run):
    """Run one cell's request (`run()`); if it is a single register read or write, record it
    in the session's history as an operation with its outcome."""
    what = classify(bound[0][0]) if len(bound) == 1 and not bound[0][1] else None
    if what is None:
        return run()
    kind, key, value = what
    h = history_of(magic, backend)
    # the notebook's cells are sequential: a cell starts after the one before it ended, even
    # when simulated time did not move in between
    last = max((o.ret for o in h.ops if o.ret != math.inf), default=-math.inf)
    op = h.invoke(node or 0, kind, key, max(_now_ms(backend), last + 0.001), value=value,
                  node=node or 0)
    op.note = level if kind == "read" else ""
    try:
        reply = run()
    except Exception as e:
        typ = type(e).__name__
        certain = kind == "read" or typ in CERTAIN_FAILURES
        h.complete(op, FAIL if certain else INFO, _now_ms(backend), note=typ)
        raise
    res = reply.results[0] if reply.results else None
    if res is None or res.error is not None:
        h.complete(op, FAIL, _now_ms(backend), note="statement error")
    elif kind == "read":
        col = res.values[0] if res.values else []
        h.complete(op, OK, _now_ms(backend), col[0] if col else None, note=level)
    else:
        h.complete(op, OK, _now_ms(backend), True)
    return reply


# ================================================================ workloads
def sim_workload(backend, ops: int, clients: int, keys: tuple) -> History:
    from ddb_node.sim.sql_clients import SCHEMA, SqlWorkload
    backend.execute([(SCHEMA.replace("CREATE TABLE", "CREATE TABLE IF NOT EXISTS"), None)],
                    level="weak")
    sim = backend.sim
    w = SqlWorkload(sim, clients, keys, seed_tag=f"ddb-magic/{backend.seed}/check/{sim.steps}")
    try:
        for _ in range(200_000):
            if len(w.history.ops) >= ops:
                break
            w.poll()
            if backend._fire() is None:
                break
        w.stop()
        for _ in range(200_000):
            w.poll()
            if w.idle() or backend._fire() is None:
                break
    finally:
        sim.apply_callbacks.remove(w._on_apply)
        sim.serve_callbacks.remove(w._on_serve)
        sim.reply_callbacks.remove(w._on_reply)
    return w.history


def live_workload(backend, ops: int, clients: int, keys: tuple, timeout: float = 5.0) -> History:
    import random

    from ddb_node.client import Client
    from ddb_node.errors import DdbError
    addrs = backend.cluster.client_addresses()
    with Client(addrs, timeout=timeout) as c:
        c.execute("CREATE TABLE IF NOT EXISTS reg(k TEXT PRIMARY KEY, v TEXT)")
    h = History()
    lock = threading.Lock()
    budget = [ops]

    def client(cid: int) -> None:
        rng = random.Random(f"ddb-magic/check/{cid}")
        seq = 0
        with Client(addrs, timeout=timeout) as c:
            while True:
                with lock:
                    if budget[0] <= 0:
                        return
                    budget[0] -= 1
                seq += 1
                key = rng.choice(keys)
                now = time.monotonic() * 1000.0
                if rng.random() < 0.5:
                    with lock:
                        op = h.invoke(cid, "read", key, now)
                    try:
                        r = c.query("SELECT v FROM reg WHERE k = ?", [key], level="linearizable")
                        col = r.results[0].values[0] if r.results[0].values else []
                        status, out, note = OK, (col[0] if col else None), "linearizable"
                    except DdbError as e:
                        status, out, note = FAIL, None, type(e).__name__
                else:
                    value = f"{cid}.{seq}"
                    with lock:
                        op = h.invoke(cid, "write", key, now, value=value)
                    try:
                        c.execute("INSERT OR REPLACE INTO reg(k, v) VALUES (?, ?)", [key, value])
                        status, out, note = OK, True, ""
                    except DdbError as e:
                        typ = type(e).__name__
                        status, out, note = (FAIL if typ in CERTAIN_FAILURES else INFO), None, typ
                with lock:
                    h.complete(op, status, time.monotonic() * 1000.0, out, note)

    threads = [threading.Thread(target=client, args=(i + 1,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout * (ops + 1))
    return h


# ================================================================ the check and its picture
def smallest_offending(ops: list[Op], key: str) -> list[Op]:
    """A smallest-by-removal subset of one key's operations that is still not linearizable."""
    mine = [o for o in ops if o.key == key]
    if len(mine) > MAX_SHRINK_OPS:
        return mine
    keep = list(mine)
    i = 0
    while i < len(keep):
        trial = keep[:i] + keep[i + 1:]
        # a read keeps the write of the value it saw: a read of a value nobody wrote is a
        # violation, but not an explanation
        written = {o.value for o in trial if o.kind != "read"}
        explained = all(o.output is None or o.output in written
                        for o in trial if o.kind == "read" and o.status == OK)
        if explained and check_register(trial, None, 20_000, key).verdict == VIOLATION:
            keep = trial
        else:
            i += 1
    return keep


@dataclass
class CheckView:
    ops: list[Op]
    verdict: str
    summary: str
    offending: list[Op] = field(default_factory=list)
    unit: str = "ms"
    title: str = ""
    session: bool = False        # the notebook's own cells: a row per node they were sent to
    origin: float = 0.0          # times are shown from here (a live cluster's first operation)

    def who(self, client: int) -> str:
        if self.session:
            return "notebook" if client == 0 else f"notebook\u2192n{client}"
        return f"client {client}"

    @property
    def ok(self) -> bool:
        return self.verdict == LINEARIZABLE

    def __repr__(self) -> str:
        head = f"{self.title + ': ' if self.title else ''}{self.summary}"
        if self.offending:
            head += "\nsmallest offending part:\n" + "\n".join(
                "  " + _describe(o, self.who(o.client), self.origin) for o in self.offending)
        return head

    def svg(self) -> str:
        ops = self.ops
        clients = sorted({o.client for o in ops})
        if not ops:
            return '<svg xmlns="http://www.w3.org/2000/svg" width="300" height="30"><text x="4" ' \
                   'y="18" font-family="monospace" font-size="11">no operations recorded</text></svg>'
        t0 = min(o.call for o in ops)
        t1 = max([o.ret for o in ops if o.ret != math.inf] + [o.call for o in ops]) + 1e-9
        span = max(t1 - t0, 1e-6)
        left, width, row_h = 100, 800, 34
        right = left + width
        bad = {id(o) for o in self.offending}
        height = 30 + len(clients) * row_h + 20

        def x(t):
            return left + (t - t0) / span * width

        out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="ddb-history" width="{right + 20}" '
               f'height="{height}" font-family="monospace" font-size="10">',
               f'<text x="4" y="14" font-size="11">{escape(self.summary.splitlines()[0])}</text>']
        for k, c in enumerate(clients):
            y = 30 + k * row_h
            out.append(f'<text class="client" x="4" y="{y + 16}">{escape(self.who(c))}'
                       f'</text><line x1="{left}" y1="{y + row_h - 4}" x2="{right}" '
                       f'y2="{y + row_h - 4}" stroke="#eee"/>')
        for o in ops:
            y = 30 + clients.index(o.client) * row_h + 4
            x1 = x(o.call)
            end = o.ret if o.ret != math.inf else t1
            x2 = max(x(end), x1 + 3)
            colour = {OK: "#27ae60", FAIL: "#c0392b", INFO: "#95a5a6"}.get(o.status, "#95a5a6")
            stroke = ' stroke="#c0392b" stroke-width="3"' if id(o) in bad else ""
            cls = f"op {o.status or 'pending'}" + (" offending" if id(o) in bad else "")
            tip = escape(_describe(o, self.who(o.client), self.origin))
            out.append(f'<g class="{cls}"><title>{tip}</title>'
                       f'<rect x="{x1:.1f}" y="{y}" width="{x2 - x1:.1f}" height="20" rx="3" '
                       f'fill="{colour}" fill-opacity="{0.35 if o.status == INFO else 0.8}"{stroke}/>'
                       + (f'<text x="{x1 + 3:.1f}" y="{y + 14}" fill="#111">{escape(_short(o))}</text>'
                        if x2 - x1 >= 6.2 * len(_short(o)) + 4 else "") + '</g>')
        out.append(f'<text x="{left}" y="{height - 4}" fill="#666">0{self.unit}</text>'
                   f'<text x="{right}" y="{height - 4}" fill="#666" text-anchor="end">'
                   f'{span:.1f}{self.unit}</text></svg>')
        return "".join(out)

    def _repr_html_(self) -> str:
        colour = "#1e8449" if self.ok else "#c0392b"
        extra = ""
        if self.offending:
            extra = ("<div><b>smallest offending part</b> (no order of these is legal):<ul>" +
                     "".join("<li><code>" + escape(_describe(o, self.who(o.client), self.origin))
                             + "</code></li>" for o in self.offending)
                     + "</ul></div>")
        return (f'<div class="ddb-check"><div style="color:{colour};font-weight:bold">'
                f'{escape(self.title + ": " if self.title else "")}{escape(self.summary)}</div>'
                f'{self.svg()}{extra}<div style="font-size:10px;color:#666">green: ok; red: '
                f'failed (did not happen); grey: unknown (may have happened)</div></div>')


def _short(o: Op) -> str:
    k = o.key.split("/", 1)[-1]
    if o.kind == "read":
        return f"r {k}\u2192{o.output!r}" if o.status == OK else f"r {k}"
    return f"w {k}={o.value!r}"


def _describe(o: Op, who: str, origin: float = 0.0) -> str:
    ret = "?" if o.ret == math.inf else f"{o.ret - origin:.2f}"
    what = f"read {o.key} -> {o.output!r}" if o.kind == "read" else f"write {o.key} = {o.value!r}"
    return f"{who} {what} [{o.call - origin:.2f}, {ret}] {o.status}" + (f" ({o.note})" if o.note else "")


def check(ops: list[Op], title: str = "", unit: str = "ms", session: bool = False,
          relative: bool = False) -> CheckView:
    res = check_kv(ops)
    offending: list[Op] = []
    if res.verdict == VIOLATION:
        bad = next(k for k in res.keys if k.verdict == VIOLATION)
        offending = smallest_offending(ops, bad.key)
    counts = {}
    for o in ops:
        counts[o.status or "pending"] = counts.get(o.status or "pending", 0) + 1
    summary = (f"{res.verdict}: {len(ops)} operations on {len(res.keys)} "
               f"key{'s' if len(res.keys) != 1 else ''} ("
               + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) + ")")
    if res.verdict == VIOLATION:
        summary += f"; key {bad.key!r} cannot be linearized"
    origin = min((o.call for o in ops), default=0.0) if relative else 0.0
    return CheckView(ops, res.verdict, summary, offending, unit, title, session, origin)


CHECK_USAGE = ("%ddb_check [--workload [--ops N] [--clients C] [--keys K]] [--reset] "
               "[--name NAME]")


def command(magic, line: str) -> CheckView:
    from .parsing import UsageProblem, split_args
    a = arg_parser("%ddb_check", (["--workload"], dict(action="store_true")),
                (["--ops"], dict(type=int, default=30)),
                (["--clients"], dict(type=int, default=3)),
                (["--keys"], dict(type=int, default=2)),
                (["--reset"], dict(action="store_true")),
                (["--name"], dict(default=None))).parse_args(split_args(line))
    if not (1 <= a.ops <= 2000 and 1 <= a.clients <= 16 and 1 <= a.keys <= 10):
        raise UsageProblem("usage: " + CHECK_USAGE + " (1-2000 ops, 1-16 clients, 1-10 keys)")
    b = magic._backend(a.name)
    if a.workload:
        keys = tuple("abcdefghij"[:a.keys])
        if b.kind == "sim":
            h = sim_workload(b, a.ops, a.clients, keys)
        else:
            h = live_workload(b, a.ops, a.clients, keys, timeout=magic.timeout)
        return check(h.ops, f"{b.name}: register workload, {a.clients} clients",
                     relative=b.kind != "sim")
    h = history_of(magic, b)
    if a.reset:
        h.ops.clear()
    return check(list(h.ops), f"{b.name}: this session's register operations", session=True,
                 relative=b.kind != "sim")
