"""rqlite's ``GET /debug/vars`` (Go's expvar document): the counters of rqlite's that mean
something in ddb, each counted where the thing happens (one dict increment), plus the
node's own Raft and snapshot counters, which the Replica and the transport keep anyway.

rqlite publishes one expvar map per package (``http``, ``store``, ``snapshot``, ...); ddb
keeps that layout and those key names where the event exists here. What ddb has no
equivalent for (Go's ``memstats``, BoltDB, the TCP mux) is absent rather than zero.
"""
from __future__ import annotations

import json
import sys

from .endpoint import _JSON, Endpoint, flags_of
from .server import Response

# rqlite's http/service.go counters that ddb's HTTP layer has (same names)
HTTP_COUNTERS = (
    "leader_not_found", "ui", "executions", "execute_stmts_rx", "queued_executions",
    "queued_executions_ok", "queued_executions_num_stmts_rx", "queued_executions_num_stmts_tx",
    "queued_executions_failed", "queued_executions_wait", "queued_executions_wait_timeout",
    "queries", "query_stmts_rx", "requests", "request_stmts_rx", "num_readyz", "num_status",
    "backups", "loads", "boot", "user_snapshots", "user_reaps", "auth_ok", "auth_fail")

# rqlite's store/store.go counters that ddb's HTTP operations drive (same names)
STORE_COUNTERS = ("num_user_snapshots", "num_user_snapshots_failed", "num_boots",
                  "num_backups", "num_loads")

# the path of a request -> the http counter rqlite bumps when it routes it
ROUTE_COUNTERS = {"/db/execute": "executions", "/db/query": "queries", "/db/request": "requests",
                  "/db/backup": "backups", "/db/load": "loads", "/boot": "boot",
                  "/snapshot": "user_snapshots", "/reap": "user_reaps", "/status": "num_status",
                  "/readyz": "num_readyz", "/dashboard": "ui"}

# the Replica's counters, by the expvar map they belong to
_SNAPSHOT_KEYS = ("snapshots_taken", "snapshots_installed", "snapshot_images",
                  "snapshot_bytes_staged")


class Metrics:
    """The HTTP layer's counters, incremented in place by the code that does the thing."""

    def __init__(self):
        self.http = dict.fromkeys(HTTP_COUNTERS, 0)
        self.store = dict.fromkeys(STORE_COUNTERS, 0)

    def routed(self, path: str) -> None:
        key = ROUTE_COUNTERS.get(path[:-1] if path.endswith("/") and len(path) > 1 else path)
        if key is not None:
            self.http[key] += 1

    def variables(self, server, service) -> dict:
        """Every published variable, by name (built on request: nothing is kept twice)."""
        c = server.counters
        raft = server.raft
        snapshot = {k: c.get(k, 0) for k in _SNAPSHOT_KEYS}
        snapshot["last_snapshot_index"] = server.storage.snapshot_meta().index
        store = dict(self.store)
        store["num_snapshots"] = c.get("snapshots_taken", 0)
        raft_vars = {k: c.get(k, 0) for k in ("proposals", "applied_entries", "readies", "fsyncs",
                                              "unsynced_saves", "forwarded", "timeouts",
                                              "errors", "leader_gap_max_ms")}
        raft_vars.update(term=raft.term, commit_index=raft.commit_index,
                         applied_index=server.sm.applied_index, last_log_index=raft.last_index)
        out = {"cmdline": list(sys.argv), "http": self.http, "store": store,
               "snapshot": snapshot, "raft": raft_vars,
               "queue": dict(service.queue.stats)}
        if server.transport is not None:
            out["transport"] = dict(server.transport.stats)
        return out


def expvar_document(variables: dict, key: str | None) -> bytes:
    """Go's expvar handler output: one ``"name": value`` per line, names sorted, maps in
    expvar.Map's form (sorted keys, ``": "`` and ``", "``); ``key`` keeps one variable."""
    lines = []
    for name in sorted(variables):
        if key and key != name:
            continue
        v = variables[name]
        if isinstance(v, dict):
            text = json.dumps(v, sort_keys=True, separators=(", ", ": "))
        else:
            text = json.dumps(v, separators=(",", ":"))
        lines.append(f"{json.dumps(name)}: {text}")
    return ("{\n" + ",\n".join(lines) + "\n}\n").encode("utf-8")


class DebugVarsEndpoint(Endpoint):
    """GET /debug/vars (rqlite: the `status` permission; ``?key=NAME`` for one variable)."""
    perms = ("status",)

    async def handle(self, service, req):
        flags = flags_of(req)
        variables = service.metrics.variables(service.server, service)
        return Response(200, expvar_document(variables, flags.key), _JSON)
