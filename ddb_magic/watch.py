"""``%ddb_watch TABLE [--since N] [--rows R] [--stop]``: one output that keeps showing a table's
latest changes (CDC) and a count per operation, updated in place while other cells write.

- A launched or attached cluster: a background thread follows ``Client.changes`` (any node,
  resuming elsewhere if that node goes away) and updates the output at most every 0.2 s.
- A simulated cluster: nothing runs between cells (virtual time stands still), so the watch
  hooks the simulator's applies (``Simulator.on_apply``): as cells step the cluster, each
  change shows up with the nodes that have applied it so far (``n1 n2 ·``), straight from
  every node's own change log.

A second ``%ddb_watch`` of the same table replaces the first; ``--stop`` (without a table:
every watch) ends it. The watches are kept on the magic (``DdbMagic.watches``).
"""
from __future__ import annotations

import html
import threading
import time
from collections import Counter, deque

from IPython.display import display

from .parsing import UsageProblem, arg_parser, split_args

UPDATE_EVERY_S = 0.2      # a live watch redraws at most this often


def _short(v, n: int = 60) -> str:
    s = repr(v) if not isinstance(v, str) else v
    return s if len(s) <= n else s[:n - 1] + "\u2026"


def _row_text(old, new) -> str:
    if new is not None and old is not None:
        changed = {k: v for k, v in new.items() if old.get(k) != v}
        return ", ".join(f"{k}: {_short(old.get(k), 20)} \u2192 {_short(v, 20)}"
                         for k, v in changed.items()) or "(no column changed)"
    row = new if new is not None else old
    return ", ".join(f"{k}={_short(v, 20)}" for k, v in (row or {}).items())


class WatchView:
    """What the output shows: the last `rows` events, the counts, where they are applied."""

    def __init__(self, table: str, since: int, rows: int, nodes: list | None = None):
        self.table, self.since, self.rows = table, since, rows
        self.events: deque = deque(maxlen=rows)       # (index, op, key, old, new)
        self.counts: Counter = Counter()
        self.through = since
        self.nodes = nodes                            # the simulated cluster's node ids
        self.applied_on: dict = {}                    # index -> node ids (simulated)
        self.error: str | None = None

    def add(self, index, op, key, old, new) -> None:
        self.events.append((index, op, key, old, new))
        self.counts[op] += 1
        self.through = max(self.through, index)

    def title(self) -> str:
        total = sum(self.counts.values())
        ops = ", ".join(f"{op} {self.counts[op]}" for op in ("insert", "update", "delete")
                        if self.counts[op])
        return (f"{self.table}: {total} change{'s' * (total != 1)} after index {self.since}"
                + (f" ({ops})" if ops else "") + f", through index {self.through}")

    def _where(self, index) -> str:
        if self.nodes is None:
            return ""
        have = self.applied_on.get(index, set())
        return " ".join(f"n{n}" if n in have else "\u00b7" for n in self.nodes)

    def lines(self) -> list[tuple]:
        return [(i, op, _short(key, 30), _row_text(old, new), self._where(i))
                for i, op, key, old, new in self.events]

    def __repr__(self) -> str:
        out = [self.title()]
        for i, op, key, text, where in self.lines():
            out.append(f"  {i:>6}  {op:<6}  {key:<10}  {text}" + (f"   [{where}]" if where else ""))
        if self.error:
            out.append(f"  stopped: {self.error}")
        return "\n".join(out)

    def _repr_html_(self) -> str:
        head = "<th>index</th><th>op</th><th>key</th><th>change</th>" + \
            ("<th>applied on</th>" if self.nodes is not None else "")
        body = "".join(
            "<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in
                             ((i, op, key, text, where) if self.nodes is not None
                              else (i, op, key, text))) + "</tr>"
            for i, op, key, text, where in self.lines())
        err = f"<p><b>stopped:</b> {html.escape(self.error)}</p>" if self.error else ""
        return (f"<div class='ddb-watch'><b>{html.escape(self.title())}</b>"
                f"<table><tr>{head}</tr>{body}</table>{err}</div>")


