"""Linearizability checking for key/value register histories.

Wing & Gong's search with Lowe's memoization: repeatedly pick an operation that may
go next (one invoked before every still-unlinearized operation returned), step a
sequential model with it, and backtrack on failure; remember every (set of
linearized operations, model state) already explored so that no configuration is
searched twice. Histories are split per key first (P-compositionality: a key/value
store is linearizable iff every key's register is), which keeps each search small.

Operations with unknown outcome (`info`) may take effect at any time after their
invocation or not at all; failed operations are dropped (a failed read tells nothing,
a failed write did not happen). A search that exceeds `max_states` configurations
returns "unknown" rather than running forever.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

from .history import FAIL, INFO, OK, Op

LINEARIZABLE, VIOLATION, UNKNOWN = "linearizable", "violation", "unknown"


@dataclass
class KeyResult:
    key: str
    verdict: str
    ops: int
    explored: int
    detail: str = ""


@dataclass
class CheckResult:
    verdict: str
    keys: list[KeyResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.verdict == LINEARIZABLE

    def failures(self) -> list[KeyResult]:
        return [k for k in self.keys if k.verdict != LINEARIZABLE]

    def summary(self) -> str:
        bad = self.failures()
        s = f"{self.verdict}: {len(self.keys)} keys, {sum(k.ops for k in self.keys)} ops"
        for k in bad:
            s += f"\n  key {k.key!r}: {k.verdict} after {k.explored} states{': ' + k.detail if k.detail else ''}"
        return s


def _steps(op: Op, state):
    """Possible register states after op, from state (empty: op impossible here)."""
    kind = op.kind
    if kind == "read":
        return (state,) if op.output == state else ()
    if kind == "write":
        if op.status == INFO:
            return (op.value, state) if op.value != state else (state,)
        return (op.value,)
    if kind == "cas":
        if op.status == INFO:
            return (op.value, state) if state == op.expected and op.value != state else (state,)
        if op.output:
            return (op.value,) if state == op.expected else ()
        return (state,) if state != op.expected else ()
    raise ValueError(f"unknown op kind {kind!r}")


def _relevant(op: Op) -> bool:
    if op.status == FAIL:
        return False
    if op.kind == "read" and op.status != OK:
        return False
    if op.status is None:  # still pending when the history was taken: unknown
        return op.kind != "read"
    return True


def check_register(ops: list[Op], initial=None, max_states: int = 200_000,
                   key: str = "") -> KeyResult:
    ops = [op for op in ops if _relevant(op)]
    ops.sort(key=lambda o: (o.call, o.id))
    n = len(ops)
    calls = [op.call for op in ops]
    rets = [op.ret if op.status == OK else math.inf for op in ops]
    # the search is complete once every operation that returned is linearized;
    # unknown ones left over simply never took effect
    must = 0
    for i in range(n):
        if rets[i] != math.inf:
            must |= 1 << i
    seen = set()
    explored = 0
    best_depth, best_bits = -1, 0
    # explicit DFS stack of (bits, state, depth); bit i set = ops[i] linearized
    stack = [(0, initial, 0)]
    seen.add((0, initial))
    while stack:
        bits, state, depth = stack.pop()
        explored += 1
        if explored > max_states:
            return KeyResult(key, UNKNOWN, n, explored, "search bound exceeded")
        if bits & must == must:
            return KeyResult(key, LINEARIZABLE, n, explored)
        if depth > best_depth:
            best_depth, best_bits = depth, bits
        # linearized ops are mostly a prefix: start scanning at the first gap
        lo = (~bits & (bits + 1)).bit_length() - 1
        # earliest return among unlinearized ops bounds which may go next
        min_ret = math.inf
        for i in range(lo, n):
            if calls[i] > min_ret:
                break  # sorted by call: any later op returns after it is called
            if not bits >> i & 1 and rets[i] < min_ret:
                min_ret = rets[i]
        for i in range(lo, n):
            if calls[i] > min_ret:
                break  # sorted by call: nobody after can go first either
            if bits >> i & 1:
                continue
            nb = bits | 1 << i
            for ns in _steps(ops[i], state):
                cfg = (nb, ns)
                if cfg not in seen:
                    seen.add(cfg)
                    stack.append((nb, ns, depth + 1))
    # no linearization: explain where the deepest attempt got stuck
    stuck = [ops[i] for i in range(n) if not best_bits >> i & 1 and rets[i] != math.inf]
    stuck.sort(key=lambda o: o.ret)
    detail = f"{best_depth} of {n} ops linearizable at best; next unplaceable: " + \
        "; ".join(o.describe() for o in stuck[:3])
    return KeyResult(key, VIOLATION, n, explored, detail)


def check_kv(ops: list[Op], initial: dict | None = None, max_states: int = 200_000) -> CheckResult:
    """Check a key/value history key by key."""
    initial = initial or {}
    by_key: dict[str, list[Op]] = {}
    for op in ops:
        by_key.setdefault(op.key, []).append(op)
    results = [check_register(kops, initial.get(k), max_states, key=k)
               for k, kops in sorted(by_key.items())]
    if any(r.verdict == VIOLATION for r in results):
        verdict = VIOLATION
    elif any(r.verdict == UNKNOWN for r in results):
        verdict = UNKNOWN
    else:
        verdict = LINEARIZABLE
    return CheckResult(verdict, results)
