"""Output for the `ddb` command: bordered tables, JSON and CSV, and one-line error messages.

No dependencies beyond the standard library: the shell and `ddb query` both print through
these functions, so what a person sees and what a script parses come from one place.
"""
from __future__ import annotations

import base64
import csv
import io
import json
import math
import sys
import unicodedata

from ddb_node.errors import (BadRequest, ConnectionFailed, DdbError, NoLeader, NotLeader, Stale,
                             StatementError, Timeout, Unavailable)

MAX_CELL = 60          # characters shown per cell in a table (the rest becomes "…")

UNICODE = {"tl": "┌", "tm": "┬", "tr": "┐", "ml": "├", "mm": "┼", "mr": "┤",
           "bl": "└", "bm": "┴", "br": "┘", "h": "─", "v": "│", "ell": "…"}
ASCII = {"tl": "+", "tm": "+", "tr": "+", "ml": "+", "mm": "+", "mr": "+",
         "bl": "+", "bm": "+", "br": "+", "h": "-", "v": "|", "ell": "~"}


def box_style(stream=None, ascii_only: bool = False) -> dict:
    """Unicode box drawing when the stream can encode it, ASCII otherwise."""
    if ascii_only:
        return ASCII
    enc = getattr(stream or sys.stdout, "encoding", None) or "ascii"
    try:
        "┌─│…".encode(enc)
    except (UnicodeEncodeError, LookupError):
        return ASCII
    return UNICODE


# ------------------------------------------------------------------------------- cells
def cell_text(v, style: dict = UNICODE, limit: int | None = MAX_CELL, null: str = "NULL") -> str:
    if v is None:
        s = null
    elif isinstance(v, bool):
        s = "1" if v else "0"
    elif isinstance(v, float):
        s = repr(v) if math.isfinite(v) else ("Inf" if v > 0 else "-Inf" if v < 0 else "NaN")
    elif isinstance(v, (bytes, bytearray, memoryview)):
        s = "x'" + bytes(v).hex() + "'"
    else:
        s = str(v)
    if "\n" in s or "\r" in s or "\t" in s:
        s = s.replace("\r\n", "\n").replace("\n", "\\n").replace("\r", "\\r").replace("\t", "\\t")
    if limit and width(s) > limit:
        s = _cut(s, limit - 1) + style["ell"]
    return s


def width(s: str) -> int:
    """Terminal columns a string takes (wide East Asian characters count two)."""
    if s.isascii():
        return len(s)
    w = 0
    for ch in s:
        if unicodedata.combining(ch):
            continue
        w += 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1
    return w


def _cut(s: str, cols: int) -> str:
    out, w = [], 0
    for ch in s:
        cw = width(ch)
        if w + cw > cols:
            break
        out.append(ch)
        w += cw
    return "".join(out)


def _pad(s: str, w: int, right: bool) -> str:
    fill = " " * (w - width(s))
    return fill + s if right else s + fill


