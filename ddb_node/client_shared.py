"""What `Client` and `AsyncClient` share: building a request's statements, the cluster view
from a `nodes` answer, the route of one request (routing.route over a client's view), the
CURVE keys from the environment. One definition each, so the two clients cannot drift."""
from __future__ import annotations

import itertools
import os
import random
import time
import uuid
from typing import Iterable

from ddb_node.protocol import LEVELS, statement
from ddb_node.routing import ClusterView, norm_addr, route

CHUNK_ROWS = 50_000     # query(): a result longer than this comes in chunks (a cursor)


def curve_from_env() -> dict | None:
    """CURVE client keys from the file named by $DDB_CURVE_KEYS: {"public", "secret",
    "server"} (a cluster key file from `ddb keygen` works too: its own key is the server's)."""
    path = os.environ.get("DDB_CURVE_KEYS")
    if not path:
        return None
    import json
    with open(path) as f:
        k = json.load(f)
    return {"public": k["public"].encode(), "secret": k["secret"].encode(),
            "server": k.get("server", k["public"]).encode()}


def one_statement(sql, params) -> list:
    return [statement(sql, params)]


def statement_list(statements) -> list:
    """A request's statements from SQL strings or (sql, params) pairs."""
    out = []
    for s in statements:
        if isinstance(s, str):
            out.append(statement(s))
        elif isinstance(s, (list, tuple)) and s and isinstance(s[0], str):
            out.append(statement(s[0], s[1] if len(s) > 1 else None))
        else:
            raise TypeError(f"a statement is a SQL string or (sql, params), not {s!r}")
    return out


def choose_nodes_reply(replies: dict[str, dict], prefer: str | None = None) -> dict:
    """Of several nodes' `nodes` answers, the one to believe: a leader named at the highest
    term first (a deposed leader still naming itself has a lower term), then `prefer`."""
    def rank(item):
        addr, r = item
        return (1 if r.get("leader") else 0, r.get("term", 0), addr == prefer)
    return max(replies.items(), key=rank)[1]


def cluster_view(reply: dict, known: dict[int, str]) -> tuple[dict[int, str], int | None]:
    """(members by id -> client address, leader id or None) from a `nodes` answer; the
    members already `known` stay when the answer lists none."""
    ids = set(reply.get("voters", [])) | set(reply.get("learners", []))
    members = {int(k): norm_addr(v["client"]) for k, v in (reply.get("members") or {}).items()
               if int(k) in ids} or known
    lid = reply.get("leader") or None
    return members, (lid if lid in members else None)


def client_route(client, body: dict, to_leader: bool, timeout: float | None, is_down):
    """The route of one request of either client (routing.route over its view)."""
    return route(client.view, body, to_leader=to_leader, timeout=timeout or client.timeout,
                 attempt_timeout=client.attempt_timeout, now=time.monotonic, is_down=is_down,
                 rng=client._rng, redirect=client.redirect)


class ClientSettings:
    """What `Client` and `AsyncClient` are both made of: the seed addresses, the settings,
    the view of the cluster (members, leader, term) and the client's sessions."""

    def __init__(self, addresses: str | Iterable[str], *, cluster_id: str | None = None,
                 timeout: float = 10.0, level: str = "weak", redirect: bool = False,
                 curve: dict | None = None, raise_on_error: bool = True,
                 attempt_timeout: float = 2.0, probe_after: float = 0.1,
                 read_your_writes: bool = False):
        """`addresses`: client addresses of any members ("host:port" or tcp://..., a list or
        one comma-separated string); `timeout`: a request's whole budget, seconds; `level`:
        the default read level (protocol.LEVELS); `redirect`: follow a leader change by
        asking again rather than through the node's forward; `curve`: CURVE keys (default:
        $DDB_CURVE_KEYS); `raise_on_error`: a failed statement raises StatementError (else it
        is in the Response); `attempt_timeout`: how long one node may stay silent before the
        next is tried; `probe_after`: see below; `read_your_writes`: every `weak`/`none` read
        carries the index of this client's last write (`min_index`), so any node answers it
        once it has applied that write."""
        if isinstance(addresses, str):
            addresses = [a for a in addresses.split(",") if a.strip()]
        self.seeds = [norm_addr(a) for a in addresses]
        if not self.seeds:
            raise ValueError("give at least one node address")
        if level not in LEVELS:
            raise ValueError(f"unknown level {level!r}; use one of {', '.join(LEVELS)}")
        self.attempt_timeout = attempt_timeout
        # how late a leader's answer may be before we also ask the others whether it was
        # replaced (they answer only when they know a newer leader). Below the election
        # timeout (150 ms) a probe is never late for the election it watches
        self.probe_after = probe_after
        self.cluster_id = cluster_id or ""
        self.timeout = timeout
        self.level = level
        self.redirect = redirect
        self.curve = curve if curve is not None else curve_from_env()
        self.raise_on_error = raise_on_error
        self.read_your_writes = read_your_writes
        self.last_index = 0          # the highest index a write of this client was applied at
        self.client_id = uuid.uuid4().hex
        # sessions with no request in flight: [id, last seq]. A node remembers only the highest
        # sequence number per session, so two concurrent requests on one session would make
        # the one that arrives second look like an old duplicate (and never apply it); each
        # request in flight gets a session of its own.
        self._free_sessions: list[list] = [[self.client_id, 0]]
        self._ids = itertools.count(1)
        self.view = ClusterView(self.seeds)   # members, leader, the term we know it at
        self._rng = random.Random()
        self._closed = False

    # the view's fields, by the names callers know
    members = property(lambda self: self.view.members,
                       lambda self, v: setattr(self.view, "members", v))
    _leader = property(lambda self: self.view.leader,
                       lambda self, v: setattr(self.view, "leader", v))
    _term = property(lambda self: self.view.term, lambda self, v: setattr(self.view, "term", v))
