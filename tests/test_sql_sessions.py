"""Client sessions (dissertation §6.3): duplicates return the remembered result, the table is
bounded and expires by log position, identically on every replica."""
from ddb_node.sql import StateMachine

from tests.sqlhelpers import Log, apply_one, rows


def make(**kw):
    sm = StateMachine(":memory:", **kw)
    apply_one(sm, "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
    return sm


def test_a_retried_write_returns_the_remembered_result_and_applies_once():
    sm = make()
    first = apply_one(sm, "INSERT INTO t(v) VALUES ('x')", session=("c1", 1))
    retry = apply_one(sm, "INSERT INTO t(v) VALUES ('x')", session=("c1", 1))
    assert retry.session_duplicate and not first.session_duplicate
    assert [r.to_dict() | {"time": 0} for r in retry.results] == [r.to_dict() | {"time": 0} for r in first.results]
    assert retry.index == sm.applied_index          # the duplicate still consumed its log entry
    assert rows(sm, "SELECT count(*) FROM t") == [(1,)]


def test_next_sequence_numbers_apply_and_older_ones_are_reported():
    sm = make()
    apply_one(sm, "INSERT INTO t(v) VALUES ('a')", session=("c1", 1))
    apply_one(sm, "INSERT INTO t(v) VALUES ('b')", session=("c1", 2))
    old = apply_one(sm, "INSERT INTO t(v) VALUES ('a')", session=("c1", 1))
    assert old.session_duplicate and "no longer retained" in old.error and old.results == []
    assert rows(sm, "SELECT v FROM t ORDER BY id") == [("a",), ("b",)]


def test_sessions_are_independent_per_client():
    sm = make()
    apply_one(sm, "INSERT INTO t(v) VALUES ('a')", session=("c1", 1))
    er = apply_one(sm, "INSERT INTO t(v) VALUES ('a')", session=("c2", 1))
    assert not er.session_duplicate
    assert rows(sm, "SELECT count(*) FROM t") == [(2,)]


def test_failed_requests_are_remembered_too():
    sm = make()
    first = apply_one(sm, "INSERT INTO nope VALUES (1)", session=("c1", 5))
    again = apply_one(sm, "INSERT INTO nope VALUES (1)", session=("c1", 5))
    assert again.session_duplicate and again.results[0].error == first.results[0].error == "no such table: nope"


def test_the_table_is_bounded_evicting_the_least_recently_active_client():
    sm = make(max_sessions=3)
    for c in ("a", "b", "c", "d"):
        apply_one(sm, "SELECT 1", session=(c, 1))
    assert sm.sessions.count() == 3
    assert not apply_one(sm, "SELECT 1", session=("a", 1)).session_duplicate   # evicted: applies again
    assert apply_one(sm, "SELECT 1", session=("d", 1)).session_duplicate


def test_sessions_expire_by_log_position_not_by_clock():
    sm = make(session_ttl_entries=5, session_expire_every=2)
    apply_one(sm, "SELECT 1", session=("old", 1))                  # index 2
    for _ in range(3):
        apply_one(sm, "SELECT 1")                                   # indexes 3..5
    assert sm.sessions.count() == 1
    sm.apply_batch([(6, 1, b""), (7, 1, b"")])                      # 6: expire idx <= 1; 7: nothing
    assert sm.sessions.count() == 1
    sm.apply_batch([(8, 1, b"")])                                   # 8: expire idx <= 3
    assert sm.sessions.count() == 0


def test_replicas_keep_identical_session_tables_whatever_their_batching():
    log = Log()
    log.add("CREATE TABLE t(a)")
    for i in range(30):
        log.add(("INSERT INTO t VALUES (?)", [i]), session=(f"c{i % 7}", i // 7 + 1))
        if i % 4 == 0:
            log.add(("INSERT INTO t VALUES (?)", [i]), session=(f"c{i % 7}", i // 7 + 1))   # retry
    dumps = []
    for size in (1, 4, 100):
        sm = StateMachine(":memory:", max_sessions=5, session_ttl_entries=10, session_expire_every=3)
        for s in range(0, len(log.entries), size):
            sm.apply_batch(log.entries[s:s + size])
        dumps.append(sm.dump())
    assert dumps[0] == dumps[1] == dumps[2]
