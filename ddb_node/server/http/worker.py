"""An HTTP read worker: a process of its own that accepts the node's HTTP connections and
answers the reads it can from the database file, on another core than the node's loop.

One Python process serves one core; a read at level `none` is a few microseconds of SQLite
inside ~150 µs of HTTP, JSON and request plumbing (~100 µs by the short path, quick_read). The node (http.workers) binds the API's
listening socket and starts N of these on it; the kernel spreads the connections.

A worker answers only plain successful reads -- `/db/query` at level none, and weak or
linearizable while the node leads -- with the node's own code: the same Router, SqlEndpoint
and HttpService.run_statements, whose `server.handle` here runs the read on a read-only
connection of the database file (sql.reader). Everything else, and every read it cannot
answer with a plain success (an error, a statement that writes, a read past its time
budget, a follower's weak read), is never answered here: the connection itself, with the
bytes read from it, is handed to the node (SCM_RIGHTS over the worker channel), which
serves it from then on exactly as if it had accepted it. So every answer that is not a
successful read is the node's, byte for byte, and writes never pass through a worker.

To know where one request ends, a worker feeds its parser one request at a time (a head and
a Content-Length body); pipelined requests wait their turn. Linearizable reads share one
ReadIndex round trip to the node per batch (ReadIndexRounds). The node pushes what decides
a weak read -- whether it leads, valid for one election timeout, renewed on every tick --
and a generation that moves when a snapshot replaces the database file.

    python -m ddb_node.server.http.worker CONFIG_JSON     (started by the node only)
"""
from __future__ import annotations

import asyncio
import ctypes
import json
import logging
import os
import re
import signal
import socket
import sys
import time

import apsw

from ddb_node.server.loop import run
from ddb_node.protocol import LINEARIZABLE, NONE, WEAK, ClientRequest
from ddb_node.sql import Request
from ddb_node.sql.classify import PrepareCache, classify
from ddb_node.sql.limits import Limits
from ddb_node.sql.reader import Reader

from . import worker_channel as channel
from .auth import CredentialStore
from .metrics import Metrics
from .quick_read import QuickRead
from .routes import Router
from .server import HttpProtocol, HttpServer, Response
from .service import HttpService
from .workers import listen_like

log = logging.getLogger("ddb.http.worker")

READ_BUDGET_S = 0.05          # a read that runs longer goes to the node (its reader threads)
MAX_BODY_HERE = 32 << 10      # a larger request body goes to the node with its connection
MAX_BUFFERED = 64 << 10       # pipelined bytes kept while a request is answered
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*(\d+)[ \t]*\r\n", re.I)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:", re.I)
_QUERY_PATHS = (b"/db/query", b"/db/query/")
COUNTS_EVERY_S = 0.25
MOVE = Response(0)            # head(): "not here", the connection goes to the node


class Handoff(Exception):
    """This request is not answered here: its connection goes to the node."""


# ====================================================================== the node's view
class NodeView:
    """What the node last said: whether it leads (until when) and its file generation."""

    def __init__(self):
        self.leader = False
        self.until = 0.0
        self.term = 0
        self.leader_id = 0
        self.gen = 0
        self.schema = 0

    def update(self, st: dict) -> None:
        self.leader = bool(st.get("leader"))
        self.until = float(st.get("until") or 0.0)
        self.term = int(st.get("term") or 0)
        self.leader_id = int(st.get("leader_id") or 0)
        self.gen = int(st.get("gen") or 0)
        self.schema = int(st.get("schema") or 0)

    def leads(self) -> bool:
        return self.leader and time.monotonic() < self.until


