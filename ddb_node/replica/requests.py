"""What each request asks of a Replica: the decision of every consistency level and of the
admin operations, made in one place for the node, the simulator and the notebook.

Levels (rqlite's names, `protocol.LEVELS`): `none` reads the local database (optionally
refusing when the node has not heard from a leader within `freshness` seconds); `weak` reads
the leader's local state; `linearizable` confirms leadership with a quorum round (ReadIndex)
and waits until the read index is applied; `strong` sends the read through the log. Writes
always go through the leader's log. A follower forwards what needs the leader (or answers
NotLeader with the leader's address when the client asked for redirects); with no leader
known it waits for one, within the request's timeout.

Every handler either answers at once or leaves a continuation (a proposal, a read wait, an
applied-index wait, a leader wait) that answers later; the request's deadline answers
Timeout if nothing else did.
"""
from __future__ import annotations

from ddb_node.protocol import (AUTO, NONE, STRONG, WEAK, ClientRequest, RequestError, bad_request,
                               no_leader, not_leader, request_timeout, unavailable)
from ddb_node.raft import ConfChange, ConfChangeType, NotLeader, ProposalDropped
from ddb_node.sql import SQL_FAILURES, Request, Statement, encode_entry
from ddb_node.sql.query import OverBudget

from . import changes as _changes
from .entries import FAIL, OK, decode_map_step, encode_address_update, encode_map_step
from .log_view import log_view
from .members import encode_addresses
from . import transactions


INLINE_READ_BUDGET_S = 0.002   # a read that takes longer leaves the loop (see _serve_read)


def _sql_error(e: Exception) -> RequestError:
    return bad_request(str(e), getattr(e, "statement", None), getattr(e, "detail", None))


def _failed_statement(er):
    return next((res for res in er.results if res.error is not None), None)


