"""Helpers for the SQL state machine tests: build log entries like a leader would."""
from __future__ import annotations

from ddb_node.sql import Request, Statement, encode_entry

BASE_TS = 1_700_000_000_000


def req(*stmts, transaction=False, level="weak") -> Request:
    return Request([s if isinstance(s, Statement) else Statement(*s) if isinstance(s, tuple) else Statement(s)
                    for s in stmts], transaction=transaction, level=level)


class Log:
    """An append-only list of (index, term, payload), stamped like a leader stamps entries."""

    def __init__(self, term=1):
        self.entries: list[tuple[int, int, bytes]] = []
        self.term = term

    def add(self, *stmts, transaction=False, session=None, ts=None, seed=None) -> int:
        i = len(self.entries) + 1
        payload = encode_entry(req(*stmts, transaction=transaction),
                               timestamp_ms=BASE_TS + 1000 * i if ts is None else ts,
                               seed=i * 7919 if seed is None else seed, session=session)
        self.entries.append((i, self.term, payload))
        return i

    def noop(self) -> int:
        i = len(self.entries) + 1
        self.entries.append((i, self.term, b""))
        return i

    def raw(self, payload: bytes) -> int:
        i = len(self.entries) + 1
        self.entries.append((i, self.term, payload))
        return i


def apply_one(sm, *stmts, transaction=False, session=None, index=None, ts=None, seed=None):
    i = sm.applied_index + 1 if index is None else index
    payload = encode_entry(req(*stmts, transaction=transaction), timestamp_ms=BASE_TS if ts is None else ts,
                           seed=i if seed is None else seed, session=session)
    (er,) = sm.apply_batch([(i, 1, payload)])
    return er


def rows(sm, sql):
    (r,) = sm.query(req(sql))
    assert r.error is None, r.error
    return r.rows
