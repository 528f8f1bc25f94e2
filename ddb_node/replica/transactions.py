"""The `tx` operation: one statement (or a few) of an interactive transaction.

The transaction's state travels with each request (its read point, its buffered writes), so
no node keeps any: whichever node the request reaches waits until it has applied the read
point, runs the writes and then the statements on its state machine inside a transaction it
always rolls back (`StateMachine.tx_run`), and answers the results and the tables used. A
leader change, a crash or an abandoned transaction therefore leaves nothing behind; the
commit is an ordinary write whose entry carries the condition that every replica checks
(sql/transactions.py). See sql/DESIGN.md.
"""
from __future__ import annotations

from ddb_node.protocol import RequestError, bad_request
from ddb_node.sql import SQL_FAILURES, Request, validate
from ddb_node.sql.transactions import Conflict, is_conflict


def conflict_error(message: str) -> RequestError:
    return RequestError("TransactionConflict", message)


def commit_error(er) -> RequestError | None:
    """The typed error of a commit entry refused by its condition (else None)."""
    return conflict_error(er.error) if is_conflict(er.error) else None


def tx(requests, token, body: dict) -> None:
    r = requests.r
    begin = body.get("begin")
    if not isinstance(begin, int) or isinstance(begin, bool) or begin < 0:
        raise bad_request("begin must be the transaction's read point (a non-negative index)")
    writes, stmts = body.get("writes") or [], body.get("statements")
    if not isinstance(writes, list) or not isinstance(stmts, list) or not stmts:
        raise bad_request("a tx request needs 'statements' (a non-empty list) and 'writes' (a list)")
    try:
        both = validate(Request(statements=writes + stmts), r.app.limits)
    except SQL_FAILURES as e:
        raise bad_request(str(e), getattr(e, "statement", None), getattr(e, "detail", None)) from None
    n = len(writes)
    max_rows, max_bytes = body.get("max_rows"), body.get("max_bytes")
    read_only = bool(body.get("read_only", False))
    requests._deadline(token, body, f"transaction (apply of its read point {begin})")

    def run():
        if token not in r.pending_tokens:
            return
        try:
            results, tables = r.app.tx_run(begin, both.statements[:n], both.statements[n:],
                                           read_only=read_only, max_rows=max_rows,
                                           max_bytes=max_bytes)
        except Conflict as e:
            return r.fail(token, conflict_error(str(e)))
        except SQL_FAILURES as e:
            return r.fail(token, bad_request(str(e)))
        except Exception as e:  # noqa: BLE001  runs inside apply: a bug answers, never crashes
            return r.fail(token, RequestError("Internal", f"transaction statement failed: "
                                              f"{type(e).__name__}: {e}"))
        r.reply(token, {"results": [x.to_dict() for x in results], "tables": tables,
                        "readonly": list(getattr(r.app, "tx_readonly", ())),
                        "index": r.app.applied_index})
    r.wait_applied(begin, run)
