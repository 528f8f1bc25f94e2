"""Client requests: consistency levels, forwarding to the leader, admin operations.

Levels (rqlite's names): `none` reads the local database (optionally refusing when the node
has not heard from a leader within `freshness` seconds); `weak` reads the leader's local
state; `linearizable` confirms leadership with a quorum round (ReadIndex) and waits until the
read index is applied; `strong` sends the read through the log. Writes always go through the
leader's log; a follower forwards them (or answers NotLeader with the leader's address when
the client asked for redirects).
"""
from __future__ import annotations

import time

import msgpack

from ddb_node.raft import NONE, ConfChange, ConfChangeType, NotLeader, ProposalDropped, Role
from ddb_node.sql import BadRequest, Request, SqlError, Statement, encode_entry

from .errors import ErrorReply, bad_request, no_leader, not_leader, unavailable
from .members import encode_addresses
from .node import MAP_MARKER

MAX_TIMEOUT = 300.0


def _timeout(server, body) -> float:
    t = body.get("timeout")
    if t is None:
        return server.opts.request_timeout
    if not isinstance(t, (int, float)) or isinstance(t, bool) or t <= 0:
        raise bad_request("timeout must be a positive number of seconds")
    return min(float(t), MAX_TIMEOUT)


async def handle_request(server, body: dict) -> dict:
    op = body.get("op")
    server.counters["requests"] += 1
    handler = _OPS.get(op) if isinstance(op, str) else None   # a list/map op is unhashable
    if handler is None:
        raise bad_request(f"unknown operation {op!r}")
    return await handler(server, body)


# ------------------------------------------------------------------ SQL
def _build_request(body: dict) -> Request:
    stmts = body.get("statements")
    if not isinstance(stmts, list) or not stmts:
        raise bad_request("'statements' must be a non-empty list")
    level = body.get("level") or "weak"
    if level not in ("none", "weak", "linearizable", "strong", "auto"):
        raise bad_request(f"unknown consistency level {level!r}; "
                          "use none, weak, linearizable, strong or auto")
    try:
        return Request(statements=stmts, transaction=bool(body.get("transaction", False)),
                       level=level, timeout=body.get("timeout"))
    except SqlError as e:
        raise bad_request(str(e)) from None


async def op_request(server, body: dict) -> dict:
    t0 = time.perf_counter()
    timeout = _timeout(server, body)
    req = _build_request(body)
    try:
        cls = server.sm.classify(req)
    except BadRequest as e:
        raise bad_request(str(e)) from None
    level = req.level
    if level == "auto":
        level = "weak"
    raft = server.raft
    is_leader = raft.role == Role.LEADER
    max_rows = body.get("max_rows")
    if cls.kind == "read" and level != "strong":
        if level == "none":
            fresh = body.get("freshness")
            if fresh is not None and (not isinstance(fresh, (int, float)) or isinstance(fresh, bool)
                                      or fresh < 0):
                raise bad_request("freshness must be a non-negative number of seconds")
            if fresh and not is_leader:
                contact = server.last_leader_contact
                age = time.monotonic() - contact if contact else float("inf")
                if age > float(fresh):
                    raise ErrorReply("Stale", f"this node last heard from a leader {age:.3f}s ago, "
                                     f"more than the freshness bound of {float(fresh):g}s")
            index = server.sm.applied_index
        elif level == "weak":
            if not is_leader:
                return await _forward_or_redirect(server, body, timeout)
            index = server.sm.applied_index
        else:  # linearizable
            index = await server.read_index(timeout)
            await server.wait_applied(index, timeout)
        results = server.sm.query(req, max_rows=max_rows) if max_rows else server.sm.query(req)
        return _ok(server, results, index, level, t0)
    # writes and strong reads go through the log
    if not is_leader:
        return await _forward_or_redirect(server, body, timeout)
    session = body.get("session")
    if session is not None:
        if not (isinstance(session, list) and len(session) == 2 and isinstance(session[0], str)
                and isinstance(session[1], int)):
            raise bad_request("session must be [client_id, sequence_number]")
        session = (session[0], session[1])
    try:
        payload = encode_entry(req, timestamp_ms=int(time.time() * 1000),
                               seed=server.rng.getrandbits(63), session=session)
    except SqlError as e:
        raise bad_request(str(e)) from None
    try:
        fut = server.propose(payload)
    except NotLeader:
        return await _forward_or_redirect(server, body, timeout)
    except ProposalDropped as e:
        raise unavailable(str(e)) from None
    er = await server.wait(fut, timeout, "write")
    index = getattr(er, "index", None)
    if getattr(er, "error", None):
        # a rolled-back transaction (or an undecodable entry): the error, plus the results
        # up to the failing statement (rqlite shows them)
        e = ErrorReply("BadRequest", str(er.error))
        e.results = [r.to_dict() for r in er.results]
        raise e
    return _ok(server, er.results, index, level, t0,
               duplicate=bool(getattr(er, "session_duplicate", False)))


