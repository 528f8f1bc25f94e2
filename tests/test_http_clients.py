"""Real rqlite clients from PyPI against a 3-node ddb cluster: pyrqlite (DB-API),
SQLAlchemy through sqlalchemy-rqlite, and jupysql's %sql on that SQLAlchemy URL."""
from __future__ import annotations

import datetime

import pytest


from tests.http_support import follower_url, leader_url

pyrqlite = pytest.importorskip("pyrqlite.dbapi2")


CLUSTER_OPTIONS = {"storage": "memory"}   # see conftest.py


def _hostport(url):
    host, port = url.split("//")[1].split(":")
    return host, int(port)


def test_pyrqlite_dbapi(cluster):
    host, port = _hostport(leader_url(cluster))
    conn = pyrqlite.connect(host=host, port=port)
    cur = conn.cursor()
    cur.execute("CREATE TABLE people (id INTEGER PRIMARY KEY, name TEXT, age INTEGER, "
                "photo BLOB, born DATE, seen DATETIME, stamp TIMESTAMP, score REAL)")
    when = datetime.datetime(2004, 2, 14, 7, 15, 0, 500000)
    cur.execute("INSERT INTO people(name, age, photo, born, seen, stamp, score) VALUES(?, ?, ?, ?, ?, ?, ?)",
                ("fiona", 20, b"\x00\xffpng", datetime.date(2004, 2, 14), when, when, 1.5))
    assert cur.lastrowid == 1
    cur.execute("INSERT INTO people(name, age) VALUES(:name, :age)", {"name": "declan", "age": 30})
    assert cur.lastrowid == 2
    cur.execute("SELECT id, name, age, photo, born, seen, stamp, score FROM people ORDER BY id")
    rows = cur.fetchall()
    # pyrqlite's converters: DATE -> date, TIMESTAMP -> datetime, DATETIME -> text (as sqlite3
    # does without converters); all three need rqlite's RFC 3339 form on the wire
    assert [tuple(r) for r in rows] == [
        (1, "fiona", 20, b"\x00\xffpng", datetime.date(2004, 2, 14), "2004-02-14 07:15:00.5", when, 1.5),
        (2, "declan", 30, None, None, None, None, None)]
    assert [d[0] for d in cur.description] == ["id", "name", "age", "photo", "born", "seen", "stamp", "score"]
    cur.execute("UPDATE people SET age = age + 1")
    assert cur.rowcount == 2
    cur.execute("SELECT name FROM people WHERE age > ?", (25,))
    assert cur.fetchone()[0] == "declan"
    with pytest.raises(pyrqlite.Error):
        cur.execute("INSERT INTO nosuch VALUES(1)")
    with pytest.raises(pyrqlite.Error):
        cur.execute("SELEC nonsense")
    cur.execute("SELECT count(*) FROM people", consistency="strong")
    assert cur.fetchone()[0] == 2
    conn.close()


def test_pyrqlite_follows_301_from_a_follower(cluster):
    host, port = _hostport(follower_url(cluster))
    conn = pyrqlite.connect(host=host, port=port)
    cur = conn.cursor()
    # pyrqlite sends no ?redirect: the follower forwards; both must work
    cur.execute("CREATE TABLE IF NOT EXISTS r (v TEXT)")
    cur.execute("INSERT INTO r VALUES(?)", ("forwarded",))
    conn.close()
    # a follower asked to redirect answers 301 + Location; pyrqlite follows it
    from pyrqlite.connections import Connection
    seen = []
    orig = Connection._fetch_response

    def fetch(self, method, uri, body=None, headers={}):
        if "redirect" not in uri:
            uri += ("&" if "?" in uri else "?") + "redirect"
        resp = orig(self, method, uri, body=body, headers=headers)
        seen.append((self.host, self.port))
        return resp
    Connection._fetch_response = fetch
    try:
        conn = pyrqlite.connect(host=host, port=port)
        cur = conn.cursor()
        cur.execute("INSERT INTO r VALUES(?)", ("redirected",))
        cur.execute("SELECT v FROM r ORDER BY rowid")
        assert [r[0] for r in cur.fetchall()] == ["forwarded", "redirected"]
        lhost, lport = _hostport(leader_url(cluster))
        assert (lhost, lport) in seen    # the connection moved to the leader
        conn.close()
    finally:
        Connection._fetch_response = orig


