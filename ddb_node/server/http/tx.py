"""Interactive transactions over HTTP (an rqlite-style extension of ddb; README "Transactions"):

    POST /db/tx                       -> {"tx": ID, "index": R, "expires_in": seconds}
    POST /db/execute?tx=ID            statements buffered in the transaction (their results
    POST /db/query?tx=ID              as at its read point, seeing its own writes)
    POST /db/request?tx=ID
    POST /db/tx/ID/commit             -> {"results": [...], "raft_index": N}; 409 on a conflict
                                         or a leader change (run it again from POST /db/tx)
    POST /db/tx/ID/rollback           -> {}

The node serving HTTP keeps, per open transaction, what the Python client keeps (read
point, buffered writes, tables used: ddb_node/transaction.py); the cluster keeps nothing.
An idle transaction expires after `IDLE_S`; an unknown, expired or ended one answers 404.
The commit carries the session ("http-tx-ID", 1), so a commit retried after a lost answer is
applied once and answers the first outcome.
"""
from __future__ import annotations

import secrets
import time
from dataclasses import dataclass, field

from ddb_node.protocol import ClientRequest

from . import format as fmt
from .endpoint import Endpoint, error_response, flags_of, send_json
from .errors import HttpError
from .server import Request, Response

IDLE_S = 30.0
MAX_OPEN = 10_000


@dataclass
class HttpTx:
    id: str
    begin: int
    term: int | None = None         # the leader's term at BEGIN: the transaction ends with it
    writes: list = field(default_factory=list)
    tables: set = field(default_factory=set)
    last: float = field(default_factory=time.monotonic)


class TxTable:
    """The open transactions of one HTTP service, expired when idle."""

    def __init__(self, idle: float = IDLE_S):
        self.idle = idle
        self.open: dict[str, HttpTx] = {}

    def expire(self) -> None:
        now = time.monotonic()
        for k in [k for k, t in self.open.items() if now - t.last > self.idle]:
            del self.open[k]

    def add(self, begin: int, term: int | None = None) -> HttpTx:
        self.expire()
        if len(self.open) >= MAX_OPEN:
            raise HttpError(503, "too many open transactions")
        t = HttpTx(secrets.token_hex(8), begin, term, last=time.monotonic())
        self.open[t.id] = t
        return t

    def get(self, tx_id: str) -> HttpTx:
        self.expire()
        t = self.open.get(tx_id)
        if t is None:
            raise HttpError(404, f"transaction {tx_id!r} is unknown, expired (idle over "
                                 f"{self.idle:g}s) or ended; nothing of it was applied")
        t.last = time.monotonic()
        return t


def table(service) -> TxTable:
    t = getattr(service, "transactions", None)
    if t is None:
        t = service.transactions = TxTable()
    return t


async def run(service, endpoint: str, tx_id: str, stmts: list, flags) -> dict:
    """Statements of /db/execute|query|request inside transaction `tx_id` -> rqlite's body."""
    t = table(service).get(tx_id)
    read_only = endpoint == "query"
    body = {"op": "tx", "begin": t.begin, "writes": t.writes, "statements": stmts,
            "read_only": read_only, "timeout": flags.timeout or 10.0}
    if t.term is not None:
        body["term"] = t.term
    try:
        resp = await service.call(body)
    except HttpError as e:
        if e.status == 409:
            table(service).open.pop(tx_id, None)     # a conflict or a leader change ends it
        raise
    t.tables.update(resp.get("tables") or ())
    results = resp.get("results") or []
    failed = {r.get("statement") for r in results if r.get("error")}
    first_bad = min(failed) if failed else len(stmts)
    if not read_only:
        ro = resp.get("readonly") or []
        t.writes.extend(s for k, s in enumerate(stmts[:first_bad])
                        if not (k < len(ro) and ro[k]))       # the statements that wrote
    tm, assoc, blob = flags.timings, flags.associative, flags.blob_array
    shape = {"execute": lambda r: fmt.exec_result(r, tm),
             "query": lambda r: fmt.query_result(r, tm, assoc, blob)}.get(
        endpoint, lambda r: fmt.request_result(r, tm, assoc, blob))
    return {"results": [shape(r) for r in results]}


class TxBeginEndpoint(Endpoint):
    """POST /db/tx: begin (a linearizable read point)."""
    methods = ("POST",)
    perms = ("query", "execute")

    async def handle(self, service, req: Request) -> Response:
        flags = flags_of(req)
        resp = await service.call({"op": "read_index", "timeout": flags.timeout or 10.0})
        t = table(service).add(resp["index"], resp.get("term"))
        return send_json({"tx": t.id, "index": t.begin, "expires_in": table(service).idle}, flags)


class TxEndEndpoint(Endpoint):
    """POST /db/tx/ID/commit and /db/tx/ID/rollback."""
    methods = ("POST",)
    perms = ("execute",)

    async def handle(self, service, req: Request) -> Response:
        flags = flags_of(req)
        parts = req.path.strip("/").split("/")       # db, tx, ID, action
        if len(parts) != 4 or parts[3] not in ("commit", "rollback"):
            raise HttpError(404)
        tx_id, action = parts[2], parts[3]
        tab = table(service)
        t = tab.get(tx_id)
        if action == "rollback":
            tab.open.pop(tx_id, None)
            return send_json({}, flags)
        if not t.writes:
            tab.open.pop(tx_id, None)
            return send_json({"results": [], "raft_index": t.begin}, flags)
        condition = {"index": t.begin, "tables": sorted(t.tables)}
        if t.term is not None:
            condition["term"] = t.term
        body = ClientRequest(t.writes, transaction=True, session=(f"http-tx-{tx_id}", 1),
                             timeout=flags.timeout or 10.0, condition=condition).to_wire()
        try:
            resp = await service.call(body)
        except HttpError as e:
            if e.status != 503 and e.status != 200:      # definite: the transaction is over
                tab.open.pop(tx_id, None)
            return error_response(service, e)
        tab.open.pop(tx_id, None)
        return send_json({"results": [fmt.exec_result(r, flags.timings)
                                      for r in resp.get("results") or []],
                          "raft_index": resp.get("index")}, flags)
