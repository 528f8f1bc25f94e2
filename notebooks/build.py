"""Write the tutorial notebooks from the text below and execute them, so the stored outputs
are the reference nbval compares against.

    .venv/bin/python notebooks/build.py            # all notebooks
    .venv/bin/python notebooks/build.py 02         # the ones whose name starts with 02

Cell tags used (see notebooks/README.md): `nbval-ignore-output` for outputs that depend on
timing or on which node wins an election (the cell still has to run without error);
everything else is compared strictly after notebooks/sanitize.cfg.
"""
from __future__ import annotations

import os
import sys

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = os.path.dirname(os.path.abspath(__file__))
IGNORE = ["nbval-ignore-output"]


def md(text):
    return new_markdown_cell(text.strip("\n"))


def code(text, tags=None):
    c = new_code_cell(text.strip("\n"))
    if tags:
        c.metadata["tags"] = list(tags)
    return c


NOTEBOOKS: dict[str, list] = {}

# ============================================================================ 00
NOTEBOOKS["00-raft-step-by-step"] = [
    md("""
# Raft, one event at a time

This notebook runs a **simulated** ddb cluster inside the kernel: three Raft nodes, each with
its own SQLite database, connected by a simulated network, on *virtual* time. Nothing happens
between cells unless a cell makes it happen, and the simulation is a pure function of its
seed: run the notebook again and you get the same story, message for message.

The magics are the same as for a real cluster (`%%ddb`, `%ddb_partition`, …), plus three for
driving time:

| magic | what it does |
|---|---|
| `%ddb_step [N]` | fire the next N events (a tick, the delivery of a message, or a disk write finishing) |
| `%ddb_tick [N]` | let N ticks (10 ms each) of virtual time pass |
| `%ddb_run_until leader\\|commit\\|quiet\\|campaign` | run until that condition holds |
"""),
    code("%load_ext ddb_magic"),
    code("%ddb launch --sim -n 3 --seed 7"),
    md("""
## Before the election

Every node starts as a *follower* in term 0 with an empty log. A follower waits for a leader's
heartbeat; if none comes within its *election timeout* (10 to 20 ticks, randomized per node
so that they rarely all time out together), it starts an election. Five ticks is not enough:
"""),
    code("%ddb_tick 5"),
    md("""
## A node campaigns

Let the clock run until some node gives up waiting. ddb uses **pre-vote** (Raft dissertation
§9.6): the node first asks *would you vote for me?* without increasing its term, so that a
node cut off from the others cannot disrupt the cluster with ever-growing terms when it comes
back.
"""),
    code("%ddb_run_until campaign"),
    md("""
Now step through the election. Watch for `PRE_VOTE` requests and responses, the node becoming
a `candidate` in term 1, its vote being **persisted** (a node must never forget whom it voted
for), the `VOTE` requests, and the votes coming back. The arrows show what each event caused.
"""),
    code("%ddb_step 6"),
    code("%ddb_step 6"),
    md("""
A candidate that holds votes from a majority (2 of 3, counting its own) becomes **leader**. Its
first act is to append an empty entry of its own term: only once an entry of the current term
is committed does the leader know which entries are committed (Raft §5.4.2).
"""),
    code("%ddb_run_until leader"),
    md("""
## A replicated write

`%%ddb` sends SQL to the cluster. Normally it runs the simulation until the statement is
committed and applied; with `--no-wait` it only hands the write to the leader, so we can
watch it travel. First a table (run to completion):
"""),
    code("""
%%ddb
CREATE TABLE greetings(id INTEGER PRIMARY KEY, text TEXT, at TEXT DEFAULT CURRENT_TIMESTAMP)
"""),
    code("""
%%ddb --no-wait
INSERT INTO greetings(text) VALUES ('hello, raft')
"""),
    md("""
The leader appended the entry to its log. Now: `APP` (AppendEntries) messages carry it to the
followers, each follower persists it and answers with `APP_RESP`, and as soon as a majority
holds it the leader **commits** it, applies it to its SQLite database, and tells the followers
the new commit index with its next message.
"""),
    code("%ddb_step 8"),
    code("%ddb_run_until commit"),
    md("""
The leader has committed and applied the entry; the followers learn the new commit index with
the leader's next message. Run until the cluster is quiet (every node holds the whole log,
committed and applied):
"""),
    code("%ddb_run_until quiet"),
    md("""
Every replica computes the same row, including the `DEFAULT CURRENT_TIMESTAMP`: the leader
stamps each entry with a time (here virtual time, starting at 2026-01-01), and SQLite's clock
reads that stamp on every replica.
"""),
    code("""
%%ddb --node 1 --level none
SELECT * FROM greetings
"""),
    code("""
%%ddb --node 3 --level none
SELECT * FROM greetings
"""),
    md("""
## A partition, replayed exactly

Isolate the leader. It keeps believing it leads for a while, but it can no longer commit
anything: a write sent to it waits for a majority that never answers.
"""),
    code("old = %ddb leader\nprint('leader: n%d' % old)"),
    code("%ddb_partition --isolate {old}"),
    code("""
%%ddb --node {old} --timeout 1
INSERT INTO greetings(text) VALUES ('lost in the minority')
"""),
    md("""
The two other nodes stop hearing heartbeats, one of them campaigns and wins term 2. The old
leader notices it has lost contact with the majority (*check quorum*) and steps down.
"""),
    code("%ddb wait leader --not {old}"),
    code("""
%%ddb
INSERT INTO greetings(text) VALUES ('written by the majority')
"""),
    md("""
Heal the network. The old leader learns of term 2, its uncommitted entry is overwritten by the
new leader's log, and every replica converges on the same table: nothing acknowledged is lost.
"""),
    code("%ddb_heal"),
    code("%ddb_run_until quiet"),
    code("""
%%ddb --node {old} --level none
SELECT id, text FROM greetings
"""),
    code("%ddb stop"),
]

