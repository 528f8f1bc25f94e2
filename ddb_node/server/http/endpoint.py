"""What every HTTP endpoint shares: the Endpoint base, rqlite's response shapes (JSON,
text, errors, the 301 to the leader) and URL flags. Its own module so the endpoints can
live in small modules of their own (routes, sql, cluster, backup, ops, dashboard, metrics) without cycles."""
from __future__ import annotations

import json
from abc import ABC, abstractmethod

from . import format as fmt
from .errors import HttpError
from .server import Request, Response

VERSION = "ddb-0.1.0"
DEFAULT_HEADERS = [("X-DDB-VERSION", VERSION),
                   ("Access-Control-Allow-Methods", "OPTIONS, GET, POST"),
                   ("Access-Control-Allow-Headers", "Content-Type, Authorization")]
_JSON = [("Content-Type", "application/json; charset=utf-8")] + DEFAULT_HEADERS
_TEXT = [("Content-Type", "text/plain; charset=utf-8")] + DEFAULT_HEADERS
_AUTH = ("WWW-Authenticate", 'Basic realm="ddb"')


# ====================================================================== responses
def send_json(obj, flags: fmt.Flags | None = None, status: int = 200) -> Response:
    return Response(status, fmt.encode_json(obj, pretty=bool(flags and flags.pretty)), _JSON)


def send_text(text: str, status: int = 200) -> Response:
    return Response(status, text.encode("utf-8"), _TEXT)


def error_response(service, e: HttpError) -> Response:
    """text/plain, the message and a newline (rqlite's and tornado's shape)."""
    headers = list(_TEXT) + list(e.headers.items())
    if e.status == 401:
        headers.append(_AUTH)
    if e.status >= 400:
        service.stats["bad_requests"] += 1
    if e.status == 503 and e.message == "leader not found":
        service.metrics.http["leader_not_found"] += 1
    return Response(e.status, (e.message + "\n").encode("utf-8"), headers)


async def redirect_to_leader(service, req: Request, e: HttpError) -> Response:
    """rqlite's DoRedirect: 301, Location = leader's API base URL + path + query."""
    http = (e.leader or {}).get("http") or await service.leader_http()
    if not http:
        return error_response(service, HttpError(503, "leader not found"))
    loc = f"{service.scheme}://{http}{req.path}"
    if req.query:
        loc += "?" + req.query
    service.stats["redirects"] += 1
    return Response(301, f'<a href="{loc}">Moved Permanently</a>.\n\n'.encode(),
                    [("Content-Type", "text/html; charset=utf-8")] + DEFAULT_HEADERS + [("Location", loc)])


async def answer_error(service, req, e: HttpError, *, as_503: bool = False) -> Response:
    """The usual mapping of a failed call: 301 -> redirect, 200 -> (503 or) JSON error."""
    if e.status == 301:
        return await redirect_to_leader(service, req, e)
    if as_503 and e.status == 200:
        return error_response(service, HttpError(503, e.message))
    return error_response(service, e)


def flags_of(req: Request) -> fmt.Flags:
    try:
        return fmt.parse_flags(req.arguments)
    except fmt.FlagError as e:
        raise HttpError(400, str(e)) from None


def json_body(req: Request, default=None):
    """The body as JSON (``default`` when empty); ValueError when it is not JSON."""
    if not req.body.strip():
        if default is not None:
            return default
    return json.loads(req.body)


def raft_addr(addr: str | None) -> str:
    """A Raft address as rqlite shows it: host:port (ddb's zmq form is tcp://host:port)."""
    addr = addr or ""
    return addr[len("tcp://"):] if addr.startswith("tcp://") else addr


# ====================================================================== endpoints
class Endpoint(ABC):
    """One HTTP route: its permissions, methods, body limit and `handle`."""
    perms: tuple = ()
    methods: tuple = ("GET",)
    body_limit: str = "max_body"
    default_headers = True

    def required_perms(self, req: Request) -> tuple:
        return self.perms

    @abstractmethod
    async def handle(self, service, req: Request) -> Response:
        """Answer one request."""
