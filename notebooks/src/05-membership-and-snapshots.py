"""The 05-membership-and-snapshots tutorial: its cells, the one source of notebooks/05-membership-and-snapshots.ipynb.

Edit here, then `.venv/bin/python notebooks/build.py 05` (tests/test_notebook_sources.py
fails while the committed notebook and this source disagree)."""
from cells import IGNORE, code, md  # noqa: F401

CELLS = [
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
