"""Split a multi-statement SQL string the way SQLite does.

A one-pass port of the state machine in SQLite's ``sqlite3_complete()`` (complete.c), which
knows about string literals, quoted identifiers, comments and ``CREATE TRIGGER … BEGIN … END;``
bodies. Every piece it produces is confirmed with ``apsw.complete()`` (SQLite's own function),
so a disagreement can never go unnoticed. Splitting does not need the schema, which is what
lets a request create a table and use it in the same string.
"""
from __future__ import annotations

import apsw

SEMI, WS, OTHER, EXPLAIN, CREATE, TEMP, TRIGGER, END = range(8)
_TRANS = (
    # SEMI WS OTHER EXPLAIN CREATE TEMP TRIGGER END
    (1, 0, 2, 3, 4, 2, 2, 2),  # 0 INVALID
    (1, 1, 2, 3, 4, 2, 2, 2),  # 1 START
    (1, 2, 2, 2, 2, 2, 2, 2),  # 2 NORMAL
    (1, 3, 3, 2, 4, 2, 2, 2),  # 3 EXPLAIN
    (1, 4, 2, 2, 2, 4, 5, 2),  # 4 CREATE
    (6, 5, 5, 5, 5, 5, 5, 5),  # 5 TRIGGER
    (6, 6, 5, 5, 5, 5, 5, 7),  # 6 SEMI
    (1, 7, 5, 5, 5, 5, 5, 5),  # 7 END
)
_KEYWORDS = {"create": CREATE, "trigger": TRIGGER, "temp": TEMP, "temporary": TEMP,
             "end": END, "explain": EXPLAIN}


def _is_id(ch: str) -> bool:
    return ch.isalnum() or ch == "_" or ch == "$" or ord(ch) >= 0x80


def _tokens(sql: str):
    """Yield (token, start, end)."""
    i, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == ";":
            yield SEMI, i, i + 1
            i += 1
        elif c in " \t\n\f\r":
            yield WS, i, i + 1
            i += 1
        elif c == "/" and sql.startswith("/*", i):
            j = sql.find("*/", i + 2)
            j = n if j < 0 else j + 2
            yield WS, i, j
            i = j
        elif c == "-" and sql.startswith("--", i):
            j = sql.find("\n", i)
            j = n if j < 0 else j + 1
            yield WS, i, j
            i = j
        elif c == "[":
            j = sql.find("]", i + 1)
            j = n if j < 0 else j + 1
            yield OTHER, i, j
            i = j
        elif c in "`\"'":
            j = sql.find(c, i + 1)
            j = n if j < 0 else j + 1
            yield OTHER, i, j
            i = j
        elif _is_id(c):
            j = i + 1
            while j < n and _is_id(sql[j]):
                j += 1
            yield _KEYWORDS.get(sql[i:j].lower(), OTHER), i, j
            i = j
        else:
            yield OTHER, i, i + 1
            i += 1


def split_sql(sql: str) -> list[str]:
    """The statements in ``sql``, each with its terminating semicolon if it had one.

    Pieces holding only whitespace, comments and semicolons are dropped. An unterminated
    last statement is kept as it is (SQLite's prepare will judge it)."""
    if ";" not in sql:
        return [sql] if _has_content(sql) else []
    out: list[str] = []
    state, start, content = 1, 0, False
    for tok, a, b in _tokens(sql):
        state = _TRANS[state][tok]
        if tok == SEMI:
            if state == 1:
                piece = sql[start:b]
                if content:
                    if not apsw.complete(piece):   # never expected: SQLite disagrees
                        raise AssertionError(f"SQL splitter disagrees with sqlite3_complete on {piece!r}")
                    out.append(piece)
                start, content = b, False
        elif tok != WS:
            content = True
    if content:
        out.append(sql[start:])
    return out


def _has_content(sql: str) -> bool:
    return any(tok not in (WS, SEMI) for tok, _, _ in _tokens(sql))


def is_single(sql: str) -> bool:
    """Fast check used on the apply path: True when ``sql`` certainly holds at most one
    statement (no semicolon other than trailing ones)."""
    return ";" not in sql.rstrip().rstrip(";")
