"""Change data capture in the state machine: every applied row change, recorded with its entry
(sql/changes.py)."""
from __future__ import annotations

import apsw
import pytest

from ddb_node.sql import StateMachine
from ddb_node.sql.changes import ChangeConfig, ChangesTruncated, CaptureOff

from tests.sqlhelpers import Log, apply_one, rows

SCHEMA = "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT UNIQUE)"


def events(sm, since=0, **kw):
    return sm.changes.read(since, sm.applied_index, **kw)[0]


def ops(sm, since=0):
    return [(e[0], e[2], e[3]) for e in events(sm, since)]


@pytest.fixture
def sm():
    m = StateMachine(":memory:")
    apply_one(m, SCHEMA)
    yield m
    m.close()


def test_inserts_updates_deletes_are_recorded_with_their_entry_index(sm):
    apply_one(sm, ("INSERT INTO t(v) VALUES (?)", ["a"]), ("INSERT INTO t(v) VALUES (?)", ["b"]))
    apply_one(sm, "UPDATE t SET v = v || '!' WHERE id = 2")
    apply_one(sm, "DELETE FROM t WHERE id = 1")
    assert events(sm) == [
        [2, "t", "insert", 1, None, {"id": 1, "v": "a"}],
        [2, "t", "insert", 2, None, {"id": 2, "v": "b"}],
        [3, "t", "update", 2, {"id": 2, "v": "b"}, {"id": 2, "v": "b!"}],
        [4, "t", "delete", 1, {"id": 1, "v": "a"}, None],
    ]


def test_key_is_the_primary_key_or_the_rowid(sm):
    apply_one(sm, "CREATE TABLE w(k TEXT, j INT, x, PRIMARY KEY (k, j)) WITHOUT ROWID",
              "CREATE TABLE s(name TEXT PRIMARY KEY, n)", "CREATE TABLE r(a, b)")
    apply_one(sm, "INSERT INTO w VALUES ('a', 1, 2)", "INSERT INTO s VALUES ('x', 1)",
              "INSERT INTO r VALUES (5, 6)")
    assert [(e[1], e[3]) for e in events(sm)] == [("w", ["a", 1]), ("s", "x"), ("r", 1)]


def test_a_rolled_back_transaction_emits_nothing(sm):
    apply_one(sm, "INSERT INTO t VALUES (1, 'a')")
    er = apply_one(sm, "INSERT INTO t VALUES (2, 'b')", "INSERT INTO t VALUES (3, 'a')",
                   transaction=True)
    assert er.error and "rolled back" in er.error
    assert ops(sm) == [(2, "insert", 1)]


def test_a_statement_sqlite_undid_emits_nothing_but_or_fail_keeps_what_stayed(sm):
    apply_one(sm, "INSERT INTO t VALUES (1, 'a')")
    er = apply_one(sm, "INSERT INTO t VALUES (2, 'b'), (3, 'a')")          # ABORT: undone
    assert er.results[0].error
    er = apply_one(sm, "INSERT OR FAIL INTO t VALUES (4, 'c'), (5, 'a')")   # FAIL: 4 stays
    assert er.results[0].error
    er = apply_one(sm, "INSERT INTO t VALUES (6, 'd'), (7, 'a'); INSERT INTO t VALUES (8, 'e')")
    assert rows(sm, "SELECT id FROM t ORDER BY id") == [(1,), (4,)]
    assert ops(sm) == [(2, "insert", 1), (4, "insert", 4)]


def test_insert_or_rollback_replays_the_batch_and_records_only_what_survived():
    sm = StateMachine(":memory:")
    log = Log()
    log.add(SCHEMA)
    log.add("INSERT INTO t VALUES (1, 'a')")
    log.add("INSERT INTO t VALUES (2, 'b')", "INSERT OR ROLLBACK INTO t VALUES (3, 'a')")
    log.add("INSERT INTO t VALUES (4, 'c')")
    sm.apply_batch(log.entries)
    assert ops(sm) == [(2, "insert", 1), (3, "insert", 2), (4, "insert", 4)]
    assert rows(sm, "SELECT id FROM t ORDER BY id") == [(1,), (2,), (4,)]


def test_changes_made_by_triggers_are_recorded_too(sm):
    apply_one(sm, "CREATE TABLE audit(n INTEGER PRIMARY KEY, what)",
              "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO audit(what) VALUES (new.v); END")
    apply_one(sm, "INSERT INTO t VALUES (1, 'a')")
    assert [(e[1], e[2]) for e in events(sm, 2)] == [("t", "insert"), ("audit", "insert")]


def test_tables_filter_and_whole_entries_per_read(sm):
    apply_one(sm, "CREATE TABLE u(x)")
    for i in range(5):
        apply_one(sm, f"INSERT INTO t VALUES ({i}, 'v{i}')", f"INSERT INTO u VALUES ({i})")
    assert [e[1] for e in events(sm, tables=["u"])] == ["u"] * 5
    got, through = sm.changes.read(0, sm.applied_index, max_entries=2)
    assert [e[0] for e in got] == [3, 3, 4, 4] and through == 4
    got, through = sm.changes.read(through, sm.applied_index, max_entries=100)
    assert [e[0] for e in got] == [5, 5, 6, 6, 7, 7] and through == sm.applied_index


