"""rqlite's wire format: URL flags, request bodies, result encoding, SQL dumps.

Pure functions, no I/O, so every shape can be tested without a cluster. The shapes follow
rqlite's Go structs (``command/encoding/json.go``, ``http/service.go``): every field is
omitted when empty, except ``rows`` in the associative form; maps are encoded with sorted
keys and ``<``, ``>``, ``&`` escaped, as Go's encoding/json does. JSON goes through orjson
(40x faster than the stdlib here); its float format is Go's and JavaScript's shortest form
(``0.00001``, ``1e-7``), and any input it refuses falls back to the stdlib, so errors and
edge cases read exactly as before.
"""
from __future__ import annotations

import base64
import datetime as _dt
import json
import math
import re
from urllib.parse import quote

import orjson

from ddb_node.protocol import LEVELS

__all__ = ["Flags", "FlagError", "BodyError", "parse_flags", "parse_duration", "go_duration",
           "parse_body",
           "exec_result", "query_result", "request_result", "encode_json", "rfc3339",
           "sql_dump"]

TRUE = {"", "true", "1", "yes", "on"}
FALSE = {"false", "0", "no", "off"}


class FlagError(ValueError):
    """A URL flag with a value that cannot be used (HTTP 400)."""


class BodyError(ValueError):
    """A request body that is not one of rqlite's forms (HTTP 400)."""


# ------------------------------------------------------------------ durations
_DUR = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_UNIT = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_duration(text: str) -> float:
    """Go's time.ParseDuration ("10s", "1m30s", "500ms") -> seconds; a bare number is seconds."""
    t = text.strip()
    if not t:
        raise FlagError("empty duration")
    try:
        v = float(t)
    except ValueError:
        pass
    else:
        if not math.isfinite(v) or v < 0:
            raise FlagError(f"bad duration {text!r}")
        return v
    pos, total = 0, 0.0
    while pos < len(t):
        m = _DUR.match(t, pos)
        if m is None:
            raise FlagError(f"bad duration {text!r} (use Go's form, e.g. 10s, 500ms, 1m30s)")
        total += float(m.group(1)) * _UNIT[m.group(2)]
        pos = m.end()
    return total


def go_duration(seconds: float) -> str:
    """Go's time.Duration.String ("1.5ms", "312.4µs", "2.000001s", "1m30s")."""
    ns = int(round(seconds * 1e9))
    if ns == 0:
        return "0s"
    sign, ns = ("-", -ns) if ns < 0 else ("", ns)
    if ns < 1000:
        return f"{sign}{ns}ns"
    if ns < 1_000_000:
        return sign + _fraction(ns, 1000) + "\u00b5s"
    if ns < 1_000_000_000:
        return sign + _fraction(ns, 1_000_000) + "ms"
    h, rest = divmod(ns, 3600 * 10**9)
    m, rest = divmod(rest, 60 * 10**9)
    return (sign + (f"{h}h" if h else "") + (f"{m}m" if h or m else "")
            + _fraction(rest, 10**9) + "s")


def _fraction(value: int, unit: int) -> str:
    whole, frac = divmod(value, unit)
    digits = str(frac).rjust(len(str(unit)) - 1, "0").rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


# ------------------------------------------------------------------ flags
class Flags:
    """rqlite's URL flags. Booleans are set bare (``?pretty``) or with a value (``=true``).
    Absent flags keep the class defaults, so a request pays only for the flags it sends."""

    BOOLS = ("transaction", "timings", "associative", "pretty", "redirect", "raft_index",
             "queue", "wait", "blob_array", "freshness_strict", "noleader", "nonvoters", "sync",
             "vacuum", "compress", "qualify_columns", "norwrandom", "norwtime", "bypass")
    _BOOLS = frozenset(BOOLS)
    _DURATIONS = frozenset(("timeout", "freshness", "db_timeout", "linearizable_timeout"))
    level = timeout = freshness = db_timeout = linearizable_timeout = q = ver = key = None
    fmt = ""
    tables: list = []

    def __init__(self, args: dict[str, list[bytes]]):
        self.raw = raw = {k: (v[-1].decode("utf-8", "replace") if v else "") for k, v in args.items()}
        for name, v in raw.items():
            if name in self._BOOLS:
                setattr(self, name, self._bool(name, v))
            elif name in self._DURATIONS:
                setattr(self, name, parse_duration(v) if v != "" else None)
        level = raw.get("level")
        if level is not None:
            level = level.strip().lower()
            if level not in LEVELS:
                raise FlagError(f"unknown consistency level {level!r}; use none, weak, "
                                "linearizable, strong or auto")
            self.level = level
        if raw:
            self.q = raw.get("q")
            self.fmt = (raw.get("fmt") or "").lower()
            self.ver = raw.get("ver")
            self.key = raw.get("key")
            self.tables = [t for t in (raw.get("tables") or "").split(",") if t]

    @staticmethod
    def _bool(name: str, v: str) -> bool:
        v = v.strip().lower()
        if v in TRUE:
            return True
        if v in FALSE:
            return False
        raise FlagError(f"flag {name} must be bare, true or false, not {v!r}")


