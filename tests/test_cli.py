"""The `ddb` command, run for real (a subprocess per command) against real node processes."""
from __future__ import annotations

import csv
import io
import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest

from ddb_node.cli.cluster import alive
from ddb_node.cluster import free_ports

from tests.nodehelpers import wait_until


def ddb(*args, input=None, env=None, timeout=60, check=None):
    """Run `python -m ddb_node.cli ARGS`; -> CompletedProcess (text)."""
    e = dict(os.environ, **(env or {}))
    p = subprocess.run([sys.executable, "-m", "ddb_node.cli", *map(str, args)], input=input,
                       capture_output=True, text=True, env=e, timeout=timeout)
    if check is not None:
        assert p.returncode == check, f"exit {p.returncode}\nstdout: {p.stdout}\nstderr: {p.stderr}"
    return p


def one_error_line(p) -> str:
    assert p.returncode != 0
    assert "Traceback" not in p.stderr, p.stderr
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    return lines[0]


@pytest.fixture(scope="module")
def addrs(lc):
    return ",".join(lc.client_addresses())


@pytest.fixture(autouse=True)
def _ddb_home(tmp_path, monkeypatch):
    monkeypatch.setenv("DDB_HOME", str(tmp_path / "home"))


def test_exec_and_query_json_and_csv(addrs):
    p = ddb("exec", addrs, "CREATE TABLE qj(id INTEGER PRIMARY KEY, name TEXT, score REAL, raw BLOB); "
            "INSERT INTO qj(name, score, raw) VALUES ('ann', 1.5, x'00ff'), ('bob, jr', NULL, NULL)",
            check=0)
    out = json.loads(p.stdout)             # not a terminal: JSON by default
    assert out["results"][1]["rows_affected"] == 2 and out["results"][1]["last_insert_id"] == 2

    p = ddb("query", addrs, "SELECT id, name, score, raw FROM qj ORDER BY id", "--format", "json",
            "--level", "linearizable", check=0)
    out = json.loads(p.stdout)
    r = out["results"][0]
    assert r["columns"] == ["id", "name", "score", "raw"]
    assert r["decltypes"] == ["INTEGER", "TEXT", "REAL", "BLOB"]
    assert r["rows"] == [[1, "ann", 1.5, {"$base64": "AP8="}], [2, "bob, jr", None, None]]
    assert out["level"] == "linearizable" and out["index"] >= 1

    p = ddb("query", addrs, "SELECT id, name, score FROM qj WHERE id >= ? ORDER BY id",
            "--params", "[1]", "-f", "csv", check=0)
    assert list(csv.reader(io.StringIO(p.stdout))) == [["id", "name", "score"], ["1", "ann", "1.5"],
                                                       ["2", "bob, jr", ""]]

    p = ddb("query", addrs, "SELECT count(*) AS n FROM qj", "-f", "table", check=0)
    assert "│ n │" in p.stdout or "| n |" in p.stdout
    assert "(1 row)" in p.stdout


def test_exec_transaction_is_all_or_nothing(addrs):
    ddb("exec", addrs, "CREATE TABLE tx(a INTEGER)", check=0)
    p = ddb("exec", addrs, "INSERT INTO tx VALUES (1); INSERT INTO no_such_table VALUES (2)",
            "--transaction")
    line = one_error_line(p)
    assert "no such table: no_such_table" in line
    p = ddb("query", addrs, "SELECT count(*) FROM tx", "-f", "csv", check=0)
    assert p.stdout.splitlines()[1] == "0"


@pytest.mark.parametrize("cmd,sql,expect", [
    ("query", "SELEC 1", "syntax error"),
    ("query", "SELECT * FROM missing_table", "no such table"),
    ("exec", "INSERT INTO missing_table VALUES (1)", "no such table"),
])
def test_bad_sql_is_one_line_and_nonzero(addrs, cmd, sql, expect):
    p = ddb(cmd, addrs, sql)
    line = one_error_line(p)
    assert line.startswith(f"ddb {cmd}: ") and expect in line
    assert p.stdout == ""


def test_unreachable_is_one_line():
    port = free_ports(1)[0]
    t0 = time.monotonic()
    p = ddb("query", f"127.0.0.1:{port}", "SELECT 1", "--timeout", "1")
    assert "cannot connect" in one_error_line(p)
    assert time.monotonic() - t0 < 15


