"""The SQL state machine: commands, classification, deterministic apply, results.

Knows nothing of Raft: it applies entries ``(index, term, payload)`` and returns results.
"""
from .classify import Classification, StatementClass, classify
from .codec import EntryDecodeError, decode_entry, encode_entry
from .commands import LEVELS, Request, Statement, validate
from .errors import SQL_FAILURES, BadRequest, SnapshotError, SqlError
from .limits import DEFAULT_LIMITS, Limits
from .machine import StateMachine, compaction_bound
from .results import EntryResult, Result

__all__ = [
    "BadRequest", "SQL_FAILURES", "Classification", "DEFAULT_LIMITS", "EntryDecodeError", "EntryResult", "LEVELS",
    "Limits", "Request", "Result", "SnapshotError", "SqlError", "StateMachine", "Statement",
    "StatementClass", "classify", "compaction_bound", "decode_entry", "encode_entry", "validate",
]
