"""A standalone copy of the user's database (rqlite's /db/backup), made without stopping the
state machine: ddb's own tables are dropped from the copy and it is vacuumed.

A file database is read through a connection of its own holding one read transaction, so
the copy is exactly the state as of the moment it began, while the node keeps applying
entries on its own connection (WAL mode: readers never block the writer). All of it is
blocking work meant for a worker thread: SQLite's backup of a 1 GB database and the VACUUM
of the copy take seconds, which on the node's loop would stop heartbeats (this replaced a
backup stepped on the loop, followed by a VACUUM there). A ":memory:" database has no file
to read: it is copied through the state machine's connection (small by nature)."""
from __future__ import annotations

import apsw

INTERNAL_PREFIX = "_ddb_"      # sessions, the applied index: never part of a user's copy


def is_internal(name: str) -> bool:
    return name.startswith(INTERNAL_PREFIX)


def export_copy(path: str | None, conn: apsw.Connection | None, dest_path: str) -> int:
    """Write the database at `path` (or, when path is None, the one `conn` holds in memory)
    to `dest_path` without ddb's tables; return the applied index the copy is at."""
    src = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY) if path else conn
    dest = apsw.Connection(dest_path)
    try:
        if path:
            src.set_busy_timeout(5000)
            src.execute("BEGIN")                     # one snapshot for the whole copy
        (index,), = src.execute("SELECT idx FROM _ddb_applied WHERE id = 0").fetchall()
        with dest.backup("main", src, "main") as b:
            b.step(-1)
        if path:
            src.execute("COMMIT")
        names = [r[0] for r in dest.execute("SELECT name FROM sqlite_schema WHERE type='table'")
                 if is_internal(r[0])]
        for n in names:
            dest.execute(f'DROP TABLE IF EXISTS "{n}"')
        list(dest.execute("PRAGMA journal_mode=DELETE"))
        dest.execute("VACUUM")
        return index
    finally:
        dest.close()
        if path:
            src.close()
