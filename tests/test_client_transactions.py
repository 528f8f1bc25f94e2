"""Interactive transactions against a real 3-node cluster: the API of issue 16, conflicts and
their retry, and a leader killed in the middle of a transaction (which ends it)."""
import threading

import pytest

from ddb_node.errors import TransactionAborted, TransactionConflict

from tests.nodehelpers import restore_health


@pytest.fixture(scope="module", autouse=True)
def schema(lc):
    with lc.client() as c:
        c.execute("CREATE TABLE acct(id INTEGER PRIMARY KEY, balance INTEGER NOT NULL)")


@pytest.fixture
def c(lc):
    with lc.client() as client:
        client.execute("DELETE FROM acct")
        client.execute("INSERT INTO acct VALUES (1, 100), (2, 100)")
        yield client


@pytest.fixture(autouse=True)
def _restore(lc):
    yield
    for nid, node in lc.nodes.items():
        if node.state == "killed":
            lc.restart(nid)
    restore_health(lc)


def balances(c):
    return c.query("SELECT id, balance FROM acct ORDER BY id", level="linearizable")[0].rows


def transfer(tx, amount=10, src=1, dst=2):
    r = tx.query("SELECT balance FROM acct WHERE id = ?", [src])
    tx.execute("UPDATE acct SET balance = ? WHERE id = ?", [r.rows[0][0] - amount, src])
    r = tx.query("SELECT balance FROM acct WHERE id = ?", [dst])
    tx.execute("UPDATE acct SET balance = ? WHERE id = ?", [r.rows[0][0] + amount, dst])


def test_leaving_the_block_commits_and_the_reply_names_its_index(c):
    with c.transaction() as tx:
        transfer(tx)
        # the transaction sees its own writes, nobody else does yet
        assert tx.query("SELECT balance FROM acct WHERE id = 1").rows == [(90,)]
        assert balances(c) == [(1, 100), (2, 100)]
    assert balances(c) == [(1, 90), (2, 110)]
    assert tx.state == "committed" and tx.response.index > tx.begin


def test_an_exception_inside_the_block_rolls_back(c):
    with pytest.raises(ZeroDivisionError):
        with c.transaction() as tx:
            transfer(tx)
            1 / 0
    assert tx.state == "rolled back" and balances(c) == [(1, 100), (2, 100)]
    with pytest.raises(TransactionAborted):
        tx.query("SELECT 1")


def test_a_write_committed_after_begin_makes_the_commit_conflict(c):
    tx = c.transaction()
    transfer(tx)
    c.execute("UPDATE acct SET balance = balance + 1 WHERE id = 1")   # a rival, committed first
    with pytest.raises(TransactionConflict, match="acct"):
        tx.commit()
    assert balances(c) == [(1, 101), (2, 100)]             # the transfer left nothing


def test_a_read_after_a_rival_write_conflicts_at_once(c):
    tx = c.transaction()
    tx.query("SELECT balance FROM acct WHERE id = 1")
    c.execute("UPDATE acct SET balance = 0 WHERE id = 2")
    with pytest.raises(TransactionConflict):
        tx.query("SELECT balance FROM acct WHERE id = 2")  # never a mix of two states


