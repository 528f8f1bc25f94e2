"""Python clients for ddb: `Client` (sync, thread-safe) and `AsyncClient` (asyncio).

The client learns the members and the leader from any node it is given, sends writes
straight to the leader (no forwarding hop in the steady state), spreads `none` reads over
the members, follows leadership changes, and retries writes safely: every write carries a
client session (client id, sequence number), so a write retried after a lost answer is
applied exactly once (the state machine remembers the outcome).
"""
from __future__ import annotations

import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

import zmq

from ddb_node.async_client import AsyncClient
from ddb_node.changes_client import ChangeStream
from ddb_node.client_shared import (CHUNK_ROWS, ClientSettings, choose_nodes_reply, client_route,
                                    cluster_view, curve_from_env, one_statement, statement_list)
from ddb_node.errors import ConnectionFailed, DdbError, NodeDown, StatementError, Timeout, from_reply
from ddb_node.net.client_wire import uses_tcp
from ddb_node.net.codec import KIND_REQUEST, encode_client
from ddb_node.net.link_watcher import LinkWatcher
from ddb_node.net.liveness import Link, ZmqPoller
from ddb_node.net.tcp_link import TcpLink, TcpPoller
from ddb_node.protocol import LEVELS, ClientRequest, statement
from ddb_node.reduce import reduce_results
from ddb_node.response import Response, ResultChunks, raise_statement_errors
from ddb_node.routing import AwaitSuccessor, LeaderMoved, Refresh, Send, Sleep, norm_addr
from ddb_node.transaction import Transaction, run_transaction

__all__ = ["Client", "AsyncClient", "Response", "ResultChunks", "LEVELS", "reduce_results",
           "choose_nodes_reply", "cluster_view", "curve_from_env"]


