"""The 04-determinism tutorial: its cells, the one source of notebooks/04-determinism.ipynb.

Edit here, then `.venv/bin/python notebooks/build.py 04` (tests/test_notebook_sources.py
fails while the committed notebook and this source disagree)."""
from cells import IGNORE, code, md  # noqa: F401

CELLS = [
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
