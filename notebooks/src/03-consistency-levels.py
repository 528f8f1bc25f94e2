"""The 03-consistency-levels tutorial: its cells, the one source of notebooks/03-consistency-levels.ipynb.

Edit here, then `.venv/bin/python notebooks/build.py 03` (tests/test_notebook_sources.py
fails while the committed notebook and this source disagree)."""
from cells import IGNORE, code, md  # noqa: F401

CELLS = [
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
