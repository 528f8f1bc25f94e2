"""Interactive transactions in the notebook: `%%ddb --begin`, `%%ddb --tx NAME`,
`%ddb commit|rollback`, on a real 3-node LocalCluster through IPython."""
from __future__ import annotations

import pytest

from tests.magic_helpers import run, shell


@pytest.fixture(scope="module")
def sh():
    s = shell()
    r = run(s, "%ddb launch -n 3 --name txm")
    assert "3 nodes" in r.out, r.out
    yield s
    run(s, "%ddb stop --all")


@pytest.fixture(autouse=True)
def acct(sh):
    r = run(sh, """%%ddb
DROP TABLE IF EXISTS acct;
CREATE TABLE acct(id INTEGER PRIMARY KEY, balance INTEGER);
INSERT INTO acct VALUES (1, 100), (2, 100)""")
    assert r.error is None, r.out


def test_a_cell_transaction_commits_with_the_magic(sh):
    r = run(sh, "%%ddb --begin --tx t1\nUPDATE acct SET balance = balance - 10 WHERE id = 1;\n"
                "SELECT balance FROM acct WHERE id = 1")
    assert "in transaction 't1'" in r.out and "1 buffered write" in r.out, r.out
    assert "transaction t1 · index" in r.out                # every result's caption names it
    assert "90" in r.out                                   # its own write
    r = run(sh, "%%ddb\nSELECT balance FROM acct WHERE id = 1")
    assert "100" in r.out                                  # nobody else sees it yet
    run(sh, "%%ddb --tx t1\nUPDATE acct SET balance = balance + 10 WHERE id = 2")
    r = run(sh, "%ddb commit t1")
    assert "committed at index" in r.out, r.out
    r = run(sh, "%%ddb --level linearizable\nSELECT sum(balance), min(balance) FROM acct")
    assert "200" in r.out and "90" in r.out, r.out


def test_a_conflict_at_commit_is_shown_and_applies_nothing(sh):
    run(sh, "%%ddb --begin\nUPDATE acct SET balance = 0 WHERE id = 1")
    run(sh, "%%ddb\nUPDATE acct SET balance = 5 WHERE id = 2")
    r = run(sh, "%ddb commit")
    assert "not committed, nothing applied" in r.out and "conflict" in r.out, r.out
    r = run(sh, "%%ddb --level linearizable\nSELECT balance FROM acct ORDER BY id")
    assert "100" in r.out and "5" in r.out


def test_rollback_and_unknown_transactions(sh):
    run(sh, "%%ddb --begin --tx r\nDELETE FROM acct")
    assert "rolled back" in run(sh, "%ddb rollback r").out
    r = run(sh, "%%ddb --tx r\nSELECT 1")
    assert "no open transaction 'r'" in r.out, r.out
