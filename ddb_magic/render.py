"""How results and errors look in a notebook.

Every statement of a cell gets one output: a caption (node, level, raft index, rows, time)
and either a table (reads) or a one-line summary (writes). The caption is plain text in
both the HTML and the text form, so one sanitize pattern covers both.
"""
from __future__ import annotations

from html import escape

import pandas as pd

from ddb_node.sql.affinity import storage_class

from .view import ClusterView  # noqa: F401  (re-exported for type hints)

CSS = ("<style>.ddb-result table{border-collapse:collapse;font-size:12px}"
       ".ddb-result th,.ddb-result td{border:1px solid #ddd;padding:2px 6px;text-align:right}"
       ".ddb-result th{background:#f3f3f3}.ddb-result td.ddb-bad{background:#ffd7d7}"
       ".ddb-result td.ddb-null{color:#999}.ddb-caption{color:#666;font-size:11px;"
       "font-family:monospace}.ddb-warn{color:#a15c00;font-size:12px}"
       ".ddb-error{color:#b00020;font-family:monospace;white-space:pre-wrap}</style>")


def fmt_ms(seconds) -> str:
    if seconds is None:
        return "? ms"
    ms = seconds * 1000.0
    return f"{ms:.2f} ms" if ms < 10 else f"{ms:.0f} ms"


def caption(meta: dict, what: str) -> str:
    parts = []
    if meta.get("node") is not None:
        parts.append(f"node {meta['node']}")
    if meta.get("level"):
        parts.append(meta["level"])
    if meta.get("index") is not None:
        parts.append(f"index {meta['index']}")
    parts.append(what)
    if meta.get("time") is not None:
        parts.append(fmt_ms(meta["time"]))
    return " \u00b7 ".join(parts)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


class WriteResult:
    """The outcome of a statement that returns no rows."""

    def __init__(self, result, meta: dict):
        self.result = result
        self.rows_affected = result.rows_affected or 0
        self.last_insert_id = result.last_insert_id
        self.meta = meta

    def summary(self) -> str:
        s = _plural(self.rows_affected, "row") + " affected"
        if self.last_insert_id and self.rows_affected:
            s += f" \u00b7 last insert id {self.last_insert_id}"
        return s

    def __repr__(self) -> str:
        return caption(self.meta, self.summary())

    def _repr_html_(self) -> str:
        return f'<div class="ddb-result"><span class="ddb-caption">{escape(repr(self))}</span></div>'


class ReadResult:
    """A read: the full DataFrame (kept) and its display (limited to `limit` rows)."""

    def __init__(self, df: pd.DataFrame, result, meta: dict, limit: int | None):
        self.df = df
        self.result = result
        self.meta = meta
        self.limit = limit

    @property
    def shown(self) -> pd.DataFrame:
        if self.limit is not None and self.limit >= 0 and len(self.df) > self.limit:
            return self.df.head(self.limit)
        return self.df

    def caption(self) -> str:
        return caption(self.meta, _plural(len(self.df), "row"))

    def footer(self) -> str:
        if len(self.shown) < len(self.df):
            return (f"showing {len(self.shown)} of {len(self.df)} rows "
                    "(the full result is kept; %config DdbMagic.displaylimit = N to show more)")
        return ""

    def warning(self) -> str:
        v = self.df.attrs.get("violations") or []
        if not v:
            return ""
        parts = [f"{x['name']} ({x['decltype']}): {x['count']} {x['storage_class']}" for x in v]
        return ("\u26a0 values that break their column's affinity, kept as stored: "
                + "; ".join(parts) + " (details in df.attrs['violations'])")

    def __repr__(self) -> str:
        lines = [self.caption()]
        if len(self.df.columns) == 0:
            lines.append("(no columns)")
        else:
            lines.append(self.shown.to_string(index=False) if len(self.shown) else
                         "(no rows) columns: " + ", ".join(f"{c} {t}" for c, t in
                                                          zip(self.df.columns, self.df.dtypes)))
        for extra in (self.footer(), self.warning()):
            if extra:
                lines.append(extra)
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        df = self.shown
        bad = {}   # column position -> storage classes that break it
        for x in self.df.attrs.get("violations") or []:
            bad.setdefault(x["column"], set()).add(x["storage_class"])
        head = "".join(f"<th>{escape(str(c))}</th>" for c in df.columns)
        dtypes = "".join(f'<th style="font-weight:normal;color:#888">{escape(str(t))}</th>'
                         for t in df.dtypes)
        body = []
        cols = [self.result.values[i] if self.result is not None and i < len(self.result.values)
                else list(df.iloc[:, i]) for i in range(len(df.columns))]
        for r in range(len(df)):
            cells = []
            for i in range(len(df.columns)):
                v = cols[i][r]
                cls = ""
                if v is None:
                    cells.append('<td class="ddb-null">NULL</td>')
                    continue
                if i in bad and storage_class(v) in bad[i]:
                    cls = ' class="ddb-bad" title="breaks the column\'s affinity"'
                cells.append(f"<td{cls}>{escape(_show(v))}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
        table = (f'<table class="dataframe ddb-table"><thead><tr>{head}</tr><tr>{dtypes}</tr></thead>'
                 f'<tbody>{"".join(body)}</tbody></table>')
        extra = "".join(f'<div class="{c}">{escape(t)}</div>'
                        for c, t in (("ddb-caption", self.footer()), ("ddb-warn", self.warning())) if t)
        return (f'{CSS}<div class="ddb-result"><div class="ddb-caption">{escape(self.caption())}</div>'
                f'{table}{extra}</div>')


def _show(v) -> str:
    if isinstance(v, bytes):
        return "x'" + v[:32].hex() + ("\u2026" if len(v) > 32 else "") + "'"
    if isinstance(v, float):
        return repr(v)
    return str(v)


class ErrorView:
    """One short line in red: what failed and what to do about it."""

    def __init__(self, message: str, kind: str = "error"):
        self.message = message
        self.kind = kind

    def __repr__(self) -> str:
        return f"ddb {self.kind}: {self.message}"

    def _repr_html_(self) -> str:
        return f'{CSS}<div class="ddb-error">\u2717 {escape(repr(self))}</div>'


class Note:
    """A short informational line (launch, stop, level, …)."""

    def __init__(self, message: str):
        self.message = message

    def __repr__(self) -> str:
        return self.message

    def _repr_html_(self) -> str:
        return f'<div class="ddb-note" style="font-family:monospace;color:#333">{escape(self.message)}</div>'


class CellResult:
    """Everything a `%%ddb` cell produced, kept in `_ddb` in the user namespace."""

    def __init__(self, outputs: list, statements: list[str], response=None):
        self.outputs = outputs
        self.statements = statements
        self.response = response

    @property
    def frames(self) -> list[pd.DataFrame]:
        return [o.df for o in self.outputs if isinstance(o, ReadResult)]

    def value(self):
        """What `VAR <<` stores: the last statement's DataFrame (or write summary)."""
        shown = [o for o in self.outputs if not isinstance(o, Note)]   # notes are no value
        if not shown:
            return None
        last = shown[-1]
        return last.df if isinstance(last, ReadResult) else last

    def __repr__(self) -> str:
        return "\n\n".join(repr(o) for o in self.outputs)

    def _repr_html_(self) -> str:
        return "".join(o._repr_html_() for o in self.outputs)
