"""The newest entries of the log as Entry objects.

The core reads mostly recent entries (replicating to followers, applying what was
just committed); serving those from the objects save() was given skips a SQLite
query and an Entry construction per entry. Older entries (a lagging follower,
a restart) come from SQLite. Bounded in entries and in bytes (issue 13: 1,000-row
INSERT batches are ~150 KB entries, and 8192 of them would be 1.2 GB of node memory).
"""
from __future__ import annotations

from ddb_node.raft.types import Entry


class TailCache:
    def __init__(self, capacity: int, next_index: int, max_bytes: int = 32 << 20):
        self.capacity = capacity
        self.max_bytes = max_bytes
        self.reset(next_index)

    def reset(self, next_index: int) -> None:
        """Empty, positioned right after the log's last entry."""
        self.first = next_index  # index of self.entries[0]; entries end at the log's last index
        self.entries: list[Entry] = []
        self.bytes = 0

    def append(self, batch: list[Entry]) -> None:
        """batch[0].index <= last index + 1 (the storage has validated it)."""
        if self.capacity <= 0:
            self.first = batch[-1].index + 1
            return
        position = batch[0].index - self.first
        if position < 0:  # truncation reaches below the cache: restart it at the batch
            self.reset(batch[0].index)
            position = 0
        if position < len(self.entries):
            self.bytes -= sum(len(e.data) for e in self.entries[position:])
            del self.entries[position:]
        self.entries.extend(batch)
        self.bytes += sum(len(e.data) for e in batch)
        excess = len(self.entries) - self.capacity
        if excess > self.capacity // 2:  # trim in chunks: amortised O(1) per entry
            self._drop(excess)
        if self.bytes > self.max_bytes:
            # drop the oldest until half the byte budget is left (amortised, as above)
            target = self.max_bytes // 2
            n = 0
            total = self.bytes
            while n < len(self.entries) - 1 and total > target:
                total -= len(self.entries[n].data)
                n += 1
            self._drop(n)

    def _drop(self, n: int) -> None:
        """Forget the n oldest entries."""
        if n > 0:
            self.bytes -= sum(len(e.data) for e in self.entries[:n])
            del self.entries[:n]
            self.first += n

    def compact(self, index: int) -> None:
        """Entries <= index are gone from the log."""
        drop = index + 1 - self.first
        if drop > 0:
            self._drop(min(drop, len(self.entries)))
            self.first = index + 1

    def covers(self, lo: int) -> bool:
        return lo >= self.first
