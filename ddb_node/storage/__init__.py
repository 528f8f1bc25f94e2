"""Raft log storages implementing ddb_node.raft.storage.Storage (see DESIGN.md)."""
from .errors import CompactBeyondSnapshot, LogGap, SnapshotOutOfDate
from .memory import MemoryStorage
from .sqlite_log import SqliteLogStorage

__all__ = ["MemoryStorage", "SqliteLogStorage", "SnapshotOutOfDate", "LogGap", "CompactBeyondSnapshot"]
