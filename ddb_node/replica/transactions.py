"""The `tx` operation: one statement (or a few) of an interactive transaction.

The transaction's state travels with each request (its read point, its buffered writes), so
no node keeps any: whichever node the request reaches waits until it has applied the read
point, runs the writes and then the statements on its state machine inside a transaction it
always rolls back (`StateMachine.tx_run`), and answers the results and the tables used. A
crash or an abandoned transaction therefore leaves nothing behind. A transaction lives in
the term it began in: a node in another term answers TransactionAborted (rerun), and the
commit, an ordinary write, carries the condition (read point, tables, term) that every
replica checks (sql/transactions.py). See sql/DESIGN.md.
"""
from __future__ import annotations

from ddb_node.protocol import RequestError, bad_request
from ddb_node.sql import SQL_FAILURES, Request, validate
from ddb_node.sql.transactions import Conflict, is_aborted, is_conflict, leader_changed


def conflict_error(message: str) -> RequestError:
    return RequestError("TransactionConflict", message)


def aborted_error(message: str) -> RequestError:
    """The transaction's leader lost office: nothing applied, the whole of it may run again."""
    return RequestError("TransactionAborted", message, rerun=True)


def commit_error(er) -> RequestError | None:
    """The typed error of a commit entry refused by its condition (else None)."""
    if is_conflict(er.error):
        return conflict_error(er.error)
    return aborted_error(er.error) if is_aborted(er.error) else None


def check_term(r, body: dict) -> RequestError | None:
    """A transaction's statements run only in the term it began in (`term`, from its
    read_index answer): a node in another term means the leader changed, which ends it."""
    term = body.get("term")
    if term is None:
        return None
    if not isinstance(term, int) or isinstance(term, bool) or term < 0:
        raise bad_request("term must be the transaction's term (a non-negative integer)")
    return None if term == r.raft.term else aborted_error(leader_changed(term, r.raft.term))


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
    if (aborted := check_term(r, body)) is not None:
        raise aborted
    n = len(writes)
    max_rows, max_bytes = body.get("max_rows"), body.get("max_bytes")
    read_only = bool(body.get("read_only", False))
    requests._deadline(token, body, f"transaction (apply of its read point {begin})")

    def run():
        if token not in r.pending_tokens:
            return
        if (aborted := check_term(r, body)) is not None:
            return r.fail(token, aborted)
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
