"""The Storage protocol the core reads its persisted log through (etcd-io/raft style).

The core never writes storage itself: it hands entries, hard state and snapshots to
the driver in a Ready, and the driver calls `save` (one atomic, durable write per
Ready). Implementations live in `ddb_node.storage` and import these types.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from .types import ConfState, Entry, HardState, Snapshot, SnapshotChunk, SnapshotMeta


@runtime_checkable
class SnapshotSource(Protocol):
    """What a leader streams to a follower: a snapshot's meta and its bytes, read a chunk at
    a time so that neither the core nor the driver ever holds a whole snapshot. The meta must
    describe exactly the state in the bytes (index, term and configuration of that state)."""
    meta: SnapshotMeta
    size: int

    def read(self, offset: int, n: int) -> bytes:
        """Bytes [offset, offset + n) (fewer only at the end)."""


@runtime_checkable
class Storage(Protocol):
    # ---- read side, used by the core -------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        """Persisted hard state and the conf state of the latest snapshot
        (or of the bootstrap configuration)."""

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        """Entries [lo, hi). Raises Compacted if lo < first_index(), Unavailable if
        hi > last_index() + 1. With max_bytes, returns at least one entry and stops
        before the total data size would exceed it."""

    def term(self, index: int) -> int:
        """Term of the entry at index; index == first_index() - 1 gives the snapshot's
        term. Raises Compacted / Unavailable outside [first_index()-1, last_index()]."""

    def first_index(self) -> int:
        """Index of the first available entry (snapshot index + 1)."""

    def last_index(self) -> int:
        """Index of the last entry (snapshot index if the log is empty)."""

    def snapshot(self) -> Snapshot:
        """The most recent snapshot (meta + data). May read the data from disk: for tests
        and the simulator; the core only asks `snapshot_meta` and `snapshot_source`."""

    def snapshot_source(self) -> SnapshotSource:
        """A snapshot to send to a follower, at an index >= snapshot_meta().index whose
        following entries are still in the log. Raises SnapshotTemporarilyUnavailable when
        none can be had now (the core retries later)."""

    def staged_snapshot(self) -> tuple[SnapshotMeta, int, int] | None:
        """The snapshot being received, as (meta, epoch, bytes staged), so that an install
        interrupted by a restart resumes where it stopped (see SnapshotChunk.epoch)."""

    def snapshot_meta(self) -> SnapshotMeta:
        """The most recent snapshot's index, term and configuration, without its data
        (cheap: callers on the hot path ask this, never `snapshot()`)."""

    # ---- write side, used by the driver -----------------------------------------
    def save(self, hard_state: HardState | None, entries: list[Entry],
             snapshot: Snapshot | None, sync: bool = True) -> None:
        """Persist one Ready atomically: apply the snapshot first (discarding the
        log it covers; its data are the chunks staged for its meta when there are, else
        `snapshot.data`), then append entries (truncating any conflicting suffix
        from entries[0].index), then the hard state. Durable on return, except that
        with `sync=False` (Ready.must_sync false: only the commit index changed) the
        storage may skip the flush."""

    def stage_snapshot_chunk(self, chunk: SnapshotChunk) -> None:
        """Stage the next piece of the snapshot being received (Ready.snapshot_chunks). A
        piece at offset 0 starts a new staging and discards any other; a later piece must
        be of the same (meta, epoch) and start where the staged bytes end. Staged bytes
        need not be durable: the install checks the image, and a restart resumes from what
        is on disk."""

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes = b"") -> Snapshot:
        """Record a snapshot of the applied state at index (index <= last applied). With no
        data it is metadata only: the state machine itself holds that state (a durable one
        does), and `snapshot_source` reads it when a follower needs it."""

    def compact(self, index: int) -> None:
        """Discard entries up to and including index (index <= snapshot index)."""

    def close(self) -> None:
        ...
