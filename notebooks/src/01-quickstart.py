"""The 01-quickstart tutorial: its cells, the one source of notebooks/01-quickstart.ipynb.

Edit here, then `.venv/bin/python notebooks/build.py 01` (tests/test_notebook_sources.py
fails while the committed notebook and this source disagree)."""
from cells import IGNORE, code, md  # noqa: F401

CELLS = [
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
## From pandas, and back as a plot

`%ddb --persist DF [TABLE]` writes a pandas DataFrame into the cluster as a new table (the
column types follow the dtypes: integers `INTEGER`, floats `REAL`, datetimes ISO `TEXT`),
in chunks of rows, each chunk **one** log entry; `--append DF [TABLE]` adds rows to an
existing table.
"""),
    code("""
import pandas as pd
readings = pd.DataFrame({
    "city": ["Lyon", "Porto", "Turku", "Ghent"] * 150,
    "celsius": [round((i * 37 % 100 + i * 53 % 100) / 7 - 4, 1) for i in range(600)],
    "day": pd.date_range("2026-01-01", periods=600, freq="h"),
})
readings.dtypes
"""),
    code("%ddb --persist readings"),
    code("""
%%ddb
SELECT city, count(*) AS n, round(avg(celsius), 2) AS mean, min(day) AS first FROM readings
GROUP BY city ORDER BY city
"""),
    md("""
`%ddb_plot hist|box|bar COLUMN --table T` draws a plot whose numbers are computed in the
cluster: only the bucket counts (or a box plot's five numbers, or the counts per value)
travel, never the rows. It returns the matplotlib Axes:
"""),
    code("%ddb_plot hist celsius --table readings --bins 12"),
    md("""
Queries compose, as in jupysql: `--save NAME` keeps a query under a name, `--with NAME` puts
it in front of another query as a CTE (`WITH NAME AS (...)`); `--file PATH` runs a `.sql`
file. (`%config DdbMagic.displaylimit = N` sets how many rows are shown, `%config
DdbMagic.autopandas = True` makes a cell's value the bare DataFrame.)
"""),
    code("""
%%ddb --save warm --no-execute
SELECT * FROM readings WHERE celsius > 20
"""),
    code("""
%%ddb --with warm
SELECT city, count(*) AS warm_hours FROM warm GROUP BY city ORDER BY warm_hours DESC, city
"""),
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
