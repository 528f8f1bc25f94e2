"""Change data capture: the row changes of every applied entry, kept in the database itself.

While an entry is applied, SQLite's preupdate hook (apsw ``Connection.preupdate_hook``) hands
every row change to ``ChangeLog``: the hook only appends ``(op, table, rowid, old, new)`` to a
list. At the end of the entry the list is encoded once (msgpack, with the column names and
primary-key positions of the tables it touches) and stored as one row of ``_ddb_changes``
keyed by the entry's log index, in the same SQLite transaction as the entry and the applied
index: the change log is atomic with the data, survives restarts and travels in snapshots.

Determinism: what is recorded is a function of the entry and the database before it, so every
replica records the same bytes. Retention is decided during apply, at log positions
(``index % prune_every == 0``), from the log itself (its entries' indexes and encoded sizes),
never from a clock: every replica prunes the same rows at the same entry.

What is *not* recorded: changes undone by SQLite (a failed statement under ABORT, a
``transaction=True`` entry rolled back, a batch replayed after ``INSERT OR ROLLBACK``),
ddb's own tables (``_ddb_*``, written outside an entry's statements) and system tables (the
hook never fires for them). DDL itself is not an event.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import msgpack

SCHEMA = ("CREATE TABLE IF NOT EXISTS _ddb_changes(idx INTEGER PRIMARY KEY, data BLOB NOT NULL);"
          "CREATE TABLE IF NOT EXISTS _ddb_changes_meta(id INTEGER PRIMARY KEY CHECK (id = 0), "
          "pruned INTEGER NOT NULL);")
DROP = "DROP TABLE IF EXISTS _ddb_changes; DROP TABLE IF EXISTS _ddb_changes_meta;"

OP_NAMES = {"INSERT": "insert", "UPDATE": "update", "DELETE": "delete"}
_packb = msgpack.Packer(use_bin_type=True).pack


@dataclass(frozen=True)
class ChangeConfig:
    """How much of the change log a node keeps. Configure every node alike: the log is part
    of the replicated database (snapshots carry it), like the session table's bounds.

    Default: on, the last 100,000 log indexes or 64 MB of encoded changes, whichever is
    smaller, checked every 1,000 indexes. That is five times the default snapshot interval
    (20,000 entries): a reader that falls behind by a snapshot or two, or is down for a
    restart, resumes inside the window; and the bound in bytes keeps a bulk load from
    growing the database without limit."""
    enabled: bool = True
    keep_entries: int = 100_000   # log indexes kept behind the applied one (0: unbounded)
    keep_bytes: int = 64 << 20    # encoded bytes kept (0: unbounded)
    # retention is enforced at indexes that are multiples of this; by default a tenth of
    # keep_entries, at most 1,000 (so a small window stays close to its bound)
    prune_every: int | None = None

    def __post_init__(self):
        for name in ("keep_entries", "keep_bytes"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if self.prune_every is None:
            every = min(1_000, self.keep_entries // 10) if self.keep_entries else 1_000
            object.__setattr__(self, "prune_every", max(1, every))
        if self.prune_every <= 0:
            raise ValueError("prune_every must be positive")


class _NoOwner:
    _internal = False


class ChangesTruncated(Exception):
    """Asked for changes after an index whose successors the log no longer holds."""

    def __init__(self, since: int, oldest: int):
        super().__init__(f"changes after index {since} are no longer retained: the oldest "
                         f"retained index is {oldest} (ask with since >= {oldest - 1})")
        self.since, self.oldest = since, oldest


class CaptureOff(Exception):
    """This node records no changes."""


class ChangeLog:
    """The capture side (``begin_entry`` / ``flush``) and the read side (``read``) of the log
    of one state machine's connection. ``run(sql, params)`` runs ddb's own SQL past the
    authorizer and returns the rows."""

    def __init__(self, config: ChangeConfig, run, run_many, owner=None):
        self.config = config
        self._owner = owner              # its `_internal` is true while ddb runs its own SQL
        self._run = run
        self._run_many = run_many        # run_many(sql, seq_of_params), internal too
        self.rows: list = []             # the current entry's changes, as the hook saw them
        self._schemas: dict = {}         # table -> (columns, primary-key positions)
        self._headers: dict = {}         # table names -> the packed header of an entry
        self._pending: list = []         # (index, blob) of this batch, not yet written
        self.pruned = 0                  # the log holds every change after this index
        self.bytes = 0                   # encoded size of what the log holds
        self._saved = (0, 0)
        self._conn = None

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    # ------------------------------------------------------------------ lifecycle
    def attach(self, conn, applied_index: int) -> None:
        """Set up on a (re)opened connection, before its authorizer is installed. A log that
        starts now (capture just turned on, or a snapshot without one) holds every change
        after the applied index; turning capture off drops the log, so it never has gaps."""
        self._conn = conn
        self.schema_changed()
        self.rows = []
        self._pending = []
        if not self.config.enabled:
            conn.preupdate_hook(None)
            with conn:
                conn.execute(DROP)
            return
        with conn:
            conn.execute(SCHEMA)
            conn.execute("INSERT OR IGNORE INTO _ddb_changes_meta VALUES (0, ?)", (applied_index,))
        self.pruned = conn.execute("SELECT pruned FROM _ddb_changes_meta WHERE id = 0").fetchall()[0][0]
        self.bytes = conn.execute("SELECT total(length(data)) FROM _ddb_changes").fetchall()[0][0]
        self.bytes = int(self.bytes)
        append = self.rows.append
        owner = self._owner if self._owner is not None else _NoOwner

        def hook(u):
            if owner._internal:
                return         # ddb's own tables (sessions, the applied index, this log)
            append((u.op, u.table_name, u.rowid, u.old, u.new))
        self._hook = hook
        conn.preupdate_hook(hook)

    def schema_changed(self) -> None:
        self._schemas.clear()
        self._headers.clear()

    def begin_batch(self) -> None:
        self._saved = (self.pruned, self.bytes)

    def rollback(self) -> None:
        """The batch's transaction was rolled back: so were its rows of the log."""
        self.pruned, self.bytes = self._saved
        self.rows.clear()
        self._pending.clear()

    # ------------------------------------------------------------------ capture
    def _schema(self, table: str):
        s = self._schemas.get(table)
        if s is None:
            info = self._run(f'PRAGMA table_xinfo("{table.replace(chr(34), chr(34) * 2)}")')
            cols = [r[1] for r in info]
            pk = [r[0] for r in sorted((r for r in info if r[5]), key=lambda r: r[5])]
            s = self._schemas[table] = (cols, pk)
        return s

    def _header(self, names) -> bytes:
        """The packed {table: (columns, primary-key positions)} of these tables (cached until
        the schema changes: most entries touch the tables the previous ones did)."""
        h = self._headers.get(names)
        if h is None:
            schema = self._schema
            h = self._headers[names] = _packb({t: schema(t) for t in names})
        return h

    def flush(self, index: int) -> None:
        """Encode the current entry's changes (if any) as the log's row for `index`; written
        with the rest of the batch by ``write``. The row is a msgpack array [header, rows],
        packed in two pieces so that the header's bytes are reused."""
        rows = self.rows
        if not rows:
            return
        if len(rows) == 1:
            names = rows[0][1]
        else:
            names = tuple(sorted({r[1] for r in rows}))
            if len(names) == 1:
                names = names[0]
        blob = b"\x92" + self._header(names if type(names) is tuple else (names,)) \
            + _packb(rows)
        rows.clear()
        self._pending.append((index, blob))
        self.bytes += len(blob)

    def write(self) -> None:
        """Write the batch's encoded entries (one executemany), in its transaction."""
        if self._pending:
            # the log's own rows: no hook call per row (the hooks would only skip them)
            conn, owner = self._conn, self._owner
            conn.preupdate_hook(None)
            if owner is not None:
                owner.versions_hook(False)
            try:
                self._run_many("INSERT INTO _ddb_changes(idx, data) VALUES (?, ?)", self._pending)
            finally:
                conn.preupdate_hook(self._hook)
                if owner is not None:
                    owner.versions_hook(True)
            self._pending = []

    def maybe_prune(self, index: int) -> None:
        """Enforce retention at `index` (when it is a multiple of ``prune_every``)."""
        cfg = self.config
        if index % cfg.prune_every:
            return
        self.write()
        cut = index - cfg.keep_entries if cfg.keep_entries else 0
        if cfg.keep_bytes and self.bytes > cfg.keep_bytes:
            excess = self.bytes - cfg.keep_bytes
            for idx, n in self._run("SELECT idx, length(data) FROM _ddb_changes ORDER BY idx"):
                excess -= n
                if excess <= 0:
                    cut = max(cut, idx)
                    break
        if cut <= self.pruned:
            return
        gone = self._run("SELECT total(length(data)) FROM _ddb_changes WHERE idx <= ?", (cut,))[0][0]
        self._run("DELETE FROM _ddb_changes WHERE idx <= ?", (cut,))
        self._run("UPDATE _ddb_changes_meta SET pruned = ? WHERE id = 0", (cut,))
        self.pruned = cut
        self.bytes -= int(gone)

    # ------------------------------------------------------------------ reading
    def read(self, since: int, applied: int, *, tables=None, max_entries: int = 500,
             max_bytes: int = 1 << 20):
        """Events of entries after `since`, in index order, whole entries only ->
        (events, through): every change up to `through` was considered (resume from it).
        Events are ``[index, table, op, key, old, new]`` (old/new: {column: value} or None)."""
        if not self.config.enabled:
            raise CaptureOff("change capture is turned off on this node (--changes off)")
        if since < self.pruned:
            raise ChangesTruncated(since, self.pruned + 1)
        want = None if tables is None else set(tables)
        rows = self._run("SELECT idx, data FROM _ddb_changes WHERE idx > ? ORDER BY idx LIMIT ?",
                         (since, max_entries + 1))
        out: list = []
        size = 0
        through = applied
        for k, (idx, blob) in enumerate(rows):
            if k == max_entries or (size >= max_bytes and out):
                through = rows[k - 1][0]
                break
            size += len(blob)
            out.extend(decode(idx, blob, want))
        return out, through

    def digest(self) -> str:
        """sha256 of the whole log (where it starts, every row): equal on every replica at
        the same applied index."""
        h = hashlib.sha256()
        if not self.config.enabled:
            return h.hexdigest()
        h.update(str(self._run("SELECT pruned FROM _ddb_changes_meta WHERE id = 0")[0][0]).encode())
        for idx, blob in self._run("SELECT idx, data FROM _ddb_changes ORDER BY idx"):
            h.update(idx.to_bytes(8, "big"))
            h.update(len(blob).to_bytes(8, "big"))
            h.update(blob)
        return h.hexdigest()


def decode(index: int, blob: bytes, want: set | None = None) -> list:
    """One log row -> its events (``[index, table, op, key, old, new]``), optionally only
    those of the tables in `want`."""
    header, rows = msgpack.unpackb(blob, raw=False, use_list=True, strict_map_key=False)
    out = []
    for op, table, rowid, old, new in rows:
        if want is not None and table not in want:
            continue
        cols, pk = header[table]
        o = None if old is None else dict(zip(cols, old))
        n = None if new is None else dict(zip(cols, new))
        vals = old if new is None else new
        if not pk or vals is None:
            key = rowid
        elif len(pk) == 1:
            key = vals[pk[0]] if pk[0] < len(vals) else rowid
        else:
            key = [vals[p] for p in pk if p < len(vals)]
        out.append([index, table, OP_NAMES.get(op, op.lower()), key, o, n])
    return out
