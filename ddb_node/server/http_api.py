"""rqlite-compatible HTTP API, event stream and dashboard, in the node's asyncio loop.

Every SQL endpoint is a thin translation onto ``NodeServer.handle`` -- the same entry point that
serves the zmq client protocol -- so consistency levels, forwarding to the leader, redirects
and timeouts behave exactly as they do for ddb's own client. This module only turns rqlite's
URL flags and bodies into a request and ddb's results into rqlite's JSON shapes (see
``http_format``).

Endpoints: /db/execute, /db/query, /db/request, /db/backup, /db/load, /status, /nodes,
/readyz, /leader, /remove, /join, /ws, /dashboard (+ /static/*), and ddb's own /ddb/faults,
/ddb/cluster, /ddb/control.

Robustness: bodies are streamed with a per-endpoint size limit (413 before the body is read),
headers and bodies have read timeouts, the number of open connections is capped, garbage
gives 400, and no handler does more than bounded CPU work per turn of the loop, so a flood of
bad requests never delays a Raft heartbeat.

Configuration (NodeOptions attributes if present, else environment variables):
``http_auth`` / DDB_HTTP_AUTH (users file), ``http_cert``/``http_key`` / DDB_HTTP_CERT,
DDB_HTTP_KEY (TLS), ``http_ca`` / DDB_HTTP_CA (verify client certificates: mutual TLS),
DDB_HTTP_MAX_BODY (bytes for SQL endpoints, default 8 MiB), DDB_HTTP_MAX_LOAD (bytes for
/db/load, default 64 MiB), DDB_HTTP_MAX_CONNECTIONS (default 1024).
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import platform
import re
import socket
import ssl
import sys
import tempfile
import time

import tornado.httpserver
import tornado.netutil
import tornado.web

from ddb_node.raft import NONE, Role

from ddb_node.client import AsyncClient
from ddb_node.protocol import RequestError
from ddb_node.sql import BadRequest, Request
from ddb_node.sql.split import split_sql

from . import http_format as fmt
from .http_auth import CredentialStore, parse_basic
from .http_ws import EventHub, EventSocket, light_status
from .options import tcp

log = logging.getLogger("ddb.http")

VERSION = "ddb-0.1.0"
STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")
READONLY_ERROR = "attempt to write a readonly database"


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _opt(opts, attr: str, env: str, default=None):
    v = getattr(opts, attr, None)
    if v is None:
        v = os.environ.get(env)
    return v if v not in (None, "") else default


# ====================================================================== the service
class HttpService:
    def __init__(self, server):
        self.server = server
        opts = server.opts
        self.addr = opts.http_addr
        auth = _opt(opts, "http_auth", "DDB_HTTP_AUTH")
        self.creds = CredentialStore.load(auth) if auth else None
        self.cert = _opt(opts, "http_cert", "DDB_HTTP_CERT")
        self.key = _opt(opts, "http_key", "DDB_HTTP_KEY")
        self.ca = _opt(opts, "http_ca", "DDB_HTTP_CA")
        self.max_body = int(_opt(opts, "http_max_body", "DDB_HTTP_MAX_BODY", 8 << 20))
        self.max_load = int(_opt(opts, "http_max_load", "DDB_HTTP_MAX_LOAD", 64 << 20))
        self.max_conns = int(_opt(opts, "http_max_connections", "DDB_HTTP_MAX_CONNECTIONS", 1024))
        self.scheme = "https" if self.cert else "http"
        self.ws_scheme = "wss" if self.cert else "ws"
        self.hub = EventHub(server)
        self.queue = WriteQueue(self)
        self.http_cache: dict[int, str] = {}
        self.stats = {"requests": 0, "bad_requests": 0, "auth_fail": 0, "too_large": 0,
                      "connections_refused": 0, "redirects": 0}
        self.started = time.time()
        self._client = None
        self.httpd = None
        self.sockets = []

    # ---- lifecycle ---------------------------------------------------------------
    async def start(self) -> "HttpService":
        host, _, port = self.addr.rpartition(":")
        host = host.strip("[]") or "0.0.0.0"
        ssl_ctx = None
        if self.cert:
            ssl_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_ctx.load_cert_chain(self.cert, self.key)
            if self.ca:
                ssl_ctx.load_verify_locations(self.ca)
                ssl_ctx.verify_mode = ssl.CERT_REQUIRED
        app = make_app(self)
        self.httpd = _CappedHTTPServer(
            app, ssl_options=ssl_ctx, xheaders=False, max_body_size=self.max_load,
            max_header_size=64 << 10, idle_connection_timeout=30.0, body_timeout=30.0,
            decompress_request=False)
        self.httpd._service = self
        self.sockets = tornado.netutil.bind_sockets(int(port), address=host, backlog=1024,
                                                    reuse_port=False)
        self.httpd.add_sockets(self.sockets)
        self.queue.start()
        return self

    def stop(self) -> None:
        self.hub.close()
        self.queue.stop()
        if self.httpd is not None:
            self.httpd.stop()
            for conn in list(getattr(self.httpd, "_connections", ())):
                try:
                    conn.stream.close()
                except Exception:
                    pass
        if self._client is not None:
            c, self._client = self._client, None
            asyncio.ensure_future(c.close())

    # ---- helpers -------------------------------------------------------------------
    async def authorize(self, handler, perms: tuple[str, ...]) -> None:
        if self.creds is None:
            return
        user, pw = parse_basic(handler.request.headers.get("Authorization"))
        if not await self.creds.check(user, pw, perms):
            self.stats["auth_fail"] += 1
            handler.set_header("WWW-Authenticate", 'Basic realm="ddb"')
            raise tornado.web.HTTPError(401)

    def peer_client(self):
        if self._client is None:
            self._client = AsyncClient([self.server.opts.client_addr], cluster_id=self.server.cluster_id,
                                       curve=self.server.opts.curve)
        return self._client

    def member_http(self) -> dict[int, str | None]:
        out = {}
        for nid in sorted(set(self.server.raft.voters) | set(self.server.raft.learners)
                          | set(self.server.book.members)):
            a = self.server.book.get(nid) or {}
            out[nid] = a.get("http") or self.http_cache.get(nid)
        out[self.server.id] = self.addr
        return out

    async def member_status(self, nid: int, timeout: float) -> dict:
        """A member's ddb status over the zmq client protocol (its own answer, not the leader's)."""
        if nid == self.server.id:
            return self.server.status()
        a = self.server.book.get(nid) or {}
        if not a.get("client"):
            raise ConnectionError(f"no client address known for node {nid}")
        reply = await self.peer_client().call_addr(a["client"], {"op": "status"}, timeout)
        st = reply.get("status") or {}
        http = (st.get("addresses") or {}).get("http")
        if http:
            self.http_cache[nid] = http
        return st

    async def leader_http(self, timeout: float = 2.0) -> str | None:
        info = self.server.leader_info()
        if info is None:
            return None
        if info.get("http"):
            return info["http"]
        lid = info["id"]
        if lid in self.http_cache:
            return self.http_cache[lid]
        try:
            await self.member_status(lid, timeout)
        except Exception:
            return None
        return self.http_cache.get(lid)

    # ---- SQL ---------------------------------------------------------------------
    async def call(self, body: dict) -> dict:
        """The node's request entry point, with every failure mapped onto an HttpError or a
        statement error."""
        resp = await self.server.handle(body)
        if resp.get("ok", True):
            return resp
        raise _from_error(resp.get("error") or {"type": "Internal", "message": "request failed"})

    async def run_statements(self, stmts: list, flags: fmt.Flags, *, readonly: bool = False,
                             level: str | None = None) -> dict:
        """Run rqlite-style statements -> {"results": [per statement, list of ddb results],
        "index": raft index or None}. A statement SQLite rejects when preparing (syntax, a
        forbidden statement) gets its own error result and, without ``transaction``, the other
        statements still run, as in rqlite."""
        n = len(stmts)
        out: list[list | None] = [None] * n
        pending = list(range(n))
        index = None
        base = {"op": "request", "transaction": bool(flags.transaction),
                "level": level or flags.level or "weak"}
        timeout = flags.timeout or flags.db_timeout or flags.linearizable_timeout
        if timeout:
            base["timeout"] = timeout
        if flags.freshness is not None:
            base["freshness"] = flags.freshness
        if flags.redirect:
            base["redirect"] = True
        for k in list(pending):
            fixed = _FIXED_PRAGMAS.get(_pragma_read(stmts[k]))
            if fixed is not None:
                out[k] = [fixed]
                pending.remove(k)
        if readonly:
            self._mark_writes(stmts, pending, out)
        guard = 0
        while pending and guard <= n:
            guard += 1
            body = dict(base, statements=[stmts[i] for i in pending])
            try:
                resp = await self.call(body)
            except StatementError as se:
                if se.position >= len(pending):
                    raise HttpError(400, se.message) from None
                k = pending[se.position]
                out[k] = [{"error": se.message}]
                if flags.transaction:
                    # nothing ran: the request stops at the statement SQLite rejected
                    return {"results": [r for r in out[:k + 1] if r is not None], "index": None}
                pending.pop(se.position)
                continue
            except TransactionFailed as tf:
                results = tf.results
                if results is None:
                    results = [{} for _ in range(tf.position)] + [{"error": tf.message}]
                return {"results": [[r] for r in results], "index": None}
            index = resp.get("index")
            per: dict[int, list] = {}
            for r in resp.get("results") or []:
                per.setdefault(r.get("statement", 0), []).append(r)
            for j, k in enumerate(pending):
                out[k] = per.get(j, [{}])
            pending = []
            self._last_meta = resp
        return {"results": [r for r in out if r is not None], "index": index}

    def _mark_writes(self, stmts, pending, out) -> None:
        """/db/query runs reads only: a statement that would write gets rqlite's read-only
        error instead of being sent through the log."""
        try:
            cls = self.server.sm.classify(Request([list(s) for s in stmts]))
        except BadRequest:
            return   # a prepare error: run_statements reports it per statement
        except Exception:
            return
        writes = {}
        for sc in cls.statements:
            if sc.kind != "read":
                writes[sc.statement] = sc.deferred or READONLY_ERROR
        for k, msg in writes.items():
            out[k] = [{"error": msg}]
            if k in pending:
                pending.remove(k)


# Reads of PRAGMAs that ddb's policy keeps for itself but that clients probe on connect:
# SQLAlchemy's SQLite dialect reads read_uncommitted to learn the isolation level. The answer
# is SQLite's default (0), which is also what rqlite returns.
_FIXED_PRAGMAS = {
    "read_uncommitted": {"columns": ["read_uncommitted"], "decltypes": [None], "values": [[0]]},
}
_PRAGMA_READ = re.compile(r"^\s*PRAGMA\s+(?:main\.)?([A-Za-z_]+)\s*;?\s*$", re.I)


def _pragma_read(stmt) -> str | None:
    if len(stmt) != 1 or not isinstance(stmt[0], str):
        return None
    m = _PRAGMA_READ.match(stmt[0])
    return m.group(1).lower() if m else None


class StatementError(HttpError):
    def __init__(self, position: int, message: str):
        super().__init__(200, message)
        self.position = position


class TransactionFailed(HttpError):
    def __init__(self, position: int, message: str, results=None):
        super().__init__(200, message)
        self.position = position
        self.results = results


def _from_error(err: dict) -> HttpError:
    e = RequestError.from_dict(err)
    typ, msg = e.type, e.message
    if typ == "BadRequest":
        if e.statement is not None and e.results is not None:
            return TransactionFailed(e.statement, e.detail or msg, e.results)
        if e.statement is not None and e.detail is not None:
            return StatementError(e.statement, e.detail)
        return HttpError(400, msg)
    if typ == "NotLeader":
        e = HttpError(301, msg)
        e.leader = err.get("leader")
        return e
    if typ == "NoLeader":
        return HttpError(503, "leader not found")
    if typ in ("Unavailable",):
        return HttpError(503, msg)
    if typ == "Timeout" and msg.startswith("leader election"):
        return HttpError(503, "leader not found")
    if typ in ("Timeout", "Stale"):
        return HttpError(200, msg)    # rqlite: HTTP 200 with a top-level "error"
    return HttpError(500, msg or "internal error")


class _CappedHTTPServer(tornado.httpserver.HTTPServer):
    """HTTPServer that refuses connections beyond a cap (slowloris protection)."""

    _service = None    # set after construction (HTTPServer is Configurable: no own __init__ args)

    def handle_stream(self, stream, address):
        if len(self._connections) >= self._service.max_conns:
            self._service.stats["connections_refused"] += 1
            try:
                stream.write(b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                             b"Connection: close\r\n\r\n")
            except Exception:
                pass
            stream.close()
            return
        super().handle_stream(stream, address)


# ====================================================================== write queue
class WriteQueue:
    """rqlite's queued writes: answer at once with a sequence number, batch statements (up to
    128 or 50 ms) into one request, retry until it lands; ``wait`` waits for the flush."""

    def __init__(self, service, capacity: int = 1024, batch: int = 128, timeout: float = 0.05):
        self.service = service
        self.capacity = capacity
        self.batch = batch
        self.timeout = timeout
        self.items: asyncio.Queue | None = None
        self.seq = time.time_ns()
        self.last_done = 0
        self.task = None
        self.stats = {"queued": 0, "flushed_batches": 0, "failed_statements": 0, "retries": 0}

    def start(self) -> None:
        self.items = asyncio.Queue(self.capacity)
        self.task = asyncio.ensure_future(self._run())

    def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()

    def put(self, stmts: list) -> tuple[int, asyncio.Future]:
        self.seq += 1
        fut = asyncio.get_running_loop().create_future()
        try:
            self.items.put_nowait((self.seq, stmts, fut))
        except asyncio.QueueFull:
            raise HttpError(503, "write queue is full") from None
        self.stats["queued"] += 1
        return self.seq, fut

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            first = await self.items.get()
            group = [first]
            nstmts = len(first[1])
            deadline = loop.time() + self.timeout
            while nstmts < self.batch:
                left = deadline - loop.time()
                if left <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self.items.get(), left)
                except asyncio.TimeoutError:
                    break
                group.append(item)
                nstmts += len(item[1])
            stmts = [s for _, ss, _ in group for s in ss]
            flags = fmt.Flags({})
            delay = 0.1
            while True:
                try:
                    await self.service.run_statements(stmts, flags)
                    break
                except asyncio.CancelledError:
                    raise
                except HttpError as e:
                    if e.status in (400,):
                        self.stats["failed_statements"] += len(stmts)
                        break
                    self.stats["retries"] += 1
                except Exception:
                    log.exception("queued write failed")
                    self.stats["retries"] += 1
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
            self.stats["flushed_batches"] += 1
            self.last_done = group[-1][0]
            for _, _, fut in group:
                if not fut.done():
                    fut.set_result(True)


# ====================================================================== handlers
@tornado.web.stream_request_body
class Base(tornado.web.RequestHandler):
    perms: tuple = ()
    methods: tuple = ("GET",)
    body_limit: str = "max_body"

    def initialize(self, service: HttpService):
        self.service = service
        self.server = service.server
        self._chunks: list[bytes] = []
        self._size = 0

    def set_default_headers(self):
        self.set_header("X-DDB-VERSION", VERSION)
        self.set_header("Access-Control-Allow-Methods", "OPTIONS, GET, POST")
        self.set_header("Access-Control-Allow-Headers", "Content-Type, Authorization")

    async def prepare(self):
        self.service.stats["requests"] += 1
        if self.request.method == "OPTIONS":
            return
        limit = getattr(self.service, self.body_limit)
        cl = self.request.headers.get("Content-Length")
        if cl is not None:
            try:
                n = int(cl)
            except ValueError:
                raise tornado.web.HTTPError(400, "bad Content-Length")
            if n > limit:
                self.service.stats["too_large"] += 1
                self.set_header("Connection", "close")
                raise tornado.web.HTTPError(413, f"request body larger than {limit} bytes")
        if self.request.connection is not None and hasattr(self.request.connection, "set_max_body_size"):
            self.request.connection.set_max_body_size(limit)
        if self.request.method not in self.methods:
            raise tornado.web.HTTPError(405)
        await self.service.authorize(self, self.required_perms())

    def required_perms(self) -> tuple:
        return self.perms

    def data_received(self, chunk: bytes):
        self._size += len(chunk)
        self._chunks.append(chunk)

    @property
    def body(self) -> bytes:
        if len(self._chunks) != 1:
            self._chunks = [b"".join(self._chunks)]
        return self._chunks[0]

    def options(self, *a):
        self.set_status(200)
        self.finish()

    def compute_etag(self):
        return None

    def write_error(self, status_code, **kw):
        # short and generic: nothing about the request, the users or the node leaks
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        if status_code == 401:
            self.set_header("WWW-Authenticate", 'Basic realm="ddb"')
        msg = self._reason
        exc = kw.get("exc_info", (None, None, None))[1]
        if isinstance(exc, tornado.web.HTTPError) and exc.log_message and status_code not in (401, 500):
            msg = exc.log_message % exc.args if exc.args else exc.log_message
        if status_code >= 400:
            self.service.stats["bad_requests"] += 1
        self.finish((msg or "") + "\n")

    def flags(self) -> fmt.Flags:
        try:
            return fmt.parse_flags(self.request.query_arguments)
        except fmt.FlagError as e:
            raise tornado.web.HTTPError(400, str(e))

    def send_json(self, obj, flags: fmt.Flags | None = None, status: int = 200):
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(fmt.encode_json(obj, pretty=bool(flags and flags.pretty)))

    def send_http_error(self, e: HttpError):
        self.set_status(e.status)
        for k, v in e.headers.items():
            self.set_header(k, v)
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        if e.status >= 400:
            self.service.stats["bad_requests"] += 1
        self.finish(e.message + "\n")

    async def redirect_to_leader(self, e: HttpError):
        """rqlite's DoRedirect: 301, Location = leader's API base URL + path + query."""
        http = (getattr(e, "leader", None) or {}).get("http") or await self.service.leader_http()
        if not http:
            self.send_http_error(HttpError(503, "leader not found"))
            return
        loc = f"{self.service.scheme}://{http}{self.request.path}"
        if self.request.query:
            loc += "?" + self.request.query
        self.service.stats["redirects"] += 1
        self.set_status(301)
        self.set_header("Location", loc)
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.finish(f'<a href="{loc}">Moved Permanently</a>.\n\n')


class SqlHandler(Base):
    endpoint = "execute"
    methods = ("POST",)

    def required_perms(self):
        return {"execute": ("execute",), "query": ("query",),
                "request": ("query", "execute")}[self.endpoint]

    def statements(self, flags) -> list:
        if self.request.method == "GET":
            if not flags.q:
                raise HttpError(400, "no statements")
            return [[flags.q]]
        try:
            return fmt.parse_body(self.body, self.request.headers.get("Content-Type"))
        except fmt.BodyError as e:
            raise HttpError(400, str(e)) from None

    async def get(self):
        await self.handle()

    async def post(self):
        await self.handle()

    async def handle(self):
        t0 = time.perf_counter()
        flags = self.flags()
        try:
            stmts = self.statements(flags)
            if self.endpoint == "execute" and flags.queue:
                await self.queued(stmts, flags, t0)
                return
            ran = await self.service.run_statements(stmts, flags, readonly=self.endpoint == "query")
        except HttpError as e:
            if e.status == 301:
                await self.redirect_to_leader(e)
            elif e.status == 200:
                self.send_json(self._top({"results": [], "error": e.message}, flags, t0), flags)
            else:
                self.send_http_error(e)
            return
        results = []
        tm, assoc, blob = flags.timings, flags.associative, flags.blob_array
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
        self.send_json(self._top(out, flags, t0), flags)

    def _top(self, out: dict, flags, t0) -> dict:
        if not out.get("results") and "error" in out:
            out.pop("results")
        if flags.timings:
            out["time"] = time.perf_counter() - t0
        return {k: out[k] for k in ("results", "error", "time", "sequence_number", "raft_index")
                if k in out}

    async def queued(self, stmts, flags, t0):
        if self.server.raft.leader_id == NONE and not flags.noleader:
            raise HttpError(503, "leader not found")
        seq, fut = self.service.queue.put(stmts)
        if flags.wait:
            try:
                await asyncio.wait_for(asyncio.shield(fut), flags.timeout or 30.0)
            except asyncio.TimeoutError:
                raise HttpError(408, "timeout") from None
        out = {"results": [], "sequence_number": seq}
        if flags.timings:
            out["time"] = time.perf_counter() - t0
        self.send_json(out, flags)


class ExecuteHandler(SqlHandler):
    endpoint = "execute"
    methods = ("POST",)


class QueryHandler(SqlHandler):
    endpoint = "query"
    methods = ("GET", "POST")


class RequestHandler(SqlHandler):
    endpoint = "request"
    methods = ("POST",)


# ---------------------------------------------------------------------- status & cluster
def _role_name(role) -> str:
    return {Role.LEADER: "Leader", Role.FOLLOWER: "Follower"}.get(Role(role), "Candidate")


def _sub_json(obj, key: str | None):
    if not key:
        return obj
    for k in key.split("."):
        if isinstance(obj, dict):
            if k not in obj:
                return {}
            obj = obj[k]
        else:
            return obj
    return obj


class StatusHandler(Base):
    perms = ("status",)

    async def get(self):
        flags = self.flags()
        s = self.server
        r = s.raft
        st = s.status()
        leader = s.leader_info() or {}
        try:
            last_term = r.log_term(r.last_index) or 0
        except Exception:
            last_term = 0
        store = {
            "node_id": str(s.id),
            "addr": s.opts.peer_addr,
            "leader": {"node_id": str(leader["id"]) if leader else "",
                       "addr": leader.get("peer") or ""},
            "ready": r.leader_id != NONE,
            "raft": {"state": _role_name(r.role), "term": r.term, "commit_index": r.commit_index,
                     "applied_index": s.sm.applied_index, "last_log_index": r.last_index,
                     "last_log_term": last_term, "first_log_index": s.storage.first_index(),
                     "snapshot_index": st.get("snapshot_index"), "voter": s.id in r.voters,
                     "num_peers": max(0, len(r.voters) - (1 if s.id in r.voters else 0)),
                     "latest_configuration": [{"id": str(v), "voter": True} for v in sorted(r.voters)]
                     + [{"id": str(v), "voter": False} for v in sorted(r.learners)]},
            "fsm_index": s.sm.applied_index,
            "db_applied_index": s.sm.applied_index,
            "sqlite3": {"path": s.sm.path, "durable_index": s.sm.durable_index},
            "dir": s.opts.data_dir or "",
        }
        q = self.service.queue
        out = {
            "build": {"version": VERSION, "compat": "rqlite HTTP API"},
            "http": {"bind_addr": self.service.addr,
                     "auth": "enabled" if self.service.creds else "disabled",
                     "tls": {"enabled": "true" if self.service.cert else "false"},
                     "queue": {"_default": {"sequence_number": q.last_done, **q.stats}},
                     "stats": dict(self.service.stats),
                     "ws": {"clients": len(self.service.hub.clients),
                            "dropped_frames": self.service.hub.dropped_frames}},
            "node": {"start_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s.started)),
                     "current_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "uptime": f"{time.time() - s.started:.3f}s"},
            "os": {"pid": os.getpid(), "ppid": os.getppid(), "hostname": socket.gethostname(),
                   "executable": sys.executable},
            "runtime": {"python": platform.python_version(), "platform": sys.platform},
            "store": store,
            "ddb": st,
        }
        self.send_json(_sub_json(out, flags.key), flags)


class NodesHandler(Base):
    perms = ("status",)

    async def get(self):
        flags = self.flags()
        s = self.server
        timeout = min(flags.timeout or 5.0, 30.0)
        ids = sorted(s.raft.voters) + (sorted(s.raft.learners) if flags.nonvoters else [])
        leader = s.raft.leader_id

        async def probe(nid):
            t0 = time.perf_counter()
            node = {"id": str(nid), "api_addr": "", "addr": (s.book.get(nid) or {}).get("peer", ""),
                    "version": VERSION, "voter": nid in s.raft.voters, "reachable": False,
                    "leader": False}
            try:
                st = await self.service.member_status(nid, timeout)
                node["reachable"] = True
                http = (st.get("addresses") or {}).get("http") or self.service.member_http().get(nid)
                node["api_addr"] = f"{self.service.scheme}://{http}" if http else ""
                node["leader"] = nid == leader
            except Exception as e:
                node["error"] = "timeout waiting for node to respond" if "within" in str(e) \
                    else type(e).__name__
                node["version"] = ""
            dt = time.perf_counter() - t0
            node["time"] = dt
            node["time_s"] = f"{dt * 1000:.3f}ms"
            if not node["api_addr"]:
                node.pop("api_addr")
            return node

        nodes = await asyncio.gather(*(probe(n) for n in ids))
        keys = ("id", "api_addr", "addr", "version", "voter", "reachable", "leader", "time", "time_s",
                "error")
        nodes = [{k: n[k] for k in keys if k in n} for n in nodes]
        if flags.ver == "2":
            self.send_json({"nodes": nodes}, flags)
        else:
            self.send_json({n["id"]: n for n in nodes}, flags)


class ReadyHandler(Base):
    perms = ("ready",)

    async def get(self):
        flags = self.flags()
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        if flags.noleader:
            self.finish("[+]node ok")
            return
        s = self.server
        if s.raft.leader_id == NONE:
            self.set_status(503)
            self.finish("[+]node ok\n[+]leader does not exist")
            return
        text = "[+]node ok\n[+]leader ok\n[+]store ok"
        if flags.sync:
            resp = await s.handle({"op": "applied", "timeout": flags.timeout or 5.0})
            if not resp.get("ok"):
                self.set_status(503)
                self.finish(text + "\n[+]sync not ok")
                return
            text += "\n[+]sync ok"
        self.finish(text)


class LeaderHandler(Base):
    methods = ("GET", "POST")

    def required_perms(self):
        return ("leader-ops",) if self.request.method == "POST" else ("status",)

    async def get(self):
        flags = self.flags()
        s = self.server
        info = s.leader_info()
        if info is None:
            self.send_http_error(HttpError(503, "leader not found"))
            return
        http = await self.service.leader_http()
        reachable = True
        if info["id"] != s.id:
            try:
                await self.service.member_status(info["id"], min(flags.timeout or 2.0, 10.0))
            except Exception:
                reachable = False
        out = {"id": str(info["id"])}
        if http:
            out["api_addr"] = f"{self.service.scheme}://{http}"
        out.update({"addr": info.get("peer") or "", "version": VERSION, "voter": True,
                    "reachable": reachable, "leader": True})
        self.send_json(out, flags)

    async def post(self):
        flags = self.flags()
        s = self.server
        target = None
        if self.body.strip():
            try:
                data = json.loads(self.body)
                target = int(data["id"]) if isinstance(data, dict) and "id" in data else None
            except (ValueError, TypeError, KeyError):
                self.send_http_error(HttpError(400, 'body must be {"id": "<node id>"}'))
                return
        lid = s.raft.leader_id
        if lid == NONE:
            self.send_http_error(HttpError(503, "leader not found"))
            return
        if target is None:
            others = [v for v in sorted(s.raft.voters) if v != lid]
            if not others:
                self.send_http_error(HttpError(400, "no other voter to hand leadership to"))
                return
            if s.raft.role == Role.LEADER:
                prs = s.raft.prs
                others.sort(key=lambda v: -(prs[v].match if v in prs else 0))
            target = others[0]
        try:
            resp = await self.service.call({"op": "transfer", "to": target,
                                            "timeout": flags.timeout or 10.0})
        except HttpError as e:
            if e.status == 301:
                await self.redirect_to_leader(e)
            else:
                self.send_http_error(e if e.status != 200 else HttpError(503, e.message))
            return
        self.send_json({"leader": {"id": str(resp.get("leader", target))}}, flags)


class RemoveHandler(Base):
    perms = ("remove",)
    methods = ("DELETE", "POST")

    async def delete(self):
        await self._remove()

    async def post(self):
        await self._remove()

    async def _remove(self):
        flags = self.flags()
        try:
            data = json.loads(self.body or b"null")
            nid = int(data["id"])
        except (ValueError, TypeError, KeyError):
            self.send_http_error(HttpError(400, 'body must be {"id": "<node id>"}'))
            return
        body = {"op": "remove", "node_id": nid}
        if flags.timeout:
            body["timeout"] = flags.timeout
        if flags.redirect:
            body["redirect"] = True
        try:
            await self.service.call(body)
        except HttpError as e:
            if e.status == 301:
                await self.redirect_to_leader(e)
            else:
                self.send_http_error(e if e.status != 200 else HttpError(503, e.message))
            return
        self.set_status(200)
        self.finish()


class JoinHandler(Base):
    """POST /join {"id": "4", "addr": "tcp://h:p" (raft), "client": "tcp://h:p", "api_addr":
    "h:p", "voter": true}: adds a node as a learner, promoted once caught up."""
    perms = ("join",)
    methods = ("POST",)

    def required_perms(self):
        try:
            data = json.loads(self.body or b"{}")
        except ValueError:
            data = {}
        if isinstance(data, dict) and data.get("voter") is False:
            return ("join-read-only",)
        return ("join",)

    async def prepare(self):
        # permissions depend on the body: check them once it has arrived (in post)
        self._deferred_auth = True
        saved = self.service.creds
        self.service.creds = None
        try:
            await super().prepare()
        finally:
            self.service.creds = saved

    async def post(self):
        if self.service.creds is not None:
            user, pw = parse_basic(self.request.headers.get("Authorization"))
            perms = self.required_perms()
            if not (await self.service.creds.check(user, pw, perms)
                    or await self.service.creds.check(user, pw, ("join",))):
                self.set_header("WWW-Authenticate", 'Basic realm="ddb"')
                raise tornado.web.HTTPError(401)
        try:
            data = json.loads(self.body)
            nid = int(data["id"])
            peer, client = data["addr"], data["client"]
            if not isinstance(peer, str) or not isinstance(client, str):
                raise TypeError
        except (ValueError, TypeError, KeyError):
            self.send_http_error(HttpError(400, 'body must be {"id", "addr" (raft address), '
                                                '"client" (client address), "api_addr", "voter"}'))
            return
        body = {"op": "join", "node_id": nid, "peer": tcp(peer), "client": tcp(client),
                "http": data.get("api_addr") or data.get("http"), "voter": data.get("voter", True) is not False}
        try:
            resp = await self.service.call(body)
        except HttpError as e:
            if e.status == 301:
                await self.redirect_to_leader(e)
            else:
                self.send_http_error(e if e.status != 200 else HttpError(503, e.message))
            return
        self.send_json({"members": resp.get("members", {})})


# ---------------------------------------------------------------------- backup & load
def _skip_internal(name: str) -> bool:
    return name.startswith("_ddb_")


class BackupHandler(Base):
    perms = ("backup",)

    async def get(self):
        flags = self.flags()
        s = self.server
        if not flags.noleader:
            # the leader's state as of now: confirm the read index (also from a follower)
            resp = await s.handle({"op": "read_index", "timeout": flags.timeout or 10.0})
            if not resp.get("ok"):
                e = RequestError.from_dict(resp.get("error") or {})
                if flags.redirect and s.raft.role != Role.LEADER:
                    err = HttpError(301, e.message)
                    err.leader = s.leader_info()
                    await self.redirect_to_leader(err)
                    return
                self.send_http_error(HttpError(503, "leader not found" if e.type == "NoLeader" else e.message))
                return
        path = await self._copy()
        try:
            if flags.fmt == "sql":
                import apsw
                c = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
                try:
                    text = fmt.sql_dump(c, flags.tables or None, _skip_internal)
                finally:
                    c.close()
                self.set_header("Content-Type", "application/sql")
                data = text.encode("utf-8")
            else:
                self.set_header("Content-Type", "application/octet-stream")
                with open(path, "rb") as f:
                    data = f.read()
            if flags.compress:
                import gzip
                data = gzip.compress(data)
                self.set_header("Content-Type", "application/octet-stream")
            self.set_header("Content-Disposition", 'attachment; filename="backup.%s"'
                            % ("sql" if flags.fmt == "sql" else "sqlite3"))
            for i in range(0, len(data), 1 << 20):   # large files: let the loop breathe
                self.write(data[i:i + (1 << 20)])
                await self.flush()
            self.finish()
        finally:
            os.remove(path)

    async def _copy(self) -> str:
        """Copy the live database in steps (yielding to the loop between them), then drop
        ddb's own tables from the copy."""
        import apsw
        s = self.server
        fd, tmp = tempfile.mkstemp(prefix=".ddb-backup-", suffix=".db",
                                   dir=os.path.dirname(os.path.abspath(s.sm.path))
                                   if not s.sm.memory else None)
        os.close(fd)
        dest = apsw.Connection(tmp)
        try:
            with dest.backup("main", s.sm.connection, "main") as b:
                while not b.done:
                    b.step(512)
                    await asyncio.sleep(0)
            names = [r[0] for r in dest.execute(
                "SELECT name FROM sqlite_schema WHERE type='table' AND name LIKE '\\_ddb\\_%' ESCAPE '\\'")]
            for n in names:
                dest.execute(f'DROP TABLE IF EXISTS "{n}"')
            list(dest.execute("PRAGMA journal_mode=DELETE"))
            dest.execute("VACUUM")
        finally:
            dest.close()
        return tmp


