"""/db/backup: a copy of the user's database (SQLite file or SQL text) as of the leader's
state now, made by the state machine (`StateMachine.export_copy`) off the node's loop."""
from __future__ import annotations

import asyncio
import os
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import apsw


from ddb_node.protocol import RequestError
from ddb_node.sql.export import is_internal
from ddb_node.raft import Role

from . import format as fmt
from .errors import HttpError
from .endpoint import (DEFAULT_HEADERS, Endpoint, error_response, flags_of, redirect_to_leader)
from .server import Response



class BackupEndpoint(Endpoint):
    perms = ("backup",)

    async def handle(self, service, req):
        flags = flags_of(req)
        s = service.server
        if not flags.noleader:
            # the leader's state as of now: confirm the read index (also from a follower)
            resp = await s.handle({"op": "read_index", "timeout": flags.timeout or 10.0})
            if not resp.get("ok"):
                e = RequestError.from_dict(resp.get("error") or {})
                if flags.redirect and s.raft.role != Role.LEADER:
                    err = HttpError(301, e.message)
                    err.leader = s.leader_info()
                    return await redirect_to_leader(service, req, err)
                return error_response(service, HttpError(
                    503, "leader not found" if e.type == "NoLeader" else e.message))
        path = await self._copy(s)
        as_sql = flags.fmt == "sql"
        ctype = "application/sql" if as_sql and not flags.compress else "application/octet-stream"
        name = "sql" if as_sql else "sqlite3"
        service.metrics.store["num_backups"] += 1
        # the copy is on disk; the answer is read (dumped, compressed) from it a chunk at a
        # time on a worker thread, so a database of any size costs the node a few chunks
        length = None if as_sql or flags.compress else os.path.getsize(path)
        chunks = _backup_chunks(path, as_sql, flags.tables or None, flags.compress)
        return Response(200, headers=[("Content-Type", ctype)] + DEFAULT_HEADERS
                        + [("Content-Disposition", f'attachment; filename="backup.{name}"')],
                        stream=on_worker_thread(chunks, after=lambda: os.remove(path)),
                        length=length)

    @staticmethod
    async def _copy(s) -> str:
        """The state machine's copy (ddb's own tables dropped), made on a worker thread."""
        fd, tmp = tempfile.mkstemp(prefix=".ddb-backup-", suffix=".db",
                                   dir=os.path.dirname(os.path.abspath(s.sm.path))
                                   if not s.sm.memory else None)
        os.close(fd)
        try:
            if s.sm.memory:
                s.sm.export_copy(tmp)       # through the live connection: on this thread
            else:
                await asyncio.get_running_loop().run_in_executor(None, s.sm.export_copy, tmp)
        except BaseException:
            os.remove(tmp)
            raise
        return tmp


CHUNK = 1 << 20


def _backup_chunks(path: str, as_sql: bool, tables, compress: bool):
    """The answer's bytes from the copy at `path`, about a megabyte at a time (a worker
    thread's job)."""
    gz = zlib.compressobj(6, zlib.DEFLATED, 31) if compress else None   # 31: the gzip format
    for chunk in (_dump_chunks(path, tables) if as_sql else _file_chunks(path)):
        if gz is not None:
            chunk = gz.compress(chunk)
        if chunk:
            yield chunk
    if gz is not None:
        yield gz.flush()


def _file_chunks(path: str):
    with open(path, "rb") as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _dump_chunks(path: str, tables):
    c = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
    try:
        buf, size = [], 0
        for line in fmt.sql_dump_lines(c, tables, is_internal):
            b = line.encode("utf-8") + b"\n"
            buf.append(b)
            size += len(b)
            if size >= CHUNK:
                yield b"".join(buf)
                buf, size = [], 0
        yield b"".join(buf)
    finally:
        c.close()


async def on_worker_thread(gen, after=None):
    """An async iterator over a blocking generator, each step on a thread of its own (one
    executor per stream, so the generator is never touched by two threads at once); closing
    it closes the generator there, then calls `after()` (also when it never started)."""
    loop = asyncio.get_running_loop()
    pool = ThreadPoolExecutor(1, thread_name_prefix="ddb-stream")
    done = object()
    try:
        while (chunk := await loop.run_in_executor(pool, next, gen, done)) is not done:
            yield chunk
    finally:
        # after a cancellation the step in flight may still be running: close behind it
        pool.submit(_close, gen, after)
        pool.shutdown(wait=False)


def _close(gen, after) -> None:
    try:
        gen.close()
    finally:
        if after is not None:
            after()
