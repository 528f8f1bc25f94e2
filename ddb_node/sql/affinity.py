"""SQLite's type affinity rules (https://sqlite.org/datatype3.html §3.1) and storage classes."""
from __future__ import annotations

from functools import lru_cache

INTEGER, TEXT, BLOB, REAL, NUMERIC = "INTEGER", "TEXT", "BLOB", "REAL", "NUMERIC"


@lru_cache(maxsize=4096)
def affinity_of(decltype: str | None) -> str:
    """Rules applied in order: INT -> INTEGER; CHAR, CLOB, TEXT -> TEXT; BLOB or no type -> BLOB;
    REAL, FLOA, DOUB -> REAL; otherwise NUMERIC. ("FLOATING POINT" contains INT: INTEGER;
    "STRING" matches nothing: NUMERIC.)"""
    if not decltype:
        return BLOB
    t = decltype.upper()
    if "INT" in t:
        return INTEGER
    if "CHAR" in t or "CLOB" in t or "TEXT" in t:
        return TEXT
    if "BLOB" in t:
        return BLOB
    if "REAL" in t or "FLOA" in t or "DOUB" in t:
        return REAL
    return NUMERIC


def storage_class(v) -> str:
    t = type(v)
    if v is None:
        return "null"
    if t is int:
        return "integer"
    if t is float:
        return "real"
    if t is str:
        return "text"
    return "blob"


# Storage classes a column of each affinity may hold without breaking it (NULL always may).
EXPECTED = {
    INTEGER: frozenset({"integer", "null"}),
    REAL: frozenset({"real", "null"}),
    NUMERIC: frozenset({"integer", "real", "null"}),
    TEXT: frozenset({"text", "null"}),
    BLOB: None,   # no affinity: anything goes
}
