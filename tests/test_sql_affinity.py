"""SQLite's affinity rules (datatype3.html §3.1), including the famous surprises."""
import pytest

from ddb_node.sql.affinity import affinity_of


@pytest.mark.parametrize("decl, affinity", [
    ("INT", "INTEGER"), ("INTEGER", "INTEGER"), ("TINYINT", "INTEGER"), ("BIGINT", "INTEGER"),
    ("UNSIGNED BIG INT", "INTEGER"), ("INT8", "INTEGER"),
    ("CHARACTER(20)", "TEXT"), ("VARCHAR(255)", "TEXT"), ("NCHAR(55)", "TEXT"), ("TEXT", "TEXT"), ("CLOB", "TEXT"),
    ("BLOB", "BLOB"), (None, "BLOB"), ("", "BLOB"),
    ("REAL", "REAL"), ("DOUBLE", "REAL"), ("DOUBLE PRECISION", "REAL"), ("FLOAT", "REAL"),
    ("NUMERIC", "NUMERIC"), ("DECIMAL(10,5)", "NUMERIC"), ("BOOLEAN", "NUMERIC"), ("DATE", "NUMERIC"),
    ("DATETIME", "NUMERIC"),
    ("FLOATING POINT", "INTEGER"),   # contains "INT"
    ("STRING", "NUMERIC"),           # matches no rule
    ("CHARINT", "INTEGER"),          # INT is checked first
])
def test_affinity_rules(decl, affinity):
    assert affinity_of(decl) == affinity


@pytest.mark.parametrize("n", [1, 5, 32, 33, 1000])
def test_types_seen_and_violations_are_counted_alike_for_short_and_long_columns(n):
    """A result's types_seen / violations per column (results.analyse): short columns are
    counted value by value, long ones by type in one pass; both agree with storage_class."""
    from ddb_node.sql.affinity import storage_class
    from ddb_node.sql.results import analyse

    sample = [1, 2.5, "x", b"y", None, True, 2 ** 70]
    col = [sample[i % len(sample)] for i in range(n)]
    affinities, seen, violations = analyse(["c"], ["INTEGER"], [col])
    want = {}
    for v in col:
        want[storage_class(v)] = want.get(storage_class(v), 0) + 1
    assert affinities == ["INTEGER"]
    assert seen == [sorted(want)]
    assert violations == [{"column": 0, "name": "c", "decltype": "INTEGER", "affinity": "INTEGER",
                           "storage_class": sc, "count": k}
                          for sc, k in sorted(want.items()) if sc not in ("integer", "null")]
