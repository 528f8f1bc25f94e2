"""Storage errors beyond the generic ones the core knows (Compacted, Unavailable).

They subclass StorageError so a driver that only knows the protocol can still
catch them; they signal a caller bug or a stale request, never data loss.
"""
from __future__ import annotations

from ddb_node.raft.types import StorageError


class SnapshotOutOfDate(StorageError):
    """The snapshot is not newer than the one already stored."""


class LogGap(StorageError):
    """Appended entries would leave a hole after the current last index."""


class CompactBeyondSnapshot(StorageError):
    """Compacting past the snapshot would drop entries no snapshot covers."""
