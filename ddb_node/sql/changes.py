"""Change data capture: the row changes of every applied entry, kept in the database itself.

While an entry is applied, SQLite's preupdate hook (apsw ``Connection.preupdate_hook``) hands
every row change to ``ChangeLog``: the hook only appends ``(op, table, rowid, old, new)`` to a
list. At the end of the entry the list is encoded once (msgpack, with the column names and
primary-key positions of the tables it touches) as the entry's *segment*: its log index, then
``[header, rows]``. Segments are stored in index order, several to a row of ``_ddb_changes``
(``idx``: the row's first index, ``n``: its segments), in the same SQLite transaction as the
entry and the applied index: the change log is atomic with the data, survives restarts and
travels in snapshots. A row takes up to ``ROW_ENTRIES`` segments or ``ROW_BYTES`` bytes (about
a page), so a batch of entries costs one or a few row writes instead of one per entry; which
row a segment goes to depends only on the segments before it, never on how entries were
batched, so the rows are the same bytes on every replica.

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

SCHEMA = ("CREATE TABLE IF NOT EXISTS _ddb_changes(idx INTEGER PRIMARY KEY, n INTEGER NOT NULL, "
          "data BLOB NOT NULL);"
          "CREATE TABLE IF NOT EXISTS _ddb_changes_meta(id INTEGER PRIMARY KEY CHECK (id = 0), "
          "pruned INTEGER NOT NULL);")
DROP = "DROP TABLE IF EXISTS _ddb_changes; DROP TABLE IF EXISTS _ddb_changes_meta;"

OP_NAMES = {"INSERT": "insert", "UPDATE": "update", "DELETE": "delete"}
_packb = msgpack.Packer(use_bin_type=True).pack
ROW_ENTRIES = 64        # segments per row of the log, at most
ROW_BYTES = 3_500       # a row is closed once it holds this much (it then fits one page)


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

    def __init__(self, config: ChangeConfig, run, run_many, owner):
        self.config = config
        self._owner = owner              # the state machine: its hook fills `rows`, and
                                         # `versions_hook(False)` silences it for our writes
        self._run = run
        self._run_many = run_many        # run_many(sql, seq_of_params), internal too
        self.rows: list = []             # the current entry's changes, as the hook saw them
        self._schemas: dict = {}         # table -> (columns, primary-key positions)
        self._headers: dict = {}         # table name(s) -> the packed header of a segment
        self._pending: list = []         # (index, segment) of this batch, not yet written
        self.pruned = 0                  # the log holds every change after this index
        self.bytes = 0                   # encoded size of what the log holds
        self._tail = None                # (idx, n, size) of the log's last row, or None
        self._saved = (0, 0, None)
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
            with conn:
                conn.execute(DROP)
            return
        with conn:
            _upgrade_one_row_per_entry(conn)
            conn.execute(SCHEMA)
            conn.execute("INSERT OR IGNORE INTO _ddb_changes_meta VALUES (0, ?)", (applied_index,))
        self.pruned = conn.execute("SELECT pruned FROM _ddb_changes_meta WHERE id = 0").fetchall()[0][0]
        self.bytes = int(conn.execute("SELECT total(length(data)) FROM _ddb_changes").fetchall()[0][0])
        last = conn.execute("SELECT idx, n, length(data) FROM _ddb_changes "
                            "ORDER BY idx DESC LIMIT 1").fetchall()
        self._tail = tuple(last[0]) if last else None
        # rows are appended by the owner's one preupdate hook (Transactions._make_row_hook):
        # one Python call per row for both the table versions and the capture

    def schema_changed(self) -> None:
        self._schemas.clear()
        self._headers.clear()

    def begin_batch(self) -> None:
        self._saved = (self.pruned, self.bytes, self._tail)

    def rollback(self) -> None:
        """The batch's transaction was rolled back: so were its rows of the log."""
        self.pruned, self.bytes, self._tail = self._saved
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

    def _header(self, key) -> bytes:
        """The packed {table: (columns, primary-key positions)} of a table name or a sorted
        tuple of names (cached until the schema changes: most entries touch the tables the
        previous ones did)."""
        schema = self._schema
        names = key if type(key) is tuple else (key,)
        h = self._headers[key] = _packb({t: schema(t) for t in names})
        return h

    def flush(self, index: int) -> None:
        """Encode the current entry's changes (if any) as its segment: the index, then the
        msgpack array [header, rows], packed in pieces so that the header's bytes are
        reused. Written with the rest of the batch by ``write``."""
        rows = self.rows
        if not rows:
            return
        if len(rows) == 1:
            key = rows[0][1]
        else:
            key = tuple(sorted({r[1] for r in rows}))
            if len(key) == 1:
                key = key[0]
        h = self._headers.get(key)
        if h is None:
            h = self._header(key)
        seg = _packb(index) + b"\x92" + h + _packb(rows)
        rows.clear()
        self._pending.append((index, seg))
        self.bytes += len(seg)

    def write(self) -> None:
        """Write the batch's segments, in its transaction: appended to the log's last row
        while it has room, then in new rows (one statement each way)."""
        pending = self._pending
        if not pending:
            return
        tail = self._tail
        appended: list = []              # segments that go to the existing last row
        new_rows: list = []              # [idx, n, [segments], size]
        cur = None
        if tail is not None:
            t_idx, t_n, t_size = tail
        for index, seg in pending:
            size = len(seg)
            if cur is None:
                if tail is not None and t_n < ROW_ENTRIES and t_size < ROW_BYTES:
                    appended.append(seg)
                    t_n += 1
                    t_size += size
                    continue
                cur = [index, 0, [], 0]
                new_rows.append(cur)
            elif cur[1] >= ROW_ENTRIES or cur[3] >= ROW_BYTES:
                cur = [index, 0, [], 0]
                new_rows.append(cur)
            cur[1] += 1
            cur[2].append(seg)
            cur[3] += size
        # the log's own rows: no hook call per row (the hook would only skip them)
        owner = self._owner
        owner.versions_hook(False)
        try:
            if appended:
                # `||` makes text of blobs (the same bytes: the database is UTF-8); CAST
                # gives the blob back
                self._run("UPDATE _ddb_changes SET n = ?, data = CAST(data || ? AS BLOB) WHERE idx = ?",
                          (t_n, b"".join(appended), t_idx))
                self._tail = (t_idx, t_n, t_size)
            if new_rows:
                self._run_many("INSERT INTO _ddb_changes(idx, n, data) VALUES (?, ?, ?)",
                               [(r[0], r[1], b"".join(r[2])) for r in new_rows])
                last = new_rows[-1]
                self._tail = (last[0], last[1], last[3])
        finally:
            owner.versions_hook(True)
        self._pending = []

    def maybe_prune(self, index: int) -> None:
        """Enforce retention at `index` (when it is a multiple of ``prune_every``): the log
        keeps exactly the entries after the cut, whatever its rows are."""
        cfg = self.config
        if index % cfg.prune_every:
            return
        self.write()
        cut = index - cfg.keep_entries if cfg.keep_entries else 0
        if cfg.keep_bytes and self.bytes > cfg.keep_bytes:
            excess = self.bytes - cfg.keep_bytes
            for idx, size in self._run("SELECT idx, length(data) FROM _ddb_changes ORDER BY idx"):
                if excess - size > 0:
                    excess -= size
                    continue
                data = self._run("SELECT data FROM _ddb_changes WHERE idx = ?", (idx,))[0][0]
                for seg_idx, seg in _segments(data):
                    excess -= len(seg)
                    if excess <= 0:
                        cut = max(cut, seg_idx)
                        break
                break
        if cut <= self.pruned:
            return
        straddle = self._run("SELECT idx, data FROM _ddb_changes WHERE idx <= ? "
                             "ORDER BY idx DESC LIMIT 1", (cut,))
        if straddle:
            first, data = straddle[0]
            gone = self._run("SELECT total(length(data)) FROM _ddb_changes WHERE idx < ?",
                             (first,))[0][0]
            self._run("DELETE FROM _ddb_changes WHERE idx <= ?", (first,))
            kept = [(i, seg) for i, seg in _segments(data) if i > cut]
            gone += len(data) - sum(len(seg) for _, seg in kept)
            if kept:
                rest = b"".join(seg for _, seg in kept)
                self._run("INSERT INTO _ddb_changes(idx, n, data) VALUES (?, ?, ?)",
                          (kept[0][0], len(kept), rest))
                if self._tail is not None and self._tail[0] == first:
                    self._tail = (kept[0][0], len(kept), len(rest))
            elif self._tail is not None and self._tail[0] == first:
                self._tail = None
            self.bytes -= int(gone)
        self._run("UPDATE _ddb_changes_meta SET pruned = ? WHERE id = 0", (cut,))
        self.pruned = cut

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
        # the row holding `since` may hold later entries too; each later row starts after it
        rows = self._run("SELECT data FROM _ddb_changes WHERE idx >= coalesce((SELECT max(idx) "
                         "FROM _ddb_changes WHERE idx <= ?), 0) ORDER BY idx LIMIT ?",
                         (since, max_entries + 1))
        out: list = []
        size = 0
        taken = 0
        last = since
        for (data,) in rows:
            for idx, seg in _segments(data):
                if idx <= since:
                    continue
                if taken == max_entries or (size >= max_bytes and out):
                    return out, last
                size += len(seg)
                taken += 1
                out.extend(_decode_segment(idx, seg, want))
                last = idx
        return out, applied

    def digest(self) -> str:
        """sha256 of the whole log (where it starts, every entry's index and changes): equal on
        every replica at the same applied index, and independent of how rows are laid out."""
        h = hashlib.sha256()
        if not self.config.enabled:
            return h.hexdigest()
        h.update(str(self._run("SELECT pruned FROM _ddb_changes_meta WHERE id = 0")[0][0]).encode())
        for (data,) in self._run("SELECT data FROM _ddb_changes ORDER BY idx"):
            for idx, seg in _segments(data):
                body = seg[len(_packb(idx)):]     # [header, rows]: what older logs held
                h.update(idx.to_bytes(8, "big"))
                h.update(len(body).to_bytes(8, "big"))
                h.update(body)
        return h.hexdigest()


