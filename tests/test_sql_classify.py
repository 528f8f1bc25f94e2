"""Classification before proposing: SQLite's own judgement, clear refusals, nothing executed."""
import apsw
import pytest

from ddb_node.sql import BadRequest, Request, Statement, StateMachine, classify
from ddb_node.sql.split import split_sql

from tests.sqlhelpers import apply_one


@pytest.fixture
def schema():
    c = apsw.Connection(":memory:")
    c.execute("CREATE TABLE t(a INTEGER, b TEXT)")
    return c


@pytest.mark.parametrize("sql, kind", [
    ("SELECT * FROM t", "read"),
    ("WITH x AS (SELECT 1) SELECT * FROM x", "read"),
    ("EXPLAIN SELECT * FROM t", "read"),
    ("PRAGMA table_info(t)", "read"),
    ("PRAGMA user_version", "read"),
    ("INSERT INTO t VALUES(1, 'x')", "write"),
    ("  /* comment */ update t SET a = 2", "write"),
    ("DELETE FROM t", "write"),
    ("PRAGMA user_version = 5", "write"),
    ("CREATE TABLE u(x)", "ddl"),
    ("CREATE INDEX ti ON t(a)", "ddl"),
    ("ALTER TABLE t ADD COLUMN c", "ddl"),
    ("DROP TABLE t", "ddl"),
])
def test_statement_kinds(schema, sql, kind):
    c = classify(Request([sql]), schema)
    assert c.kinds == [kind]
    assert c.kind == ("read" if kind == "read" else "write")


def test_a_request_is_a_write_if_any_statement_writes(schema):
    c = classify(Request(["SELECT 1", "INSERT INTO t VALUES(1, 'a')"]), schema)
    assert (c.kind, c.kinds) == ("write", ["read", "write"])


def test_strong_reads_go_through_the_log_and_others_do_not(schema):
    assert classify(Request(["SELECT 1"], level="strong"), schema).logged
    assert not classify(Request(["SELECT 1"], level="weak"), schema).logged


def test_classification_never_executes(schema):
    classify(Request(["INSERT INTO t VALUES(1, 'x')", "DROP TABLE t"]), schema)
    assert schema.execute("SELECT count(*) FROM t").fetchall() == [(0,)]


@pytest.mark.parametrize("sql, message", [
    ("SELEC 1", "syntax error"),
    ("SELECT 'unterminated", "unrecognized token"),
    ("SELECT (1", "incomplete input"),
    ("BEGIN", "transaction=True"),
    ("COMMIT", "transaction=True"),
    ("ROLLBACK", "transaction=True"),
    ("SAVEPOINT s", "transaction=True"),
    ("RELEASE s", "transaction=True"),
    ("ATTACH 'other.db' AS o", "ATTACH is not allowed"),
    ("DETACH o", "DETACH is not allowed"),
    ("SELECT load_extension('x')", "load_extension"),
    ("VACUUM", "VACUUM is not allowed"),
    ("VACUUM INTO '/tmp/copy.db'", "VACUUM is not allowed"),
    ("PRAGMA journal_mode = DELETE", "journal_mode controls the node"),
    ("PRAGMA synchronous = OFF", "synchronous controls the node"),
    ("PRAGMA locking_mode = EXCLUSIVE", "locking_mode controls the node"),
    ("PRAGMA wal_checkpoint", "wal_checkpoint controls the node"),
    ("PRAGMA wal_autocheckpoint = 10", "wal_autocheckpoint controls the node"),
    ("PRAGMA foreign_keys = ON", "connection state"),
    ("CREATE TEMP TABLE x(a)", "TEMP tables"),
    ("CREATE TEMPORARY VIEW v AS SELECT 1", "TEMP tables"),
    ("INSERT INTO _ddb_applied VALUES (1, 1, 1)", "reserved"),
    ("SELECT 1; BEGIN", "statement 0: transaction control"),
])
def test_refused_with_a_clear_message(sql, message):
    sm = StateMachine(":memory:")      # its schema holds ddb's own tables
    sm.apply_batch([])
    with pytest.raises(BadRequest, match=message):
        sm.classify(Request([sql]))


