"""The node's short path for rqlite's commonest write: ``POST /db/execute`` with a JSON (or
text) body and no URL flag, no users file.

Through the general path such a write is a task for the connection, the Router's, the
endpoint's, ``run_statements``' and ``NodeServer.handle``'s coroutines, URL flags parsed, a
request frame built, and rqlite's answer: about 48 µs of the leader's loop per write under
wrk, in a loop that is the cluster's serial stage (py-spy, 64 connections). Here the
connection's parser callback hands the request straight to the node (``NodeServer.submit``:
no task) and the reply callback writes rqlite's answer, built with the functions the
general path ends with, in its order (``HttpService.base_request``, ``format.exec_result``,
``HttpService._capped``, ``sql.answer_headers``), so the answer is the same bytes;
``tests/test_http_quick_write.py`` holds the two paths equal.

Only a plain success is finished here. Any other reply (a statement SQLite rejects, a
timeout, no leader...) goes on in the general path *from that reply*
(``SqlEndpoint.handle(first=...)``), so nothing is sent to the node twice. Whatever fails
before anything is sent (a body that does not parse, a fixed PRAGMA, no statement) is left
to the general path whole. ``DDB_HTTP_QUICK_WRITE=0`` turns it off, for A/B measurements.
"""
from __future__ import annotations

import asyncio
import logging
import os

from . import format as fmt
from .endpoint import error_response, send_json
from .errors import HttpError
from .server import plain
from .sql import SqlEndpoint, answer_headers

log = logging.getLogger("ddb.http")

_PATHS = frozenset(("/db/execute", "/db/execute/"))


class QuickWrite:
    def __init__(self, service):
        self.service = service          # HttpService: counters, the answer limit, the node
        self.flags = fmt.parse_flags({})
        self.taken = 0                  # writes sent to the node by this path
        self.served = 0                 # of those, answered here (the rest: general path)

    @staticmethod
    def enabled(service) -> bool:
        return (os.environ.get("DDB_HTTP_QUICK_WRITE", "1") != "0"
                and hasattr(service.server, "submit"))

    def status(self) -> dict:
        return {"taken": self.taken, "answered": self.served}

    def take(self, req, reply) -> bool:
        """Send the write to the node and return True (``reply(response)`` follows, once),
        or return False at once, having done nothing: the general path serves it."""
        ep = req.ctx
        svc = self.service
        if (req.method != "POST" or req.query or req.path not in _PATHS or svc.creds is not None
                or not isinstance(ep, SqlEndpoint) or ep.endpoint != "execute"):
            return False
        try:
            stmts = fmt.parse_body(req.body, req.headers.get("content-type"))
        except fmt.BodyError:
            return False
        if not stmts or any(fmt.FIXED_PRAGMAS.get(fmt.pragma_read(s)) is not None for s in stmts):
            return False
        self.taken += 1
        svc.stats["requests"] += 1          # what Router.handle counts
        svc.metrics.routed(req.path)
        base = svc.base_request(self.flags)
        base.statements = list(stmts)
        svc.server.submit(base.to_wire(), lambda resp: self._answered(req, stmts, resp, reply))
        return True

    def _answered(self, req, stmts: list, resp: dict, reply) -> None:
        if not resp.get("ok", True):
            asyncio.ensure_future(self._general(req, resp, reply))
            return
        svc = self.service
        svc.metrics.http["execute_stmts_rx"] += len(stmts)
        per: dict[int, list] = {}
        for r in resp.get("results") or []:
            per.setdefault(r.get("statement", 0), []).append(r)
        capped = svc._capped
        results = [fmt.exec_result(capped(r), False)
                   for j in range(len(stmts)) for r in per.get(j, [{}])]
        answer = send_json({"results": results})
        answer.headers = answer.headers + answer_headers(
            {"node": resp.get("node"), "index": resp.get("index"), "level": resp.get("level")})
        self.served += 1
        reply(answer)

    async def _general(self, req, first: dict, reply) -> None:
        """The rest of the general path, from the node's reply to the frame already sent."""
        try:
            answer = await req.ctx.handle(self.service, req, first=first)
        except HttpError as e:
            answer = error_response(self.service, e)
        except Exception:           # noqa: BLE001  as HttpProtocol._serve answers a failure
            log.exception("HTTP handler failed: %s %s", req.method, req.path)
            answer = plain(500)
        reply(answer)