def _segments(data: bytes):
    """A row's segments, in order: (index, the segment's bytes)."""
    unpacker = msgpack.Unpacker(raw=False, use_list=True, strict_map_key=False)
    unpacker.feed(data)
    start = 0
    while start < len(data):
        idx = unpacker.unpack()
        unpacker.skip()
        end = unpacker.tell()
        yield idx, data[start:end]
        start = end


def _decode_segment(index: int, seg: bytes, want: set | None = None) -> list:
    unpacker = msgpack.Unpacker(raw=False, use_list=True, strict_map_key=False)
    unpacker.feed(seg)
    unpacker.unpack()                         # the index, known
    header, rows = unpacker.unpack()
    return _events(index, header, rows, want)


def _upgrade_one_row_per_entry(conn) -> None:
    """A log written by an older ddb held one row per entry, (idx, data = [header, rows]):
    turn each into a one-segment row of today's layout (the digest stays the same)."""
    cols = [r[1] for r in conn.execute("PRAGMA table_info(_ddb_changes)").fetchall()]
    if not cols or "n" in cols:
        return
    old = conn.execute("SELECT idx, data FROM _ddb_changes ORDER BY idx").fetchall()
    conn.execute("DROP TABLE _ddb_changes")
    conn.execute(SCHEMA)
    conn.executemany("INSERT INTO _ddb_changes(idx, n, data) VALUES (?, 1, ?)",
                     [(idx, _packb(idx) + data) for idx, data in old])


def decode(index: int, blob: bytes, want: set | None = None) -> list:
    """One entry's ``[header, rows]`` -> its events (``[index, table, op, key, old, new]``),
    optionally only those of the tables in `want`."""
    header, rows = msgpack.unpackb(blob, raw=False, use_list=True, strict_map_key=False)
    return _events(index, header, rows, want)


def _events(index: int, header: dict, rows: list, want: set | None) -> list:
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
