"""%ddb / %%ddb and the fault magics on a real 3-node LocalCluster, through IPython."""
from __future__ import annotations

import os

import pandas as pd
import pytest

from ddb_magic import magics_of
from ddb_magic.picture import ClusterPicture

from tests.magic_helpers import run, shell


@pytest.fixture(scope="module")
def cluster_t():
    s = shell()
    r = run(s, "%ddb launch -n 3 --name t")
    assert "cluster 't': 3 nodes" in r.out, r.out
    yield s
    run(s, "%ddb stop --all")


@pytest.fixture
def sh(cluster_t):
    """The shell with cluster 't' (shared by the module), as every test expects to find it:
    the default cluster, the default read level, whatever the test before it did."""
    magics_of(cluster_t).current = "t"
    run(cluster_t, "%ddb level weak")
    yield cluster_t


@pytest.fixture
def people(sh):
    """A fresh `people` table: ada (36, 9.5) and alan (41, no score)."""
    r = run(sh, """%%ddb
DROP TABLE IF EXISTS people;
CREATE TABLE people(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER, score REAL, photo BLOB);
INSERT INTO people(name, age, score) VALUES ('ada', 36, 9.5), ('alan', 41, NULL)""")
    assert "2 rows affected" in r.out, r.out


@pytest.fixture
def nums(sh):
    """A fresh `nums` table: n = 1..25."""
    r = run(sh, "%%ddb\nDROP TABLE IF EXISTS nums;\nCREATE TABLE nums(n INTEGER);\n"
                "INSERT INTO nums WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 25) "
                "SELECT x FROM c")
    assert "25 rows affected" in r.out, r.out


def test_load_twice_is_silent(sh):
    assert run(sh, "%load_ext ddb_magic").out == ""
    assert run(sh, "%load_ext ddb_magic").out == ""


def test_every_statement_is_shown_with_a_caption(sh):
    r = run(sh, """%%ddb
CREATE TABLE crew(id INTEGER PRIMARY KEY, name TEXT NOT NULL, age INTEGER);
INSERT INTO crew(name, age) VALUES ('ada', 36), ('alan', 41);
SELECT name, age FROM crew ORDER BY id""")
    assert not r.error
    lines = r.out.splitlines()
    assert "0 rows affected" in lines[0] and "index" in lines[0] and "weak" in lines[0]
    assert "2 rows affected" in r.out and "last insert id 2" in r.out
    assert "2 rows" in r.out and "ada" in r.out and "alan" in r.out


def test_typed_dataframes_and_capture(sh, people):
    run(sh, "%%ddb\nINSERT INTO people(name, age, photo) VALUES ('big', 9223372036854775807, x'00ff')")
    r = run(sh, "%%ddb df <<\nSELECT * FROM people ORDER BY id")
    assert r.out == ""                        # `VAR <<` stores without showing
    df = sh.user_ns["df"]
    assert isinstance(df, pd.DataFrame)
    assert str(df.dtypes["age"]) == "Int64" and str(df.dtypes["score"]) == "Float64"
    assert str(df.dtypes["name"]) == "string" and df.dtypes["photo"] == object
    assert int(df["age"].iloc[2]) == 2 ** 63 - 1        # exact 64-bit integer
    assert df["photo"].iloc[2] == b"\x00\xff"
    assert pd.isna(df["score"].iloc[1])
    r = run(sh, "%%ddb shown= <<\nSELECT id FROM people WHERE id = 1")
    assert "1 row" in r.out and isinstance(sh.user_ns["shown"], pd.DataFrame)


def test_empty_result_keeps_columns_and_dtypes(sh, people):
    run(sh, "%%ddb empty <<\nSELECT id, name, score FROM people WHERE 0")
    e = sh.user_ns["empty"]
    assert list(e.columns) == ["id", "name", "score"] and len(e) == 0
    assert [str(t) for t in e.dtypes] == ["Int64", "string", "Float64"]


def test_affinity_violations_are_flagged(sh, people):
    run(sh, "%%ddb\nINSERT INTO people(name, age) VALUES ('odd', 'forty')")
    r = run(sh, "%%ddb v= <<\nSELECT name, age FROM people WHERE name = 'odd'")
    assert "break their column's affinity" in r.out and "age (INTEGER): 1 text" in r.out
    v = sh.user_ns["v"]
    assert v.attrs["violations"][0]["name"] == "age"
    html = sh.user_ns["_ddb"].outputs[0]._repr_html_()
    assert 'class="ddb-bad"' in html


def test_line_form_returns_the_dataframe(sh, people):
    r = run(sh, "n = %ddb SELECT count(*) AS n FROM people")
    assert r.out == "" and int(sh.user_ns["n"]["n"].iloc[0]) == 2


def test_parameters_and_templates(sh, people):
    sh.user_ns.update(who="ada", table="people")
    r = run(sh, "%%ddb\nSELECT age FROM {{table}} WHERE name = :who")
    assert "36" in r.out


def test_display_limit_keeps_the_full_result(sh, nums):
    r = run(sh, "%%ddb all= <<\nSELECT n FROM nums")
    assert "showing 10 of 25 rows" in r.out
    assert len(sh.user_ns["all"]) == 25
    r = run(sh, "%%ddb --limit 3\nSELECT n FROM nums")
    assert "showing 3 of 25 rows" in r.out


