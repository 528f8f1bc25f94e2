"""`%ddb_sequence`: a message sequence (Lamport) diagram of a cluster's recent events.

One lifeline per node, time flowing down; an arrow per peer message from its send to its
delivery (kind, term, index), a dropped one ends in a cross halfway, a lost one (the
receiver was down or cut off when it arrived) in a cross at the receiver, a delayed one is
dashed; role changes and commits are marked on the lifelines.

Where the events come from:
- a simulated cluster: `SimRecorder`, fed by the simulator's message hook (every message
  sent, with its envelope: dropped or not, when it is due) and by `SimBackend._fire` (which
  delivery was made or lost, which role and commit changed). Exact, event for event.
- a live cluster: each node's `trace` operation (`ddb_node/server/trace.py`), a bounded ring
  of its recent sends, receipts, drops, role changes and commits, stamped with wall-clock
  time. `from_traces` pairs each receipt with the oldest unmatched send of the same message
  on that link; a send never received, older than the last receipt on its link, was lost.

Rows are ranks, not times: every distinct instant gets a row, so a burst of messages a
tenth of a millisecond apart is as readable as a slow election.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from html import escape

from .parsing import arg_parser

DELIVERED, DROPPED, LOST, IN_FLIGHT = "delivered", "dropped", "lost", "in flight"

_COLOURS = {"APP": "#1f6fd1", "APP_RESP": "#6fa3e6", "HEARTBEAT": "#9a9a9a",
            "HEARTBEAT_RESP": "#c4c4c4", "VOTE": "#8e44ad", "VOTE_RESP": "#b78bd0",
            "PRE_VOTE": "#b9770e", "PRE_VOTE_RESP": "#dcae65", "SNAP": "#d35400",
            "SNAP_RESP": "#e59866", "CLIENT_REQUEST": "#1e8449", "CLIENT_RESPONSE": "#52be80"}
_ROLE_COLOURS = {"leader": "#1e8449", "candidate": "#b9770e", "pre_candidate": "#dcae65",
                 "pre-candidate": "#dcae65", "follower": "#7f8c8d"}


def label(f: dict) -> str:
    """'APP t2 i5 +1 c4': kind, term, index, entries carried, commit."""
    s = f"{f.get('type')} t{f.get('term', 0)}"
    if "index" in f:
        s += f" i{f['index']}"
    if f.get("n"):
        s += f" +{f['n']}"
    if f.get("commit"):
        s += f" c{f['commit']}"
    if f.get("reject"):
        s += " reject"
    return s


def sim_message_fields(m) -> dict:
    """The fields of a simulated message, as a node's trace records them."""
    from ddb_node.server.trace import message_fields
    if isinstance(getattr(m, "type", None), str):          # a forwarded request or answer
        return {"type": m.type, "from": m.frm, "to": m.to, "term": 0}
    return message_fields(m)


@dataclass
class Arrow:
    src: int
    dst: int
    sent: float
    label: str
    kind: str
    fate: str = IN_FLIGHT
    arrived: float | None = None
    delayed: bool = False


@dataclass
class Mark:
    node: int
    t: float
    text: str
    kind: str            # "role" | "commit"
    role: str = ""


