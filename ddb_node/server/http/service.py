"""rqlite-compatible HTTP API, event stream and dashboard, in the node's asyncio loop.

Every SQL endpoint is a thin translation onto ``NodeServer.handle`` -- the same entry point that
serves the zmq client protocol -- so consistency levels, forwarding to the leader, redirects
and timeouts behave exactly as they do for ddb's own client. This module holds the service
(configuration, lifecycle, the translation of rqlite statements into requests, queued
writes); ``http.server`` speaks HTTP/1.1, ``http.routes`` has the endpoints, ``http.format``
rqlite's shapes, ``http.errors`` the mapping of failures, ``http.ws`` the event stream.

Contact with the node is narrow: ``server.handle(body)`` for every operation, and
read-only looks at its status, leader, members and Raft state.

Endpoints: /db/execute, /db/query, /db/request, /db/backup, /db/load, /boot, /snapshot,
/reap, /status, /nodes, /readyz, /leader, /remove, /join, /debug/vars, /ws, /dashboard (+
/static/*), and ddb's own /ddb/faults, /ddb/cluster, /ddb/control.

Robustness: bodies have a per-endpoint size limit (413 before the body is read), headers and
bodies have read timeouts, the number of open connections is capped, garbage gives 400, and
no handler does more than bounded CPU work per turn of the loop, so a flood of bad requests
never delays a Raft heartbeat.

Configuration (NodeOptions attributes if present, else environment variables):
``http.auth`` / DDB_HTTP_AUTH (users file), ``http_cert``/``http_key`` / DDB_HTTP_CERT,
DDB_HTTP_KEY (TLS), ``http_ca`` / DDB_HTTP_CA (verify client certificates: mutual TLS),
DDB_HTTP_MAX_BODY (bytes for SQL endpoints, default 8 MiB), DDB_HTTP_MAX_LOAD (bytes for
/db/load, default 64 MiB), DDB_HTTP_MAX_CONNECTIONS (default 1024), DDB_HTTP_MAX_RESULT (about
how many bytes of rows one statement's answer may carry, default 64 MiB; a longer result is an
error that says how to page).
"""
from __future__ import annotations

import asyncio
import logging
import os
import ssl
import time

from ddb_node.client import AsyncClient
from ddb_node.protocol import ClientRequest
from ddb_node.sql import BadRequest, Request

from . import format as fmt
from .auth import CredentialStore, parse_basic
from .status import advertised_http
from .errors import HttpError, StatementFailed, TransactionFailed, WritesRefused, from_error
from .metrics import Metrics
from .routes import Router
from .server import HttpServer
from .workers import WorkerPool, reserve_port
from .ws import EventHub

log = logging.getLogger("ddb.http")

