"""The client request format and the consistency levels: defined once, here.

Every producer of a request (the Python client, the magic, the HTTP layer, a follower
forwarding to its leader, the simulator's clients) builds it with `ClientRequest`, and
every node parses it with `ClientRequest.from_wire`. Errors travel as `RequestError`,
whose fields (type, message, the failing statement's position, the leader, retry) are
structured: nobody parses a position back out of message text.

A leaf module: standard library only, so that `sql/`, `replica/`, `server/` and the client
can all import it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

# Consistency levels (rqlite's names). `auto` is `weak` on a voter.
NONE, WEAK, LINEARIZABLE, STRONG, AUTO = "none", "weak", "linearizable", "strong", "auto"
LEVELS = (NONE, WEAK, LINEARIZABLE, STRONG, AUTO)
DEFAULT_LEVEL = WEAK
MAX_TIMEOUT = 300.0          # seconds; a request asking for longer is capped

# Operations of the client protocol (the `op` field of a request frame).
OPS = ("request", "map", "map_result", "ping", "status", "nodes", "faults", "join",
       "remove", "promote", "transfer", "snapshot", "read_index", "applied",
       "fetch", "close",    # fetch/close: the next chunk of a cursor, or drop it
       "log", "trace",      # log: a node's recent log entries; trace: its recent peer messages
       "changes",           # the node's applied row changes after an index (CDC)
       "tx")                # a statement of an interactive transaction (sql/transactions.py)

# Error types a node answers with; the client maps each to an exception class.
ERROR_TYPES = ("BadRequest", "NotLeader", "NoLeader", "Unavailable", "Stale", "Timeout",
               "ReadOnly", "Internal", "ChangesTruncated", "TransactionConflict",
               "TransactionAborted")


class RequestError(Exception):
    """A request refused or failed, as it travels on the wire (`to_dict` / `from_dict`)."""

    def __init__(self, type_: str, message: str, *, statement: int | None = None,
                 detail: str | None = None, leader: dict | None = None, retry: bool = False,
                 results: list | None = None, rerun: bool = False):
        super().__init__(message)
        self.type = type_
        self.message = message
        self.statement = statement      # 0-based position of the failing statement
        self.detail = detail            # the statement's own error, without the position
        self.leader = leader
        self.retry = retry              # the router may send the same request again
        self.results = results          # per-statement results up to the failing one
        self.rerun = rerun              # a transaction that ended with nothing applied: the
                                        # whole of it may be run again (a leader change)

    def to_dict(self) -> dict:
        d: dict[str, Any] = {"type": self.type, "message": self.message}
        if self.statement is not None:
            d["statement"] = self.statement
        if self.detail is not None:
            d["detail"] = self.detail
        if self.leader:
            d["leader"] = self.leader
        if self.retry:
            d["retry"] = True
        if self.results:
            d["results"] = self.results
        if self.rerun:
            d["rerun"] = True
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "RequestError":
        st = d.get("statement")
        return cls(str(d.get("type") or "Internal"), str(d.get("message") or d.get("type") or "error"),
                   statement=st if isinstance(st, int) and not isinstance(st, bool) else None,
                   detail=d.get("detail") if isinstance(d.get("detail"), str) else None,
                   leader=d.get("leader") if isinstance(d.get("leader"), dict) else None,
                   retry=bool(d.get("retry")), results=d.get("results") or None,
                   rerun=bool(d.get("rerun")))

    def __repr__(self) -> str:
        return f"RequestError({self.type!r}, {self.message!r})"


def bad_request(message: str, statement: int | None = None,
                detail: str | None = None) -> RequestError:
    return RequestError("BadRequest", message, statement=statement, detail=detail)


def not_leader(leader: dict | None) -> RequestError:
    where = f"node {leader['id']} at {leader.get('client')}" if leader else "unknown"
    return RequestError("NotLeader", f"this node is not the leader (leader: {where})", leader=leader,
                        retry=True)


def no_leader() -> RequestError:
    return RequestError("NoLeader", "no leader is known: the cluster has no quorum or is electing",
                        retry=True)


def timeout_error(what: str, seconds: float) -> RequestError:
    return RequestError("Timeout", f"{what} did not complete within {seconds:g}s; "
                        "the outcome is unknown (no quorum?)")


def unavailable(message: str) -> RequestError:
    return RequestError("Unavailable", message, retry=True)


def statement(sql: str, params=None) -> list:
    """One statement on the wire: [sql], [sql, p1, p2, ...] or [sql, {name: value}]."""
    if params is None:
        return [sql]
    if isinstance(params, dict):
        return [sql, params]
    return [sql, *params]


def _number(body: dict, key: str, *, positive: bool) -> float | None:
    v = body.get(key)
    if v is None:
        return None
    if not isinstance(v, (int, float)) or isinstance(v, bool) or v < 0 or (positive and v == 0):
        kind = "a positive" if positive else "a non-negative"
        raise bad_request(f"{key} must be {kind} number of seconds")
    return float(v)


@dataclass(slots=True)
class ClientRequest:
    """SQL statements plus everything that decides how a node serves them."""
    statements: list = field(default_factory=list)   # wire statements (see `statement`)
    level: str = DEFAULT_LEVEL
    transaction: bool = False
    session: tuple[str, int] | None = None          # (client id, sequence): exactly-once writes
    timeout: float | None = None                    # seconds; None: the node's default
    redirect: bool = False                          # answer NotLeader instead of forwarding
    freshness: float | None = None                  # `none` reads: max seconds since a leader
    max_rows: int | None = None
    max_bytes: int | None = None                    # a read's rows beyond ~this: truncated
    chunk_rows: int | None = None                   # a read's rows come in chunks (a cursor)
    read_only: bool = False                         # refuse (ReadOnly) if a statement writes
    forwarded: bool = False                         # set by the follower that forwards it
    condition: dict | None = None                   # a transaction's commit: {"index", "tables"}
    min_index: int | None = None                    # a read: served once this index is applied

    def to_wire(self) -> dict:
        d: dict[str, Any] = {"op": "request", "statements": self.statements, "level": self.level}
        if self.transaction:
            d["transaction"] = True
        if self.session is not None:
            d["session"] = [self.session[0], self.session[1]]
        if self.timeout is not None:
            d["timeout"] = self.timeout
        if self.redirect:
            d["redirect"] = True
        if self.freshness is not None:
            d["freshness"] = self.freshness
        if self.max_rows is not None:
            d["max_rows"] = self.max_rows
        if self.max_bytes is not None:
            d["max_bytes"] = self.max_bytes
        if self.chunk_rows is not None:
            d["chunk_rows"] = self.chunk_rows
        if self.read_only:
            d["read_only"] = True
        if self.forwarded:
            d["forwarded"] = True
        if self.condition is not None:
            d["condition"] = self.condition
        if self.min_index is not None:
            d["min_index"] = self.min_index
        return d

    @classmethod
    def from_wire(cls, body: dict) -> "ClientRequest":
        """Parse and check a request frame; raises RequestError(BadRequest)."""
        stmts = body.get("statements")
        if not isinstance(stmts, list) or not stmts:
            raise bad_request("'statements' must be a non-empty list")
        level = body.get("level") or DEFAULT_LEVEL
        if level not in LEVELS:
            raise bad_request(f"unknown consistency level {level!r}; "
                              f"use {', '.join(LEVELS[:-1])} or {LEVELS[-1]}")
        session = body.get("session")
        if session is not None:
            if not (isinstance(session, (list, tuple)) and len(session) == 2
                    and isinstance(session[0], str) and isinstance(session[1], int)
                    and not isinstance(session[1], bool) and session[1] >= 0):
                raise bad_request("session must be [client_id, sequence_number]")
            session = (session[0], session[1])
        max_rows, chunk_rows = body.get("max_rows"), body.get("chunk_rows")
        max_bytes = body.get("max_bytes")
        for name, v in (("max_rows", max_rows), ("chunk_rows", chunk_rows), ("max_bytes", max_bytes)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v <= 0):
                raise bad_request(f"{name} must be a positive integer")
        timeout = _number(body, "timeout", positive=True)
        min_index = body.get("min_index")
        if min_index is not None and (not isinstance(min_index, int) or isinstance(min_index, bool)
                                      or min_index < 0):
            raise bad_request("min_index must be a non-negative log index")
        condition = body.get("condition")
        if condition is not None:
            condition = parse_condition(condition)
        return cls(condition=condition, min_index=min_index, statements=stmts, level=level, transaction=bool(body.get("transaction", False)),
                   session=session, timeout=None if timeout is None else min(timeout, MAX_TIMEOUT),
                   redirect=bool(body.get("redirect", False)),
                   freshness=_number(body, "freshness", positive=False),
                   max_rows=max_rows, max_bytes=max_bytes, chunk_rows=chunk_rows,
                   read_only=bool(body.get("read_only", False)),
                   forwarded=bool(body.get("forwarded", False)))


def parse_condition(c) -> dict:
    """A transaction's commit condition: every table in `tables` is unchanged since `index`,
    and (when `term` is given) the entry is proposed in that term: by the leader the
    transaction began with."""
    index = c.get("index") if isinstance(c, dict) else None
    tables = c.get("tables") if isinstance(c, dict) else None
    term = c.get("term") if isinstance(c, dict) else None
    if not _index(index) or not isinstance(tables, list) or \
            not all(isinstance(t, str) for t in tables) or not (term is None or _index(term)):
        raise bad_request("condition must be {index: non-negative integer, tables: [names], "
                          "term: non-negative integer (optional)}")
    out = {"index": index, "tables": tables}
    if term is not None:
        out["term"] = term
    return out


def _index(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def request_timeout(body: dict, default: float) -> float:
    """The timeout of any operation frame: its `timeout` field (capped), else `default`."""
    t = _number(body, "timeout", positive=True)
    return default if t is None else min(t, MAX_TIMEOUT)
