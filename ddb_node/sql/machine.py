"""The SQL state machine: applies committed entries to the user database, exactly once.

Group apply: the entries of one ``apply_batch`` call share one SQLite transaction, and the
applied index and term are written in that same transaction (table ``_ddb_applied``), so a
crash leaves either all of the batch or none of it. See DESIGN.md for the reasoning.
"""
from __future__ import annotations

import os
import secrets
import tempfile
import time
from typing import Iterator

import apsw

from . import determinism, extensions, policy, snapshot as snap
from .image import BytesImage, FileImage
from . import export
from .changes import ChangeConfig, ChangeLog
from .checkpointer import Checkpointer
from .codec import EntryDecodeError, decode_fast
from .commands import Request
from .errors import SnapshotError, SqlError
from .limits import DEFAULT_LIMITS, Limits
from .results import EntryResult, Result
from .sessions import SCHEMA as SESSIONS_SCHEMA, Sessions
from .query import QueryEngine
from .reader import Reader
from .transactions import VERSIONS_SCHEMA, Transactions

SYNC_MODES = {"off": "OFF", "normal": "NORMAL", "full": "FULL"}
_perf = time.perf_counter
_DDL_CODES = policy.DDL_CODES
_FUNCTION = apsw.SQLITE_FUNCTION
_reseed = apsw.randomness


class _TransactionLost(Exception):
    """A statement (``INSERT OR ROLLBACK``, ``RAISE(ROLLBACK)``) ended the batch transaction."""

    def __init__(self, index, statement, error):
        self.index, self.statement, self.error = index, statement, error


