"""In-memory Raft log for the simulator and benchmarks.

The log is a plain list plus the index of its first entry, so every read is a
slice and every append an extend: the cost per entry stays in C, which is what
lets a simulated 3-node cluster move >100k entries/s. Not thread-safe: the driver
owns it and calls it from one thread.
"""
from __future__ import annotations

from typing import Callable

from ddb_node.raft.types import (ConfState, Entry, HardState, Snapshot, SnapshotChunk,
                                 SnapshotMeta)

from . import log_rules
from .snapshot_sources import BytesSource


class MemoryStorage:
    def __init__(self, conf_state: ConfState | None = None):
        self._hard_state = HardState()
        self._snapshot = Snapshot(SnapshotMeta(0, 0, conf_state or ConfState()))
        self._entries: list[Entry] = []  # entry with index i is at position i - self._first
        self._first = 1
        self._prev_term = 0  # term of entry first - 1 (compacted or snapshot boundary)
        self._staged: list | None = None  # [meta, epoch, total, bytearray] being received
        self._provider: Callable[[], object] | None = None

    # ---- read side -----------------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        hs = self._hard_state
        return HardState(hs.term, hs.vote, hs.commit), self._snapshot.meta.conf_state

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        first = self._first
        log_rules.check_entries_range(lo, hi, first, first + len(self._entries) - 1)
        start, stop = lo - first, hi - first
        if max_bytes is not None:
            stop = log_rules.size_limited_stop(self._entries, start, stop, max_bytes)
        return self._entries[start:stop]

    def term(self, index: int) -> int:
        position = index - self._first
        if 0 <= position < len(self._entries):
            return self._entries[position].term
        if position == -1:
            return self._prev_term
        log_rules.check_term_index(index, self._first, self.last_index())
        raise AssertionError("unreachable")

    def first_index(self) -> int:
        return self._first

    def last_index(self) -> int:
        return self._first + len(self._entries) - 1

    def snapshot(self) -> Snapshot:
        return self._snapshot

    def snapshot_meta(self) -> SnapshotMeta:
        return self._snapshot.meta

    def set_snapshot_provider(self, provider: Callable[[], object] | None) -> None:
        """Let `snapshot_source` read the state machine itself (a node whose compactions
        record metadata only) instead of the stored snapshot's data."""
        self._provider = provider

    def snapshot_source(self):
        if self._provider is not None:
            return self._provider()
        return BytesSource(self._snapshot.meta, self._snapshot.data)

    def staged_snapshot(self) -> tuple[SnapshotMeta, int, int] | None:
        st = self._staged
        return None if st is None else (st[0], st[1], len(st[3]))

    def stage_snapshot_chunk(self, chunk: SnapshotChunk) -> None:
        st = self._staged
        if chunk.offset == 0:
            self._staged = [chunk.meta, chunk.epoch, chunk.total, bytearray(chunk.data)]
            return
        log_rules.check_staged_piece(st and (st[0], st[1], len(st[3])), chunk)
        st[3] += chunk.data

    # ---- write side ----------------------------------------------------------
    def save(self, hard_state: HardState | None, entries: list[Entry],
             snapshot: Snapshot | None, sync: bool = True) -> None:
        """Snapshot, then entries, then hard state; everything is validated before
        anything changes so a rejected save leaves the storage untouched."""
        has_snapshot = snapshot is not None and not snapshot.is_empty()
        if has_snapshot:
            log_rules.check_snapshot_newer(snapshot, self._snapshot.meta.index)
            first = snapshot.meta.index + 1
            last = snapshot.meta.index
        else:
            first, last = self._first, self.last_index()
        to_append = log_rules.entries_to_append(entries, first, last)

        if has_snapshot:
            self._apply_snapshot(self._with_staged_data(snapshot))
        if to_append:
            position = to_append[0].index - self._first
            if position < len(self._entries):
                del self._entries[position:]
            self._entries.extend(to_append)
        if hard_state is not None:
            self._hard_state = HardState(hard_state.term, hard_state.vote, hard_state.commit)

    def _with_staged_data(self, snapshot: Snapshot) -> Snapshot:
        """A snapshot received from a leader: its data are the staged chunks."""
        st = self._staged
        m = snapshot.meta
        if st is not None and (st[0].index, st[0].term) == (m.index, m.term) and len(st[3]) == st[2]:
            self._staged = None
            return Snapshot(m, bytes(st[3]))
        return snapshot

    def _apply_snapshot(self, snapshot: Snapshot) -> None:
        """Like etcd's ApplySnapshot: the whole log is replaced, even entries past
        the snapshot that might match; the leader resends what follows."""
        self._snapshot = snapshot
        self._entries = []
        self._first = snapshot.meta.index + 1
        self._prev_term = snapshot.meta.term

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes = b"") -> Snapshot:
        log_rules.check_create_snapshot(index, self._snapshot.meta.index, self.last_index())
        self._snapshot = Snapshot(SnapshotMeta(index, self.term(index), conf_state), data)
        return self._snapshot

    def compact(self, index: int) -> None:
        log_rules.check_compact(index, self._first, self.last_index(), self._snapshot.meta.index)
        self._prev_term = self.term(index)
        del self._entries[:index + 1 - self._first]
        self._first = index + 1

    def close(self) -> None:
        pass
