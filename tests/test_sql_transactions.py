"""Interactive transactions in the state machine: table versions kept at apply, a
transaction's statements run on its read point plus its own writes, and the commit entry's
condition checked identically by every replica (sql/transactions.py)."""
import pytest

from ddb_node.sql import Statement, StateMachine, encode_entry
from ddb_node.sql.transactions import Conflict, is_aborted, is_conflict

from tests.sqlhelpers import BASE_TS, apply_one, req, rows


@pytest.fixture
def sm():
    m = StateMachine(":memory:")
    apply_one(m, "CREATE TABLE acct(id INTEGER PRIMARY KEY, balance INTEGER)")
    apply_one(m, "INSERT INTO acct VALUES (1, 100), (2, 100)")
    apply_one(m, "CREATE TABLE other(x)")
    yield m
    m.close()


def commit(sm, writes, begin, tables, session=None, *, began_in=None, term=1):
    i = sm.applied_index + 1
    payload = encode_entry(req(*writes, transaction=True), timestamp_ms=BASE_TS, seed=i,
                           session=session, condition=(begin, tables, began_in))
    (er,) = sm.apply_batch([(i, term, payload)])
    return er


def S(sql, *params):
    return Statement(sql, list(params) or None)


@pytest.mark.parametrize("capture", [True, False], ids=["capture-on", "capture-off"])
def test_versions_are_kept_whether_change_capture_is_on_or_off(capture):
    """With capture on, its preupdate hook records the versions too (one Python call per
    row); with capture off the versions' own hook does: the same versions either way."""
    from ddb_node.sql.changes import ChangeConfig
    m = StateMachine(":memory:", changes=ChangeConfig(enabled=capture))
    try:
        apply_one(m, "CREATE TABLE acct(id INTEGER PRIMARY KEY, balance INTEGER)")
        apply_one(m, "INSERT INTO acct VALUES (1, 100)")
        apply_one(m, "CREATE TABLE other(x)")
        apply_one(m, "UPDATE acct SET balance = 5")
        assert (m.table_version("acct"), m.table_version("other"),
                m.table_version("_ddb_schema")) == (4, 0, 3)
        er = commit(m, [("UPDATE acct SET balance = 6",)], 3, ["acct"])
        assert is_conflict(er.error)
    finally:
        m.close()


def test_every_write_records_the_index_of_the_entry_that_wrote_the_table(sm):
    assert sm.table_version("acct") == 2
    assert sm.table_version("ACCT") == 2           # SQLite's names ignore case
    apply_one(sm, "UPDATE acct SET balance = 5 WHERE id = 1")
    assert sm.table_version("acct") == 4
    assert sm.table_version("other") == 0          # created, never written
    assert sm.table_version("_ddb_schema") == 3    # the CREATE TABLE other


def test_a_trigger_or_a_cascade_bumps_the_table_it_writes(sm):
    apply_one(sm, "CREATE TABLE log(msg); CREATE TRIGGER tr AFTER UPDATE ON acct "
                  "BEGIN INSERT INTO log VALUES ('u'); END")
    apply_one(sm, "UPDATE acct SET balance = 1 WHERE id = 2")
    assert sm.table_version("log") == sm.applied_index


def test_a_delete_of_every_row_is_seen_too(sm):
    apply_one(sm, "DELETE FROM acct")          # no truncate shortcut with the hook set
    assert sm.table_version("acct") == sm.applied_index


def test_a_run_sees_its_own_writes_and_leaves_nothing_behind(sm):
    begin = sm.applied_index
    writes = [S("UPDATE acct SET balance = balance - 10 WHERE id = 1")]
    res, tables = sm.tx_run(begin, writes, [S("SELECT balance FROM acct WHERE id = 1")],
                            read_only=True)
    assert res[0].rows == [(90,)] and tables == ["acct"]
    assert rows(sm, "SELECT balance FROM acct WHERE id = 1") == [(100,)]
    assert sm.applied_index == begin and sm.table_version("acct") == 2