class LoadHandler(Base):
    """POST /db/load: a SQLite database file (replaces every user table) or SQL text (a dump,
    executed as one transaction); both go through the log as one entry."""
    perms = ("load",)
    methods = ("POST",)
    body_limit = "max_load"

    async def post(self):
        flags = self.flags()
        data = self.body
        t0 = time.perf_counter()
        try:
            if data[:16] == b"SQLite format 3\x00":
                stmts = self._from_file(data)
            else:
                try:
                    text = data.decode("utf-8")
                except UnicodeDecodeError:
                    raise HttpError(400, "load data is neither a SQLite file nor UTF-8 SQL text") from None
                stmts = self._from_sql(text)
            if not stmts:
                raise HttpError(400, "no statements")
            flags.transaction = True
            ran = await self.service.run_statements(stmts, flags)
        except HttpError as e:
            if e.status == 301:
                await self.redirect_to_leader(e)
            elif e.status == 200:
                self.send_json({"error": e.message}, flags)
            else:
                self.send_http_error(e)
            return
        results = [fmt.exec_result(r, flags.timings) for g in ran["results"] for r in g]
        errors = [r for r in results if "error" in r]
        out = {"results": errors or [{}]}
        if flags.timings:
            out["time"] = time.perf_counter() - t0
        self.send_json(out, flags)

    def _existing_drops(self) -> list:
        conn = self.server.sm.connection
        drops = []
        for typ, name in conn.cursor().execute(
                "SELECT type, name FROM sqlite_schema WHERE type IN ('table','view') "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_ddb\\_%' ESCAPE '\\'",
                can_cache=False):
            drops.append([f'DROP {typ.upper()} IF EXISTS "' + name.replace('"', '""') + '"'])
        return drops

    def _from_file(self, data: bytes) -> list:
        import apsw
        fd, tmp = tempfile.mkstemp(prefix=".ddb-load-", suffix=".db")
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
            try:
                c = apsw.Connection(tmp, flags=apsw.SQLITE_OPEN_READONLY)
                try:
                    if c.execute("PRAGMA quick_check").fetchall() != [("ok",)]:
                        raise HttpError(400, "the SQLite file fails quick_check")
                    text = fmt.sql_dump(c, None, _skip_internal)
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
        return self._existing_drops() + self._from_sql(text)

    @staticmethod
    def _from_sql(text: str) -> list:
        out = []
        for piece in split_sql(text):
            head = re.sub(r"\s+", " ", piece.strip().rstrip(";").strip()).upper()
            if head in ("BEGIN", "BEGIN TRANSACTION", "COMMIT", "END", "END TRANSACTION",
                        "ROLLBACK", "PRAGMA FOREIGN_KEYS=OFF", "PRAGMA FOREIGN_KEYS = OFF"):
                continue
            if head.startswith("PRAGMA WRITABLE_SCHEMA"):
                continue
            out.append([piece])
        return out


