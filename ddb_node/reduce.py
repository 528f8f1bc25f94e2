"""Combining the shares of a map step (`map_reduce`): concatenation, a Python callable, or
SQL over a table named `map` on an in-memory SQLite. Shared by both clients and the
notebook's simulated cluster."""
from __future__ import annotations


def reduce_results(results, reduce):
    """Combine map shares: concatenate (reduce None), a callable, or SQL over a table `map`."""
    from ddb_node.sql import Result
    if reduce is None:
        cols = results[0].columns
        values = [[] for _ in cols]
        for r in results:
            for i, col in enumerate(r.values):
                values[i].extend(col)
        return Result(columns=cols, decltypes=results[0].decltypes, values=values)
    if callable(reduce):
        return reduce(results)
    import apsw
    db = apsw.Connection(":memory:")
    cols = results[0].columns
    qcols = ", ".join('"' + c.replace('"', '""') + '"' for c in cols)
    db.execute(f"CREATE TABLE map({qcols})")
    ph = ", ".join("?" for _ in cols)
    with db:
        for r in results:
            rows = list(zip(*r.values)) if r.values else []
            db.executemany(f"INSERT INTO map VALUES({ph})", rows)
    cur = db.execute(reduce)
    desc = cur.getdescription() if hasattr(cur, "getdescription") else None
    rows = cur.fetchall()
    names = [d[0] for d in desc] if desc else []
    values = [list(c) for c in zip(*rows)] if rows else [[] for _ in names]
    return Result(columns=names, decltypes=[d[1] or "" for d in desc] if desc else [], values=values)
