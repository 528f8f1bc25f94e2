"""The 06-map-reduce tutorial: its cells, the one source of notebooks/06-map-reduce.ipynb.

Edit here, then `.venv/bin/python notebooks/build.py 06` (tests/test_notebook_sources.py
fails while the committed notebook and this source disagree)."""
from cells import IGNORE, code, md  # noqa: F401

CELLS = [
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