# ============================================================================ 01
NOTEBOOKS["01-quickstart"] = [
    md("""
# ddb quickstart

ddb is SQLite replicated with Raft: several node processes each keep a copy of the database,
and every write is agreed on by a majority before it is applied. This notebook starts a
three-node cluster on this machine, creates a table, writes and reads, and shows the cluster.

Load the extension:
"""),
    code("%load_ext ddb_magic"),
    md("""
`%ddb launch` starts three node processes on 127.0.0.1 (their data goes to a temporary
directory that is removed when the cluster stops or the kernel shuts down) and waits until
they have elected a leader:
"""),
    code("%ddb launch -n 3", IGNORE),
    md("""
## SQL cells

A `%%ddb` cell runs every statement it contains and shows every result. Each comes with a
caption: the node that answered, the consistency level, the Raft log index the answer
reflects, the number of rows, and the time SQLite took.

Writes go through the Raft log: the leader appends them, a majority stores them, then every
node applies them to its own SQLite database. All statements of a cell are **one** log entry.
"""),
    code("""
%%ddb
CREATE TABLE cities(
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    country TEXT,
    population INTEGER,
    area_km2 REAL
);
INSERT INTO cities(name, country, population, area_km2) VALUES
    ('Lyon', 'FR', 522250, 47.87),
    ('Porto', 'PT', 231800, 41.42),
    ('Turku', 'FI', 201863, 245.67),
    ('Ghent', 'BE', 265086, 156.18),
    ('Utopia', NULL, NULL, NULL)
"""),
    md("Reads come back as pandas DataFrames:"),
    code("""
%%ddb
SELECT name, country, population, round(population / area_km2) AS density
FROM cities ORDER BY population DESC
"""),
    md("""
The columns are typed from SQLite's type affinity: `INTEGER` columns become pandas' nullable
`Int64` (exact, even for 64-bit values), `REAL` becomes `Float64`, `TEXT` becomes `string`,
and a `NULL` is a missing value rather than turning a whole column into floats.

To keep a result, put `NAME <<` before the SQL (`NAME= <<` also shows it). A line form works too:
"""),
    code("""
%%ddb big <<
SELECT * FROM cities WHERE population > 250000
"""),
    code("big.dtypes"),
    code("n = %ddb SELECT count(*) AS n FROM cities\nn"),
    md("""
Python values go into SQL as bound parameters with `:name` (safe: no quoting problems), and
`{{expression}}` pastes text into the SQL (for table names and the like):
"""),
    code("min_population = 230000\ntable = 'cities'"),
    code("""
%%ddb
SELECT name FROM {{table}} WHERE population >= :min_population ORDER BY name
"""),
    md("""
Mistakes give one line, not a traceback. Statements before the failing one still ran (use
`--transaction` to make a cell all or nothing):
"""),
    code("""
%%ddb
SELECT count(*) AS before FROM cities;
SELEKT * FROM cities
"""),
    code("""
%%ddb --transaction
INSERT INTO cities(name) VALUES ('Atlantis');
INSERT INTO no_such_table VALUES (1)
"""),
    code("%ddb SELECT count(*) AS still FROM cities"),
    md("""
## The cluster

`%ddb status` draws the cluster: each node's role and term, how far its log goes, how much of
it is committed and applied. The leader is highlighted; the timeline lists what happened since
launch.
"""),
    code("%ddb status", IGNORE),
    code("%ddb nodes", IGNORE),
    md("""
Next: `02-fault-injection` breaks this cluster on purpose. When you are done, stop the cluster
(shutting down the kernel does it too):
"""),
    code("%ddb stop", IGNORE),
]

