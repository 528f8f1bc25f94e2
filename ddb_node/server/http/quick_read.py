"""An HTTP read worker's short path for rqlite's commonest read: ``GET /db/query?q=SQL`` with at
most a ``level`` of none, weak or linearizable, no body and no users file.

The general path turns such a request into URL flags, a node request frame, the frame back
into a request, per-statement results regrouped, and rqlite's answer: ~60 µs of Python on
top of a ~20 µs SQLite read, most of a worker's CPU per read. This path goes from the URL
straight to the worker's reader (LocalReads.serve) and builds the answer with the very
functions the general path ends with (format.query_result, HttpService._capped,
format.encode_json, sql.answer_headers), in the same order, so the answer is the same bytes;
``tests/test_http_quick_read.py`` holds the two paths equal over a corpus of requests.
Anything else -- another flag, a PRAGMA read that the general path answers itself, a
repeated argument -- returns None and takes the general path.
"""
from __future__ import annotations

import time

from . import format as fmt
from .endpoint import _JSON
from .server import Response
from .sql import answer_headers

_ARGS = frozenset(("q", "level"))
_LEVELS = {b"none": "none", b"weak": "weak", b"linearizable": "linearizable"}


class QuickRead:
    def __init__(self, service, local):
        self.service = service          # WorkerService: counters, the answer limit
        self.local = local              # LocalReads: the read itself (raises Handoff)
        self.served = 0

    def accepts(self, req) -> tuple[str, str] | None:
        """(sql, level) of a request this path answers, else None."""
        if req.method != "GET" or req.body or self.service.creds is not None:
            return None
        args = req.arguments
        if not _ARGS.issuperset(args):
            return None
        q = args.get("q")
        if q is None or len(q) != 1 or not q[0]:
            return None
        lv = args.get("level")
        if lv is None:
            level = "weak"              # run_statements' default
        elif len(lv) != 1 or (level := _LEVELS.get(lv[0])) is None:
            return None
        sql = q[0].decode("utf-8", "replace")
        if fmt.pragma_read([sql]) is not None:
            return None                 # run_statements may answer it without a read
        return sql, level

    async def answer(self, req, sql: str, level: str):
        """rqlite's answer to the read (raises Handoff as LocalReads does)."""
        t0 = time.perf_counter()
        svc = self.service
        ran = await self.local.serve(level, [[sql]], None, None, svc.max_result, t0)
        svc.stats["requests"] += 1
        svc.metrics.routed(req.path)
        svc.metrics.http["query_stmts_rx"] += 1
        capped = svc._capped
        group = [r for r in ran.get("results") or [] if r.get("statement", 0) == 0] or [{}]
        results = [fmt.query_result(capped(r), False, False, False) for r in group]
        self.served += 1
        headers = _JSON + answer_headers({"node": ran.get("node"), "index": ran.get("index"),
                                          "level": ran.get("level")})
        return Response(200, fmt.encode_json({"results": results}), headers)
