"""`%ddb_plot hist|box|bar COLUMN --table T`: a plot computed in the cluster.

Only aggregates travel: a histogram's bucket counts (`GROUP BY` the bucket), a box plot's
five numbers (quartiles by `ORDER BY ... LIMIT 1 OFFSET k`, whiskers at the furthest values
within 1.5 IQR, the outliers beyond them up to a bound), a bar chart's counts per value
(`GROUP BY`, the most frequent first). Returns the matplotlib Axes, as jupysql does, so it
can be styled further. matplotlib comes with the `notebook` extra.
"""
from __future__ import annotations

import re

from .parsing import UsageProblem, arg_parser, split_args

PLOT_USAGE = ("%ddb_plot hist|box|bar COLUMN --table T [--where COND] [--bins N] [--top N] "
              "[--level L] [--name C]")
MAX_OUTLIERS = 200
_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def _q(name: str) -> str:
    if not _IDENT.match(name):
        raise UsageProblem(f"{name!r} is not a plain column or table name\nusage: {PLOT_USAGE}")
    return f'"{name}"'


class _Ask:
    def __init__(self, backend, level, timeout):
        self.b, self.level, self.timeout = backend, level, timeout
        self.queries = 0

    def rows(self, sql: str) -> list[tuple]:
        reply = self.b.execute([(sql, None)], level=self.level, timeout=self.timeout)
        self.queries += 1
        r = reply.results[0]
        if r.error is not None:
            raise UsageProblem(f"{r.error} (in `{sql}`)")
        return list(zip(*r.values)) if r.values else []

    def one(self, sql: str):
        rows = self.rows(sql)
        return rows[0] if rows else None


def hist_data(ask: _Ask, col: str, src: str, where: str, bins: int):
    lo, hi, n = ask.one(f"SELECT min({col}), max({col}), count({col}) FROM {src}{where}")
    if not n:
        return [], [], 0
    if lo == hi:
        return [lo - 0.5, lo + 0.5], [n], n
    width = (hi - lo) / bins
    counts = dict(ask.rows(
        f"SELECT min(CAST(({col} - {lo!r}) / {width!r} AS INTEGER), {bins - 1}) AS b, count(*) "
        f"FROM {src}{where}{' AND' if where else ' WHERE'} {col} IS NOT NULL GROUP BY b"))
    edges = [lo + i * width for i in range(bins)] + [hi]
    return edges, [counts.get(i, 0) for i in range(bins)], n


def box_stats(ask: _Ask, col: str, src: str, where: str) -> dict:
    cond = f"{where}{' AND' if where else ' WHERE'} {col} IS NOT NULL"
    (n,) = ask.one(f"SELECT count(*) FROM {src}{cond}")
    if not n:
        raise UsageProblem(f"no values of {col} to plot")

    def at(q: float) -> float:
        """The q-quantile, interpolated between the two values around it (numpy's linear)."""
        pos = q * (n - 1)
        k = int(pos)
        rows = ask.rows(f"SELECT {col} FROM {src}{cond} ORDER BY {col} LIMIT 2 OFFSET {k}")
        a = rows[0][0]
        b = rows[1][0] if len(rows) > 1 else a
        return a + (b - a) * (pos - k)
    q1, med, q3 = at(0.25), at(0.5), at(0.75)
    iqr = q3 - q1
    lo_f, hi_f = q1 - 1.5 * iqr, q3 + 1.5 * iqr
    whislo, whishi = ask.one(f"SELECT min({col}), max({col}) FROM {src}{cond} "
                             f"AND {col} BETWEEN {lo_f!r} AND {hi_f!r}")
    fliers = [r[0] for r in ask.rows(f"SELECT {col} FROM {src}{cond} AND ({col} < {lo_f!r} "
                                     f"OR {col} > {hi_f!r}) LIMIT {MAX_OUTLIERS}")]
    return {"label": col.strip('"'), "q1": q1, "med": med, "q3": q3, "whislo": whislo,
            "whishi": whishi, "fliers": fliers, "n": n}


def bar_data(ask: _Ask, col: str, src: str, where: str, top: int):
    return ask.rows(f"SELECT {col} AS value, count(*) AS n FROM {src}{where} GROUP BY {col} "
                    f"ORDER BY n DESC, value LIMIT {top}")


def command(magic, line: str):
    a = arg_parser("%ddb_plot", (["kind"], dict(choices=["hist", "box", "bar"])),
                (["column"], dict()),
                (["--table"], dict(required=True)),
                (["--where"], dict(default=None)),
                (["--bins"], dict(type=int, default=10)),
                (["--top"], dict(type=int, default=20)),
                (["--level"], dict(default=None)),
                (["--name"], dict(default=None))).parse_args(split_args(line))
    if not 1 <= a.bins <= 500 or not 1 <= a.top <= 500:
        raise UsageProblem(f"--bins and --top are between 1 and 500\nusage: {PLOT_USAGE}")
    col, src = _q(a.column), _q(a.table)
    where = f" WHERE ({a.where})" if a.where else ""
    b = magic._backend(a.name)
    ask = _Ask(b, a.level or magic.level, magic.timeout)
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6, 3.5))
    title = f"{a.column} in {a.table}" + (f" where {a.where}" if a.where else "")
    if a.kind == "hist":
        edges, counts, n = hist_data(ask, col, src, where, a.bins)
        if counts:
            ax.stairs(counts, edges, fill=True, alpha=0.8)
        ax.set_ylabel("count")
        ax.set_xlabel(a.column)
        ax.set_title(f"histogram of {title} ({n:,} values)")
    elif a.kind == "box":
        st = box_stats(ask, col, src, where)
        ax.bxp([st], showfliers=True)
        ax.set_title(f"box plot of {title} ({st['n']:,} values)")
    else:
        rows = bar_data(ask, col, src, where, a.top)
        ax.bar([str(v) for v, _ in rows], [n for _, n in rows])
        ax.set_ylabel("count")
        ax.set_title(f"{title}: count per value")
        if len(rows) > 8:
            ax.tick_params(axis="x", labelrotation=60)
    fig.tight_layout()
    from IPython.display import display
    display(fig)          # shown here, once (the figure is closed: no second copy at the end)
    plt.close(fig)
    return ax