def test_a_read_only_run_refuses_a_write(sm):
    res, _ = sm.tx_run(sm.applied_index, [], [S("DELETE FROM acct")], read_only=True)
    assert "tx.execute" in res[0].error
    assert rows(sm, "SELECT count(*) FROM acct") == [(2,)]


def test_a_run_over_a_table_changed_since_the_read_point_is_a_conflict(sm):
    begin = sm.applied_index
    apply_one(sm, "UPDATE acct SET balance = 0 WHERE id = 2")
    with pytest.raises(Conflict, match="acct"):
        sm.tx_run(begin, [], [S("SELECT * FROM acct")], read_only=True)
    # a table nobody wrote since is fine
    res, tables = sm.tx_run(begin, [], [S("SELECT count(*) FROM other")], read_only=True)
    assert res[0].rows == [(0,)] and tables == ["other"]


def test_a_statement_that_would_end_the_transaction_cannot_commit_anything(sm):
    apply_one(sm, "CREATE TABLE u(a UNIQUE)")
    apply_one(sm, "INSERT INTO u VALUES (1)")
    with pytest.raises(Exception, match="ended the transaction"):
        sm.tx_run(sm.applied_index, [], [S("INSERT INTO other VALUES (1)"),
                                         S("INSERT OR ROLLBACK INTO u VALUES (1)"),
                                         S("INSERT INTO other VALUES (2)")], read_only=False)
    assert rows(sm, "SELECT count(*) FROM other") == [(0,)]


def test_a_commit_applies_when_nothing_it_used_changed(sm):
    begin = sm.applied_index
    apply_one(sm, "INSERT INTO other VALUES (1)")     # another table: no conflict
    er = commit(sm, [("UPDATE acct SET balance = balance - 10 WHERE id = 1",),
                     ("UPDATE acct SET balance = balance + 10 WHERE id = 2",)], begin, ["acct"])
    assert er.error is None
    assert rows(sm, "SELECT balance FROM acct ORDER BY id") == [(90,), (110,)]
    assert sm.table_version("acct") == er.index


def test_a_lost_update_is_refused_at_apply_and_nothing_is_applied(sm):
    begin = sm.applied_index             # two transactions read the balance at the same point
    first = commit(sm, [("UPDATE acct SET balance = 90 WHERE id = 1",)], begin, ["acct"])
    second = commit(sm, [("UPDATE acct SET balance = 80 WHERE id = 1",)], begin, ["acct"])
    assert first.error is None
    assert is_conflict(second.error) and "acct" in second.error
    assert rows(sm, "SELECT balance FROM acct WHERE id = 1") == [(90,)]
    assert sm.table_version("acct") == first.index


def test_a_schema_change_after_the_read_point_conflicts(sm):
    begin = sm.applied_index
    apply_one(sm, "CREATE INDEX i ON other(x)")
    er = commit(sm, [("UPDATE acct SET balance = 1",)], begin, ["acct"])
    assert is_conflict(er.error) and "schema" in er.error


def test_a_commit_is_all_or_nothing(sm):
    er = commit(sm, [("UPDATE acct SET balance = 0 WHERE id = 1",), ("INSERT INTO nope VALUES (1)",)],
                sm.applied_index, ["acct"])
    assert er.error and not is_conflict(er.error)
    assert rows(sm, "SELECT balance FROM acct WHERE id = 1") == [(100,)]


def test_a_retried_commit_returns_its_first_outcome(sm):
    begin = sm.applied_index
    w = [("UPDATE acct SET balance = balance - 1 WHERE id = 1",)]
    first = commit(sm, w, begin, ["acct"], session=("c", 1))
    again = commit(sm, w, begin, ["acct"], session=("c", 1))   # not a conflict, not twice
    assert first.error is None and again.session_duplicate and again.error is None
    assert rows(sm, "SELECT balance FROM acct WHERE id = 1") == [(99,)]


