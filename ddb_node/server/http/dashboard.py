"""The dashboard: its page and static files, and the endpoints behind its buttons
(/ddb/cluster: the picture; /ddb/faults, /ddb/control)."""
from __future__ import annotations

import asyncio
import hashlib
import json
import mimetypes
import os
import time

from tornado.httpclient import AsyncHTTPClient, HTTPClientError


from .errors import REASONS as _REASONS
from .errors import HttpError
from .endpoint import (DEFAULT_HEADERS, Endpoint, error_response, flags_of, send_json)
from .server import Response
from .ws import light_status

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


# ---------------------------------------------------------------------- ddb's own
class ClusterEndpoint(Endpoint):
    """GET /ddb/cluster: every member's light status, as each answers it (for the dashboard)."""
    perms = ("status",)

    async def handle(self, service, req):
        flags = flags_of(req)
        s = service.server
        timeout = min(flags.timeout or 0.8, 5.0)
        ids = sorted(set(s.raft.voters) | set(s.raft.learners))

        async def one(nid):
            try:
                if nid == s.id:
                    st = light_status(s)
                    st["reachable"] = True
                    return st
                st = await service.member_status(nid, timeout)
                return {"id": nid, "role": st.get("role"), "term": st.get("term"),
                        "leader": st.get("leader"), "commit": st.get("commit"),
                        "applied": st.get("applied"), "last_index": st.get("last_index"),
                        "voters": st.get("voters"), "learners": st.get("learners"),
                        "faults": st.get("faults"), "reachable": True, "pid": st.get("pid"),
                        "reads": (st.get("counters") or {}).get("reads_served"),
                        "writes": (st.get("counters") or {}).get("writes_applied"),
                        "http": (st.get("addresses") or {}).get("http")}
            except Exception as e:
                return {"id": nid, "reachable": False, "error": type(e).__name__,
                        "http": service.member_http().get(nid)}

        nodes = await asyncio.gather(*(one(n) for n in ids))
        return send_json({"node": s.id, "nodes": nodes, "t": time.time()}, flags)


class FaultsEndpoint(Endpoint):
    """POST /ddb/faults {"cmd": {...fault command...}, "nodes": "all" | [ids]}: apply a fault
    command (the simulator's vocabulary) on this node or on every member (via their zmq
    client port, so it works even when the peer links are cut)."""
    perms = ("faults",)
    methods = ("GET", "POST")

    async def handle(self, service, req):
        s = service.server
        if req.method == "GET":
            return send_json({"node": s.id, "faults": s.transport.faults.state.describe()})
        try:
            data = json.loads(req.body)
            cmd = data["cmd"]
            if not isinstance(cmd, dict):
                raise TypeError
        except (ValueError, TypeError, KeyError):
            return error_response(service, HttpError(
                400, 'body must be {"cmd": {"action": ...}, "nodes": "all"}'))
        targets = data.get("nodes", "all")
        ids = sorted(set(s.raft.voters) | set(s.raft.learners) | {s.id}) if targets == "all" \
            else [int(t) for t in targets]
        if cmd.get("action") == "isolate" and "peers" not in cmd:
            cmd["peers"] = ids

        async def one(nid):
            try:
                if nid == s.id:
                    return await s.handle({"op": "faults", "cmd": cmd})
                a = s.book.get(nid) or {}
                return await service.peer_client().call_addr(a["client"], {"op": "faults", "cmd": cmd}, 2.0)
            except Exception as e:
                return {"ok": False, "error": {"type": type(e).__name__, "message": str(e)}}

        res = await asyncio.gather(*(one(n) for n in ids))
        bad = [r for r in res if not r.get("ok") and (r.get("error") or {}).get("type") == "BadRequest"]
        if bad:
            return error_response(service, HttpError(400, bad[0]["error"]["message"]))
        return send_json({str(n): (r.get("faults") if r.get("ok") else {"error": r.get("error")})
                          for n, r in zip(ids, res)})