class Requests:
    def __init__(self, replica):
        self.r = replica
        self._ops = {
            "request": self.request, "map": self.map, "map_result": self.map_result,
            "ping": self.ping, "status": self.status, "nodes": self.nodes, "join": self.join,
            "remove": self.remove, "promote": self.promote, "transfer": self.transfer,
            "snapshot": self.snapshot, "reap": self.reap, "read_index": self.read_index, "applied": self.applied,
            "log": self.log,
            "changes": lambda token, body: _changes.serve(self.r, token, body),
            "tx": lambda token, body: transactions.tx(self, token, body),
        }

    def handle(self, token, body: dict) -> None:
        op = body.get("op") if isinstance(body, dict) else None
        fn = self._ops.get(op) if isinstance(op, str) else None   # a list/map op is unhashable
        if fn is None:
            raise bad_request(f"unknown operation {op!r}")
        fn(token, body)

    def _redo(self, token, body: dict) -> None:
        """Decide again (a leader is known now)."""
        if token not in self.r.pending_tokens:
            return
        try:
            self.handle(token, body)
        except RequestError as e:
            self.r.fail(token, e)

    def _deadline(self, token, body: dict, what: str) -> float:
        timeout = request_timeout(body, self.r.request_timeout)
        if token not in self.r.deadlines:
            self.r.set_deadline(token, timeout, what)
        return timeout

    # ================================================================ SQL
    def request(self, token, body: dict) -> None:
        r = self.r
        t0 = r.clock()
        req = ClientRequest.from_wire(body)
        self._deadline(token, body, "request")
        # rqlite's auto: none on a read-only node (a learner), weak elsewhere
        level = (NONE if r.id in r.raft.learners else WEAK) if req.level == AUTO else req.level
        # rqlite: a follower asked to redirect answers with the leader before it prepares
        # anything: every level but none needs the leader, and so does a statement that
        # writes or does not prepare (it may fail here and not there), except on the
        # read-only endpoint, whose level-none reads (and their errors) are the node's own
        # read-your-writes: a read that names the index of a write the client saw is served
        # by whichever node it reached, once that node has applied the index
        if req.min_index is not None and level in (NONE, WEAK) and not body.get("forwarded"):
            return self._read_at_least(token, body, req, t0)
        redirect_first = req.redirect and not req.forwarded and not r.is_leader
        if redirect_first and level != NONE:
            return self._forward_or_redirect(token, body)
        try:
            sreq = Request(statements=req.statements, transaction=req.transaction,
                           level=req.level, timeout=req.timeout)
            cls = r.app.classify(sreq)
        except SQL_FAILURES as e:
            if redirect_first and not req.read_only:
                return self._forward_or_redirect(token, body)
            raise _sql_error(e) from None
        if redirect_first and not req.read_only and cls.kind != "read":
            return self._forward_or_redirect(token, body)
        if req.read_only and cls.kind != "read":
            # the asker (rqlite's /db/query) answers the writes itself; nothing has run
            raise RequestError("ReadOnly", "the request holds a statement that writes")
        if cls.kind == "read" and level != STRONG:
            if level == NONE:
                self._check_freshness(req)
                self._serve_read(token, req, sreq, level, r.app.applied_index, t0)
            elif level == WEAK:
                if not r.is_leader:
                    return self._forward_or_redirect(token, body)
                self._serve_read(token, req, sreq, level, r.app.applied_index, t0)
            else:
                self._linearizable(token, req, sreq, level, t0)
            return
        # writes and strong reads go through the log
        if not r.is_leader:
            return self._forward_or_redirect(token, body)
        try:
            cond = req.condition
            payload = encode_entry(sreq, timestamp_ms=r.wall_ms(), seed=r.rng.getrandbits(63),
                                   session=req.session, check=False,   # classify checked it
                                   condition=None if cond is None else (cond["index"], cond["tables"], cond.get("term")))
        except SQL_FAILURES as e:
            raise _sql_error(e) from None
        try:
            kind = cls.kind
            r.propose(payload, lambda status, er, _e: self._written(token, status, er, level, t0, kind))
        except NotLeader:
            return self._forward_or_redirect(token, body)
        except ProposalDropped as e:
            raise unavailable(str(e)) from None
        r.waiting_for(token, "write")

    def _read_at_least(self, token, body, req, t0) -> None:
        """Wait until `min_index` is applied here, then judge and serve the statements (a
        node that is behind may not even know their tables yet)."""
        r = self.r

        def go():
            if token not in r.pending_tokens:
                return
            try:
                sreq = Request(statements=req.statements, level=NONE, timeout=req.timeout)
                cls = r.app.classify(sreq)
            except SQL_FAILURES as e:
                return r.fail(token, _sql_error(e))
            if cls.kind != "read":
                if req.read_only:
                    return r.fail(token, RequestError("ReadOnly", "the request holds a statement "
                                                      "that writes"))
                rest = {k: v for k, v in body.items() if k != "min_index"}
                return self._redo(token, rest)   # a write: the log orders it after the index
            self._serve_read(token, req, sreq, NONE, r.app.applied_index, t0)
        r.waiting_for(token, f"apply of index {req.min_index} (min_index)")
        r.wait_applied(req.min_index, go)

    def _check_freshness(self, req: ClientRequest) -> None:
        r = self.r
        if not req.freshness or r.is_leader:
            return
        contact = r.last_leader_contact
        age = r.clock() - contact if contact is not None else float("inf")
        if age > req.freshness:
            raise RequestError("Stale", f"this node last heard from a leader {age:.3f}s ago, "
                               f"more than the freshness bound of {req.freshness:g}s")

    def _linearizable(self, token, req, sreq, level, t0) -> None:
        r = self.r
        try:
            ctx = r.read_index(lambda index: self._serve_read(token, req, sreq, level, index, t0),
                               lambda err: r.fail(token, err))
        except NotLeader:
            raise no_leader() from None
        r.waiting_for(token, "linearizable read (no quorum confirmed the leader)",
                      cleanup=lambda: r.cancel_read(ctx))

    def _serve_read(self, token, req, sreq, level, index, t0) -> None:
        r = self.r
        if token not in r.pending_tokens:
            return
        if r.observer is not None:
            r.observer.served(r, level, index)
        r.counters["reads_served"] += 1
        # Most reads take microseconds: run them here, within a budget. One that runs past
        # it, or a chunked read longer than a chunk, goes to the shell, which runs it off its
        # loop on a reader that sees a state at least this new (sql/reader.py) and answers.
        inline_rows = req.max_rows
        if r.offload_reads and req.chunk_rows:
            inline_rows = min(req.max_rows or req.chunk_rows + 1, req.chunk_rows + 1)
        try:
            results = r.app.query(sreq, max_rows=inline_rows, max_bytes=req.max_bytes,
                                  checked=True,
                                  budget_s=INLINE_READ_BUDGET_S if r.offload_reads else None)
            if r.offload_reads and req.chunk_rows and \
                    any(x.values and len(x.values[0]) > req.chunk_rows for x in results):
                raise OverBudget("longer than one chunk")
        except OverBudget:
            r.hand_off(token, ("read", token, sreq, {
                "level": level, "index": index, "t0": t0, "max_rows": req.max_rows,
                "max_bytes": req.max_bytes, "chunk_rows": req.chunk_rows}))
            return
        except SQL_FAILURES as e:
            return r.fail(token, _sql_error(e))
        r.reply(token, {"results": [x.to_dict() for x in results], "index": index,
                        "level": level, "time": r.clock() - t0})

    def _written(self, token, status, er, level, t0, kind) -> None:
        r = self.r
        if status == FAIL:
            return r.fail(token, RequestError(
                "NotLeader", "the proposal was replaced by another leader's entry; it did not "
                "take effect", retry=True))
        if status != OK:
            return r.fail(token, RequestError(
                "Timeout", "a snapshot replaced the log before the write was seen to apply; "
                "the outcome is unknown (retry with the same session to learn it)"))
        r.counters["reads_served" if kind == "read" else "writes_applied"] += 1
        if er is None:
            return r.reply(token, {"results": [], "level": level, "time": r.clock() - t0})
        if er.error and (conflict := transactions.commit_error(er)) is not None:
            return r.fail(token, conflict)
        if er.error:
            # a rolled-back transaction (or an undecodable entry): the error, plus the results
            # up to the failing statement (rqlite shows them)
            failed = _failed_statement(er)
            return r.fail(token, RequestError(
                "BadRequest", str(er.error), statement=None if failed is None else failed.statement,
                detail=None if failed is None else failed.error,
                results=[x.to_dict() for x in er.results]))
        out = {"results": [x.to_dict() for x in er.results], "index": er.index, "level": level,
               "time": r.clock() - t0}
        if er.session_duplicate:
            out["duplicate"] = True
        r.reply(token, out)

    def _forward_or_redirect(self, token, body: dict) -> None:
        r = self.r
        leader = r.leader_info()
        if body.get("forwarded"):
            raise not_leader(leader)
        if body.get("redirect"):
            raise no_leader() if leader is None else not_leader(leader)
        if leader is None:
            # wait for an election rather than failing at once
            r.waiting_for(token, "leader election")
            r.wait_leader(lambda _lid: self._redo(token, body))
            return
        if body.get("op") == "request":
            req = ClientRequest.from_wire(body)
            req.forwarded = True
            fwd = req.to_wire()
        else:
            fwd = {k: v for k, v in body.items() if k != "id"}
            fwd["forwarded"] = True
        r.waiting_for(token, "forwarded request")
        r.forward(token, leader["id"], fwd)

    def _leader_or_forward(self, token, body: dict) -> bool:
        """True when the request was sent on (or refused) because this node is no leader."""
        self._deadline(token, body, "request")
        if self.r.is_leader:
            return False
        self._forward_or_redirect(token, body)
        return True

    # ================================================================ map/reduce
    def map(self, token, body: dict) -> None:
        """Leader: log a map step; every member computes its share when it applies it."""
        if self._leader_or_forward(token, body):
            return
        r = self.r
        sql, params = body.get("sql"), body.get("params")
        if not isinstance(sql, str) or (params is not None and not isinstance(params, dict)):
            raise bad_request("map needs 'sql' (a string) and optional named 'params'")
        try:
            cls = r.app.classify(Request([Statement(sql, dict(params or {}, ddb_part=0, ddb_parts=1))]))
        except SQL_FAILURES as e:
            raise _sql_error(e) from None
        if cls.kind != "read":
            raise bad_request("a map query must be read-only")
        members = sorted(set(r.raft.voters) | set(r.raft.learners))
        parts = {nid: i for i, nid in enumerate(members)}
        payload = encode_map_step({"sql": sql, "params": params or {}, "parts": parts,
                                   "nparts": len(parts)})

        def done(status, _res, entry):
            if status != OK:
                return r.fail(token, unavailable("the map step did not commit; retry"))
            r.reply(token, {"index": entry.index, "parts": {str(k): v for k, v in parts.items()},
                            "nparts": len(parts)})
        try:
            r.propose(payload, done)
        except (NotLeader, ProposalDropped) as e:
            raise unavailable(str(e)) from None
        r.waiting_for(token, "map step")

    def run_map(self, index: int, data: bytes) -> dict:
        """This replica's share of the map step at `index` (run while applying it)."""
        r = self.r
        try:
            spec = decode_map_step(data)
            part = spec["parts"].get(r.id)
            if part is None:
                return {"ok": False, "error": bad_request(f"node {r.id} has no share in this map").to_dict()}
            params = dict(spec.get("params") or {})
            params.update({"ddb_part": part, "ddb_parts": spec["nparts"]})
            res = r.app.query(Request([Statement(spec["sql"], params)]))
            return {"ok": True, "results": [x.to_dict() for x in res], "index": index, "part": part}
        except Exception as exc:  # noqa: BLE001  a bad share is an answer, not a crash
            return {"ok": False, "error": bad_request(f"map failed: {exc}").to_dict()}

    def map_result(self, token, body: dict) -> None:
        """Any member: this node's share of the map step logged at `index`."""
        r = self.r
        index = body.get("index")
        if not isinstance(index, int) or isinstance(index, bool) or index <= 0:
            raise bad_request("index must be a positive integer")
        self._deadline(token, body, f"apply of index {index}")

        def answer():
            out = r.map_results.get(index)
            if out is None:
                return r.fail(token, RequestError(
                    "Unavailable", f"no map result at index {index} on node {r.id} "
                    "(not a map step, or evicted)"))
            r.reply(token, dict(out))
        r.wait_applied(index, answer)

    # ================================================================ barriers
    def read_index(self, token, body: dict) -> None:
        """The cluster's commit index as a quorum confirms it, once applied here: what a
        backup or any other read outside SQL waits for to be linearizable."""
        r = self.r
        self._deadline(token, body, "linearizable read (no quorum confirmed the leader)")
        try:
            ctx = r.read_index(lambda index: r.reply(token, {"index": index, "term": r.raft.term}),
                               lambda err: r.fail(token, err))
        except NotLeader:
            raise no_leader() from None
        r.waiting_for(token, "linearizable read (no quorum confirmed the leader)",
                      cleanup=lambda: r.cancel_read(ctx))

    def applied(self, token, body: dict) -> None:
        """Answer once this replica has applied `index` (default: its commit index now)."""
        r = self.r
        index = body.get("index")
        if index is None:
            index = r.raft.commit_index
        if not isinstance(index, int) or isinstance(index, bool) or index < 0:
            raise bad_request("index must be a non-negative integer")
        self._deadline(token, body, f"apply of index {index}")
        r.wait_applied(index, lambda: r.reply(token, {"index": r.app.applied_index}))

    # ================================================================ admin
    def ping(self, token, body: dict) -> None:
        self.r.reply(token, {})

    def status(self, token, body: dict) -> None:
        self.r.reply(token, {"status": self.r.status()})

    def log(self, token, body: dict) -> None:
        """This node's recent log entries and its marks (`%ddb log`); `last` bounds them."""
        last = body.get("last", 20)
        if not isinstance(last, int) or isinstance(last, bool) or last < 1:
            raise bad_request("last must be a positive integer")
        self.r.reply(token, {"log": log_view(self.r, last)})

    def nodes(self, token, body: dict) -> None:
        """Members, leader and term. With `after_term` T it is a long poll: the answer waits
        (up to `timeout`) until this node knows a leader at a term above T, so a client that
        lost the leader of term T hears of its successor as soon as this node does."""
        r = self.r
        after = body.get("after_term")
        if after is not None:
            if not isinstance(after, int) or isinstance(after, bool):
                raise bad_request("after_term must be an integer")
            if not (r.raft.term > after and r.raft.leader_id):
                r.set_deadline(token, request_timeout(body, r.request_timeout), "nodes",
                               on_expire=lambda: self._nodes_now(token))

                def newer(_lid):
                    if token not in r.pending_tokens:
                        return
                    if r.raft.term > after and r.raft.leader_id:
                        self._nodes_now(token)
                    else:
                        r.wait_leader(newer)
                r.wait_leader(newer)
                return
        self._nodes_now(token)

    def _nodes_now(self, token) -> None:
        r = self.r
        raft = r.raft
        cs = raft.conf_state
        r.reply(token, {"leader": raft.leader_id, "voters": list(cs.voters),
                        "learners": list(cs.learners), "members": r.book.to_dict(),
                        "applied": r.app.applied_index, "commit": raft.commit_index,
                        "term": raft.term})

    def snapshot(self, token, body: dict) -> None:
        """Take a snapshot now (rqlite's POST /snapshot); ``taken`` is False when there was
        nothing new to snapshot. ``trailing``: entries to keep behind it this time."""
        trailing = body.get("trailing")
        if trailing is not None and (not isinstance(trailing, int) or isinstance(trailing, bool)
                                     or trailing < 0):
            raise bad_request("trailing must be a non-negative integer")
        before = self.r.storage.snapshot_meta().index
        index = self.r.take_snapshot(trailing)
        self.r.reply(token, {"index": index,
                             "taken": self.r.storage.snapshot_meta().index > before})

    def reap(self, token, body: dict) -> None:
        """rqlite's POST /reap: delete snapshot files no longer referenced and checkpoint the
        user database's WAL into it -> how many of each."""
        r = self.r
        reap_files = getattr(r.storage, "reap_snapshot_files", None)
        reaped = reap_files() if reap_files is not None else 0
        checkpointed = 0
        if not getattr(r.app, "memory", True) and r.app.sync() >= r.app.applied_index:
            checkpointed = 1
        r.reply(token, {"snapshots_reaped": reaped, "wals_checkpointed": checkpointed})

    @staticmethod
    def _node_id(body) -> int:
        nid = body.get("node_id")
        if not isinstance(nid, int) or isinstance(nid, bool) or nid <= 0:
            raise bad_request("node_id must be a positive integer")
        return nid

    def _change(self, token, cc: ConfChange, with_members: bool = False) -> None:
        """Propose one membership change at the leader; answer once it is applied here."""
        r = self.r

        def done(status, _res, _entry):
            if status == OK:
                r.reply(token, {"members": r.book.to_dict(), "cluster": r.cluster_identity}
                        if with_members else {})
            else:
                r.fail(token, unavailable("the configuration change did not commit; retry"))
        try:
            r.propose_conf_change(cc, done)
        except ValueError as e:          # not a member, already a member, the last voter...
            raise bad_request(str(e)) from None
        except ProposalDropped as e:     # another change still pending, or a transfer
            raise unavailable(str(e)) from None
        except NotLeader:
            raise not_leader(r.leader_info()) from None
        r.waiting_for(token, "configuration change")

    def join(self, token, body: dict) -> None:
        """Add a node (rqlite's /join): a learner, promoted once caught up unless it joins as
        a non-voter. A known id that joins again (a restart) is a no-op, or, when it comes
        back with other addresses, a logged address update, so every replica routes to it
        anew. A node that already belongs to another configuration is refused."""
        if self._leader_or_forward(token, body):
            return
        r = self.r
        nid = self._node_id(body)
        peer, client = body.get("peer"), body.get("client")
        if not isinstance(peer, str) or not isinstance(client, str):
            raise bad_request("join needs the new node's peer and client addresses")
        addrs = {"peer": peer, "client": client, "http": body.get("http")}
        if isinstance(body.get("name"), str):
            addrs["name"] = body["name"]
        member_of = body.get("member_of") or []
        if not isinstance(member_of, list) or not all(
                isinstance(m, int) and not isinstance(m, bool) for m in member_of):
            raise bad_request("member_of must be a list of node ids")
        if body.get("cluster") is not None and not isinstance(body.get("cluster"), str):
            raise bad_request("cluster must be the cluster's identity (a string)")
        known = nid in r.raft.voters or nid in r.raft.learners
        theirs = body.get("cluster")
        if theirs and r.cluster_identity and theirs != r.cluster_identity:
            raise RequestError("OtherCluster", (
                f"node {body.get('name') or nid} already belongs to another cluster (identity "
                f"{theirs}, this one is {r.cluster_identity}): it cannot join this cluster "
                "with that data directory; start it with an empty one"))
        if member_of and not known:
            raise RequestError("OtherCluster", (
                f"node {body.get('name') or nid} already belongs to a cluster (members "
                f"{sorted(member_of)}) and this cluster (members "
                f"{sorted(set(r.raft.voters) | set(r.raft.learners))}) does not have it: "
                "it cannot join another cluster with that data directory"))
        if known:
            if nid in r.raft.learners and body.get("voter", True) is not False:
                r.auto_promote.add(nid)
            old = r.book.get(nid) or {}
            if all(old.get(k) == v for k, v in addrs.items()):
                return r.reply(token, {"members": r.book.to_dict(), "already": True,
                                       "cluster": r.cluster_identity})

            def done(status, _res, _entry):
                if status == OK:
                    r.reply(token, {"members": r.book.to_dict(), "already": True,
                                    "cluster": r.cluster_identity})
                else:
                    r.fail(token, unavailable("the address change did not commit; retry"))
            try:
                r.propose(encode_address_update(nid, addrs), done)
            except (NotLeader, ProposalDropped) as e:
                raise unavailable(str(e)) from None
            r.waiting_for(token, "address change")
            return
        voter = body.get("voter", True) is not False
        ctx = encode_addresses(peer, client, body.get("http"), addrs.get("name"), promote=voter)
        self._change(token, ConfChange(ConfChangeType.ADD_LEARNER, nid, ctx), with_members=True)

    def remove(self, token, body: dict) -> None:
        if not self._leader_or_forward(token, body):
            self._change(token, ConfChange(ConfChangeType.REMOVE, self._node_id(body)))

    def promote(self, token, body: dict) -> None:
        if not self._leader_or_forward(token, body):
            self._change(token, ConfChange(ConfChangeType.PROMOTE, self._node_id(body)))

    def transfer(self, token, body: dict) -> None:
        if self._leader_or_forward(token, body):
            return
        r = self.r
        to = body.get("to")
        if not isinstance(to, int) or isinstance(to, bool) or to not in r.raft.voters:
            raise bad_request(f"cannot transfer leadership to {to!r}: not a voter")
        if to == r.id:
            return r.reply(token, {"leader": to})
        r.waiting_for(token, f"leadership transfer to node {to}")
        r.raft.transfer_leader(to)

        def moved(lid):
            if token not in r.pending_tokens:
                return
            if lid == r.id:
                r.wait_leader(moved)        # still us: keep waiting for the move
            else:
                r.reply(token, {"leader": lid})
        r.wait_leader(moved)
