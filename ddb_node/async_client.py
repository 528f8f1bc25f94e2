"""`AsyncClient`: the asyncio twin of `Client` (see CLIENT.md). The same route
(`client_shared.client_route`), the same operations, the same errors; many requests in
flight on one socket per node."""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Callable, Iterable

import zmq
import zmq.asyncio

from ddb_node.changes_client import _Position, aiter_changes
from ddb_node.client_shared import (CHUNK_ROWS, ClientSettings, choose_nodes_reply, client_route,
                                    cluster_view, one_statement, statement_list)
from ddb_node.errors import ConnectionFailed, DdbError, NodeDown, StatementError, Timeout, from_reply
from ddb_node.net.codec import KIND_REQUEST, KIND_RESPONSE, FrameError, decode_client, encode_client
from ddb_node.net.client_wire import uses_tcp
from ddb_node.net.liveness import Link
from ddb_node.net.tcp_link import AsyncTcpLink
from ddb_node.protocol import LEVELS, ClientRequest, statement
from ddb_node.reduce import reduce_results
from ddb_node.response import Response, raise_statement_errors
from ddb_node.routing import AwaitSuccessor, LeaderMoved, Refresh, Send, Sleep, norm_addr
from ddb_node.transaction import AsyncTransaction, run_transaction_async


