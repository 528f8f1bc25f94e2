"""Parsing a `%%ddb` cell: options, `VAR <<` capture, `{{var}}` templates, `:name` parameters.

Everything here is pure (no cluster, no IPython) so it is cheap to test.
"""
from __future__ import annotations

import argparse

import re
import shlex
from dataclasses import dataclass, field

from ddb_node.protocol import LEVELS   # one definition of the level names


class UsageProblem(Exception):
    """Bad magic arguments: shown as one usage line, never a traceback."""


@dataclass
class CellOptions:
    node: int | None = None
    level: str | None = None
    transaction: bool = False
    name: str | None = None
    map_reduce: bool = False
    no_wait: bool = False
    timeout: float | None = None
    limit: int | None = None
    fetch_all: bool = False         # --all: fetch every row of a long read
    begin: bool = False             # --begin: start an interactive transaction (transactions.py)
    tx: str | None = None           # --tx NAME: run in that open transaction
    target: str | None = None       # VAR of `VAR <<`
    display_too: bool = False       # `VAR= <<`
    persist: str | None = None      # --persist DF [TABLE]: write a DataFrame as a new table
    append: str | None = None       # --append DF [TABLE]: add its rows to a table
    save: str | None = None         # --save NAME: keep this query as a snippet
    with_: str | None = None        # --with A,B: the saved snippets as CTEs
    no_execute: bool = False        # --no-execute: with --save, only save
    file: str | None = None         # --file PATH: the SQL of a .sql file
    sql: str = ""


# options of the cell/line SQL form: name -> (attribute, takes a value, converter)
_OPTS = {
    "--node": ("node", True, int), "-N": ("node", True, int),
    "--level": ("level", True, str), "-l": ("level", True, str),
    "--transaction": ("transaction", False, None), "-t": ("transaction", False, None),
    "--name": ("name", True, str),
    "--map-reduce": ("map_reduce", False, None),
    "--no-wait": ("no_wait", False, None),
    "--timeout": ("timeout", True, float),
    "--limit": ("limit", True, int),
    "--all": ("fetch_all", False, None),
    "--persist": ("persist", True, str), "--append": ("append", True, str),
    "--save": ("save", True, str), "--with": ("with_", True, str),
    "--no-execute": ("no_execute", False, None), "--file": ("file", True, str),
    "--begin": ("begin", False, None),
    "--tx": ("tx", True, str),
}

CELL_USAGE = ("usage: %%ddb [--node N] [--level none|weak|linearizable|strong|auto] [--transaction] "
              "[--name CLUSTER] [--map-reduce] [--timeout S] [--limit ROWS] [--all] [--save NAME "
              "[--no-execute]] [--with NAME[,NAME]] [--file PATH] [--begin] [--tx NAME] "
              "[VAR <<|VAR= <<] SQL\n"
              "       %ddb --persist DF [TABLE] | %ddb --append DF [TABLE]   write a DataFrame")

_CAPTURE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(=?)\s*<<\s*")
_OPT_TOKEN = re.compile(r"\s*(\S+)")


def parse_cell(line: str, cell: str | None = None) -> CellOptions:
    """Options are read from the start of the magic line; what follows them (and the cell
    body) is SQL, possibly introduced by `VAR <<` / `VAR= <<`."""
    opts = CellOptions()
    rest = line or ""
    while True:
        m = _OPT_TOKEN.match(rest)
        if not m:
            break
        key = m.group(1).split("=", 1)[0]
        if key not in _OPTS:
            if re.fullmatch(r"--[a-z][a-z-]*", key):
                raise UsageProblem(f"unknown option {key}\n{CELL_USAGE}")
            break
        token = m.group(1)
        rest = rest[m.end():]
        key, _, inline = token.partition("=")
        attr, takes, conv = _OPTS[key]
        if takes:
            if not inline:
                v = _OPT_TOKEN.match(rest)
                if not v:
                    raise UsageProblem(f"{key} needs a value\n{CELL_USAGE}")
                inline = v.group(1)
                rest = rest[v.end():]
            try:
                setattr(opts, attr, conv(inline))
            except ValueError:
                raise UsageProblem(f"bad value for {key}: {inline!r}\n{CELL_USAGE}") from None
        else:
            setattr(opts, attr, True)
    if opts.level is not None and opts.level not in LEVELS:
        raise UsageProblem(f"unknown level {opts.level!r}: use one of {', '.join(LEVELS)}")
    body = rest if cell is None else (rest + "\n" + cell if rest.strip() else cell)
    m = _CAPTURE.match(body)
    if m:
        opts.target, opts.display_too = m.group(1), bool(m.group(2))
        body = body[m.end():]
    opts.sql = body.strip()
    return opts


# ---------------------------------------------------------------- templates and parameters
_TEMPLATE = re.compile(r"\{\{(.+?)\}\}", re.S)