class ReadIndexRounds:
    """Linearizable reads share ReadIndex requests: the reads that arrive in one turn of the
    loop wait for one request, sent at the end of that turn -- after each of them arrived
    (diss. 6.4). Requests go out at once, several may be in flight: the node's core runs one
    quorum round at a time and answers every request waiting for it with that round."""

    def __init__(self, ask):
        self.ask = ask                  # ask(rid): send the node a read_index request
        self.rid = 0
        self.gathering: list[asyncio.Future] | None = None    # the reads of this turn
        self.waiting: dict[int, list[asyncio.Future]] = {}

    async def wait(self) -> int:
        """One future per read (a cancelled read cancels only its own): cheaper than a
        shared future behind asyncio.shield, which adds a future and two callbacks a read."""
        loop = asyncio.get_running_loop()
        if self.gathering is None:
            self.gathering = []
            loop.call_soon(self._send)
        fut = loop.create_future()
        self.gathering.append(fut)
        return await fut

    def _send(self) -> None:
        batch, self.gathering = self.gathering, None
        self.rid += 1
        self.waiting[self.rid] = batch
        try:
            self.ask(self.rid)
        except OSError as e:
            self.waiting.pop(self.rid, None)
            for fut in batch:
                if not fut.done():
                    fut.set_exception(Handoff(str(e)))

    def answered(self, rid: int, index, error) -> None:
        batch = self.waiting.pop(rid, None)
        if batch is None:
            return
        ok = isinstance(index, int) and error is None
        for fut in batch:
            if fut.done():
                continue
            if ok:
                fut.set_result(index)
            else:
                fut.set_exception(Handoff(str(error)))


# ====================================================================== local reads
class LocalReads:
    """The `server.handle(body)` that HttpService.run_statements calls: a read served here
    with the node's reply shape, or Handoff."""

    def __init__(self, cfg: dict, view: NodeView, rounds: ReadIndexRounds):
        self.cfg = cfg
        self.id = int(cfg["node"])
        self.view = view
        self.rounds = rounds
        self.limits = Limits(**cfg["limits"])
        self.gen = None
        self.reader: Reader | None = None
        self.schema_conn: apsw.Connection | None = None
        self.cache = PrepareCache()
        self.served = 0

    def _open(self) -> None:
        self.close()
        self.reader = Reader(self.cfg["db"], limits=self.limits,
                             statement_cache=int(self.cfg["statement_cache"]),
                             extension_files=tuple(self.cfg["extension_files"]), busy_timeout_ms=0,
                             watch_schema=False)
        # classification prepares on a connection of its own: setting an authorizer there
        # would expire the reader's cached statements
        self.schema_conn = apsw.Connection(self.cfg["db"], flags=apsw.SQLITE_OPEN_READONLY)
        self.schema_conn.set_busy_timeout(0)
        self.cache = PrepareCache()
        self.gen = (self.view.gen, self.view.schema)

    def close(self) -> None:
        if self.reader is not None:
            self.reader.close()
            self.reader = None
        if self.schema_conn is not None:
            self.schema_conn.close()
            self.schema_conn = None

    async def handle(self, body: dict) -> dict:
        if body.get("op") != "request":
            raise Handoff("not a SQL request")
        t0 = time.perf_counter()
        try:
            req = ClientRequest.from_wire(body)
        except Exception:           # noqa: BLE001  the node words the error
            raise Handoff("a bad request") from None
        if req.min_index is not None or req.transaction or req.chunk_rows or req.max_rows:
            raise Handoff("a read this worker does not decide")
        return await self.serve(req.level, req.statements, req.timeout, req.freshness,
                                req.max_bytes, t0)

    async def serve(self, level: str, statements: list, timeout, freshness, max_bytes,
                    t0: float) -> dict:
        """A read of `statements` at `level` -> the node's reply shape, or Handoff (what
        `handle` does once the request frame is parsed; QuickRead calls it directly)."""
        if level == NONE:
            if freshness and not self.view.leads():
                raise Handoff("freshness is the node's to judge")
        elif level not in (WEAK, LINEARIZABLE) or not self.view.leads():
            raise Handoff("the leader's read")
        if self.gen != (self.view.gen, self.view.schema) or self.reader is None:
            self._open()          # a new file, or a new schema (see QueryEngine._run_one)
        sreq = Request(statements=statements, level=level, timeout=timeout)
        # keyed on the node's schema generation, not `PRAGMA schema_version` (~10 µs a read
        # here): a verdict kept a moment past a schema change is still right, since whether
        # a text reads or writes does not depend on the schema, and a text that does not
        # prepare is never kept
        cache = self.cache.at_schema(self.gen)
        if not _judged_read(sreq, cache):
            try:
                cls = classify(sreq, self.schema_conn, self.limits, self.reader.nondeterministic,
                               cache)
            except Exception:           # noqa: BLE001
                raise Handoff("the node words errors") from None
            if cls.kind != "read":
                raise Handoff("a statement writes")
        at_least = 0
        if level == LINEARIZABLE:
            at_least = await self.rounds.wait()
            if self.gen != (self.view.gen, self.view.schema):
                self._open()
        try:
            results, index = self.reader.read(sreq, max_bytes=max_bytes, checked=True,
                                              at_least=at_least, budget_s=READ_BUDGET_S)
        except Exception:           # noqa: BLE001  errors, a stale state, a long read
            raise Handoff("the node serves it") from None
        self.served += 1
        return {"results": [x.to_dict(analysis=False) for x in results],
                "index": at_least if level == LINEARIZABLE else index, "level": level,
                "time": time.perf_counter() - t0, "ok": True, "node": self.id,
                "term": self.view.term}


