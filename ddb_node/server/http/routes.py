"""The HTTP endpoints: rqlite's API, ddb's own, the dashboard, and the routing between them.

Each endpoint is one stateless object: the methods it accepts, the permission it needs, its
body limit, and ``async handle(service, request) -> Response``. ``Router`` is the
application ``http.server`` calls: at the end of the headers it finds the endpoint and
refuses an oversized body (413) before reading it; then it answers OPTIONS, 405 and 401 and
hands the request to the endpoint. Error answers are short and generic: nothing about the
request, the users or the node leaks.
"""
from __future__ import annotations




from .errors import REASONS as _REASONS
from .errors import HttpError
from .metrics import DebugVarsEndpoint
from .ops import BootEndpoint, LoadEndpoint, ReapEndpoint, SnapshotEndpoint
from .endpoint import (DEFAULT_HEADERS, Endpoint, error_response)
from .server import Request, Response
from .ws import websocket_endpoint

from .backup import BackupEndpoint
from .changes import ChangesEndpoint
from .cluster import (JoinEndpoint, LeaderEndpoint, NodesEndpoint, ReadyEndpoint, RemoveEndpoint,
                      StatusEndpoint)
from .dashboard import (ClusterEndpoint, ControlEndpoint, DashboardEndpoint, FaultsEndpoint,
                        RootEndpoint, StaticEndpoint, _html_error)
from .quick_write import QuickWrite
from .sql import SqlEndpoint
from .tx import TxBeginEndpoint, TxEndEndpoint


class WebSocketEndpoint(Endpoint):
    perms = ("status",)

    async def handle(self, service, req):
        return websocket_endpoint(service, req)


class NotFoundEndpoint(Endpoint):
    methods = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")

    async def handle(self, service, req: Request) -> Response:
        return error_response(service, HttpError(404))


NOT_FOUND = NotFoundEndpoint()

# path -> endpoint; "slash" paths also answer with one trailing slash, as rqlite's do
_SLASH = {
    "/db/execute": SqlEndpoint("execute", ("POST",), ("execute",)),
    "/db/query": SqlEndpoint("query", ("GET", "POST"), ("query",)),
    "/db/request": SqlEndpoint("request", ("POST",), ("query", "execute")),
    "/db/tx": TxBeginEndpoint(),
    "/db/backup": BackupEndpoint(),
    "/db/changes": ChangesEndpoint(),
    "/db/load": LoadEndpoint(),
    "/status": StatusEndpoint(),
    "/nodes": NodesEndpoint(),
    "/readyz": ReadyEndpoint(),
    "/leader": LeaderEndpoint(),
    "/remove": RemoveEndpoint(),
    "/join": JoinEndpoint(),
    "/dashboard": DashboardEndpoint(),
}
_EXACT = {
    "/": RootEndpoint(),
    "/ws": WebSocketEndpoint(),
    "/debug/vars": DebugVarsEndpoint(),
    "/boot": BootEndpoint(),
    "/snapshot": SnapshotEndpoint(),
    "/reap": ReapEndpoint(),
    "/ddb/cluster": ClusterEndpoint(),
    "/ddb/faults": FaultsEndpoint(),
    "/ddb/control": ControlEndpoint(),
}
ROUTES = dict(_EXACT, **_SLASH, **{p + "/": ep for p, ep in _SLASH.items()})
STATIC = StaticEndpoint()
TX_END = TxEndEndpoint()          # /db/tx/ID/commit|rollback


class Router:
    """The application the HTTP server calls (see http.server)."""

    def __init__(self, service):
        self.service = service
        # plain writes by the short path (http.quick_write), when the service's node has one
        self.quick_write = QuickWrite(service) if QuickWrite.enabled(service) else None
        self.answer_soon = self.quick_write.take if self.quick_write is not None else None

    def head(self, req: Request):
        """At the end of the headers: -> (body limit, None) or (0, early refusal)."""
        ep = ROUTES.get(req.path)
        if ep is None:
            ep = STATIC if req.path.startswith("/static/") else \
                TX_END if req.path.startswith("/db/tx/") else NOT_FOUND
        req.ctx = ep
        limit = getattr(self.service, ep.body_limit)
        cl = req.headers.get("content-length")
        if cl is not None and req.method != "OPTIONS" and ep is not NOT_FOUND:
            try:
                n = int(cl)
            except ValueError:           # repeated Content-Length headers
                return 0, error_response(self.service, HttpError(400, "bad Content-Length"))
            if n > limit:
                return 0, self.too_large(req)
        return limit, None

    def too_large(self, req: Request) -> Response:
        limit = getattr(self.service, req.ctx.body_limit)
        self.service.stats["too_large"] += 1
        return error_response(self.service, HttpError(413, f"request body larger than {limit} bytes"))

    async def handle(self, req: Request) -> Response:
        ep = req.ctx
        svc = self.service
        if ep is NOT_FOUND:
            return await ep.handle(svc, req)
        svc.stats["requests"] += 1
        svc.metrics.routed(req.path)
        if req.method == "OPTIONS" and ep.default_headers:
            return Response(200, b"", DEFAULT_HEADERS)
        try:
            if req.method not in ep.methods:
                raise HttpError(405)
            perms = ep.required_perms(req)
            if perms and not await svc.authorized(req, perms):
                svc.stats["auth_fail"] += 1
                raise HttpError(401)
            return await ep.handle(svc, req)
        except HttpError as e:
            if not ep.default_headers:
                return _html_error(e.status) if e.status in _REASONS else error_response(svc, e)
            return error_response(svc, e)