def render_template(sql: str, namespace: dict) -> str:
    """`{{expr}}` is replaced by str(expr) evaluated in the notebook's namespace."""
    def sub(m):
        expr = m.group(1).strip()
        try:
            return str(eval(expr, namespace))  # noqa: S307 - the user's own notebook
        except Exception as e:  # noqa: BLE001
            raise UsageProblem(f"template {{{{{expr}}}}}: {type(e).__name__}: {e}") from None
    return _TEMPLATE.sub(sub, sql)


def named_parameters(sql: str) -> list[str]:
    """The `:name` parameters of a statement, in order of first use, outside string
    literals, quoted identifiers and comments."""
    names: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c in "'\"`":
            j = i + 1
            while j < n:
                if sql[j] == c:
                    if j + 1 < n and sql[j + 1] == c:
                        j += 2
                        continue
                    break
                j += 1
            i = j + 1
        elif c == "[":
            j = sql.find("]", i + 1)
            i = n if j < 0 else j + 1
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            i = n if j < 0 else j + 1
        elif c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            i = n if j < 0 else j + 2
        elif c == ":" and i + 1 < n and (sql[i + 1].isalpha() or sql[i + 1] == "_") \
                and (i == 0 or sql[i - 1] != ":"):
            j = i + 1
            while j < n and (sql[j].isalnum() or sql[j] == "_"):
                j += 1
            name = sql[i + 1:j]
            if name not in names:
                names.append(name)
            i = j
        else:
            i += 1
    return names


def bind_parameters(sql: str, namespace: dict, skip=("ddb_part", "ddb_parts")) -> dict | None:
    names = [p for p in named_parameters(sql) if p not in skip]
    if not names:
        return None
    params = {}
    for p in names:
        if p not in namespace:
            raise UsageProblem(f"parameter :{p} is not defined in the notebook "
                               f"(set {p} = ... in a Python cell first)")
        v = namespace[p]
        params[p] = _plain(v)
    return params


def _plain(v):
    """numpy/pandas scalars -> Python values SQLite can bind."""
    if v is None or isinstance(v, (bool, int, float, str, bytes)):
        return int(v) if isinstance(v, bool) else v
    item = getattr(v, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    try:
        import pandas as pd
        if v is pd.NA or v is pd.NaT:
            return None
    except ImportError:  # pragma: no cover
        pass
    return v


def split_statements(sql: str) -> list[str]:
    """Split the cell into statements the way SQLite does (one result per statement)."""
    try:
        from ddb_node.sql.split import split_sql
        parts = split_sql(sql)
    except Exception:  # noqa: BLE001 - fall back to one statement; the node reports errors
        parts = [sql]
    return [p.strip() for p in parts if p.strip() and not _only_comments(p)]


def _only_comments(s: str) -> bool:
    s = re.sub(r"/\*.*?\*/", "", s, flags=re.S)
    s = re.sub(r"--[^\n]*", "", s)
    return not s.strip().strip(";").strip()


# ---------------------------------------------------------------- line-magic arguments
def split_args(line: str) -> list[str]:
    try:
        return shlex.split(line)
    except ValueError as e:
        raise UsageProblem(f"cannot parse arguments: {e}") from None


def parse_node_list(text: str) -> list[int]:
    try:
        ids = [int(x) for x in re.split(r"[,\s]+", text.strip()) if x]
    except ValueError:
        raise UsageProblem(f"bad node list {text!r}: use numbers like 1,2") from None
    if not ids or any(i <= 0 for i in ids):
        raise UsageProblem(f"bad node list {text!r}: use numbers like 1,2")
    return ids


def parse_groups(text: str) -> list[list[int]]:
    """'1,2 / 3' or '1,2 | 3' -> [[1, 2], [3]]."""
    parts = [p for p in re.split(r"[/|]", text) if p.strip()]
    if len(parts) < 2:
        raise UsageProblem("usage: %ddb_partition 1,2 / 3   (two or more groups)   "
                           "or   %ddb_partition --isolate N")
    groups = [parse_node_list(p) for p in parts]
    seen: set[int] = set()
    for g in groups:
        if seen & set(g):
            raise UsageProblem(f"node {sorted(seen & set(g))[0]} is in two groups")
        seen |= set(g)
    return groups


class _ArgParser(argparse.ArgumentParser):
    """argparse for a magic's line: a usage problem is raised (and shown in one line), never
    an exit of the kernel."""

    def error(self, message):
        raise UsageProblem(f"{message}\nusage: {self.format_usage().strip()[7:]}")

    def exit(self, status=0, message=None):
        raise UsageProblem(message or self.format_usage())


def arg_parser(prog, *args):
    """A magic's argument parser: `args` are (names, add_argument keywords) pairs."""
    p = _ArgParser(prog=prog, add_help=False)
    for names, kw in args:
        p.add_argument(*names, **kw)
    return p
