"""A serializability checker for histories of transactions over registers (bank accounts).

A committed transaction is recorded with its read point (`begin`), the values it read, the
values it wrote and the log index its commit applied at; a read-only transaction (an audit)
with its read point and what it read. ddb claims a precise serial order: committed
transactions in commit-index order, each read-only one at its read point. The history is
serializable iff replaying the commits in that order over the initial state reproduces every
value every transaction read (checked here), which is a sufficient condition for
serializability in general: a lost update, a write skew, a read of a half-applied transfer
or of an uncommitted value all make some read disagree with the replay.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class Txn:
    name: str
    begin: int                                   # the read point
    reads: dict = field(default_factory=dict)    # key -> value read
    writes: dict = field(default_factory=dict)   # key -> value written
    index: int | None = None                     # the commit's log index; None: read-only


def check(initial: dict, txns: list[Txn]) -> list[str]:
    """Violations (empty when the history is serializable in ddb's order)."""
    out = []
    commits = sorted((t for t in txns if t.index is not None and t.writes), key=lambda t: t.index)
    seen = {}
    for t in commits:
        if t.index in seen:
            out.append(f"{t.name} and {seen[t.index]} both committed at index {t.index}")
        seen[t.index] = t.name
        if t.index <= t.begin:
            out.append(f"{t.name} committed at {t.index}, not after its read point {t.begin}")
    readers = sorted((t for t in txns if t.index is None or not t.writes),
                     key=lambda t: t.begin)
    state = dict(initial)
    ri = 0

    def check_reads(t, where):
        for k, v in t.reads.items():
            if state.get(k) != v:
                out.append(f"{t.name} read {k}={v!r} but in the serial order ({where}) it is "
                           f"{state.get(k)!r}: not serializable")
    for t in commits:
        while ri < len(readers) and readers[ri].begin < t.index:
            check_reads(readers[ri], f"at index {readers[ri].begin}")
            ri += 1
        check_reads(t, f"just before index {t.index}")
        state.update(t.writes)
    for t in readers[ri:]:
        check_reads(t, f"at index {t.begin}")
    return out
