"""jupysql's everyday conveniences in `%%ddb`: `--persist` / `--append` a DataFrame,
`--save` / `--with` to compose queries as CTEs, `--file`, `%ddb_plot` computed in the
cluster, and `%config DdbMagic.autopandas` / `displaylimit`."""
from __future__ import annotations

import math

import pandas as pd
import pytest

from ddb_magic import magics_of
from ddb_magic.persist import chunks, column_type

from tests.magic_helpers import run, shell


def _q(sh, sql):
    """The DataFrame of a one-line query (the line form returns it)."""
    r = run(sh, f"_ddb_q = %ddb {sql}")
    assert r.error is None, r.out
    return sh.user_ns["_ddb_q"]


@pytest.fixture
def sim():
    sh = shell()
    run(sh, "%ddb launch --sim -n 3 --seed 11 --name conv")
    yield sh
    run(sh, "%ddb stop --name conv")
    run(sh, "%config DdbMagic.autopandas = False")


def _frame():
    return pd.DataFrame({
        "name": ["ada", "alan", None],
        "age": pd.array([36, 41, None], dtype="Int64"),
        "score": [9.5, float("nan"), 7.25],
        "member": [True, False, True],
        "joined": pd.to_datetime(["2024-01-02 00:00:00", "2024-03-04 05:06:07", None]),
        "photo": [b"\x00\x01", None, b"\xff"],
    })


def test_dtypes_map_to_column_types():
    df = _frame()
    assert {c: column_type(df[c]) for c in df.columns} == {
        "name": "TEXT", "age": "INTEGER", "score": "REAL", "member": "INTEGER",
        "joined": "TEXT", "photo": "BLOB"}


def test_persist_writes_one_log_entry_per_chunk_and_reads_back(sim, monkeypatch):
    import ddb_magic.persist as persist
    monkeypatch.setattr(persist, "CHUNK_ROWS", 2)
    ns = sim.user_ns
    ns["people"] = _frame()
    b = magics_of(sim).clusters["conv"]
    before = b.sim.nodes[b.leader()].raft.last_index if b.leader() else 0
    r = run(sim, "%ddb --persist people")
    assert "created people: 3 rows of people in 3 log entries" in r.out, r.out
    leader = b.sim.nodes[b.leader()].raft
    # CREATE TABLE + 2 chunks (2 rows, then 1), plus the leader's first no-op at most
    assert leader.last_index - before in (3, 4)
    got = _q(sim, "SELECT * FROM people ORDER BY rowid")
    assert list(got["name"].astype(object).where(got["name"].notna(), None)) == ["ada", "alan", None]
    assert list(got["age"].astype(object).where(got["age"].notna(), None)) == [36, 41, None]
    assert got["score"][0] == 9.5 and got["score"].isna()[1]
    assert list(got["member"]) == [1, 0, 1]
    assert got["joined"][1] == "2024-03-04 05:06:07" and got["joined"].isna()[2]
    assert got["photo"][0] == b"\x00\x01"
    decl = _q(sim, "SELECT sql FROM sqlite_master WHERE name = 'people'")
    assert "\"age\" INTEGER" in decl["sql"][0] and "\"photo\" BLOB" in decl["sql"][0]
    # --persist refuses an existing table; --append adds to it, under another name too
    assert "already exists" in run(sim, "%ddb --persist people").out
    ns["more"] = _frame().iloc[:1]
    assert "appended to people: 1 rows of more" in run(sim, "%ddb --append more people").out
    assert _q(sim, "SELECT count(*) AS n FROM people")["n"][0] == 4


def test_persist_usage_errors(sim):
    sim.user_ns["notaframe"] = 3
    assert "not a pandas DataFrame" in run(sim, "%ddb --persist notaframe").out
    assert "not defined" in run(sim, "%ddb --persist nothere").out
    sim.user_ns["df"] = pd.DataFrame({"a": [1]})
    assert "not a table name" in run(sim, "%ddb --persist df bad-name").out


def test_chunks_stay_below_the_parameter_limit():
    df = pd.DataFrame({f"c{i}": range(50) for i in range(1000)})
    parts = list(chunks("wide", df))
    assert all(len(params) <= 30_000 for _, params in parts)
    assert sum(len(p) for _, p in parts) == 50 * 1000