# ---------------------------------------------------------------------- ddb's own
class ClusterHandler(Base):
    """GET /ddb/cluster: every member's light status, as each answers it (for the dashboard)."""
    perms = ("status",)

    async def get(self):
        flags = self.flags()
        timeout = min(flags.timeout or 0.8, 5.0)
        ids = sorted(set(self.server.raft.voters) | set(self.server.raft.learners))

        async def one(nid):
            try:
                if nid == self.server.id:
                    st = light_status(self.server)
                    st["reachable"] = True
                    return st
                st = await self.service.member_status(nid, timeout)
                return {"id": nid, "role": st.get("role"), "term": st.get("term"),
                        "leader": st.get("leader"), "commit": st.get("commit"),
                        "applied": st.get("applied"), "last_index": st.get("last_index"),
                        "voters": st.get("voters"), "learners": st.get("learners"),
                        "faults": st.get("faults"), "reachable": True,
                        "http": (st.get("addresses") or {}).get("http")}
            except Exception as e:
                return {"id": nid, "reachable": False, "error": type(e).__name__,
                        "http": self.service.member_http().get(nid)}

        nodes = await asyncio.gather(*(one(n) for n in ids))
        self.send_json({"node": self.server.id, "nodes": nodes, "t": time.time()}, flags)


