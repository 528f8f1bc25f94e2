"""The node's short write path (server/http/quick_write.py) gives the general path's answer
byte for byte, takes the plain writes, and sends nothing to the node twice.

Two fresh single-node clusters get the same corpus of `/db/execute` requests in the same
order, one with the short path on and one with it off (`DDB_HTTP_QUICK_WRITE=0`): with the
same log from the same start, every answer (status, headers but Date, body) must be equal
-- log indexes and last_insert_ids included. The corpus is sent once request by request
and once pipelined on one connection (the short path answers from a callback while later
requests queue). The corpus also has writes the short path sends and then hands to the
general path (a statement SQLite rejects: the rest runs from the node's first reply), and
the table's rows at the end show each statement ran once."""
from __future__ import annotations

import json
import socket

import pytest

from ddb_node.cluster import LocalCluster

from tests.http_support import request


def _post(path: str, body: bytes, ctype: str = "application/json") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: {ctype}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode() + body


def _j(stmts) -> bytes:
    return json.dumps(stmts).encode()


TAKEN = [  # answered by the short path
    _post("/db/execute", _j([["INSERT INTO t(name, n) VALUES (?, ?)", "a", 1]])),
    _post("/db/execute", _j(["INSERT INTO t(name) VALUES ('b')", "INSERT INTO t(name) VALUES ('c')"])),
    _post("/db/execute", _j([["INSERT INTO t(name, b) VALUES (:name, :b)", {"name": "d", "b": [0, 255]}]])),
    _post("/db/execute", _j([["UPDATE t SET n = n + 1 WHERE name = ?", "a"]])),
    _post("/db/execute", _j([["UPDATE t SET n = 0 WHERE id = -1"]])),                 # no row
    _post("/db/execute", _j([["INSERT INTO t(id, name) VALUES (1, 'dup')"]])),          # a constraint
    _post("/db/execute", _j([["SELECT count(*) FROM t"]])),                           # a read
    _post("/db/execute", _j([["INSERT INTO t(name, n) VALUES (?, ?)", "ünï <&> \u2028", 2 ** 62]])),
    _post("/db/execute", b"INSERT INTO t(name) VALUES ('plain')", "text/plain"),
    _post("/db/execute/", _j([["INSERT INTO t(name) VALUES ('slash') RETURNING id, name"]])),
    _post("/db/execute", _j([["INSERT INTO nope VALUES (1)"]])),                        # no such table
]
SENT_THEN_GENERAL = [  # sent by the short path, finished by the general path
    _post("/db/execute", _j(["INSERT INTO t(name) VALUES ('e')", "SELEKT 1",
                             "INSERT INTO t(name) VALUES ('f')"])),
    _post("/db/execute", _j(["ATTACH DATABASE 'other.db' AS other"])),                 # refused
]
DECLINED = [  # never taken: the general path from the start
    _post("/db/execute?pretty", _j([["INSERT INTO t(name) VALUES ('g')"]])),
    _post("/db/execute?transaction", _j(["INSERT INTO t(name) VALUES ('h')", "SELEKT 1"])),
    _post("/db/execute?raft_index&pretty", _j([["INSERT INTO t(name) VALUES ('i')"]])),
    _post("/db/execute", b"[[1,]"),                                                      # not JSON
    _post("/db/execute", b"[]"),                                                         # no statement
    _post("/db/execute", _j(["PRAGMA read_uncommitted"])),                              # a fixed answer
    b"GET /db/execute HTTP/1.1\r\nHost: x\r\n\r\n",                                      # 405
]
CORPUS = TAKEN + SENT_THEN_GENERAL + DECLINED
SCHEMA = _post("/db/execute", _j(["CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, "
                                  "b BLOB, n INTEGER)"]))


def _read_answers(f, count: int) -> list[tuple]:
    out = []
    for _ in range(count):
        status = int(f.readline().split()[1])
        headers = []
        while True:
            line = f.readline().rstrip(b"\r\n")
            if not line:
                break
            if not line.lower().startswith(b"date:"):
                headers.append(line)
        length = next(int(h.split(b":")[1]) for h in headers if h.lower().startswith(b"content-length:"))
        out.append((status, headers, f.read(length)))
    return out


def _exchange(addr: str, raws: list[bytes], pipelined: bool) -> list[tuple]:
    host, port = addr.rsplit(":", 1)
    out = []
    batches = [b"".join(raws)] if pipelined else raws
    for raw in batches:
        with socket.create_connection((host, int(port)), timeout=15) as s:
            s.sendall(raw)
            out += _read_answers(s.makefile("rb"), len(raws) if pipelined else 1)
    return out


def _run(tmp_path, monkeypatch, quick: bool, pipelined: bool):
    """The corpus against a fresh node -> (answers, the table's rows, quick_writes status)."""
    monkeypatch.setenv("DDB_HTTP_QUICK_WRITE", "1" if quick else "0")
    with LocalCluster(1, data_dir=str(tmp_path / f"q{int(quick)}{int(pipelined)}"), http=True) as c:
        addr = c.nodes[c.wait_for_leader()].http_addr
        assert _exchange(addr, [SCHEMA], False)[0][0] == 200
        answers = _exchange(addr, CORPUS, pipelined)
        rows = request("GET", f"http://{addr}/db/query", params={
            "q": "SELECT id, name, hex(b), n FROM t ORDER BY id", "level": "strong"}).json()
        st = request("GET", f"http://{addr}/status").json()["http"]["quick_writes"]
        return answers, rows, st


@pytest.mark.parametrize("pipelined", [False, True], ids=["one-by-one", "pipelined"])
def test_the_short_write_path_answers_as_the_general_path_byte_for_byte(tmp_path, monkeypatch,
                                                                        pipelined):
    ours, our_rows, st = _run(tmp_path, monkeypatch, True, pipelined)
    theirs, their_rows, off = _run(tmp_path, monkeypatch, False, pipelined)
    assert off == {}
    for k, (a, b) in enumerate(zip(ours, theirs)):
        assert a == b, (k, CORPUS[k][:80], a, b)
    assert len(ours) == len(theirs) == len(CORPUS)
    assert our_rows == their_rows
    # each statement ran once: the names the corpus inserted, none twice (name is UNIQUE:
    # a second run would have been a constraint error in the answers above)
    names = [r[1] for r in our_rows["results"][0]["values"]]
    assert {"a", "b", "c", "d", "e", "f", "plain", "slash", "g", "i"} <= set(names)
    assert "h" not in names                    # its transaction failed as a whole
    # the short path took what it exists for (the schema's write too)
    assert st == {"taken": 1 + len(TAKEN) + len(SENT_THEN_GENERAL), "answered": 1 + len(TAKEN)}, st
