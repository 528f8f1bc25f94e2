"""rqlite's SQL endpoints: /db/execute, /db/query, /db/request -- flags to a request of
the node's own protocol, its reply to rqlite's answer shape, with X-DDB-* headers."""
from __future__ import annotations

import asyncio
import time


from ddb_node.raft import NONE

from . import format as fmt
from .errors import HttpError
from .endpoint import (Endpoint, answer_error, flags_of, send_json)
from .server import Request, Response
from . import tx as transactions



# ---------------------------------------------------------------------- SQL
_STMTS_RX = {"execute": "execute_stmts_rx", "query": "query_stmts_rx", "request": "request_stmts_rx"}


def answer_headers(ran: dict) -> list:
    """Who answered and from which state, beside rqlite's body (the console shows them):
    X-DDB-Node (the node that ran it: the leader for a forwarded write), X-DDB-Index (the
    write's log index, or the applied index the read saw), X-DDB-Level (the level served)."""
    out = []
    for name, key in (("X-DDB-Node", "node"), ("X-DDB-Index", "index"), ("X-DDB-Level", "level")):
        if ran.get(key) is not None:
            out.append((name, str(ran[key])))
    return out


class SqlEndpoint(Endpoint):
    """/db/execute, /db/query, /db/request: rqlite's statements onto the node's ``handle``."""

    def __init__(self, endpoint: str, methods: tuple, perms: tuple):
        self.endpoint = endpoint
        self.methods = methods
        self.perms = perms

    def statements(self, req: Request, flags) -> list:
        if req.method == "GET":
            if not flags.q:
                raise HttpError(400, "no statements")
            return [[flags.q]]
        try:
            return fmt.parse_body(req.body, req.headers.get("content-type"))
        except fmt.BodyError as e:
            raise HttpError(400, str(e)) from None

    async def handle(self, service, req: Request, first: dict | None = None) -> Response:
        """`first`: the node's reply to this request's first frame, already had (a write
        the short path, http.quick_write, sent and that did not simply succeed)."""
        t0 = time.perf_counter()
        flags = flags_of(req)
        try:
            stmts = self.statements(req, flags)
            service.metrics.http[_STMTS_RX[self.endpoint]] += len(stmts)
            if self.endpoint == "execute" and flags.queue:
                return await self.queued(service, stmts, flags, t0)
            if flags.raw.get("tx"):
                out = await transactions.run(service, self.endpoint, flags.raw["tx"], stmts, flags)
                return send_json(self._top(out, flags, t0), flags)
            ran = await service.run_statements(stmts, flags, readonly=self.endpoint == "query",
                                               first=first)
        except HttpError as e:
            if e.status == 200:
                return send_json(self._top({"results": [], "error": e.message}, flags, t0), flags)
            return await answer_error(service, req, e)
        tm, assoc, blob = flags.timings, flags.associative, flags.blob_array
        results = []
        for group in ran["results"]:
            for r in group:
                if self.endpoint == "execute":
                    results.append(fmt.exec_result(r, tm))
                elif self.endpoint == "query":
                    results.append(fmt.query_result(r, tm, assoc, blob))
                else:
                    results.append(fmt.request_result(r, tm, assoc, blob))
        out = {"results": results}
        if flags.raft_index and ran.get("index") and self.endpoint != "query":
            out["raft_index"] = ran["index"]
        resp = send_json(self._top(out, flags, t0), flags)
        resp.headers = resp.headers + answer_headers(ran)
        return resp

    @staticmethod
    def _top(out: dict, flags, t0) -> dict:
        if not out.get("results") and "error" in out:
            out.pop("results")
        if flags.timings:
            out["time"] = time.perf_counter() - t0
        return {k: out[k] for k in ("results", "error", "time", "sequence_number", "raft_index")
                if k in out}

    async def queued(self, service, stmts, flags, t0) -> Response:
        if service.server.raft.leader_id == NONE and not flags.noleader:
            raise HttpError(503, "leader not found")
        seq, fut = service.queue.put(stmts)
        counts = service.metrics.http
        counts["queued_executions"] += 1
        counts["queued_executions_num_stmts_rx"] += len(stmts)
        if flags.wait:
            counts["queued_executions_wait"] += 1
            try:
                await asyncio.wait_for(asyncio.shield(fut), flags.timeout or 30.0)
            except asyncio.TimeoutError:
                counts["queued_executions_wait_timeout"] += 1
                raise HttpError(408, "timeout") from None
        out = {"results": [], "sequence_number": seq}
        if flags.timings:
            out["time"] = time.perf_counter() - t0
        return send_json(out, flags)