class LiveWatch:
    """Follows a real cluster's change stream on a thread of its own."""

    def __init__(self, backend, table: str, since: int, rows: int):
        self.view = WatchView(table, since, rows)
        self.handle = display(self.view, display_id=True)
        self.client = backend.cluster.client(timeout=backend.client.timeout)
        self.stream = self.client.changes(since, tables=[table], wait=0.5)
        self._last = 0.0
        self.thread = threading.Thread(target=self._run, daemon=True, name=f"ddb-watch-{table}")
        self.thread.start()

    def _refresh(self, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self._last >= UPDATE_EVERY_S:
            self._last = now
            if self.handle is not None:
                self.handle.update(self.view)

    def _run(self) -> None:
        try:
            for ev in self.stream:
                self.view.add(ev.index, ev.op, ev.key, ev.old, ev.new)
                self._refresh()
        except Exception as e:  # noqa: BLE001  shown in the output, not raised in a thread
            self.view.error = f"{type(e).__name__}: {e}"
        self._refresh(force=True)

    def wait_for(self, n: int, timeout: float = 10.0) -> bool:
        """(tests) True once `n` events were seen."""
        end = time.monotonic() + timeout
        while sum(self.view.counts.values()) < n and time.monotonic() < end:
            self.thread.join(0.05)
        self._refresh(force=True)
        return sum(self.view.counts.values()) >= n

    def stop(self) -> None:
        self.stream.close()
        self.thread.join(2.0)
        self.client.close()
        self._refresh(force=True)


class SimWatch:
    """Follows a simulated cluster as it applies entries, node by node."""

    def __init__(self, backend, table: str, since: int, rows: int):
        self.sim = backend.sim
        self.table = table
        self.view = WatchView(table, since, rows, nodes=sorted(self.sim.nodes))
        self.handle = display(self.view, display_id=True)
        self._shown = None
        self.refresh()
        self._hook = self.sim.on_apply(lambda _sim, _node, _entry, _res: self.refresh())

    def refresh(self) -> None:
        """Rebuild the view from every node's own change log; redraw if anything moved."""
        best: list = []
        applied_on: dict = {}
        for nid, node in sorted(self.sim.nodes.items()):
            log = getattr(node.sm, "changes", None)
            if log is None or not log.enabled:
                continue
            try:
                events, _ = log.read(self.view.since, node.sm.applied_index,
                                     tables=[self.table], max_entries=10_000)
            except Exception:  # noqa: BLE001  a node behind retention, or restoring
                continue
            for ev in events:
                applied_on.setdefault(ev[0], set()).add(nid)
            if len(events) > len(best):
                best = events
        state = (len(best), tuple(sorted((i, tuple(sorted(n))) for i, n in applied_on.items())))
        if state == self._shown:
            return
        self._shown = state
        v = self.view
        v.events.clear()
        v.counts.clear()
        v.through = v.since
        for index, _table, op, key, old, new in best:
            v.add(index, op, key, old, new)
        v.applied_on = applied_on
        if self.handle is not None:
            self.handle.update(v)

    def stop(self) -> None:
        if self._hook in self.sim.apply_callbacks:
            self.sim.apply_callbacks.remove(self._hook)


def _parse(line: str):
    return arg_parser("%ddb_watch", (["table"], dict(nargs="?", default=None)),
                   (["--since"], dict(type=int, default=None)),
                   (["--rows"], dict(type=int, default=10)),
                   (["--stop"], dict(action="store_true")),
                   (["--name"], dict(default=None))).parse_args(split_args(line))


def magic(m, line: str):
    """The body of ``%ddb_watch`` (DdbMagic registers it)."""
    a = _parse(line)
    watches = m.__dict__.setdefault("watches", {})
    if a.stop:
        keys = [k for k in watches if a.table is None or k[1] == a.table]
        for k in keys:
            watches.pop(k).stop()
        return None
    if not a.table:
        raise UsageProblem("%ddb_watch TABLE [--since N] [--rows R]: name the table to watch")
    b = m._backend(a.name)
    key = (b.name, a.table)
    if key in watches:
        watches.pop(key).stop()
    if b.kind == "sim":
        since = 0 if a.since is None else a.since
        watches[key] = SimWatch(b, a.table, since, a.rows)
    else:
        since = a.since
        if since is None:       # from now on: what the cluster has applied so far is history
            since = b.client.admin(None, {"op": "applied"})["index"]
        watches[key] = LiveWatch(b, a.table, since, a.rows)
    return None