def test_save_and_with_compose_queries_as_ctes(sim, tmp_path):
    run(sim, "%%ddb\nCREATE TABLE n(x INTEGER);\nINSERT INTO n VALUES (1), (2), (3), (4), (5), (6)")
    r = run(sim, "%%ddb --save evens --no-execute\nSELECT x FROM n WHERE x % 2 = 0")
    assert "saved 'evens'" in r.out
    r = run(sim, "%%ddb --save big --with evens\nSELECT x FROM evens WHERE x > 2")
    assert "4" in r.out and "6" in r.out
    got = run(sim, "%%ddb --with big\ny << SELECT sum(x) AS s FROM big")
    assert got.error is None and sim.user_ns["y"]["s"][0] == 10
    # a query with CTEs of its own gets one WITH clause
    run(sim, "%%ddb --with evens\nz << WITH t AS (SELECT 100 AS x) SELECT count(*) AS c FROM evens, t")
    assert sim.user_ns["z"]["c"][0] == 3
    assert "no saved query named 'nope'" in run(sim, "%%ddb --with nope\nSELECT 1").out
    f = tmp_path / "q.sql"
    f.write_text("-- a query in a file\nSELECT max(x) AS m FROM n;\n")
    run(sim, f"%%ddb --file {f}\nw <<")
    assert sim.user_ns["w"]["m"][0] == 6
    assert "--file" in run(sim, f"%ddb --file {tmp_path / 'missing.sql'}").out


def test_plots_are_computed_in_the_cluster(sim):
    run(sim, "%%ddb\nCREATE TABLE m(v REAL, c TEXT);\n"
             "INSERT INTO m WITH RECURSIVE r(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM r WHERE i < 100) "
             "SELECT i, CASE WHEN i % 3 = 0 THEN 'x' ELSE 'y' END FROM r;\n"
             "INSERT INTO m VALUES (1000, 'z')")
    ax = run(sim, "%ddb_plot hist v --table m --bins 5 --where 'v <= 100'").value
    assert "histogram of v in m" in ax.get_title()
    import numpy as np
    values = np.arange(1, 101)
    expected, _ = np.histogram(values, bins=5)
    stairs = ax.patches[0]
    assert list(stairs.get_data().values) == list(expected)
    ax = run(sim, "%ddb_plot box v --table m").value
    vals = sorted(list(range(1, 101)) + [1000])
    q1, med, q3 = np.percentile(vals, [25, 50, 75])
    flat = [list(ln.get_ydata()) for ln in ax.lines if len(ln.get_ydata()) == 2]
    assert any(math.isclose(y[0], med) and math.isclose(y[1], med) for y in flat)     # median
    assert any(math.isclose(y[0], q1) for y in flat) and any(math.isclose(y[0], q3) for y in flat)
    fliers = [ln for ln in ax.lines if len(ln.get_ydata()) and 1000 in list(ln.get_ydata())]
    assert fliers, "1000 is an outlier"
    ax = run(sim, "%ddb_plot bar c --table m").value
    assert [t.get_text() for t in ax.get_xticklabels()] == ["y", "x", "z"]
    assert [p.get_height() for p in ax.patches] == [67, 33, 1]
    assert "usage" in run(sim, "%ddb_plot pie v --table m").out
    assert "not a plain column" in run(sim, "%ddb_plot hist 'v; DROP' --table m").out


def test_config_autopandas_and_displaylimit(sim):
    run(sim, "%%ddb\nCREATE TABLE a(x);\nINSERT INTO a VALUES (1), (2), (3)")
    shown = run(sim, "%%ddb\nSELECT x FROM a")
    assert shown.value is None and "3 rows" in shown.out
    run(sim, "%config DdbMagic.autopandas = True")
    got = run(sim, "%%ddb\nSELECT x FROM a")
    assert isinstance(got.value, pd.DataFrame) and list(got.value["x"]) == [1, 2, 3]
    run(sim, "%config DdbMagic.autopandas = False")
    run(sim, "%config DdbMagic.displaylimit = 1")
    try:
        out = run(sim, "%%ddb\nSELECT x FROM a").out
        assert "first 1 of 3 rows" in out or "1 of 3" in out, out
    finally:
        run(sim, "%config DdbMagic.displaylimit = 10")