# ============================================================================ 02
NOTEBOOKS["02-fault-injection"] = [
    md("""
# Fault injection: partition the leader

Raft promises that a write acknowledged by the cluster is never lost, and that a node cut off
from the majority cannot make progress on its own. Here we check both on real node processes:
we cut the leader off from the other two nodes, try to write on both sides, then heal.

The fault magics change the network filters inside every node (the same vocabulary as the
simulator): `%ddb_partition`, `%ddb_heal`, `%ddb_drop`, `%ddb_delay`; and the processes:
`%ddb_kill`, `%ddb_restart`, `%ddb_pause`, `%ddb_resume`, `%ddb_elect`. Each shows the
cluster picture afterwards.
"""),
    code("%load_ext ddb_magic"),
    code("%ddb launch -n 3", IGNORE),
    code("""
%%ddb
CREATE TABLE ledger(id INTEGER PRIMARY KEY, entry TEXT NOT NULL);
INSERT INTO ledger(entry) VALUES ('opening balance')
"""),
    md("Which node leads depends on who won the election; keep it in a variable:"),
    code("old = %ddb leader\nprint(f'the leader is n{old}')", IGNORE),
    md("""
## Cut the leader off

`%ddb_partition --isolate N` cuts every link of node N (`%ddb_partition 1,2 / 3` names the
groups explicitly). The picture shows the cut links in red.
"""),
    code("%ddb_partition --isolate {old}", IGNORE),
    md("""
A write sent straight to the old leader cannot commit: the leader appends it to its log, but
no majority can acknowledge it. The cell gives up after its timeout with a clear message
(the outcome of such a write is *unknown* to the client, which is why Raft clients retry
with a session that makes a retry safe).
"""),
    code("""
%%ddb --node {old} --timeout 3
INSERT INTO ledger(entry) VALUES ('written in the minority')
""", IGNORE),
    md("""
Meanwhile the majority stops hearing from the leader, holds an election, and carries on:
"""),
    code("%ddb wait leader --not {old}", IGNORE),
    code("new = %ddb leader\nprint(f'new leader n{new}, old leader n{old}')", IGNORE),
    code("""
%%ddb --timeout 15
INSERT INTO ledger(entry) VALUES ('written by the majority')
"""),
    md("""
The old node still answers reads at level `none` from its own copy: it does not have the
majority's write. (That is what `none` means: fast, local, possibly stale. See
`03-consistency-levels`.)
"""),
    code("""
%%ddb --node {old} --level none
SELECT entry FROM ledger ORDER BY id
"""),
    code("%ddb status", IGNORE),
    md("""
## Heal

When the network heals, the old leader hears of the newer term and steps down; its
uncommitted entry is overwritten by the new leader's log; every node ends up with the same
data. The write that was acknowledged survived; the one that was not acknowledged is gone,
exactly as promised.
"""),
    code("%ddb_heal", IGNORE),
    code("%ddb wait quiet", IGNORE),
    code("""
%%ddb --node {old} --level none
SELECT entry FROM ledger ORDER BY id
"""),
    code("%ddb status", IGNORE),
    md("""
## Crashes, pauses and slow links

A killed node loses nothing it acknowledged (its log is on disk, fsynced before it answers);
when it restarts it catches up from the leader. A paused node (`SIGSTOP`) is alive but silent,
the nastiest kind of failure for timeouts.
"""),
    code("%ddb_kill {new}", IGNORE),
    code("""
%%ddb --timeout 15
INSERT INTO ledger(entry) VALUES ('while a node was down')
"""),
    code("%ddb_restart {new}", IGNORE),
    code("%ddb wait quiet", IGNORE),
    code("""
%%ddb --node {new} --level none
SELECT count(*) AS entries FROM ledger
"""),
    md("""
Messages can also be lost or delayed. With 20% of the messages dropped and 30 ms of extra
latency, writes still commit, only more slowly:
"""),
    code("%ddb_drop 20%\n%ddb_delay 30 --jitter 10", IGNORE),
    code("""
%%ddb --timeout 20
INSERT INTO ledger(entry) VALUES ('through a bad network')
"""),
    code("%ddb_heal", IGNORE),
    code("%ddb SELECT count(*) AS entries FROM ledger"),
    code("%ddb stop", IGNORE),
]

