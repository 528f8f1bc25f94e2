"""Helpers for the HTTP API tests: a tiny stdlib HTTP client that never follows redirects."""
from __future__ import annotations

import base64
import http.client
import json
import ssl
from urllib.parse import urlencode, urlsplit

from tests.nodehelpers import wait_until  # noqa: F401  (the HTTP tests' import)


class Resp:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body

    def json(self):
        return json.loads(self.body)

    @property
    def text(self):
        return self.body.decode()

    def __repr__(self):
        return f"Resp({self.status}, {self.body[:300]!r})"


def request(method: str, url: str, body=None, *, params=None, ctype="application/json",
            auth: tuple | None = None, headers: dict | None = None, timeout: float = 15.0,
            context: ssl.SSLContext | None = None) -> Resp:
    u = urlsplit(url)
    path = u.path or "/"
    query = u.query
    if params:
        extra = "&".join(k if v is None else urlencode({k: v}) for k, v in params.items())
        query = f"{query}&{extra}" if query else extra
    if query:
        path += "?" + query
    if body is not None and not isinstance(body, (bytes, str)):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    h = {"Content-Type": ctype} if body is not None else {}
    if auth:
        h["Authorization"] = "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
    h.update(headers or {})
    if u.scheme == "https":
        conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=timeout, context=context)
    else:
        conn = http.client.HTTPConnection(u.hostname, u.port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=h)
        r = conn.getresponse()
        return Resp(r.status, r.getheaders(), r.read())
    finally:
        conn.close()


def leader_url(cluster) -> str:
    lid = cluster.wait_for_leader()
    return "http://" + cluster.nodes[lid].http_addr


def follower_url(cluster) -> str:
    lid = cluster.wait_for_leader()
    fid = next(i for i, n in cluster.nodes.items() if i != lid and n.state == "running")
    return "http://" + cluster.nodes[fid].http_addr