def _ok(server, results, index, level, t0, duplicate=False) -> dict:
    resp = {"ok": True, "results": [r.to_dict() for r in results], "index": index,
            "level": level, "time": time.perf_counter() - t0}
    if duplicate:
        resp["duplicate"] = True
    return resp


async def _forward_or_redirect(server, body: dict, timeout: float) -> dict:
    leader = server.leader_info()
    if body.get("forwarded"):
        raise not_leader(leader)
    if body.get("redirect"):
        if leader is None:
            raise no_leader()
        raise not_leader(leader)
    if leader is None:
        # wait briefly for an election rather than failing at once
        await server.wait_leader(timeout)
        leader = server.leader_info()
        if server.raft.role == Role.LEADER:
            return await handle_request(server, body)
    resp = await server.forward(body, timeout)
    resp.setdefault("forwarded_by", server.id)
    return resp


# ------------------------------------------------------------------ map/reduce
async def op_map(server, body: dict) -> dict:
    """Leader: log a map step; every member computes its share when it applies it."""
    timeout = _timeout(server, body)
    fwd = await _leader_or_forward(server, body, timeout)
    if fwd is not None:
        return fwd
    sql, params = body.get("sql"), body.get("params")
    if not isinstance(sql, str) or (params is not None and not isinstance(params, dict)):
        raise bad_request("map needs 'sql' (a string) and optional named 'params'")
    req = Request([Statement(sql, dict(params or {}, ddb_part=0, ddb_parts=1))])
    try:
        cls = server.sm.classify(req)
    except BadRequest as e:
        raise bad_request(str(e)) from None
    if cls.kind != "read":
        raise bad_request("a map query must be read-only")
    members = sorted(set(server.raft.voters) | set(server.raft.learners))
    parts = {nid: i for i, nid in enumerate(members)}
    payload = MAP_MARKER + msgpack.packb({"sql": sql, "params": params or {}, "parts": parts,
                                         "nparts": len(parts)}, use_bin_type=True)
    try:
        index, fut = server.propose_indexed(payload)
    except (NotLeader, ProposalDropped) as e:
        raise unavailable(str(e)) from None
    await server.wait(fut, timeout, "map step")
    return {"ok": True, "index": index,
            "parts": {str(k): v for k, v in parts.items()}, "nparts": len(parts)}


async def op_map_result(server, body: dict) -> dict:
    """Any member: this node's share of the map step logged at `index`."""
    timeout = _timeout(server, body)
    index = body.get("index")
    if not isinstance(index, int) or index <= 0:
        raise bad_request("index must be a positive integer")
    await server.wait_applied(index, timeout)
    out = server.map_results.get(index)
    if out is None:
        raise ErrorReply("Unavailable", f"no map result at index {index} on node {server.id} "
                         "(not a map step, or evicted)")
    return dict(out)


# ------------------------------------------------------------------ admin
async def op_ping(server, body):
    return {"ok": True}


async def op_status(server, body):
    return {"ok": True, "status": server.status()}


async def op_nodes(server, body):
    """Members, leader and term. With `after_term` T it is a long poll: the answer waits
    (up to `timeout`) until this node knows a leader at a term above T, so a client that
    lost the leader of term T hears of its successor as soon as this node does."""
    after = body.get("after_term")
    if after is not None:
        if not isinstance(after, int) or isinstance(after, bool):
            raise bad_request("after_term must be an integer")
        await _wait_newer_leader(server, after, _timeout(server, body))
    r = server.raft
    cs = r.conf_state
    return {"ok": True, "leader": r.leader_id, "voters": list(cs.voters), "learners": list(cs.learners),
            "members": server.book.to_dict(), "applied": server.sm.applied_index,
            "commit": r.commit_index, "term": r.term}


