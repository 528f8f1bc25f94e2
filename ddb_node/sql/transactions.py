"""Interactive transactions: optimistic concurrency at table granularity (see DESIGN.md).

Every replica keeps, in the user database itself (``_ddb_versions``, so it is in snapshots and
committed atomically with the applied index), the index of the last entry that wrote each
table; the pseudo-table ``_ddb_schema`` is the index of the last entry that changed the
schema. Rows written are seen by SQLite's preupdate hook (triggers, foreign-key actions and
REPLACE included); a schema change by ``PRAGMA schema_version`` after a statement that wrote
no row.

A transaction begins at a linearizable read point R. Its statements run (``tx_run``) on the
state machine's connection inside a transaction that is always rolled back: the buffered
writes first, then the new statements, so they see the transaction's own writes. The
authorizer records every table they read or write. A run whose tables changed after R raises
``Conflict``: every answer a transaction gets is therefore the state at R plus its own writes.
The commit is one log entry: the buffered writes and the condition ``(R, tables, term)``,
which every replica checks at apply (``_tx_refused``) before it applies the statements, all
of them in one savepoint, or none. The term is the leader's at BEGIN: a commit proposed in
another term is refused (the transaction ended with its leader).
"""
from __future__ import annotations

import time

import apsw

from .commands import Statement
from .errors import BadRequest, SqlError
from .results import EntryResult

VERSIONS_SCHEMA = ("CREATE TABLE IF NOT EXISTS _ddb_versions(tbl TEXT PRIMARY KEY, "
                   "idx INTEGER NOT NULL) WITHOUT ROWID;")
SCHEMA_KEY = "_ddb_schema"          # the schema's own version (DDL)
CONFLICT_PREFIX = "transaction conflict: "
ABORTED_PREFIX = "transaction aborted: "
TX_BUDGET_S = 0.1                   # a transaction's statements run on the node's loop: below
                                    # the election timeout (150 ms), or a follower would campaign
_TABLE_CODES = frozenset((apsw.SQLITE_READ, apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE,
                          apsw.SQLITE_DELETE))
_perf = time.perf_counter


class Conflict(SqlError):
    """A table the transaction used was written after its read point."""


def is_conflict(error) -> bool:
    return isinstance(error, str) and error.startswith(CONFLICT_PREFIX)


def is_aborted(error) -> bool:
    return isinstance(error, str) and error.startswith(ABORTED_PREFIX)


def leader_changed(begin_term: int, term: int) -> str:
    """Why a transaction begun in `begin_term` ends when met in `term`."""
    return (f"{ABORTED_PREFIX}the leader changed during the transaction (it began in term "
            f"{begin_term}, this is term {term}); nothing was applied (run it again)")


def _user_table(name: str) -> bool:
    return not name.startswith("_ddb_") and not name.startswith("sqlite_")


