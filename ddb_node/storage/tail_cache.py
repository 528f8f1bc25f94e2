"""The newest entries of the log as Entry objects.

The core reads mostly recent entries (replicating to followers, applying what was
just committed); serving those from the objects save() was given skips a SQLite
query and an Entry construction per entry. Older entries (a lagging follower,
a restart) come from SQLite.
"""
from __future__ import annotations

from ddb_node.raft.types import Entry


class TailCache:
    def __init__(self, capacity: int, next_index: int):
        self.capacity = capacity
        self.reset(next_index)

    def reset(self, next_index: int) -> None:
        """Empty, positioned right after the log's last entry."""
        self.first = next_index  # index of self.entries[0]; entries end at the log's last index
        self.entries: list[Entry] = []

    def append(self, batch: list[Entry]) -> None:
        """batch[0].index <= last index + 1 (the storage has validated it)."""
        if self.capacity <= 0:
            self.first = batch[-1].index + 1
            return
        position = batch[0].index - self.first
        if position < 0:  # truncation reaches below the cache: restart it at the batch
            self.reset(batch[0].index)
            position = 0
        del self.entries[position:]
        self.entries.extend(batch)
        excess = len(self.entries) - self.capacity
        if excess > self.capacity // 2:  # trim in chunks: amortised O(1) per entry
            del self.entries[:excess]
            self.first += excess

    def compact(self, index: int) -> None:
        """Entries <= index are gone from the log."""
        drop = index + 1 - self.first
        if drop > 0:
            del self.entries[:drop]
            self.first = index + 1

    def covers(self, lo: int) -> bool:
        return lo >= self.first
