"""Reads off the event loop: the node's worker threads run the queries the Replica decided to
serve, so a big or slow read never delays a heartbeat, an election or another request.

Each worker thread owns a `sql.reader.Reader` (a read-only connection to data.db; WAL lets
it read while apply writes). A read with `chunk_rows` opens a cursor (its own reader and
read transaction, so every chunk comes from one consistent state) and answers with the first
chunk plus a cursor id; `fetch` returns the next chunk, `close` drops it. Cursors idle for
`CURSOR_IDLE_S` are closed (a held read transaction keeps the WAL from being checkpointed),
and at most `MAX_CURSORS` are open at once.

The conversion of rows into result dicts happens in the worker too; only handing the
finished answer back touches the loop.
"""
from __future__ import annotations

import asyncio
import logging
import itertools
import threading
import time

from ddb_node.protocol import RequestError, bad_request
from ddb_node.sql import SQL_FAILURES
from ddb_node.sql.reader import Cursor, Reader, StaleReader

from .lanes import Lane

CURSOR_IDLE_S = 60.0
MAX_CURSORS = 32

log = logging.getLogger("ddb.reads")


def _error(e: Exception) -> dict:
    if isinstance(e, RequestError):
        return {"ok": False, "error": e.to_dict()}
    st = getattr(e, "statement", None)
    return {"ok": False, "error": bad_request(str(e), st, getattr(e, "detail", None)).to_dict()}