def test_refusal_names_the_statement(schema):
    with pytest.raises(BadRequest, match="statement 1: near"):
        classify(Request(["SELECT 1", "SELEKT 2"]), schema)


def test_alter_then_insert_against_the_old_schema_is_decided_at_apply():
    sm = StateMachine(":memory:")
    apply_one(sm, "CREATE TABLE t(a)")
    # column b does not exist yet: the leader cannot tell, so it defers instead of refusing
    c = sm.classify(Request(["ALTER TABLE t ADD COLUMN b", "INSERT INTO t(a, b) VALUES (1, 2)"]))
    assert c.kind == "write" and c.statements[1].deferred == "table t has no column named b"
    er = apply_one(sm, "ALTER TABLE t ADD COLUMN b", "INSERT INTO t(a, b) VALUES (1, 2)")
    assert [r.error for r in er.results] == [None, None]
    # and the other order fails identically on every replica, at apply
    c = sm.classify(Request(["INSERT INTO t(a, c) VALUES (1, 2)", "ALTER TABLE t ADD COLUMN c"]))
    er = apply_one(sm, "INSERT INTO t(a, c) VALUES (1, 2)", "ALTER TABLE t ADD COLUMN c")
    assert er.results[0].error == "table t has no column named c" and er.results[1].error is None


def test_statements_are_split_by_sqlite_rules():
    sql = ("INSERT INTO t VALUES('a;b'); -- c;\n"
           "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u VALUES(1); DELETE FROM v; END;"
           "/* ; */ SELECT \"x;y\" FROM [t;]")
    assert split_sql(sql) == ["INSERT INTO t VALUES('a;b');",
                              " -- c;\nCREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u VALUES(1); "
                              "DELETE FROM v; END;",
                              "/* ; */ SELECT \"x;y\" FROM [t;]"]
    assert split_sql(" ;; -- nothing\n") == []


def test_multi_statement_string_classified_per_statement(schema):
    c = classify(Request(["SELECT 1; INSERT INTO t VALUES (1, 'x'); CREATE TABLE z(a)"]), schema)
    assert c.kinds == ["read", "write", "ddl"]
    assert [s.statement for s in c.statements] == [0, 0, 0]


def test_empty_statement_is_refused(schema):
    with pytest.raises(BadRequest, match="empty"):
        classify(Request(["  -- nothing"]), schema)


def test_the_state_machine_prepares_a_statement_text_once_per_schema():
    """Classifying the same text again is answered from the PrepareCache (the profile of
    small reads: preparing was 15 % of a node's CPU) -- until the schema changes, after
    which the text is judged again against the new schema."""
    sm = StateMachine(":memory:")
    try:
        apply_one(sm, "CREATE TABLE t(a)")
        q = Request([Statement("SELECT a FROM t")])
        assert sm.classify(q).kinds == ["read"]
        assert sm.classify(q).kinds == ["read"]
        assert list(sm._prepared.entries) == ["SELECT a FROM t"]
        apply_one(sm, "DROP TABLE t")
        again = sm.classify(q)           # no such table now: left for apply, as a write
        assert again.kinds == ["write"] and "no such table" in again.statements[0].deferred
        apply_one(sm, "CREATE VIEW t AS SELECT 1 AS a")
        assert sm.classify(q).kinds == ["read"]
        for _ in range(2):               # refusals are judged on every request, cached or not
            with pytest.raises(BadRequest, match="ATTACH"):
                sm.classify(Request([Statement("ATTACH 'x.db' AS x")]))
        assert "ATTACH 'x.db' AS x" in sm._prepared.entries
    finally:
        sm.close()


