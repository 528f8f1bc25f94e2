"""Exceptions raised by the SQL state machine."""


class SqlError(Exception):
    """Base class of every error raised by ``ddb_node.sql``."""


class BadRequest(SqlError):
    """A request refused before it is proposed: malformed, over a limit, a syntax error,
    a forbidden or a transaction-control statement. Nothing was executed. ``statement`` is
    the 0-based position of the offending statement, when one is to blame, and ``detail``
    the reason without the "statement N: " prefix, when the statement itself is at fault."""

    def __init__(self, message: str, statement: int | None = None, detail: str | None = None):
        super().__init__(message)
        self.statement = statement
        self.detail = detail


class SnapshotError(SqlError):
    """A snapshot stream that is corrupt, truncated or of an unknown format."""