class ControlEndpoint(Endpoint):
    """POST /ddb/control {"action": "crash"}: this node's process exits at once (a crash, as
    kill -9 would do). Restart, pause and resume need the process that started the node: its
    launcher serves them on an authenticated control path of its own (http.control), whose
    link ``LocalCluster.dashboard_url()`` and ``ddb cluster up --http`` give."""
    perms = ("faults",)
    methods = ("POST",)

    async def handle(self, service, req):
        s = service.server
        try:
            data = json.loads(req.body)
            action, node = data.get("action"), data.get("node")
            node = int(node) if node is not None else s.id
        except (ValueError, AttributeError, TypeError):
            action = node = None
        if action not in ("crash", "kill"):
            return error_response(service, HttpError(400, 'action must be "crash"'))
        if node != s.id:
            return await self._forward(service, req, node)
        loop = asyncio.get_running_loop()
        # exit once this answer is on its way (the response is written before the timer fires)
        loop.call_later(0.05, os._exit, 137)
        return send_json({"node": s.id, "action": "crash"})

    @staticmethod
    async def _forward(service, req, node: int) -> Response:
        http = service.member_http().get(node)
        if not http:
            try:
                await service.member_status(node, 2.0)
            except Exception:
                pass
            http = service.member_http().get(node)
        if not http:
            return error_response(service, HttpError(503, f"no HTTP address known for node {node}"))
        headers = {"Content-Type": "application/json"}
        if req.headers.get("authorization"):
            headers["Authorization"] = req.headers["authorization"]
        try:
            r = await AsyncHTTPClient().fetch(f"{service.scheme}://{http}/ddb/control",
                                              method="POST", headers=headers, validate_cert=False,
                                              body=json.dumps({"action": "crash"}), request_timeout=5.0)
            return send_json(json.loads(r.body))
        except HTTPClientError as e:
            return error_response(service, HttpError(e.code, f"node {node} refused: {e.code}"))
        except Exception as e:
            return error_response(service, HttpError(503, f"node {node} unreachable: {type(e).__name__}"))


class DashboardEndpoint(Endpoint):
    perms = ("ui",)

    async def handle(self, service, req):
        with open(os.path.join(STATIC_DIR, "dashboard.html"), "rb") as f:
            body = f.read()
        return Response(200, body, [("Content-Type", "text/html; charset=utf-8")] + DEFAULT_HEADERS
                        + [("Cache-Control", "no-store")])


class RootEndpoint(Endpoint):
    async def handle(self, service, req):
        return Response(302, b"", DEFAULT_HEADERS + [("Location", "/status")])


def _html_error(status: int) -> Response:
    text = f"{status}: {_REASONS[status]}"
    return Response(status, f"<html><title>{text}</title><body>{text}</body></html>".encode(),
                    [("Content-Type", "text/html; charset=UTF-8")])


class StaticEndpoint(Endpoint):
    """/static/<file>: the dashboard's assets (GET and HEAD, ETag and 304)."""
    perms = ("ui",)
    methods = ("GET", "HEAD")
    default_headers = False

    async def handle(self, service, req):
        name = req.path[len("/static/"):]
        root = os.path.realpath(STATIC_DIR)
        path = os.path.realpath(os.path.join(root, name))
        if not path.startswith(root + os.sep):
            return _html_error(403)
        if not os.path.isfile(path):
            return _html_error(404)
        with open(path, "rb") as f:
            body = f.read()
        etag = '"%s"' % hashlib.md5(body).hexdigest()
        headers = [("Etag", etag), ("Accept-Ranges", "bytes")]
        if req.headers.get("if-none-match") in (etag, "*"):
            return Response(304, b"", headers)
        ctype = mimetypes.guess_type(path)[0] or "application/octet-stream"
        return Response(200, body, [("Content-Type", ctype)] + headers)
