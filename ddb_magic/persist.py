"""`%%ddb --persist DF [TABLE]` / `--append DF [TABLE]`: a pandas DataFrame into the cluster.

`--persist` creates the table (its column types from the frame's dtypes) and fails if it
exists; `--append` adds the rows to an existing table. The rows go in chunks, each one
request and so one log entry (one Raft round, replicated and applied like any write): a
large frame never becomes one huge entry. A non-default index (named, or not 0..n-1) is
written as columns too, as pandas' `to_sql` does.

dtype -> column type: integers and booleans INTEGER, floats REAL, datetimes TEXT (ISO 8601,
SQLite's date functions read it), bytes BLOB, everything else TEXT. Missing values (NaN,
NA, NaT, None) become NULL.
"""
from __future__ import annotations

import re

from .parsing import UsageProblem
from .render import Note

CHUNK_ROWS = 500
MAX_PARAMS = 30_000          # below SQLite's 32,766 variables per statement
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def column_type(series) -> str:
    import pandas as pd
    from pandas.api import types as t
    d = series.dtype
    if t.is_bool_dtype(d) or t.is_integer_dtype(d):
        return "INTEGER"
    if t.is_float_dtype(d):
        return "REAL"
    if t.is_datetime64_any_dtype(d):
        return "TEXT"
    vals = series.dropna()
    if len(vals) and all(isinstance(v, (bytes, bytearray, memoryview)) for v in vals):
        return "BLOB"
    if len(vals) and not isinstance(d, pd.CategoricalDtype) and \
            all(isinstance(v, bool) or isinstance(v, int) for v in vals):
        return "INTEGER"
    return "TEXT"


def _quote(name: str) -> str:
    return '"' + str(name).replace('"', '""') + '"'


def _column_values(series) -> list:
    import pandas as pd
    from pandas.api import types as t
    if t.is_datetime64_any_dtype(series.dtype):
        return [None if pd.isna(v) else v.isoformat(sep=" ") for v in series]
    out = []
    for v in series.astype(object):
        if v is None or (not isinstance(v, (str, bytes, bytearray, memoryview)) and pd.isna(v)):
            out.append(None)
            continue
        item = getattr(v, "item", None)
        if callable(item) and not isinstance(v, (str, bytes)):
            v = item()
        if isinstance(v, (bytearray, memoryview)):
            v = bytes(v)
        elif isinstance(v, bool):
            v = int(v)
        elif not isinstance(v, (int, float, str, bytes)):
            v = str(v)
        out.append(v)
    return out


def frame_for(df):
    import pandas as pd
    idx = df.index
    plain = isinstance(idx, pd.RangeIndex) and idx.start == 0 and idx.step == 1 and idx.name is None
    return df if plain else df.reset_index()


def create_sql(table: str, df) -> str:
    cols = ", ".join(f"{_quote(c)} {column_type(df[c])}" for c in df.columns)
    return f"CREATE TABLE {_quote(table)} ({cols})"


def chunks(table: str, df):
    """(sql, params) per chunk: one multi-row INSERT each."""
    cols = [str(c) for c in df.columns]
    per = max(1, min(CHUNK_ROWS, MAX_PARAMS // max(1, len(cols))))
    columns = [_column_values(df[c]) for c in df.columns]
    rows = list(zip(*columns)) if columns else []
    head = f"INSERT INTO {_quote(table)} ({', '.join(_quote(c) for c in cols)}) VALUES "
    one = "(" + ", ".join("?" for _ in cols) + ")"
    for lo in range(0, len(rows), per):
        part = rows[lo:lo + per]
        yield head + ", ".join(one for _ in part), [v for r in part for v in r]


def command(magic, opts) -> None:
    """Run `--persist` / `--append`: what follows the option is the table name (default:
    the DataFrame's variable name)."""
    import pandas as pd
    from IPython.display import display
    if opts.persist and opts.append:
        raise UsageProblem("--persist creates a table, --append adds to one: use one of them")
    var = opts.persist or opts.append
    table = opts.sql.strip().rstrip(";").strip() or var
    if not _IDENT.match(table):
        raise UsageProblem(f"--persist/--append DF [TABLE]: {table!r} is not a table name")
    ns = magic._ns()
    if var not in ns:
        raise UsageProblem(f"{var!r} is not defined in the notebook")
    df = ns[var]
    if not isinstance(df, pd.DataFrame):
        raise UsageProblem(f"{var!r} is a {type(df).__name__}, not a pandas DataFrame")
    df = frame_for(df)
    backend = magic._backend(opts.name)
    timeout = opts.timeout or magic.timeout
    entries, first, last = 0, None, None

    def write(sql, params):
        nonlocal entries, first, last
        reply = backend.execute([(sql, params)], level="weak", timeout=timeout)
        bad = next((r.error for r in reply.results if r.error is not None), None)
        if bad is not None:
            raise UsageProblem(f"{table}: {bad}")
        entries += 1
        first = reply.index if first is None else first
        last = reply.index
    if opts.persist:
        write(create_sql(table, df), None)
    for sql, params in chunks(table, df):
        write(sql, params)
    types = ", ".join(f"{c} {column_type(df[c])}" for c in df.columns)
    where = f" (log indexes {first}\u2013{last})" if first is not None and last != first else \
        (f" (log index {first})" if first is not None else "")
    verb = "created" if opts.persist else "appended to"
    display(Note(f"{verb} {table}: {len(df):,} rows of {var} in {entries} log "
                 f"entr{'y' if entries == 1 else 'ies'}{where}; columns {types}"))
    return None
