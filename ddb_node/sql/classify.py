"""Classification before proposing, by SQLite's own judgement, never by string prefixes.

Each statement is split by SQLite's rules and prepared (never stepped) against the schema
connection with a recording authorizer: the prepared statement's read-only flag says read or
write, the authorizer's actions say DDL and reveal the forbidden (ATTACH, transaction control,
node PRAGMAs, TEMP objects, load_extension …). VACUUM, which calls no authorizer, is recognised
by its VDBE program. A syntax error is refused here; any other prepare error (``no such table``
after an ALTER or CREATE earlier in the request or in an earlier, not yet applied request) is
left for apply, where the outcome is the same on every replica.
"""
from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field

import apsw

from . import extensions, policy
from .commands import Request, validate
from .errors import BadRequest
from .limits import DEFAULT_LIMITS, Limits
from .split import split_sql

_SYNTAX = re.compile(r"syntax error|incomplete input|unrecognized token")


@dataclass(slots=True)
class StatementClass:
    statement: int          # index in request.statements
    sql: str                # this statement's text, as split by SQLite
    kind: str               # "read", "write" or "ddl"
    deferred: str | None = None   # prepare error left for apply (kind is then "write")


@dataclass(slots=True)
class Classification:
    kind: str                                   # "read" or "write"
    statements: list[StatementClass] = field(default_factory=list)
    level: str = "weak"

    @property
    def kinds(self) -> list[str]:
        return [s.kind for s in self.statements]

    @property
    def logged(self) -> bool:
        """Does the request go through the Raft log? Writes always, reads only at `strong`."""
        return self.kind == "write" or self.level == "strong"


_local = threading.local()


def _scratch() -> apsw.Connection:
    c = getattr(_local, "conn", None)
    if c is None:
        c = _local.conn = apsw.Connection(":memory:")
    return c


class _Abort(Exception):
    pass


def _prepare(conn: apsw.Connection, sql: str, owner=None):
    """Prepare ``sql`` (one statement) without running it -> (readonly, actions).

    With ``owner`` (the state machine whose connection this is) its standing authorizer
    records the actions into ``owner._recording``; without, a recording authorizer is set
    for the prepare and the old one put back. Setting an authorizer expires every prepared
    statement of the connection, so the owner's way keeps apply's statements cached."""
    actions: list[tuple] = []
    info = {}

    def auth(code, a3, a4, db, trig):
        actions.append((code, a3, a4, db, trig))
        return apsw.SQLITE_OK

    def tracer(cursor, text, bindings):
        info["readonly"] = cursor.is_readonly
        return False

    if owner is None:
        old = conn.authorizer
        conn.authorizer = auth
    else:
        owner._recording = actions
    cur = conn.cursor()
    cur.exec_trace = tracer
    try:
        cur.execute(sql, apsw._null_bindings, can_cache=False)
    except apsw.ExecTraceAbort:
        pass
    finally:
        if owner is None:
            conn.authorizer = old
        else:
            owner._recording = None
        cur.exec_trace = None
    return info.get("readonly", True), actions


class PrepareCache:
    """What preparing each statement text told (`_prepare`'s answer and whether it is a
    VACUUM) against one connection, kept while that connection's schema is unchanged.

    Preparing is most of a small request's classification (a profile of `level=none` reads
    over HTTP: 15 % of the node's CPU), and clients send the same few statement texts over
    and over. The answer depends only on the text and the schema: the owner passes a
    schema generation (the state machine counts the DDL its connection prepares) and a new
    one empties the cache. `judged` keeps `classify`'s whole verdict per (text, strong):
    the pieces SQLite splits it into, their kinds, or the refusal (policy, extension,
    VACUUM), so a repeated text costs a dict lookup. Prepare errors are not kept: a
    deferred "no such table" is judged again each time."""

    def __init__(self, size: int = 4096, owner=None):
        self.size = size
        self.owner = owner          # see _prepare
        self.version = None
        self.entries: dict[str, tuple] = {}
        self.judged: dict[tuple, object] = {}     # (text, strong) -> classify's verdict

    def at_schema(self, v: int) -> "PrepareCache":
        """Use for a connection whose schema generation is now `v` -> self."""
        if v != self.version:
            self.entries.clear()
            self.judged.clear()
            self.version = v
        return self

    def prepare(self, conn: apsw.Connection, sql: str) -> tuple:
        """-> (readonly, actions, is_vacuum); raises what `_prepare` raises."""
        hit = self.entries.get(sql)
        if hit is None:
            readonly, actions = _prepare(conn, sql, self.owner)
            vacuum = not actions and not readonly and _is_vacuum(conn, sql)
            hit = (readonly, tuple(actions), vacuum)
            if len(self.entries) >= self.size:
                self.entries.clear()
            self.entries[sql] = hit
        return hit


