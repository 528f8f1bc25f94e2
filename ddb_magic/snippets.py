"""Composing queries, as jupysql does: `%%ddb --save NAME` keeps a query under a name,
`%%ddb --with NAME[,NAME]` puts saved queries in front of a query as CTEs
(`WITH NAME AS (...)`), `%%ddb --file PATH` runs the SQL of a file.

A snippet is stored expanded (a query saved `--with` others carries them as a nested
`WITH`, which SQLite accepts in a CTE), so a later change to one snippet does not silently
change another. Snippets belong to the session, not to a cluster: the same composition can
run against a simulated and a live cluster.
"""
from __future__ import annotations

import os
import re

from .parsing import UsageProblem, split_statements

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def snippets_of(magic) -> dict[str, str]:
    return magic.__dict__.setdefault("_ddb_snippets", {})


def _with(sql: str, names: list[str], saved: dict[str, str]) -> str:
    for n in names:
        if n not in saved:
            known = ", ".join(sorted(saved)) or "none yet"
            raise UsageProblem(f"no saved query named {n!r} (saved: {known}; save one with "
                               "%%ddb --save NAME)")
    ctes = ", ".join(f"{n} AS ({saved[n]})" for n in names)
    m = re.match(r"\s*WITH\s+(RECURSIVE\s+)?", sql, re.I)
    if m:        # the query has CTEs of its own: one WITH clause for all
        return f"WITH {m.group(1) or ''}{ctes}, {sql[m.end():]}"
    return f"WITH {ctes} {sql}"


def prepare(magic, opts) -> str:
    """The SQL a cell runs once --file, --with and --save are applied (and saved)."""
    sql = opts.sql
    if opts.file:
        path = os.path.expanduser(opts.file)
        try:
            with open(path, encoding="utf-8") as f:
                text = f.read()
        except OSError as e:
            raise UsageProblem(f"--file {opts.file}: {e.strerror or e}") from None
        sql = f"{sql}\n{text}" if sql.strip() else text
    saved = snippets_of(magic)
    if opts.with_:
        names = [n.strip() for n in opts.with_.split(",") if n.strip()]
        sql = _with(sql, names, saved)
    if opts.save:
        if not _NAME.match(opts.save):
            raise UsageProblem(f"--save {opts.save!r}: a name is letters, digits and _")
        statements = split_statements(sql)
        if len(statements) != 1:
            raise UsageProblem("--save keeps one query (a SELECT): this cell has "
                               f"{len(statements)} statements")
        saved[opts.save] = statements[0].rstrip().rstrip(";").rstrip()
    return sql
