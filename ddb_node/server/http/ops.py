"""rqlite's data and maintenance operations: ``/db/load``, ``/boot``, ``/snapshot``, ``/reap``.

A SQLite file sent to ``/db/load`` or ``/boot`` is checked and turned into SQL on a worker
thread (writing it out, ``quick_check`` and the dump of a large file take seconds), then
goes through the log as one entry, so every replica applies the same statements. Snapshot
and reap are the Replica's operations (``handle``), on the node that was asked, as in
rqlite.
"""
from __future__ import annotations

import asyncio
import os
import tempfile
import time

import apsw

from ddb_node.raft import Role
from ddb_node.sql.classify import is_dump_control
from ddb_node.sql.export import is_internal
from ddb_node.sql.split import split_sql

from . import format as fmt
from .endpoint import DEFAULT_HEADERS, Endpoint, answer_error, error_response, flags_of, send_json
from .errors import HttpError
from .server import Response

SQLITE_MAGIC = b"SQLite format 3\x00"
skip_internal = is_internal      # ddb's own tables (sessions, applied index): never dumped nor replaced


def sql_statements(text: str) -> list:
    """A dump's text -> statements; its own transaction control is dropped (the load is one
    transaction already) and so is writable_schema."""
    return [[piece] for piece in split_sql(text) if not is_dump_control(piece)]


def file_statements(data: bytes, tmp_dir: str | None) -> list:
    """A SQLite file's bytes -> the statements that rebuild its user tables (worker thread)."""
    fd, tmp = tempfile.mkstemp(prefix=".ddb-load-", suffix=".db", dir=tmp_dir)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        try:
            c = apsw.Connection(tmp, flags=apsw.SQLITE_OPEN_READONLY)
            try:
                if c.execute("PRAGMA quick_check").fetchall() != [("ok",)]:
                    raise HttpError(400, "the SQLite file fails quick_check")
                text = fmt.sql_dump(c, None, skip_internal)
            finally:
                c.close()
        except apsw.Error as e:
            raise HttpError(400, f"not a usable SQLite file: {e}") from None
    finally:
        for suffix in ("", "-wal", "-shm", "-journal"):
            try:
                os.remove(tmp + suffix)
            except FileNotFoundError:
                pass
    return sql_statements(text)


def existing_drops(server) -> list:
    """DROP statements for every user table and view (a file load replaces them all)."""
    conn = server.sm.connection
    drops = []
    for typ, name in conn.cursor().execute(
            "SELECT type, name FROM sqlite_schema WHERE type IN ('table','view') "
            "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_ddb\\_%' ESCAPE '\\'",
            can_cache=False):
        drops.append([f'DROP {typ.upper()} IF EXISTS "' + name.replace('"', '""') + '"'])
    return drops


async def statements_from_file(server, data: bytes) -> list:
    tmp_dir = None if server.sm.memory else os.path.dirname(os.path.abspath(server.sm.path))
    stmts = await asyncio.get_running_loop().run_in_executor(None, file_statements, data, tmp_dir)
    return existing_drops(server) + stmts


def last_result(results: list[dict]) -> dict:
    """rqlite runs a dump as one multi-statement string, so its answer is SQLite's state after
    the last statement: the connection's last insert rowid and the row count of the last
    statement that changed rows (DDL leaves both as they were)."""
    out = {}
    for r in results:
        if r.get("last_insert_id"):
            out["last_insert_id"] = r["last_insert_id"]
        if r.get("rows_affected"):
            out["rows_affected"] = r["rows_affected"]
    return out