async def _wait_newer_leader(server, term: int, timeout: float) -> None:
    r = server.raft
    deadline = time.monotonic() + timeout
    while not (r.term > term and r.leader_id != NONE):
        left = deadline - time.monotonic()
        if left <= 0:
            return
        await server.wait_leader_change(left)


async def op_faults(server, body):
    cmd = body.get("cmd")
    if not isinstance(cmd, dict):
        raise bad_request("'cmd' must be a fault command map")
    try:
        state = server.transport.faults.apply(cmd)
    except (ValueError, TypeError) as e:
        raise bad_request(str(e)) from None
    server._event("fault", cmd=cmd)
    return {"ok": True, "faults": state}


async def _leader_or_forward(server, body, timeout):
    if server.raft.role != Role.LEADER:
        return await _forward_or_redirect(server, body, timeout)
    return None


def _node_id(body) -> int:
    nid = body.get("node_id")
    if not isinstance(nid, int) or isinstance(nid, bool) or nid <= 0:
        raise bad_request("node_id must be a positive integer")
    return nid


async def _change_membership(server, cc: ConfChange, timeout: float) -> None:
    """Propose one membership change at the leader and wait until it is applied."""
    try:
        await server.propose_conf(cc, timeout)
    except ValueError as e:          # not a member, already a member, the last voter...
        raise bad_request(str(e)) from None
    except ProposalDropped as e:     # another change still pending, or a transfer
        raise unavailable(str(e)) from None
    except NotLeader:
        raise not_leader(server.leader_info()) from None


async def op_join(server, body):
    timeout = _timeout(server, body)
    fwd = await _leader_or_forward(server, body, timeout)
    if fwd is not None:
        return fwd
    nid = _node_id(body)
    peer, client = body.get("peer"), body.get("client")
    if not isinstance(peer, str) or not isinstance(client, str):
        raise bad_request("join needs the new node's peer and client addresses")
    r = server.raft
    if nid in r.voters or nid in r.learners:
        server.book.set(nid, {"peer": peer, "client": client, "http": body.get("http")})
        server.transport.set_peer(nid, peer)
        return {"ok": True, "members": server.book.to_dict(), "already": True}
    ctx = encode_addresses(peer, client, body.get("http"))
    await _change_membership(server, ConfChange(ConfChangeType.ADD_LEARNER, nid, ctx), timeout)
    if body.get("voter", True):
        server.auto_promote.add(nid)
    return {"ok": True, "members": server.book.to_dict()}


async def _membership_op(server, body, kind: ConfChangeType) -> dict:
    timeout = _timeout(server, body)
    fwd = await _leader_or_forward(server, body, timeout)
    if fwd is not None:
        return fwd
    await _change_membership(server, ConfChange(kind, _node_id(body)), timeout)
    return {"ok": True}


async def op_remove(server, body):
    return await _membership_op(server, body, ConfChangeType.REMOVE)


async def op_promote(server, body):
    return await _membership_op(server, body, ConfChangeType.PROMOTE)


async def op_transfer(server, body):
    timeout = _timeout(server, body)
    fwd = await _leader_or_forward(server, body, timeout)
    if fwd is not None:
        return fwd
    to = body.get("to")
    if not isinstance(to, int) or to not in server.raft.voters:
        raise bad_request(f"cannot transfer leadership to {to!r}: not a voter")
    if to == server.id:
        return {"ok": True, "leader": to}
    server.raft.transfer_leader(to)
    server._kick()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lid = await server.wait_leader_change(deadline - time.monotonic())
        if lid == to:
            return {"ok": True, "leader": to}
        if lid not in (None, server.id):
            return {"ok": True, "leader": lid}
    raise ErrorReply("Timeout", f"leadership did not move to node {to} within {timeout:g}s")


async def op_snapshot(server, body):
    return {"ok": True, "index": server.take_snapshot()}


_OPS = {
    "request": op_request, "map": op_map, "map_result": op_map_result, "ping": op_ping, "status": op_status,
    "nodes": op_nodes, "faults": op_faults, "join": op_join, "remove": op_remove,
    "promote": op_promote, "transfer": op_transfer, "snapshot": op_snapshot,
}
