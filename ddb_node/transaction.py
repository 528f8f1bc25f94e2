"""Interactive transactions for the Python client (`Client.transaction`, `run_transaction`).

    with client.transaction() as tx:                  # BEGIN: a linearizable read point R
        r = tx.query("SELECT balance FROM acct WHERE id = ?", [1])
        tx.execute("UPDATE acct SET balance = ? WHERE id = ?", [r.rows[0][0] - 10, 1])
    # leaving the block commits; an exception inside it rolls back

The transaction lives here, in the client: its read point, its buffered writes and the
tables it used. Each `query` / `execute` sends them along (the `tx` operation), and the node
it reaches answers from the state at R plus those writes, or raises TransactionConflict when
a table used changed after R. `commit` is one write (with the client's session: applied
exactly once) carrying the writes and the condition every replica checks at apply. Nothing
is held on a node, so a crash of the client or an abandoned transaction leaves nothing
behind; a transaction idle longer than `idle` seconds (or older than `lifetime`) is ended
by the client with TransactionAborted. A transaction lives in the leader's term it began in:
after a leader change its next statement, or its commit, raises TransactionAborted with
`rerun` (nothing applied; `run_transaction` runs it again). See sql/DESIGN.md.
"""
from __future__ import annotations

import random
import time

from ddb_node.errors import TransactionAborted, TransactionConflict
from ddb_node.protocol import ClientRequest, statement
from ddb_node.response import Response, raise_statement_errors

OPEN, COMMITTED, ROLLED_BACK = "open", "committed", "rolled back"


class Transaction:
    def __init__(self, client, begin: int, term: int | None = None, *,
                 timeout: float | None = None, idle: float = 30.0, lifetime: float = 300.0):
        self.client = client
        self.begin = begin               # the read point: the state every answer is taken at
        self.term = term                 # the leader's term at BEGIN: the transaction's life
        self.writes: list = []           # wire statements, in order
        self.tables: set[str] = set()    # every table a statement read or wrote
        self.state = OPEN
        self.timeout = timeout
        self.idle, self.lifetime = idle, lifetime
        self._started = self._last = time.monotonic()
        self.response: Response | None = None     # the commit's answer (its log index)

    @classmethod
    def start(cls, client, **kw) -> "Transaction":
        reply = client._send({"op": "read_index", **({"timeout": kw["timeout"]}
                                                    if kw.get("timeout") else {})},
                             to_leader=True, timeout=kw.get("timeout"))
        return cls(client, reply["index"], reply.get("term"), **kw)

    def __repr__(self) -> str:
        return (f"<Transaction at index {self.begin} (term {self.term}), {len(self.writes)} "
                f"buffered writes, {self.state}>")

    # ---------------------------------------------------------------- statements
    def _check_open(self) -> None:
        if self.state != OPEN:
            raise TransactionAborted(f"the transaction is {self.state}")
        now = time.monotonic()
        if now - self._last > self.idle or now - self._started > self.lifetime:
            self.state = ROLLED_BACK
            raise TransactionAborted(
                f"the transaction expired (idle {now - self._last:.1f}s, limit {self.idle:g}s; "
                f"open {now - self._started:.1f}s, limit {self.lifetime:g}s); nothing was applied")
        self._last = now

    # the requests and what their answers change (shared with AsyncTransaction)
    def _body(self, sql, params, read_only: bool) -> dict:
        self._check_open()
        body = {"op": "tx", "begin": self.begin, "writes": self.writes,
                "statements": [statement(sql, params)], "read_only": read_only}
        if self.term is not None:
            body["term"] = self.term
        if self.timeout:
            body["timeout"] = self.timeout
        return body

    def _took(self, reply: dict, sql, params, read_only: bool):
        self.tables.update(reply.get("tables") or ())
        resp = Response(reply)
        if self.client.raise_on_error:
            raise_statement_errors(resp)
        res = resp.results[-1]
        ro = reply.get("readonly") or [False]
        if not read_only and res.error is None and not ro[-1]:
            self.writes.append(statement(sql, params))     # a write: applied at commit
        return res

    def _commit_body(self) -> dict | None:
        self._check_open()
        if not self.writes:
            self.state = COMMITTED
            return None
        condition = {"index": self.begin, "tables": sorted(self.tables)}
        if self.term is not None:
            condition["term"] = self.term
        return ClientRequest(self.writes, transaction=True, condition=condition).to_wire()

    def _committed(self, reply: dict) -> Response:
        self.state = COMMITTED
        self.response = Response(reply)
        return self.response

    def _run(self, sql, params, read_only: bool):
        body = self._body(sql, params, read_only)
        try:
            reply = self.client._send(body, to_leader=True, timeout=self.timeout)
        except (TransactionConflict, TransactionAborted):
            self.state = ROLLED_BACK
            raise
        return self._took(reply, sql, params, read_only)

    def query(self, sql: str, params=None):
        """A read at the transaction's point, seeing its own writes -> the Result."""
        return self._run(sql, params, True)

    def execute(self, sql: str, params=None):
        """A write, buffered until commit (the transaction's later statements see it) -> the
        Result it had at the transaction's point (rows affected, last insert id). A statement
        that wrote nothing (a SELECT) is answered and not buffered."""
        return self._run(sql, params, False)

    # ---------------------------------------------------------------- the end
    def commit(self) -> Response | None:
        """Apply the buffered writes in one log entry, if nothing the transaction used changed
        since its read point (else TransactionConflict, nothing applied). A transaction that
        wrote nothing commits at once (its reads were all of one state)."""
        body = self._commit_body()
        if body is None:
            return None
        try:
            reply = self.client._send_in_session(body, to_leader=True, timeout=self.timeout)
        except BaseException:
            self.state = ROLLED_BACK
            raise
        return self._committed(reply)

    def rollback(self) -> None:
        """Forget the transaction (nothing of it was sent to the log)."""
        if self.state == OPEN:
            self.state = ROLLED_BACK

    def __enter__(self) -> "Transaction":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.rollback()
        elif self.state == OPEN:
            self.commit()


