"""The 07-transactions tutorial: its cells, the one source of notebooks/07-transactions.ipynb.

Edit here, then `.venv/bin/python notebooks/build.py 07` (tests/test_notebook_sources.py
fails while the committed notebook and this source disagree)."""
from cells import IGNORE, code, md  # noqa: F401

CELLS = [
    md("""
# Interactive transactions

A transaction that spans several requests: BEGIN, read, decide, write, COMMIT later. rqlite
refuses them (what would a leader change mean halfway?); ddb offers them, serializable and
safe across a leader change, because of how it replicates SQL: every statement goes through
one log that every replica applies identically.

How (the design and its proof sketch are in `ddb_node/sql/DESIGN.md`):

* **BEGIN** takes a *read point* R: the cluster's commit index, confirmed by a quorum.
* **Each statement** runs on a node that has applied R, on the state at R plus the
  transaction's own earlier writes, and is then rolled back: nothing is kept on any node.
  The node reports which tables it read and wrote.
* **COMMIT** is one log entry holding the writes and a condition: *no table this transaction
  used was written after R*. Every replica checks it when it applies the entry, and either
  applies all the writes or none (a **conflict**, `TransactionConflict`: run it again).
* A transaction lives in the **term** of the leader it began with: after a leader change it
  ends with `TransactionAborted` (nothing applied; run it again).
"""),
    code("%load_ext ddb_magic"),
    code("%ddb launch -n 3", IGNORE),
    code("""
%%ddb
CREATE TABLE acct(id INTEGER PRIMARY KEY, owner TEXT, balance INTEGER NOT NULL);
INSERT INTO acct VALUES (1, 'ada', 100), (2, 'alan', 100)
"""),
    md("""
## A transfer, cell by cell

`%%ddb --begin --tx NAME` begins a transaction and runs the cell in it; `%%ddb --tx NAME`
runs more statements in it; `%ddb commit NAME` commits. The note under each cell names the
open transaction. Inside it, reads see its own writes:
"""),
    code("""
%%ddb --begin --tx t1
UPDATE acct SET balance = balance - 30 WHERE id = 1;
SELECT owner, balance FROM acct ORDER BY id
""", IGNORE),
    md("Nobody else sees the debit yet:"),
    code("""
%%ddb --level linearizable
SELECT owner, balance FROM acct ORDER BY id
"""),
    code("""
%%ddb --tx t1
UPDATE acct SET balance = balance + 30 WHERE id = 2
""", IGNORE),
    code("%ddb commit t1", IGNORE),
    code("""
%%ddb --level linearizable
SELECT owner, balance FROM acct ORDER BY id
"""),
    md("""
## A conflict, shown and retried

The same from Python, where a transaction is a `with` block (leaving it commits, an exception
inside it rolls back). Here another client writes `acct` between our read and our commit.
Conflicts are detected per table, so even a change of another column of another row makes
our commit refused, and nothing of it is applied (a coarse but simple and certain rule: the
rival could as well have changed the balances we read).
"""),
    code("""
from ddb_magic import magics_of
from ddb_node.errors import TransactionConflict

lc = magics_of(get_ipython()).clusters["default"].cluster   # the cluster launched above
c = lc.client()
other = lc.client()

def transfer(tx, src, dst, amount):
    r = tx.query("SELECT balance FROM acct WHERE id = ?", [src])
    tx.execute("UPDATE acct SET balance = ? WHERE id = ?", [r.rows[0][0] - amount, src])
    r = tx.query("SELECT balance FROM acct WHERE id = ?", [dst])
    tx.execute("UPDATE acct SET balance = ? WHERE id = ?", [r.rows[0][0] + amount, dst])

tx = c.transaction()
transfer(tx, 1, 2, 10)
other.execute("UPDATE acct SET owner = 'ada lovelace' WHERE id = 1")   # a rival commits first
try:
    tx.commit()
except TransactionConflict as e:
    print("TransactionConflict:", str(e).split(" at index")[0])
print(c.query("SELECT balance FROM acct ORDER BY id", level="linearizable")[0].rows)
"""),
    md("""
`run_transaction(fn, retries=N)` runs `fn(tx)` in a fresh transaction after each conflict.
Four threads doing five transfers each all get through, and the total stays 200:
"""),
    code("""
import threading

def worker():
    with lc.client() as mine:
        for _ in range(5):
            mine.run_transaction(lambda tx: transfer(tx, 1, 2, 1), retries=100)

threads = [threading.Thread(target=worker) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(c.query("SELECT balance, sum(balance) OVER () FROM acct ORDER BY id", level="linearizable")[0].rows)
"""),
    md("""
## The leader dies in the middle of a transaction

A transaction lives in the term of the leader it began with. Kill that leader (SIGKILL) in
the middle of one, and its next statement says so: `TransactionAborted`, nothing applied,
`rerun` true — the whole transaction may simply run again, which is what
`run_transaction` does. Never half a transfer.
"""),
    code("""
from ddb_node.errors import TransactionAborted

tx = c.transaction()
r = tx.query("SELECT balance FROM acct WHERE id = 1")
tx.execute("UPDATE acct SET balance = ? WHERE id = 1", [r.rows[0][0] - 50])
old = lc.wait_for_leader(10)
lc.kill(old)                                   # the leader dies, the transaction is open
try:
    tx.query("SELECT balance FROM acct WHERE id = 2")
except TransactionAborted as e:
    print("aborted, rerun:", e.rerun)
    print(str(e).split(" (")[0])
print(c.query("SELECT balance FROM acct ORDER BY id", level="linearizable")[0].rows)
"""),
    md("""
`run_transaction` runs it again under the new leader: the transfer applies once.
"""),
    code("""
c.run_transaction(lambda tx: transfer(tx, 1, 2, 50), retries=20)
print(c.query("SELECT balance FROM acct ORDER BY id", level="linearizable")[0].rows)
"""),
    code("lc.restart(old); c.close(); other.close()", IGNORE),
    md("""
Over HTTP the same is `POST /db/tx` (a transaction id), statements with `?tx=ID`, then
`POST /db/tx/ID/commit` (409 on a conflict) or `/rollback` (README, "Transactions").
"""),
    code("%ddb stop", IGNORE),
]