class Transactions:
    """Mixed into StateMachine: table versions at apply, and a transaction's statements."""

    _tx_tables: set | None = None

    def _tx_init(self) -> None:
        self._written: dict[str, int] = {}    # this batch's writes: table -> index
        self._write_idx = 0
        self._tx_tables = None
        self._schema_version = self._internal_rows("PRAGMA schema_version")[0][0]
        self._row_hook = self._make_row_hook(getattr(self, "_capture", None))
        self.versions_hook(True)

    def _make_row_hook(self, capture: list | None):
        """The one preupdate hook of the connection: it notes which table a row change is in
        (the table versions) and, with change capture on, appends the change to the entry's
        list for the change log (sql/changes.py) unless ddb itself is writing. One Python
        call per row for both jobs: the call, not what it does, is most of a hook's cost."""
        if capture is None:
            return self._row_written
        append = capture.append
        sm = self

        def hook(u):
            t = u.table_name
            sm._written[t] = sm._write_idx
            if not sm._internal:
                append((u.op, t, u.rowid, u.old, u.new))
        return hook

    def versions_hook(self, on: bool) -> None:
        """Install or remove the preupdate hook (off while ddb writes many rows of its own,
        e.g. the change log's batch)."""
        self._conn.preupdate_hook(self._row_hook if on else None, id="ddb-table-versions")

    def _row_written(self, update) -> None:
        self._written[update.table_name] = self._write_idx

    def _tx_record(self, code, a3) -> None:
        if code in _TABLE_CODES and a3:
            self._tx_tables.add(a3.lower())

    # ------------------------------------------------------------------ at apply
    def _versions_begin(self) -> None:
        """A batch (or its replay) starts: nothing of it is written yet."""
        self._written = {}
        self._schema_version = self._internal_rows("PRAGMA schema_version")[0][0]

    def _note_schema(self, idx: int) -> None:
        """After an entry whose statements wrote no row: did it change the schema?"""
        sv = self._internal_rows("PRAGMA schema_version")[0][0]
        if sv != self._schema_version:
            self._schema_version = sv
            self._written[SCHEMA_KEY] = idx

    def _versions_flush(self) -> None:
        """Store this batch's versions, inside its transaction."""
        items = [(t.lower(), i) for t, i in self._written.items() if t == SCHEMA_KEY or _user_table(t)]
        for t, i in items:
            self._internal_exec("INSERT OR REPLACE INTO _ddb_versions(tbl, idx) VALUES (?, ?)", (t, i))
        self._written = {}

    def table_version(self, table: str) -> int:
        """The index of the last entry that wrote `table` (0: none since versions were kept)."""
        t = table.lower()
        pending = [i for name, i in self._written.items() if name.lower() == t]
        if pending:
            return max(pending)
        rows = self._internal_rows("SELECT idx FROM _ddb_versions WHERE tbl = ?", (t,))
        return rows[0][0] if rows else 0

    def _tx_conflict(self, begin: int, tables) -> str | None:
        """None when no table of `tables` (nor the schema) changed after index `begin`."""
        for t in sorted(set(tables) | {SCHEMA_KEY}):
            v = self.table_version(t)
            if v > begin:
                what = "the schema" if t == SCHEMA_KEY else f"table {t!r}"
                return (f"{CONFLICT_PREFIX}{what} was written at index {v}, after the "
                        f"transaction's read point {begin}; nothing was applied (run the "
                        "transaction again)")
        return None

    def _tx_refused(self, idx: int, term: int, condition, session):
        """The EntryResult of a commit entry whose condition fails, else None: a table it used
        was written after its read point R, or the entry was proposed in another term than
        the transaction began in (its leader lost office meanwhile). The term is the entry's
        own, the same on every replica."""
        if len(condition) == 3 and condition[2] != term:
            refusal = leader_changed(condition[2], term)
        else:
            refusal = self._tx_conflict(condition[0], condition[1])
        if refusal is None:
            return None
        er = EntryResult(idx, [], refusal)
        if session is not None:
            self.sessions.record(idx, session[0], session[1], er)
        return er

    # ------------------------------------------------------------------ a transaction's statements
    def tx_run(self, begin: int, writes: list[Statement], statements: list[Statement], *,
               read_only: bool, max_rows: int | None = None, max_bytes: int | None = None,
               budget_s: float = TX_BUDGET_S):
        """Run `statements` after the transaction's buffered `writes`, on the state at least as
        new as `begin` (the caller waits for it), and roll everything back -> (results of
        `statements`, sorted tables used). Raises Conflict when a table used changed after
        `begin`, BadRequest when a buffered write no longer runs."""
        conn = self._conn
        if begin > self._applied_index:
            raise SqlError(f"index {begin} is not applied here yet")
        if not conn.get_autocommit():
            raise SqlError("tx_run() called while a transaction is open")
        tables: set[str] = set()
        saved, self._written = self._written, {}
        self._tx_tables = tables
        cutoff = _perf() + budget_s
        conn.set_progress_handler(lambda: 1 if _perf() > cutoff else 0, 1000)
        conn.set_commit_hook(lambda: True)    # nothing here may ever commit: a commit is a rollback
        cur = conn.cursor()
        cur.exec_trace = self._tracer
        replay_error = None
        results = []
        readonly: list[bool] = []       # per statement: it wrote nothing (no need to buffer it)
        self.tx_readonly = readonly
        try:
            self._internal_exec("BEGIN")
            for k, st in enumerate(writes):
                res = self._run_statement(k, st.sql, st.params, cur, None, None, can_cache=False)
                bad = next((r for r in res if r.error is not None), None)
                if bad is not None or conn.get_autocommit():
                    replay_error = f"statement {k} of the transaction failed on replay: " \
                                   f"{bad.error if bad else 'it ended the transaction'}"
                    break
            if replay_error is None:
                if read_only:
                    self._internal_exec("PRAGMA query_only=1")
                for k, st in enumerate(statements):
                    self._mark = None
                    res = self._run_statement(k, st.sql, st.params, cur, max_rows, max_bytes,
                                              can_cache=False)
                    results.extend(res)
                    readonly.append(self._mark is None or bool(self._mark[1]))
                    if conn.get_autocommit():
                        raise BadRequest(f"statement {k} ended the transaction (ROLLBACK); it is "
                                         "refused inside an interactive transaction")
                    if any(r.error is not None for r in res):
                        break
            private, self._written = self._written, saved      # versions: the applied ones
            self._tx_tables = None
            tables |= {t.lower() for t in private}
            tables = {t for t in tables if _user_table(t)}
            conflict = self._tx_conflict(begin, tables)
            if conflict is not None:
                raise Conflict(conflict)
            if replay_error is not None:
                raise BadRequest(replay_error)
        finally:
            self._tx_tables = None
            self._written = saved
            if not conn.get_autocommit():
                self._internal_exec("ROLLBACK")
            if read_only:
                self._internal_exec("PRAGMA query_only=0")
            conn.set_commit_hook(None)
            conn.set_progress_handler(None)
            captured = getattr(self, "_capture", None)
            if captured is not None:
                captured.clear()        # the change log (CDC) saw rows that never happened
        for r in results:
            if r.error is not None and "readonly" in r.error:
                r.error = f"{r.error} (tx.query runs reads only; use tx.execute for writes)"
            elif r.error is not None and r.error.endswith("interrupted"):
                r.error = f"interrupted: a transaction's statement may run for {budget_s:g}s"
        return results, sorted(tables)