def _engine(url):
    sa = pytest.importorskip("sqlalchemy")
    pytest.importorskip("sqlalchemy_rqlite")
    host, port = _hostport(url)
    eng = sa.create_engine(f"rqlite+pyrqlite://{host}:{port}/")
    # sqlalchemy-rqlite 2.0 leaves server_version_info None (the first connect sets it so);
    # SQLAlchemy 2.x's SQLite reflection compares it with a tuple: a client-side gap,
    # whatever the server answers. Set it after the first connect.
    with eng.connect():
        pass
    eng.dialect.server_version_info = (3, 45, 0)
    return eng


def test_sqlalchemy_create_insert_select_reflect(cluster):
    sa = pytest.importorskip("sqlalchemy")
    eng = _engine(leader_url(cluster))
    md = sa.MetaData()
    users = sa.Table("users", md, sa.Column("id", sa.Integer, primary_key=True),
                     sa.Column("name", sa.String(50), nullable=False),
                     sa.Column("joined", sa.DateTime), sa.Column("avatar", sa.LargeBinary))
    sa.Index("users_name", users.c.name)
    md.create_all(eng)
    with eng.connect() as c:
        c.execute(users.insert(), [{"name": "ann", "joined": datetime.datetime(2020, 1, 2, 3, 4, 5),
                                    "avatar": b"\x01\x02"},
                                   {"name": "bob", "joined": None, "avatar": None}])
        c.commit()
        rows = c.execute(sa.select(users.c.name, users.c.joined, users.c.avatar).order_by(users.c.id)).all()
    assert rows == [("ann", datetime.datetime(2020, 1, 2, 3, 4, 5), b"\x01\x02"), ("bob", None, None)]
    insp = sa.inspect(_engine(follower_url(cluster)))
    assert "users" in insp.get_table_names()
    cols = {c["name"]: c for c in insp.get_columns("users")}
    assert list(cols) == ["id", "name", "joined", "avatar"]
    assert isinstance(cols["name"]["type"], sa.String) and cols["name"]["nullable"] is False
    assert insp.get_pk_constraint("users")["constrained_columns"] == ["id"]
    assert [i["name"] for i in insp.get_indexes("users")] == ["users_name"]
    reflected = sa.Table("users", sa.MetaData(), autoload_with=_engine(leader_url(cluster)))
    assert [c.name for c in reflected.columns] == ["id", "name", "joined", "avatar"]


def test_jupysql_cell(cluster, monkeypatch):
    monkeypatch.setenv("PLOOMBER_STATS_ENABLED", "false")     # no telemetry from a test
    pytest.importorskip("sql.magic")
    from IPython.core.interactiveshell import InteractiveShell
    ip = InteractiveShell.instance()          # the one shell of this process, whoever made it first
    host, port = _hostport(leader_url(cluster))
    ip.run_line_magic("load_ext", "sql")
    ip.run_line_magic("config", "SqlMagic.displaylimit = 0")
    ip.run_line_magic("config", "SqlMagic.autopandas = False")
    import sqlalchemy as sa
    eng = _engine(leader_url(cluster))
    ip.user_ns["ddb_engine"] = eng
    ip.run_line_magic("sql", "ddb_engine")
    ip.run_cell_magic("sql", "", "CREATE TABLE nb (k TEXT, v INTEGER);\n"
                                 "INSERT INTO nb VALUES ('a', 1);\nINSERT INTO nb VALUES ('b', 2);")
    res = ip.run_cell_magic("sql", "", "SELECT k, v FROM nb ORDER BY k")
    assert [tuple(r) for r in res] == [("a", 1), ("b", 2)]
    df = res.DataFrame()
    assert list(df.columns) == ["k", "v"] and df["v"].sum() == 3
    from sql.connection import ConnectionManager
    ConnectionManager.close_all(verbose=False)
