"""`GET /db/changes` on a real cluster: newline-delimited JSON (one answer, or followed as
changes apply), the WebSocket form, and the 410 of a reader behind retention."""
from __future__ import annotations

import asyncio
import http.client
import json
from urllib.parse import urlsplit

import pytest
from tornado.websocket import websocket_connect

from tests.http_support import follower_url, leader_url, request

CLUSTER_OPTIONS = {"storage": "memory"}


def execute(cluster, *stmts):
    r = request("POST", leader_url(cluster) + "/db/execute", list(stmts))
    assert r.status == 200 and "error" not in json.dumps(r.json()), r.text
    return r.json()


@pytest.fixture(scope="module", autouse=True)
def schema(cluster):
    execute(cluster, "CREATE TABLE items(id INTEGER PRIMARY KEY, name TEXT, data BLOB)",
            "CREATE TABLE noise(x)")


def ndjson(body: bytes) -> list:
    return [json.loads(line) for line in body.decode().splitlines() if line]


def through(r) -> int:
    return int(r.headers["x-ddb-changes-through"])


def test_one_answer_lists_the_changes_after_since_as_ndjson_from_a_follower(cluster):
    base = follower_url(cluster)
    start = through(request("GET", base + "/db/changes", params={"since": 0}))
    execute(cluster, "INSERT INTO items(id, name, data) VALUES (1, 'one', x'0001')",
            "INSERT INTO noise VALUES (1)", "UPDATE items SET name = 'uno' WHERE id = 1")
    r = request("GET", base + "/db/changes", params={"since": start, "tables": "items", "wait": 5})
    assert r.status == 200
    assert r.headers["content-type"].startswith("application/x-ndjson")
    events = ndjson(r.body)
    if len(events) < 2:        # the follower answered as soon as the first entry applied
        events += ndjson(request("GET", base + "/db/changes",
                                 params={"since": through(r), "tables": "items", "wait": 5}).body)
    assert [(e["op"], e["key"]) for e in events] == [("insert", 1), ("update", 1)]
    assert events[0]["new"] == {"id": 1, "name": "one", "data": "AAE="}     # blobs: base64
    assert events[1]["old"]["name"] == "one" and events[1]["new"]["name"] == "uno"


def test_follow_streams_changes_as_they_apply_with_resume_points(cluster):
    base = leader_url(cluster)
    start = through(request("GET", base + "/db/changes"))
    u = urlsplit(base)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=15)
    try:
        conn.request("GET", f"/db/changes?since={start}&tables=items&follow")
        resp = conn.getresponse()
        assert resp.status == 200
        first = json.loads(resp.readline())
        assert first == {"through": first["through"]} and first["through"] >= start
        execute(cluster, "INSERT INTO items(id, name) VALUES (2, 'two')")
        lines = []
        while not any("op" in x for x in lines):
            lines.append(json.loads(resp.readline()))
        ev = next(x for x in lines if "op" in x)
        assert (ev["op"], ev["key"], ev["new"]["name"]) == ("insert", 2, "two")
        after = json.loads(resp.readline())
        assert after["through"] >= ev["index"]
    finally:
        conn.close()


def test_websocket_form_sends_one_frame_per_event(cluster):
    base = follower_url(cluster)
    start = through(request("GET", base + "/db/changes"))

    async def go():
        ws = await websocket_connect(base.replace("http", "ws") + f"/db/changes?since={start}&tables=items")
        try:
            execute(cluster, "DELETE FROM items WHERE id = 2")
            while True:
                msg = json.loads(await asyncio.wait_for(ws.read_message(), 15))
                if "op" in msg:
                    return msg
        finally:
            ws.close()
    ev = asyncio.run(go())
    assert (ev["op"], ev["key"], ev["old"]["name"], ev["new"]) == ("delete", 2, "two", None)


def test_a_bad_argument_is_a_400(cluster):
    r = request("GET", leader_url(cluster) + "/db/changes", params={"since": "-1"})
    assert r.status == 400 and "since" in r.text


class Receiver:
    """A webhook destination: records every POSTed body; refuses the first one (503)."""

    def __init__(self):
        import http.server
        import threading
        outer = self
        self.bodies: list = []
        self.refused = 0
        self.cv = threading.Condition()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                with outer.cv:
                    if outer.refused == 0:
                        outer.refused += 1
                        code = 503
                    else:
                        outer.bodies.append(json.loads(body))
                        code = 200
                    outer.cv.notify_all()
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/cdc"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def indexes(self) -> dict:
        with self.cv:
            return {m["index"]: m for b in self.bodies for m in b["payload"]}

    def wait_for(self, pred, timeout=30.0) -> bool:
        import time
        end = time.monotonic() + timeout
        with self.cv:
            while not pred():
                if time.monotonic() > end:
                    return False
                self.cv.wait(0.2)
        return True

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_the_webhook_posts_every_change_once_or_more_in_rqlites_shape_across_a_leader_change(tmp_path):
    from ddb_node.cluster import LocalCluster
    rx = Receiver()
    try:
        with LocalCluster(3, data_dir=str(tmp_path), storage="memory",
                          extra_args=("--cdc-config", rx.url)) as lc:
            leader = lc.wait_for_leader()
            with lc.client(timeout=20) as c:
                c.execute("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)")
                for i in range(1, 11):
                    c.execute("INSERT INTO t(id, v) VALUES (?, 'a')", [i])
                assert rx.wait_for(lambda: len(rx.indexes()) >= 10)
                lc.kill(leader)
                for i in range(11, 21):
                    c.execute("INSERT INTO t(id, v) VALUES (?, 'b')", [i])
                c.execute("UPDATE t SET v = 'c' WHERE id = 20")
                c.execute("DELETE FROM t WHERE id = 1")
            assert rx.wait_for(lambda: len(rx.indexes()) >= 22), sorted(rx.indexes())
    finally:
        rx.close()
    assert rx.refused == 1                               # refused once, then sent again
    by_index = rx.indexes()
    events = [ev for i in sorted(by_index) for ev in by_index[i]["events"]]
    inserted = {ev["new_row_id"] for ev in events if ev["op"] == "INSERT"}
    assert inserted == set(range(1, 21))
    assert all(b["node_id"] in {"1", "2", "3"} for b in rx.bodies)
    upd = next(ev for ev in events if ev["op"] == "UPDATE")
    assert upd == {"op": "UPDATE", "table": "t", "old_row_id": 20, "new_row_id": 20,
                   "before": {"id": 20, "v": "b"}, "after": {"id": 20, "v": "c"}}
    dele = next(ev for ev in events if ev["op"] == "DELETE")
    assert dele == {"op": "DELETE", "table": "t", "old_row_id": 1, "before": {"id": 1, "v": "a"}}
    assert len({b["node_id"] for b in rx.bodies}) >= 2    # the new leader took over sending
