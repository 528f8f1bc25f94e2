"""The read path shared by the state machine and its off-loop readers: run a request's
statements on one connection and build typed, column-oriented results.

A subclass provides ``_conn`` (the connection), ``_cur`` (its cursor for apply, or None),
``limits``, and the fields the authorizer and the tracer use (``_internal``, ``_denied``,
``_mark``, ``_entry_dml``, ``_nonce``).
"""
from __future__ import annotations

import itertools
import time

import apsw

from . import policy
from .commands import Request, validate
from .errors import SqlError
from .results import Result
from .split import is_single, split_sql

_perf = time.perf_counter
_OK, _DENY = apsw.SQLITE_OK, apsw.SQLITE_DENY   # the authorizer's answers (module constants:
_refusal = policy.refusal                       # it runs several times per statement prepared)


class OverBudget(SqlError):
    """A read ran past the time budget it was given (its caller runs it elsewhere)."""


def errmsg(e: BaseException) -> str:
    if isinstance(e, apsw.Error):
        return str(e)
    if isinstance(e, KeyError):
        return f"missing named parameter {e.args[0]!r}" if e.args else "missing named parameter"
    return f"{type(e).__name__}: {e}"


class QueryEngine:
    # A connection opened SQLITE_OPEN_READONLY cannot write at all, so its reads need no
    # ``PRAGMA query_only``. On a writable connection the pragma is toggled around each
    # read, and toggling a flag pragma expires every prepared statement of the connection
    # (SQLite's OP_Expire): the read's own statements, and apply's, are prepared again.
    _readonly_conn = False

    def _authorize(self, code, a3, a4, db, trig):
        if self._internal:
            return _OK
        reason = _refusal(code, a3, a4, db, trig)
        if reason is None:
            return _OK
        self._denied = reason
        return _DENY

    def _tracer(self, cursor, sql, bindings):
        self._mark = (cursor.get_description(), cursor.is_readonly)
        return True

    def _internal_text(self, sql: str) -> str:
        """`sql` with the nonce comment, which keeps its cached prepared statement out of
        reach of user SQL with the same text (built once per text)."""
        texts = self.__dict__.setdefault("_internal_texts", {})
        text = texts.get(sql)
        if text is None:
            if len(texts) >= 1024:          # ddb's own texts are few; parameters vary
                texts.clear()
            text = texts[sql] = f"{sql} /*{self._nonce}*/"
        return text

    def _internal_cursor(self):
        """One cursor of the current connection for ddb's own statements, each run to its
        end (a new cursor per statement cost ~0.7 µs, several times per apply and read)."""
        conn = self._conn
        if self.__dict__.get("_icur_conn") is not conn:
            self._icur, self._icur_conn = conn.cursor(), conn
        return self._icur

    def _internal_exec(self, sql, params=None):
        """Run ddb's own SQL past the authorizer, to its end."""
        self._internal = True
        try:
            self._internal_cursor().execute(self._internal_text(sql), params).fetchall()
        finally:
            self._internal = False

    def _internal_rows(self, sql, params=None):
        self._internal = True
        try:
            return self._internal_cursor().execute(self._internal_text(sql), params).fetchall()
        finally:
            self._internal = False

    def _internal_many(self, sql, seq):
        self._internal = True
        try:
            self._conn.executemany(f"{sql} /*{self._nonce}*/", seq)
        finally:
            self._internal = False

    # rqlite's /status reports these of each connection (db.pragmas), as text
    STATUS_PRAGMAS = ("synchronous", "journal_mode", "foreign_keys", "wal_autocheckpoint",
                      "busy_timeout")

    def status_pragmas(self) -> dict[str, str]:
        """This connection's settings that /status shows: {name: value as text}."""
        out = {}
        for name in self.STATUS_PRAGMAS:
            rows = self._internal_rows(f"PRAGMA {name}")
            out[name] = str(rows[0][0]) if rows else ""
        return out

    # ------------------------------------------------------------------ properties

    def _failed(self, k, e, t0) -> Result:
        if self._denied is not None and isinstance(e, apsw.AuthError):
            msg = f"not authorized: {self._denied}"
            self._denied = None
        else:
            msg = errmsg(e)
        if self._mark is not None and not self._mark[1]:
            self._entry_dml = True
        return Result.failure(k, msg, _perf() - t0)

    def _run_statement(self, k, sql, params, cur, max_rows, max_bytes,
                       can_cache: bool = True) -> list[Result]:
        """Run one request statement (which SQLite may split into several)."""
        if is_single(sql):
            return [self._run_one(k, sql, params, cur, max_rows, max_bytes, can_cache)]
        pieces = split_sql(sql)
        if not pieces:
            return [Result(k)]
        out = []
        positional = isinstance(params, (list, tuple))
        offset = 0
        for piece in pieces:
            p = params
            if positional:
                n = self._bindings_count(piece)
                if n is None:
                    p = params[offset:]
                else:
                    p = params[offset:offset + n]
                    offset += n
            r = self._run_one(k, piece, p, cur, max_rows, max_bytes, can_cache)
            out.append(r)
            if r.error is not None:
                break       # like sqlite3_exec: the rest of this string does not run
        return out

    def _stale_schema(self):
        """None while this connection's cached statements can only have been prepared
        under the current schema; else a key for the schema now (see _columns_of_empty)."""
        return None

    def _columns_of_empty(self, sql: str, desc):
        """The columns of a statement that returned no row, so was never stepped: a
        statement cached before the schema moved still describes the old columns; such a
        text is described afresh, once per text and schema."""
        key = self._stale_schema()
        if key is None:
            return desc
        known = self._described.get(sql)
        if known is not None and known[0] == key:
            return known[1]
        try:
            fresh = self._prepared_only(sql, lambda c: c.get_description()) or desc
        except apsw.Error:
            fresh = desc
        if len(self._described) >= 4096:
            self._described.clear()
        self._described[sql] = (key, fresh)
        return fresh

    def _prepared_only(self, sql: str, look):
        """Prepare `sql` afresh (not cached) without running it -> look(cursor)."""
        info = {}

        def tracer(cursor, text, bindings):
            info["v"] = look(cursor)
            return False

        c = self._conn.cursor()
        c.exec_trace = tracer
        try:
            c.execute(sql, apsw._null_bindings, can_cache=False)
        except apsw.ExecTraceAbort:
            pass
        return info.get("v")

    def _bindings_count(self, sql) -> int | None:
        try:
            return self._prepared_only(sql, lambda c: c.bindings_count)
        except Exception:
            return None

    def _run_one(self, k, sql, params, cur, max_rows, max_bytes, can_cache=True) -> Result:
        conn = self._conn
        self._mark = None
        t0 = _perf()
        tc = conn.total_changes()
        truncated = False
        try:
            if can_cache:
                cur.execute(sql, params)
            else:       # prepared afresh: the authorizer sees it (a transaction's tables)
                cur.execute(sql, params, can_cache=False)
            # the first step prepares a cached statement again if the schema changed since
            # (SQLITE_SCHEMA); only then are its columns known: apsw's get_description(),
            # which the exec tracer saw, keeps those of the first preparation (after an
            # ALTER TABLE ... ADD COLUMN, `SELECT *` had one column name for two values)
            row = next(cur, None)
            fresh = None if row is None else cur.description
            if row is None:
                rows = []
            elif max_rows is None and max_bytes is None:
                rows = [row]
                rows += cur.fetchall()
            else:
                rows, truncated = limited(itertools.chain((row,), cur), max_rows, max_bytes,
                                          drain=cur is self._cur)
        except Exception as e:
            return self._failed(k, e, t0)
        mark = self._mark
        if mark is None:           # nothing but comments
            return Result(k)
        desc, readonly = mark
        if fresh is not None:
            desc = fresh
        elif desc:
            desc = self._columns_of_empty(sql, desc)
        if readonly:
            changes, last_id = 0, None
        else:
            self._entry_dml = True
            changes = conn.changes() if conn.total_changes() != tc else 0
            last_id = conn.last_insert_rowid()
        if not desc:
            return Result.write(k, changes, last_id, _perf() - t0)
        return Result.from_rows(k, desc, rows, rows_affected=changes, last_insert_id=last_id,
                                time=_perf() - t0, truncated=truncated)

    def query(self, request: Request, *, max_rows: int | None = None,
              max_bytes: int | None = None, checked: bool = False,
              budget_s: float | None = None) -> list[Result]:
        """The local read path: no log, read-only (``PRAGMA query_only``), real clock and
        randomness. A statement that would write fails with a clear error. ``checked``: the
        request was validated already (by ``classify``)."""
        if not checked:
            validate(request, self.limits)
        if not self._conn.get_autocommit():
            raise SqlError("query() called while a transaction is open")
        return self._run_request(request, max_rows, max_bytes, budget_s)

    def _run_request(self, request: Request, max_rows, max_bytes,
                     budget_s: float | None = None) -> list[Result]:
        """``budget_s``: stop after that long and raise OverBudget (nothing is returned)."""
        conn = self._conn
        now = _perf()
        deadline = None if request.timeout is None else now + request.timeout
        over = None if budget_s is None else now + budget_s
        cutoff = deadline if over is None or (deadline is not None and deadline < over) else over
        if cutoff is not None:
            conn.set_progress_handler(lambda: 1 if _perf() > cutoff else 0, 1000)
        guard = not self._readonly_conn
        if guard:
            self._internal_exec("PRAGMA query_only=1")
        results: list[Result] = []
        cur = conn.cursor()
        cur.exec_trace = self._tracer
        try:
            for k, st in enumerate(request.statements):
                res = self._run_statement(k, st.sql, st.params, cur, max_rows, max_bytes)
                if over is not None and cutoff == over and any(
                        r.error is not None and r.error.endswith("interrupted") for r in res):
                    raise OverBudget(f"the read ran past its budget of {budget_s:g}s")
                for r in res:
                    if r.error is not None and "readonly" in r.error:
                        r.error = (f"{r.error} (query() runs reads only; send statements that write "
                                   "as a write request)")
                    elif r.error is not None and r.error.endswith("interrupted") and deadline is not None:
                        r.error = f"interrupted: timeout of {request.timeout}s exceeded"
                results.extend(res)
        finally:
            if cutoff is not None:
                conn.set_progress_handler(None)
            if guard:
                self._internal_exec("PRAGMA query_only=0")
        return results


_SIZED = frozenset((str, bytes))     # values counted by their length (others: 8 bytes)


def limited(cur, max_rows, max_bytes, drain=False):
    """Keep at most ``max_rows`` rows / about ``max_bytes`` bytes; report truncation. With
    ``drain`` the statement still runs to its end (the apply path leaves nothing pending)."""
    rows = []
    size = 0
    for row in cur:
        if max_rows is not None and len(rows) >= max_rows:
            break
        if max_bytes is not None:
            for v in row:       # a loop, not sum() over a generator: every row of a big read
                size += len(v) if v.__class__ in _SIZED else 8
            if size > max_bytes:
                break
        rows.append(row)
    else:
        return rows, False
    if drain:
        for _ in cur:
            pass
    return rows, True
