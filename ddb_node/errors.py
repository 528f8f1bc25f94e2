"""Errors a ddb client raises. Each names what happened and what to do, in one line."""
from __future__ import annotations


class DdbError(Exception):
    """Base of everything a ddb client raises."""


class BadRequest(DdbError):
    """The request itself is wrong (syntax error, forbidden statement, bad argument)."""


class NotLeader(DdbError):
    def __init__(self, message: str, leader: dict | None = None):
        super().__init__(message)
        self.leader = leader


class NoLeader(DdbError):
    """No leader is known: the cluster is electing or has no quorum."""


class Unavailable(DdbError):
    """The cluster cannot take the request now (e.g. a membership change is pending)."""


class Stale(DdbError):
    """A `none` read refused by its freshness bound."""


class Timeout(DdbError):
    """The request did not complete in time; for a write, the outcome is unknown."""


class StatementError(DdbError):
    """A statement failed in SQLite; the response (with every result) is attached."""

    def __init__(self, message: str, statement: int, response=None):
        super().__init__(message)
        self.statement = statement
        self.response = response


class ReadOnly(BadRequest):
    """A request sent as read-only (rqlite's /db/query) holds a statement that writes."""


class Internal(DdbError):
    """The node failed in a way that is not the request's fault (a bug: please report it)."""


class ConnectionFailed(DdbError):
    """No node could be reached at the given addresses."""


class NodeDown(ConnectionFailed):
    """The connection to a node closed (its process died or refuses connections): unlike a
    late answer, waiting longer cannot help. For a write, the outcome is unknown."""


# one class for each wire type (protocol.ERROR_TYPES; tests/test_routing.py checks both agree)
ERROR_TYPES = {"BadRequest": BadRequest, "NotLeader": NotLeader, "NoLeader": NoLeader,
               "Unavailable": Unavailable, "Stale": Stale, "Timeout": Timeout,
               "ReadOnly": ReadOnly, "Internal": Internal}


def from_reply(err: dict) -> DdbError:
    """The exception for a wire error; `.wire` keeps the error as the node sent it (its
    `type` may name a kind with no class of its own, e.g. OtherCluster)."""
    cls = ERROR_TYPES.get(err.get("type"), DdbError)
    msg = err.get("message") or err.get("type") or "error"
    exc = NotLeader(msg, err.get("leader")) if cls is NotLeader else cls(msg)
    exc.wire = dict(err)
    return exc
