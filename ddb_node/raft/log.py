"""The core's view of the log: persisted entries (Storage) plus an unstable tail.

Entries the core has accepted but the driver has not yet persisted live in the
unstable tail (and an unstable snapshot may replace everything). Reads prefer the
unstable tail, so the storage may lag behind until the next `save`.
"""
from __future__ import annotations

from .storage import Storage
from .types import Compacted, Entry, Snapshot, Unavailable


class RaftLog:
    __slots__ = ("storage", "unstable", "offset", "in_progress", "snapshot",
                 "snapshot_in_progress", "committed", "applying", "applied")

    def __init__(self, storage: Storage, applied: int = 0):
        self.storage = storage
        self.unstable: list[Entry] = []
        self.offset = storage.last_index() + 1      # index of unstable[0]
        self.in_progress = 0                        # unstable[:in_progress] handed to the driver
        self.snapshot: Snapshot | None = None       # unstable snapshot awaiting persistence
        self.snapshot_in_progress = False
        first = storage.first_index()
        hs, _ = storage.initial_state()
        self.applied = max(applied, first - 1)
        self.committed = max(hs.commit, self.applied)
        self.applying = self.applied                 # last index handed out for applying

    # ---- bounds ------------------------------------------------------------
    def first_index(self) -> int:
        if self.snapshot is not None:
            return self.snapshot.meta.index + 1
        return self.storage.first_index()

    def last_index(self) -> int:
        if self.unstable:
            return self.offset + len(self.unstable) - 1
        if self.snapshot is not None:
            return self.snapshot.meta.index
        return self.storage.last_index()

    def persisted_last_index(self) -> int:
        """Last index known durable (entries not yet handed out or saved excluded)."""
        if self.snapshot is not None:
            return self.snapshot.meta.index if not self.unstable else self.offset - 1
        return self.offset - 1 if self.unstable else self.storage.last_index()

    def term(self, index: int) -> int:
        """Term at index; raises Compacted / Unavailable like Storage.term."""
        off = self.offset
        if index >= off:
            pos = index - off
            if pos < len(self.unstable):
                return self.unstable[pos].term
            raise Unavailable(index)
        snap = self.snapshot
        if snap is not None:
            if index == snap.meta.index:
                return snap.meta.term
            if index < snap.meta.index:
                raise Compacted(index)
            raise Unavailable(index)
        return self.storage.term(index)

    def term_or_zero(self, index: int) -> int:
        try:
            return self.term(index)
        except (Compacted, Unavailable):
            return 0

    def last_term(self) -> int:
        return self.term(self.last_index())

    def match_term(self, index: int, term: int) -> bool:
        try:
            return self.term(index) == term
        except (Compacted, Unavailable):
            return False

    def is_up_to_date(self, last_index: int, last_term: int) -> bool:
        """Raft paper 5.4.1: the candidate's log is at least as up-to-date as ours."""
        my_term = self.last_term()
        return last_term > my_term or (last_term == my_term and last_index >= self.last_index())

    # ---- reads -------------------------------------------------------------
    def entries(self, lo: int, hi: int, max_entries: int | None = None,
                max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi) bounded by count and bytes (at least one entry)."""
        if lo >= hi:
            return []
        if max_entries is not None and hi - lo > max_entries:
            hi = lo + max_entries
        first = self.first_index()
        if lo < first:
            raise Compacted(lo)
        last = self.last_index()
        if hi > last + 1:
            raise Unavailable(hi)
        off = self.offset
        if lo >= off:
            ents = self.unstable[lo - off:hi - off]
        elif hi <= off:
            return self.storage.entries(lo, hi, max_bytes)
        else:
            ents = self.storage.entries(lo, off, max_bytes)
            if len(ents) == off - lo:
                ents = ents + self.unstable[:hi - off]
        if max_bytes is not None and ents:
            total = 0
            for i, e in enumerate(ents):
                total += len(e.data)
                if total > max_bytes and i > 0:
                    return ents[:i]
        return ents

    # ---- writes (in memory; persisted by the driver through Ready) ----------
    def append(self, ents: list[Entry]) -> int:
        """Append entries, truncating any conflicting unstable/stored suffix."""
        if not ents:
            return self.last_index()
        after = ents[0].index
        if after <= self.committed:
            raise AssertionError(f"append at {after} would overwrite committed {self.committed}")
        off = self.offset
        n = len(self.unstable)
        if after == off + n:
            self.unstable.extend(ents)
        elif after <= off:
            # replace the whole unstable tail; the driver's save truncates storage
            self.offset = after
            self.unstable = list(ents)
            self.in_progress = 0
        else:
            keep = after - off
            del self.unstable[keep:]
            self.unstable.extend(ents)
            if self.in_progress > keep:
                self.in_progress = keep
        return self.last_index()

    def find_conflict(self, ents: list[Entry]) -> int:
        """First index of ents that is new or conflicts with our log; 0 if all present."""
        last = self.last_index()
        for e in ents:
            if e.index > last:
                return e.index
            if not self.match_term(e.index, e.term):
                return e.index
        return 0

    def find_conflict_by_term(self, index: int, term: int) -> int:
        """Largest index <= index whose term is <= term (fast backtracking)."""
        while index > 0:
            try:
                t = self.term(index)
            except Compacted:
                return index
            except Unavailable:
                index = self.last_index() if index > self.last_index() else index - 1
                continue
            if t <= term:
                return index
            index -= 1
        return 0

    def maybe_append(self, index: int, log_term: int, committed: int,
                     ents: list[Entry]) -> int | None:
        """AppendEntries receiver rules (paper 5.3). Returns last new index or None."""
        if not self.match_term(index, log_term):
            return None
        last_new = index + len(ents)
        if ents:
            ci = self.find_conflict(ents)
            if ci:
                if ci <= self.committed:
                    raise AssertionError(f"conflict at {ci} <= committed {self.committed}")
                self.append(ents[ci - index - 1:])
        self.commit_to(min(committed, last_new))
        return last_new

    def commit_to(self, index: int) -> bool:
        if index > self.committed:
            if index > self.last_index():
                raise AssertionError(f"commit {index} beyond last index {self.last_index()}")
            self.committed = index
            return True
        return False

    def restore(self, snap: Snapshot) -> None:
        """Replace the whole log by a snapshot (install from the leader)."""
        self.committed = snap.meta.index
        self.snapshot = snap
        self.snapshot_in_progress = False
        self.unstable = []
        self.offset = snap.meta.index + 1
        self.in_progress = 0

    # ---- Ready bookkeeping --------------------------------------------------
    def take_unstable(self) -> list[Entry]:
        ents = self.unstable[self.in_progress:]
        self.in_progress = len(self.unstable)
        return ents

    def has_unstable(self) -> bool:
        return self.in_progress < len(self.unstable) or (
            self.snapshot is not None and not self.snapshot_in_progress)

    def stable_to(self, index: int, term: int) -> None:
        """The driver persisted entries up to index (ignored if overwritten since)."""
        pos = index - self.offset
        if 0 <= pos < len(self.unstable) and self.unstable[pos].term == term:
            del self.unstable[:pos + 1]
            self.offset = index + 1
            self.in_progress = max(0, self.in_progress - pos - 1)

    def stable_snap_to(self, index: int) -> None:
        if self.snapshot is not None and self.snapshot.meta.index == index:
            self.snapshot = None
            self.snapshot_in_progress = False

    def has_next_committed(self) -> bool:
        return self.committed > self.applying

    def next_committed(self, max_entries: int) -> list[Entry]:
        lo = max(self.applying, self.first_index() - 1) + 1
        hi = self.committed + 1
        if lo >= hi:
            return []
        ents = self.entries(lo, hi, max_entries=max_entries)
        if ents:
            self.applying = ents[-1].index
        return ents

    def applied_to(self, index: int) -> None:
        if index > self.applied:
            self.applied = index
        if self.applying < self.applied:
            self.applying = self.applied