class AsyncClient(ClientSettings):
    """asyncio client: the same operations, awaitable, many in flight on one socket per node
    (the same arguments as Client: see ClientSettings)."""

    def __init__(self, addresses: str | Iterable[str], **settings):
        super().__init__(addresses, **settings)
        self._tcp = uses_tcp(self.curve)      # the wire: see net/client_wire.py
        self._ctx = None if self._tcp else zmq.asyncio.Context()
        self._links: dict = {}                 # addr -> AsyncTcpLink, or zmq Link with CURVE
        self._readers: list[asyncio.Task] = []
        self._waiters: dict[int, asyncio.Future] = {}
        self._inflight: dict[str, set[int]] = {}   # addr -> ids of requests waiting on it

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for t in self._readers:
            t.cancel()
        await asyncio.gather(*self._readers, return_exceptions=True)
        for link in self._links.values():
            link.close()
        self._links.clear()
        if self._ctx is not None:
            self._ctx.term()

    def _link(self, addr: str):
        link = self._links.get(addr)
        if link is None:
            if self._tcp:
                link = self._links[addr] = AsyncTcpLink(addr, self._answer,
                                                        lambda: self._fail_inflight(addr))
            else:
                link = self._links[addr] = Link(self._ctx, addr, self.curve)
                self._readers += [asyncio.ensure_future(self._reader(link.sock)),
                                  asyncio.ensure_future(self._watch(link))]
        return link

    def _fail_inflight(self, addr: str) -> None:
        """The connection to addr was lost: the requests waiting on it will not be answered."""
        for rid in self._inflight.pop(addr, ()):
            fut = self._waiters.get(rid)
            if fut is not None and not fut.done():
                fut.set_exception(NodeDown(f"{addr} closed the connection; the outcome is unknown"))

    def _down(self, addr: str) -> bool:
        link = self._links.get(addr)
        return link is not None and link.up is False

    async def _watch(self, link: Link) -> None:
        """Follow the link's monitor; a lost connection fails the requests waiting on it."""
        while True:
            try:
                frames = await link.monitor.recv_multipart()
            except (asyncio.CancelledError, zmq.ZMQError):
                return
            drops = link.drops
            link.note(frames)
            if link.drops != drops:
                self._fail_inflight(link.addr)

    async def _reader(self, s) -> None:
        while True:
            try:
                frame = await s.recv()
            except (asyncio.CancelledError, zmq.ZMQError):
                return
            self._answer(frame)

    def _answer(self, frame: bytes) -> None:
        try:
            cluster, body = decode_client(frame, None, KIND_RESPONSE)
        except FrameError:
            return
        if cluster and not self.cluster_id:
            self.cluster_id = cluster
        fut = self._waiters.pop(body.get("id"), None)
        if fut is not None and not fut.done():
            fut.set_result(body)

    async def call_addr(self, addr: str, body: dict, timeout: float) -> dict:
        """One request to one node: NodeDown as soon as its connection drops,
        ConnectionFailed if it does not answer in time."""
        return await self._attempt(addr, body, timeout, watch_leader=False)

    async def _attempt(self, addr: str, body: dict, timeout: float, *, watch_leader: bool) -> dict:
        """As Client._attempt: with `watch_leader`, an answer `probe_after` late makes us ask
        the other members for a successor, and LeaderMoved ends the wait when one is named."""
        addr = norm_addr(addr)
        link = self._link(addr)
        if link.up is False:
            raise NodeDown(f"{addr} is down (its connection is closed)")
        rid = next(self._ids)
        fut = asyncio.get_running_loop().create_future()
        self._waiters[rid] = fut
        self._inflight.setdefault(addr, set()).add(rid)
        watcher = None
        try:
            frame = encode_client(self.cluster_id, KIND_REQUEST, dict(body, id=rid))
            if self._tcp:
                link.send(frame)
            else:
                await link.sock.send(frame)
            deadline = time.monotonic() + timeout
            if watch_leader:
                done, _ = await asyncio.wait({fut}, timeout=min(self.probe_after, timeout))
                if not done:
                    watcher = asyncio.ensure_future(
                        self._successor(addr, self._term, max(0.05, deadline - time.monotonic())))
                    done, _ = await asyncio.wait({fut, watcher}, return_when=asyncio.FIRST_COMPLETED,
                                                 timeout=max(0.0, deadline - time.monotonic()))
                    if watcher in done and watcher.result() is not None and not fut.done():
                        self._learn(watcher.result())
                        raise LeaderMoved(f"node {self._leader} leads at term {self._term}")
            return await asyncio.wait_for(fut, max(0.0, deadline - time.monotonic()))
        except asyncio.TimeoutError:
            raise ConnectionFailed(f"no answer from {addr} within {timeout:g}s") from None
        finally:
            if watcher is not None:
                watcher.cancel()
            self._waiters.pop(rid, None)
            self._inflight.get(addr, set()).discard(rid)

    def _learn(self, reply: dict) -> None:
        self.view.learn(*cluster_view(reply, self.members), reply.get("term"))

    async def _successor(self, avoid: str, term: int, wait: float) -> dict | None:
        """The first `nodes` answer from a member other than `avoid` that names a leader,
        not `avoid`, at a term above `term` (a long poll on each), or None within `wait`."""
        deadline = time.monotonic() + wait

        def ask(addr: str, after: int) -> asyncio.Task:
            body = {"op": "nodes", "after_term": after,
                    "timeout": max(0.05, deadline - time.monotonic())}
            t = asyncio.ensure_future(self.call_addr(addr, body, body["timeout"] + 0.5))
            asks[t] = (addr, after)
            return t

        asks: dict[asyncio.Task, tuple[str, int]] = {}
        for a in dict.fromkeys(list(self.members.values()) + self.seeds):
            if a != avoid and not self._down(a):
                ask(a, term)
        try:
            while asks:
                done, _ = await asyncio.wait(list(asks), return_when=asyncio.FIRST_COMPLETED)
                for t in done:
                    addr, after = asks.pop(t)
                    try:
                        r = t.result()
                    except ConnectionFailed:
                        continue
                    members, lid = cluster_view(r, self.members) if r.get("ok") else ({}, None)
                    if r.get("term", 0) <= after or lid is None:
                        continue          # its long poll ran out: nothing new
                    if members[lid] != avoid:
                        return r
                    # it names `avoid` at a newer term than we knew: ask about that term
                    self._term = max(self._term, r["term"])
                    if time.monotonic() < deadline:
                        ask(addr, r["term"])
            return None
        finally:
            for t in asks:
                t.cancel()

    async def refresh(self, timeout: float | None = None, *, prefer: str | None = None,
                      avoid: str | None = None) -> dict:
        """As Client.refresh: ask every known node at once; believe the one naming a leader
        at the highest term (`prefer` breaks ties; `avoid` is asked only if nothing else
        answers)."""
        timeout = timeout or min(self.timeout, 3.0)

        async def ask(a):
            try:
                return a, await self.call_addr(a, {"op": "nodes"}, timeout)
            except ConnectionFailed:
                return a, None

        async def ask_all(addrs):
            return {a: r for a, r in await asyncio.gather(*map(ask, addrs)) if r and r.get("ok")}
        replies = await ask_all([a for a in self.view.candidates() if a != avoid])
        if not replies and avoid:
            replies = await ask_all([norm_addr(avoid)])
        if not replies:
            raise ConnectionFailed(f"no node reachable at {', '.join(self.view.candidates())}")
        best = choose_nodes_reply(replies, prefer=norm_addr(prefer) if prefer else None)
        self._learn(best)
        return best

    async def call(self, body: dict, timeout: float | None = None, *,
                   to_leader: bool = True) -> dict:
        """Send through the shared route (routing.route: the same decisions as Client's):
        the ok reply, or the error raised as Client raises it."""
        if self._closed:
            raise DdbError("the client is closed")
        steps = client_route(self, body, to_leader, timeout, self._down)
        outcome = None
        while True:
            try:
                step = steps.send(outcome)
            except StopIteration as done:
                return done.value
            outcome = await self._perform(step)

    async def _perform(self, step):
        if isinstance(step, Send):
            try:
                return await self._attempt(step.addr, step.body, step.timeout,
                                           watch_leader=step.watch_leader)
            except (LeaderMoved, NodeDown, ConnectionFailed) as e:
                return e
        if isinstance(step, Refresh):
            try:
                await self.refresh(step.timeout, prefer=step.prefer, avoid=step.avoid)
            except ConnectionFailed as e:
                return e
            return None
        if isinstance(step, AwaitSuccessor):
            self._leader = None
            r = await self._successor(step.dead, self._term, step.wait)
            if r is not None:
                self._learn(r)
            return None
        if isinstance(step, Sleep):
            await asyncio.sleep(step.seconds)
            return None
        raise TypeError(f"unknown route step {step!r}")  # pragma: no cover

    async def _call_in_session(self, body: dict, timeout: float | None) -> dict:
        sess = self._free_sessions.pop() if self._free_sessions else [uuid.uuid4().hex, 0]
        sess[1] += 1
        body["session"] = [sess[0], sess[1]]
        try:
            reply = await self.call(body, timeout)
            if isinstance(reply.get("index"), int) and reply["index"] > self.last_index:
                self.last_index = reply["index"]      # read-your-writes (`min_index`)
            return reply
        finally:
            self._free_sessions.append(sess)

    def transaction(self, **kw) -> AsyncTransaction:
        """An interactive transaction: `async with ac.transaction() as tx` (see Client)."""
        return AsyncTransaction(self, **kw)

    async def run_transaction(self, fn, *, retries: int = 10, **kw):
        """`await fn(tx)` in a transaction, re-run after a TransactionConflict."""
        return await run_transaction_async(self, fn, retries=retries, **kw)

    async def request(self, statements: list, *, transaction: bool = False,
                      level: str | None = None, timeout: float | None = None,
                      freshness: float | None = None) -> Response:
        """Mixed reads and writes in one request (rqlite's /db/request), as Client.request."""
        level = level or self.level
        body = ClientRequest(statement_list(statements), level=level, transaction=transaction,
                             freshness=freshness).to_wire()
        if level == "none":
            reply = await self.call(body, timeout, to_leader=False)
        else:
            reply = await self._call_in_session(body, timeout)
        resp = Response(reply)
        return raise_statement_errors(resp) if self.raise_on_error else resp

    async def execute(self, sql: str, params=None, *, transaction: bool = False,
                      timeout: float | None = None) -> Response:
        body = ClientRequest(one_statement(sql, params), transaction=transaction).to_wire()
        resp = Response(await self._call_in_session(body, timeout))
        return raise_statement_errors(resp) if self.raise_on_error else resp

    async def query(self, sql: str, params=None, *, level: str | None = None,
                    timeout: float | None = None, freshness: float | None = None,
                    min_index: int | None = None) -> Response:
        """One read, as Client.query: a long result comes in chunks from one consistent state
        on the node that answered, joined into one Result; `min_index` as Client.query's."""
        level = level or self.level
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
        if min_index is None and self.read_your_writes and level in ("weak", "none"):
            min_index = self.last_index or None
        body = ClientRequest([statement(sql, params)], level=level, freshness=freshness,
                             chunk_rows=CHUNK_ROWS, min_index=min_index).to_wire()
        if min_index is not None and level in ("weak", "none"):
            reply = await self.call(body, timeout, to_leader=False)
        elif level == "strong":
            reply = await self._call_in_session(body, timeout)
        else:
            reply = await self.call(body, timeout, to_leader=level != "none")
        resp = Response(reply)
        if reply.get("more") and resp.results and not resp.results[0].error:
            from ddb_node.sql import Result
            whole = resp.results[0]
            addr = await self._member_addr(reply.get("node"))
            finished = False
            try:
                more = reply
                while more.get("more"):
                    more = await self.call_addr(addr, {"op": "fetch", "cursor": reply["cursor"]},
                                                timeout or self.timeout)
                    if not more.get("ok"):
                        raise from_reply(more.get("error") or {})
                    chunk = Result.from_dict(more["results"][0])
                    for col, extra in zip(whole.values, chunk.values):
                        col.extend(extra)
                finished = True
            finally:
                if not finished:
                    try:
                        await self.call_addr(addr, {"op": "close", "cursor": reply["cursor"]}, 2.0)
                    except DdbError:
                        pass
        return raise_statement_errors(resp) if self.raise_on_error else resp

    def changes(self, since: int = 0, tables=None, *, node: int | None = None,
                follow: bool = True, wait: float = 1.0, timeout: float | None = None,
                max_entries: int | None = None):
        """An async iterator of ChangeEvents, as Client.changes (``async for ev in ...``)."""
        pos = _Position(since, tables, node, follow, wait, max_entries, timeout)
        return aiter_changes(self, pos)

    async def _member_addr(self, node_id: int) -> str:
        if node_id not in self.members:
            await self.refresh()     # e.g. a node that joined after our last refresh
        addr = self.members.get(node_id)
        if addr is None:
            raise DdbError(f"node {node_id} is not a member")
        return addr

    async def _call_node(self, node_id: int, body: dict, timeout: float) -> dict:
        reply = await self.call_addr(await self._member_addr(node_id), body, timeout + 0.5)
        if not reply.get("ok"):
            raise from_reply(reply.get("error") or {})
        return reply

    async def query_on(self, node_id: int, sql: str, params=None, *, level: str = "none",
                       timeout: float | None = None) -> Response:
        """Read from one chosen node, as Client.query_on."""
        timeout = timeout or self.timeout
        body = ClientRequest(one_statement(sql, params), level=level, timeout=timeout).to_wire()
        try:
            reply = await self._call_node(node_id, body, timeout)
        except NodeDown:
            raise
        except ConnectionFailed as e:
            raise Timeout(str(e)) from None
        resp = Response(reply)
        return raise_statement_errors(resp) if self.raise_on_error else resp

    async def status(self, node_id: int | None = None, timeout: float = 2.0) -> dict:
        """Status of one node, or of every member: {id: status or {"error": ...}}."""
        if not self.members or (node_id is not None and node_id not in self.members):
            await self.refresh()
        ids = [node_id] if node_id is not None else sorted(self.members)

        async def one(nid):
            try:
                reply = await self.call_addr(self.members[nid], {"op": "status"}, timeout)
                return nid, (reply.get("status") if reply.get("ok")
                             else {"error": reply.get("error")})
            except ConnectionFailed as e:
                return nid, {"error": {"type": "Unreachable", "message": str(e)}}
        out = dict(await asyncio.gather(*map(one, ids)))
        return out[node_id] if node_id is not None else out

    async def leader(self) -> int | None:
        """The current leader's node id (asks the cluster)."""
        await self.refresh()
        return self._leader

    async def admin(self, node_id: int | None, body: dict, timeout: float | None = None) -> dict:
        """An admin operation on one node (or on the leader when node_id is None)."""
        timeout = timeout or self.timeout
        if node_id is None:
            return await self.call(body, timeout)
        return await self._call_node(node_id, dict(body, timeout=timeout), timeout)

    async def transfer_leader(self, to: int, timeout: float | None = None) -> int:
        reply = await self.call({"op": "transfer", "to": to}, timeout)
        self._leader = reply.get("leader")
        return self._leader

    async def remove_node(self, node_id: int, timeout: float | None = None) -> None:
        await self.call({"op": "remove", "node_id": node_id}, timeout)
        self.members.pop(node_id, None)

    async def map_reduce(self, map_sql: str, reduce: str | Callable | None = None, params=None,
                         *, timeout: float | None = None):
        """As Client.map_reduce: the map step through the log, every share fetched at once."""
        timeout = timeout or self.timeout
        if params is not None and not isinstance(params, dict):
            raise TypeError("map_reduce takes named parameters (a dict)")
        step = await self.call({"op": "map", "sql": map_sql, "params": params or {}}, timeout)
        index = step["index"]
        await self.refresh()
        parts = sorted(int(k) for k in step["parts"])
        replies = await asyncio.gather(*(
            self._call_node(nid, {"op": "map_result", "index": index, "timeout": timeout}, timeout)
            for nid in parts))
        results = [Response(r).results[0] for r in replies]
        for r in results:
            if r.error:
                raise StatementError(f"map query: {r.error}", 0)
        return reduce_results(results, reduce)