def _prepare_once(conn: apsw.Connection, sql: str) -> tuple:
    readonly, actions = _prepare(conn, sql)
    return readonly, actions, not actions and not readonly and _is_vacuum(conn, sql)


_DUMP_PRAGMAS = ("foreign_keys", "writable_schema")


def is_dump_control(sql: str) -> bool:
    """Is this statement of a SQL dump one a load drops -- transaction control (BEGIN,
    COMMIT, END, ROLLBACK, SAVEPOINT, RELEASE) or the dump's foreign_keys / writable_schema
    pragmas? Judged by SQLite's authorizer on a scratch connection, as everything here (a
    statement that does not prepare there, e.g. an INSERT into a table of the dump, is not)."""
    try:
        _, actions = _prepare(_scratch(), sql)
    except apsw.Error:
        return False
    return any(code in (apsw.SQLITE_TRANSACTION, apsw.SQLITE_SAVEPOINT)
               or (code == apsw.SQLITE_PRAGMA and (a3 or "").lower() in _DUMP_PRAGMAS)
               for code, a3, _a4, _db, _trig in actions)


def _is_vacuum(conn: apsw.Connection, sql: str) -> bool:
    try:
        cur = conn.cursor()
        return any(row[1] == "Vacuum" for row in cur.execute(sql, apsw._null_bindings, explain=1,
                                                                can_cache=False))
    except apsw.Error:
        return False


class _Refused:
    """A statement's cached refusal (policy, extension or VACUUM): raised again per request."""
    __slots__ = ("reason",)

    def __init__(self, reason: str):
        self.reason = reason


def _judge(conn, sql: str, strong: bool, nondeterministic, prepare):
    """What one request statement is -> a tuple of (piece, kind, deferred), or _Refused.
    Raises BadRequest (statement index 0, the caller re-numbers) for an empty statement or a
    syntax error; a deferred prepare error marks the answer uncacheable (third element)."""
    pieces = split_sql(sql)
    if not pieces:
        raise BadRequest("is empty")
    out = []
    cacheable = True
    for piece in pieces:
        try:
            readonly, actions, vacuum = prepare(conn, piece)
        except apsw.SQLError as e:
            msg = str(e).removeprefix("SQLError: ")
            if _SYNTAX.search(msg):
                raise BadRequest(msg, 0, msg) from None
            out.append((piece, "write", msg))
            cacheable = False       # judged again each time ("no such table" may pass later)
            continue
        except apsw.Error as e:
            raise BadRequest(str(e), 0, str(e)) from None
        for act in actions:
            reason = policy.refusal(*act)
            if not reason and act[0] == apsw.SQLITE_FUNCTION and \
                    (not readonly or strong):   # logged: applied everywhere
                reason = extensions.refusal(act[2], nondeterministic)
            if reason:
                return _Refused(reason), cacheable
        if vacuum:
            return _Refused("VACUUM is not allowed: it rewrites the node's database file (and "
                            "VACUUM INTO writes a file on the node)"), cacheable
        if readonly:
            kind = "read"
        elif any(policy.is_ddl(a[0]) for a in actions):
            kind = "ddl"
        else:
            kind = "write"
        out.append((piece, kind, None))
    return tuple(out), cacheable


def classify(request: Request, schema_conn: apsw.Connection | None = None,
             limits: Limits = DEFAULT_LIMITS, nondeterministic=frozenset(),
             cache: PrepareCache | None = None) -> Classification:
    validate(request, limits)
    conn = schema_conn if schema_conn is not None else _scratch()
    prepare = _prepare_once if cache is None else cache.prepare
    judged = None if cache is None else cache.judged
    strong = request.level == "strong"
    out = Classification("read", level=request.level)
    append = out.statements.append
    for i, st in enumerate(request.statements):
        key = (st.sql, strong)
        verdict = None if judged is None else judged.get(key)
        if verdict is None:
            try:
                verdict, cacheable = _judge(conn, st.sql, strong, nondeterministic, prepare)
            except BadRequest as e:
                msg = e.args[0] if e.args else str(e)
                raise BadRequest(f"statement {i} {msg}" if msg == "is empty"
                                 else f"statement {i}: {msg}", i,
                                 None if msg == "is empty" else msg) from None
            if cacheable and judged is not None:
                if len(judged) >= cache.size:
                    judged.clear()
                judged[key] = verdict
        if verdict.__class__ is _Refused:
            raise BadRequest(f"statement {i}: {verdict.reason}", i, verdict.reason)
        for piece, kind, deferred in verdict:
            if kind != "read":
                out.kind = "write"
            append(StatementClass(i, piece, kind, deferred))
    return out