# ============================================================================ 03
NOTEBOOKS["03-consistency-levels"] = [
    md("""
# Consistency levels

A read can be answered in different ways, trading speed for freshness. ddb uses rqlite's
vocabulary:

| level | who answers | can it be stale? |
|---|---|---|
| `none` | any node, from its local copy | yes, without bound |
| `weak` (default) | the node that believes it leads | only in the short window where a deposed leader does not know it yet |
| `linearizable` | the leader, after confirming with a majority that it still leads (ReadIndex) | no |
| `strong` | the read goes through the Raft log like a write | no (and slow) |

Set the default for the session with `%ddb level LEVEL`, or per cell with `--level`.
"""),
    code("%load_ext ddb_magic"),
    code("%ddb launch -n 3", IGNORE),
    code("""
%%ddb
CREATE TABLE counter(id INTEGER PRIMARY KEY, value INTEGER);
INSERT INTO counter VALUES (1, 1)
"""),
    md("Pick a follower and cut it off from the others:"),
    code("""
leader = %ddb leader
follower = next(i for i in (1, 2, 3) if i != leader)
print(f'leader n{leader}, isolating follower n{follower}')
""", IGNORE),
    code("%ddb_partition --isolate {follower}", IGNORE),
    md("The majority keeps accepting writes:"),
    code("""
%%ddb
UPDATE counter SET value = value + 1 WHERE id = 1;
UPDATE counter SET value = value + 1 WHERE id = 1
"""),
    code("%%ddb --level linearizable\nSELECT value FROM counter"),
    md("""
## `none` on the isolated follower: a stale answer

The follower answers from its own copy at once. It never saw the two updates, so it reports
the old value, with no warning: that is the deal `none` offers.
"""),
    code("""
%%ddb --node {follower} --level none
SELECT value FROM counter
"""),
    md("""
## `linearizable` on the isolated follower: a refusal

A linearizable read must be confirmed by the leader and a majority. The isolated follower
cannot reach either, so the read fails (after the timeout) instead of returning stale data.
Depending on how far the follower has got, the one-line message says there is no leader or no
quorum; either way it will not lie.
"""),
    code("""
%%ddb --node {follower} --level linearizable --timeout 2
SELECT value FROM counter
""", IGNORE),
    md("""
Heal, and the follower catches up; now `none` on the follower gives the current value too
(a `none` read is only as fresh as the node's copy):
"""),
    code("%ddb_heal", IGNORE),
    code("%ddb wait quiet", IGNORE),
    code("""
%%ddb --node {follower} --level none
SELECT value FROM counter
"""),
    md("""
## The default level

`%ddb level` changes the default for every following cell:
"""),
    code("%ddb level linearizable"),
    code("%ddb SELECT value FROM counter"),
    code("%ddb level weak"),
    code("%ddb stop", IGNORE),
]