class FaultsHandler(Base):
    """POST /ddb/faults {"cmd": {...fault command...}, "nodes": "all" | [ids]}: apply a fault
    command (the simulator's vocabulary) on this node or on every member (via their zmq
    client port, so it works even when the peer links are cut)."""
    perms = ("faults",)
    methods = ("GET", "POST")

    async def get(self):
        self.send_json({"node": self.server.id, "faults": self.server.transport.faults.state.describe()})

    async def post(self):
        try:
            data = json.loads(self.body)
            cmd = data["cmd"]
            if not isinstance(cmd, dict):
                raise TypeError
        except (ValueError, TypeError, KeyError):
            self.send_http_error(HttpError(400, 'body must be {"cmd": {"action": ...}, "nodes": "all"}'))
            return
        targets = data.get("nodes", "all")
        s = self.server
        ids = sorted(set(s.raft.voters) | set(s.raft.learners) | {s.id}) if targets == "all" \
            else [int(t) for t in targets]
        if cmd.get("action") == "isolate" and "peers" not in cmd:
            cmd["peers"] = ids

        async def one(nid):
            try:
                if nid == s.id:
                    return await s.handle({"op": "faults", "cmd": cmd})
                a = s.book.get(nid) or {}
                return await self.service.peer_client().call_addr(a["client"], {"op": "faults", "cmd": cmd}, 2.0)
            except Exception as e:
                return {"ok": False, "error": {"type": type(e).__name__, "message": str(e)}}

        res = await asyncio.gather(*(one(n) for n in ids))
        bad = [r for r in res if not r.get("ok") and (r.get("error") or {}).get("type") == "BadRequest"]
        if bad:
            self.send_http_error(HttpError(400, bad[0]["error"]["message"]))
            return
        self.send_json({str(n): (r.get("faults") if r.get("ok") else {"error": r.get("error")})
                        for n, r in zip(ids, res)})


