"""The durable Raft log: its own SQLite file (conventionally raft.db), see DESIGN.md.

Every save() is one transaction, so a Ready is on disk entirely or not at all.
Reads the core makes constantly (term, first/last index, recent entries) are
answered from memory; SQLite is the source of truth after a restart.
"""
from __future__ import annotations

import os
import threading
from typing import Callable

import apsw

from ddb_node.raft.types import (ConfState, Entry, HardState, Snapshot, SnapshotChunk,
                                 SnapshotMeta, SnapshotTemporarilyUnavailable, StorageError)

from . import log_rules
from .snapshot_files import SnapshotFiles
from .snapshot_sources import FileSource
from .tail_cache import TailCache
from .term_runs import TermRuns

SCHEMA_VERSION = 1

# Compaction is logical: compact() and a snapshot install move the first index (one row);
# rows below it are garbage, deleted a slice at a time by later saves (`_trim`). Deleting
# a compacted prefix at once costs in proportion to its bytes (SQLite walks every overflow
# page it frees): 120 MB of 1,000-row batches took ~50 ms on the node's loop.
TRIM_BYTES = 1 << 20          # garbage deleted per save, at most (and at least one row)
TRIM_ROWS = 512               # rows looked at per save

SCHEMA = """
CREATE TABLE entries (
    idx  INTEGER PRIMARY KEY,
    term INTEGER NOT NULL,
    type INTEGER NOT NULL,
    data BLOB NOT NULL
);
-- Single-row tables (id = 0).
CREATE TABLE hard_state (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    term INTEGER NOT NULL, vote INTEGER NOT NULL, commit_index INTEGER NOT NULL
);
-- Latest snapshot; index 0 holds the bootstrap conf state. Its data, if it has
-- any, lives in the file <db name>-snapshot-<idx>.bin.
CREATE TABLE snapshot_meta (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    idx INTEGER NOT NULL, term INTEGER NOT NULL,
    voters TEXT NOT NULL, learners TEXT NOT NULL
);
-- The entry just before the first stored one (compaction / snapshot boundary),
-- whose term the core still needs.
CREATE TABLE log_start (
    id INTEGER PRIMARY KEY CHECK (id = 0),
    prev_idx INTEGER NOT NULL, prev_term INTEGER NOT NULL
);
"""


def _encode_ids(ids: tuple[int, ...]) -> str:
    return ",".join(map(str, ids))


def _decode_ids(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(",") if part)


