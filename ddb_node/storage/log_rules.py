"""Rules both storages share, so they cannot drift apart: read bounds, size
limiting, and how an appended batch lines up with the existing log."""
from __future__ import annotations

from ddb_node.raft.types import Compacted, Entry, Snapshot, StorageError, Unavailable

from .errors import CompactBeyondSnapshot, LogGap, SnapshotOutOfDate


def check_entries_range(lo: int, hi: int, first: int, last: int) -> None:
    if lo > hi:
        raise ValueError(f"invalid range [{lo}, {hi})")
    if lo < first:
        raise Compacted(f"entry {lo} is compacted (first index {first})")
    if hi > last + 1:
        raise Unavailable(f"entries up to {hi - 1} requested, last index is {last}")


def check_term_index(index: int, first: int, last: int) -> None:
    if index < first - 1:
        raise Compacted(f"term of {index} is compacted (first index {first})")
    if index > last:
        raise Unavailable(f"term of {index} requested, last index is {last}")


def size_limited_stop(entries: list[Entry], start: int, stop: int, max_bytes: int | None) -> int:
    """End position of the longest run entries[start:end] within max_bytes (by
    Entry.size()), never empty: a single oversized entry must still be able to travel."""
    if max_bytes is None or stop - start <= 1:
        return stop
    total = entries[start].size()
    for position in range(start + 1, stop):
        total += entries[position].size()
        if total > max_bytes:
            return position
    return stop


def entries_to_append(entries: list[Entry], first: int, last: int) -> list[Entry]:
    """The part of `entries` to write at entries[0].index (after dropping what is
    already compacted); the caller truncates its log from there. Raises on a gap.

    Only the batch's ends are checked for contiguity: a per-entry check would cost
    more than the append itself, and the core builds batches contiguously.
    """
    if not entries:
        return entries
    start = entries[0].index
    end = entries[-1].index
    if end != start + len(entries) - 1:
        raise StorageError(f"batch [{start}..{end}] of {len(entries)} entries is not contiguous")
    if end < first:
        return []  # all of it is already covered by the snapshot
    if start < first:
        entries = entries[first - start:]
        start = first
    if start > last + 1:
        raise LogGap(f"entries start at {start} but the last index is {last}")
    return entries


def check_snapshot_newer(snapshot: Snapshot, current_index: int) -> None:
    if snapshot.meta.index <= current_index:
        raise SnapshotOutOfDate(
            f"snapshot at {snapshot.meta.index} is not newer than the stored one at {current_index}")


def check_create_snapshot(index: int, snapshot_index: int, last: int) -> None:
    if index <= snapshot_index:
        raise SnapshotOutOfDate(f"snapshot at {index} requested, already have one at {snapshot_index}")
    if index > last:
        raise Unavailable(f"snapshot at {index} requested, last index is {last}")


def check_compact(index: int, first: int, last: int, snapshot_index: int) -> None:
    if index < first:
        raise Compacted(f"compact to {index} requested, already compacted to {first - 1}")
    if index > last:  # possible only if a save truncated entries the snapshot covers
        raise Unavailable(f"compact to {index} requested, last index is {last}")
    if index > snapshot_index:
        raise CompactBeyondSnapshot(
            f"compact to {index} requested, but the snapshot only covers up to {snapshot_index}")


def check_staged_piece(staged: tuple | None, chunk) -> None:
    """A staged piece after the first continues the staging of the same (meta, epoch)
    exactly where its bytes end (the core only hands out such pieces)."""
    if staged is None:
        raise StorageError(f"snapshot piece at offset {chunk.offset} with nothing staged")
    meta, epoch, length = staged
    if (meta.index, meta.term, epoch) != (chunk.meta.index, chunk.meta.term, chunk.epoch):
        raise StorageError(f"snapshot piece of {chunk.meta.index}/{chunk.meta.term} "
                           f"(epoch {chunk.epoch}) but {meta.index}/{meta.term} "
                           f"(epoch {epoch}) is staged")
    if chunk.offset != length:
        raise StorageError(f"snapshot piece at offset {chunk.offset}, {length} bytes staged")