# ============================================================================ 04
NOTEBOOKS["04-determinism"] = [
    md("""
# Determinism: the same values on every replica

ddb replicates **statements**, not data pages: every node runs the same SQL on its own SQLite
database. That only works if the SQL computes the same result everywhere. Plain SQLite would
not: `random()`, `datetime('now')` and `DEFAULT CURRENT_TIMESTAMP` read the local clock and a
local random generator.

ddb fixes that at the source: the leader stamps every log entry with a timestamp and a random
seed, and while a node applies the entry, SQLite's clock reads the stamp and its random
generator is seeded from the entry. Every replica therefore computes the same values.
"""),
    code("%load_ext ddb_magic"),
    code("%ddb launch -n 3", IGNORE),
    code("""
%%ddb
CREATE TABLE events(
    id INTEGER PRIMARY KEY,
    token INTEGER DEFAULT (random()),
    salt BLOB DEFAULT (randomblob(8)),
    created TEXT DEFAULT CURRENT_TIMESTAMP,
    note TEXT
);
INSERT INTO events(note) VALUES ('first'), ('second');
INSERT INTO events(note, token, created) VALUES ('explicit', random(), datetime('now'))
"""),
    code("%ddb wait quiet", IGNORE),
    md("Read the table from each node's own copy (`--level none` on each node):"),
    code("""
%%ddb --node 1 --level none
SELECT * FROM events
""", IGNORE),
    code("""
%%ddb --node 2 --level none
SELECT * FROM events
""", IGNORE),
    md("""
The values are random and the timestamps are today's, so they differ from run to run, but
never from node to node. Let's compare all three replicas in Python:
"""),
    code("""
from ddb_magic import magics_of

cluster = magics_of(get_ipython()).clusters['default']
client = cluster.client
copies = {n: client.query_on(n, 'SELECT * FROM events ORDER BY id').results[0].rows for n in (1, 2, 3)}
print('rows per replica:', {n: len(rows) for n, rows in copies.items()})
print('identical on every replica:', copies[1] == copies[2] == copies[3])
"""),
    md("""
Each entry has its own seed, so two statements in two different entries get different random
values, while one entry applied on three nodes gets the same:
"""),
    code("""
tokens = [row[1] for row in copies[1]]
print('tokens all different:', len(set(tokens)) == len(tokens))
"""),
    md("""
Reads are different: they are not in the log, so `random()` or `datetime('now')` in a plain
`SELECT` is evaluated by whichever node answers, with its real clock. Only what is written is
made deterministic.
"""),
    code("%ddb stop", IGNORE),
]

# ============================================================================ 05
NOTEBOOKS["05-membership-and-snapshots"] = [
    md("""
# Membership changes and snapshots

A cluster can grow and shrink while it serves. ddb changes membership one server at a time:
a new node joins as a **learner** (it receives the log but does not vote), and is promoted to
voter once it has caught up, so adding a node never weakens the majority.

A long-lived cluster cannot keep its whole log forever. Every so many entries each node takes a
**snapshot** of its SQLite database (with SQLite's backup API) and drops the log before it. A
node that is too far behind, or brand new, receives the snapshot instead of the entries.

We launch with a small snapshot interval to see it happen:
"""),
    code("%load_ext ddb_magic"),
    code("%ddb launch -n 3 --snapshot-entries 20", IGNORE),
    code("""
%%ddb
CREATE TABLE readings(id INTEGER PRIMARY KEY, sensor TEXT, value REAL)
"""),
    md("Sixty writes, one log entry each:"),
    code("""
for i in range(60):
    _ = get_ipython().run_cell_magic('ddb', 'r <<', f"INSERT INTO readings(sensor, value) VALUES ('s{i % 4}', {i} * 0.5)")
"""),
    code("%ddb SELECT count(*) AS readings FROM readings"),
    md("""
Each node has taken snapshots and dropped the log before them: `log_first` is well above 1.
"""),
    code("""
nodes = %ddb nodes
nodes[['node', 'role', 'commit', 'snapshot', 'log_first', 'log_last']]
""", IGNORE),
    code("""
print('every node compacted its log:', bool((nodes['log_first'] > 1).all()))
"""),
    md("""
## Adding a node

`%ddb add-node` starts a fourth process. The log it would need starts before what the leader
still keeps, so the leader sends its snapshot, then the entries after it. The new node becomes
a voter once it has caught up.
"""),
    code("%ddb add-node", IGNORE),
    code("%ddb wait quiet", IGNORE),
    code("""
%%ddb --node 4 --level none
SELECT sensor, count(*) AS n, round(avg(value), 2) AS mean FROM readings GROUP BY sensor ORDER BY sensor
"""),
    code("""
from ddb_magic import magics_of
cluster = magics_of(get_ipython()).clusters['default'].cluster
installed = cluster.status()[4]['counters']['snapshots_installed']
print('node 4 installed a snapshot:', installed >= 1)
"""),
    md("""
## Removing a node

`%ddb remove-node N` takes a node out of the configuration (through the log, like everything
else), then stops its process. The cluster carries on with the others. Removing the leader
works too: it steps down once the change is committed.
"""),
    code("%ddb remove-node 1", IGNORE),
    code("""
%%ddb --timeout 15
INSERT INTO readings(sensor, value) VALUES ('s0', 100.0)
"""),
    code("%ddb SELECT count(*) AS readings FROM readings"),
    code("%ddb stop", IGNORE),
]