@dataclass
class Sequence:
    nodes: list[int]
    arrows: list[Arrow] = field(default_factory=list)
    marks: list[Mark] = field(default_factory=list)
    unit: str = "ms"                 # "ms" (virtual time) or "s" (wall clock)
    title: str = ""
    origin: float = 0.0              # times are shown relative to it (live clusters)

    def window(self, last: int | None = None, nodes: list[int] | None = None) -> "Sequence":
        """The last `last` messages between `nodes` (all by default), and the marks of
        those nodes from the first of those messages on."""
        keep = set(nodes) if nodes else set(self.nodes)
        arrows = [a for a in self.arrows if a.src in keep and a.dst in keep]
        if last is not None and last > 0:
            arrows = arrows[-last:]
        start = arrows[0].sent if arrows else (self.marks[0].t if self.marks else 0.0)
        marks = [m for m in self.marks if m.node in keep and m.t >= start]
        return Sequence([n for n in self.nodes if n in keep], arrows, marks, self.unit,
                        self.title, self.origin)

    def counts(self) -> dict:
        out: dict = {}
        for a in self.arrows:
            out[a.fate] = out.get(a.fate, 0) + 1
        return out

    # ------------------------------------------------------------------ text (nbval)
    def _t(self, t: float) -> str:
        if self.unit == "ms":
            return f"{t:.2f}ms"
        return f"{(t - self.origin) * 1000:.1f}ms"

    def __repr__(self) -> str:
        c = self.counts()
        head = (f"{self.title + ': ' if self.title else ''}{len(self.arrows)} messages between "
                f"{', '.join(f'n{n}' for n in self.nodes)}"
                + (" (" + ", ".join(f"{v} {k}" for k, v in sorted(c.items())) + ")" if c else ""))
        events = [(a.sent, 0, f"{self._t(a.sent)}  n{a.src} -> n{a.dst}  {a.label}"
                   + ("" if a.fate == DELIVERED else f"  [{a.fate}]")
                   + ("  [delayed]" if a.delayed else "")) for a in self.arrows]
        events += [(m.t, 1, f"{self._t(m.t)}  n{m.node} {m.text}") for m in self.marks]
        events.sort(key=lambda e: (e[0], e[1]))
        return "\n".join([head] + [e[2] for e in events])

    # ------------------------------------------------------------------ SVG
    def svg(self) -> str:
        col_w, left, top, row_h = 150, 60, 40, 18
        xs = {n: left + k * col_w for k, n in enumerate(self.nodes)}
        times = sorted({a.sent for a in self.arrows} |
                       {a.arrived for a in self.arrows if a.arrived is not None} |
                       {m.t for m in self.marks})
        rank = {t: i + 1 for i, t in enumerate(times)}
        rows = len(times) + 2
        height = top + rows * row_h + 20
        width = left + max(1, len(self.nodes) - 1) * col_w + 140

        def y(t):
            return top + rank[t] * row_h

        out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="ddb-sequence" width="{width}" '
               f'height="{height}" viewBox="0 0 {width} {height}" font-family="monospace" '
               f'font-size="10" style="background:#fff">',
               '<style>.ddb-sequence text{paint-order:stroke;stroke:#fff;stroke-width:3px;'
               'stroke-linejoin:round}</style>',
               '<defs><marker id="ddb-seq-arrow" viewBox="0 0 10 10" refX="9" refY="5" '
               'markerWidth="6" markerHeight="6" orient="auto-start-reverse">'
               '<path d="M 0 0 L 10 5 L 0 10 z" fill="context-stroke"/></marker></defs>']
        if self.title:
            out.append(f'<text x="4" y="12" font-size="11">{escape(self.title)}</text>')
        for n, x in xs.items():
            out.append(f'<text x="{x}" y="{top - 12}" text-anchor="middle" font-size="12" '
                       f'font-weight="bold">n{n}</text>')
            out.append(f'<line class="lifeline" data-node="{n}" x1="{x}" y1="{top - 6}" '
                       f'x2="{x}" y2="{height - 10}" stroke="#bbb" stroke-width="2"/>')
        for a in self.arrows:
            colour = _COLOURS.get(a.kind, "#555")
            x1, y1, x2 = xs[a.src], y(a.sent), xs[a.dst]
            if a.fate == DELIVERED or a.fate == LOST:
                y2 = y(a.arrived)
            elif a.fate == DROPPED:
                x2, y2 = (x1 + x2) / 2, y1 + row_h
            else:
                y2 = top + (rows - 1) * row_h
            dash = ' stroke-dasharray="5 3"' if a.delayed or a.fate == IN_FLIGHT else ""
            g = (f'<g class="msg {a.fate.replace(" ", "-")}" data-type="{escape(a.kind)}" '
                 f'data-src="{a.src}" data-dst="{a.dst}"><title>{escape(a.label)} '
                 f'n{a.src}\u2192n{a.dst} {a.fate}{" (delayed)" if a.delayed else ""}</title>'
                 f'<line x1="{x1}" y1="{y1}" x2="{x2:.1f}" y2="{y2}" stroke="{colour}" '
                 f'stroke-width="1.3"{dash}'
                 + ('' if a.fate in (DROPPED, LOST) else ' marker-end="url(#ddb-seq-arrow)"') + '/>')
            if a.fate in (DROPPED, LOST):
                g += (f'<path class="cross" d="M {x2 - 4:.1f} {y2 - 4} L {x2 + 4:.1f} {y2 + 4} '
                      f'M {x2 - 4:.1f} {y2 + 4} L {x2 + 4:.1f} {y2 - 4}" stroke="#c0392b" '
                      f'stroke-width="2"/>')
            mx, my = (x1 + x2) / 2, (y1 + y2) / 2 - 2
            g += (f'<text x="{mx:.1f}" y="{my:.1f}" text-anchor="middle" fill="{colour}" '
                  f'font-size="9">{escape(a.label)}</text></g>')
            out.append(g)
        for m in self.marks:
            x, yy = xs[m.node], y(m.t)
            if m.kind == "role":
                colour = _ROLE_COLOURS.get(m.role, "#555")
                out.append(f'<g class="mark role"><rect x="{x - 5}" y="{yy - 5}" width="10" '
                           f'height="10" fill="{colour}"/><text x="{x + 8}" y="{yy + 3}" '
                           f'fill="{colour}" font-weight="bold">{escape(m.text)}</text></g>')
            else:
                out.append(f'<g class="mark commit"><circle cx="{x}" cy="{yy}" r="4" '
                           f'fill="#fff" stroke="#1e8449" stroke-width="2"/><text x="{x + 8}" '
                           f'y="{yy + 3}" fill="#1e8449">{escape(m.text)}</text></g>')
        out.append("</svg>")
        return "".join(out)

    def _repr_html_(self) -> str:
        c = self.counts()
        caption = ", ".join(f"{v} {k}" for k, v in sorted(c.items())) or "no messages"
        return (f'<div class="ddb-sequence-view">{self.svg()}<div style="font-size:11px;'
                f'color:#666">{escape(caption)}</div></div>')