def test_ddb_tables_are_reserved_and_not_captured(sm):
    er = apply_one(sm, "DELETE FROM _ddb_changes")
    assert "reserved" in er.results[0].error
    apply_one(sm, "INSERT INTO t VALUES (1, 'a')", session=("c1", 1))
    assert {e[1] for e in events(sm)} == {"t"}


def test_retention_by_entries_is_enforced_at_multiples_and_named_in_the_error():
    sm = StateMachine(":memory:", changes=ChangeConfig(keep_entries=10, prune_every=5))
    apply_one(sm, SCHEMA)
    for i in range(2, 23):
        apply_one(sm, f"INSERT INTO t VALUES ({i}, 'v{i}')")
    # pruned at index 20: everything at or below 10 is gone
    assert sm.changes.pruned == 10
    assert ops(sm, 10)[0] == (11, "insert", 11)
    with pytest.raises(ChangesTruncated) as exc:
        sm.changes.read(9, sm.applied_index)
    assert exc.value.oldest == 11 and "oldest retained index is 11" in str(exc.value)


def test_retention_by_bytes_keeps_the_log_under_its_bound():
    sm = StateMachine(":memory:", changes=ChangeConfig(keep_entries=0, keep_bytes=2000, prune_every=10))
    apply_one(sm, SCHEMA)
    for i in range(2, 101):
        apply_one(sm, ("INSERT INTO t VALUES (?, ?)", [i, "x" * 50 + str(i)]))
    assert 0 < sm.changes.bytes <= 2000
    assert sm.changes.bytes == rows(sm, "SELECT total(length(data)) FROM _ddb_changes")[0][0]
    first = events(sm, sm.changes.pruned)[0][0]
    assert first == sm.changes.pruned + 1


def test_the_log_survives_a_restart_and_travels_in_a_snapshot(tmp_path):
    path = str(tmp_path / "a.db")
    sm = StateMachine(path)
    apply_one(sm, SCHEMA)
    apply_one(sm, "INSERT INTO t VALUES (1, 'a')")
    digest = sm.changes.digest()
    image = sm.snapshot_image()
    sm.close()
    sm = StateMachine(path)
    assert sm.changes.digest() == digest and ops(sm) == [(2, "insert", 1)]
    other = StateMachine(str(tmp_path / "b.db"))
    other.restore_image(image)
    assert other.changes.digest() == digest
    apply_one(sm, "INSERT INTO t VALUES (2, 'b')")
    apply_one(other, "INSERT INTO t VALUES (2, 'b')")
    assert other.changes.digest() == sm.changes.digest()
    sm.close()
    other.close()


def test_batching_does_not_change_the_log():
    log = Log()
    log.add(SCHEMA)
    for i in range(30):
        log.add(("INSERT INTO t VALUES (?, ?)", [i, f"v{i}"]), f"UPDATE t SET v = 'w' || v WHERE id = {i // 2}")
    log.add("INSERT INTO t VALUES (1000, 'v1')", "INSERT INTO t VALUES (1001, 'x')", transaction=True)
    one, grouped = StateMachine(":memory:"), StateMachine(":memory:")
    for e in log.entries:
        one.apply_batch([e])
    grouped.apply_batch(log.entries)
    assert one.changes.digest() == grouped.changes.digest()
    assert one.dump() == grouped.dump()


def test_capture_off_keeps_no_log_and_says_so(tmp_path):
    path = str(tmp_path / "a.db")
    sm = StateMachine(path)
    apply_one(sm, SCHEMA)
    apply_one(sm, "INSERT INTO t VALUES (1, 'a')")
    sm.close()
    sm = StateMachine(path, changes=ChangeConfig(enabled=False))
    apply_one(sm, "INSERT INTO t VALUES (2, 'b')")
    assert rows(sm, "SELECT count(*) FROM sqlite_schema WHERE name LIKE '_ddb_change%'") == [(0,)]
    with pytest.raises(CaptureOff):
        sm.changes.read(0, sm.applied_index)
    sm.close()
    # turned on again: the log starts at the applied index, with no gap behind it
    sm = StateMachine(path)
    assert sm.changes.pruned == 3
    apply_one(sm, "INSERT INTO t VALUES (3, 'c')")
    assert ops(sm, 3) == [(4, "insert", 3)]
    with pytest.raises(ChangesTruncated):
        sm.changes.read(0, sm.applied_index)
    sm.close()


def test_a_users_copy_of_the_database_leaves_the_change_log_out(tmp_path):
    sm = StateMachine(str(tmp_path / "a.db"))
    apply_one(sm, SCHEMA)
    apply_one(sm, "INSERT INTO t VALUES (1, 'a')")
    sm.export_copy(str(tmp_path / "copy.db"))
    sm.close()
    copy = apsw.Connection(str(tmp_path / "copy.db"))
    names = {r[0] for r in copy.execute("SELECT name FROM sqlite_schema WHERE type = 'table'")}
    copy.close()
    assert names == {"t"}


