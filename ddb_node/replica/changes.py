"""The `changes` operation: this replica's own applied row changes after an index (CDC).

Any member answers from its own change log (``sql/changes.py``): every replica applies the
same committed entries and records the same changes, so a reader may read from any node and
resume on another at the index it reached. Only applied (hence committed) entries are in the
log: a reader never sees a change that could still be undone.

Frame: ``{"op": "changes", "since": N, "tables": [...] | None, "max_entries": M, "wait": S}``.
Answer: ``{"events": [[index, table, op, key, old, new], ...], "through": T, "oldest": O}``:
every change of every entry in (N, T] that passed the filter, whole entries only, in index
order; the next read asks ``since = T``. With ``wait`` the answer waits (up to S seconds) for
an entry with changes after N, then answers with what there is (perhaps nothing). A reader
behind the retained window gets the error ``ChangesTruncated`` with ``oldest``, the oldest
index still retained.
"""
from __future__ import annotations

from ddb_node.protocol import MAX_TIMEOUT, RequestError, bad_request
from ddb_node.sql.changes import CaptureOff, ChangesTruncated

MAX_ENTRIES = 1000        # entries of the log in one answer, at most
MAX_BYTES = 1 << 20       # about this many encoded bytes in one answer


def _int(body: dict, name: str, default, low: int):
    v = body.get(name, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < low:
        raise bad_request(f"{name} must be an integer >= {low}")
    return v


def parse(body: dict) -> tuple[int, list | None, int, float]:
    since = _int(body, "since", 0, 0)
    max_entries = min(_int(body, "max_entries", MAX_ENTRIES, 1), MAX_ENTRIES)
    tables = body.get("tables")
    if tables is not None and (not isinstance(tables, list)
                               or not all(isinstance(t, str) for t in tables)):
        raise bad_request("tables must be a list of table names")
    wait = body.get("wait", 0)
    if not isinstance(wait, (int, float)) or isinstance(wait, bool) or wait < 0:
        raise bad_request("wait must be a non-negative number of seconds")
    return since, tables, max_entries, min(float(wait), MAX_TIMEOUT)


def truncated_error(e: ChangesTruncated) -> dict:
    return dict(RequestError("ChangesTruncated", str(e)).to_dict(), oldest=e.oldest)


def serve(r, token, body: dict) -> None:
    """Answer now, or once this replica has applied changes after `since` (long poll)."""
    since, tables, max_entries, wait = parse(body)
    log = getattr(r.app, "changes", None)
    if log is None or not log.enabled:
        raise bad_request(f"node {r.id} records no changes (change capture is off)")

    waiting: list = []          # the applied-index wait this long poll left, if any

    def answer(final: bool) -> None:
        if token not in r.pending_tokens:
            return
        if final and waiting:    # answered at the deadline: drop the wait it left behind
            r.applied_waits = [w for w in r.applied_waits if w[1] is not waiting[0]]
        applied = r.app.applied_index
        try:
            events, through = log.read(since, applied, tables=tables, max_entries=max_entries,
                                       max_bytes=MAX_BYTES)
        except ChangesTruncated as e:
            return r.reply(token, {"ok": False, "error": truncated_error(e)})
        except CaptureOff as e:
            return r.fail(token, bad_request(str(e)))
        if events or final or wait <= 0:
            return r.reply(token, {"events": events, "through": max(through, since),
                                   "oldest": log.pruned + 1, "applied": applied})
        # nothing yet: answer when the next entry is applied (or at the deadline)
        waiting[:] = [lambda: answer(False)]
        r.wait_applied(max(through, since) + 1, waiting[0])

    if wait > 0:
        r.set_deadline(token, wait, "changes", on_expire=lambda: answer(True))
    answer(False)
