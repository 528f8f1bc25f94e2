"""The cluster picture: an SVG of the nodes and links plus a short event timeline.

`ClusterPicture(view)` has `_repr_html_` (the drawing) and a plain-text `__repr__` (a table,
for terminals and for nbval's text comparison).
"""
from __future__ import annotations

import math
from html import escape

from .view import ClusterView, LinkView, NodeView

W, H = 560, 330
BOX_W, BOX_H = 132, 66
ROLE_COLORS = {"leader": "#f5b700", "candidate": "#e07b39", "pre-candidate": "#e0a060",
               "follower": "#4c78a8"}
MSG_COLORS = {"APP": "#2a9d8f", "APP_RESP": "#8ab17d", "VOTE": "#e76f51", "VOTE_RESP": "#f4a261",
              "PRE_VOTE": "#e9c46a", "PRE_VOTE_RESP": "#e9c46a", "HEARTBEAT": "#9aa5b1",
              "HEARTBEAT_RESP": "#c0c8d0"}


def _positions(n: int) -> list[tuple[float, float]]:
    cx, cy = W / 2, H / 2 - 6
    rx, ry = W / 2 - BOX_W / 2 - 14, H / 2 - BOX_H / 2 - 20
    if n == 1:
        return [(cx, cy)]
    out = []
    for k in range(n):
        a = -math.pi / 2 + 2 * math.pi * k / n
        out.append((cx + rx * math.cos(a), cy + ry * math.sin(a)))
    return out


def _node_status_line(n: NodeView) -> str:
    if n.state != "up":
        return n.state
    return n.role or "?"


def _link_style(link: LinkView, a: NodeView, b: NodeView) -> tuple[str, str, str]:
    """-> (stroke color, dash array, width)"""
    if not (a.alive and b.alive):
        return "#d0d0d0", "2,4", "1.5"
    if link.state == "cut":
        return "#d62728", "6,5", "2"
    if link.state == "one-way":
        return "#d62728", "10,3,2,3", "2"
    if link.lossy:
        return "#ff7f0e", "2,3", "2.5"
    if link.delay_ms or link.jitter_ms:
        return "#1f77b4", "9,3", "2.5"
    return "#8c8c8c", "", "2"


