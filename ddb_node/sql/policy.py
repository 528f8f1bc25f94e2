"""What SQL may do on a replica, decided from SQLite's authorizer callbacks.

The same policy runs twice: on the leader while classifying (so the client gets a clear
error and nothing enters the log) and on every replica while applying (an authorizer that
denies), so an entry that slipped past classification still fails identically everywhere.
"""
from __future__ import annotations

import apsw

INTERNAL_PREFIX = "_ddb_"

TXN_MESSAGE = ("transaction control statements ({what}) are not allowed in a request: "
               "send the statements as one request with transaction=True to run them atomically")

# PRAGMAs that change the node (journaling, syncing, locking, the WAL, memory, files):
NODE_PRAGMAS = {
    "journal_mode", "journal_size_limit", "synchronous", "locking_mode", "wal_checkpoint",
    "wal_autocheckpoint", "fullfsync", "checkpoint_fullfsync", "mmap_size", "temp_store",
    "temp_store_directory", "data_store_directory", "cache_size", "cache_spill", "page_size",
    "auto_vacuum", "busy_timeout", "query_only", "read_uncommitted", "writable_schema",
    "schema_version", "optimize", "shrink_memory", "soft_heap_limit", "hard_heap_limit",
    "threads", "analysis_limit", "incremental_vacuum", "max_page_count", "secure_delete",
    "cell_size_check", "trusted_schema",
}
# PRAGMAs whose value is stored in the database file: replicated writes.
DATA_PRAGMAS = {"user_version", "application_id"}
# Informational PRAGMAs that take an argument (a table, an index …) and only read.
INFO_ARG_PRAGMAS = {
    "table_info", "table_xinfo", "table_list", "index_info", "index_xinfo", "index_list",
    "foreign_key_list", "foreign_key_check", "integrity_check", "quick_check",
}
FORBIDDEN_FUNCTIONS = {"load_extension": "load_extension() would load code into the node"}

_TEMP_CREATES = {apsw.SQLITE_CREATE_TEMP_TABLE, apsw.SQLITE_CREATE_TEMP_INDEX,
                 apsw.SQLITE_CREATE_TEMP_TRIGGER, apsw.SQLITE_CREATE_TEMP_VIEW}
_DDL = {apsw.SQLITE_CREATE_TABLE, apsw.SQLITE_CREATE_INDEX, apsw.SQLITE_CREATE_TRIGGER,
        apsw.SQLITE_CREATE_VIEW, apsw.SQLITE_DROP_TABLE, apsw.SQLITE_DROP_INDEX,
        apsw.SQLITE_DROP_TRIGGER, apsw.SQLITE_DROP_VIEW, apsw.SQLITE_ALTER_TABLE,
        apsw.SQLITE_CREATE_VTABLE, apsw.SQLITE_DROP_VTABLE, apsw.SQLITE_REINDEX, apsw.SQLITE_ANALYZE}
DDL_CODES = frozenset(_DDL)
_WRITES_BY_TABLE = {apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE,
                    apsw.SQLITE_DROP_TABLE, apsw.SQLITE_CREATE_TABLE}
_BY_FOURTH = {apsw.SQLITE_CREATE_INDEX, apsw.SQLITE_CREATE_TRIGGER, apsw.SQLITE_ALTER_TABLE,
              apsw.SQLITE_DROP_INDEX, apsw.SQLITE_DROP_TRIGGER}


def _internal(name) -> bool:
    return isinstance(name, str) and name.lower().startswith(INTERNAL_PREFIX)


# Actions no policy refuses: most of the authorizer's calls (a column read, a SELECT), so
# they are answered first. The codes are module constants: `apsw.X` is a module lookup
# through apsw's own getattr, several per call of the authorizer, which SQLite calls a few
# times for every statement it prepares (each read of an uncached statement text).
_ALWAYS_ALLOWED = frozenset((apsw.SQLITE_READ, apsw.SQLITE_SELECT, apsw.SQLITE_RECURSIVE))
_TRANSACTION, _SAVEPOINT = apsw.SQLITE_TRANSACTION, apsw.SQLITE_SAVEPOINT
_ATTACH, _DETACH, _PRAGMA, _FUNCTION = (apsw.SQLITE_ATTACH, apsw.SQLITE_DETACH, apsw.SQLITE_PRAGMA,
                                        apsw.SQLITE_FUNCTION)
_ROW_WRITES = frozenset((apsw.SQLITE_INSERT, apsw.SQLITE_UPDATE, apsw.SQLITE_DELETE))


def refusal(code: int, a3, a4, dbname, trigview) -> str | None:
    """A clear reason why this action is refused, or None when it is allowed."""
    if code in _ALWAYS_ALLOWED:
        return None
    if code == _TRANSACTION or code == _SAVEPOINT:
        what = "SAVEPOINT/RELEASE/ROLLBACK TO" if code == _SAVEPOINT else "BEGIN/COMMIT/ROLLBACK"
        return TXN_MESSAGE.format(what=what)
    if code == _ATTACH:
        return "ATTACH is not allowed: it would change the node's connection, not replicated data"
    if code == _DETACH:
        return "DETACH is not allowed: it would change the node's connection, not replicated data"
    if code == _PRAGMA:
        name = (a3 or "").lower()
        if name in DATA_PRAGMAS or name in INFO_ARG_PRAGMAS:
            return None
        if name in NODE_PRAGMAS:
            return (f"PRAGMA {name} controls the node (journaling, syncing, locking, WAL, memory "
                    "or files) and is managed by ddb; it cannot be run through SQL")
        if a4 is not None:
            return (f"PRAGMA {name} = {a4} would change connection state, which is not replicated "
                    "(it would be lost on restart); only PRAGMA user_version and application_id "
                    "may be set")
        return None
    if code == _FUNCTION:
        return FORBIDDEN_FUNCTIONS.get((a4 or "").lower())
    if code in _TEMP_CREATES:
        return ("TEMP tables, views, indexes and triggers are not allowed: they belong to one "
                "connection, are not replicated and vanish on restart")
    # ALTER TABLE ... RENAME rewrites sqlite_temp_master's triggers that name the table (there
    # are none: TEMP objects are refused); SQLite itself refuses any direct write to it
    if dbname == "temp" and a3 != "sqlite_temp_master" and code in _ROW_WRITES:
        return ("TEMP tables, views, indexes and triggers are not allowed: they belong to one "
                "connection, are not replicated and vanish on restart")
    if code in _WRITES_BY_TABLE and _internal(a3) or code in _BY_FOURTH and _internal(a4):
        return f"tables named {INTERNAL_PREFIX}* are reserved for ddb's own bookkeeping"
    return None


def is_ddl(code: int) -> bool:
    return code in _DDL