class ControlHandler(Base):
    """POST /ddb/control {"action": "crash"}: this node's process exits at once (a crash, as
    kill -9 would do). Restart, pause and resume need the process that started the node; a
    LocalCluster serves them with ``LocalCluster.serve_control`` (see http_control)."""
    perms = ("faults",)
    methods = ("POST",)

    async def post(self):
        try:
            data = json.loads(self.body)
            action, node = data.get("action"), data.get("node")
            node = int(node) if node is not None else self.server.id
        except (ValueError, AttributeError, TypeError):
            action = node = None
        if action not in ("crash", "kill"):
            self.send_http_error(HttpError(400, 'action must be "crash"'))
            return
        if node != self.server.id:
            http = self.service.member_http().get(node)
            if not http:
                try:
                    await self.service.member_status(node, 2.0)
                except Exception:
                    pass
                http = self.service.member_http().get(node)
            if not http:
                self.send_http_error(HttpError(503, f"no HTTP address known for node {node}"))
                return
            from tornado.httpclient import AsyncHTTPClient, HTTPClientError
            headers = {"Content-Type": "application/json"}
            if self.request.headers.get("Authorization"):
                headers["Authorization"] = self.request.headers["Authorization"]
            try:
                r = await AsyncHTTPClient().fetch(f"{self.service.scheme}://{http}/ddb/control",
                                                  method="POST", headers=headers, validate_cert=False,
                                                  body=json.dumps({"action": "crash"}), request_timeout=5.0)
                self.send_json(json.loads(r.body))
            except HTTPClientError as e:
                self.send_http_error(HttpError(e.code, f"node {node} refused: {e.code}"))
            except Exception as e:
                self.send_http_error(HttpError(503, f"node {node} unreachable: {type(e).__name__}"))
            return
        self.send_json({"node": self.server.id, "action": "crash"})
        await self.flush()
        asyncio.get_running_loop().call_later(0.05, os._exit, 137)


