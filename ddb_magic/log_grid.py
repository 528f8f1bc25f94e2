"""`%ddb log [N]`: every node's log side by side, as RaftScope draws it.

A grid of index x node. A cell holds the entry's term and a few words about it; an entry at
or below the node's commit index is marked committed (bold border), at or below its applied
index applied (filled); the compacted prefix of a node's log is one snapshot block; an entry
whose term differs from the leader's entry at that index (or, with no leader holding it, from
the highest term any node has there) is a conflict, highlighted: it is what the leader will
overwrite. The data is each node's `log_view` (`ddb_node/replica/log_view.py`): the `log`
operation on a live node, the replica itself on a simulated one.
"""
from __future__ import annotations

from html import escape

from .parsing import arg_parser

_TERM_COLOURS = ["#d6eaf8", "#d5f5e3", "#fcf3cf", "#fadbd8", "#e8daef", "#d1f2eb", "#fdebd0",
                 "#eaecee"]


class LogGrid:
    def __init__(self, views: dict[int, dict | None], title: str = ""):
        self.views = dict(sorted(views.items()))     # node -> log_view answer, None if down
        self.title = title
        up = [v for v in self.views.values() if v]
        # an isolated old leader may still think it leads: the one of the highest term does
        leaders = [v for v in up if v.get("role") == "leader"]
        leader = max(leaders, key=lambda v: v["term"]) if leaders else None
        self.leader = leader["node"] if leader else None
        shown = [e["index"] for v in up for e in v["entries"]]
        snaps = [v["snapshot"]["index"] for v in up if v["snapshot"]["index"] > 0]
        self.lo = min(shown) if shown else (min(snaps) + 1 if snaps else 1)
        self.hi = max(shown) if shown else self.lo - 1
        self.terms = {(v["node"], e["index"]): e for v in up for e in v["entries"]}
        self.reference: dict[int, int] = {}
        for i in range(self.lo, self.hi + 1):
            if self.leader is not None and (self.leader, i) in self.terms:
                self.reference[i] = self.terms[(self.leader, i)]["term"]
            else:
                ts = [self.terms[(n, i)]["term"] for n in self.views if (n, i) in self.terms]
                if ts:
                    self.reference[i] = max(ts)

    def conflicts(self) -> list[tuple[int, int]]:
        """(node, index) of every entry that disagrees with the reference term there."""
        return sorted((n, i) for (n, i), e in self.terms.items()
                      if self.reference.get(i) is not None and e["term"] != self.reference[i])

    def _cell(self, n: int, i: int) -> tuple[str, str, dict]:
        """-> (kind, text, entry) for node n at index i; kind: entry | snapshot | empty | down."""
        v = self.views[n]
        if v is None:
            return "down", "", {}
        if i <= v["snapshot"]["index"]:
            return "snapshot", "", {}
        e = self.terms.get((n, i))
        if e is None:
            return "empty", "", {}
        return "entry", f"t{e['term']} {e['what']}", e

    def _header(self, n: int) -> str:
        v = self.views[n]
        if v is None:
            return f"n{n} down"
        return (f"n{n} {v['role'].replace('_', '-')} t{v['term']} commit {v['commit']} "
                f"applied {v['applied']}")

    # ------------------------------------------------------------------ text (nbval)
    def __repr__(self) -> str:
        bad = set(self.conflicts())
        lines = ([self.title] if self.title else []) + [self._header(n) for n in self.views]
        for n, v in self.views.items():
            if v and v["snapshot"]["index"] > 0:
                lines.append(f"n{n}: snapshot up to {v['snapshot']['index']} "
                             f"(term {v['snapshot']['term']})")
        w = 32
        lines.append(("index  " + "".join(f"n{n}".ljust(w) for n in self.views)).rstrip())
        for i in range(self.hi, self.lo - 1, -1):
            row = f"{i:>5}  "
            for n in self.views:
                kind, text, _ = self._cell(n, i)
                if kind == "entry":
                    v = self.views[n]
                    mark = "!" if (n, i) in bad else ("*" if i <= v["applied"] else
                                                      ("+" if i <= v["commit"] else " "))
                    cell = f"{mark}{text}"
                elif kind == "snapshot":
                    cell = " [snapshot]"
                else:
                    cell = "" if kind == "empty" else " -"
                row += (cell if len(cell) < w - 1 else cell[:w - 2] + "\u2026").ljust(w)
            lines.append(row.rstrip())
        lines.append("* applied  + committed  ! conflicts with the leader's log")
        return "\n".join(lines)

    # ------------------------------------------------------------------ HTML
    def _repr_html_(self) -> str:
        bad = set(self.conflicts())
        css = ("border-collapse:collapse;font-family:monospace;font-size:11px")
        h = ['<div class="ddb-log-grid">']
        if self.title:
            h.append(f'<div style="font-weight:bold;margin-bottom:4px">{escape(self.title)}</div>')
        h.append(f'<table style="{css}"><thead><tr><th style="padding:2px 6px">index</th>')
        for n in self.views:
            h.append(f'<th class="node" data-node="{n}" style="padding:2px 6px;text-align:left">'
                     f'{escape(self._header(n))}</th>')
        h.append("</tr></thead><tbody>")
        snap_done: set[int] = set()
        for i in range(self.hi, self.lo - 1, -1):
            h.append(f'<tr><td style="padding:2px 6px;text-align:right;color:#666">{i}</td>')
            for n in self.views:
                kind, text, e = self._cell(n, i)
                v = self.views[n]
                if kind == "snapshot":
                    if n in snap_done:
                        continue
                    snap_done.add(n)
                    span = i - self.lo + 1
                    h.append(f'<td class="snapshot" rowspan="{span}" style="background:'
                             f'repeating-linear-gradient(45deg,#eee,#eee 4px,#ddd 4px,#ddd 8px);'
                             f'border:1px solid #999;text-align:center;padding:2px 6px">'
                             f'snapshot \u2264 {v["snapshot"]["index"]} (t{v["snapshot"]["term"]})'
                             f'</td>')
                    continue
                if kind != "entry":
                    h.append(f'<td class="{kind}" style="padding:2px 6px;text-align:left;color:#aaa">'
                             f'{"down" if kind == "down" and i == self.hi else ""}</td>')
                    continue
                classes = ["entry"]
                colour = _TERM_COLOURS[(e["term"] - 1) % len(_TERM_COLOURS)]
                style = f"padding:2px 6px;text-align:left;background:{colour};"
                if i <= v["commit"]:
                    classes.append("committed")
                    style += "border:2px solid #1e8449;"
                else:
                    style += "border:1px dashed #999;"
                if i <= v["applied"]:
                    classes.append("applied")
                else:
                    style += "opacity:0.75;"
                if (n, i) in bad:
                    classes.append("conflict")
                    style += "background:#f5b7b1;border:2px solid #c0392b;"
                h.append(f'<td class="{" ".join(classes)}" data-node="{n}" data-index="{i}" '
                         f'data-term="{e["term"]}" style="{style}">{escape(text)}</td>')
            h.append("</tr>")
        h.append("</tbody></table>")
        h.append('<div style="font-size:10px;color:#666">green border: committed; faded: not '
                 'yet applied; red: conflicts with the leader\'s log; hatched: compacted into a '
                 'snapshot</div></div>')
        return "".join(h)


def command(magic, rest: str) -> LogGrid:
    """%ddb log [N]: the last N entries (default 12) of every node's log."""
    from .parsing import split_args
    a = arg_parser("%ddb log", (["n"], dict(type=int, nargs="?", default=12)),
                (["--name"], dict(default=None))).parse_args(split_args(rest))
    if a.n < 1:
        from .parsing import UsageProblem
        raise UsageProblem("usage: %ddb log [N] (N >= 1)")
    b = magic._backend(a.name)
    return LogGrid(b.logs(a.n), f"{b.name}: the last {a.n} entries of each node's log")
