"""One replica's log as data: its recent entries (index, term, what), its compacted prefix,
its commit and applied indexes. What `%ddb log` draws, for a node process (the `log`
operation) and for a simulated node (read directly, so no simulated time passes)."""
from __future__ import annotations

from ddb_node.raft.types import Compacted, EntryType, Role, Unavailable

from .entries import is_address_update, is_map_step

MAX_ENTRIES = 200          # a `log` answer is bounded whatever it is asked


def summarize(entry) -> str:
    """A few words about an entry: the first statement of a SQL entry, or its kind."""
    data = entry.data
    if entry.type == EntryType.CONF_CHANGE:
        return "conf change"
    if not data:
        return "(no-op)"
    if is_map_step(data):
        return "map step"
    if is_address_update(data):
        return "address update"
    try:
        from ddb_node.sql.codec import decode_entry
        req, _ts, _seed, _session = decode_entry(data)
    except Exception:       # noqa: BLE001  not a SQL entry: say so, do not fail the view
        return f"{len(data)} bytes"
    if not req.statements:
        return "(empty request)"
    s = " ".join(req.statements[0].sql.split())
    more = len(req.statements) - 1
    text = s if len(s) <= 40 else s[:39] + "\u2026"
    return text + (f" (+{more})" if more else "")


def log_view(replica, last: int = 20) -> dict:
    """The last `last` entries of the replica's log (at most MAX_ENTRIES), and its marks."""
    last = max(1, min(int(last), MAX_ENTRIES))
    raft = replica.raft
    rl = raft.log
    first, end = rl.first_index(), rl.last_index()
    lo = max(first, end - last + 1)
    entries = []
    if end >= lo:
        try:
            got = rl.entries(lo, end + 1)
        except (Compacted, Unavailable):
            got = []
        for e in got:
            entries.append({"index": e.index, "term": e.term, "what": summarize(e)})
    snap_index = first - 1
    try:
        snap_term = rl.term(snap_index) if snap_index > 0 else 0
    except (Compacted, Unavailable):
        snap_term = 0
    return {"node": replica.id, "role": Role(raft.role).name.lower(), "term": raft.term,
            "commit": raft.commit_index, "applied": replica.app.applied_index,
            "first_index": first, "last_index": end,
            "snapshot": {"index": snap_index, "term": snap_term}, "entries": entries}