for _name in Flags.BOOLS:
    setattr(Flags, _name, False)


def parse_flags(args) -> Flags:
    return Flags(args)


# ------------------------------------------------------------------ bodies
def _param(v, where: str):
    """JSON parameter -> SQL value; arrays of byte values are BLOBs (rqlite's form)."""
    if isinstance(v, list):
        if all(type(b) is int and 0 <= b <= 255 for b in v):
            return bytes(v)
        raise BodyError(f"{where}: an array parameter must hold byte values 0-255 (a BLOB)")
    if isinstance(v, dict):
        raise BodyError(f"{where}: a parameter cannot be an object")
    if isinstance(v, bool):
        return int(v)
    return v


def parse_body(body: bytes, content_type: str | None) -> list:
    """A request body -> statements in ddb's form: [sql] or [sql, *params] or [sql, {named}]."""
    ctype = (content_type or "").split(";")[0].strip().lower()
    if ctype == "text/plain":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BodyError("the request body is not UTF-8") from None
        if not text.strip():
            raise BodyError("no statements")
        return [[text]]
    try:
        data = orjson.loads(body)
    except orjson.JSONDecodeError:
        data = _stdlib_loads(body)     # the exact error (or the few inputs orjson refuses)
    if not isinstance(data, list):
        raise BodyError("the request body must be a JSON array of statements")
    if not data:
        raise BodyError("no statements")
    out = []
    for i, item in enumerate(data):
        where = f"statement {i}"
        if isinstance(item, str):
            out.append([item])
        elif isinstance(item, list) and item and isinstance(item[0], str):
            sql, rest = item[0], item[1:]
            if len(rest) == 1 and isinstance(rest[0], dict):
                named = {}
                for k, v in rest[0].items():
                    named[k[1:] if k[:1] in ":@$" else k] = _param(v, f"{where}, parameter {k!r}")
                out.append([sql, named])
            else:
                out.append([sql, *[_param(v, f"{where}, parameter {j + 1}") for j, v in enumerate(rest)]])
        else:
            raise BodyError(f"{where} must be a SQL string or an array [sql, params...]")
    return out


def _stdlib_loads(body: bytes):
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise BodyError("the request body is not UTF-8") from None
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise BodyError("the request body is nested too deeply") from None
    except ValueError as e:
        raise BodyError(f"the request body is not valid JSON: {e}") from None


def _no_constant(name):
    raise ValueError(f"{name} is not JSON")


# ------------------------------------------------------------------ values
_TS = re.compile(r"(\d{4})-(\d{2})-(\d{2})"
                 r"(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?([+-]\d{2}:\d{2})?)?)?")
_TIME_TYPES = ("date", "datetime", "timestamp")


def rfc3339(value):
    """go-sqlite3's reading of a DATE/DATETIME/TIMESTAMP column as rqlite returns it: text in one
    of SQLite's timestamp forms, or Unix seconds (milliseconds beyond 1e12) -> RFC 3339 with
    trailing zeros of the fraction removed (``2004-02-14T07:15:00.5Z``); anything else as is."""
    if type(value) is int:
        try:
            if value > 10**12 or value < -10**12:
                t = _dt.datetime(1970, 1, 1) + _dt.timedelta(milliseconds=value)
            else:
                t = _dt.datetime(1970, 1, 1) + _dt.timedelta(seconds=value)
        except OverflowError:
            return value
        return _fmt_time(t.year, t.month, t.day, t.hour, t.minute, t.second,
                         f"{t.microsecond:06d}" if t.microsecond else "", None)
    if not isinstance(value, str):
        return value
    s = value[:-1] if value.endswith("Z") else value
    m = _TS.fullmatch(s)
    if m is None:
        return value
    y, mo, d, hh, mi, ss, frac, off = m.groups()
    if off is not None and ss is None:
        return value
    try:
        _dt.datetime(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0))
    except ValueError:
        return value
    if off in ("+00:00", "-00:00"):
        off = None
    return _fmt_time(int(y), int(mo), int(d), int(hh or 0), int(mi or 0), int(ss or 0),
                     frac or "", off)


