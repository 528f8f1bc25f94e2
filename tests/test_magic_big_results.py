"""%%ddb and a long read (issue 13, item 2): the cell shows the first rows with the result's
row count instead of fetching everything; --all fetches every row."""
from __future__ import annotations

from tests.magic_helpers import run, shell


def test_a_long_read_shows_its_first_rows_and_row_count_and_all_fetches_everything():
    sh = shell()
    r = run(sh, "%ddb launch -n 3 --name big")
    assert not r.error, r.out
    try:
        run(sh, "%config DdbMagic.fetchlimit = 1000")
        r = run(sh, "%%ddb\nCREATE TABLE big(id INTEGER PRIMARY KEY, v TEXT)")
        assert not r.error, r.out
        for _ in range(5):
            r = run(sh, "%%ddb\nINSERT INTO big(v) SELECT 'x' FROM "
                        "(WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 1000) "
                        "SELECT i FROM n)")
            assert not r.error, r.out
        r = run(sh, "%%ddb\nSELECT * FROM big")
        assert not r.error, r.out
        assert "fetched the first 1,000 of 5,000 rows" in r.out and "--all" in r.out
        assert len(sh.user_ns["_ddb"].value()) == 1000
        r = run(sh, "%%ddb --all\nSELECT * FROM big")
        assert not r.error and "fetched the first" not in r.out
        assert len(sh.user_ns["_ddb"].value()) == 5000
        r = run(sh, "%%ddb\nSELECT count(*) AS n FROM big")
        assert "fetched the first" not in r.out and "5000" in r.out
    finally:
        run(sh, "%config DdbMagic.fetchlimit = 100000")
        run(sh, "%ddb stop --name big")
