"""Interactive transactions in the notebook (issue 16):

    %%ddb --begin [--tx NAME]     BEGIN transaction NAME (default "tx") and run the cell in it
    %%ddb --tx NAME               run the cell in the open transaction NAME
    %ddb commit [NAME]            COMMIT it (one log entry; a conflict applies nothing)
    %ddb rollback [NAME]          forget it

The transaction is a `ddb_node.transaction.Transaction` kept on the cluster's backend: its
statements see the state at its read point plus its own writes; the cell's note names it.
Live clusters only (the simulated one has no client)."""
from __future__ import annotations

from ddb_node.errors import TransactionAborted, TransactionConflict

from .backends import Reply
from .parsing import UsageProblem

DEFAULT = "tx"


def _table(backend) -> dict:
    client = getattr(backend, "client", None)
    if client is None:
        raise UsageProblem("interactive transactions need a live cluster (%ddb launch without --sim)")
    if not hasattr(backend, "transactions"):
        backend.transactions = {}
    return backend.transactions


def caption(name: str, tx) -> str:
    return (f"in transaction {name!r} (read point {tx.begin}, {len(tx.writes)} buffered "
            f"write{'s' if len(tx.writes) != 1 else ''}; %ddb commit {name} | %ddb rollback {name})")


def execute(backend, opts, bound, timeout) -> Reply:
    """The cell's statements in its transaction -> a Reply like any cell's."""
    table = _table(backend)
    name = opts.tx or DEFAULT
    if opts.begin:
        if name in table and table[name].state == "open":
            raise UsageProblem(f"transaction {name!r} is already open: %ddb commit {name} or "
                               f"%ddb rollback {name} first")
        table[name] = backend.client.transaction(timeout=timeout)
    tx = table.get(name)
    if tx is None or tx.state != "open":
        raise UsageProblem(f"no open transaction {name!r}: start one with %%ddb --begin --tx {name}")
    results = []
    try:
        for sql, params in bound:
            res = tx.execute(sql, params or None)
            results.append(res)
            if res.error is not None:
                break
    except (TransactionConflict, TransactionAborted) as e:
        table.pop(name, None)
        return Reply(results, note=f"transaction {name!r} ended: {e}")
    return Reply(results, level=f"transaction {name}", index=tx.begin, note=caption(name, tx))


def end(backend, rest: str, commit: bool) -> str:
    """%ddb commit|rollback [NAME] -> the line to show."""
    table = _table(backend)
    name = rest.strip() or DEFAULT
    tx = table.pop(name, None)
    if tx is None or tx.state != "open":
        raise UsageProblem(f"no open transaction {name!r}")
    if not commit:
        tx.rollback()
        return f"transaction {name!r} rolled back: nothing of it was applied"
    try:
        resp = tx.commit()
    except (TransactionConflict, TransactionAborted) as e:
        return f"transaction {name!r} not committed, nothing applied: {e}"
    if resp is None:
        return f"transaction {name!r} committed (it wrote nothing)"
    return f"transaction {name!r} committed at index {resp.index} ({len(tx.writes)} writes)"
