"""The log entry codec: msgpack with a version marker.

Layout (a msgpack array, compact and fast to decode on every replica):
``["ddb-sql", 1, timestamp_ms, seed, session, transaction, level, timeout, statements]``,
optionally followed by an interactive transaction's commit condition ``[index, [tables]]``
or ``[index, [tables], term]`` (sql/transactions.py), where ``session`` is ``None`` or ``[client_id, seq]`` and each statement is ``[sql]`` or
``[sql, params]``. Decoding is strict: anything else raises ``EntryDecodeError`` (which the
state machine turns into an entry-level error, identically on every replica).
"""
from __future__ import annotations

import msgpack

from .commands import LEVELS, Request, Statement, validate
from .errors import BadRequest, SqlError
from .limits import DEFAULT_LIMITS, Limits

MAGIC = "ddb-sql"
VERSION = 1


class EntryDecodeError(SqlError):
    """The payload is not a ddb SQL entry of a known version."""


_packer = msgpack.Packer(use_bin_type=True)


def encode_entry(request: Request, *, timestamp_ms: int, seed: int,
                 session: tuple[str, int] | None = None, limits: Limits = DEFAULT_LIMITS,
                 check: bool = True, condition: tuple | None = None) -> bytes:
    if check:
        validate(request, limits)
    if type(timestamp_ms) is not int or type(seed) is not int:
        raise BadRequest("timestamp_ms and seed must be integers")
    if not 0 <= seed < 2 ** 64:
        raise BadRequest("seed must be in [0, 2**64)")
    if session is not None:
        cid, seq = session
        if not isinstance(cid, str) or type(seq) is not int or seq < 0:
            raise BadRequest("session must be (client_id: str, seq: int >= 0)")
        session = [cid, seq]
    stmts = [[s.sql] if s.params is None else [s.sql, s.params] for s in request.statements]
    fields = [MAGIC, VERSION, timestamp_ms, seed, session, bool(request.transaction),
              request.level, request.timeout, stmts]
    if condition is not None:
        cond = [int(condition[0]), sorted(set(condition[1]))]
        if len(condition) > 2 and condition[2] is not None:
            cond.append(int(condition[2]))     # the term the transaction began in
        fields.append(cond)
    data = _packer.pack(fields)
    if len(data) > limits.max_entry_bytes:
        raise BadRequest(f"encoded request of {len(data)} bytes exceeds the limit of {limits.max_entry_bytes}")
    return data


def decode_entry(payload: bytes):
    """-> (request, timestamp_ms, seed, session). Raises EntryDecodeError.

    The apply path's validation (``decode_fast``), then the objects built from it."""
    _, _, ts, seed, session, tx, level, timeout, stmts = decode_fast(payload)[:9]
    if session is not None:
        session = (session[0], session[1])
    statements = [Statement(s[0], s[1] if len(s) == 2 else None) for s in stmts]
    return Request(statements, tx, level, timeout), ts, seed, session


def decode_fast(payload: bytes):
    """The apply path's decoder: the raw list (header fields, statements as [sql, params?]).

    Validates exactly what ``decode_entry`` validates, without building objects."""
    try:
        obj = msgpack.unpackb(payload, raw=False, use_list=True, strict_map_key=True)
    except Exception as e:
        raise EntryDecodeError(f"undecodable entry payload: {type(e).__name__}: {e}") from None
    if not (type(obj) is list and (len(obj) == 9 or len(obj) == 10) and obj[0] == MAGIC):
        raise EntryDecodeError("not a ddb SQL entry (missing version marker)")
    if obj[1] != VERSION:
        raise EntryDecodeError(f"unsupported ddb SQL entry version {obj[1]!r} (this node reads {VERSION})")
    _, _, ts, seed, session, tx, level, timeout, stmts = obj[:9]
    if len(obj) == 10:
        cond = obj[9]
        if not (type(cond) is list and (len(cond) == 2 or (len(cond) == 3 and type(cond[2]) is int))
                and type(cond[0]) is int
                and type(cond[1]) is list and all(type(t) is str for t in cond[1])):
            raise EntryDecodeError("malformed transaction condition in ddb SQL entry")
    if type(ts) is not int or type(seed) is not int or type(tx) is not bool or type(stmts) is not list \
            or level not in LEVELS:
        raise EntryDecodeError("malformed ddb SQL entry header")
    if session is not None and not (type(session) is list and len(session) == 2
                                    and type(session[0]) is str and type(session[1]) is int):
        raise EntryDecodeError("malformed session in ddb SQL entry")
    for s in stmts:
        if type(s) is not list or not s or type(s[0]) is not str:
            raise EntryDecodeError("malformed statement in ddb SQL entry")
        n = len(s)
        if n != 1 and (n != 2 or (type(s[1]) is not list and type(s[1]) is not dict and s[1] is not None)):
            raise EntryDecodeError("malformed statement in ddb SQL entry")
    return obj