class DashboardHandler(Base):
    perms = ("ui",)

    async def get(self):
        with open(os.path.join(STATIC_DIR, "dashboard.html"), "rb") as f:
            self.set_header("Content-Type", "text/html; charset=utf-8")
            self.set_header("Cache-Control", "no-store")
            self.finish(f.read())


class RootHandler(Base):
    async def get(self):
        self.redirect("/status", permanent=False)


class StaticHandler(tornado.web.StaticFileHandler):
    def initialize(self, path, service):
        super().initialize(path)
        self.service = service

    async def prepare(self):
        await self.service.authorize(self, ("ui",))


class NotFound(Base):
    methods = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD")

    async def prepare(self):
        raise tornado.web.HTTPError(404)


class _App(tornado.web.Application):
    def find_handler(self, request, **kw):
        # absolute-form request targets ("POST http://host:port/db/execute HTTP/1.1"), which
        # pyrqlite sends after following a 301 and Go's server accepts
        if request.uri.startswith(("http://", "https://")):
            rest = request.uri.split("://", 1)[1]
            slash = rest.find("/")
            request.uri = rest[slash:] if slash >= 0 else "/"
            request.path, _, request.query = request.uri.partition("?")
            from urllib.parse import parse_qs
            request.query_arguments = {k: [x.encode() for x in v] for k, v in
                                       parse_qs(request.query, keep_blank_values=True).items()}
            request.arguments = {k: list(v) for k, v in request.query_arguments.items()}
        return super().find_handler(request, **kw)


