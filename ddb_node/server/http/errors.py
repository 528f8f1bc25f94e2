"""How a failed request reads over HTTP: ddb's error replies -> rqlite's statuses and shapes.

``from_error`` maps an error reply (``protocol.RequestError`` on the wire) onto an ``HttpError``: a
statement SQLite rejected is a per-statement error (HTTP 200), a rolled-back transaction
keeps the results up to the failing statement, NotLeader is a redirect (301) carrying the
leader, no leader is 503, a timeout or a stale read is HTTP 200 with a top-level error.
"""
from __future__ import annotations

from ddb_node.protocol import RequestError

from .server import REASONS



class HttpError(Exception):
    """An answer other than success: status, message (the reason phrase by default), headers."""

    def __init__(self, status: int, message: str | None = None, headers: dict | None = None):
        message = REASONS.get(status, "") if message is None else message
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}
        self.leader = None


class StatementFailed(HttpError):
    """One statement SQLite rejected: rqlite answers 200 with the error in its result."""

    def __init__(self, position: int, message: str):
        super().__init__(200, message)
        self.position = position


class TransactionFailed(HttpError):
    def __init__(self, position: int, message: str, results=None):
        super().__init__(200, message)
        self.position = position
        self.results = results


class WritesRefused(HttpError):
    """A read-only request (``read_only``) held a statement that writes; nothing ran."""

    def __init__(self, message: str):
        super().__init__(200, message)


def from_error(err: dict) -> HttpError:
    e = RequestError.from_dict(err)
    typ, msg = e.type, e.message
    if typ == "ReadOnly":
        return WritesRefused(msg)
    if typ == "BadRequest":
        # the failing statement's position and its own error are fields of the error
        if e.statement is not None and e.results is not None:
            return TransactionFailed(e.statement, e.detail or msg, e.results)
        if e.statement is not None and e.detail is not None:
            return StatementFailed(e.statement, e.detail)
        return HttpError(400, msg)
    if typ == "NotLeader":
        e = HttpError(301, msg)
        e.leader = err.get("leader")
        return e
    if typ == "NoLeader":
        return HttpError(503, "leader not found")
    if typ == "OtherCluster":
        return HttpError(409, msg)      # a join from another cluster's node
    if typ == "Unauthorized":
        return HttpError(401, msg)
    if typ in ("TransactionConflict", "TransactionAborted"):
        return HttpError(409, msg)    # run the transaction again (from POST /db/tx)
    if typ in ("Unavailable",):
        return HttpError(503, msg)
    if typ == "Timeout" and msg.startswith("leader election"):
        return HttpError(503, "leader not found")
    if typ in ("Timeout", "Stale"):
        return HttpError(200, msg)    # rqlite: HTTP 200 with a top-level "error"
    return HttpError(500, msg or "internal error")
