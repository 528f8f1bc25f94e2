"""The 00-raft-step-by-step tutorial: its cells, the one source of notebooks/00-raft-step-by-step.ipynb.

Edit here, then `.venv/bin/python notebooks/build.py 00` (tests/test_notebook_sources.py
fails while the committed notebook and this source disagree)."""
from cells import IGNORE, code, md  # noqa: F401

CELLS = [
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
## The messages, as a sequence diagram

`%ddb_sequence` draws what just happened as a message sequence (Lamport) diagram: one lifeline
per node, time flowing down, an arrow per message from the moment it was sent to the moment
it was delivered, labelled with its kind, its term (`t1`) and the log index it is about
(`i2`; `+1` is one entry carried, `c3` the commit index it announces). Role changes and
commits are marked on the lifelines. `--no-heartbeats` leaves out the idle chatter;
`--node 1,2` would keep only two lifelines.
"""),
    code("%ddb_sequence --last 16 --no-heartbeats"),
    md("""
## Every node's log

`%ddb log` puts the nodes' logs side by side (the newest entry on top): each cell is an entry's
term and what it holds. A green border means *committed* on that node, a faded cell *not yet
applied*. Entry 1 is the no-op every new leader appends to commit something of its own term.
"""),
    code("%ddb log 4"),
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
The logs now disagree. The old leader still holds its entry of term 1 at the index where the
new leader wrote its own entries of term 2: the grid highlights it in red, a *conflicting*
entry, never committed, that the new leader will overwrite. The diagram shows the messages
the partition dropped (crossed) and the new leader's election.
"""),
    code("%ddb log 5"),
    code("%ddb_sequence --last 24 --no-heartbeats"),
    md("""
Heal the network. The old leader learns of term 2, its uncommitted entry is overwritten by the
new leader's log, and every replica converges on the same table: nothing acknowledged is lost.
"""),
    code("%ddb_heal"),
    code("%ddb_run_until quiet"),
    code("%ddb log 5"),
    code("""
%%ddb --node {old} --level none
SELECT id, text FROM greetings
"""),
    code("%ddb stop"),
]
