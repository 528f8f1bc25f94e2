"""What `Client` and `AsyncClient` share: building a request's statements, the cluster view
from a `nodes` answer, the route of one request (routing.route over a client's view), the
CURVE keys from the environment. One definition each, so the two clients cannot drift."""
from __future__ import annotations

import os
import time

from ddb_node.protocol import statement
from ddb_node.routing import norm_addr, route

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