def test_errors_are_one_line(sh, nums):
    r = run(sh, "%%ddb\nSELEC 1")
    assert not r.error and "Traceback" not in r.out
    assert r.out.strip() == 'ddb SQL error: `SELEC 1`: near "SELEC": syntax error'
    r = run(sh, "%%ddb\nSELECT 1;\nSELECT * FROM nope")
    assert "statement 2 `SELECT * FROM nope`: no such table: nope" in r.out
    assert "1 row" in r.out                   # the first statement's result is still shown
    r = run(sh, "%%ddb --transaction\nINSERT INTO nums VALUES (100);\nINSERT INTO nope VALUES (1)")
    assert "transaction rolled back" in r.out and "Traceback" not in r.out
    assert "0" == run(sh, "%ddb SELECT count(*) FROM nums WHERE n = 100").value.iloc[0, 0].__str__()
    r = run(sh, "%%ddb\nSELECT :undefined_thing")
    assert "parameter :undefined_thing is not defined" in r.out
    r = run(sh, "%%ddb --level sometimes\nSELECT 1")
    assert r.out.startswith("ddb usage: unknown level")


def test_bad_fault_arguments_give_usage(sh):
    for line, expect in [("%ddb_partition 1,2", "usage: %ddb_partition"),
                         ("%ddb_kill", "usage:"), ("%ddb_kill 9", "no node 9"),
                         ("%ddb_drop lots", "bad rate"), ("%ddb_delay -5", "usage"),
                         ("%ddb frobnicate", "")]:
        r = run(sh, line)
        assert not r.error, line
        assert "Traceback" not in r.out, (line, r.out)
        assert expect in r.out, (line, r.out)


def test_status_picture(sh):
    r = run(sh, "%ddb status")
    pic = r.value
    assert isinstance(pic, ClusterPicture)
    html = pic._repr_html_()
    assert "<svg" in html and html.count('class="ddb-node ') == 3 and "\u2605" in html
    assert "timeline" in html
    assert "leader" in repr(pic) and "term" in repr(pic)


def test_levels_and_nodes(sh):
    r = run(sh, "%ddb level linearizable")
    assert "default level: linearizable" in r.out
    r = run(sh, "%%ddb\nSELECT 1 AS one")
    assert "linearizable" in r.out
    run(sh, "%ddb level weak")
    r = run(sh, "%ddb nodes")
    assert list(r.value["node"]) == [1, 2, 3]


def test_partition_the_leader_then_heal(sh):
    m = magics_of(sh)
    b = m.clusters["t"]
    old = b.leader()
    run(sh, "%%ddb\nCREATE TABLE log(msg TEXT)")
    r = run(sh, f"%ddb_partition --isolate {old}")
    assert f"isolate n{old}" in r.out and "cut" in r.out
    r = run(sh, f"%%ddb --node {old} --timeout 2\nINSERT INTO log VALUES ('minority')")
    assert "no quorum" in r.out and "Traceback" not in r.out, r.out
    r = run(sh, f"%ddb wait leader --not {old}")
    assert "leads" in r.out
    r = run(sh, "%%ddb --timeout 15\nINSERT INTO log VALUES ('majority')")
    assert "1 row affected" in r.out, r.out
    r = run(sh, f"%%ddb --node {old} --level none\nSELECT * FROM log")
    assert "majority" not in r.out            # a stale read on the cut-off node
    r = run(sh, f"%%ddb --node {old} --level linearizable --timeout 2\nSELECT * FROM log")
    assert "ddb " in r.out and "majority" not in r.out
    r = run(sh, "%ddb_heal")
    assert "heal" in r.out
    run(sh, "%ddb wait quiet")
    r = run(sh, f"%%ddb --node {old} --level none\nSELECT * FROM log")
    assert "majority" in r.out and "minority" not in r.out
    assert any("became leader" in t for _, t in b.timeline.events)


def test_kill_pause_restart_elect_drop_delay(sh):
    r = run(sh, "%ddb_kill 1")
    assert "n1  killed" in r.out
    r = run(sh, "%ddb_restart 1")
    assert "restart n1" in r.out
    r = run(sh, "%ddb_pause 2")
    assert "n2  paused" in r.out
    run(sh, "%ddb_resume 2")
    run(sh, "%ddb wait quiet")
    r = run(sh, "%ddb_elect 3")
    assert "leadership to n3" in r.out
    r = run(sh, "%ddb_drop 20% --link 1-2")
    assert "1-2 drop 20%" in r.out
    r = run(sh, "%ddb_delay 30 --jitter 5")
    assert "+30ms ±5" in r.out
    r = run(sh, "%ddb_heal")
    assert "links:" not in r.out


def test_map_reduce(sh, nums):
    r = run(sh, "%%ddb --map-reduce\nSELECT count(*) AS c, sum(n) AS s FROM nums "
                "WHERE rowid % :ddb_parts = :ddb_part;\nSELECT sum(c) AS c, sum(s) AS s FROM map")
    assert "325" in r.out and "25" in r.out, r.out


def test_named_clusters(sh):
    r = run(sh, "%ddb launch -n 1 --name solo")
    assert "cluster 'solo': 1 nodes" in r.out
    run(sh, "%%ddb\nCREATE TABLE only_here(x)")
    r = run(sh, "%%ddb --name t\nSELECT * FROM only_here")
    assert "no such table" in r.out            # --name picks the other cluster...
    r = run(sh, "%%ddb\nSELECT count(*) FROM only_here")
    assert "no such table" in r.out            # ...and becomes the default: the last one used
    r = run(sh, "%%ddb --name solo\nSELECT count(*) FROM only_here")
    assert "1 row" in r.out, r.out
    r = run(sh, "%ddb list")
    assert "solo" in r.out and "t:" in r.out
    solo = magics_of(sh).clusters["solo"].cluster
    run(sh, "%ddb stop --name solo")
    assert not os.path.exists(solo.data_dir)
    assert all(n.proc.poll() is not None for n in solo.nodes.values())


def test_membership(sh):
    r = run(sh, "%ddb add-node --name t")
    assert "node 4 added" in r.out, r.out
    r = run(sh, "%ddb remove-node 4")
    assert "remove n4" in r.out