def make_app(service: HttpService) -> tornado.web.Application:
    kw = {"service": service}
    return _App([
        (r"/", RootHandler, kw),
        (r"/db/execute/?", ExecuteHandler, kw),
        (r"/db/query/?", QueryHandler, kw),
        (r"/db/request/?", RequestHandler, kw),
        (r"/db/backup/?", BackupHandler, kw),
        (r"/db/load/?", LoadHandler, kw),
        (r"/status/?", StatusHandler, kw),
        (r"/nodes/?", NodesHandler, kw),
        (r"/readyz/?", ReadyHandler, kw),
        (r"/leader/?", LeaderHandler, kw),
        (r"/remove/?", RemoveHandler, kw),
        (r"/join/?", JoinHandler, kw),
        (r"/ws", EventSocket, kw),
        (r"/dashboard/?", DashboardHandler, kw),
        (r"/static/(.*)", StaticHandler, {"path": STATIC_DIR, "service": service}),
        (r"/ddb/cluster", ClusterHandler, kw),
        (r"/ddb/faults", FaultsHandler, kw),
        (r"/ddb/control", ControlHandler, kw),
    ], default_handler_class=NotFound, default_handler_args=kw, compress_response=False,
        websocket_max_message_size=64 << 10, autoreload=False, serve_traceback=False,
        log_function=_log_request)


def _log_request(handler) -> None:
    if handler.get_status() >= 500:
        log.warning("%d %s %s", handler.get_status(), handler.request.method, handler.request.path)


async def start_http(server) -> HttpService:
    return await HttpService(server).start()
