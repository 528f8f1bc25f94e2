"""Terms of a log kept as runs (first index of each term), so term() never asks SQLite.

Raft terms only change at elections, so a log of millions of entries has a handful
of runs: memory stays tiny and the common lookup (the newest term) is O(1).
"""
from __future__ import annotations

from bisect import bisect_left, bisect_right

from ddb_node.raft.types import Entry


class TermRuns:
    def __init__(self, prev_index: int, prev_term: int):
        self.reset(prev_index, prev_term)

    def reset(self, prev_index: int, prev_term: int) -> None:
        """Log is empty after prev_index (the snapshot / compaction boundary)."""
        self._starts = [prev_index]
        self._terms = [prev_term]

    def add_run(self, start: int, term: int) -> None:
        """Used when loading runs from disk in index order."""
        if term != self._terms[-1]:
            self._starts.append(start)
            self._terms.append(term)

    def term_at(self, index: int) -> int:
        """Caller has checked index lies in [prev_index, last_index]."""
        if index >= self._starts[-1]:
            return self._terms[-1]
        return self._terms[bisect_right(self._starts, index) - 1]

    def truncate_from(self, index: int) -> None:
        """Forget terms of entries >= index (index > prev_index)."""
        keep = bisect_left(self._starts, index)
        del self._starts[keep:]
        del self._terms[keep:]

    def append(self, entries: list[Entry]) -> None:
        current = self._terms[-1]
        for entry in entries:
            if entry.term != current:
                current = entry.term
                self._starts.append(entry.index)
                self._terms.append(current)

    def compact(self, new_prev_index: int) -> None:
        run = bisect_right(self._starts, new_prev_index) - 1
        self._starts[: run + 1] = [new_prev_index]
        self._terms[: run + 1] = [self._terms[run]]
