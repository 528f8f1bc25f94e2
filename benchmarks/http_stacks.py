#!/usr/bin/env python3
"""The HTTP server stacks that could carry the node's API, on this machine, under wrk.

Every candidate serves the same trivial endpoint in one asyncio loop in a child process
(as the node does): ``GET /db/query?...`` answers a fixed 120-byte rqlite JSON body with
the node's headers. wrk (1 thread, N keep-alive connections, fixed time) loads it; the
server's own CPU per request comes from /proc, so the number is the stack's cost, not the
machine's load. Candidates: tornado (today's), a raw ``asyncio.Protocol`` with httptools'
C parser, uvicorn (ASGI, httptools) run inside the loop, each on asyncio's default loop and
on uvloop; granian is not a candidate (it runs its own Rust runtime and worker threads and
cannot serve from the node's single loop). JSON encoders are timed in-process.

    python benchmarks/http_stacks.py [--secs 5] [--conns 16] [--json out.json]
"""
from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import timeit

BODY = b'{"results":[{"columns":["v"],"types":["text"],"values":[["' + b"v" * 60 + b'"]]}]}'
HEADERS = [("Content-Type", "application/json; charset=utf-8"), ("X-DDB-VERSION", "ddb-0.1.0"),
           ("Access-Control-Allow-Methods", "OPTIONS, GET, POST"),
           ("Access-Control-Allow-Headers", "Content-Type, Authorization")]
CANDIDATES = ["tornado", "tornado+uvloop", "httptools", "httptools+uvloop", "uvicorn",
              "uvicorn+uvloop"]


# ------------------------------------------------------------------ servers (child side)
def _tornado(port: int):
    import tornado.httpserver
    import tornado.web

    class H(tornado.web.RequestHandler):
        def set_default_headers(self):
            for k, v in HEADERS[1:]:
                self.set_header(k, v)

        def get(self):
            self.set_header("Content-Type", HEADERS[0][1])
            self.finish(BODY)

    srv = tornado.httpserver.HTTPServer(tornado.web.Application([(r"/db/query", H)]))
    srv.listen(port, "127.0.0.1")


def _httptools(port: int):
    import asyncio

    import httptools

    head = ("HTTP/1.1 200 OK\r\n" + "".join(f"{k}: {v}\r\n" for k, v in HEADERS)).encode()

    class P(asyncio.Protocol):
        def connection_made(self, tr):
            self.tr = tr
            self.parser = httptools.HttpRequestParser(self)
            self.url = None

        def data_received(self, data):
            self.parser.feed_data(data)

        def on_url(self, url):
            self.url = url

        def on_message_complete(self):
            httptools.parse_url(self.url)
            self.tr.write(head + b"Content-Length: %d\r\n\r\n" % len(BODY) + BODY)

    return asyncio.get_running_loop().create_server(P, "127.0.0.1", port, backlog=1024)


def _uvicorn(port: int):
    import uvicorn

    async def app(scope, receive, send):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(k.lower().encode(), v.encode()) for k, v in HEADERS]})
        await send({"type": "http.response.body", "body": BODY})

    cfg = uvicorn.Config(app, host="127.0.0.1", port=port, http="httptools", loop="none",
                         lifespan="off", log_level="warning", access_log=False)
    return uvicorn.Server(cfg).serve()


def serve(kind: str, port: int) -> None:
    import asyncio
    base, _, loop = kind.partition("+")

    async def main():
        if base == "tornado":
            _tornado(port)
        elif base == "httptools":
            await _httptools(port)
        else:
            asyncio.ensure_future(_uvicorn(port))
        await asyncio.Event().wait()

    if loop == "uvloop":
        import uvloop
        factory = uvloop.new_event_loop
    else:
        factory = None
    with asyncio.Runner(loop_factory=factory) as r:
        r.run(main())


# ------------------------------------------------------------------ measurement (parent side)
_CLK = os.sysconf("SC_CLK_TCK")


def _cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        st = f.read()
    fl = st[st.rindex(")") + 2:].split()
    return (int(fl[11]) + int(fl[12])) / _CLK


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server on {port} did not start")


def measure(kind: str, secs: int, conns: int) -> dict:
    port = _free_port()
    p = subprocess.Popen([sys.executable, __file__, "--serve", kind, "--port", str(port)])
    try:
        _wait_port(port)
        url = f"http://127.0.0.1:{port}/db/query?level=none&q=SELECT%20v%20FROM%20kv%20WHERE%20k%3D%27s-1%27"
        c0, t0 = _cpu(p.pid), time.monotonic()
        r = subprocess.run(["wrk", "-t", "1", "-c", str(conns), "-d", f"{secs}s", url],
                           capture_output=True, text=True, timeout=secs + 30)
        cpu, wall = _cpu(p.pid) - c0, time.monotonic() - t0
        reqs = next(int(line.split()[0]) for line in r.stdout.splitlines() if "requests in" in line)
        return {"stack": kind, "conns": conns, "requests": reqs, "req_per_s": round(reqs / wall),
                "server_cpu_cores": round(cpu / wall, 2),
                "server_cpu_us_per_req": round(cpu / max(reqs, 1) * 1e6, 1)}
    finally:
        p.terminate()
        p.wait(10)


def json_encoders() -> list[dict]:
    """Encode/decode of a typical query result and an insert body, µs per call."""
    import orjson
    res = {"results": [{"columns": ["v"], "types": ["text"], "values": [["v" * 100]]}]}
    body = b'[["INSERT INTO kv(k, v) VALUES(?, ?)","p16-3-1234","' + b"v" * 100 + b'"]]'
    n = 20000
    out = []
    for name, enc, dec in [
            ("json", lambda: json.dumps(res, ensure_ascii=False, separators=(",", ":")).encode(),
             lambda: json.loads(body.decode())),
            ("orjson", lambda: orjson.dumps(res), lambda: orjson.loads(body))]:
        out.append({"json": name, "encode_us": round(timeit.timeit(enc, number=n) / n * 1e6, 2),
                    "decode_us": round(timeit.timeit(dec, number=n) / n * 1e6, 2)})
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--serve")
    p.add_argument("--port", type=int)
    p.add_argument("--secs", type=int, default=5)
    p.add_argument("--conns", type=int, default=16)
    p.add_argument("--repeat", type=int, default=2)
    p.add_argument("--only", default=",".join(CANDIDATES))
    p.add_argument("--json", help="write the results there too")
    args = p.parse_args(argv)
    if args.serve:
        serve(args.serve, args.port)
        return 0
    rows = []
    for _ in range(args.repeat):
        for kind in args.only.split(","):
            rows.append(measure(kind, args.secs, args.conns))
            print(json.dumps(rows[-1]), flush=True)
    for row in json_encoders():
        rows.append(row)
        print(json.dumps(row), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            for row in rows:
                f.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