class LoadEndpoint(Endpoint):
    """POST /db/load: a SQLite database file (replaces every user table) or SQL text (a dump,
    executed as one transaction); both go through the log as one entry. A dump answers with
    its last statement's result, as rqlite does."""
    perms = ("load",)
    methods = ("POST",)
    body_limit = "max_load"

    async def handle(self, service, req):
        flags = flags_of(req)
        data = req.body
        t0 = time.perf_counter()
        is_file = data[:16] == SQLITE_MAGIC
        try:
            if is_file:
                stmts = await statements_from_file(service.server, data)
            else:
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise HttpError(400, "load data is neither a SQLite file nor UTF-8 SQL text") from None
                # splitting and judging each statement of a large dump (~3 µs each, 64 MB
                # of SQL is ~500k statements) is a worker thread's job, as for a file
                stmts = await asyncio.get_running_loop().run_in_executor(None, sql_statements, text)
            if not stmts:
                raise HttpError(400, "no statements")
            flags.transaction = True
            ran = await service.run_statements(stmts, flags)
        except HttpError as e:
            if e.status == 200:
                return send_json({"error": e.message}, flags)
            return await answer_error(service, req, e)
        service.metrics.store["num_loads"] += 1
        results = [fmt.exec_result(r, False) for g in ran["results"] for r in g]
        errors = [r for r in results if "error" in r]
        if errors:
            out = {"results": errors}
        elif is_file:
            out = {"results": [{}]}
        else:
            out = {"results": [last_result(results)]}
        if flags.timings:
            out["time"] = time.perf_counter() - t0
        return send_json(out, flags)


class BootEndpoint(Endpoint):
    """POST /boot: rqlite's restore of a SQLite file into a single-node cluster. Refused,
    as rqlite refuses it, on a node that is not the leader or not alone. rqlite swaps the
    file in under Raft and snapshots; ddb loads it through the log like /db/load (same end
    state, and a follower added later gets it from a snapshot)."""
    perms = ("load",)
    methods = ("POST",)
    body_limit = "max_load"

    async def handle(self, service, req):
        s = service.server
        if req.body[:16] != SQLITE_MAGIC:
            return error_response(service, HttpError(400, "invalid SQLite data"))
        if s.raft.role != Role.LEADER:
            return error_response(service, HttpError(503, "not leader"))
        if set(s.raft.voters) | set(s.raft.learners) != {s.id}:
            return error_response(service, HttpError(503, "not single-node"))
        flags = fmt.Flags({})
        flags.transaction = True
        try:
            stmts = await statements_from_file(s, req.body)
            ran = await service.run_statements(stmts, flags)
        except HttpError as e:
            return error_response(service, HttpError(e.status if e.status != 200 else 503, e.message))
        failed = [r for g in ran["results"] for r in g if r.get("error") is not None]
        if failed:
            return error_response(service, HttpError(503, failed[0]["error"]))
        service.metrics.store["num_boots"] += 1
        return Response(200, b"", DEFAULT_HEADERS)


def _trailing_logs(req) -> int | None:
    raw = req.arguments.get("trailing_logs")
    if not raw:
        return None
    text = raw[-1].decode("utf-8", "replace").strip()
    if not text.isdigit():
        raise HttpError(400, f"trailing_logs must be a non-negative integer, not {text!r}")
    return int(text)


class SnapshotEndpoint(Endpoint):
    """POST /snapshot[?trailing_logs=N]: snapshot this node now and compact its log (keeping
    N entries behind the snapshot). rqlite: 200 with no body, 204 when nothing is new."""
    perms = ("snapshot",)
    methods = ("POST",)

    async def handle(self, service, req):
        body = {"op": "snapshot"}
        trailing = _trailing_logs(req)
        if trailing is not None:
            body["trailing"] = trailing
        try:
            resp = await service.call(body)
        except HttpError as e:
            service.metrics.store["num_user_snapshots_failed"] += 1
            return error_response(service, HttpError(500 if e.status == 200 else e.status, e.message))
        if not resp.get("taken"):
            return Response(204, b"", DEFAULT_HEADERS)
        service.metrics.store["num_user_snapshots"] += 1
        return Response(200, b"", DEFAULT_HEADERS)


class ReapEndpoint(Endpoint):
    """POST /reap: rqlite's snapshot-store reap on this node -> {"snapshots_reaped": n,
    "wals_checkpointed": c} (ddb: snapshot files nothing refers to, and the user database's
    WAL checkpointed into it)."""
    perms = ("snapshot",)
    methods = ("POST",)

    async def handle(self, service, req):
        try:
            resp = await service.call({"op": "reap"})
        except HttpError as e:
            return error_response(service, HttpError(500 if e.status == 200 else e.status, e.message))
        out = {"snapshots_reaped": resp["snapshots_reaped"],
               "wals_checkpointed": resp["wals_checkpointed"]}
        # Go's json.Encoder: compact, and a newline after the value
        return Response(200, fmt.encode_json(out) + b"\n",
                        [("Content-Type", "application/json; charset=utf-8")] + DEFAULT_HEADERS)