class StateMachine(Transactions, QueryEngine):
    def __init__(self, path: str, *, sync: str = "normal", limits: Limits = DEFAULT_LIMITS,
                 foreign_keys: bool = False, max_sessions: int = 10_000,
                 session_ttl_entries: int = 1_000_000, session_expire_every: int = 1_000,
                 checkpoint_pages: int = 1024, statement_cache: int = 256,
                 extension_files: tuple = (), changes: ChangeConfig | None = None):
        if sync not in SYNC_MODES:
            raise ValueError(f"sync must be one of {sorted(SYNC_MODES)}")
        self.path = path
        self.file_generation = 0        # bumped when a snapshot replaces the database file
        self._loop_reader_schema = None  # the schema generation the loop reader opened at
        self.sync_mode = sync
        self.limits = limits
        self.foreign_keys = foreign_keys
        self.checkpoint_pages = checkpoint_pages
        self._simple_results = limits.max_result_rows is None and limits.max_result_bytes is None
        self.statement_cache = statement_cache
        self.extension_files = tuple(extension_files)   # loaded into every connection
        self.nondeterministic: set[str] = set()          # their functions refused in writes
        self.memory = path == ":memory:" or path == "" or str(path).startswith("file::memory:")
        self._nonce = secrets.token_hex(8)     # keeps internal SQL out of users' cache entries
        self.sessions = Sessions(self._internal_rows, max_sessions=max_sessions,
                                 ttl_entries=session_ttl_entries, expire_every=session_expire_every)
        self.changes = ChangeLog(changes if changes is not None else ChangeConfig(),
                                 self._internal_rows, self._internal_many, owner=self)
        determinism.install()
        self._conn = None
        self._loop_reader: Reader | None = None    # query()'s connection (file databases)
        self._image = None
        self._checkpointer: Checkpointer | None = None
        self._open()

    # ------------------------------------------------------------------ connection
    def _open(self):
        conn = apsw.Connection(self.path, vfs=determinism.VFS_NAME,
                               flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_CREATE | apsw.SQLITE_OPEN_URI,
                               statementcachesize=self.statement_cache)
        self._conn = conn
        self._prepared = None           # classify's PrepareCache: one per connection
        self._schema_gen = 0            # bumped at every DDL this connection prepares
        self._described: dict = {}      # text -> (schema generation, columns): _columns_of_empty
        self._recording = None          # classify's list of authorizer actions, while preparing
        self._internal = False
        self._denied = None
        self._entry_dml = False
        self._total_base = 0
        self._wal_pages = 0
        conn.set_busy_timeout(0)
        self._setup(conn)
        if not self.memory:
            self._checkpointer = Checkpointer(self.path, SYNC_MODES[self.sync_mode],
                                              durable=self.sync_mode != "off")

    def _stop_checkpointer(self) -> None:
        if self._checkpointer is not None:
            self._checkpointer.close()
            self._checkpointer = None

    def _setup(self, conn):
        conn.authorizer = None
        if not self.memory:
            list(conn.execute("PRAGMA journal_mode=WAL"))
            conn.wal_autocheckpoint(0)             # we checkpoint ourselves (durable_index)
            conn.set_wal_hook(self._wal_hook)
        conn.execute(f"PRAGMA synchronous={SYNC_MODES[self.sync_mode]}")
        conn.execute("PRAGMA temp_store=MEMORY")     # no temp files: no PRNG use for their names
        conn.execute("PRAGMA cache_spill=OFF")       # no WAL writes (salt randomness) mid-entry
        conn.execute(f"PRAGMA foreign_keys={'ON' if self.foreign_keys else 'OFF'}")
        determinism.register_functions(conn)
        self.nondeterministic = extensions.load(conn, list(self.extension_files))
        conn.create_scalar_function("changes", self._changes_fn, 0)
        conn.create_scalar_function("total_changes", self._total_changes_fn, 0)
        with conn:
            conn.execute("CREATE TABLE IF NOT EXISTS _ddb_applied(id INTEGER PRIMARY KEY CHECK (id = 0), "
                         "idx INTEGER NOT NULL, term INTEGER NOT NULL);"
                         "INSERT OR IGNORE INTO _ddb_applied VALUES (0, 0, 0);" + SESSIONS_SCHEMA
                         + VERSIONS_SCHEMA)
        self._applied_index, self._applied_term = conn.execute(
            "SELECT idx, term FROM _ddb_applied WHERE id = 0").fetchall()[0]
        self.changes.attach(conn, self._applied_index)
        self._capture = self.changes.rows if self.changes.enabled else None
        conn.authorizer = self._authorize
        self._tx_init()
        self._cur = conn.cursor()
        self._cur.exec_trace = self._tracer
        self._mark = None
        self._sql_begin = f"BEGIN IMMEDIATE"
        self._sql_commit = f"COMMIT"
        self._sql_rollback = f"ROLLBACK"
        self._sql_sp = f"SAVEPOINT _ddb_entry"
        self._sql_release = f"RELEASE _ddb_entry"
        self._sql_rollback_to = f"ROLLBACK TO _ddb_entry"
        self._sql_set_applied = f"UPDATE _ddb_applied SET idx = ?, term = ? WHERE id = 0"
        if self.memory:
            self._durable_index = 0
        else:
            conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_TRUNCATE)
            self._durable_index = self._applied_index if self.sync_mode != "off" else 0
            if self.sync_mode == "off":
                self.sync()

    def _authorize(self, code, a3, a4, db, trig):
        rec = self._recording
        if rec is not None:                 # classify preparing a text (classify._prepare)
            rec.append((code, a3, a4, db, trig))
            return apsw.SQLITE_OK
        if self._tx_tables is not None and not self._internal:
            self._tx_record(code, a3)       # the tables an interactive transaction uses
        if code in _DDL_CODES:
            self.changes.schema_changed()     # column names / primary keys may differ now
            self._schema_gen += 1             # classify's cache: judge texts afresh
        # an entry being applied may not call a non-deterministic extension function: the
        # leader's classification refuses it, and a replica refuses it identically
        if code == _FUNCTION and self.nondeterministic and not self._internal \
                and determinism.context.active:
            reason = extensions.refusal(a4, self.nondeterministic)
            if reason:
                self._denied = reason
                return apsw.SQLITE_DENY
        return super()._authorize(code, a3, a4, db, trig)

    def _wal_hook(self, conn, dbname, pages):
        self._wal_pages = pages
        return apsw.SQLITE_OK

    def _changes_fn(self):
        if determinism.context.active and not self._entry_dml:
            return 0          # deterministic: not the count left over from an earlier entry
        return self._conn.changes()

    def _total_changes_fn(self):
        if determinism.context.active:
            return self._conn.total_changes() - self._total_base   # entry-scoped
        return self._conn.total_changes()

    @property
    def applied_index(self) -> int:
        return self._applied_index

    @property
    def applied_term(self) -> int:
        return self._applied_term

    @property
    def durable_index(self) -> int:
        """Highest applied index known to be durable in the user database. Log compaction must
        not discard entries above it (see ``compaction_bound``)."""
        cp = self._checkpointer
        return self._durable_index if cp is None else max(self._durable_index, cp.durable)

    @property
    def connection(self) -> apsw.Connection:
        return self._conn

    # ------------------------------------------------------------------ apply
    def apply_batch(self, entries: list[tuple[int, int, bytes]]) -> list[EntryResult | None]:
        """Apply consecutive committed entries in one SQLite transaction. Entries at or below the
        applied index are skipped (``None``); an empty payload (no-op, configuration change)
        only advances the applied index (``None``)."""
        expect = self._applied_index
        for idx, _term, _payload in entries:
            if idx <= self._applied_index:
                continue
            if idx != expect + 1:
                raise ValueError(f"entries must be consecutive: got index {idx} after {expect}")
            expect = idx
        if expect == self._applied_index:
            return [None] * len(entries)
        forced: dict[int, tuple[int, str]] = {}
        while True:
            try:
                out, last_index, last_term = self._apply_once(entries, forced)
                break
            except _TransactionLost as lost:
                forced[lost.index] = (lost.statement, lost.error)
        self._applied_index, self._applied_term = last_index, last_term
        self._after_commit()
        return out

    def _apply_once(self, entries, forced):
        conn = self._conn
        applied = self._applied_index
        out: list[EntryResult | None] = []
        last_index, last_term = applied, self._applied_term
        changes = self.changes
        capture = changes.enabled
        changes.begin_batch()
        self._internal_exec(self._sql_begin)
        try:
            self._versions_begin()
            for idx, term, payload in entries:
                if idx <= applied:
                    out.append(None)
                    continue
                if payload:
                    out.append(self._apply_entry(idx, payload, forced.get(idx), term))
                else:
                    out.append(None)
                if idx % self.sessions.expire_every == 0:
                    self.sessions.maybe_expire(idx)
                if capture:
                    changes.maybe_prune(idx)
                last_index, last_term = idx, term
            self._versions_flush()
            if capture:
                changes.write()
            self._internal_exec(self._sql_set_applied, (last_index, last_term))
            self._internal_exec(self._sql_commit)
        except BaseException:
            changes.rollback()
            determinism.context.end()
            if not conn.get_autocommit():
                self._internal_exec(self._sql_rollback)
            raise
        return out, last_index, last_term

    def _apply_entry(self, idx: int, payload: bytes, forced, term: int) -> EntryResult:
        try:
            obj = decode_fast(payload)
        except EntryDecodeError as e:
            return EntryResult(idx, [], error=str(e))
        _, _, ts, seed, session, tx, _level, _timeout, stmts = obj[:9]
        if session is not None:
            dup = self.sessions.check(idx, session[0], session[1])
            if dup is not None:
                return dup
        self._write_idx = idx
        if len(obj) == 10 and (refused := self._tx_refused(idx, term, obj[9], session)) is not None:
            return refused       # an interactive transaction's commit whose condition failed
        conn = self._conn
        ctx = determinism.context
        ctx.timestamp_ms = ts          # EntryContext.begin(), inlined: this is the hot path
        ctx.seed = seed
        ctx.rng = None
        ctx.active = True
        _reseed(0)
        conn.set_last_insert_rowid(0)
        self._entry_dml = False
        self._total_base = conn.total_changes()
        error = None
        results: list[Result] = []
        append = results.append
        if tx:
            self._internal_exec(self._sql_sp)
        captured = self._capture
        if captured is not None:
            captured.clear()          # anything ddb itself wrote since the last entry
        cur = self._cur
        execute = cur.execute
        total_changes = conn.total_changes
        simple = self._simple_results
        ddl = False             # a statement wrote no row: perhaps the schema changed
        try:
            for k, s in enumerate(stmts):
                sql = s[0]
                params = s[1] if len(s) > 1 else None
                if forced is not None and forced[0] == k:
                    res = Result.failure(k, forced[1])
                    append(res)
                elif simple and ";" not in sql:
                    # the common case, inlined: one statement, no result limits
                    self._mark = None
                    t0 = _perf()
                    tc = total_changes()
                    n0 = 0 if captured is None else len(captured)
                    try:
                        execute(sql, params)
                        row = next(cur, None)          # columns: see QueryEngine._run_one
                        if row is None:
                            rows, fresh = (), None
                        else:
                            fresh = cur.description
                            rows = [row]
                            rows += cur.fetchall()
                    except Exception as e:
                        res = self._failed(k, e, t0)
                        if captured is not None and total_changes() == tc:
                            del captured[n0:]     # SQLite undid the statement (ABORT)
                    else:
                        mark = self._mark
                        if mark is not None and mark[0]:
                            mark = (fresh or self._columns_of_empty(sql, mark[0]), mark[1])
                        if mark is None:
                            res = Result(k)
                        elif mark[1]:
                            res = Result.from_rows(k, mark[0], rows, time=_perf() - t0) if mark[0] \
                                else Result.write(k, 0, None, _perf() - t0)
                        else:
                            self._entry_dml = True
                            # changes() is stale after DDL: count only if rows changed
                            n = conn.changes() if total_changes() != tc else 0
                            if not n:
                                ddl = True
                            if mark[0]:
                                res = Result.from_rows(k, mark[0], rows, rows_affected=n,
                                                       last_insert_id=conn.last_insert_rowid(),
                                                       time=_perf() - t0)
                            else:
                                res = Result.write(k, n, conn.last_insert_rowid(), _perf() - t0)
                    append(res)
                else:
                    ddl = True
                    many = self._run_statement(k, sql, params, cur, self.limits.max_result_rows,
                                               self.limits.max_result_bytes)
                    results.extend(many)
                    res = many[-1] if many else None
                if res is not None and res.error is not None:
                    if conn.get_autocommit():
                        raise _TransactionLost(idx, k, res.error)
                    if tx:
                        error = f"transaction rolled back: statement {k} failed: {res.error}"
                        break
        finally:
            ctx.active = False
            ctx.rng = None
        if tx:
            if error is not None:
                self._internal_exec(self._sql_rollback_to)
                if captured is not None:
                    captured.clear()      # rolled back: nothing happened
            self._internal_exec(self._sql_release)
        if ddl:
            self._note_schema(idx)
        if captured:
            self.changes.flush(idx)
        er = EntryResult(idx, results, error)
        if session is not None:
            self.sessions.record(idx, session[0], session[1], er)
        return er

    def _run_one(self, k, sql, params, cur, max_rows, max_bytes, can_cache=True) -> Result:
        captured = self._capture if determinism.context.active else None
        if captured is None:
            return super()._run_one(k, sql, params, cur, max_rows, max_bytes, can_cache)
        n0, tc = len(captured), self._conn.total_changes()
        res = super()._run_one(k, sql, params, cur, max_rows, max_bytes, can_cache)
        if res.error is not None and self._conn.total_changes() == tc:
            del captured[n0:]             # SQLite undid the statement (ABORT)
        return res

    def _after_commit(self):
        if self.memory:
            return
        if self.sync_mode == "full":
            self._durable_index = self._applied_index
        if self._wal_pages >= self.checkpoint_pages:   # keeps the WAL short in every mode
            self._checkpointer.request(self._applied_index)     # off this thread

    def request_checkpoint(self) -> None:
        """Ask for a checkpoint off this thread (durable_index follows when it completes)."""
        if self._checkpointer is not None:
            self._checkpointer.request(self._applied_index)

    def _truncate_wal(self, wait: bool = True) -> None:
        """Copy the whole WAL into the database file and empty it (the background checkpoint
        waits meanwhile: two checkpoints at once would make this one busy). `wait=False`:
        only if that is quick (see `open_image`), else SnapshotError."""
        cp = self._checkpointer
        if cp is None:
            self._conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_TRUNCATE)
        elif wait:
            with cp.exclusive():
                self._conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_TRUNCATE)
        else:
            backlog = cp.backlog_pages(self.path)
            if backlog > self.checkpoint_pages // 4:
                cp.request(self._applied_index)
                raise SnapshotError(f"{backlog} WAL pages are being checkpointed first")
            if not cp.try_exclusive():
                raise SnapshotError("a checkpoint is running: the image is opened after it")
            try:
                self._conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_TRUNCATE)
            finally:
                cp.exclusive().release()
        self._wal_pages = 0

    def sync(self) -> int:
        """Make everything applied durable in the user database; return the durable index
        (unchanged while a snapshot image is open: the checkpoint must wait for it)."""
        if self.memory:
            return self._durable_index
        if self.sync_mode == "off":
            self._internal_exec("PRAGMA synchronous=FULL")
        try:
            self._truncate_wal()
            self._durable_index = self._applied_index
        except (apsw.BusyError, apsw.LockedError):
            pass      # an open snapshot image holds the WAL: durable stays
        finally:
            if self.sync_mode == "off":
                self._internal_exec("PRAGMA synchronous=OFF")
        return self.durable_index

    # ------------------------------------------------------------------ reads
    def query(self, request: Request, *, max_rows: int | None = None,
              max_bytes: int | None = None, checked: bool = False,
              budget_s: float | None = None) -> list[Result]:
        """The local read path (QueryEngine.query). A file database is read through a
        read-only connection of its own, on the caller's thread (the node's loop): it sees
        the last committed apply transaction -- between apply calls, all of them -- and,
        unlike this connection under a toggled ``PRAGMA query_only``, keeps its prepared
        statements and apply's (see QueryEngine._readonly_conn). Busy timeout 0: a read on
        the loop never waits for a lock. A memory database has no second connection."""
        if self.memory:
            return super().query(request, max_rows=max_rows, max_bytes=max_bytes,
                                 checked=checked, budget_s=budget_s)
        if not self._conn.get_autocommit():
            raise SqlError("query() called while a transaction is open")
        reader = self._loop_reader
        if reader is not None and self._loop_reader_schema != self._schema_gen:
            # its cached statements would describe an empty result with the columns of
            # the schema they were first prepared under (see QueryEngine._run_one)
            self._close_loop_reader()
            reader = None
        if reader is None:
            reader = self._loop_reader = Reader(self.path, limits=self.limits,
                                                statement_cache=self.statement_cache,
                                                extension_files=self.extension_files,
                                                busy_timeout_ms=0, watch_schema=False)
            self._loop_reader_schema = self._schema_gen
        return reader.query(request, max_rows=max_rows, max_bytes=max_bytes, checked=checked,
                            budget_s=budget_s)

    def _stale_schema(self):
        # no DDL since this connection opened: every cached statement is current
        return self._schema_gen or None

    @property
    def schema_generation(self) -> int:
        """Moves with every schema change this machine makes (and a new file): what a cache
        of statement verdicts elsewhere (an HTTP read worker's) is keyed on."""
        return self._schema_gen

    def _close_loop_reader(self) -> None:
        if self._loop_reader is not None:
            self._loop_reader.close()
            self._loop_reader = None

    def classify(self, request: Request):
        """Classify against this database's current schema."""
        from .classify import PrepareCache, classify
        if self._prepared is None:
            self._prepared = PrepareCache(owner=self)
        # Every schema change on this connection is prepared first (a DDL statement's
        # cached program expires with the change it makes, so it is prepared again before
        # it can run again), and preparing DDL passes the authorizer: `_schema_gen` moves
        # with the schema without reading `PRAGMA schema_version` per request. No other
        # connection writes this database; a restore opens a new connection and cache.
        cache = self._prepared.at_schema(self._schema_gen)
        return classify(request, self._conn, self.limits, self.nondeterministic, cache)

    # ------------------------------------------------------------------ copies
    def export_copy(self, dest_path: str) -> int:
        """A standalone copy of the user's database at `dest_path`, without ddb's own tables
        (see export.py); the applied index it is at. Thread-safe for a file database: call it
        from a worker thread, the node keeps applying meanwhile."""
        return export.export_copy(None if self.memory else self.path, self._conn, dest_path)

    # ------------------------------------------------------------------ snapshots
    def _tmp_dir(self) -> str:
        return tempfile.gettempdir() if self.memory else (os.path.dirname(os.path.abspath(self.path)) or ".")

    def open_image(self, wait: bool = True):
        """A consistent image of the database at the applied index, read in place without a
        copy (see image.py); `index`, `term`, `size`, `read(offset, n)`, `close()`. One at a
        time: checkpoints wait while it is open, so close it as soon as it has been read.

        The image needs the WAL copied into the database first. `wait=False` (the node's
        loop asking for a follower's snapshot) never waits for that: while a background
        checkpoint runs, or while more than a quarter of `checkpoint_pages` of the WAL is not
        yet copied, it asks for a background checkpoint and raises SnapshotError (asked
        again at the next probe); the copy it does itself is then a few hundred pages. A
        1.3 GB database's checkpoint had held the leader's loop for 3.5 s during a join."""
        if self._image is not None and not self._image.closed:
            raise SnapshotError("a snapshot image is already open")
        if self.memory:
            img = BytesImage(self._applied_index, self._applied_term, self._conn.serialize("main"))
        else:
            self._truncate_wal(wait)                                         # the WAL's worth
            if self.sync_mode != "off":
                self._durable_index = self._applied_index
            img = FileImage(self.path)
        self._image = img
        return img

    def snapshot_source(self, wait: bool = True) -> snap.ImageStream:
        """The snapshot stream (image, then trailer) of a freshly opened image."""
        return snap.ImageStream(self.open_image(wait))

    def snapshot_chunks(self, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """A snapshot at the applied index (taken now), as stream chunks."""
        stream = self.snapshot_source()

        def gen():
            try:
                yield from snap.read_stream(stream, chunk_size)
            finally:
                stream.close()
        return gen()

    def snapshot_image(self) -> bytes:
        """The whole snapshot stream as bytes (the Replica's application interface)."""
        return b"".join(self.snapshot_chunks())

    def restore_image(self, data: bytes) -> None:
        self.restore([data])

    def snapshot_to(self, dest) -> dict:
        """Write a snapshot to a path or a binary file object; return its index and term."""
        chunks = self.snapshot_chunks()
        if isinstance(dest, (str, os.PathLike)):
            with open(dest, "wb") as f:
                for c in chunks:
                    f.write(c)
                f.flush()
                os.fsync(f.fileno())
        else:
            for c in chunks:
                dest.write(c)
        return {"index": self._applied_index, "term": self._applied_term}

    def restore(self, source) -> None:
        """Replace the database with a snapshot stream (path, file object, bytes or chunks):
        received into a temporary file, then installed (`install_file`). A corrupt or
        truncated snapshot raises SnapshotError and the old database stays."""
        fd, tmp = tempfile.mkstemp(prefix=".ddb-restore-", suffix=".db", dir=self._tmp_dir())
        os.close(fd)
        snap.receive(source, tmp)     # removes tmp on failure
        try:
            self.install_file(tmp)
        finally:
            if os.path.exists(tmp):
                os.remove(tmp)

    def install_file(self, path: str, length: int | None = None) -> dict:
        """Install the snapshot stream held in the first `length` bytes of `path` (all of it
        by default; a caller's own trailer may follow). The file is checked (trailer, digest,
        SQLite's quick_check, the applied index inside it) and then *moved* into place: the
        image is at its start, so installing a large database costs a rename, not a copy.
        On SnapshotError the file and the old database are left as they were."""
        meta = snap.verify_file(path, length)
        self._verify_image(path, meta)
        self._close_image()
        if self.memory:
            with open(path, "rb") as f:
                image = bytearray(f.read(meta["size"]))
            if len(image) > 19 and image[18] == 2:
                image[18] = image[19] = 1          # WAL image: open as rollback journal
            self._conn.close()
            self._conn = None
            self._open()
            self._conn.authorizer = None
            self._conn.deserialize("main", bytes(image))
            self._setup(self._conn)
            os.remove(path)
        else:
            self._stop_checkpointer()
            self._close_loop_reader()        # it would keep reading the replaced file
            self.file_generation += 1        # so do other processes' readers (http.workers)
            self._conn.close()
            self._conn = None
            for suffix in ("-wal", "-shm"):
                try:
                    os.remove(self.path + suffix)
                except FileNotFoundError:
                    pass
            os.replace(path, self.path)
            os.truncate(self.path, meta["size"])   # the trailers (SQLite ignores them anyway)
            _fsync_dir(os.path.dirname(os.path.abspath(self.path)))
            self._open()
        if (self._applied_index, self._applied_term) != (meta["index"], meta["term"]):
            raise SnapshotError("restored database does not carry the snapshot's index")  # pragma: no cover
        return meta

    def _close_image(self) -> None:
        if self._image is not None:
            self._image.close()
            self._image = None

    @staticmethod
    def _verify_image(path: str, meta: dict) -> None:
        try:
            # immutable: no locks, no -wal/-shm files beside the image
            c = apsw.Connection(f"file:{path}?immutable=1",
                                flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
            try:
                ok = c.execute("PRAGMA quick_check").fetchall()
                if ok != [("ok",)]:
                    raise SnapshotError(f"snapshot image fails SQLite's quick_check: {ok[:3]}")
                row = c.execute("SELECT idx, term FROM _ddb_applied WHERE id = 0").fetchall()
            finally:
                c.close()
        except apsw.Error as e:
            raise SnapshotError(f"snapshot image is not a usable database: {e}") from None
        if row != [(meta["index"], meta["term"])]:
            raise SnapshotError(f"snapshot image holds applied {row} but its trailer says "
                                f"({meta['index']}, {meta['term']})")

    # ------------------------------------------------------------------ misc
    def dump(self) -> str:
        """A full, deterministic text dump (schema and every row, also of ddb's own tables)."""
        from .dump import dump
        self._internal = True
        try:
            return dump(self._conn)
        finally:
            self._internal = False

    def close(self) -> None:
        self._close_image()
        self._stop_checkpointer()
        self._close_loop_reader()
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def compaction_bound(requested_index: int, durable_index: int) -> int:
    """The highest log index that may be compacted away: never above what is durable in the
    user database (which may run with relaxed sync because the Raft log is durable)."""
    return min(requested_index, durable_index)
