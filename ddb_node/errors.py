"""ddb's one error vocabulary: what a client raises, and what the SQL layer raises for a
request it refuses (`BadRequest` is one class for both). Each names what happened and what
to do, in one line. The wire names an error by its `type`; `protocol.ERROR_TYPES` lists them
and `ERROR_TYPES` below maps each to its class (the Raft core keeps its own internal errors,
`raft.types.RaftError`, which the Replica translates into these at one place).

A leaf: it imports nothing of ddb but `protocol` (itself a leaf), so every layer may use it."""
from __future__ import annotations

from ddb_node.protocol import ERROR_TYPES as WIRE_TYPES


class DdbError(Exception):
    """Base of everything ddb raises to a caller."""


class BadRequest(DdbError):
    """The request itself is wrong (syntax error, forbidden statement, bad argument); nothing
    was executed. `statement` is the 0-based position of the offending statement when one is
    to blame, `detail` the reason without the "statement N: " prefix."""

    def __init__(self, message: str, statement: int | None = None, detail: str | None = None):
        super().__init__(message)
        self.statement = statement
        self.detail = detail


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


class ChangesTruncated(DdbError):
    """Asked for changes after an index the node's change log no longer holds (retention):
    `oldest` is the oldest index still retained; resume from `oldest - 1` (missing what lies
    between) or start again from a fresh copy of the data."""

    def __init__(self, message: str, oldest: int | None = None):
        super().__init__(message)
        self.oldest = oldest


class ConnectionFailed(DdbError):
    """No node could be reached at the given addresses."""


class NodeDown(ConnectionFailed):
    """The connection to a node closed (its process died or refuses connections): unlike a
    late answer, waiting longer cannot help. For a write, the outcome is unknown."""


class TransactionConflict(DdbError):
    """An interactive transaction read or wrote a table that another write changed after the
    transaction began: nothing of it was applied. Retryable: run the whole transaction again
    (`Client.run_transaction` does)."""


class TransactionAborted(DdbError):
    """An interactive transaction ended without committing (rolled back, expired, unknown to
    the node asked, or the leader it began with lost office): nothing of it was applied.
    `rerun` is true when running the whole transaction again may succeed (a leader change;
    `Client.run_transaction` does it)."""

    def __init__(self, message: str, rerun: bool = False):
        super().__init__(message)
        self.rerun = rerun


# the class of each wire type, from the one list of them (protocol.ERROR_TYPES)
ERROR_TYPES = {name: globals()[name] for name in WIRE_TYPES}


def from_reply(err: dict) -> DdbError:
    """The exception for a wire error; `.wire` keeps the error as the node sent it (its
    `type` may name a kind with no class of its own, e.g. OtherCluster)."""
    cls = ERROR_TYPES.get(err.get("type"), DdbError)
    msg = err.get("message") or err.get("type") or "error"
    if cls is NotLeader:
        exc = NotLeader(msg, err.get("leader"))
    elif cls is ChangesTruncated:
        exc = ChangesTruncated(msg, err.get("oldest"))
    elif cls is TransactionAborted:
        exc = TransactionAborted(msg, bool(err.get("rerun")))
    elif issubclass(cls, BadRequest):
        exc = cls(msg, err.get("statement"), err.get("detail"))
    else:
        exc = cls(msg)
    exc.wire = dict(err)
    return exc