def _log_of(n):
    log = Log()
    log.add(SCHEMA)
    for i in range(n):
        if i % 7 == 3:
            log.add(("UPDATE t SET v = ? WHERE id = ?", [f"u{i}" * 40, i - 1]))   # a big segment
        elif i % 11 == 5:
            log.add("SELECT 1")                                                  # no changes
        else:
            log.add(("INSERT INTO t VALUES (?, ?)", [i, f"v{i}"]))
    return log


def test_many_entries_to_a_row_however_they_were_batched():
    """Segments share rows of the log (up to ROW_ENTRIES / ROW_BYTES); which row an entry's
    segment goes to depends on the entries before it only, so every batching gives the
    same rows, and a read from any index gives exactly the entries after it."""
    import random
    log = _log_of(400)
    one, random_batches = StateMachine(":memory:"), StateMachine(":memory:")
    for e in log.entries:
        one.apply_batch([e])
    rng, k = random.Random(7), 0
    while k < len(log.entries):
        step = rng.choice([1, 2, 5, 17, 64, 150])
        random_batches.apply_batch(log.entries[k:k + step])
        k += step
    assert one.dump() == random_batches.dump()
    assert one.changes.digest() == random_batches.changes.digest()
    n_rows = rows(one, "SELECT count(*) FROM _ddb_changes")[0][0]
    assert 5 < n_rows < 100                         # shared rows, not one per entry
    everything = events(one, max_entries=10_000)
    for since in (0, 1, 2, 57, 58, 200, 333, 401, 402):
        assert events(one, since, max_entries=10_000) == [e for e in everything if e[0] > since]
    # resuming page by page gives every event once, in order
    got, through = [], 0
    while through < one.applied_index:
        page, through = one.changes.read(through, one.applied_index, max_entries=13)
        got += page
    assert got == everything


def test_retention_cuts_inside_a_row_at_the_exact_index():
    log = _log_of(300)
    a = StateMachine(":memory:", changes=ChangeConfig(keep_entries=45, prune_every=10))
    b = StateMachine(":memory:", changes=ChangeConfig(keep_entries=45, prune_every=10))
    for e in log.entries:
        a.apply_batch([e])
    b.apply_batch(log.entries)
    assert a.changes.pruned == b.changes.pruned == 300 - 45
    assert a.dump() == b.dump()
    evs = events(a, a.changes.pruned)
    assert evs and evs[0][0] > a.changes.pruned and evs == events(b, b.changes.pruned)
    assert a.changes.bytes == rows(a, "SELECT total(length(data)) FROM _ddb_changes")[0][0]


def test_a_log_of_one_row_per_entry_from_an_older_ddb_is_upgraded_with_its_digest(tmp_path):
    """ddb before the shared rows stored (idx, data = [header, rows]) per entry; the digest
    covers the entries' [header, rows] bytes, so it is the same before and after."""
    import hashlib

    import msgpack
    path = str(tmp_path / "old.db")
    sm = StateMachine(path)
    apply_one(sm, SCHEMA)
    for i in range(5):
        apply_one(sm, ("INSERT INTO t VALUES (?, ?)", [i, f"v{i}"]))
    want, digest = events(sm), sm.changes.digest()
    pruned = rows(sm, "SELECT pruned FROM _ddb_changes_meta")[0][0]
    segs = [(i, data) for i, n, data in rows(sm, "SELECT idx, n, data FROM _ddb_changes")]
    sm.close()
    conn = apsw.Connection(path)              # rewrite the log as the older ddb had it
    old = []
    for _, data in segs:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False)
        unpacker.feed(data)
        while True:
            try:
                idx = unpacker.unpack()
            except msgpack.OutOfData:
                break
            start = unpacker.tell()
            unpacker.skip()
            old.append((idx, data[start:unpacker.tell()]))
    h = hashlib.sha256(str(pruned).encode())          # the older ddb's digest of that log
    for idx, blob in old:
        h.update(idx.to_bytes(8, "big") + len(blob).to_bytes(8, "big") + blob)
    assert h.hexdigest() == digest
    with conn:
        conn.execute("DROP TABLE _ddb_changes")
        conn.execute("CREATE TABLE _ddb_changes(idx INTEGER PRIMARY KEY, data BLOB NOT NULL)")
        conn.executemany("INSERT INTO _ddb_changes VALUES (?, ?)", old)
    conn.close()
    sm = StateMachine(path)
    assert events(sm) == want and sm.changes.digest() == digest
    assert rows(sm, "SELECT count(*) FROM _ddb_changes")[0][0] == len(old) == 5
    apply_one(sm, ("INSERT INTO t VALUES (?, ?)", [9, "v9"]))
    assert [e[0] for e in events(sm)] == [e[0] for e in want] + [sm.applied_index]
    sm.close()