def _judged_read(req: Request, cache: PrepareCache) -> bool:
    """The request is one statement, without parameters or a timeout, whose text `classify`
    judged a read at this schema (the verdict is kept): the same text gets the same verdict
    and passed validation then, so it need not be classified again (most reads)."""
    if len(req.statements) != 1 or req.timeout is not None:
        return False
    st = req.statements[0]
    if st.params is not None:
        return False
    verdict = cache.judged.get((st.sql, False))
    if type(verdict) is not tuple:
        return False
    for _piece, kind, _deferred in verdict:
        if kind != "read":
            return False
    return True


class WorkerService:
    """The part of HttpService that the Router and SqlEndpoint use for a read, with the
    same methods (run_statements, call, authorized): one definition of rqlite's answers."""

    run_statements = HttpService.run_statements
    call = HttpService.call
    base_request = HttpService.base_request
    _capped = HttpService._capped
    authorized = HttpService.authorized

    def __init__(self, cfg: dict, local: LocalReads):
        self.server = local
        self.metrics = Metrics()
        self.stats = {"requests": 0, "bad_requests": 0, "auth_fail": 0, "too_large": 0,
                      "connections_refused": 0, "redirects": 0}
        self.max_body = int(cfg["max_body"])
        self.max_load = int(cfg["max_body"])
        self.max_result = int(cfg["max_result"])
        self.creds = CredentialStore.load(cfg["auth"]) if cfg.get("auth") else None

    def _mark_writes(self, stmts, pending, out):
        raise Handoff("a statement writes")


class WorkerApp:
    """The HttpServer application: /db/query reads here, all else to the node."""

    def __init__(self, service: WorkerService, quick: bool | None = None):
        """`quick`: take plain GET reads by the short path (default: unless
        DDB_HTTP_QUICK_READ=0, for A/B measurements)."""
        if quick is None:
            quick = os.environ.get("DDB_HTTP_QUICK_READ", "1") != "0"
        self.router = Router(service)
        self.quick = QuickRead(service, service.server) if quick else None

    def head(self, req):
        if req.path.encode("latin-1") not in _QUERY_PATHS or req.method not in ("GET", "POST") \
                or req.upgrade or "expect" in req.headers:
            return 0, MOVE
        return self.router.head(req)

    def too_large(self, req):
        return MOVE

    def answer_soon(self, req, reply) -> bool:
        """A plain `none` or `weak` read by the short path, run to its end right here: it
        never waits (only a linearizable read waits, for its ReadIndex round), so it needs
        no task -- one asyncio task per read was ~10% of a worker's CPU. reply(None) hands
        the connection to the node, as a None from `handle` does."""
        quick = self.quick.accepts(req) if self.quick is not None else None
        if quick is None or quick[1] == LINEARIZABLE:
            return False
        coro = self.quick.answer(req, *quick)
        try:
            coro.send(None)
        except StopIteration as done:
            reply(done.value)
            return True
        except Handoff:
            reply(None)
            return True
        except Exception:           # noqa: BLE001  as WorkerProtocol._serve
            log.exception("worker: read failed: %s %s", req.method, req.path)
            reply(None)
            return True
        coro.close()                # it waited after all: the node answers it
        log.error("worker: a %s read waited on the short path", quick[1])
        reply(None)
        return True

    async def handle(self, req) -> Response | None:
        try:
            quick = self.quick.accepts(req) if self.quick is not None else None
            if quick is not None:
                return await self.quick.answer(req, *quick)
            resp = await self.router.handle(req)
        except Handoff:
            return None
        if resp.status != 200 or resp.stream is not None or resp.upgrade is not None:
            return None          # the node gives every answer but a plain success
        return resp


