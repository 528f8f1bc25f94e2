"""%ddb_watch: one output following a table's changes, on a simulated and on a launched cluster."""
from __future__ import annotations

from ddb_magic import magics_of

from tests.magic_helpers import run, shell


def test_on_the_simulator_each_change_shows_the_nodes_that_applied_it_as_the_cluster_steps():
    sh = shell()
    for cell in ("%ddb launch --sim -n 3 --seed 3 --name w", "%ddb_run_until leader",
                 "%%ddb\nCREATE TABLE orders(id INTEGER PRIMARY KEY, item TEXT)",
                 "%ddb_watch orders"):
        assert run(sh, cell).error is None
    watch = magics_of(sh).watches[("w", "orders")]
    assert watch.view.lines() == []
    run(sh, "%%ddb --no-wait\nINSERT INTO orders(item) VALUES ('tea')")
    run(sh, "%ddb_run_until commit")
    (index, op, key, text, where), = watch.view.lines()
    assert (op, key, text) == ("insert", "1", "id=1, item=tea")
    assert where.split().count("\u00b7") >= 1          # committed on the leader, not yet everywhere
    run(sh, "%ddb_run_until quiet")
    assert watch.view.lines()[0][4] == "n1 n2 n3"
    run(sh, "%%ddb\nUPDATE orders SET item = 'coffee' WHERE id = 1")
    run(sh, "%%ddb\nDELETE FROM orders")
    run(sh, "%ddb_run_until quiet")
    assert dict(watch.view.counts) == {"insert": 1, "update": 1, "delete": 1}
    assert "tea \u2192 coffee" in repr(watch.view) and "orders: 3 changes" in repr(watch.view)
    run(sh, "%ddb_watch --stop")
    assert not magics_of(sh).watches
    run(sh, "%ddb stop --name w")


def test_on_a_launched_cluster_the_watch_follows_writes_from_other_cells():
    sh = shell()
    assert run(sh, "%ddb launch -n 1 --name live").error is None
    try:
        run(sh, "%%ddb\nCREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        run(sh, "%%ddb\nINSERT INTO t(v) VALUES ('before')")
        assert run(sh, "%ddb_watch t").error is None         # from now on
        watch = magics_of(sh).watches[("live", "t")]
        run(sh, "%%ddb\nINSERT INTO t(v) VALUES ('a')")
        run(sh, "%%ddb\nUPDATE t SET v = 'b' WHERE v = 'a'")
        assert watch.wait_for(2)
        assert [line[1] for line in watch.view.lines()] == ["insert", "update"]
        assert "before" not in repr(watch.view)
    finally:
        run(sh, "%ddb_watch --stop")
        run(sh, "%ddb stop --name live")


def test_watch_needs_a_table():
    sh = shell()
    run(sh, "%ddb launch --sim -n 1 --seed 1 --name x")
    assert "name the table" in run(sh, "%ddb_watch").out
    run(sh, "%ddb stop --name x")