def _fmt_time(y, mo, d, hh, mi, ss, frac, off) -> str:
    frac = frac.rstrip("0")
    return (f"{y:04d}-{mo:02d}-{d:02d}T{hh:02d}:{mi:02d}:{ss:02d}" + (f".{frac}" if frac else "")
            + (off or "Z"))


def _value(v, blob_array: bool, timecol: bool):
    t = type(v)
    if t is bytes:
        return list(v) if blob_array else base64.b64encode(v).decode("ascii")
    if t is float:
        if not math.isfinite(v):
            return None            # Go's encoder refuses these; SQLite stores no NaN
        if v.is_integer() and abs(v) < 1e21:
            return int(v)          # Go prints 1.0 as 1
        return v
    if timecol:
        return rfc3339(v)
    return v


_STORAGE_CLASS = {int: "integer", float: "real", str: "text", bytes: "blob"}


def _columns(r: dict, blob_array: bool):
    cols = r.get("columns") or []
    decl = [(d or "").lower() for d in (r.get("decltypes") or [""] * len(cols))]
    tcols = [d in _TIME_TYPES for d in decl]
    colvals = r.get("values") or []
    nrows = len(colvals[0]) if colvals else 0
    if nrows and "" in decl:
        # rqlite: a column without a declared type (an expression, COUNT(*)) takes the
        # storage class of the first row's value ("" for NULL, and with no rows)
        decl = [d or _STORAGE_CLASS.get(type(colvals[c][0]), "") for c, d in enumerate(decl)]
    rows = []
    for i in range(nrows):
        rows.append([_value(colvals[c][i], blob_array, tcols[c]) for c in range(len(cols))])
    return cols, decl, rows


def exec_result(r: dict, timings: bool) -> dict:
    out = {}
    if r.get("error") is not None:
        out["error"] = r["error"]
    else:
        if r.get("last_insert_id"):
            out["last_insert_id"] = r["last_insert_id"]
        if r.get("rows_affected"):
            out["rows_affected"] = r["rows_affected"]
    if timings and r.get("time"):
        out["time"] = r["time"]
    return _order(out, ("last_insert_id", "rows_affected", "error", "time"))


def query_result(r: dict, timings: bool, associative: bool, blob_array: bool) -> dict:
    if r.get("error") is not None:
        out = {"error": r["error"]}
        if timings and r.get("time"):
            out["time"] = r["time"]
        return out
    cols, decl, rows = _columns(r, blob_array)
    out = {}
    if associative:
        if cols:
            out["types"] = {c: t for c, t in sorted(zip(cols, decl))}
        out["rows"] = [dict(sorted(zip(cols, row))) for row in rows]
    else:
        if cols:
            out["columns"] = cols
            out["types"] = decl
        if rows:
            out["values"] = rows
    if timings and r.get("time"):
        out["time"] = r["time"]
    return out


def request_result(r: dict, timings: bool, associative: bool, blob_array: bool) -> dict:
    """/db/request: a statement that produced columns is a query, any other an execute."""
    if r.get("columns") and r.get("error") is None:
        return query_result(r, timings, associative, blob_array)
    out = exec_result(r, timings)
    if associative and r.get("error") is None:
        out["rows"] = None
    return out


def _order(d: dict, keys) -> dict:
    return {k: d[k] for k in keys if k in d}


_HTML = ((b"<", b"\\u003c"), (b">", b"\\u003e"), (b"&", b"\\u0026"),
         ("\u2028".encode(), b"\\u2028"), ("\u2029".encode(), b"\\u2029"))
_INDENT = re.compile(rb"(?m)^( +)")


def encode_json(obj, pretty: bool = False) -> bytes:
    """Go's encoding/json look: compact (or 4-space indent), HTML characters escaped."""
    try:
        out = orjson.dumps(obj, option=orjson.OPT_INDENT_2 if pretty else 0)
    except TypeError:           # a big int, a lone surrogate, a non-str key: the stdlib's way
        return _stdlib_dumps(obj, pretty)
    if pretty:
        out = _INDENT.sub(lambda m: m.group(1) * 2, out)
    for raw, esc in _HTML:
        # find, not `in`: bytes' `in` first tries its operand as an int, and the TypeError
        # it raises and drops costs more than the scan (five of them per answer)
        if out.find(raw) >= 0:
            out = out.replace(raw, esc)
    return out


def _stdlib_dumps(obj, pretty: bool) -> bytes:
    if pretty:
        text = json.dumps(obj, ensure_ascii=False, indent=4, allow_nan=False)
    else:
        text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    text = (text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
            .replace("\u2028", "\\u2028").replace("\u2029", "\\u2029"))
    return text.encode("utf-8")