READONLY_ERROR = "attempt to write a readonly database"


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
        self.auth_path = auth
        self.creds = CredentialStore.load(auth) if auth else None
        self.cert = _opt(opts, "http_cert", "DDB_HTTP_CERT")
        self.key = _opt(opts, "http_key", "DDB_HTTP_KEY")
        self.ca = _opt(opts, "http_ca", "DDB_HTTP_CA")
        self.max_body = int(_opt(opts, "http_max_body", "DDB_HTTP_MAX_BODY", 8 << 20))
        self.max_load = int(_opt(opts, "http_max_load", "DDB_HTTP_MAX_LOAD", 64 << 20))
        self.max_result = int(_opt(opts, "http_max_result", "DDB_HTTP_MAX_RESULT", 64 << 20))
        self.max_conns = int(_opt(opts, "http_max_connections", "DDB_HTTP_MAX_CONNECTIONS", 1024))
        self.workers_wanted = int(_opt(opts, "http_workers", "DDB_HTTP_WORKERS", 0))
        self.workers = None             # http.workers.WorkerPool, when reads have workers
        self.scheme = "https" if self.cert else "http"
        self.ws_scheme = "wss" if self.cert else "ws"
        self.hub = EventHub(server)
        self.metrics = Metrics()
        self.queue = WriteQueue(self)
        self.http_cache: dict[int, str] = {}
        self.stats = {"requests": 0, "bad_requests": 0, "auth_fail": 0, "too_large": 0,
                      "connections_refused": 0, "redirects": 0}
        self.started = time.time()
        self._client = None
        self.httpd: HttpServer | None = None
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
        self.httpd = HttpServer(Router(self), max_connections=self.max_conns, max_header_size=64 << 10,
                                idle_timeout=30.0, header_timeout=30.0, body_timeout=30.0,
                                ssl=ssl_ctx, on_refused=self._refused)
        n = self.workers_wanted
        if n > 0 and (ssl_ctx is not None or self.server.sm.memory):
            log.warning("node %d: no HTTP workers with %s", self.server.id,
                        "TLS" if ssl_ctx is not None else "the database in memory")
            n = 0
        if n > 0:
            self.sockets = [reserve_port(host, int(port))]
            self.httpd.serving_elsewhere()
            self.workers = WorkerPool(self, n, self.sockets)
            await self.workers.start()
        else:
            self.sockets = await self.httpd.listen(host, int(port), backlog=1024)
        self.queue.start()
        return self

    def _refused(self) -> None:
        self.stats["connections_refused"] += 1

    def stop(self) -> None:
        self.hub.close()
        self.queue.stop()
        if self.workers is not None:
            self.workers.close()
        if self.httpd is not None:
            self.httpd.close()
        if self._client is not None:
            c, self._client = self._client, None
            asyncio.ensure_future(c.close())

    # ---- helpers -------------------------------------------------------------------
    async def authorized(self, req, perms: tuple[str, ...]) -> bool:
        """May this request go ahead (users file: Basic credentials or `*`)?"""
        if self.creds is None:
            return True
        user, pw = parse_basic(req.headers.get("authorization"))
        ok = await self.creds.check(user, pw, perms)
        self.metrics.http["auth_ok" if ok else "auth_fail"] += 1
        return ok

    def peer_client(self):
        if self._client is None:
            self._client = AsyncClient([self.server.opts.client_addr], cluster_id=self.server.cluster_id,
                                       curve=self.server.opts.curve)
        return self._client

    def member_http(self) -> dict[int, str | None]:
        """Each member's HTTP address as the others are told it (this node's: bound)."""
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
        http = advertised_http(st)
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
        return checked(await self.server.handle(body))

    def base_request(self, flags: fmt.Flags, *, readonly: bool = False,
                     level: str | None = None) -> ClientRequest:
        """The node request rqlite's flags ask for (its statements still to be set)."""
        timeout = flags.timeout or flags.db_timeout or flags.linearizable_timeout
        return ClientRequest([], level=level or flags.level or "weak",
                             transaction=bool(flags.transaction), timeout=timeout or None,
                             freshness=flags.freshness, redirect=bool(flags.redirect),
                             min_index=_min_index(flags),
                             read_only=readonly, max_bytes=self.max_result)

    async def run_statements(self, stmts: list, flags: fmt.Flags, *, readonly: bool = False,
                             level: str | None = None, first: dict | None = None) -> dict:
        """Run rqlite-style statements -> {"results": [per statement, list of ddb results],
        "index": raft index or None, "node": the answering node, "level": the level served}. A statement SQLite rejects when preparing (syntax, a
        forbidden statement) gets its own error result and, without ``transaction``, the other
        statements still run, as in rqlite. `first`: the node's reply to the first request
        this would send, already had (the short write path's, http.quick_write)."""
        n = len(stmts)
        out: list[list | None] = [None] * n
        pending = list(range(n))
        index = None
        meta: dict = {}      # the node that answered and the level it served
        base = self.base_request(flags, readonly=readonly, level=level)
        for k in list(pending):
            fixed = fmt.FIXED_PRAGMAS.get(fmt.pragma_read(stmts[k]))
            if fixed is not None:
                out[k] = [fixed]
                pending.remove(k)
        # read_only: one classification in the common case (all reads): the node refuses a
        # request with a write (nothing runs) and only then are the writes found and answered here
        guard = 0
        while pending and guard <= n:
            guard += 1
            base.statements = [stmts[i] for i in pending]
            body = base.to_wire()
            try:
                if first is not None:
                    had, first = first, None
                    resp = checked(had)
                else:
                    resp = await self.call(body)
            except WritesRefused:
                before = len(pending)
                self._mark_writes(stmts, pending, out)
                if len(pending) == before:      # cannot tell which: refuse them all, run none
                    for k in pending:
                        out[k] = [{"error": READONLY_ERROR}]
                    pending = []
                continue
            except StatementFailed as se:
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
            meta = {"node": resp.get("node"), "level": resp.get("level")}
            per: dict[int, list] = {}
            for r in resp.get("results") or []:
                per.setdefault(r.get("statement", 0), []).append(r)
            for j, k in enumerate(pending):
                out[k] = [self._capped(r) for r in per.get(j, [{}])]
            pending = []
        return {"results": [r for r in out if r is not None], "index": index, **meta}

    def _capped(self, r: dict) -> dict:
        """A result the node cut at the answer limit becomes an error that says how to page."""
        if not r.get("truncated"):
            return r
        return {"error": f"the result is larger than this HTTP API's answer limit of "
                         f"{self.max_result:,} bytes (DDB_HTTP_MAX_RESULT): page it with "
                         "LIMIT/OFFSET or a WHERE on the key (WHERE id > last_id LIMIT n), or "
                         "stream it with the Python client's query_iter()"}

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


def checked(resp: dict) -> dict:
    """A node reply, or its failure as an HttpError or a statement error."""
    if resp.get("ok", True):
        return resp
    raise from_error(resp.get("error") or {"type": "Internal", "message": "request failed"})


def _min_index(flags) -> int | None:
    """`?min_index=N` (read-your-writes: a write's X-DDB-Index or raft_index)."""
    v = flags.raw.get("min_index")
    if v is None:
        return None
    try:
        n = int(v)
    except ValueError:
        raise HttpError(400, "min_index must be a log index") from None
    if n < 0:
        raise HttpError(400, "min_index must be a log index")
    return n


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
            counts = self.service.metrics.http
            while True:
                try:
                    counts["queued_executions_num_stmts_tx"] += len(stmts)
                    await self.service.run_statements(stmts, flags)
                    counts["queued_executions_ok"] += 1
                    break
                except asyncio.CancelledError:
                    raise
                except HttpError as e:
                    if e.status in (400,):
                        self.stats["failed_statements"] += len(stmts)
                        counts["queued_executions_failed"] += 1
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


async def start_http(server) -> HttpService:
    return await HttpService(server).start()