# ============================================================================ 06
NOTEBOOKS["06-map-reduce"] = [
    md("""
# Map/reduce over the replicas

Every node holds the whole database, so every node can answer a query. `%%ddb --map-reduce`
splits one query over all of them: each node computes its share of the rows, then the
partial results are combined. It is useful when a query is CPU-bound (each node uses its own
core) and a nice way to see that the replicas really hold the same data.

The **map** query runs on every node, all at one common log index (the map step goes through
the log, so every node computes its share at exactly the same point). It receives two
parameters: `:ddb_part` (this node's number, from 0) and `:ddb_parts` (how many nodes), and
typically keeps the rows where `rowid % :ddb_parts = :ddb_part`. The optional **reduce**
query runs over a table named `map` holding every node's partial rows.
"""),
    code("%load_ext ddb_magic"),
    code("%ddb launch -n 3", IGNORE),
    code("""
%%ddb
CREATE TABLE sales(id INTEGER PRIMARY KEY, region TEXT, amount INTEGER);
INSERT INTO sales(region, amount)
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 3000)
SELECT CASE i % 3 WHEN 0 THEN 'north' WHEN 1 THEN 'south' ELSE 'west' END, i % 97 FROM n
"""),
    md("The ordinary way, on one node:"),
    code("""
%%ddb
SELECT region, count(*) AS n, sum(amount) AS total FROM sales GROUP BY region ORDER BY region
"""),
    md("The same, split over the three nodes and combined:"),
    code("""
%%ddb --map-reduce
SELECT region, count(*) AS n, sum(amount) AS total FROM sales
WHERE rowid % :ddb_parts = :ddb_part GROUP BY region;
SELECT region, sum(n) AS n, sum(total) AS total FROM map GROUP BY region ORDER BY region
"""),
    md("""
Without a reduce query you get the concatenated partial results, one group of rows per node:
"""),
    code("""
%%ddb --map-reduce parts= <<
SELECT :ddb_part AS part, count(*) AS n FROM sales WHERE rowid % :ddb_parts = :ddb_part
"""),
    code("print('every row counted once:', int(parts['n'].sum()) == 3000)"),
    code("%ddb stop", IGNORE),
]

# ============================================================================ 07
NOTEBOOKS["07-transactions"] = [
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

Nothing of an open transaction lives on a node, so killing the leader (SIGKILL) does not end
it: its next statements run on the new leader, and the commit applies if nobody wrote the
table meanwhile (a conflict, otherwise: never half a transfer).
"""),
    code("""
tx = c.transaction()
r = tx.query("SELECT balance FROM acct WHERE id = 1")
tx.execute("UPDATE acct SET balance = ? WHERE id = 1", [r.rows[0][0] - 50])
old = lc.wait_for_leader(10)
lc.kill(old)                                   # the leader dies, the transaction is open
r = tx.query("SELECT balance FROM acct WHERE id = 2")
tx.execute("UPDATE acct SET balance = ? WHERE id = 2", [r.rows[0][0] + 50])
tx.commit()
print("committed by a new leader:", tx.response.node != old)
print(c.query("SELECT balance FROM acct ORDER BY id", level="linearizable")[0].rows)
"""),
    code("lc.restart(old); c.close(); other.close()", IGNORE),
    md("""
Over HTTP the same is `POST /db/tx` (a transaction id), statements with `?tx=ID`, then
`POST /db/tx/ID/commit` (409 on a conflict) or `/rollback` (README, "Transactions").
"""),
    code("%ddb stop", IGNORE),
]


def build(names=None, execute=True):
    from ddb_magic.quickstart import execute_notebook
    for name, cells in NOTEBOOKS.items():
        if names and not any(name.startswith(n) for n in names):
            continue
        nb = new_notebook(cells=cells)
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                     "language": "python"}
        nb.metadata["language_info"] = {"name": "python"}
        if execute:
            execute_notebook(nb, HERE, timeout=180)
        path = os.path.join(HERE, name + ".ipynb")
        nbformat.write(nb, path)
        print("wrote", path)


if __name__ == "__main__":
    build(sys.argv[1:] or None)