# ------------------------------------------------------------------ SQL dump
def _quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_literal(v) -> str:
    if v is None:
        return "NULL"
    if type(v) is int:
        return str(v)
    if type(v) is float:
        if math.isinf(v):
            return "1e999" if v > 0 else "-1e999"
        if v.is_integer() and abs(v) < 1e18:
            return f"{int(v)}.0"
        r = repr(v)
        return r if float(r) == v else f"{v:.17g}"
    if isinstance(v, (bytes, bytearray, memoryview)):
        return "X'" + bytes(v).hex() + "'"
    s = "'" + str(v).replace("'", "''") + "'"
    if "\n" in s or "\r" in s:
        # the shell's form for control characters
        if "\r" in s:
            s = "replace(" + s.replace("\r", "\\r") + ",'\\r',char(13))"
        if "\n" in s:
            s = "replace(" + s.replace("\n", "\\n") + ",'\\n',char(10))"
    return s


def sql_dump(conn, tables: list[str] | None = None, skip=lambda name: False) -> str:
    """The text of the sqlite3 shell's ``.dump`` for an apsw connection (see
    ``sql_dump_lines``), whole."""
    return "".join(line + "\n" for line in sql_dump_lines(conn, tables, skip))


def sql_dump_lines(conn, tables: list[str] | None = None, skip=lambda name: False):
    """The lines of the sqlite3 shell's ``.dump`` for an apsw connection (tables, rows,
    indexes, triggers, views; sqlite_sequence), skipping the tables ``skip`` names, with
    rqlite's one difference in the rows: every ``INSERT`` quotes its table name
    (``INSERT INTO "t" VALUES(...)``, as rqlite's ``/db/backup?fmt=sql`` writes it).
    A generator, so that a large database's dump is never held whole."""
    yield "PRAGMA foreign_keys=OFF;"
    yield "BEGIN TRANSACTION;"
    cur = conn.cursor()
    want = set(tables or [])
    rows = list(cur.execute("SELECT name, type, sql FROM sqlite_schema WHERE sql NOT NULL AND "
                            "type == 'table' ORDER BY tbl_name = 'sqlite_sequence', rowid"))
    seq_rows = None
    writable_schema = False
    for name, _typ, sql in rows:
        if skip(name) or (want and name not in want):
            continue
        if name == "sqlite_sequence":
            seq_rows = list(cur.execute("SELECT * FROM sqlite_sequence"))
            continue
        if name.startswith("sqlite_stat"):
            yield "ANALYZE sqlite_schema;"
            continue
        if name.startswith("sqlite_"):
            continue
        if sql.upper().startswith("CREATE VIRTUAL TABLE"):
            writable_schema = True
            yield "PRAGMA writable_schema=ON;"
            yield ("INSERT INTO sqlite_schema(type,name,tbl_name,rootpage,sql)"
                   f"VALUES('table',{_sql_literal(name)},{_sql_literal(name)},0,"
                   f"{_sql_literal(sql)});")
            continue
        yield sql + ";"
        qname = _quote_ident(name)
        rows_cur = conn.cursor()      # its own cursor: the schema's is still being read
        for row in rows_cur.execute(f"SELECT * FROM {qname}"):
            yield f"INSERT INTO {qname} VALUES(" + ",".join(_sql_literal(v) for v in row) + ");"
    if seq_rows is not None and not want:
        yield "DELETE FROM sqlite_sequence;"
        for name, seq in seq_rows:
            if not skip(name):
                yield f"INSERT INTO \"sqlite_sequence\" VALUES({_sql_literal(name)},{seq});"
    for name, tbl, sql in list(cur.execute("SELECT name, tbl_name, sql FROM sqlite_schema WHERE sql "
                                           "NOT NULL AND type IN ('index','trigger','view') ORDER BY rowid")):
        if skip(name) or skip(tbl) or (want and tbl not in want):
            continue
        yield sql + ";"
    if writable_schema:
        yield "PRAGMA writable_schema=OFF;"
    yield "COMMIT;"


def url_quote(s: str) -> str:
    return quote(s, safe="")


# Reads of PRAGMAs that ddb's policy keeps for itself but that clients probe on connect:
# SQLAlchemy's SQLite dialect reads read_uncommitted to learn the isolation level. The answer
# is SQLite's default (0), which is also what rqlite returns.
FIXED_PRAGMAS = {
    "read_uncommitted": {"columns": ["read_uncommitted"], "decltypes": [None], "values": [[0]]},
}
PRAGMA_READ = re.compile(r"^\s*PRAGMA\s+(?:main\.)?([A-Za-z_]+)\s*;?\s*$", re.I)


def pragma_read(stmt) -> str | None:
    if len(stmt) != 1 or not isinstance(stmt[0], str):
        return None
    m = PRAGMA_READ.match(stmt[0])
    return m.group(1).lower() if m else None