class WorkerProtocol(HttpProtocol):
    """HttpProtocol fed one whole request at a time, so that the connection can be handed
    to the node from the first byte of any request the worker does not answer."""

    def __init__(self, server):
        super().__init__(server)
        self._raw = bytearray()
        self._current = b""          # the request being answered, as it came
        self._busy = False
        self._inline = False         # answered by answer_soon while the parser ran

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self._raw += data
        if len(self._raw) > MAX_BUFFERED and not self.paused:
            self.paused = True
            self.transport.pause_reading()
        if not self._busy:
            self._next()

    def _next(self) -> None:
        while True:
            raw = self._raw
            end = raw.find(b"\r\n\r\n")
            if end < 0:
                if len(raw) > self.server.max_header_size:
                    self._move()
                return
            head = bytes(raw[:end + 4])
            if _CHUNKED.search(head) or len(_CONTENT_LENGTH.findall(head)) > 1:
                return self._move()
            m = _CONTENT_LENGTH.search(head)
            n = int(m.group(1)) if m else 0
            if n > MAX_BODY_HERE:
                return self._move()
            if len(raw) < end + 4 + n:
                return
            self._current = bytes(raw[:end + 4 + n])
            del raw[:end + 4 + n]
            if self.paused and len(raw) <= MAX_BUFFERED:
                self.paused = False
                self.transport.resume_reading()
            self._busy = True
            self._inline = False
            try:
                self.parser.feed_data(self._current)
            except Exception:           # noqa: BLE001  a parse error: the node answers it
                return self._move()
            if self.closing:
                return
            if self._inline or (self.task is None and self._soon_req is None):
                # answered while the parser ran (answer_soon), or the parser made no
                # request of it (a bare CRLF): on to the next
                self._busy = False
                self._current = b""
                continue
            return

    def _answered_soon(self, resp) -> None:
        """WorkerApp.answer_soon's answer, given while the parser runs (never re-entering
        it: `_next` goes on once `feed_data` returns). None: the node's to answer."""
        req, self._soon_req = self._soon_req, None
        if self.closing or req is None:
            return
        if self._answer(resp, req):
            self._inline = True

    def _answer(self, resp, req) -> bool:
        """Write the worker's answer (None: hand the connection over) -> whether the
        connection goes on with its next request."""
        if resp is None:
            self._move()
            return False
        self._write(resp, req)
        if not req.keep_alive:
            self.closing = True
            self.transport.close()
            return False
        self.deadline = self.loop.time() + self.server.idle_timeout
        return True

    def _refuse(self, resp, req=None) -> None:
        self._move()                 # every refusal is the node's to make

    async def _serve(self) -> None:
        try:
            req = self.queue.popleft()
            try:
                resp = await self.server.app.handle(req)
            except asyncio.CancelledError:
                raise
            except Exception:       # noqa: BLE001
                log.exception("worker: read failed: %s %s", req.method, req.path)
                resp = None
            if self.closing or not self._answer(resp, req):
                return
        finally:
            self.task = None
        self._busy = False
        self._current = b""
        if not self.closing:
            self._next()

    def _move(self) -> None:
        if self.closing:
            return
        self.closing = True
        self.server.connections.discard(self)
        self.deadline = None
        data = self._current + bytes(self._raw)
        self._current, self._raw = b"", bytearray()
        self.transport.pause_reading()
        asyncio.ensure_future(self._hand_over(data))

    async def _hand_over(self, data: bytes) -> None:
        t = self.transport
        if t.get_write_buffer_size():
            t.set_write_buffer_limits(high=0)     # an answer before this one is still going out
            if self._writable is None and t.get_write_buffer_size():
                self.pause_writing()
            if self._writable is not None:
                await self._writable
        if t.is_closing():
            return
        try:
            self.server.hand_over(t.get_extra_info("socket").fileno(), data)
        except OSError as e:
            log.warning("worker: could not hand a connection to the node: %s", e)
        t.abort()