def _numeric(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# ------------------------------------------------------------------------------- tables
def format_table(columns: list, rows: list, *, style: dict = UNICODE, footer: bool = True,
                 limit: int | None = MAX_CELL, null: str = "NULL") -> str:
    """A bordered table: numbers right-aligned, text left-aligned, None shown as `null`."""
    columns = [str(c) for c in columns]
    cells = [[cell_text(v, style, limit, null) for v in row] for row in rows]
    right = [bool(rows) and all(_numeric(r[i]) or r[i] is None for r in rows)
             and any(_numeric(r[i]) for r in rows) for i in range(len(columns))]
    widths = [width(c) for c in columns]
    for row in cells:
        for i, c in enumerate(row):
            widths[i] = max(widths[i], width(c))
    h, v = style["h"], style["v"]

    def rule(l, m, r):
        return l + m.join(h * (w + 2) for w in widths) + r

    def line(vals, align):
        return v + v.join(" " + _pad(s, widths[i], align[i]) + " " for i, s in enumerate(vals)) + v

    out = [rule(style["tl"], style["tm"], style["tr"]),
           line(columns, [False] * len(columns)),
           rule(style["ml"], style["mm"], style["mr"])]
    out += [line(r, right) for r in cells]
    out.append(rule(style["bl"], style["bm"], style["br"]))
    if footer:
        n = len(rows)
        out.append(f"({n} row{'' if n == 1 else 's'})")
    return "\n".join(out)


def result_rows(result) -> list[tuple]:
    return list(zip(*result.values)) if result.values and result.columns else []


def format_result(result, *, style: dict = UNICODE) -> str:
    """One statement's result as text: a table for a read, a summary line for a write."""
    if result.error:
        return f"error: {result.error}"
    if result.columns:
        text = format_table(result.columns, result_rows(result), style=style)
        if getattr(result, "truncated", False):
            text += " (truncated by the server's row limit)"
        return text
    n = result.rows_affected or 0
    if not n:
        return "ok"
    s = f"{n} row{'' if n == 1 else 's'} affected"
    if result.last_insert_id and n:
        s += f", last insert id {result.last_insert_id}"
    return s


# ------------------------------------------------------------------------------- json / csv
def json_value(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return {"$base64": base64.b64encode(bytes(v)).decode()}
    if isinstance(v, float) and not math.isfinite(v):
        return None if math.isnan(v) else ("Infinity" if v > 0 else "-Infinity")
    return v


def result_json(result) -> dict:
    d = {"columns": list(result.columns), "decltypes": list(result.decltypes),
         "rows": [[json_value(v) for v in row] for row in result_rows(result)]}
    if not result.columns:
        d["rows_affected"] = result.rows_affected or 0
        d["last_insert_id"] = result.last_insert_id
    if result.error:
        d["error"] = result.error
    if getattr(result, "truncated", False):
        d["truncated"] = True
    return d


def response_json(resp) -> dict:
    return {"results": [result_json(r) for r in resp.results], "node": resp.node,
            "term": resp.term, "index": resp.index, "level": resp.level, "time": resp.time}


def dumps(obj, pretty: bool = False) -> str:
    return json.dumps(obj, indent=2 if pretty else None, ensure_ascii=False, default=str,
                      allow_nan=False)


def csv_value(v):
    if v is None:
        return ""
    if isinstance(v, (bytes, bytearray, memoryview)):
        return base64.b64encode(bytes(v)).decode()
    return v


def format_csv(results) -> str:
    """Every result set with a header row; result sets separated by a blank line."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    for i, r in enumerate(results):
        if i:
            buf.write("\n")
        if r.columns:
            w.writerow(r.columns)
            for row in result_rows(r):
                w.writerow([csv_value(v) for v in row])
        else:
            w.writerow(["rows_affected", "last_insert_id"])
            w.writerow([r.rows_affected or 0, csv_value(r.last_insert_id)])
    return buf.getvalue()


# ------------------------------------------------------------------------------- errors
_KINDS = [(StatementError, "SQL error"), (BadRequest, "bad request"),
          (ConnectionFailed, "cannot connect"), (Timeout, "timeout"), (NoLeader, "no leader"),
          (NotLeader, "not the leader"), (Unavailable, "unavailable"), (Stale, "stale")]


def error_line(e: BaseException) -> str:
    """One line that says what went wrong, for stderr."""
    kind = next((k for cls, k in _KINDS if isinstance(e, cls)), None)
    msg = " ".join(str(e).split()) or type(e).__name__
    if isinstance(e, (StatementError, BadRequest)) and msg.startswith("statement "):
        head, _, rest = msg.partition(": ")
        try:
            msg = f"{rest} (statement {int(head.split()[1]) + 1})"
        except (IndexError, ValueError):
            pass
    if kind is None:
        kind = "error" if isinstance(e, DdbError) else type(e).__name__
    return f"{kind}: {msg}"