class ReadService:
    def __init__(self, path: str, node_id: int, threads: int = 4, extension_files: tuple = ()):
        self.path = path
        self.node_id = node_id
        self.extension_files = tuple(extension_files)
        self.pool = Lane(threads, "ddb-read")
        self._local = threading.local()
        self._readers: list[Reader] = []
        self._lock = threading.Lock()
        self.cursors: dict[int, list] = {}        # id -> [Cursor, last used (monotonic)]
        self._ids = itertools.count(1)
        self.counters = {"reads_offloaded": 0, "cursors_opened": 0, "chunks_sent": 0}

    def _reader(self) -> Reader:
        r = getattr(self._local, "reader", None)
        if r is None:
            r = self._local.reader = Reader(self.path, extension_files=self.extension_files)
            with self._lock:
                self._readers.append(r)
        return r

    def _drop_reader(self) -> None:
        """Close this thread's reader; the next read opens a fresh connection."""
        r = getattr(self._local, "reader", None)
        self._local.reader = None
        if r is not None:
            with self._lock:
                if r in self._readers:
                    self._readers.remove(r)
            try:
                r.close()
            except Exception:  # noqa: BLE001  (a broken connection is being thrown away)
                pass

    # ---- one read, decided by the Replica ------------------------------------------
    def start(self, request, meta: dict, term: int, done) -> None:
        """Serve a read off the loop, then `done(answer)` on the loop. A plain read is one
        hop to a worker and one back (no task, no chained futures); a chunked one opens a
        cursor (a coroutine: it may have to expire idle ones first)."""
        self.counters["reads_offloaded"] += 1
        if meta.get("chunk_rows"):
            task = asyncio.ensure_future(self._cursor_answer(request, meta, term))
            task.add_done_callback(lambda t: None if t.cancelled() else done(t.result()))
            return
        self.pool.post(asyncio.get_running_loop(), self._answer, (request, meta, term),
                       lambda out, exc: done(out if exc is None else _error(exc)))

    def _answer(self, request, meta: dict, term: int) -> dict:
        try:
            out = self._read(request, meta)
        except (*SQL_FAILURES, RequestError) as e:
            return _error(e)
        out["node"] = self.node_id
        out["term"] = term
        return out

    async def _cursor_answer(self, request, meta: dict, term: int) -> dict:
        try:
            return await self._open_cursor(request, meta, term)
        except (*SQL_FAILURES, RequestError) as e:
            return _error(e)

    def _read(self, request, meta: dict) -> dict:
        try:
            results, index = self._reader().read(request, max_rows=meta.get("max_rows"),
                                                 max_bytes=meta.get("max_bytes"), checked=True,
                                                 at_least=meta["index"])
        except StaleReader as e:
            log.error("%s; the reader is replaced", e)
            self._drop_reader()
            raise RequestError("Unavailable", str(e), retry=True) from None
        return {"ok": True, "results": [x.to_dict() for x in results], "index": max(index, meta["index"]),
                "level": meta["level"], "time": time.perf_counter() - meta["t0"]}

    async def status_pragmas(self) -> dict[str, str]:
        """A worker's read-only connection's settings (for /status), read on that thread."""
        return await asyncio.get_running_loop().run_in_executor(
            self.pool, lambda: self._reader().status_pragmas())

    # ---- cursors -------------------------------------------------------------------
    async def _open_cursor(self, request, meta: dict, term: int) -> dict:
        if len(self.cursors) >= MAX_CURSORS:
            self.expire()
            if len(self.cursors) >= MAX_CURSORS:
                raise RequestError("Unavailable", f"this node has {MAX_CURSORS} open cursors; "
                                   "finish or close one (or wait for idle ones to expire)",
                                   retry=True)
        loop = asyncio.get_running_loop()

        def open_and_fetch():
            reader = Reader(self.path, extension_files=self.extension_files)
            try:
                cur = Cursor(reader, request, meta["chunk_rows"])
                chunk, more = cur.fetch()
            except BaseException:
                reader.close()
                raise
            if not more:
                reader.close()
            return cur, chunk.to_dict(), more

        cur, chunk, more = await loop.run_in_executor(self.pool, open_and_fetch)
        self.counters["cursors_opened"] += 1
        self.counters["chunks_sent"] += 1
        out = {"ok": True, "results": [chunk], "index": max(cur.index, meta["index"]),
               "level": meta["level"], "more": more, "node": self.node_id, "term": term,
               "time": time.perf_counter() - meta["t0"]}
        if more:
            cid = next(self._ids)
            self.cursors[cid] = [cur, time.monotonic()]
            out["cursor"] = cid
        return out

    async def fetch(self, body: dict) -> dict:
        cid = body.get("cursor")
        entry = self.cursors.get(cid) if isinstance(cid, int) else None
        if entry is None:
            return _error(RequestError("BadRequest", f"no open cursor {cid!r} on node "
                                       f"{self.node_id} (finished, closed or expired after "
                                       f"{CURSOR_IDLE_S:g}s idle)"))
        cur = entry[0]
        loop = asyncio.get_running_loop()

        def next_chunk():
            chunk, more = cur.fetch()
            if not more:
                cur.reader.close()
            return chunk.to_dict(), more
        try:
            chunk, more = await loop.run_in_executor(self.pool, next_chunk)
        except SQL_FAILURES as e:
            self._drop(cid)
            return _error(e)
        entry[1] = time.monotonic()
        self.counters["chunks_sent"] += 1
        if not more:
            self.cursors.pop(cid, None)
        return {"ok": True, "results": [chunk], "more": more, "cursor": cid, "node": self.node_id}

    def close_cursor(self, body: dict) -> dict:
        cid = body.get("cursor")
        self._drop(cid)
        return {"ok": True, "node": self.node_id}

    def _drop(self, cid) -> None:
        entry = self.cursors.pop(cid, None) if isinstance(cid, int) else None
        if entry is not None:
            cur = entry[0]
            self.pool.submit(lambda: (cur.close(), cur.reader.close()))

    def expire(self) -> None:
        now = time.monotonic()
        for cid in [c for c, (_cur, used) in self.cursors.items() if now - used > CURSOR_IDLE_S]:
            self._drop(cid)

    def close(self) -> None:
        for cid in list(self.cursors):
            self._drop(cid)
        self.pool.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for r in self._readers:
                try:
                    r.close()
                except Exception:  # noqa: BLE001
                    pass
            self._readers.clear()