# ====================================================================== the process
class Worker:
    def __init__(self, cfg: dict):
        self.cfg = cfg
        self.ctl = socket.socket(fileno=int(cfg["ctl_fd"]))
        self.ctl.setblocking(False)
        self.view = NodeView()
        self.rounds = ReadIndexRounds(lambda rid: channel.send(self.ctl, ["read_index", rid]))
        self.local = LocalReads(cfg, self.view, self.rounds)
        self.service = WorkerService(cfg, self.local)
        self.httpd = HttpServer(WorkerApp(self.service), max_connections=int(cfg["max_connections"]),
                                max_header_size=64 << 10, idle_timeout=30.0, header_timeout=30.0,
                                body_timeout=30.0, protocol=WorkerProtocol)
        self.httpd.hand_over = self.hand_over
        self.handoffs = 0
        self.done = None

    def hand_over(self, fd: int, data: bytes) -> None:
        """Send the connection and the bytes read from it to the node (blocking briefly if
        the channel is full: the node reads it on every turn of its loop)."""
        self.handoffs += 1
        hid = self.handoffs
        chunks = [data[i:i + channel.CHUNK] for i in range(0, len(data), channel.CHUNK)] or [b""]
        self.ctl.setblocking(True)
        try:
            self.ctl.settimeout(5.0)
            for i, chunk in enumerate(chunks):
                channel.send(self.ctl, ["handoff", hid, chunk, i + 1 < len(chunks)],
                             (fd,) if i == 0 else ())
        finally:
            self.ctl.setblocking(False)

    async def _report_counts(self) -> None:
        """What this worker did, for the node's /status (reads answered, connections handed)."""
        last = None
        while True:
            await asyncio.sleep(COUNTS_EVERY_S)
            now = [self.local.served, self.handoffs]
            if now != last:
                last = now
                try:
                    channel.send(self.ctl, ["counts", *now])
                except OSError:
                    pass

    def _readable(self) -> None:
        for msg, fds in channel.waiting(self.ctl):
            for fd in fds:
                os.close(fd)
            if msg is None:           # the node is gone
                if not self.done.done():
                    self.done.set_result(None)
                return
            kind = msg[0] if msg else None
            if kind == "state" and len(msg) == 2 and isinstance(msg[1], dict):
                self.view.update(msg[1])
            elif kind == "index" and len(msg) == 4:
                self.rounds.answered(msg[1], msg[2], msg[3])

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        self.done = loop.create_future()
        loop.add_reader(self.ctl.fileno(), self._readable)
        for reserved in self.cfg["listen"]:
            await self.httpd.serve_on(listen_like(reserved))
        channel.send(self.ctl, ["ready"])
        counting = asyncio.ensure_future(self._report_counts())
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, lambda: self.done.done() or self.done.set_result(None))
        try:
            await self.done
        finally:
            counting.cancel()
            loop.remove_reader(self.ctl.fileno())
            self.httpd.close()
            self.local.close()


def _die_with_parent(parent: int) -> None:
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)   # PR_SET_PDEATHSIG
    except OSError:
        pass
    if os.getppid() != parent:
        os._exit(0)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    cfg = json.loads(argv[0])
    _die_with_parent(int(cfg["parent"]))
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s worker %(levelname)s %(message)s")
    run(Worker(cfg).run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
