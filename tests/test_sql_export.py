"""The state machine's copies and a load's dump statements, by SQLite's judgement (issue 15:
SQLite work only through the StateMachine, never by string prefixes)."""
from __future__ import annotations

import threading

import apsw
import pytest

from ddb_node.sql import StateMachine
from ddb_node.sql.classify import is_dump_control

from tests.sqlhelpers import Log, apply_one


@pytest.mark.parametrize("sql", ["BEGIN TRANSACTION;", "begin", "BEGIN IMMEDIATE", "COMMIT;",
                                 "END", "END TRANSACTION", "ROLLBACK", "SAVEPOINT a",
                                 "RELEASE a", "PRAGMA foreign_keys=OFF;",
                                 "PRAGMA foreign_keys = OFF", "PRAGMA writable_schema=ON",
                                 "/* a dump's comment */ BEGIN", "-- note\nCOMMIT"])
def test_a_dumps_transaction_control_and_pragmas_are_recognised(sql):
    assert is_dump_control(sql)


@pytest.mark.parametrize("sql", ["CREATE TABLE t(a)", "INSERT INTO t VALUES('BEGIN')",
                                 "CREATE TABLE \"BEGIN\"(a)", "PRAGMA user_version=3",
                                 "CREATE INDEX i ON t(a)", "not sql at all"])
def test_everything_else_of_a_dump_is_kept(sql):
    assert not is_dump_control(sql)


def _tables(path):
    c = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
    try:
        return sorted(r[0] for r in c.execute("SELECT name FROM sqlite_schema WHERE type='table'"))
    finally:
        c.close()


def test_export_copy_is_the_state_it_began_at_without_ddbs_tables(tmp_path):
    sm = StateMachine(str(tmp_path / "db"))
    log = Log()
    log.add("CREATE TABLE t(a)")
    for i in range(500):
        log.add(f"INSERT INTO t VALUES ({i})")
    sm.apply_batch(log.entries)
    index = sm.export_copy(str(tmp_path / "copy.db"))
    assert index == sm.applied_index
    assert _tables(str(tmp_path / "copy.db")) == ["t"]
    c = apsw.Connection(str(tmp_path / "copy.db"))
    assert c.execute("SELECT count(*), sum(a) FROM t").fetchall() == [(500, sum(range(500)))]
    c.close()
    sm.close()


def test_export_copy_on_a_thread_while_the_state_machine_keeps_applying(tmp_path):
    sm = StateMachine(str(tmp_path / "db"))
    log = Log()
    log.add("CREATE TABLE t(a, pad)")
    log.add("WITH RECURSIVE n(v) AS (SELECT 1 UNION ALL SELECT v + 1 FROM n WHERE v < 20000) "
            "INSERT INTO t SELECT v, zeroblob(500) FROM n")
    sm.apply_batch(log.entries)
    done = {}
    th = threading.Thread(target=lambda: done.setdefault("index", sm.export_copy(
        str(tmp_path / "copy.db"))))
    th.start()
    start = sm.applied_index
    for i in range(50):                     # writes go on meanwhile
        assert apply_one(sm, f"INSERT INTO t VALUES ({-i}, NULL)").results[0].error is None
    th.join(60)
    index = done["index"]
    assert start <= index <= sm.applied_index
    c = apsw.Connection(str(tmp_path / "copy.db"))
    n = c.execute("SELECT count(*) FROM t").fetchall()[0][0]
    c.close()
    assert n == 20000 + (index - start)      # exactly the state at the index it reports
    sm.close()


def test_export_copy_of_a_memory_database(tmp_path):
    sm = StateMachine(":memory:")
    log = Log()
    log.add("CREATE TABLE m(a)")
    log.add("INSERT INTO m VALUES (1)")
    sm.apply_batch(log.entries)
    sm.export_copy(str(tmp_path / "copy.db"))
    assert _tables(str(tmp_path / "copy.db")) == ["m"]
