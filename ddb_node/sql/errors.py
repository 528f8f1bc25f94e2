"""Exceptions raised by the SQL state machine: one hierarchy with the client's.

A request the state machine refuses is `ddb_node.errors.BadRequest` itself (the class the
client raises for the same refusal); the state machine's own failures (a corrupt snapshot
stream, an entry that does not decode, a read over its budget, a SQLite error in a read) are
`SqlError`s. Both derive from `ddb_node.errors.DdbError`."""
from ddb_node.errors import BadRequest, DdbError

__all__ = ["BadRequest", "SqlError", "SnapshotError", "SQL_FAILURES"]


class SqlError(DdbError):
    """Base class of the state machine's own failures (not a refusal of the request)."""


class SnapshotError(SqlError):
    """A snapshot stream that is corrupt, truncated or of an unknown format."""


# what a caller of the SQL layer catches to answer a request with an error
SQL_FAILURES = (BadRequest, SqlError)
