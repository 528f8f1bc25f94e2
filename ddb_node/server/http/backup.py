"""/db/backup: a copy of the user's database (SQLite file or SQL text) as of the leader's
state now, made by the state machine (`StateMachine.export_copy`) off the node's loop."""
from __future__ import annotations

import asyncio
import gzip
import os
import tempfile

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
        try:
            # the dump, the read and the compression of a large copy take seconds: off the loop
            data = await asyncio.get_running_loop().run_in_executor(
                None, _backup_body, path, flags.fmt == "sql", flags.tables or None, flags.compress)
        finally:
            os.remove(path)
        ctype = "application/sql" if flags.fmt == "sql" and not flags.compress \
            else "application/octet-stream"
        name = "sql" if flags.fmt == "sql" else "sqlite3"
        service.metrics.store["num_backups"] += 1
        return Response(200, data, [("Content-Type", ctype)] + DEFAULT_HEADERS
                        + [("Content-Disposition", f'attachment; filename="backup.{name}"')])

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


def _backup_body(path: str, as_sql: bool, tables, compress: bool) -> bytes:
    """The answer's bytes from the copy at `path` (a worker thread's job)."""
    if as_sql:
        c = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
        try:
            data = fmt.sql_dump(c, tables, is_internal).encode("utf-8")
        finally:
            c.close()
    else:
        with open(path, "rb") as f:
            data = f.read()
    return gzip.compress(data) if compress else data
