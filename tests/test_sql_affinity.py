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