# ============================================================================ sync client
class Client(ClientSettings):
    """The synchronous client (thread-safe): see ClientSettings for its arguments."""

    def __init__(self, addresses: str | Iterable[str], **settings):
        super().__init__(addresses, **settings)
        # under load the wait for a late leader grows with the typical latency, so that slow
        # answers on a busy machine do not send a probe per request
        self._latency = 0.0                   # moving average of answered attempts, seconds
        self._lock = threading.Lock()
        self._tcp = uses_tcp(self.curve)      # the wire: see net/client_wire.py
        self._ctx = None if self._tcp else zmq.Context()
        self._local = threading.local()
        self._links: list = []                 # every thread's links (TcpLink or zmq Link)
        self._pool: ThreadPoolExecutor | None = None
        self._watcher: LinkWatcher | None = None   # reads the links' monitors (started on first use)

    # ---- context manager / lifecycle -------------------------------------------------
    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pool:
            self._pool.shutdown(wait=False)
        with self._lock:
            for link in self._links:
                try:
                    link.close()
                except (zmq.ZMQError, OSError):
                    pass
            self._links.clear()
            watcher, self._watcher = self._watcher, None
        if watcher is not None:
            watcher.close()
        if self._ctx is not None:
            self._ctx.term()

    # ---- transport ----------------------------------------------------------------------
    def _link(self, addr: str):
        """This thread's link to addr (a TcpLink, or a zmq Link with CURVE)."""
        links = getattr(self._local, "links", None)
        if links is None:
            links = self._local.links = {}
        link = links.get(addr)
        if link is None:
            with self._lock:
                if self._tcp:
                    link = TcpLink(addr)
                else:
                    if self._watcher is None:
                        self._watcher = LinkWatcher()
                    link = Link(self._ctx, addr, self.curve, self._watcher)
                links[addr] = link
                self._links.append(link)
        return link

    def _poller(self):
        return TcpPoller() if self._tcp else ZmqPoller()

    def _drop_link(self, addr: str) -> None:
        link = getattr(self._local, "links", {}).pop(addr, None)
        if link is not None:
            with self._lock:
                if link in self._links:
                    self._links.remove(link)
            link.close()

    def _is_down(self, addr: str) -> bool:
        """This thread's connection to addr is known to be lost (not merely slow)."""
        link = getattr(self._local, "links", {}).get(addr)
        return link is not None and link.down

    def _take(self, link, rid: int) -> dict | None:
        """The answer to request `rid` if it has arrived; older answers are dropped."""
        got = link.take(rid)
        if got is None:
            return None
        cluster, reply = got
        if cluster and not self.cluster_id:
            self.cluster_id = cluster
        return reply

    def _post(self, link, body: dict) -> int:
        rid = next(self._ids)
        link.send(encode_client(self.cluster_id, KIND_REQUEST, dict(body, id=rid)))
        return rid

    def call(self, addr: str, body: dict, timeout: float) -> dict:
        """One request to one node; raises NodeDown as soon as its connection drops and
        ConnectionFailed if it does not answer in time."""
        return self._attempt(addr, body, timeout, watch_leader=False)

    def _attempt(self, addr: str, body: dict, timeout: float, *, watch_leader: bool) -> dict:
        """One request to one node.

        Raises NodeDown as soon as the connection to it is lost (its process died: waiting
        cannot help), ConnectionFailed after `timeout`. With `watch_leader`, once the answer
        is `probe_after` late it also asks the other members to answer when they know a leader
        at a term above ours (`nodes` with `after_term`), and raises LeaderMoved when one
        does: a stopped or cut-off leader keeps its connections, so only the others can tell
        that it was replaced. A slow answer from a leader still in office is waited for."""
        if self._closed:
            raise DdbError("the client is closed")
        addr = norm_addr(addr)
        link = self._link(addr)
        if link.down and not watch_leader:
            # a call to this very node: it may have been restarted since its connection was
            # lost; a fresh socket connects at once (zmq's own reconnect backs off) and tells
            self._drop_link(addr)
            link = self._link(addr)
        if link.down:
            raise NodeDown(f"{addr} is down (its connection is closed)")
        drops = link.drops
        rid = self._post(link, body)
        poller = self._poller()
        poller.add(link)
        start = time.monotonic()
        deadline = start + timeout
        probe_at = start + max(self.probe_after, min(4 * self._latency, 1.0)) if watch_leader else None
        probes: dict = {}      # link -> (request id, term asked about)
        while True:
            now = time.monotonic()
            if now >= deadline:
                reply = self._take(link, rid)   # this process may have been the slow one
                if reply is not None:
                    return reply
                self._drop_link(addr)   # its answer may still come: a new socket drops it
                raise ConnectionFailed(f"no answer from {addr} within {timeout:g}s")
            until = deadline if probe_at is None else min(deadline, probe_at)
            ready = poller.wait(until - now)
            if link in ready:
                reply = self._take(link, rid)
                if reply is not None:
                    self._latency += (time.monotonic() - start - self._latency) / 16
                    return reply
            if link.drops != drops:
                raise NodeDown(f"{addr} closed the connection; the outcome is unknown")
            if probe_at is not None and time.monotonic() >= probe_at:
                probe_at = None
                for other in self._candidates():
                    if other != addr:
                        self._probe(other, self._term, deadline, poller, probes)
            for plink in [p for p in ready if p in probes]:
                prid, asked = probes[plink]
                r = self._take(plink, prid)
                if r is None:
                    continue
                poller.remove(plink)
                del probes[plink]
                if not r.get("ok") or r.get("term", 0) <= asked or not r.get("leader"):
                    continue   # its long poll ran out: nothing new
                members, lid = cluster_view(r, self.members)
                if lid is not None and members[lid] != addr:
                    self._learn(members, lid, r["term"])
                    raise LeaderMoved(f"node {lid} leads at term {r['term']}")
                # the node we wait for leads at a newer term than we knew: ask again about that
                self._term = max(self._term, r["term"])
                self._probe(plink.addr, r["term"], deadline, poller, probes)

    def _probe(self, addr: str, term: int, deadline: float, poller, probes: dict) -> None:
        """Send a `nodes` long poll about leaders newer than `term` (skipped if addr is down)."""
        link = self._link(addr)
        if link.down:
            return
        left = max(0.05, deadline - time.monotonic())
        rid = self._post(link, {"op": "nodes", "after_term": term, "timeout": left})
        probes[link] = (rid, term)
        poller.add(link)

    def _learn(self, members: dict[int, str], leader: int | None, term: int) -> None:
        self.view.learn(members, leader, term)

    # ---- discovery ----------------------------------------------------------------------
    def _candidates(self) -> list[str]:
        return self.view.candidates()

    def _live_candidates(self) -> list[str]:
        """The candidates not known to be down (all of them if every one is)."""
        addrs = self._candidates()
        return [a for a in addrs if not self._is_down(a)] or addrs

    def refresh(self, timeout: float | None = None, *, prefer: str | None = None,
                avoid: str | None = None) -> dict:
        """Learn members and leader by asking every known node at once.

        One node's word is not enough: a deposed leader cut off from the others, or a node
        still electing, would send us to a node that cannot serve. The answer that names a
        leader at the highest term wins (a new leader's term is known to a majority, so a
        majority of answers always includes it). `prefer` breaks ties; `avoid` is asked only
        if nothing else answers."""
        timeout = timeout or min(self.timeout, 3.0)
        addrs = [a for a in self._candidates() if a != avoid]
        replies = self._ask_all(addrs, {"op": "nodes"}, timeout)
        if not replies and avoid:
            replies = self._ask_all([norm_addr(avoid)], {"op": "nodes"}, timeout)
        if not replies:
            raise ConnectionFailed(f"no node reachable at {', '.join(self._candidates())}")
        best = choose_nodes_reply(replies, prefer=norm_addr(prefer) if prefer else None)
        self._learn(*cluster_view(best, self.members), best.get("term", 0))
        return best

    def _ask_all(self, addrs: list[str], body: dict, timeout: float, *,
                 until: Callable[[dict], bool] | None = None) -> dict[str, dict]:
        """Send one request to each address at once; the answers that came in time, by address.

        Returns early once every node answered, or a majority of the voters they name did and
        one of them names a leader (a dead node must not cost the whole timeout), or, with
        `until`, as soon as one answer satisfies it. Nodes known to be down are not asked."""
        socks, ids, replies = {}, {}, {}      # socks: link -> addr
        poller = self._poller()
        for addr in dict.fromkeys(norm_addr(a) for a in addrs):
            link = self._link(addr)
            if link.down:
                continue
            try:
                rid = self._post(link, body)
            except (zmq.ZMQError, OSError):
                continue
            socks[link], ids[addr] = addr, rid
            poller.add(link)
        deadline = time.monotonic() + timeout
        while len(replies) < len(socks):
            left = deadline - time.monotonic()
            if left <= 0:
                break
            for s in poller.wait(left):
                addr = socks.get(s)
                if addr is None:
                    continue
                if ids[addr] is None:
                    continue
                reply = self._take(s, ids[addr])
                if reply is None:
                    continue
                if reply.get("ok"):
                    replies[addr] = reply
                    if until is not None and until(reply):
                        return replies
                else:
                    ids[addr] = None   # answered with an error: do not wait for it
                    poller.remove(s)
            voters = max((len(r.get("voters") or ()) for r in replies.values()), default=0)
            answered = len(replies) + sum(1 for a in ids.values() if a is None)
            if answered >= len(socks):
                break
            if until is None and voters and len(replies) > voters // 2 \
                    and any(r.get("leader") for r in replies.values()):
                break
        for s, addr in socks.items():
            if addr not in replies and ids.get(addr) is not None:
                self._drop_link(addr)   # down, or its answer lost: a new socket drops late replies
        return replies

    def _await_successor(self, dead: str, wait: float) -> None:
        """The leader at `dead` is gone: wait up to `wait` until another member names a
        leader at a term above the one we knew (a long poll on each; answered the moment an
        election is won). Leaves the leader unknown if none was elected."""
        self._leader = None
        term = self._term
        others = [a for a in self._candidates() if a != dead]
        if not others:
            return

        def elected(r: dict) -> bool:
            _, lid = cluster_view(r, self.members)
            return r.get("term", 0) > term and lid is not None

        replies = self._ask_all(others, {"op": "nodes", "after_term": term, "timeout": wait},
                                wait + 0.5, until=elected)
        best = [r for r in replies.values() if elected(r)]
        if best:
            r = choose_nodes_reply({str(i): r for i, r in enumerate(best)})
            self._learn(*cluster_view(r, self.members), r["term"])

    def _leader_addr(self) -> str | None:
        return self.view.leader_addr()

    # ---- the request loop: routing.route decides, this performs ---------------------------
    def _send(self, body: dict, *, to_leader: bool, timeout: float | None = None) -> dict:
        if self._closed:
            raise DdbError("the client is closed")
        steps = client_route(self, body, to_leader, timeout, self._is_down)
        outcome = None
        while True:
            try:
                step = steps.send(outcome)
            except StopIteration as done:
                return done.value
            outcome = self._perform(step)

    def _perform(self, step):
        """One step of a route, blocking; its outcome (an exception is returned, not raised)."""
        if isinstance(step, Send):
            try:
                return self._attempt(step.addr, step.body, step.timeout, watch_leader=step.watch_leader)
            except (LeaderMoved, NodeDown, ConnectionFailed) as e:
                return e
        if isinstance(step, Refresh):
            try:
                self.refresh(step.timeout, prefer=step.prefer, avoid=step.avoid)
            except ConnectionFailed as e:
                return e
            return None
        if isinstance(step, AwaitSuccessor):
            self._await_successor(step.dead, step.wait)
            return None
        if isinstance(step, Sleep):
            time.sleep(step.seconds)
            return None
        raise TypeError(f"unknown route step {step!r}")  # pragma: no cover

    def _send_in_session(self, body: dict, *, to_leader: bool, timeout: float | None) -> dict:
        with self._lock:
            sess = self._free_sessions.pop() if self._free_sessions else [uuid.uuid4().hex, 0]
            sess[1] += 1
        try:
            body["session"] = [sess[0], sess[1]]
            reply = self._send(body, to_leader=to_leader, timeout=timeout)
            if isinstance(reply.get("index"), int) and reply["index"] > self.last_index:
                self.last_index = reply["index"]      # read-your-writes (`min_index`)
            return reply
        finally:
            with self._lock:
                self._free_sessions.append(sess)

    # ---- public API ---------------------------------------------------------------------
    def request(self, statements: list, *, transaction: bool = False, level: str | None = None,
                timeout: float | None = None, freshness: float | None = None) -> Response:
        """Mixed reads and writes in one request (rqlite's /db/request)."""
        level = level or self.level
        body = ClientRequest(statement_list(statements), level=level, transaction=transaction,
                             freshness=freshness).to_wire()
        writes_possible = True
        if level == "none":
            writes_possible = False
        if writes_possible:
            reply = self._send_in_session(body, to_leader=True, timeout=timeout)
        else:
            reply = self._send(body, to_leader=False, timeout=timeout)
        resp = Response(reply)
        return raise_statement_errors(resp) if self.raise_on_error else resp

    def execute(self, sql: str, params=None, *, transaction: bool = False,
                timeout: float | None = None) -> Response:
        body = ClientRequest(one_statement(sql, params), transaction=transaction).to_wire()
        resp = Response(self._send_in_session(body, to_leader=True, timeout=timeout))
        return raise_statement_errors(resp) if self.raise_on_error else resp

    def transaction(self, **kw) -> Transaction:
        """BEGIN an interactive transaction (serializable; see ddb_node/transaction.py)."""
        return Transaction.start(self, **kw)

    def run_transaction(self, fn, *, retries: int = 10, **kw):
        """fn(tx) in a transaction, re-run after a TransactionConflict up to `retries` times."""
        return run_transaction(self, fn, retries=retries, **kw)

    def query(self, sql: str, params=None, *, level: str | None = None,
              timeout: float | None = None, freshness: float | None = None,
              min_index: int | None = None) -> Response:
        """One read. A long result is fetched in chunks from one consistent state on the node
        that answered (so no single answer is huge and no attempt times out on a slow but
        live node) and joined into one Result. `min_index` (a write's `Response.index`): any
        node may answer, once it has applied that index (read-your-writes)."""
        reply = self._first_chunk(sql, params, level, CHUNK_ROWS, timeout, freshness, min_index)
        resp = Response(reply)
        if reply.get("more") and resp.results and not resp.results[0].error:
            whole = resp.results[0]
            finished = False
            try:
                for chunk in self._rest(reply, timeout):
                    for col, more in zip(whole.values, chunk.values):
                        col.extend(more)
                finished = True
            finally:
                if not finished:
                    self._close_cursor(reply)
            resp.results[0] = type(whole)(whole.statement, whole.columns, whole.decltypes,
                                          whole.values, time=whole.time)
        return raise_statement_errors(resp) if self.raise_on_error else resp

    def query_iter(self, sql: str, params=None, *, level: str | None = None,
                   chunk_rows: int = 10_000, timeout: float | None = None,
                   freshness: float | None = None) -> "ResultChunks":
        """The rows of one SELECT as Results of at most `chunk_rows` rows each, all read from
        one consistent state (a cursor on one node): memory stays bounded by a chunk however
        long the result. Stop early (or `close()`, or leave a `with` block) and the cursor is
        closed. `.node`, `.index`, `.level` tell where and at which state it was read."""
        if not isinstance(chunk_rows, int) or chunk_rows <= 0:
            raise ValueError("chunk_rows must be a positive number of rows")
        reply = self._first_chunk(sql, params, level, chunk_rows, timeout, freshness)
        return ResultChunks(self, reply, timeout)

    def _first_chunk(self, sql, params, level, chunk_rows, timeout, freshness,
                     min_index=None) -> dict:
        level = level or self.level
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
        if min_index is None and self.read_your_writes and level in ("weak", "none"):
            min_index = self.last_index or None     # this client's own writes, seen anywhere
        body = ClientRequest([statement(sql, params)], level=level, freshness=freshness,
                             chunk_rows=chunk_rows, min_index=min_index).to_wire()
        if min_index is not None and level in ("weak", "none"):
            return self._send(body, to_leader=False, timeout=timeout)
        if level == "strong":
            return self._send_in_session(body, to_leader=True, timeout=timeout)
        return self._send(body, to_leader=level != "none", timeout=timeout)

    def _cursor_node(self, reply: dict) -> str:
        node = reply.get("node")
        if node not in self.members:
            self.refresh()
        addr = self.members.get(node)
        if addr is None:
            raise DdbError(f"node {node} holds the cursor but is not a member any more")
        return addr

    def _rest(self, reply: dict, timeout: float | None):
        """The chunks after the first, from the node holding the cursor."""
        from ddb_node.sql import Result
        cid = reply.get("cursor")
        if not reply.get("more") or cid is None:
            return
        addr = self._cursor_node(reply)
        timeout = timeout or self.timeout
        while True:
            r = self.call(addr, {"op": "fetch", "cursor": cid}, timeout)
            if not r.get("ok"):
                raise from_reply(r.get("error") or {})
            yield Result.from_dict(r["results"][0])
            if not r.get("more"):
                return

    def _close_cursor(self, reply: dict) -> None:
        """Drop a cursor we stopped reading (the node would expire it when idle anyway)."""
        try:
            self.call(self._cursor_node(reply), {"op": "close", "cursor": reply.get("cursor")}, 2.0)
        except DdbError:
            pass

    def query_on(self, node_id: int, sql: str, params=None, *, level: str = "none",
                 timeout: float | None = None, min_index: int | None = None) -> Response:
        """Read from one chosen node (for demos: see what *that* replica says)."""
        if node_id not in self.members:
            self.refresh()
        addr = self.members.get(node_id)
        if addr is None:
            raise DdbError(f"node {node_id} is not a member")
        body = ClientRequest(one_statement(sql, params), level=level, min_index=min_index,
                             timeout=timeout or self.timeout).to_wire()
        try:
            reply = self.call(addr, body, (timeout or self.timeout) + 0.5)
        except ConnectionFailed as e:
            raise Timeout(str(e)) from None
        if not reply.get("ok"):
            raise from_reply(reply.get("error") or {})
        resp = Response(reply)
        return raise_statement_errors(resp) if self.raise_on_error else resp

    def status(self, node_id: int | None = None, timeout: float = 2.0) -> dict:
        """Status of one node, or of every member: {id: status or {"error": ...}}."""
        if not self.members or (node_id is not None and node_id not in self.members):
            self.refresh()   # e.g. a node that joined after our last refresh
        ids = [node_id] if node_id is not None else sorted(self.members)
        out = {}
        for nid in ids:
            try:
                reply = self.call(self.members[nid], {"op": "status"}, timeout)
                out[nid] = reply.get("status") if reply.get("ok") else {"error": reply.get("error")}
            except ConnectionFailed as e:
                out[nid] = {"error": {"type": "Unreachable", "message": str(e)}}
        return out[node_id] if node_id is not None else out

    def leader(self) -> int | None:
        """The current leader's node id (asks the cluster)."""
        self.refresh()
        return self._leader

    def admin(self, node_id: int | None, body: dict, timeout: float | None = None) -> dict:
        """Send an admin operation to one node (or to the leader when node_id is None)."""
        timeout = timeout or self.timeout
        if node_id is None:
            return self._send(body, to_leader=True, timeout=timeout)
        if node_id not in self.members:
            self.refresh()
        reply = self.call(self.members[node_id], dict(body, timeout=timeout), timeout + 0.5)
        if not reply.get("ok"):
            raise from_reply(reply.get("error") or {})
        return reply

    def transfer_leader(self, to: int, timeout: float | None = None) -> int:
        reply = self._send({"op": "transfer", "to": to}, to_leader=True, timeout=timeout)
        self._leader = reply.get("leader")
        return self._leader

    def remove_node(self, node_id: int, timeout: float | None = None) -> None:
        self._send({"op": "remove", "node_id": node_id}, to_leader=True, timeout=timeout)
        self.members.pop(node_id, None)

    # ---- change data capture -------------------------------------------------------------
    def changes(self, since: int = 0, tables=None, *, node: int | None = None,
                follow: bool = True, wait: float = 1.0, timeout: float | None = None,
                max_entries: int | None = None) -> ChangeStream:
        """Every committed row change after log index `since`, as ChangeEvents in log order,
        from any member (`node` pins one); a blocking iterator that waits for new changes
        (``follow=False``: stop when caught up). Resumable: ``stream.since``. Raises
        ChangesTruncated (with `.oldest`) when `since` is older than the retained changes.
        See changes_client.py."""
        return ChangeStream(self, since, tables, node=node, follow=follow, wait=wait,
                            timeout=timeout, max_entries=max_entries)

    # ---- map / reduce --------------------------------------------------------------------
    def map_reduce(self, map_sql: str, reduce: str | Callable | None = None, params=None, *,
                   timeout: float | None = None):
        """Run `map_sql` on every member in parallel, each over its share of the rows, at one
        common applied index; combine with `reduce` (SQL over a table named `map`, run on an
        in-memory SQLite) or a Python callable taking the list of partial Results.

        The map query may use `:ddb_part` and `:ddb_parts` (e.g.
        `WHERE rowid % :ddb_parts = :ddb_part`).
        """
        timeout = timeout or self.timeout
        if params is not None and not isinstance(params, dict):
            raise TypeError("map_reduce takes named parameters (a dict)")
        # the map step goes through the log: every member computes its share when it
        # applies that entry, so all shares see the database at one common index
        step = self._send({"op": "map", "sql": map_sql, "params": params or {}},
                          to_leader=True, timeout=timeout)
        index = step["index"]
        self.refresh()
        parts = {int(k): v for k, v in step["parts"].items()}
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=8)

        def fetch(nid: int):
            body = {"op": "map_result", "index": index, "timeout": timeout}
            reply = self.call(self.members[nid], body, timeout + 0.5)
            if not reply.get("ok"):
                raise from_reply(reply.get("error") or {})
            return Response(reply)

        partials = list(self._pool.map(fetch, sorted(parts)))
        results = [r.results[0] for r in partials]
        for r in results:
            if r.error:
                raise StatementError(f"map query: {r.error}", 0)
        return reduce_results(results, reduce)