def backoff(attempt: int) -> float:
    """Seconds to wait before attempt `attempt` + 1 after a conflict: random, up to 2 ms per
    attempt (at most 20 ms), so rivals that collided do not collide again in step."""
    return random.uniform(0, 0.002 * min(attempt, 10))


def rerun(e: BaseException) -> bool:
    """Nothing of the transaction was applied and running it again may succeed: a conflict,
    or the leader it began with lost office."""
    return isinstance(e, TransactionConflict) or (isinstance(e, TransactionAborted) and e.rerun)


def run_transaction(client, fn, *, retries: int = 10, **kw):
    """fn(tx) in a transaction, committed; run again (a fresh transaction) after a conflict
    or a leader change, up to `retries` more times -> fn's value. The last such error is
    raised."""
    attempt = 0
    while True:
        tx = client.transaction(**kw)
        try:
            with tx:
                out = fn(tx)
            return out
        except (TransactionConflict, TransactionAborted) as e:
            if attempt >= retries or not rerun(e):
                raise
            attempt += 1
            time.sleep(backoff(attempt))        # de-synchronise rivals


class AsyncTransaction(Transaction):
    """The same for `AsyncClient`: `async with ac.transaction() as tx`, `await tx.query(...)`
    (or `tx = await ac.transaction().start()`)."""

    def __init__(self, client, **kw):
        super().__init__(client, -1, None, **kw)
        self._kw = kw

    async def start(self) -> "AsyncTransaction":
        t = self._kw.get("timeout")
        reply = await self.client.call({"op": "read_index", **({"timeout": t} if t else {})}, t)
        self.begin, self.term = reply["index"], reply.get("term")
        self._started = self._last = time.monotonic()
        return self

    async def _run(self, sql, params, read_only: bool):
        body = self._body(sql, params, read_only)
        try:
            reply = await self.client.call(body, self.timeout)
        except (TransactionConflict, TransactionAborted):
            self.state = ROLLED_BACK
            raise
        return self._took(reply, sql, params, read_only)

    async def query(self, sql: str, params=None):
        return await self._run(sql, params, True)

    async def execute(self, sql: str, params=None):
        return await self._run(sql, params, False)

    async def commit(self) -> Response | None:
        body = self._commit_body()
        if body is None:
            return None
        try:
            reply = await self.client._call_in_session(body, self.timeout)
        except BaseException:
            self.state = ROLLED_BACK
            raise
        return self._committed(reply)

    async def __aenter__(self) -> "AsyncTransaction":
        return await self.start() if self.begin < 0 else self

    async def __aexit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.rollback()
        elif self.state == OPEN:
            await self.commit()


async def run_transaction_async(client, fn, *, retries: int = 10, **kw):
    """run_transaction for AsyncClient: `await fn(tx)`."""
    import asyncio
    attempt = 0
    while True:
        try:
            async with client.transaction(**kw) as tx:
                out = await fn(tx)
            return out
        except (TransactionConflict, TransactionAborted) as e:
            if attempt >= retries or not rerun(e):
                raise
            attempt += 1
            await asyncio.sleep(backoff(attempt))