def test_run_transaction_retries_conflicts_and_concurrent_transfers_lose_nothing(lc, c):
    errors = []

    def worker():
        try:
            with lc.client() as mine:
                for _ in range(5):
                    mine.run_transaction(transfer, retries=50)
        except Exception as e:  # noqa: BLE001  reported below
            errors.append(e)
    threads = [threading.Thread(target=worker) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert balances(c) == [(1, 100 - 200), (2, 100 + 200)]    # 20 transfers, none lost or doubled


def test_a_leader_killed_mid_transaction_ends_it_with_a_clear_error_and_nothing_applied(lc, c):
    """A transaction lives in the leader's term it began in: after the leader dies its next
    statement raises TransactionAborted (rerun: nothing applied, run it again), and so does
    a commit sent after the change; the database holds none of it."""
    tx = c.transaction()
    r = tx.query("SELECT balance FROM acct WHERE id = 1")
    tx.execute("UPDATE acct SET balance = ? WHERE id = 1", [r.rows[0][0] - 10])
    old = lc.wait_for_leader(10)
    lc.kill(old)
    with pytest.raises(TransactionAborted, match="leader changed") as e:
        tx.query("SELECT balance FROM acct WHERE id = 2")
    assert e.value.rerun and tx.state == "rolled back"
    assert balances(c) == [(1, 100), (2, 100)]


def test_a_commit_after_a_leader_change_is_refused_at_apply(lc, c):
    tx = c.transaction()
    transfer(tx)
    old = lc.wait_for_leader(10)
    lc.kill(old)
    with pytest.raises(TransactionAborted, match="leader changed") as e:
        tx.commit()
    assert e.value.rerun
    assert balances(c) == [(1, 100), (2, 100)]


def test_run_transaction_runs_a_transaction_again_after_a_leader_change(lc, c):
    """run_transaction re-runs fn after the abort: the transfer applies exactly once."""
    calls = []

    def fn(tx):
        calls.append(tx)
        transfer(tx)
        if len(calls) == 1:
            lc.kill(lc.wait_for_leader(10))     # the leader dies before the commit

    c.run_transaction(fn, retries=5)
    assert len(calls) == 2 and calls[0].state == "rolled back"
    assert balances(c) == [(1, 90), (2, 110)]


def test_a_rival_write_through_the_new_leader_stands_and_the_old_transaction_is_refused(lc, c):
    tx = c.transaction()
    transfer(tx)
    lc.kill(lc.wait_for_leader(10))
    c.execute("UPDATE acct SET balance = 0 WHERE id = 1")
    with pytest.raises(TransactionAborted):
        tx.commit()
    assert balances(c) == [(1, 0), (2, 100)]


def test_the_async_client_runs_the_same_transactions(lc, c):
    import asyncio

    from ddb_node.client import AsyncClient

    async def atransfer(tx):
        r = await tx.query("SELECT balance FROM acct WHERE id = 1")
        await tx.execute("UPDATE acct SET balance = ? WHERE id = 1", [r.rows[0][0] - 5])
        r = await tx.query("SELECT balance FROM acct WHERE id = 2")
        await tx.execute("UPDATE acct SET balance = ? WHERE id = 2", [r.rows[0][0] + 5])

    async def main():
        async with AsyncClient(lc.client_addresses()) as ac:
            async with ac.transaction() as tx:
                await atransfer(tx)
            await ac.run_transaction(atransfer)
            tx = await ac.transaction().start()
            await atransfer(tx)
            await ac.execute("UPDATE acct SET balance = balance WHERE id = 1")   # a rival
            with pytest.raises(TransactionConflict):
                await tx.commit()
    asyncio.run(main())
    assert balances(c) == [(1, 90), (2, 110)]


def test_execute_buffers_only_statements_that_write(c):
    with c.transaction() as tx:
        assert tx.execute("SELECT balance FROM acct WHERE id = 1").rows == [(100,)]
        tx.execute("UPDATE acct SET balance = 7 WHERE id = 1")
        assert len(tx.writes) == 1
    assert balances(c) == [(1, 7), (2, 100)]


def test_an_idle_transaction_expires_in_the_client(c, monkeypatch):
    from ddb_node import transaction as txmod
    tx = c.transaction(idle=30.0)
    transfer(tx)
    later = txmod.time.monotonic() + 31
    monkeypatch.setattr(txmod.time, "monotonic", lambda: later)
    with pytest.raises(TransactionAborted, match="expired"):
        tx.commit()
    assert tx.state == "rolled back" and balances(c) == [(1, 100), (2, 100)]
