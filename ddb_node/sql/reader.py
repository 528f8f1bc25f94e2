"""Readers: read-only connections to a state machine's database file, so that a read can be
served off the node's event loop (a worker thread runs it) while apply keeps writing.

SQLite's WAL lets a reader hold a read transaction while the writer commits: the reader sees
the last committed apply transaction as of its BEGIN, consistently for every statement of
the request (or every chunk of a cursor), and reports the applied index of that state. The
Replica decided the read may be served at some index i; a reader starting after i was
applied reads a state at least as new, which every level allows (the state is committed).

Determinism: random(), randomblob() and SQLite's clock fall back to real values on any
thread but the one applying an entry (determinism.EntryContext), and the reader keeps its
temporary tables in memory, so it never touches SQLite's own PRNG either.
"""
from __future__ import annotations

import itertools
import secrets
import time

import apsw

from . import determinism, extensions
from .commands import Request, validate
from .errors import BadRequest, SqlError
from .limits import DEFAULT_LIMITS, Limits
from .query import QueryEngine, errmsg
from .results import Result
from .split import split_sql

_perf = time.perf_counter


class StaleReader(Exception):
    """A reader's state is older than the index a read was decided at (never expected: a
    read transaction starts after that index was applied; checked so that it can never
    be served silently)."""


class Reader(QueryEngine):
    _readonly_conn = True       # opened SQLITE_OPEN_READONLY: no query_only toggling

    def __init__(self, path: str, *, limits: Limits = DEFAULT_LIMITS, statement_cache: int = 64,
                 extension_files: tuple = (), busy_timeout_ms: int = 2000,
                 watch_schema: bool = True):
        """`watch_schema=False`: the owner opens a new Reader when the schema changes (the
        state machine's loop reader, an HTTP worker's), so a read need not look (~4 µs)."""
        determinism.install()
        conn = apsw.Connection(path, vfs=determinism.VFS_NAME, statementcachesize=statement_cache,
                               flags=apsw.SQLITE_OPEN_READONLY | apsw.SQLITE_OPEN_URI)
        conn.set_busy_timeout(busy_timeout_ms)
        conn.execute("PRAGMA temp_store=MEMORY")    # no temp file names from SQLite's PRNG
        determinism.register_functions(conn)
        self.nondeterministic = extensions.load(conn, list(extension_files))
        self._conn = conn
        self._cur = None
        self.limits = limits
        self._internal = False
        self._denied = None
        self._mark = None
        self._entry_dml = False
        self._nonce = secrets.token_hex(8)
        self._watch_schema = watch_schema
        self._schema_opened = self._schema_now = None   # schema versions: _columns_of_empty
        self._described: dict = {}
        conn.authorizer = self._authorize

    def _begin(self) -> int:
        """BEGIN a read transaction -> the applied index of the state it sees; with
        `watch_schema`, note its schema version too (an empty result's columns:
        _columns_of_empty). One call into SQLite for both statements: this is every read's
        fixed cost."""
        try:
            row = self._internal_rows(self._BEGIN_WATCHING if self._watch_schema
                                      else self._BEGIN)[0]
        except BaseException:
            if not self._conn.get_autocommit():
                self._end()
            raise
        if not self._watch_schema:
            return row[0]
        index, version = row
        if self._schema_opened is None:
            self._schema_opened = version
        self._schema_now = version
        return index

    _BEGIN = "BEGIN; SELECT idx FROM _ddb_applied WHERE id = 0"
    _BEGIN_WATCHING = ("BEGIN; SELECT idx, (SELECT schema_version FROM pragma_schema_version) "
                       "FROM _ddb_applied WHERE id = 0")

    def _end(self) -> None:
        """End the read transaction `_begin` opened."""
        self._internal_exec("COMMIT")

    def _stale_schema(self):
        # another connection changed the schema since this one opened (watch_schema)
        now = self._schema_now
        return None if now is None or now == self._schema_opened else now

    def read(self, request: Request, *, max_rows: int | None = None, max_bytes: int | None = None,
             checked: bool = False, at_least: int = 0,
             budget_s: float | None = None) -> tuple[list[Result], int]:
        """(results, applied index of the state they were read from), all statements in one
        read transaction. A state older than `at_least` (the index the read was decided at)
        is never served: StaleReader, which the caller answers as a retryable error."""
        if not checked:
            validate(request, self.limits)
        index = self._begin()
        try:
            if index < at_least:
                raise StaleReader(f"this node's reader saw index {index}, older than the "
                                  f"{at_least} the read was decided at")
            return self._run_request(request, max_rows, max_bytes, budget_s), index
        finally:
            self._end()

    def cursor(self, request: Request, chunk_rows: int) -> "Cursor":
        return Cursor(self, request, chunk_rows)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Cursor:
    """One SELECT read in chunks of `chunk_rows` rows from one read transaction (a consistent
    state however long the reading takes). `fetch()` -> (Result chunk, more)."""

    def __init__(self, reader: Reader, request: Request, chunk_rows: int):
        validate(request, reader.limits)
        if len(request.statements) != 1 or len(split_sql(request.statements[0].sql)) != 1:
            raise BadRequest("a chunked read takes exactly one statement", 0,
                             "a chunked read takes exactly one statement")
        if chunk_rows <= 0:
            raise BadRequest("chunk_rows must be a positive number of rows")
        self.reader = reader
        self.chunk_rows = chunk_rows
        self.rows_sent = 0
        self.done = False
        st = request.statements[0]
        conn = reader._conn
        self.index = reader._begin()
        self._cur = conn.cursor()
        self._desc = None
        self._stepped = False
        self._sql = st.sql

        def note_description(cursor, _sql, _bindings):
            self._desc = cursor.get_description()     # known once prepared, rows or not
            return True
        self._cur.exec_trace = note_description
        try:
            self._rows = self._cur.execute(st.sql, st.params)
        except apsw.Error as e:
            self.close()
            raise SqlError(errmsg(e)) from None

    def fetch(self) -> tuple[Result, bool]:
        if self.done:
            return Result(0, [d[0] for d in self._desc or ()], [d[1] for d in self._desc or ()]), False
        t0 = _perf()
        try:
            rows = list(itertools.islice(self._rows, self.chunk_rows))
            if rows and not self._stepped:
                # stepped once: a statement cached under an older schema is prepared again,
                # and only now describes its columns (see QueryEngine._run_one)
                self._stepped = True
                try:
                    self._desc = self._cur.description
                except apsw.ExecutionCompleteError:
                    pass    # all its rows came in this chunk: what the tracer saw is current
        except apsw.Error as e:
            self.close()
            raise SqlError(errmsg(e)) from None
        more = len(rows) == self.chunk_rows
        self.rows_sent += len(rows)
        if not rows and not self._stepped and self._desc:
            self._desc = self.reader._columns_of_empty(self._sql, self._desc)
        desc = self._desc or ()
        res = Result.from_rows(0, desc, rows, time=_perf() - t0) if desc else Result(0)
        if not more:
            self.close()
        return res, more

    def close(self) -> None:
        if self.done:
            return
        self.done = True
        r = self.reader
        try:
            self._cur.close()
        except Exception:  # noqa: BLE001
            pass
        try:
            r._end()
        except apsw.Error:
            pass
