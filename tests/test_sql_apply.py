"""Apply: exactly-once, group apply, rqlite's transaction semantics, read path, limits."""
import os

import time

import apsw
import pytest

from ddb_node.sql import Limits, Request, Statement, StateMachine, compaction_bound, encode_entry

from tests.sqlhelpers import Log, apply_one, req, rows


@pytest.fixture
def sm():
    m = StateMachine(":memory:")
    apply_one(m, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    yield m
    m.close()


# ---------------------------------------------------------------- exactly once
def test_applied_index_and_term_live_in_the_user_database(tmp_path):
    path = str(tmp_path / "db")
    sm = StateMachine(path)
    log = Log(term=3)
    log.add("CREATE TABLE t(a)")
    log.add("INSERT INTO t VALUES (1)")
    sm.apply_batch(log.entries)
    sm.close()
    sm = StateMachine(path)
    assert (sm.applied_index, sm.applied_term) == (2, 3)
    assert rows(sm, "SELECT idx, term FROM _ddb_applied") == [(2, 3)]


def test_entries_at_or_below_the_applied_index_are_skipped(sm):
    log = Log()
    log.add("CREATE TABLE t(a)")
    log.add("INSERT INTO x VALUES (1)")
    sm2 = StateMachine(":memory:")
    log2 = Log()
    log2.add("CREATE TABLE x(a)")
    for i in range(2, 5):
        log2.add(("INSERT INTO x VALUES (?)", [i]))
    first = sm2.apply_batch(log2.entries[:3])
    again = sm2.apply_batch(log2.entries)      # 1..3 again, then 4
    assert [r is None for r in again] == [True, True, True, False]
    assert first[2].index == 3 and again[3].index == 4
    assert rows(sm2, "SELECT a FROM x ORDER BY a") == [(2,), (3,), (4,)]
    assert sm2.apply_batch(log2.entries) == [None] * 4


def test_a_gap_in_the_indexes_is_refused_and_nothing_applied(sm):
    with pytest.raises(ValueError, match="consecutive"):
        sm.apply_batch([(2, 1, b""), (4, 1, b"")])
    assert sm.applied_index == 1


def test_empty_payloads_only_advance_the_applied_index(sm):
    assert sm.apply_batch([(2, 1, b""), (3, 2, b"")]) == [None, None]
    assert (sm.applied_index, sm.applied_term) == (3, 2)


def test_an_undecodable_payload_gives_an_entry_error_and_apply_goes_on(sm):
    good = encode_entry(req("INSERT INTO t(v) VALUES ('after')"), timestamp_ms=0, seed=0)
    out = sm.apply_batch([(2, 1, b"\x93garbage"), (3, 1, good)])
    assert out[0].error.startswith("undecodable entry payload") and out[0].results == []
    assert out[1].error is None and sm.applied_index == 3


def test_group_apply_returns_one_result_per_entry(sm):
    log = Log()
    log.add("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE)")
    for i in range(2, 12):
        log.add(("INSERT INTO t(v) VALUES (?)", [f"v{i}"]))
    s = StateMachine(":memory:")
    out = s.apply_batch(log.entries)
    assert [e.index for e in out] == list(range(1, 12))
    assert [e.results[0].last_insert_id for e in out[1:]] == list(range(1, 11))


# ---------------------------------------------------------------- transactions
def test_without_transaction_a_failing_statement_records_its_error_and_the_rest_run(sm):
    er = apply_one(sm, "INSERT INTO t(v) VALUES ('a')", "INSERT INTO t(v) VALUES ('a')",
                   "INSERT INTO t(v) VALUES ('b')")
    assert [r.error for r in er.results] == [None, "UNIQUE constraint failed: t.v", None]
    assert er.error is None
    assert rows(sm, "SELECT v FROM t ORDER BY v") == [("a",), ("b",)]


def test_with_transaction_all_or_nothing_and_results_stop_at_the_failure(sm):
    er = apply_one(sm, "INSERT INTO t(v) VALUES ('a')", "INSERT INTO t(v) VALUES ('a')",
                   "INSERT INTO t(v) VALUES ('b')", transaction=True)
    assert [r.error for r in er.results] == [None, "UNIQUE constraint failed: t.v"]
    assert er.error.startswith("transaction rolled back: statement 1 failed")
    assert rows(sm, "SELECT count(*) FROM t") == [(0,)]
    er = apply_one(sm, "INSERT INTO t(v) VALUES ('a')", "INSERT INTO t(v) VALUES ('b')", transaction=True)
    assert er.error is None and rows(sm, "SELECT count(*) FROM t") == [(2,)]


def test_a_failed_transaction_does_not_undo_other_entries_of_the_group(sm):
    log = Log()
    payloads = [
        encode_entry(req("INSERT INTO t(v) VALUES ('x')"), timestamp_ms=0, seed=1),
        encode_entry(req("INSERT INTO t(v) VALUES ('y')", "INSERT INTO t(v) VALUES ('x')", transaction=True),
                     timestamp_ms=0, seed=2),
        encode_entry(req("INSERT INTO t(v) VALUES ('z')"), timestamp_ms=0, seed=3),
    ]
    sm.apply_batch([(2 + i, 1, p) for i, p in enumerate(payloads)])
    assert rows(sm, "SELECT v FROM t ORDER BY v") == [("x",), ("z",)]


@pytest.mark.parametrize("sql", ["INSERT OR ROLLBACK INTO t(v) VALUES ('a')",
                                 "INSERT INTO t(v) VALUES ('boom')"])
def test_statements_that_roll_back_the_sqlite_transaction_only_fail_themselves(sm, sql):
    apply_one(sm, "CREATE TRIGGER boom BEFORE INSERT ON t WHEN NEW.v = 'boom' "
                  "BEGIN SELECT RAISE(ROLLBACK, 'no boom'); END")
    payloads = [encode_entry(req("INSERT INTO t(v) VALUES ('a')"), timestamp_ms=0, seed=1),
                encode_entry(req("INSERT INTO t(v) VALUES ('b')", sql, "INSERT INTO t(v) VALUES ('c')"),
                             timestamp_ms=0, seed=2)]
    out = sm.apply_batch([(3, 1, payloads[0]), (4, 1, payloads[1])])
    assert out[1].results[1].error in ("UNIQUE constraint failed: t.v", "no boom")
    assert [r.error for r in out[1].results][::2] == [None, None]
    assert rows(sm, "SELECT v FROM t ORDER BY v") == [("a",), ("b",), ("c",)]
    assert sm.applied_index == 4


def test_transaction_control_sneaked_into_the_log_fails_identically_at_apply(sm):
    er = apply_one(sm, "BEGIN", "INSERT INTO t(v) VALUES ('a')", "ATTACH ':memory:' AS x")
    assert er.results[0].error.startswith("not authorized: transaction control")
    assert er.results[1].error is None
    assert er.results[2].error.startswith("not authorized: ATTACH")


def test_multi_statement_strings_give_one_result_per_statement(sm):
    er = apply_one(sm, ("INSERT INTO t(v) VALUES (?); INSERT INTO t(v) VALUES (?); SELECT v FROM t ORDER BY v",
                        ["p", "q"]))
    assert [(r.statement, r.rows_affected) for r in er.results] == [(0, 1), (0, 1), (0, 0)]
    assert er.results[2].values == [["p", "q"]]


# ---------------------------------------------------------------- results
def test_results_are_column_oriented_with_types_and_affinities(sm):
    apply_one(sm, "CREATE TABLE r(i INT, f FLOATING POINT, s STRING, d DOUBLE, c VARCHAR(5), b BLOB, n, x DECIMAL)")
    apply_one(sm, ("INSERT INTO r VALUES (?, ?, ?, ?, ?, ?, ?, ?)", [1, 2, "3", 4, "five", b"\x06", 7, "8.5"]))
    (r,) = sm.query(req("SELECT *, i + 1 AS e FROM r"))
    assert r.columns == ["i", "f", "s", "d", "c", "b", "n", "x", "e"]
    assert r.decltypes == ["INT", "FLOATING POINT", "STRING", "DOUBLE", "VARCHAR(5)", "BLOB", None, "DECIMAL", None]
    assert r.affinities == ["INTEGER", "INTEGER", "NUMERIC", "REAL", "TEXT", "BLOB", "BLOB", "NUMERIC", "BLOB"]
    assert r.values == [[1], [2], [3], [4.0], ["five"], [b"\x06"], [7], [8.5], [2]]
    assert r.types_seen[-1] == ["integer"] and r.violations == []


def test_values_that_break_their_affinity_are_counted_not_coerced(sm):
    apply_one(sm, "CREATE TABLE v(n INTEGER, s TEXT)")
    apply_one(sm, "INSERT INTO v VALUES (1, 'a'), ('x', 'b'), ('y', x'02'), (NULL, NULL), (1.5, 2)")
    (r,) = sm.query(req("SELECT n, s FROM v"))
    # SQLite stored what its affinity allowed: 2 became '2' in the TEXT column, 'x' stayed text
    assert r.values == [[1, "x", "y", None, 1.5], ["a", "b", b"\x02", None, "2"]]
    assert r.violations == [
        {"column": 0, "name": "n", "decltype": "INTEGER", "affinity": "INTEGER", "storage_class": "real", "count": 1},
        {"column": 0, "name": "n", "decltype": "INTEGER", "affinity": "INTEGER", "storage_class": "text", "count": 2},
        {"column": 1, "name": "s", "decltype": "TEXT", "affinity": "TEXT", "storage_class": "blob", "count": 1},
    ]
    assert r.to_pandas().attrs["violations"] == r.violations


def test_write_results_report_rows_affected_and_last_insert_id(sm):
    er = apply_one(sm, "INSERT INTO t(v) VALUES ('a'), ('b')", "UPDATE t SET v = v || '!'", "SELECT 1")
    assert [(r.rows_affected, r.last_insert_id) for r in er.results] == [(2, 2), (2, 2), (0, None)]
    assert all(r.time >= 0 for r in er.results)


def test_to_pandas_keeps_exact_integers_nullable_types_and_empty_columns(sm):
    import pandas as pd
    apply_one(sm, "CREATE TABLE p(i INTEGER, r REAL, s TEXT, b BLOB)")
    apply_one(sm, ("INSERT INTO p VALUES (?, ?, ?, ?), (NULL, NULL, NULL, NULL)", [2 ** 53 + 1, 0.5, "s", b"b"]))
    df = sm.query(req("SELECT * FROM p"))[0].to_pandas()
    assert [str(t) for t in df.dtypes] == ["Int64", "Float64", "string", "object"]
    assert df["i"][0] == 2 ** 53 + 1 and df["i"][1] is pd.NA
    empty = sm.query(req("SELECT * FROM p WHERE 0"))[0]
    assert empty.columns == ["i", "r", "s", "b"] and empty.values == [[], [], [], []]
    df = empty.to_pandas()
    assert list(df.columns) == ["i", "r", "s", "b"] and len(df) == 0
    assert [str(t) for t in df.dtypes] == ["Int64", "Float64", "string", "object"]


def test_result_limits_mark_truncation(sm):
    apply_one(sm, "INSERT INTO t(v) VALUES ('a'), ('b'), ('c')")
    (r,) = sm.query(req("SELECT v FROM t ORDER BY v"), max_rows=2)
    assert r.values == [["a", "b"]] and r.truncated
    (r,) = sm.query(req("SELECT v FROM t ORDER BY v"), max_bytes=1)
    assert r.values == [["a"]] and r.truncated and r.to_dict()["truncated"]
    limited = StateMachine(":memory:", limits=Limits(max_result_rows=1))
    er = apply_one(limited, "SELECT 1 UNION ALL SELECT 2")
    assert er.results[0].values == [[1]] and er.results[0].truncated


# ---------------------------------------------------------------- read path
def test_a_file_database_is_read_through_its_own_read_only_connection(tmp_path):
    """query() on a file database uses a read-only connection of the state machine's: it
    sees every applied entry, refuses writes like the in-memory path, and -- unlike
    toggling PRAGMA query_only on the write connection, which expires every prepared
    statement -- leaves apply's prepared statements alone (the authorizer is not asked
    again for a cached INSERT after a read)."""
    sm = StateMachine(str(tmp_path / "db"))
    try:
        apply_one(sm, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
        apply_one(sm, "INSERT INTO t(v) VALUES ('a')")
        assert rows(sm, "SELECT count(*) FROM t") == [(1,)]
        (r,) = sm.query(req("INSERT INTO t(v) VALUES ('no')"))
        assert "readonly" in r.error and "write request" in r.error
        seen = []
        inner = sm._authorize
        sm._conn.authorizer = lambda *a: (seen.append(a), inner(*a))[1]
        apply_one(sm, "INSERT INTO t(v) VALUES ('x')")
        assert seen                                    # prepared once
        seen.clear()
        assert rows(sm, "SELECT count(*) FROM t") == [(2,)]
        apply_one(sm, "INSERT INTO t(v) VALUES ('x')")
        assert not [a for a in seen if a[1] == "t"]    # the cached INSERT was not re-prepared
        assert rows(sm, "SELECT count(*) FROM t") == [(3,)]
    finally:
        sm.close()


def test_query_is_read_only_and_says_so(sm):
    (r,) = sm.query(req("INSERT INTO t(v) VALUES ('no')"))
    assert "readonly" in r.error and "write request" in r.error
    assert rows(sm, "SELECT count(*) FROM t") == [(0,)]
    er = apply_one(sm, "INSERT INTO t(v) VALUES ('yes')")     # writes still apply afterwards
    assert er.results[0].error is None


def test_query_uses_real_time_and_randomness(sm):
    (r,) = sm.query(req("SELECT random(), randomblob(4), unixepoch()"))
    assert r.error is None and len(r.values[2]) == 1 and r.values[2][0] > 1_700_000_000


def test_query_timeout_interrupts(sm):
    (r,) = sm.query(Request(["WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) "
                             "SELECT count(*) FROM c"], timeout=0))
    assert r.error.startswith("interrupted")


# ---------------------------------------------------------------- compaction rule
def test_compaction_never_passes_the_durable_index(tmp_path):
    sm = StateMachine(str(tmp_path / "db"), sync="normal", checkpoint_pages=10 ** 9)
    log = Log()
    log.add("CREATE TABLE t(a)")
    sm.apply_batch(log.entries)
    durable_at_open = sm.durable_index
    for i in range(5):
        log.add(("INSERT INTO t VALUES (?)", [i]))
    sm.apply_batch(log.entries)
    assert sm.applied_index == 6
    assert durable_at_open <= sm.durable_index < sm.applied_index      # relaxed sync: not yet durable
    assert compaction_bound(6, sm.durable_index) == sm.durable_index
    assert sm.sync() == 6 and sm.durable_index == 6
    assert compaction_bound(6, sm.durable_index) == 6


def test_durable_index_follows_checkpoints_in_normal_mode(tmp_path):
    """The checkpoints run on the checkpointer's thread (sql/checkpointer.py), not inside
    apply: the durable index catches up with the applied one soon after, by itself."""
    sm = StateMachine(str(tmp_path / "db"), sync="normal", checkpoint_pages=1)
    log = Log()
    log.add("CREATE TABLE t(a)")
    log.add(("INSERT INTO t VALUES (?)", [1]))
    sm.apply_batch(log.entries)
    assert sm.applied_index == 2
    deadline = time.monotonic() + 10
    while sm.durable_index < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sm.durable_index == 2
    sm.close()


def test_an_open_reader_holds_the_background_checkpoint_back(tmp_path):
    """A checkpoint that cannot copy every frame (a reader still needs them) claims nothing."""
    path = str(tmp_path / "db")
    sm = StateMachine(path, sync="normal", checkpoint_pages=10 ** 9)
    log = Log()
    log.add("CREATE TABLE t(a)")
    sm.apply_batch(log.entries)
    before = sm.durable_index                                # 0: nothing checkpointed yet
    reader = apsw.Connection(path, vfs="unix")
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchall()      # pins the WAL as it is now
    log.add(("INSERT INTO t VALUES (?)", [1]))
    sm.apply_batch(log.entries)
    cp = sm._checkpointer
    done = cp.checkpoints + cp.incomplete
    sm.request_checkpoint()
    deadline = time.monotonic() + 10
    while cp.checkpoints + cp.incomplete == done and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cp.incomplete >= 1 and sm.durable_index == before < 2
    reader.execute("COMMIT")
    sm.request_checkpoint()
    while sm.durable_index < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sm.durable_index == 2
    reader.close()
    sm.close()


def test_full_sync_is_durable_at_every_batch(tmp_path):
    sm = StateMachine(str(tmp_path / "db"), sync="full", checkpoint_pages=10 ** 9)
    log = Log()
    log.add("CREATE TABLE t(a)")
    sm.apply_batch(log.entries)
    assert sm.durable_index == 1


def test_off_sync_is_durable_only_after_sync(tmp_path):
    sm = StateMachine(str(tmp_path / "db"), sync="off", checkpoint_pages=1)
    log = Log()
    log.add("CREATE TABLE t(a)")
    sm.apply_batch(log.entries)
    assert sm.durable_index == 0
    sm.sync()
    assert sm.durable_index == 1


def test_sync_waits_out_a_background_checkpoint_in_progress(tmp_path):
    """sync() and a snapshot image's TRUNCATE checkpoint are not refused as busy by the
    background PASSIVE checkpoint: they wait for it (CI once saw durable stay at 0)."""
    import threading
    sm = StateMachine(str(tmp_path / "db"), sync="off", checkpoint_pages=10 ** 9)
    log = Log()
    log.add("CREATE TABLE t(a)")
    sm.apply_batch(log.entries)
    cp = sm._checkpointer
    done = threading.Event()
    with cp.exclusive():                      # as if the thread's checkpoint were running
        worker = threading.Thread(target=lambda: (sm.sync(), done.set()))
        worker.start()
        assert not done.wait(0.2)             # sync waits for it ...
    worker.join(10)
    assert done.is_set() and sm.durable_index == 1    # ... and then completes
    sm.close()


def test_sync_and_images_race_background_checkpoints_without_losing_durability(tmp_path):
    sm = StateMachine(str(tmp_path / "db"), sync="normal", checkpoint_pages=1)
    log = Log()
    log.add("CREATE TABLE t(a)")
    for i in range(200):
        log.add(f"INSERT INTO t VALUES ({i})")
    for start in range(0, len(log.entries), 5):
        sm.apply_batch(log.entries[start:start + 5])   # each asks the thread to checkpoint
        if start % 20 == 0:
            assert sm.sync() == sm.applied_index
        else:
            img = sm.open_image()
            assert img.index == sm.applied_index
            img.close()
    sm.close()


def test_durable_index_survives_reopen(tmp_path):
    path = str(tmp_path / "db")
    sm = StateMachine(path, checkpoint_pages=10 ** 9)
    log = Log()
    log.add("CREATE TABLE t(a)")
    sm.apply_batch(log.entries)
    sm.close()
    assert StateMachine(path).durable_index == 1


def test_an_image_for_the_loop_never_waits_for_a_running_checkpoint(tmp_path):
    """open_image(wait=False) is what a leader's loop asks when a follower needs a snapshot:
    while the background checkpoint runs it says "not now" at once (SnapshotError; the core
    asks again at the next probe) instead of holding the loop for the checkpoint of a large
    database (3.5 s measured during a join at 10^7 rows)."""
    from ddb_node.sql.errors import SnapshotError
    sm = StateMachine(str(tmp_path / "db"), sync="normal", checkpoint_pages=10 ** 9)
    log = Log()
    log.add("CREATE TABLE t(a)")
    log.add("INSERT INTO t VALUES (1)")
    sm.apply_batch(log.entries)
    cp = sm._checkpointer
    with cp.exclusive():                      # as if the thread's checkpoint were running
        t = time.monotonic()
        with pytest.raises(SnapshotError, match="checkpoint is running"):
            sm.open_image(wait=False)
        assert time.monotonic() - t < 1.0
    img = sm.open_image(wait=False)          # a small WAL: copied inline, opened
    assert img.index == sm.applied_index == 2
    img.close()
    sm.close()


def test_an_image_for_the_loop_leaves_a_long_wal_to_the_background_checkpoint(tmp_path, monkeypatch):
    from ddb_node.sql.errors import SnapshotError
    sm = StateMachine(str(tmp_path / "db"), sync="normal", checkpoint_pages=400)
    log = Log()
    log.add("CREATE TABLE t(a)")
    sm.apply_batch(log.entries)
    cp = sm._checkpointer
    asked = []
    monkeypatch.setattr(cp, "backlog_pages", lambda path: 5_000)
    monkeypatch.setattr(cp, "request", lambda index: asked.append(index))
    with pytest.raises(SnapshotError, match="5000 WAL pages"):
        sm.open_image(wait=False)
    assert asked == [sm.applied_index]       # the checkpoint is left to the thread
    monkeypatch.undo()
    sm.close()


def test_the_wal_backlog_is_read_from_the_wal_index(tmp_path):
    """Frames in the WAL not yet copied into the database (mxFrame - nBackfill)."""
    from ddb_node.sql.checkpointer import Checkpointer
    path = str(tmp_path / "w.db")
    c = apsw.Connection(path)
    c.execute("PRAGMA journal_mode=WAL")
    c.execute("PRAGMA wal_autocheckpoint=0")
    c.execute("CREATE TABLE t(x)")
    for _ in range(40):
        c.execute("INSERT INTO t VALUES (randomblob(5000))")
    backlog = Checkpointer.backlog_pages(path)
    assert backlog > 40                      # two pages a row, and the table's
    c.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
    assert Checkpointer.backlog_pages(path) == 0
    c.execute("INSERT INTO t VALUES (randomblob(5000))")
    assert 0 < Checkpointer.backlog_pages(path) < backlog
    c.close()


def test_a_reader_never_serves_a_state_older_than_the_read_was_decided_at(tmp_path):
    """The shell runs a read the Replica decided at index i on a worker's read-only
    connection; a state older than i (a read transaction left open, say) would be a stale
    linearizable read. It is refused (StaleReader), never served."""
    from ddb_node.sql.reader import Reader, StaleReader
    path = str(tmp_path / "db")
    sm = StateMachine(path, sync="normal")
    log = Log()
    log.add("CREATE TABLE t(a)")
    log.add("INSERT INTO t VALUES (1)")
    sm.apply_batch(log.entries)
    r = Reader(path)
    results, index = r.read(req("SELECT a FROM t"), at_least=2)
    assert index == 2 and results[0].to_dict()["values"] == [[1]]
    with pytest.raises(StaleReader, match="saw index 2, older than the 3"):
        r.read(req("SELECT a FROM t"), at_least=3)
    assert r.read(req("SELECT a FROM t"))[1] == 2          # the connection is still usable
    r.close()
    sm.close()


def test_a_reader_whose_applied_index_cannot_be_read_leaves_no_transaction_open(tmp_path):
    """Reader._begin runs BEGIN and the applied-index SELECT in one call: when the SELECT
    fails after BEGIN succeeded, the read transaction is ended, not left open (an open one
    would pin the WAL and serve an old state to every later read)."""
    from ddb_node.sql.reader import Reader
    path = str(tmp_path / "db")
    raw = apsw.Connection(path)
    raw.execute("PRAGMA journal_mode=WAL").fetchall()
    raw.execute("CREATE TABLE t(a)")                # no _ddb_applied
    r = Reader(path)
    with pytest.raises(apsw.SQLError, match="_ddb_applied"):
        r.read(req("SELECT a FROM t"))
    assert r._conn.get_autocommit()
    raw.execute("CREATE TABLE _ddb_applied(id INTEGER PRIMARY KEY, idx INTEGER, term INTEGER);"
                "INSERT INTO _ddb_applied VALUES (0, 7, 1); INSERT INTO t VALUES (1)")
    results, index = r.read(req("SELECT a FROM t"))
    assert index == 7 and results[0].to_dict()["values"] == [[1]]   # sees the new commits
    r.close()
    raw.close()


# ---------------------------------------------------------------- schema changes
@pytest.mark.parametrize("where", [":memory:", "file"])
def test_a_cached_statement_answers_with_the_columns_of_the_schema_it_runs_under(tmp_path, where):
    """SQLite prepares a cached statement again when the schema changed; its answer must name
    the columns of the new schema (apsw's get_description() kept the first preparation's:
    after ADD COLUMN, `SELECT *` named one column for two values), for rows and empty
    results, on the read path and through the log (a RETURNING)."""
    sm = StateMachine(":memory:" if where == ":memory:" else str(tmp_path / "db"))
    apply_one(sm, "CREATE TABLE s(a)")
    apply_one(sm, "INSERT INTO s VALUES (1)")
    assert sm.query(req("SELECT * FROM s"))[0].columns == ["a"]
    assert sm.query(req("SELECT * FROM s WHERE a = 9"))[0].columns == ["a"]
    ins = "INSERT INTO s(a) VALUES (2) RETURNING *"
    assert apply_one(sm, ins).results[0].columns == ["a"]
    apply_one(sm, "ALTER TABLE s ADD COLUMN b DEFAULT 'x'")
    (r,) = sm.query(req("SELECT * FROM s"))
    assert (r.columns, r.rows) == (["a", "b"], [(1, "x"), (2, "x")])
    assert sm.query(req("SELECT * FROM s WHERE a = 9"))[0].columns == ["a", "b"]
    assert apply_one(sm, ins).results[0].columns == ["a", "b"]
    apply_one(sm, "ALTER TABLE s RENAME COLUMN a TO c")
    assert sm.query(req("SELECT * FROM s"))[0].columns == ["c", "b"]
    sm.close()


def test_a_long_lived_reader_describes_the_schema_another_connection_changed(tmp_path):
    """The node's reader threads and HTTP workers keep their connections while apply
    changes the schema on another: a read, an empty read and a cursor name the new columns."""
    from ddb_node.sql.reader import Reader
    path = str(tmp_path / "db")
    sm = StateMachine(path)
    apply_one(sm, "CREATE TABLE s(a)")
    apply_one(sm, "INSERT INTO s VALUES (1)")
    r = Reader(path)
    full, empty = req("SELECT * FROM s"), req("SELECT * FROM s WHERE a = 9")
    assert r.read(full)[0][0].columns == r.read(empty)[0][0].columns == ["a"]
    assert r.cursor(full, 10).fetch()[0].columns == ["a"]
    apply_one(sm, "ALTER TABLE s ADD COLUMN b DEFAULT 'x'")
    (got,), _ = r.read(full)
    assert (got.columns, got.rows) == (["a", "b"], [(1, "x")])
    assert r.read(empty)[0][0].columns == ["a", "b"]
    assert r.cursor(full, 10).fetch()[0].columns == ["a", "b"]
    assert r.cursor(empty, 10).fetch()[0].columns == ["a", "b"]
    r.close()
    sm.close()