def test_no_cluster_state_is_one_line(tmp_path):
    p = ddb("query", "SELECT 1", "--dir", tmp_path / "nothing")
    assert "no cluster in" in one_error_line(p)


SCRIPT = """\
.help
CREATE TABLE sh(id INTEGER PRIMARY KEY,
                name TEXT);
INSERT INTO sh(name) VALUES ('alpha'), ('beta');
.level linearizable
.timer on
SELECT id, name FROM sh
 ORDER BY id;
.timer off
.nodes
.status
.tables
.partition 1,2 / 3
.isolate 3
.heal
SELECT 1 AS last
"""


def test_shell_script_prints_bordered_tables(addrs):
    p = ddb("shell", addrs, input=SCRIPT, check=0)
    out = p.stdout
    assert ".partition 1,2 / 3" in out and ".kill N" in out          # .help
    assert "2 rows affected" in out
    assert "level: linearizable" in out
    table = ["┌────┬───────┐",
             "│ id │ name  │",
             "├────┼───────┤",
             "│  1 │ alpha │",
             "│  2 │ beta  │",
             "└────┴───────┘",
             "(2 rows)"]
    assert "\n".join(table) in out, out
    assert "time: " in out and "level linearizable" in out
    assert "│ voter │" in out                                           # .nodes
    assert "│ leader   │" in out and "│ follower │" in out               # .status
    assert re.search(r"^│ sh +│$", out, re.M), out                      # .tables (others too)
    assert "partitioned: 1,2 / 3 (on nodes 1, 2, 3)" in out
    assert "isolated node 3 (on nodes 1, 2, 3)" in out
    assert "healed (on nodes 1, 2, 3)" in out
    assert "│    1 │" in out                                             # no final ';' needed
    assert p.stderr == ""


def test_shell_errors_and_ascii(addrs):
    p = ddb("shell", addrs, "--ascii", input="SELECT * FROM nope;\n.frobnicate\n.kill 1\n"
            ".level\nSELECT 7 AS x;\n")
    assert p.returncode == 1
    assert "Traceback" not in p.stderr
    errs = p.stderr.strip().splitlines()
    assert len(errs) == 3
    assert "no such table: nope" in errs[0]
    assert "unknown command .frobnicate" in errs[1]
    assert "only for a cluster started by `ddb cluster up`" in errs[2]
    assert "+---+\n| x |\n+---+\n| 7 |\n+---+" in p.stdout      # it carried on


def test_bench_is_bounded_json(addrs):
    p = ddb("bench", addrs, "--kind", "insert", "--ops", "40", "--clients", "4", check=0)
    out = json.loads(p.stdout)
    assert out["ops"] == 40 and out["errors"] == 0 and out["ops_per_s"] > 0
    assert 0 < out["p50_ms"] <= out["p99_ms"]
    p = ddb("bench", addrs, "--kind", "read", "--level", "linearizable", "--ops", "40",
            "--rows", "50", check=0)
    assert json.loads(p.stdout)["ops"] == 40
    p = ddb("bench", addrs, "--kind", "batch", "--batch-size", "10", "--ops", "5", check=0)
    out = json.loads(p.stdout)
    assert out["ops"] == 5 and out["rows_per_s"] > 0


def test_keygen(tmp_path):
    path = tmp_path / "keys.json"
    ddb("keygen", "--out", path, check=0)
    keys = json.loads(path.read_text())
    assert set(keys) == {"public", "secret"}
    assert len(keys["public"]) == 40 and len(keys["secret"]) == 40 and keys["public"] != keys["secret"]
    assert (path.stat().st_mode & 0o777) == 0o600
    assert "exists" in one_error_line(ddb("keygen", "--out", path))
    assert set(json.loads(ddb("keygen", check=0).stdout)) == {"public", "secret"}