class SimRecorder:
    """The recent messages, role changes and commits of a simulated cluster."""

    def __init__(self, sim, maxlen: int = 3000):
        self.sim = sim
        self.arrows: deque = deque(maxlen=maxlen)
        self.marks: deque = deque(maxlen=maxlen)
        self.envelopes: dict[int, tuple] = {}     # id(envelope) -> (envelope, arrow)
        sim.add_message_hook(self._sent)

    def _sent(self, sim, env) -> None:
        if env.src not in sim.nodes or env.dst not in sim.nodes:
            return
        f = sim_message_fields(env.msg)
        a = Arrow(env.src, env.dst, sim.now, label(f), str(f["type"]))
        a.delayed = env.deliver_at - env.sent_at > sim.net.latency_ms[1] + 1e-9
        self.arrows.append(a)
        if len(self.envelopes) > 2 * (self.arrows.maxlen or 0):
            self.envelopes = {k: v for k, v in self.envelopes.items() if not v[0].dropped}
        self.envelopes[id(env)] = (env, a)

    def delivered(self, env, ok: bool) -> None:
        """A DELIVER event fired: `ok` if the receiver took the message."""
        got = self.envelopes.pop(id(env), None)
        if got is None or got[0] is not env:
            return
        a = got[1]
        a.arrived = self.sim.now
        a.fate = DELIVERED if ok else LOST

    def mark(self, node: int, text: str, kind: str, role: str = "") -> None:
        self.marks.append(Mark(node, self.sim.now, text, kind, role))

    def sequence(self) -> Sequence:
        for env, a in self.envelopes.values():
            if env.dropped and a.fate == IN_FLIGHT:
                a.fate = DROPPED
        nodes = sorted(i for i, n in self.sim.nodes.items() if not n.retired)
        return Sequence(nodes, list(self.arrows), list(self.marks), "ms")


def from_traces(traces: dict[int, dict]) -> Sequence:
    """A live cluster's sequence from each node's `trace` answer ({node: answer})."""
    sends: dict[tuple, deque] = {}
    arrows: list[Arrow] = []
    marks: list[Mark] = []
    recvs = []
    for nid, ans in sorted(traces.items()):
        for r in ans.get("trace") or []:
            k = r.get("kind")
            if k in ("send", "drop") and r.get("from") == nid:
                a = Arrow(nid, r["to"], r["t"], label(r), str(r.get("type")),
                          DROPPED if k == "drop" else IN_FLIGHT)
                arrows.append(a)
                if k == "send":
                    sends.setdefault((nid, r["to"], a.label), deque()).append(a)
            elif k in ("recv", "drop"):
                recvs.append((r["t"], r, k))
            elif k == "role":
                role = str(r.get("role") or "")
                marks.append(Mark(nid, r["t"], f"{role.replace('_', '-')} (term {r.get('term')})",
                                  "role", role))
            elif k == "commit":
                marks.append(Mark(nid, r["t"], f"commit {r.get('index')}", "commit"))
    last_recv: dict[tuple, float] = {}
    for t, r, k in sorted(recvs, key=lambda x: x[0]):
        q = sends.get((r["from"], r["to"], label(r)))
        if q and q[0].sent <= t + 0.05:          # 50ms of slack between the nodes' clocks
            a = q.popleft()
            a.arrived = max(t, a.sent)
            a.fate = DELIVERED if k == "recv" else LOST
        last_recv[(r["from"], r["to"])] = max(last_recv.get((r["from"], r["to"]), 0.0), t)
    for a in arrows:
        if a.fate == IN_FLIGHT and a.sent < last_recv.get((a.src, a.dst), 0.0) - 0.5:
            a.fate = DROPPED            # never arrived though later ones did
    arrows.sort(key=lambda a: a.sent)
    marks.sort(key=lambda m: m.t)
    origin = min([a.sent for a in arrows] + [m.t for m in marks], default=0.0)
    return Sequence(sorted(traces), arrows, marks, "s", origin=origin)


SEQUENCE_USAGE = "%ddb_sequence [--last N] [--node A,B] [--no-heartbeats] [--name C]"


def command(magic, line: str) -> Sequence:
    """%ddb_sequence: the diagram of the current cluster's recent messages."""
    from .parsing import parse_node_list, split_args
    a = arg_parser("%ddb_sequence", (["--last"], dict(type=int, default=40)),
                (["--node"], dict(default=None)),
                (["--no-heartbeats"], dict(action="store_true")),
                (["--name"], dict(default=None))).parse_args(split_args(line))
    b = magic._backend(a.name)
    seq = b.sequence(last=max(200, 4 * a.last))
    if a.no_heartbeats:
        seq.arrows = [x for x in seq.arrows if not x.kind.startswith("HEARTBEAT")]
    nodes = parse_node_list(a.node) if a.node else None
    out = seq.window(a.last, nodes)
    out.title = (f"{b.name}: last {len(out.arrows)} messages"
                 + (" (virtual time)" if b.kind == "sim" else " (wall clock, from each node's trace)"))
    return out