def test_replicas_agree_on_versions_whatever_the_batching(tmp_path):
    a, b = StateMachine(":memory:"), StateMachine(":memory:")
    entries = []
    stmts = ["CREATE TABLE t(x)", "INSERT INTO t VALUES (1)", "CREATE TABLE v(y)",
             "INSERT INTO v VALUES (2)", "UPDATE t SET x = 3"]
    for i, s in enumerate(stmts, 1):
        entries.append((i, 1, encode_entry(req(s), timestamp_ms=BASE_TS, seed=i)))
    cond = encode_entry(req("UPDATE v SET y = 9", transaction=True), timestamp_ms=BASE_TS, seed=6,
                        condition=(3, ["v"]))
    entries.append((6, 1, cond))
    (*_, batched) = a.apply_batch(entries)
    for e in entries:
        (one,) = b.apply_batch([e])
    assert a.dump() == b.dump()
    assert is_conflict(batched.error) and batched.error == one.error
    assert rows(a, "SELECT y FROM v") == [(2,)]          # v written at 4 > 3: refused


def test_a_private_run_leaves_nothing_in_the_change_log(sm):
    """The change log (CDC) sees every row the state machine writes, those of a
    transaction's rolled-back runs included: they must never reach it."""
    since = sm.applied_index
    sm.tx_run(since, [S("UPDATE acct SET balance = 0 WHERE id = 1")],
              [S("DELETE FROM acct WHERE id = 2")], read_only=False)
    apply_one(sm, "INSERT INTO other VALUES (1)")
    er = commit(sm, [("UPDATE acct SET balance = 5 WHERE id = 1",)], since, ["acct"])
    events = sm.changes.read(since, sm.applied_index)[0]
    assert [(e[0], e[1], e[2]) for e in events] == [(since + 1, "other", "insert"),
                                                    (er.index, "acct", "update")]


def test_write_skew_is_refused_serializable_not_snapshot_isolation(sm):
    """Both read both accounts at one point and each writes a different one (the classic
    write skew that snapshot isolation allows): the second commit must conflict, because
    the first wrote a table the second read."""
    begin = sm.applied_index
    reads = sm.tx_run(begin, [], [S("SELECT sum(balance) FROM acct")], read_only=True)
    assert reads[0][0].rows == [(200,)] and reads[1] == ["acct"]
    first = commit(sm, [("UPDATE acct SET balance = balance - 150 WHERE id = 1",)], begin, ["acct"])
    second = commit(sm, [("UPDATE acct SET balance = balance - 150 WHERE id = 2",)], begin, ["acct"])
    assert first.error is None and is_conflict(second.error)
    assert rows(sm, "SELECT sum(balance) FROM acct") == [(50,)]


def test_a_commit_proposed_in_another_term_than_its_begin_is_refused_by_every_replica(sm):
    """A transaction lives in the leader's term it began in (issue 16: a leader change ends
    it with a clear error). The entry's own term is the check's input, so every replica
    refuses the same entries: one proposed by the transaction's leader (term 1) applies, one
    proposed after a leader change (term 2) applies nothing, and its session remembers it."""
    begin = sm.applied_index
    ok = commit(sm, [("UPDATE acct SET balance = 1 WHERE id = 1",)], begin, ["acct"],
                began_in=1, term=1)
    assert ok.error is None
    begin = sm.applied_index
    late = commit(sm, [("UPDATE acct SET balance = 2 WHERE id = 1",)], begin, ["acct"],
                  ("c", 1), began_in=1, term=2)
    assert is_aborted(late.error) and "term 1" in late.error and "term 2" in late.error
    assert rows(sm, "SELECT balance FROM acct WHERE id = 1") == [(1,)]
    again = commit(sm, [("UPDATE acct SET balance = 2 WHERE id = 1",)], begin, ["acct"],
                   ("c", 1), began_in=1, term=2)
    assert again.session_duplicate and again.error == late.error


def test_a_condition_without_a_term_is_checked_on_tables_only(sm):
    """Entries written before terms were carried (a 2-element condition) still apply."""
    begin = sm.applied_index
    er = commit(sm, [("UPDATE acct SET balance = 7 WHERE id = 1",)], begin, ["acct"], term=9)
    assert er.error is None