def test_node_command_runs_one_node(tmp_path):
    p1, p2 = free_ports(2)
    peer, client = f"tcp://127.0.0.1:{p1}", f"tcp://127.0.0.1:{p2}"
    node = subprocess.Popen([sys.executable, "-m", "ddb_node.cli", "node", "--id", "1",
                             "--storage", "memory", "--listen", peer, "--client", client,
                             "--peers", f"1={peer}/{client}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # the node takes a moment to start (Python's imports): `ddb exec` fails fast and
        # clearly on a node that is not up yet, so wait until it answers
        wait_until(lambda: ddb("query", client, "SELECT 1").returncode == 0, 60,
                   what="the node to answer")
        p = ddb("exec", client, "CREATE TABLE one(a); INSERT INTO one VALUES (42)", check=0)
        assert json.loads(p.stdout)["results"][1]["rows_affected"] == 1
        p = ddb("query", client, "SELECT a FROM one", "-f", "csv", check=0)
        assert p.stdout.splitlines() == ["a", "42"]
    finally:
        node.send_signal(signal.SIGTERM)
        rc = node.wait(15)
    assert rc == 0, node.stderr.read().decode()
    # ids are strings as in rqlite ("0" is one); an empty one is refused with a clear error
    bad = ddb("node", "--id", "", "--storage", "memory", "--listen", peer, "--client", client)
    assert bad.returncode != 0 and "Traceback" not in bad.stderr and "bad node id" in bad.stderr


def test_cluster_up_status_down(tmp_path):
    d = tmp_path / "c"
    state_file = d / "cluster.json"
    try:
        p = ddb("cluster", "up", "-n", "3", "--dir", d, check=0)
        assert "leader node" in p.stdout and "clients: tcp://127.0.0.1:" in p.stdout
        state = json.loads(state_file.read_text())
        nodes = state["nodes"]
        assert len(nodes) == 3 and all(alive(n) for n in nodes)
        # the nodes outlive the command that started them (their own session)
        assert all(os.getsid(n["pid"]) == n["pid"] for n in nodes)

        assert "already running" in one_error_line(ddb("cluster", "up", "--dir", d))

        p = ddb("cluster", "status", "--dir", d, check=0)
        for col in ("id", "state", "role", "term", "leader", "commit", "applied", "last index"):
            assert col in p.stdout
        assert p.stdout.count("running") == 3 and "leader" in p.stdout

        # no address: the cluster of the state file
        ddb("exec", "--dir", d, "CREATE TABLE kept(a); INSERT INTO kept VALUES ('still here')", check=0)

        # kill and restart a node through the shell's dot-commands
        victim = nodes[2]
        p = ddb("shell", "--dir", d, input=".kill 3\n.status\n.restart 3\n", check=0)
        assert "killed node 3" in p.stdout and "restarted node 3" in p.stdout
        assert "│  3 │ killed  │" in p.stdout
        assert not alive(victim)
        new = json.loads(state_file.read_text())["nodes"][2]
        assert new["pid"] != victim["pid"] and alive(new)
        deadline = time.monotonic() + 20
        while True:                        # the restarted node rejoins and catches up
            st = json.loads(ddb("cluster", "status", "--dir", d, "--json", check=0).stdout)
            n3 = st["nodes"][2]
            if n3.get("role") == "follower" and n3.get("applied", 0) >= st["nodes"][0].get("applied", 1):
                break
            assert time.monotonic() < deadline, st
            time.sleep(0.1)

        p = ddb("cluster", "down", "--dir", d, check=0)
        assert not state_file.exists()
        assert not any(alive(n) for n in nodes + [new])
        assert (d / "node1").is_dir()      # data kept

        # up again in the same dir: the same cluster, from its data
        ddb("cluster", "up", "--dir", d, check=0)
        p = ddb("query", "--dir", d, "SELECT a FROM kept", "-f", "csv", check=0)
        assert p.stdout.splitlines() == ["a", "still here"]
        nodes = json.loads(state_file.read_text())["nodes"]
        ddb("cluster", "down", "--dir", d, "--purge", check=0)
        assert not any(alive(n) for n in nodes)
        assert not d.exists()
        assert "no cluster in" in one_error_line(ddb("cluster", "status", "--dir", d))
    finally:
        if state_file.exists():            # never leave processes behind, even on failure
            for n in json.loads(state_file.read_text())["nodes"]:
                if alive(n):
                    os.kill(n["pid"], signal.SIGKILL)
