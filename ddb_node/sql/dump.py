"""A full, deterministic, byte-exact text dump of a database, for comparing replicas."""
from __future__ import annotations

import apsw


def _fmt(v) -> str:
    if v is None:
        return "NULL"
    if type(v) is int:
        return f"i:{v}"
    if type(v) is float:
        return f"r:{v.hex()}"
    if type(v) is str:
        return "t:" + v.encode("utf-8", "surrogatepass").hex()
    return "b:" + bytes(v).hex()


class _Uncached:
    """Uncached statements: nothing prepared here can be reused by user SQL."""

    def __init__(self, conn):
        self._conn = conn

    def execute(self, sql):
        return self._conn.cursor().execute(sql, can_cache=False)


def dump(connection: apsw.Connection) -> str:
    out = []
    conn = _Uncached(connection)
    for name in ("user_version", "application_id", "page_size", "encoding", "freelist_count"):
        out.append(f"PRAGMA {name} = {conn.execute(f'PRAGMA {name}').fetchall()[0][0]}")
    objs = conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_schema ORDER BY type, name").fetchall()
    for typ, name, tbl, sql in objs:
        out.append(f"{typ} {name} on {tbl}: {sql}")
    for typ, name, tbl, sql in objs:
        if typ != "table" or name.startswith("sqlite_") or (sql or "").upper().startswith("CREATE VIRTUAL"):
            continue
        q = name.replace('"', '""')
        has_rowid = not (sql or "").upper().rstrip().endswith("WITHOUT ROWID")
        cols = conn.execute(f'SELECT count(*) FROM pragma_table_info("{q}")').fetchall()[0][0]
        order = "rowid" if has_rowid else ", ".join(str(i + 1) for i in range(cols))
        sel = f'SELECT {"rowid, " if has_rowid else ""}* FROM "{q}" ORDER BY {order}'
        out.append(f"-- rows of {name}")
        for row in conn.execute(sel):
            out.append(" | ".join(_fmt(v) for v in row))
    return "\n".join(out) + "\n"
