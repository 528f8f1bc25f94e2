"""The 02-fault-injection tutorial: its cells, the one source of notebooks/02-fault-injection.ipynb.

Edit here, then `.venv/bin/python notebooks/build.py 02` (tests/test_notebook_sources.py
fails while the committed notebook and this source disagree)."""
from cells import IGNORE, code, md  # noqa: F401

CELLS = [
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
INSERT INTO ledger(entry) VALUES ('opening balance');
CREATE TABLE reg(k TEXT PRIMARY KEY, v TEXT)
"""),
    md("""
A register, too: one row per key. The session records every register read and write a cell
makes (`SELECT v FROM reg WHERE k = ...`, `INSERT OR REPLACE INTO reg(k, v) ...`), with when
it started and ended, so that `%ddb_check` can later ask whether what we saw is
*linearizable*: explainable by the operations taking effect one at a time, each at some
instant between its start and its end.
"""),
    code("""
%%ddb
INSERT OR REPLACE INTO reg(k, v) VALUES ('x', 'before')
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
## Checking what we saw

Write the register through the majority, then read it from the old leader at level `none`:
"""),
    code("""
%%ddb --timeout 15
INSERT OR REPLACE INTO reg(k, v) VALUES ('x', 'after')
"""),
    code("""
%%ddb --node {old} --level none
SELECT v FROM reg WHERE k = 'x'
"""),
    md("""
`%ddb_check` runs the project's linearizability checker (Wing & Gong's search with Lowe's
memoization, the one the simulator's tests use) over the session's register history and
draws it as a timeline: one row per client (here the notebook, and the notebook talking to
one node), a bar from each operation's start to its end, green when it succeeded. The read
of `'before'` *after* the write of `'after'` had completed cannot be explained: the checker
says so and shows the smallest part of the history that cannot be ordered.
"""),
    code("v = %ddb_check\nv", IGNORE),
    code("print(v.verdict)\nprint([(op.kind, op.value or op.output) for op in v.offending])"),
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
    md("""
With the network healthy again, `%ddb_check --workload` runs a short register workload of
its own: three concurrent clients writing and reading (at level `linearizable`) two keys.
Every read is explained by the writes around it:
"""),
    code("w = %ddb_check --workload --ops 30 --clients 3\nw", IGNORE),
    code("print(w.verdict, len(w.ops), 'operations')"),
    code("%ddb stop", IGNORE),
]