class ClusterPicture:
    def __init__(self, view: ClusterView, title: str | None = None):
        self.view = view
        self.title = title

    # ---------------------------------------------------------------- text
    def __repr__(self) -> str:
        v = self.view
        lines = [f"ddb cluster {v.name!r} ({v.kind}, {len(v.nodes)} nodes)"
                 + (f" {v.clock}" if v.clock else "")]
        if self.title:
            lines.insert(0, self.title)
        for n in v.nodes:
            mark = " *" if n.id == v.leader else ""
            if n.alive:
                lines.append(f"  n{n.id:<3}{(n.role or '?'):<14}term {n.term!s:<4}commit {n.commit!s:<5}"
                             f"applied {n.applied!s:<5}log {n.last_index!s}{mark}")
            else:
                lines.append(f"  n{n.id:<3}{n.state}" + (f" ({n.note})" if n.note else ""))
        bad = [lk for lk in v.links if lk.label]
        if bad:
            lines.append("  links: " + "; ".join(f"{lk.a}-{lk.b} {lk.label}" for lk in bad))
        if v.events:
            lines.append("  timeline: " + " | ".join(f"{_fmt_t(t, v.kind)} {txt}"
                                                   for t, txt in v.events[-5:]))
        return "\n".join(lines)

    # ---------------------------------------------------------------- html
    def _repr_html_(self) -> str:
        return self.html()

    def svg(self) -> str:
        v = self.view
        pos = dict(zip([n.id for n in v.nodes], _positions(len(v.nodes))))
        nodes = {n.id: n for n in v.nodes}
        out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="ddb-cluster-svg" width="{W}" '
               f'height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">',
               '<rect x="0" y="0" width="100%" height="100%" fill="#fbfbfb" rx="8"/>']
        # links first, so boxes sit on top of them
        for lk in v.links:
            if lk.a not in pos or lk.b not in pos:
                continue
            (x1, y1), (x2, y2) = pos[lk.a], pos[lk.b]
            color, dash, width = _link_style(lk, nodes[lk.a], nodes[lk.b])
            dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
            out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" '
                       f'stroke="{color}" stroke-width="{width}"{dash_attr}>'
                       f'<title>link {lk.a}-{lk.b}: {escape(lk.label or "ok")}</title></line>')
            for src, dst, label, frac in lk.inflight:
                (sx, sy), (dx, dy) = pos[src], pos[dst]
                f = 0.2 + 0.6 * max(0.0, min(1.0, frac))
                mx, my = sx + (dx - sx) * f, sy + (dy - sy) * f
                kind = label.split()[0] if label else ""
                c = MSG_COLORS.get(kind, "#555")
                out.append(f'<circle cx="{mx:.1f}" cy="{my:.1f}" r="6" fill="{c}" stroke="#333" '
                           f'stroke-width="0.8"><title>{escape(label)}</title></circle>')
            if lk.label and nodes[lk.a].alive and nodes[lk.b].alive:
                mx, my = (x1 + x2) / 2, (y1 + y2) / 2
                text = escape(lk.label)
                tw = 6.2 * len(lk.label) + 8
                out.append(f'<rect x="{mx - tw / 2:.1f}" y="{my - 9:.1f}" width="{tw:.1f}" height="16" '
                           f'rx="4" fill="white" stroke="{color}" stroke-width="1"/>')
                out.append(f'<text x="{mx:.1f}" y="{my + 3:.1f}" text-anchor="middle" fill="{color}" '
                           f'font-size="11">{text}</text>')
        lid = v.leader
        for n in v.nodes:
            x, y = pos[n.id]
            bx, by = x - BOX_W / 2, y - BOX_H / 2
            if n.alive:
                fill, stroke, sw = "#ffffff", ROLE_COLORS.get(n.role or "", "#4c78a8"), "2"
                if n.id == lid:
                    fill, sw = "#fff6d5", "4"
                txt = "#222"
            else:
                fill, stroke, sw, txt = "#e6e6e6", "#a0a0a0", "1.5", "#8a8a8a"
            role = _node_status_line(n)
            star = " \u2605" if n.id == lid else ""
            out.append(f'<g class="ddb-node ddb-node-{escape(role)}" data-node="{n.id}">')
            out.append(f'<rect x="{bx:.1f}" y="{by:.1f}" width="{BOX_W}" height="{BOX_H}" rx="9" '
                       f'fill="{fill}" stroke="{stroke}" stroke-width="{sw}"/>')
            out.append(f'<text x="{x:.1f}" y="{by + 17:.1f}" text-anchor="middle" font-weight="bold" '
                       f'fill="{txt}">n{n.id} \u00b7 {escape(role)}{star}</text>')
            if n.term is not None and n.state in ("up", "paused"):
                l2 = f"term {n.term}" + (" \u00b7 learner" if n.learner else "")
                l3 = f"commit {n.commit} \u00b7 applied {n.applied}"
                l4 = f"log {n.last_index}"
            else:
                l2, l3, l4 = (n.note or ""), "", ""
            for k, line in enumerate((l2, l3, l4)):
                if line:
                    out.append(f'<text x="{x:.1f}" y="{by + 33 + 14 * k:.1f}" text-anchor="middle" '
                               f'fill="{txt}" font-size="11">{escape(line)}</text>')
            out.append('</g>')
        caption = f"{v.name} \u00b7 {v.kind}" + (f" \u00b7 {v.clock}" if v.clock else "")
        out.append(f'<text x="10" y="{H - 8}" fill="#777" font-size="11">{escape(caption)}</text>')
        if v.faults:
            out.append(f'<text x="{W - 10}" y="{H - 8}" text-anchor="end" fill="#b03030" '
                       f'font-size="11">{escape(v.faults)}</text>')
        out.append("</svg>")
        return "".join(out)

    def html(self) -> str:
        v = self.view
        title = f'<div style="font-weight:bold;margin:2px 0">{escape(self.title)}</div>' if self.title else ""
        items = "".join(f"<li><code>{escape(_fmt_t(t, v.kind))}</code> {escape(txt)}</li>"
                        for t, txt in v.events[-8:])
        timeline = (f'<div class="ddb-timeline" style="font-size:12px;color:#444">'
                    f'<b>timeline</b><ul style="margin:2px 0 0 0;padding-left:18px">{items}</ul></div>'
                    if items else "")
        legend = ('<div style="font-size:11px;color:#666">\u2605 leader \u00b7 grey: down or paused \u00b7 '
                  '<span style="color:#d62728">red dashes: cut</span> \u00b7 '
                  '<span style="color:#ff7f0e">orange dots: lossy</span> \u00b7 '
                  '<span style="color:#1f77b4">blue dashes: delayed</span></div>')
        return (f'<div class="ddb-picture" data-cluster="{escape(v.name)}">{title}{self.svg()}'
                f'{legend}{timeline}</div>')


def _fmt_t(t: float, kind: str) -> str:
    if kind == "sim":
        return f"t={t:.1f}ms"
    return f"+{t:.1f}s"