class SqliteLogStorage:
    def __init__(self, path: str | os.PathLike, conf_state: ConfState | None = None,
                 sync: bool = True, tail_cache_entries: int = 8192):
        self._path = os.fspath(path)
        self._db = apsw.Connection(self._path)
        self._lock = threading.Lock()      # the connection: a save may write on another thread
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={'FULL' if sync else 'NORMAL'}")
        self._sync = sync
        self._files = SnapshotFiles(self._path, sync)
        self._provider: Callable[[], object] | None = None
        self._staged: list | None = None   # [meta, epoch, total, length, fd] being received
        self._create_if_new(conf_state or ConfState())
        self._load(tail_cache_entries)

    def _create_if_new(self, conf_state: ConfState) -> None:
        with self._transaction():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version == SCHEMA_VERSION:
                return
            if version != 0:
                raise StorageError(f"{self._path}: unknown raft log schema version {version}")
            self._db.execute(SCHEMA)
            self._db.execute("INSERT INTO hard_state VALUES (0, 0, 0, 0)")
            self._db.execute("INSERT INTO snapshot_meta VALUES (0, 0, 0, ?, ?)",
                             (_encode_ids(conf_state.voters), _encode_ids(conf_state.learners)))
            self._db.execute("INSERT INTO log_start VALUES (0, 0, 0)")
            self._db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def _load(self, tail_cache_entries: int) -> None:
        db = self._db
        self._hard_state = HardState(*db.execute(
            "SELECT term, vote, commit_index FROM hard_state").fetchone())
        self._hard_state_deferred = False    # a commit index newer in memory than on disk
        idx, term, voters, learners = db.execute(
            "SELECT idx, term, voters, learners FROM snapshot_meta").fetchone()
        self._snapshot_meta = SnapshotMeta(idx, term, ConfState(_decode_ids(voters), _decode_ids(learners)))
        prev_index, prev_term = db.execute("SELECT prev_idx, prev_term FROM log_start").fetchone()
        self._first = prev_index + 1
        self._last = max(db.execute("SELECT max(idx) FROM entries").fetchone()[0] or 0, prev_index)
        # the lowest stored row: below first_index it is garbage a save will trim
        self._garbage_from = db.execute("SELECT min(idx) FROM entries").fetchone()[0] or self._first
        self._terms = TermRuns(prev_index, prev_term)
        for start, term in db.execute(
                "SELECT idx, term FROM (SELECT idx, term, lag(term) OVER (ORDER BY idx) AS before"
                " FROM entries WHERE idx >= ?) WHERE before IS NULL OR before != term",
                (self._first,)):
            self._terms.add_run(start, term)
        self._tail = TailCache(tail_cache_entries, self._last + 1)
        self._files.remove_all_but(self._snapshot_meta.index)
        self._load_staged()

    def _load_staged(self) -> None:
        found = self._files.open_part()
        if found is None:
            return
        info, length, fd = found
        try:
            meta = SnapshotMeta(info["index"], info["term"],
                                ConfState(tuple(info["voters"]), tuple(info["learners"])))
            staged = [meta, int(info["epoch"]), int(info["total"]), length, fd]
        except (KeyError, TypeError, ValueError):
            staged = None
        if staged is None or meta.index <= max(self._hard_state.commit, self._snapshot_meta.index) \
                or length > staged[2]:
            os.close(fd)
            self._files.remove_part()   # covered by now, or not ours
            return
        self._staged = staged

    @property
    def connection(self) -> apsw.Connection:
        """The underlying connection, for diagnostics and tests (integrity_check, hooks)."""
        return self._db

    # ---- read side -----------------------------------------------------------
    def initial_state(self) -> tuple[HardState, ConfState]:
        hs = self._hard_state
        return HardState(hs.term, hs.vote, hs.commit), self._snapshot_meta.conf_state

    def entries(self, lo: int, hi: int, max_bytes: int | None = None) -> list[Entry]:
        log_rules.check_entries_range(lo, hi, self._first, self._last)
        tail = self._tail
        if tail.covers(lo):
            start, stop = lo - tail.first, hi - tail.first
            if max_bytes is not None:
                stop = log_rules.size_limited_stop(tail.entries, start, stop, max_bytes)
            return tail.entries[start:stop]
        return self._read_entries(lo, hi, max_bytes)

    def _read_entries(self, lo: int, hi: int, max_bytes: int | None) -> list[Entry]:
        with self._lock:       # a save may be writing on another thread (write_save)
            rows = self._db.execute(
                "SELECT term, idx, type, data FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx",
                (lo, hi))
            if max_bytes is None:
                return [Entry(*row) for row in rows]
            result: list[Entry] = []
            total = 0
            for row in rows:
                entry = Entry(*row)
                total += entry.size()
                if total > max_bytes and result:
                    break
                result.append(entry)
            return result

    def term(self, index: int) -> int:
        log_rules.check_term_index(index, self._first, self._last)
        return self._terms.term_at(index)

    def first_index(self) -> int:
        return self._first

    def last_index(self) -> int:
        return self._last

    def snapshot(self) -> Snapshot:
        meta = self._snapshot_meta
        data = self._files.read(meta.index) if meta.index and self._files.exists(meta.index) else b""
        return Snapshot(meta, data)

    def snapshot_meta(self) -> SnapshotMeta:
        return self._snapshot_meta

    def snapshot_path(self) -> str | None:
        """The current snapshot's data file, if it has one (an installed snapshot the state
        machine has not taken yet). The driver may move it away once the state machine holds
        that state: the row keeps only the meta then."""
        index = self._snapshot_meta.index
        return self._files.path(index) if index and self._files.exists(index) else None

    def reap_snapshot_files(self) -> int:
        """Delete snapshot files the database no longer refers to -> how many."""
        return self._files.remove_all_but(self._snapshot_meta.index)

    def set_snapshot_provider(self, provider: Callable[[], object] | None) -> None:
        """Let `snapshot_source` read the state machine itself (the node's compactions record
        metadata only: the user database holds the state)."""
        self._provider = provider

    def snapshot_source(self):
        if self._provider is not None:
            return self._provider()
        path = self.snapshot_path()
        if path is None:
            raise SnapshotTemporarilyUnavailable("no snapshot data and no provider")
        return FileSource(self._snapshot_meta, path)

    def staged_snapshot(self) -> tuple[SnapshotMeta, int, int] | None:
        st = self._staged
        return None if st is None else (st[0], st[1], st[3])

    def stage_snapshot_chunk(self, chunk: SnapshotChunk) -> None:
        if chunk.offset == 0:
            self._drop_staged()
            m = chunk.meta
            fd = self._files.start_part({
                "index": m.index, "term": m.term, "voters": list(m.conf_state.voters),
                "learners": list(m.conf_state.learners), "epoch": chunk.epoch,
                "total": chunk.total})
            self._staged = [m, chunk.epoch, chunk.total, 0, fd]
        else:
            st = self._staged
            log_rules.check_staged_piece(st and (st[0], st[1], st[3]), chunk)
        st = self._staged
        data = memoryview(chunk.data)
        while data:
            data = data[os.write(st[4], data):]
        st[3] += len(chunk.data)

    def _drop_staged(self) -> None:
        if self._staged is not None:
            os.close(self._staged[4])
            self._staged = None
        self._files.remove_part()

    def _take_staged(self, meta: SnapshotMeta) -> bool:
        """Promote a complete staging of `meta` to its snapshot file; False if there is none."""
        st = self._staged
        if st is None or (st[0].index, st[0].term) != (meta.index, meta.term) or st[3] != st[2]:
            return False
        self._staged = None
        self._files.promote_part(st[4], meta.index)
        return True

    # ---- write side ----------------------------------------------------------
    def save(self, hard_state: HardState | None, entries: list[Entry],
             snapshot: Snapshot | None, sync: bool = True) -> None:
        """One transaction: snapshot (replacing the whole log), entries (truncating
        a conflicting suffix), hard state. Durable on return when the storage syncs and
        `sync` is true. `sync=False` with only a new commit index (every follower has one such
        Ready per write) writes nothing now: the commit index is volatile state in Raft (a
        restarted node takes max(commit, applied) and learns the rest from the leader), so it
        is kept in memory and written with the next save or at close.

        The same in three steps for a driver that writes off its loop: `stage_save` and
        `finish_save` on the driver's thread, `write_save` (the transaction, its fsync and
        the snapshot files) on any one thread in between. Until `finish_save` the reads the
        Raft core makes (`entries`, `term`, `last_index` ...) answer as before the save --
        the core keeps the entries being saved in its unstable log meanwhile."""
        pending = self.stage_save(hard_state, entries, snapshot, sync)
        if pending is not None:
            self.write_save(pending)
            self.finish_save(pending)

    def stage_save(self, hard_state: HardState | None, entries: list[Entry],
                   snapshot: Snapshot | None, sync: bool = True) -> "_PendingSave | None":
        """Plan a save (see `save`) -> what `write_save` must write, or None (nothing to
        write: no change, or a commit index deferred in memory)."""
        has_snapshot = snapshot is not None and not snapshot.is_empty()
        if has_snapshot:
            log_rules.check_snapshot_newer(snapshot, self._snapshot_meta.index)
            first = snapshot.meta.index + 1
            last = snapshot.meta.index
        else:
            first, last = self._first, self._last
        to_append = log_rules.entries_to_append(entries, first, last)
        if not (has_snapshot or to_append or hard_state is not None):
            return None

        commit_only = (not has_snapshot and not to_append and hard_state is not None
                       and (hard_state.term, hard_state.vote)
                       == (self._hard_state.term, self._hard_state.vote))
        if commit_only and not sync:
            self._hard_state = HardState(hard_state.term, hard_state.vote, hard_state.commit)
            self._hard_state_deferred = True
            return None
        if hard_state is None and self._hard_state_deferred:
            hard_state = self._hard_state      # a deferred commit index goes with this one
        return _PendingSave(hard_state, to_append, snapshot if has_snapshot else None,
                            first, last, self._snapshot_meta.index)

    def write_save(self, p: "_PendingSave") -> None:
        """The durable half of a staged save; touches only the database and the files."""
        snapshot = p.snapshot
        with self._lock:
            if snapshot is not None:   # the data file is complete before the row points at it
                if not self._take_staged(snapshot.meta) and snapshot.data:
                    self._files.write(snapshot.meta.index, snapshot.data)
            try:
                with self._transaction():
                    if snapshot is not None:
                        self._write_snapshot_meta(snapshot.meta)
                        self._db.execute("UPDATE log_start SET prev_idx = ?, prev_term = ?",
                                         (snapshot.meta.index, snapshot.meta.term))
                        # the log before it becomes garbage (trimmed later), what follows goes now
                        self._db.execute("DELETE FROM entries WHERE idx > ?", (snapshot.meta.index,))
                    to_append = p.to_append
                    if to_append:
                        if to_append[0].index <= p.last:
                            self._db.execute("DELETE FROM entries WHERE idx >= ?", (to_append[0].index,))
                        self._db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)",
                                             [(e.index, e.term, e.type, e.data) for e in to_append])
                    hs = p.hard_state
                    if hs is not None:
                        self._db.execute("UPDATE hard_state SET term = ?, vote = ?, commit_index = ?",
                                         (hs.term, hs.vote, hs.commit))
                    p.garbage_from = self._trim(p.first, to_append)
            except BaseException:
                if snapshot is not None:
                    self._files.remove(snapshot.meta.index)
                raise

    def finish_save(self, p: "_PendingSave") -> None:
        """The in-memory half of a written save: what the core reads from now on."""
        self._garbage_from = p.garbage_from
        snapshot = p.snapshot
        if snapshot is not None:
            self._snapshot_meta = snapshot.meta
            self._first = p.first
            self._last = p.last
            self._terms.reset(snapshot.meta.index, snapshot.meta.term)
            self._tail.reset(p.first)
            self._files.remove(p.old_snapshot_index)
            self._files.remove_part()
        to_append = p.to_append
        if to_append:
            self._terms.truncate_from(to_append[0].index)
            self._terms.append(to_append)
            self._tail.append(to_append)
            self._last = to_append[-1].index
        hs = p.hard_state
        if hs is not None:
            self._hard_state = HardState(hs.term, hs.vote, hs.commit)
            self._hard_state_deferred = False

    def create_snapshot(self, index: int, conf_state: ConfState, data: bytes = b"") -> Snapshot:
        """Durable like save(); the log is untouched (compact() is separate, as in etcd).
        Without data only the meta is written (a few hundred bytes, whatever the database)."""
        log_rules.check_create_snapshot(index, self._snapshot_meta.index, self._last)
        meta = SnapshotMeta(index, self.term(index), conf_state)
        old_index = self._snapshot_meta.index
        if data:
            self._files.write(index, data)
        try:
            with self._lock, self._transaction():
                self._write_snapshot_meta(meta)
        except BaseException:
            self._files.remove(index)
            raise
        self._snapshot_meta = meta
        self._files.remove(old_index)
        return Snapshot(meta, data)

    def compact(self, index: int) -> None:
        log_rules.check_compact(index, self._first, self._last, self._snapshot_meta.index)
        prev_term = self.term(index)
        with self._lock, self._transaction():   # O(1): the rows become garbage later saves trim
            self._db.execute("UPDATE log_start SET prev_idx = ?, prev_term = ?", (index, prev_term))
        self._first = index + 1
        self._terms.compact(index)
        self._tail.compact(index)

    def close(self) -> None:
        if self._hard_state_deferred:
            hs = self._hard_state
            with self._lock, self._transaction():
                self._db.execute("UPDATE hard_state SET commit_index = ?", (hs.commit,))
            self._hard_state_deferred = False
        if self._staged is not None:
            os.close(self._staged[4])
            self._staged = None
        self._db.close()

    def garbage_rows(self) -> int:
        """Rows below first_index() not trimmed yet (diagnostics and tests)."""
        with self._lock:
            return self._db.execute("SELECT count(*) FROM entries WHERE idx < ?",
                                    (self._first,)).fetchone()[0]

    # ---- helpers -------------------------------------------------------------
    def _trim(self, first: int, appended: list[Entry]) -> int:
        """Inside a save's transaction: delete a bounded slice of the rows below `first`
        (at least one row; at most TRIM_ROWS rows and TRIM_BYTES of data, or twice what
        this save appends, so the garbage never outgrows the log); return the new lowest stored index. Losing it
        in a crash loses nothing: the rows are garbage either way."""
        lo = self._garbage_from
        if lo >= first:
            return lo
        budget = max(TRIM_BYTES, 2 * sum(len(e.data) for e in appended))
        total, cut = 0, None
        for idx, size in self._db.execute(
                "SELECT idx, length(data) FROM entries WHERE idx >= ? AND idx < ? ORDER BY idx"
                " LIMIT ?", (lo, first, max(TRIM_ROWS, 2 * len(appended)))):
            if cut is not None and total + size > budget:
                break
            total += size
            cut = idx
        if cut is None:      # nothing stored below first any more
            return first
        self._db.execute("DELETE FROM entries WHERE idx >= ? AND idx <= ?", (lo, cut))
        return cut + 1
    def _write_snapshot_meta(self, meta: SnapshotMeta) -> None:
        self._db.execute(
            "UPDATE snapshot_meta SET idx = ?, term = ?, voters = ?, learners = ?",
            (meta.index, meta.term, _encode_ids(meta.conf_state.voters),
             _encode_ids(meta.conf_state.learners)))

    def _transaction(self):
        return _Transaction(self._db)


class _PendingSave:
    """A save between stage_save, write_save and finish_save."""
    __slots__ = ("hard_state", "to_append", "snapshot", "first", "last", "old_snapshot_index",
                 "garbage_from")

    def __init__(self, hard_state, to_append, snapshot, first, last, old_snapshot_index):
        self.hard_state, self.to_append, self.snapshot = hard_state, to_append, snapshot
        self.first, self.last, self.old_snapshot_index = first, last, old_snapshot_index
        self.garbage_from = None


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, rolled back on any exception."""

    def __init__(self, db: apsw.Connection):
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
                return
            except BaseException:
                self._rollback()
                raise
        self._rollback()

    def _rollback(self) -> None:
        if self._db.in_transaction:  # some errors make SQLite roll back by itself
            self._db.execute("ROLLBACK")
