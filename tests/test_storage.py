"""Specification of the Raft log storages (ddb_node.storage).

Every test in the first part runs against both MemoryStorage and SqliteLogStorage:
they must be indistinguishable through the Storage protocol. The second part covers
what only the durable storage promises: reopening, one transaction per save, and
surviving a SIGKILL in the middle of writing.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

import apsw
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ddb_node.raft.storage import Storage
from ddb_node.raft.types import (
    Compacted, ConfState, Entry, EntryType, HardState, Snapshot, SnapshotMeta,
    StorageError, Unavailable,
)
from ddb_node.storage import (
    CompactBeyondSnapshot, LogGap, MemoryStorage, SnapshotOutOfDate, SqliteLogStorage,
)
from tests.storage_crash_writer import payload, snapshot_data, term_of

THREE_VOTERS = ConfState(voters=(1, 2, 3))


def ents(first: int, last: int, term: int = 1, data: bytes | None = None) -> list[Entry]:
    """Entries first..last (inclusive) in `term`; data defaults to a function of the index."""
    return [Entry(term, i, EntryType.NORMAL, b"e%d" % i if data is None else data)
            for i in range(first, last + 1)]


def snap(index: int, term: int, data: bytes = b"state", conf: ConfState = THREE_VOTERS) -> Snapshot:
    return Snapshot(SnapshotMeta(index, term, conf), data)


@pytest.fixture(params=["memory", "sqlite"])
def make_storage(request, tmp_path):
    """Factory for a fresh storage of each kind (closed after the test)."""
    opened = []

    def make(conf_state: ConfState | None = THREE_VOTERS):
        if request.param == "memory":
            storage = MemoryStorage(conf_state)
        else:
            storage = SqliteLogStorage(tmp_path / f"raft{len(opened)}.db", conf_state)
        opened.append(storage)
        return storage

    yield make
    for storage in opened:
        storage.close()


@pytest.fixture
def storage(make_storage):
    return make_storage()


def log_of(storage) -> list[Entry]:
    return storage.entries(storage.first_index(), storage.last_index() + 1)


# ---- a fresh storage ---------------------------------------------------------

def test_implements_the_storage_protocol(storage):
    assert isinstance(storage, Storage)


def test_fresh_storage_has_an_empty_log_after_index_zero(storage):
    assert storage.first_index() == 1
    assert storage.last_index() == 0
    assert storage.term(0) == 0
    assert storage.entries(1, 1) == []


def test_fresh_storage_returns_the_bootstrap_configuration(storage):
    assert storage.initial_state() == (HardState(), THREE_VOTERS)
    assert storage.snapshot().is_empty()
    assert storage.snapshot().meta.conf_state == THREE_VOTERS


def test_fresh_storage_without_bootstrap_has_an_empty_configuration(make_storage):
    assert make_storage(None).initial_state() == (HardState(), ConfState())


def test_fresh_storage_has_nothing_beyond_index_zero(storage):
    with pytest.raises(Unavailable):
        storage.term(1)
    with pytest.raises(Unavailable):
        storage.entries(1, 2)


# ---- appending and reading ---------------------------------------------------

def test_appended_entries_read_back_in_order(storage):
    storage.save(None, ents(1, 5), None)
    assert storage.first_index() == 1
    assert storage.last_index() == 5
    assert storage.entries(2, 4) == ents(2, 3)
    assert log_of(storage) == ents(1, 5)


def test_each_append_extends_the_log(storage):
    storage.save(None, ents(1, 3, term=1), None)
    storage.save(None, ents(4, 6, term=2), None)
    assert log_of(storage) == ents(1, 3, term=1) + ents(4, 6, term=2)
    assert [storage.term(i) for i in range(0, 7)] == [0, 1, 1, 1, 2, 2, 2]


def test_entries_keep_type_and_data(storage):
    batch = [Entry(1, 1, EntryType.CONF_CHANGE, b"\x00conf"), Entry(1, 2, EntryType.NORMAL, b""),
             Entry(1, 3, EntryType.NORMAL, bytes(range(256)))]
    storage.save(None, batch, None)
    assert storage.entries(1, 4) == batch


def test_empty_range_is_empty(storage):
    storage.save(None, ents(1, 5), None)
    assert storage.entries(3, 3) == []
    assert storage.entries(6, 6) == []


def test_reading_past_the_last_index_is_unavailable(storage):
    storage.save(None, ents(1, 5), None)
    with pytest.raises(Unavailable):
        storage.entries(4, 7)
    with pytest.raises(Unavailable):
        storage.term(6)


def test_reading_below_the_first_index_is_compacted(storage):
    storage.save(None, ents(1, 10), None)
    storage.create_snapshot(5, THREE_VOTERS, b"s")
    storage.compact(5)
    with pytest.raises(Compacted):
        storage.entries(5, 7)
    with pytest.raises(Compacted):
        storage.term(4)


# ---- max_bytes ---------------------------------------------------------------

def test_max_bytes_stops_before_the_total_would_exceed_it(storage):
    storage.save(None, ents(1, 10, data=b"x" * 84), None)  # Entry.size() == 100 each
    assert storage.entries(1, 11, max_bytes=350) == ents(1, 3, data=b"x" * 84)
    assert storage.entries(1, 11, max_bytes=300) == ents(1, 3, data=b"x" * 84)
    assert len(storage.entries(1, 11, max_bytes=10_000)) == 10


def test_max_bytes_always_returns_at_least_one_entry(storage):
    storage.save(None, ents(1, 3, data=b"x" * 1000), None)
    assert storage.entries(2, 4, max_bytes=1) == ents(2, 2, data=b"x" * 1000)
    assert storage.entries(2, 4, max_bytes=0) == ents(2, 2, data=b"x" * 1000)


# ---- truncation and gaps -----------------------------------------------------

def test_conflicting_suffix_is_replaced(storage):
    storage.save(None, ents(1, 10, term=1), None)
    storage.save(None, ents(6, 7, term=2), None)
    assert storage.last_index() == 7
    assert log_of(storage) == ents(1, 5, term=1) + ents(6, 7, term=2)
    assert storage.term(7) == 2
    with pytest.raises(Unavailable):
        storage.term(8)


def test_rewriting_from_the_first_index_replaces_the_whole_log(storage):
    storage.save(None, ents(1, 5, term=1), None)
    storage.save(None, ents(1, 2, term=3), None)
    assert log_of(storage) == ents(1, 2, term=3)


def test_a_gap_after_the_last_index_is_rejected_and_changes_nothing(storage):
    storage.save(HardState(1, 1, 0), ents(1, 5), None)
    with pytest.raises(LogGap):
        storage.save(HardState(2, 2, 2), ents(7, 8), None)
    assert isinstance(LogGap(), StorageError)
    assert log_of(storage) == ents(1, 5)
    assert storage.initial_state()[0] == HardState(1, 1, 0)


def test_a_batch_with_holes_is_rejected(storage):
    with pytest.raises(StorageError):
        storage.save(None, [Entry(1, 1), Entry(1, 3)], None)
    assert storage.last_index() == 0


def test_entries_already_covered_by_the_snapshot_are_skipped(storage):
    storage.save(None, ents(1, 10), None)
    storage.create_snapshot(6, THREE_VOTERS, b"s")
    storage.compact(6)
    storage.save(None, ents(4, 12, term=1), None)  # 4..6 are compacted, 7.. overwrite
    assert storage.first_index() == 7
    assert log_of(storage) == ents(7, 12)
    storage.save(None, ents(2, 5), None)  # entirely compacted: a no-op
    assert log_of(storage) == ents(7, 12)


# ---- hard state --------------------------------------------------------------

def test_hard_state_round_trips(storage):
    storage.save(HardState(term=3, vote=2, commit=0), [], None)
    assert storage.initial_state() == (HardState(3, 2, 0), THREE_VOTERS)


def test_save_without_hard_state_keeps_the_previous_one(storage):
    storage.save(HardState(3, 2, 1), ents(1, 1), None)
    storage.save(None, ents(2, 2), None)
    assert storage.initial_state()[0] == HardState(3, 2, 1)


def test_returned_hard_state_is_a_copy(storage):
    storage.save(HardState(3, 2, 1), [], None)
    storage.initial_state()[0].commit = 99
    assert storage.initial_state()[0] == HardState(3, 2, 1)


# ---- create_snapshot and compact ---------------------------------------------

def test_create_snapshot_records_term_conf_state_and_data(storage):
    storage.save(None, ents(1, 3, term=1) + ents(4, 6, term=2), None)
    five_voters = ConfState(voters=(1, 2, 3, 4, 5), learners=(6,))
    created = storage.create_snapshot(5, five_voters, b"state at 5")
    assert created == snap(5, 2, b"state at 5", five_voters)
    assert storage.snapshot() == created
    assert storage.snapshot_meta() == created.meta      # the cheap form, no data read
    assert storage.initial_state() == (HardState(), five_voters)
    assert log_of(storage) == ents(1, 3, term=1) + ents(4, 6, term=2)  # the log is untouched


def test_snapshot_meta_follows_every_kind_of_snapshot_write(storage):
    """snapshot_meta() (what the node asks every loop turn) always describes snapshot()."""
    assert storage.snapshot_meta() == storage.snapshot().meta
    storage.save(None, ents(1, 6, term=1), None)
    storage.create_snapshot(4, ConfState(voters=(1,)), b"at 4")
    assert storage.snapshot_meta() == storage.snapshot().meta
    storage.save(None, [], snap(9, 3, b"from leader", ConfState(voters=(1, 2))))
    assert storage.snapshot_meta() == storage.snapshot().meta
    assert storage.snapshot_meta().index == 9


def test_create_snapshot_must_move_forward_within_the_log(storage):
    storage.save(None, ents(1, 5), None)
    storage.create_snapshot(3, THREE_VOTERS, b"")
    with pytest.raises(SnapshotOutOfDate):
        storage.create_snapshot(3, THREE_VOTERS, b"")
    with pytest.raises(SnapshotOutOfDate):
        storage.create_snapshot(2, THREE_VOTERS, b"")
    with pytest.raises(Unavailable):
        storage.create_snapshot(6, THREE_VOTERS, b"")
    assert storage.snapshot().meta.index == 3


def test_compact_discards_entries_up_to_the_index(storage):
    storage.save(None, ents(1, 5, term=1) + ents(6, 10, term=2), None)
    storage.create_snapshot(8, THREE_VOTERS, b"s")
    storage.compact(6)
    assert storage.first_index() == 7
    assert storage.last_index() == 10
    assert storage.term(6) == 2  # the boundary entry's term is still known
    assert log_of(storage) == ents(7, 10, term=2)
    storage.compact(8)
    assert storage.term(8) == 2
    assert storage.first_index() == 9


def test_compact_may_empty_the_log(storage):
    storage.save(None, ents(1, 5), None)
    storage.create_snapshot(5, THREE_VOTERS, b"s")
    storage.compact(5)
    assert (storage.first_index(), storage.last_index(), storage.term(5)) == (6, 5, 1)
    storage.save(None, ents(6, 7, term=2), None)
    assert log_of(storage) == ents(6, 7, term=2)


def test_compact_cannot_go_backwards_or_past_the_snapshot(storage):
    storage.save(None, ents(1, 10), None)
    storage.create_snapshot(5, THREE_VOTERS, b"s")
    storage.compact(4)
    with pytest.raises(Compacted):
        storage.compact(4)
    with pytest.raises(Compacted):
        storage.compact(2)
    with pytest.raises(CompactBeyondSnapshot):
        storage.compact(6)  # entries 6.. are not in any snapshot
    assert storage.first_index() == 5


# ---- staging a snapshot being received (issue 13) --------------------------------

def piece(offset: int, data: bytes, total: int, index: int = 20, term: int = 2, epoch: int = 5):
    from ddb_node.raft import SnapshotChunk
    return SnapshotChunk(SnapshotMeta(index, term, THREE_VOTERS), offset, data,
                         offset + len(data) >= total, total, epoch)


def test_staged_chunks_become_the_installed_snapshots_data(storage):
    storage.save(None, ents(1, 5), None)
    storage.stage_snapshot_chunk(piece(0, b"abc", 6))
    storage.stage_snapshot_chunk(piece(3, b"def", 6))
    assert storage.staged_snapshot() == (SnapshotMeta(20, 2, THREE_VOTERS), 5, 6)
    storage.save(None, [], snap(20, 2, b""))           # the core's Snapshot carries no data
    assert storage.snapshot() == snap(20, 2, b"abcdef")
    assert storage.staged_snapshot() is None
    assert storage.first_index() == 21


def test_a_piece_out_of_place_is_refused_and_a_new_first_piece_restarts(storage):
    storage.stage_snapshot_chunk(piece(0, b"abc", 9))
    with pytest.raises(StorageError):
        storage.stage_snapshot_chunk(piece(6, b"ghi", 9))      # a gap
    with pytest.raises(StorageError):
        storage.stage_snapshot_chunk(piece(3, b"def", 9, epoch=6))   # another leader's image
    storage.stage_snapshot_chunk(piece(0, b"xy", 4, index=30))
    assert storage.staged_snapshot() == (SnapshotMeta(30, 2, THREE_VOTERS), 5, 2)


def test_metadata_only_snapshot_compacts_without_data(storage):
    storage.save(None, ents(1, 10), None)
    created = storage.create_snapshot(8, THREE_VOTERS)
    storage.compact(6)
    assert storage.snapshot_meta() == created.meta and storage.snapshot().data == b""
    assert storage.first_index() == 7 and storage.term(6) == 1


def test_snapshot_source_reads_the_stored_snapshot_or_the_provider(storage):
    storage.save(None, [], snap(20, 2, b"0123456789"))
    src = storage.snapshot_source()
    assert (src.meta.index, src.size, src.read(3, 4)) == (20, 10, b"3456")
    from ddb_node.storage.snapshot_sources import BytesSource
    other = BytesSource(SnapshotMeta(25, 2, THREE_VOTERS), b"live")
    storage.set_snapshot_provider(lambda: other)
    assert storage.snapshot_source() is other


def test_sqlite_staging_survives_a_restart_and_resumes(tmp_path):
    """A follower killed mid-install finds what it had staged (the part file's length)."""
    path = tmp_path / "raft.db"
    storage = SqliteLogStorage(path, THREE_VOTERS)
    storage.stage_snapshot_chunk(piece(0, b"abc", 9))
    storage.stage_snapshot_chunk(piece(3, b"def", 9))
    storage.close()
    reopened = SqliteLogStorage(path)
    assert reopened.staged_snapshot() == (SnapshotMeta(20, 2, THREE_VOTERS), 5, 6)
    reopened.stage_snapshot_chunk(piece(6, b"ghi", 9))
    reopened.save(None, [], snap(20, 2, b""))
    assert reopened.snapshot().data == b"abcdefghi"
    assert sorted(p.name for p in tmp_path.glob("raft.db-*") if "-wal" not in p.name
                  and "-shm" not in p.name) == ["raft.db-snapshot-20.bin"]
    reopened.close()


def test_sqlite_staging_already_covered_is_dropped_on_open(tmp_path):
    path = tmp_path / "raft.db"
    storage = SqliteLogStorage(path, THREE_VOTERS)
    storage.stage_snapshot_chunk(piece(0, b"abc", 9, index=3))
    storage.save(HardState(1, 0, 5), ents(1, 5), None)
    storage.close()
    reopened = SqliteLogStorage(path)
    assert reopened.staged_snapshot() is None
    assert not list(tmp_path.glob("*incoming*"))
    reopened.close()


# ---- save() with a snapshot (installing a leader's snapshot) ---------------------

def test_saved_snapshot_replaces_the_whole_log(storage):
    storage.save(None, ents(1, 10), None)
    installed = snap(7, 3, b"leader state")
    storage.save(HardState(3, 0, 7), [], installed)
    assert storage.first_index() == 8
    assert storage.last_index() == 7  # even matching entries 8..10 are gone (etcd's ApplySnapshot)
    assert storage.term(7) == 3
    assert storage.snapshot() == installed
    assert storage.initial_state() == (HardState(3, 0, 7), THREE_VOTERS)
    with pytest.raises(Compacted):
        storage.term(6)


def test_saved_snapshot_beyond_the_log_then_entries_after_it(storage):
    storage.save(None, ents(1, 3), None)
    storage.save(HardState(4, 0, 20), ents(21, 25, term=4), snap(20, 4))
    assert storage.first_index() == 21
    assert log_of(storage) == ents(21, 25, term=4)
    assert storage.term(20) == 4


def test_an_older_snapshot_is_rejected_and_changes_nothing(storage):
    storage.save(None, ents(1, 10), None)
    storage.save(None, [], snap(20, 2))
    with pytest.raises(SnapshotOutOfDate):
        storage.save(HardState(9, 9, 9), ents(21, 22), snap(20, 2))
    with pytest.raises(SnapshotOutOfDate):
        storage.save(None, [], snap(15, 2))
    assert storage.snapshot() == snap(20, 2)
    assert storage.initial_state()[0] == HardState()
    assert storage.last_index() == 20


def test_an_empty_snapshot_in_save_is_ignored(storage):
    storage.save(None, ents(1, 3), Snapshot())
    assert log_of(storage) == ents(1, 3)
    assert storage.snapshot().is_empty()


# ---- SqliteLogStorage only: durability ------------------------------------------

def test_reopening_restores_everything(tmp_path):
    path = tmp_path / "raft.db"
    storage = SqliteLogStorage(path, THREE_VOTERS)
    storage.save(HardState(2, 1, 8), ents(1, 5, term=1) + ents(6, 12, term=2), None)
    storage.create_snapshot(8, ConfState((1, 2, 3, 4), (5,)), b"state at 8")
    storage.compact(6)
    storage.close()

    reopened = SqliteLogStorage(path, ConfState(voters=(9,)))  # bootstrap ignored: not new
    assert reopened.initial_state() == (HardState(2, 1, 8), ConfState((1, 2, 3, 4), (5,)))
    assert reopened.snapshot() == snap(8, 2, b"state at 8", ConfState((1, 2, 3, 4), (5,)))
    assert (reopened.first_index(), reopened.last_index()) == (7, 12)
    assert [reopened.term(i) for i in range(6, 13)] == [2] * 7
    assert log_of(reopened) == ents(7, 12, term=2)
    reopened.close()


def test_a_commit_only_save_is_deferred_but_never_a_term_vote_or_entry(tmp_path):
    """Ready.must_sync (etcd's MustSync) is false when only the commit index changed: that
    index is volatile state in Raft (§5.2, Figure 2), so the save writes nothing now and the
    new commit goes with the next save (or at close). A term, a vote or entries are always
    written and flushed (FULL), whatever the caller passes."""
    path = tmp_path / "raft.db"
    s = SqliteLogStorage(path, THREE_VOTERS)
    db = s._db
    s.save(HardState(2, 1, 0), ents(1, 3, term=2), None)
    full = db.execute("PRAGMA synchronous").fetchone()[0]
    commits = []
    db.set_commit_hook(lambda: commits.append(db.execute("PRAGMA synchronous").fetchone()[0]) or False)

    s.save(HardState(2, 1, 3), [], None, sync=False)                   # commit only
    assert commits == [] and s.initial_state()[0] == HardState(2, 1, 3)
    crashed = SqliteLogStorage(path, THREE_VOTERS)                      # as after a crash now
    assert crashed.initial_state()[0] == HardState(2, 1, 0)
    crashed._db.close()

    s.save(None, ents(4, 4, term=2), None, sync=False)                  # an entry: flushed,
    assert commits == [full]                                            # with the commit
    after = SqliteLogStorage(path, THREE_VOTERS)
    assert after.initial_state()[0] == HardState(2, 1, 3)
    after._db.close()
    s.save(HardState(3, 1, 3), [], None, sync=False)                    # new term
    s.save(HardState(3, 2, 3), [], None, sync=False)                    # new vote
    assert commits == [full] * 3
    s.save(HardState(3, 2, 4), [], None, sync=False)                    # deferred again
    s.close()                                                           # and written at close
    reopened = SqliteLogStorage(path, THREE_VOTERS)
    assert reopened.initial_state()[0] == HardState(3, 2, 4)
    reopened.close()


def test_a_restart_after_a_deferred_commit_resumes_at_the_applied_index(tmp_path):
    """Raft §5.2: commitIndex is volatile. A node killed after deferring its commit index
    restarts with a stored commit behind what it applied; the core takes max(commit,
    applied), so nothing applied is handed out again and nothing committed is lost."""
    from ddb_node.raft.log import RaftLog
    path = tmp_path / "raft.db"
    s = SqliteLogStorage(path, THREE_VOTERS)
    s.save(HardState(2, 1, 2), ents(1, 5, term=2), None)
    s.save(HardState(2, 1, 5), [], None, sync=False)         # deferred, then the node dies
    s._db.close()
    reopened = SqliteLogStorage(path, THREE_VOTERS)
    assert reopened.initial_state()[0].commit == 2
    log = RaftLog(reopened, applied=4)                         # data.db had applied up to 4
    assert (log.committed, log.applied) == (4, 4)
    log.commit_to(5)                                           # learned again from the leader
    assert [e.index for e in log.next_committed(10)] == [5]
    reopened.close()


def test_reopening_after_an_installed_snapshot(tmp_path):
    path = tmp_path / "raft.db"
    storage = SqliteLogStorage(path, THREE_VOTERS)
    storage.save(None, ents(1, 5), None)
    storage.save(HardState(3, 0, 30), ents(31, 32, term=3), snap(30, 3, b"installed"))
    storage.close()
    reopened = SqliteLogStorage(path)
    assert reopened.snapshot() == snap(30, 3, b"installed")
    assert (reopened.first_index(), reopened.last_index(), reopened.term(30)) == (31, 32, 3)
    assert log_of(reopened) == ents(31, 32, term=3)
    reopened.close()


def test_term_runs_survive_reopen(tmp_path):
    path = tmp_path / "raft.db"
    storage = SqliteLogStorage(path)
    storage.save(None, ents(1, 2, term=1) + ents(3, 3, term=4) + ents(4, 6, term=5), None)
    storage.close()
    reopened = SqliteLogStorage(path)
    assert [reopened.term(i) for i in range(7)] == [0, 1, 1, 4, 5, 5, 5]
    reopened.close()


def test_only_the_current_snapshot_file_is_kept(tmp_path):
    path = tmp_path / "raft.db"
    storage = SqliteLogStorage(path, THREE_VOTERS)
    storage.save(None, ents(1, 10), None)
    storage.create_snapshot(3, THREE_VOTERS, b"three")
    storage.create_snapshot(6, THREE_VOTERS, b"six")
    (tmp_path / "raft.db-snapshot-9.bin.tmp").write_bytes(b"torn write")  # crash leftovers
    (tmp_path / "raft.db-snapshot-9.bin").write_bytes(b"never committed")
    storage.close()
    reopened = SqliteLogStorage(path)
    assert sorted(p.name for p in tmp_path.glob("*snapshot*")) == ["raft.db-snapshot-6.bin"]
    assert reopened.snapshot().data == b"six"
    reopened.close()


def stored_indexes(storage) -> list[int]:
    return [r[0] for r in storage.connection.execute("SELECT idx FROM entries ORDER BY idx")]


def test_compaction_is_logical_and_later_saves_trim_the_garbage_in_bounded_slices(tmp_path):
    """compact() writes one row whatever the prefix's size (deleting 120 MB of rows at once
    stalled the node's loop ~50 ms, issue 13); the rows below the first index are garbage that
    each later save deletes a bounded slice of (TRIM_BYTES, at least one row), and no read
    ever sees them."""
    from ddb_node.storage import sqlite_log
    storage = SqliteLogStorage(tmp_path / "raft.db", THREE_VOTERS)
    big = b"x" * (sqlite_log.TRIM_BYTES // 4)           # four of them fill a slice
    storage.save(None, ents(1, 20, data=big), None)
    storage.create_snapshot(18, THREE_VOTERS)
    commits = []
    storage.connection.set_commit_hook(lambda: commits.append(1) or False)
    storage.compact(18)
    assert len(commits) == 1
    assert storage.garbage_rows() == 18                 # nothing deleted yet
    assert (storage.first_index(), storage.term(18)) == (19, 1)
    assert log_of(storage) == ents(19, 20, data=big)
    with pytest.raises(Compacted):
        storage.entries(18, 19)
    trimmed = []
    while storage.garbage_rows():
        before = storage.garbage_rows()
        storage.save(None, ents(storage.last_index() + 1, storage.last_index() + 1), None)
        trimmed.append(before - storage.garbage_rows())
    assert trimmed == [4, 4, 4, 4, 2]                    # at most TRIM_BYTES a save
    assert stored_indexes(storage) == list(range(19, storage.last_index() + 1))
    storage.close()


def test_a_save_trims_at_least_twice_what_it_appends(tmp_path):
    """Garbage never outgrows the log: a save appending more than TRIM_BYTES trims twice that."""
    from ddb_node.storage import sqlite_log
    storage = SqliteLogStorage(tmp_path / "raft.db", THREE_VOTERS)
    chunk = b"y" * (sqlite_log.TRIM_BYTES // 2)
    storage.save(None, ents(1, 40, data=chunk), None)
    storage.create_snapshot(40, THREE_VOTERS)
    storage.compact(40)
    storage.save(None, ents(41, 44, data=chunk), None)  # appends 2 slices' worth: trims 4
    assert storage.garbage_rows() == 40 - 8
    storage.close()


def test_garbage_left_by_a_crash_is_invisible_after_reopen_and_trimmed_later(tmp_path):
    path = tmp_path / "raft.db"
    storage = SqliteLogStorage(path, THREE_VOTERS)
    storage.save(None, ents(1, 3, term=1) + ents(4, 10, term=2), None)
    storage.create_snapshot(6, THREE_VOTERS)
    storage.compact(6)
    storage.close()                                      # the garbage is still stored
    reopened = SqliteLogStorage(path)
    assert reopened.garbage_rows() == 6
    assert (reopened.first_index(), reopened.last_index(), reopened.term(6)) == (7, 10, 2)
    assert [reopened.term(i) for i in range(6, 11)] == [2] * 5
    assert log_of(reopened) == ents(7, 10, term=2)
    reopened.save(HardState(2, 0, 10), [], None)
    assert reopened.garbage_rows() == 0
    assert stored_indexes(reopened) == list(range(7, 11))
    reopened.close()


def test_an_installed_snapshot_leaves_the_old_log_as_garbage_and_drops_what_follows(tmp_path):
    path = tmp_path / "raft.db"
    storage = SqliteLogStorage(path, THREE_VOTERS)
    storage.save(None, ents(1, 10), None)
    commits = []
    storage.connection.set_commit_hook(lambda: commits.append(1) or False)
    storage.save(HardState(3, 0, 7), [], snap(7, 3, b""))
    assert len(commits) == 1
    assert (storage.first_index(), storage.last_index()) == (8, 7)
    assert all(i <= 7 for i in stored_indexes(storage))  # 8..10 are gone (they may conflict)
    storage.save(None, ents(8, 9, term=3), None)
    assert storage.garbage_rows() == 0
    assert log_of(storage) == ents(8, 9, term=3)
    storage.close()
    reopened = SqliteLogStorage(path)
    assert log_of(reopened) == ents(8, 9, term=3)
    reopened.close()


def test_a_save_of_ten_thousand_entries_is_one_transaction(tmp_path):
    storage = SqliteLogStorage(tmp_path / "raft.db", THREE_VOTERS)
    commits = []
    storage.connection.set_commit_hook(lambda: commits.append(1) or False)
    storage.save(HardState(1, 1, 0), ents(1, 10_000), None)
    assert len(commits) == 1
    storage.save(HardState(2, 1, 0), ents(5_000, 15_000, term=2), None)
    assert len(commits) == 2
    storage.close()


def test_a_save_failing_midway_leaves_disk_and_caches_untouched(tmp_path):
    path = tmp_path / "raft.db"
    storage = SqliteLogStorage(path, THREE_VOTERS)
    storage.save(HardState(1, 1, 0), ents(1, 5), None)
    poisoned = ents(3, 8, term=2)
    poisoned[4].data = object()  # cannot be bound: fails in the middle of the insert
    with pytest.raises(TypeError):
        storage.save(HardState(2, 2, 2), poisoned, None)
    assert log_of(storage) == ents(1, 5)
    assert storage.term(5) == 1
    storage.close()
    reopened = SqliteLogStorage(path)
    assert reopened.initial_state()[0] == HardState(1, 1, 0)
    assert log_of(reopened) == ents(1, 5)
    reopened.close()


def test_sigkill_while_appending_loses_no_acknowledged_entry(tmp_path):
    """A writer is killed at an arbitrary point (three times, each run resuming the
    file): acknowledged batches must all be there, byte for byte."""
    path = tmp_path / "raft.db"
    writer = Path(__file__).parent / "storage_crash_writer.py"
    for _ in range(3):
        acknowledged = 0
        child = subprocess.Popen([sys.executable, str(writer), str(path)],
                                 stdout=subprocess.PIPE, text=True)
        try:
            for _ in range(25):
                line = child.stdout.readline()
                assert line, "writer exited early"
                acknowledged = int(line)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()

        check = apsw.Connection(str(path))
        assert check.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        check.close()
        storage = SqliteLogStorage(path, sync=True)
        assert storage.last_index() >= acknowledged
        assert storage.first_index() <= acknowledged
        log = log_of(storage)
        assert [e.index for e in log] == list(range(storage.first_index(), storage.last_index() + 1))
        assert all(e.data == payload(e.index) and e.term == term_of(e.index) for e in log)
        hard_state, _ = storage.initial_state()
        assert hard_state.commit >= acknowledged
        meta = storage.snapshot().meta
        if meta.index:
            assert storage.snapshot().data == snapshot_data(meta.index)
            assert storage.first_index() - 1 <= meta.index <= storage.last_index()
        storage.close()


# ---- both against a reference model ---------------------------------------------

class ReferenceLog:
    """The obvious, slow implementation: a dict of entries and a few fields."""

    def __init__(self, conf: ConfState):
        self.log = {0: Entry(0, 0)}
        self.first = 1
        self.hard_state = HardState()
        self.snapshot = snap(0, 0, b"", conf)

    @property
    def last(self):
        return max(self.log)

    def save(self, hs, entries, snapshot):
        if snapshot is not None and snapshot.meta.index:
            if snapshot.meta.index <= self.snapshot.meta.index:
                raise SnapshotOutOfDate()
            log = {snapshot.meta.index: Entry(snapshot.meta.term, snapshot.meta.index)}
            first = snapshot.meta.index + 1
        else:
            log, first = dict(self.log), self.first
        for entry in entries:
            if entry.index < first:
                continue
            if entry.index > max(log) + 1:
                raise LogGap()
            for index in [i for i in log if i >= entry.index]:
                del log[index]
            log[entry.index] = entry
        if snapshot is not None and snapshot.meta.index:
            self.snapshot = snapshot
        self.log, self.first = log, first
        if hs is not None:
            self.hard_state = hs

    def create_snapshot(self, index, conf, data):
        if index <= self.snapshot.meta.index:
            raise SnapshotOutOfDate()
        if index > self.last:
            raise Unavailable()
        self.snapshot = snap(index, self.log[index].term, data, conf)

    def compact(self, index):
        if index < self.first:
            raise Compacted()
        if index > self.last:
            raise Unavailable()
        if index > self.snapshot.meta.index:
            raise CompactBeyondSnapshot()
        self.log = {i: e for i, e in self.log.items() if i >= index}
        self.first = index + 1


# Operations are drawn step by step against the model's current log, so they land
# on the interesting boundaries (and just past them) instead of far away.
_OPERATION_KINDS = ["save"] * 5 + ["create_snapshot", "compact", "reopen"]


def _draw_operation(draw, model):
    """(method name, arguments) for the model's current state."""
    name = draw(st.sampled_from(_OPERATION_KINDS))
    snapshot_index = model.snapshot.meta.index
    if name == "save":
        hard_state = draw(st.none() | st.builds(HardState, st.integers(0, 5), st.integers(0, 3),
                                                st.integers(0, 20)))
        snapshot, first, last = None, model.first, model.last
        if draw(st.integers(0, 5)) == 0:
            index = draw(st.integers(snapshot_index, max(snapshot_index, model.last) + 5))  # 0: empty
            snapshot = snap(index, draw(st.integers(1, 4)), draw(st.binary(max_size=8)))
            if index > 0:
                first, last = index + 1, index
        start = draw(st.just(last + 1) | st.integers(first - 2, last + 2))
        terms = draw(st.lists(st.integers(1, 4), max_size=12))
        data = draw(st.sampled_from([b"", b"a", b"bb" * 20]))
        batch = [Entry(term, start + n, EntryType.NORMAL, data) for n, term in enumerate(terms)]
        return name, (hard_state, batch, snapshot)
    if name == "create_snapshot":
        index = draw(st.integers(snapshot_index, max(snapshot_index, model.last) + 1))
        return name, (index, ConfState(voters=(1, 2)), draw(st.binary(max_size=8)))
    if name == "compact":
        return name, (draw(st.integers(model.first - 1, max(snapshot_index, model.last) + 1)),)
    return name, ()


def _observe(storage):
    first, last = storage.first_index(), storage.last_index()
    return (first, last, storage.initial_state(), storage.snapshot(),
            [storage.term(i) for i in range(first - 1, last + 1)], log_of(storage))


def _observe_model(model):
    return (model.first, model.last, (model.hard_state, model.snapshot.meta.conf_state),
            model.snapshot, [model.log[i].term for i in range(model.first - 1, model.last + 1)],
            [model.log[i] for i in range(model.first, model.last + 1)])


def _outcome(action):
    try:
        action()
        return None
    except StorageError as error:
        return type(error)


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), tail_cache_entries=st.sampled_from([0, 3, 8192]))
def test_random_operations_match_the_reference_model(kind, data, tail_cache_entries):
    with tempfile.TemporaryDirectory() as directory:
        path = os.path.join(directory, "raft.db")

        def open_storage():
            if kind == "memory":
                return MemoryStorage(THREE_VOTERS)
            return SqliteLogStorage(path, THREE_VOTERS, sync=False, tail_cache_entries=tail_cache_entries)

        storage = open_storage()
        model = ReferenceLog(THREE_VOTERS)
        for _ in range(data.draw(st.integers(0, 40), label="steps")):
            name, args = _draw_operation(data.draw, model)
            if name == "reopen":
                if kind == "sqlite":
                    storage.close()
                    storage = open_storage()
                continue
            assert _outcome(lambda: getattr(storage, name)(*args)) == \
                _outcome(lambda: getattr(model, name)(*args)), (name, args)
            assert _observe(storage) == _observe_model(model), (name, args)
        storage.close()


def test_the_tail_cache_is_bounded_in_bytes_too():
    """Issue 13: big entries (1,000-row INSERT batches) must not keep 8192 x 150 KB in memory."""
    from ddb_node.storage.tail_cache import TailCache
    tail = TailCache(8192, 1, max_bytes=1000)
    for i in range(1, 101):
        tail.append([Entry(1, i, EntryType.NORMAL, b"x" * 100)])
        assert tail.bytes <= 1100 and tail.bytes == sum(len(e.data) for e in tail.entries)
    assert tail.entries[-1].index == 100 and tail.first == 101 - len(tail.entries)
    tail.append([Entry(2, 95, EntryType.NORMAL, b"y" * 10)])      # truncation keeps the count
    assert tail.bytes == sum(len(e.data) for e in tail.entries) and tail.entries[-1].index == 95
    tail.compact(94)
    assert tail.first == 95 and tail.bytes == 10


# ---------------------------------------------------------------- a save written off the loop
def test_a_staged_save_is_seen_only_once_finished_and_its_write_runs_on_another_thread(tmp_path):
    """The node writes a Ready's save on its storage thread (stage_save, write_save there,
    finish_save back on the loop). Until finish_save, everything the Raft core reads
    answers as before the save; the database holds it once write_save returns (a reopen
    sees it); a read of old entries meanwhile waits for the connection, never shares it."""
    import threading
    path = tmp_path / "raft.db"
    s = SqliteLogStorage(path, conf_state=THREE_VOTERS, tail_cache_entries=2)
    s.save(HardState(1, 1, 0), ents(1, 5), None)
    p = s.stage_save(HardState(1, 1, 3), ents(6, 8), None, sync=True)
    t = threading.Thread(target=s.write_save, args=(p,))
    t.start()
    assert [e.index for e in s.entries(1, 3)] == [1, 2]   # below the tail cache: the database
    t.join()
    assert s.last_index() == 5 and s.initial_state()[0] == HardState(1, 1, 0)
    with pytest.raises(Unavailable):
        s.term(6)
    reopened = SqliteLogStorage(path, conf_state=THREE_VOTERS)
    assert reopened.last_index() == 8 and reopened.initial_state()[0].commit == 3
    reopened.close()
    s.finish_save(p)
    assert s.last_index() == 8 and s.term(8) == 1 and s.initial_state()[0].commit == 3
    assert [e.index for e in s.entries(6, 9)] == [6, 7, 8]
    s.close()


def test_a_commit_only_unsynced_save_stages_nothing(tmp_path):
    s = SqliteLogStorage(tmp_path / "raft.db", conf_state=THREE_VOTERS)
    s.save(HardState(1, 1, 0), ents(1, 3), None)
    assert s.stage_save(HardState(1, 1, 2), [], None, sync=False) is None
    assert s.initial_state()[0].commit == 2           # deferred in memory (written at close)
    s.close()
