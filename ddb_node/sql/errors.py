"""Exceptions raised by the SQL state machine."""


class SqlError(Exception):
    """Base class of every error raised by ``ddb_node.sql``."""


class BadRequest(SqlError):
    """A request refused before it is proposed: malformed, over a limit, a syntax error,
    a forbidden or a transaction-control statement. Nothing was executed."""


class SnapshotError(SqlError):
    """A snapshot stream that is corrupt, truncated or of an unknown format."""
