"""One log, three replicas, identical databases: the deterministic function environment.

The workload uses everything that could differ between replicas: random(), randomblob(),
datetime('now'), CURRENT_TIMESTAMP in a column DEFAULT, julianday('now'), unixepoch(),
strftime, 'localtime', the rowid SQLite picks at random once the maximum rowid is taken,
changes(), total_changes(), last_insert_rowid(), triggers, failing statements and
transactions. The replicas apply it in different group sizes, interleaved, one of them
restarting from its file between batches and serving reads (real randomness) in between.
"""
import random

from ddb_node.sql import StateMachine

from tests.sqlhelpers import Log, req

MAX_ROWID = 2 ** 63 - 1


def workload() -> Log:
    log = Log()
    log.add("CREATE TABLE ev(id INTEGER PRIMARY KEY, r INTEGER DEFAULT (random()), "
            "b BLOB DEFAULT (randomblob(8)), at TEXT DEFAULT CURRENT_TIMESTAMP, "
            "jd REAL DEFAULT (julianday('now')), note TEXT)",
            "CREATE TABLE audit(id INTEGER PRIMARY KEY, ev INTEGER, n INTEGER, tc INTEGER, at TEXT)",
            "CREATE TRIGGER ev_audit AFTER INSERT ON ev BEGIN "
            "INSERT INTO audit(ev, n, tc, at) VALUES (NEW.id, changes(), total_changes(), datetime('now')); END")
    log.add(("INSERT INTO ev(id, note) VALUES (?, 'max')", [MAX_ROWID]))
    for i in range(60):
        kind = i % 6
        if kind == 0:     # new rowids beyond the maximum: SQLite's own PRNG picks them
            log.add("INSERT INTO ev(note) VALUES ('random rowid')", "INSERT INTO ev(note) VALUES ('again')")
        elif kind == 1:
            log.add("INSERT INTO ev(note) VALUES (datetime('now', 'localtime') || ' ' || unixepoch() || ' ' "
                    "|| strftime('%Y-%m-%dT%H:%M:%f', 'now'))",
                    "UPDATE ev SET r = random() WHERE id = last_insert_rowid()")
        elif kind == 2:
            log.add("INSERT INTO ev(note) VALUES (hex(randomblob(16)))",
                    "INSERT INTO ev(note) VALUES (changes() || '/' || total_changes() || '/' || last_insert_rowid())",
                    transaction=True)
        elif kind == 3:   # a failing transaction: rolled back everywhere
            log.add("INSERT INTO ev(note) VALUES ('doomed')", f"INSERT INTO ev(id) VALUES ({MAX_ROWID})",
                    transaction=True)
        elif kind == 4:
            log.add(("INSERT INTO ev(note, r) VALUES (?, abs(random()) % ?)", [f"n{i}", 1000]),
                    "INSERT OR ROLLBACK INTO ev(id) VALUES (1)", "INSERT INTO ev(note) VALUES ('after rollback')")
        else:
            log.noop()
            log.add("DELETE FROM ev WHERE r % 3 = 0 AND note LIKE 'n%'",
                    "INSERT INTO ev(note) SELECT note || '+' FROM ev WHERE id BETWEEN 1000 AND 2000 ORDER BY id LIMIT 2")
    return log


def comparable(results):
    return [None if e is None else (e.error, [(r.to_dict() | {"time": 0}) for r in e.results])
            for e in results]


def test_three_replicas_end_byte_for_byte_identical(tmp_path):
    log = workload()
    a = StateMachine(":memory:")
    b = StateMachine(str(tmp_path / "b.db"))
    c_path = str(tmp_path / "c.db")
    c = StateMachine(c_path)
    rng = random.Random(1)
    pos = {"a": 0, "b": 0, "c": 0}
    out = {"a": [], "b": [], "c": []}
    n = len(log.entries)
    while min(pos.values()) < n:
        for name, size in (("a", n), ("b", 1), ("c", rng.randint(1, 7))):
            p = pos[name]
            if p >= n:
                continue
            chunk = log.entries[p:p + size]
            if name == "c":
                if rng.random() < 0.3:            # restart: fresh connection, fresh SQLite state
                    c.close()
                    c = StateMachine(c_path)
                c.query(req("SELECT random(), randomblob(64), datetime('now')"))   # real randomness
            sm = {"a": a, "b": b, "c": c}[name]
            out[name].extend(sm.apply_batch(chunk))
            pos[name] = p + len(chunk)
    dumps = [sm.dump() for sm in (a, b, c)]
    assert dumps[0] == dumps[1] == dumps[2]
    assert comparable(out["a"]) == comparable(out["b"]) == comparable(out["c"])
    # and the workload really exercised the randomness and the clock
    ev = a.query(req(f"SELECT count(*), count(DISTINCT r), sum(id BETWEEN 1000 AND {MAX_ROWID - 1}), min(at) "
                     "FROM ev"))[0].rows[0]
    assert ev[0] > 60 and ev[1] > 50 and ev[2] > 10 and ev[3].startswith("2023-11-14")


def test_different_seeds_give_different_values():
    values = []
    for seed in (1, 2):
        log = Log()
        log.add("CREATE TABLE t(a)")
        log.add("INSERT INTO t VALUES (random())", seed=seed)
        sm = StateMachine(":memory:")
        sm.apply_batch(log.entries)
        values.append(sm.query(req("SELECT a FROM t"))[0].values)
    assert values[0] != values[1]


def test_the_clock_is_the_entry_timestamp_and_localtime_is_utc():
    log = Log()
    log.add("SELECT datetime('now'), datetime('now', 'localtime'), unixepoch(), julianday('now'), "
            "CURRENT_TIMESTAMP, strftime('%s', 'now')", ts=86_400_000 + 1500)
    (er,) = StateMachine(":memory:").apply_batch(log.entries)
    assert er.results[0].rows == [("1970-01-02 00:00:01", "1970-01-02 00:00:01", 86401, 2440588.5000173613,
                                   "1970-01-02 00:00:01", "86401")]