def test_a_repeated_text_is_judged_once_per_schema_refusals_included():
    """classify keeps its whole verdict per (text, strong): a repeated text neither prepares
    nor runs the policy again, and is judged afresh after any DDL."""
    sm = StateMachine(":memory:")
    try:
        apply_one(sm, "CREATE TABLE t(a)")
        q = Request([Statement("SELECT a FROM t; SELECT 1")])
        first = sm.classify(q)
        assert [s.sql.strip() for s in first.statements] == ["SELECT a FROM t;", "SELECT 1"]
        assert ("SELECT a FROM t; SELECT 1", False) in sm._prepared.judged
        sm._prepared.entries.clear()          # a verdict hit needs no prepare answer
        assert sm.classify(q).kinds == ["read", "read"]
        assert sm._prepared.entries == {}
        for _ in range(2):
            with pytest.raises(BadRequest, match="statement 0: .*ATTACH") as e:
                sm.classify(Request([Statement("ATTACH 'x.db' AS x")]))
            assert e.value.statement == 0
        apply_one(sm, "DROP TABLE t")
        assert sm.classify(q).kinds == ["write", "read"]   # no such table t: for apply
        assert ("ATTACH 'x.db' AS x", False) not in sm._prepared.judged   # the DDL emptied it
    finally:
        sm.close()


def test_a_statement_that_does_not_prepare_is_judged_again_each_time():
    sm = StateMachine(":memory:")
    try:
        q = Request([Statement("INSERT INTO later VALUES (1)")])
        assert sm.classify(q).statements[0].deferred
        assert sm._prepared.judged == {}
        apply_one(sm, "CREATE TABLE later(a)")
        assert sm.classify(q).statements[0].deferred is None
    finally:
        sm.close()


def test_alter_table_renames_and_column_changes_are_replicated_writes():
    """ALTER TABLE ... RENAME (table or column), ADD and DROP COLUMN work as in rqlite. A
    rename rewrites sqlite_temp_master's triggers that name the table (the authorizer sees an
    UPDATE of the temp schema); TEMP objects stay refused, and SQLite itself refuses a direct
    write to sqlite_temp_master."""
    sm = StateMachine(":memory:")
    try:
        for sql in ["CREATE TABLE t(a, b)", "INSERT INTO t VALUES (1, 2)"]:
            assert apply_one(sm, sql).results[0].error is None
        for sql in ["ALTER TABLE t RENAME TO u", "ALTER TABLE u RENAME COLUMN a TO c",
                    "ALTER TABLE u ADD COLUMN d DEFAULT 4", "ALTER TABLE u DROP COLUMN b"]:
            assert sm.classify(Request([Statement(sql)])).kinds == ["ddl"]
            assert apply_one(sm, sql).results[0].error is None, sql
        (r,) = sm.query(Request([Statement("SELECT * FROM u")]))
        assert (r.columns, r.values) == (["c", "d"], [[1], [4]])
        err = apply_one(sm, "UPDATE sqlite_temp_master SET sql = 'x'").results[0].error
        assert "may not be modified" in err
        with pytest.raises(BadRequest, match="TEMP"):
            sm.classify(Request([Statement("CREATE TEMP TABLE x(a)")]))
    finally:
        sm.close()


def test_classifying_a_new_text_leaves_the_write_connections_prepared_statements_cached(tmp_path):
    """The state machine's standing authorizer records classify's actions: swapping in a
    recording authorizer (as for a connection without an owner) would expire every prepared
    statement of the write connection, and apply would prepare its INSERT again."""
    sm = StateMachine(str(tmp_path / "db"))
    try:
        apply_one(sm, "CREATE TABLE t(a)")
        apply_one(sm, "INSERT INTO t VALUES (1)")
        seen = []
        inner = sm._authorize
        sm._conn.authorizer = lambda *a: (seen.append(a), inner(*a))[1]
        apply_one(sm, "INSERT INTO t VALUES (1)")        # prepared once for this authorizer
        for i in range(3):
            q = Request([Statement(f"SELECT a FROM t WHERE a = {i}")])
            assert sm.classify(q).kinds == ["read"]
        seen.clear()
        apply_one(sm, "INSERT INTO t VALUES (1)")
        assert not [a for a in seen if a[1] == "t"]      # the cached INSERT ran as it was
        with pytest.raises(BadRequest, match="ATTACH"):  # refusals are still judged
            sm.classify(Request([Statement("ATTACH 'y.db' AS y")]))
    finally:
        sm.close()
