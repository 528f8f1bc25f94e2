"""The HTTP endpoints: rqlite's API, ddb's own, the dashboard, and the routing between them.

Each endpoint is one stateless object: the methods it accepts, the permission it needs, its
body limit, and ``async handle(service, request) -> Response``. ``Router`` is the
application ``http_server`` calls: at the end of the headers it finds the endpoint and
refuses an oversized body (413) before reading it; then it answers OPTIONS, 405 and 401 and
hands the request to the endpoint. Error answers are short and generic: nothing about the
request, the users or the node leaks.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import mimetypes
import os
import platform
import socket
import sys
import tempfile
import time

from tornado.httpclient import AsyncHTTPClient, HTTPClientError

from ddb_node.node_ids import internal_id
from ddb_node.protocol import RequestError
from ddb_node.raft import NONE, Role

from . import http_format as fmt
from .http_auth import parse_basic
from .http_errors import REASONS as _REASONS
from .http_errors import HttpError
from .http_metrics import DebugVarsEndpoint
from .http_ops import BootEndpoint, LoadEndpoint, ReapEndpoint, SnapshotEndpoint, skip_internal
from .http_endpoint import (DEFAULT_HEADERS, VERSION, Endpoint, answer_error, error_response,
                            flags_of, raft_addr, redirect_to_leader, send_json, send_text)
from .http_server import Request, Response
from .http_status import snapshot_store, sqlite3_status
from .http_ws import light_status, websocket_endpoint
from .options import tcp

STATIC_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static")


# ---------------------------------------------------------------------- SQL
_STMTS_RX = {"execute": "execute_stmts_rx", "query": "query_stmts_rx", "request": "request_stmts_rx"}


def answer_headers(ran: dict) -> list:
    """Who answered and from which state, beside rqlite's body (the console shows them):
    X-DDB-Node (the node that ran it: the leader for a forwarded write), X-DDB-Index (the
    write's log index, or the applied index the read saw), X-DDB-Level (the level served)."""
    out = []
    for name, key in (("X-DDB-Node", "node"), ("X-DDB-Index", "index"), ("X-DDB-Level", "level")):
        if ran.get(key) is not None:
            out.append((name, str(ran[key])))
    return out


class SqlEndpoint(Endpoint):
    """/db/execute, /db/query, /db/request: rqlite's statements onto the node's ``handle``."""

    def __init__(self, endpoint: str, methods: tuple, perms: tuple):
        self.endpoint = endpoint
        self.methods = methods
        self.perms = perms

    def statements(self, req: Request, flags) -> list:
        if req.method == "GET":
            if not flags.q:
                raise HttpError(400, "no statements")
            return [[flags.q]]
        try:
            return fmt.parse_body(req.body, req.headers.get("content-type"))
        except fmt.BodyError as e:
            raise HttpError(400, str(e)) from None

    async def handle(self, service, req: Request) -> Response:
        t0 = time.perf_counter()
        flags = flags_of(req)
        try:
            stmts = self.statements(req, flags)
            service.metrics.http[_STMTS_RX[self.endpoint]] += len(stmts)
            if self.endpoint == "execute" and flags.queue:
                return await self.queued(service, stmts, flags, t0)
            ran = await service.run_statements(stmts, flags, readonly=self.endpoint == "query")
        except HttpError as e:
            if e.status == 200:
                return send_json(self._top({"results": [], "error": e.message}, flags, t0), flags)
            return await answer_error(service, req, e)
        tm, assoc, blob = flags.timings, flags.associative, flags.blob_array
        results = []
        for group in ran["results"]:
            for r in group:
                if self.endpoint == "execute":
                    results.append(fmt.exec_result(r, tm))
                elif self.endpoint == "query":
                    results.append(fmt.query_result(r, tm, assoc, blob))
                else:
                    results.append(fmt.request_result(r, tm, assoc, blob))
        out = {"results": results}
        if flags.raft_index and ran.get("index") and self.endpoint != "query":
            out["raft_index"] = ran["index"]
        resp = send_json(self._top(out, flags, t0), flags)
        resp.headers = resp.headers + answer_headers(ran)
        return resp

    @staticmethod
    def _top(out: dict, flags, t0) -> dict:
        if not out.get("results") and "error" in out:
            out.pop("results")
        if flags.timings:
            out["time"] = time.perf_counter() - t0
        return {k: out[k] for k in ("results", "error", "time", "sequence_number", "raft_index")
                if k in out}

    async def queued(self, service, stmts, flags, t0) -> Response:
        if service.server.raft.leader_id == NONE and not flags.noleader:
            raise HttpError(503, "leader not found")
        seq, fut = service.queue.put(stmts)
        counts = service.metrics.http
        counts["queued_executions"] += 1
        counts["queued_executions_num_stmts_rx"] += len(stmts)
        if flags.wait:
            counts["queued_executions_wait"] += 1
            try:
                await asyncio.wait_for(asyncio.shield(fut), flags.timeout or 30.0)
            except asyncio.TimeoutError:
                counts["queued_executions_wait_timeout"] += 1
                raise HttpError(408, "timeout") from None
        out = {"results": [], "sequence_number": seq}
        if flags.timings:
            out["time"] = time.perf_counter() - t0
        return send_json(out, flags)


# ---------------------------------------------------------------------- status & cluster
def _role_name(role) -> str:
    return {Role.LEADER: "Leader", Role.FOLLOWER: "Follower"}.get(Role(role), "Candidate")


def _sub_json(obj, key: str | None):
    if not key:
        return obj
    for k in key.split("."):
        if isinstance(obj, dict):
            if k not in obj:
                return {}
            obj = obj[k]
        else:
            return obj
    return obj


class StatusEndpoint(Endpoint):
    perms = ("status",)

    async def handle(self, service, req):
        flags = flags_of(req)
        s = service.server
        r = s.raft
        st = s.status()
        leader = s.leader_info() or {}
        snap = s.storage.snapshot_meta()
        try:
            last_term = r.log_term(r.last_index) or 0
        except Exception:
            last_term = 0
        store = {
            "node_id": str(s.id),
            "addr": raft_addr(s.opts.peer_addr),
            "leader": {"node_id": str(leader["id"]) if leader else "",
                       "addr": raft_addr(leader.get("peer"))},
            "ready": r.leader_id != NONE,
            "raft": {"state": _role_name(r.role), "term": r.term, "commit_index": r.commit_index,
                     "applied_index": s.sm.applied_index, "last_log_index": r.last_index,
                     "last_log_term": last_term, "first_log_index": s.storage.first_index(),
                     "snapshot_index": st.get("snapshot_index"),
                     "last_snapshot_index": snap.index, "last_snapshot_term": snap.term,
                     "voter": s.id in r.voters,
                     "num_peers": max(0, len(r.voters) - (1 if s.id in r.voters else 0)),
                     "latest_configuration": [{"id": str(v), "voter": True} for v in sorted(r.voters)]
                     + [{"id": str(v), "voter": False} for v in sorted(r.learners)]},
            "fsm_index": s.sm.applied_index,
            "db_applied_index": s.sm.applied_index,
            "sqlite3": {"path": s.sm.path, "durable_index": s.sm.durable_index,
                        **await sqlite3_status(s)},
            "snapshot_store": snapshot_store(s),
            "dir": s.opts.data_dir or "",
            "extensions": [os.path.basename(f) for f in getattr(s, "extension_files", ())],
        }
        q = service.queue
        out = {
            "build": {"version": VERSION, "compat": "rqlite HTTP API"},
            "http": {"bind_addr": service.addr,
                     "auth": "enabled" if service.creds else "disabled",
                     "tls": {"enabled": "true" if service.cert else "false"},
                     "queue": {"_default": {"sequence_number": q.last_done, **q.stats}},
                     "stats": dict(service.stats),
                     "ws": {"clients": len(service.hub.clients),
                            "dropped_frames": service.hub.dropped_frames}},
            "node": {"start_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s.started)),
                     "current_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                     "uptime": f"{time.time() - s.started:.3f}s"},
            "os": {"pid": os.getpid(), "ppid": os.getppid(), "hostname": socket.gethostname(),
                   "executable": sys.executable},
            "runtime": {"python": platform.python_version(), "platform": sys.platform,
                        "version": f"python{platform.python_version()}"},
            "store": store,
            "ddb": st,
        }
        return send_json(_sub_json(out, flags.key), flags)


class NodesEndpoint(Endpoint):
    """GET /nodes[?nonvoters][&ver=2]: every voter (and, with nonvoters, every learner) as
    this node sees it, each one asked whether it answers. rqlite's shape (http/nodes.go):
    sorted by id, empty fields omitted except version, time only for a node that answered;
    the legacy form is a map by id, ver=2 a list under "nodes"."""
    perms = ("status",)

    async def handle(self, service, req):
        flags = flags_of(req)
        s = service.server
        timeout = min(flags.timeout or 5.0, 30.0)
        ids = set(s.raft.voters) | (set(s.raft.learners) if flags.nonvoters else set())
        leader = s.raft.leader_id

        async def probe(nid):
            t0 = time.perf_counter()
            node = {"id": str(nid), "addr": raft_addr((s.book.get(nid) or {}).get("peer")),
                    "version": "", "voter": nid in s.raft.voters, "reachable": False,
                    "leader": False}
            try:
                st = await service.member_status(nid, timeout)
            except Exception as e:
                node["error"] = "timeout waiting for node to respond" if "within" in str(e) \
                    else type(e).__name__
                return node
            http = (st.get("addresses") or {}).get("http") or service.member_http().get(nid)
            if http:
                node["api_addr"] = f"{service.scheme}://{http}"
            dt = time.perf_counter() - t0
            node.update(version=VERSION, reachable=True, leader=nid == leader, time=dt,
                        time_s=fmt.go_duration(dt))
            return node

        nodes = await asyncio.gather(*(probe(n) for n in sorted(ids, key=str)))
        keys = ("id", "api_addr", "addr", "version", "voter", "reachable", "leader", "time", "time_s",
                "error")
        nodes = [{k: n[k] for k in keys if k in n and (n[k] != "" or k == "version")} for n in nodes]
        if flags.ver == "2":
            return send_json({"nodes": nodes}, flags)
        return send_json({n["id"]: n for n in nodes}, flags)


class ReadyEndpoint(Endpoint):
    perms = ("ready",)

    async def handle(self, service, req):
        flags = flags_of(req)
        if flags.noleader:
            return send_text("[+]node ok")
        s = service.server
        if s.raft.leader_id == NONE:
            return send_text("[+]node ok\n[+]leader does not exist", 503)
        text = "[+]node ok\n[+]leader ok\n[+]store ok"
        if flags.sync:
            resp = await s.handle({"op": "applied", "timeout": flags.timeout or 5.0})
            if not resp.get("ok"):
                return send_text(text + "\n[+]sync not ok", 503)
            text += "\n[+]sync ok"
        return send_text(text)


class LeaderEndpoint(Endpoint):
    methods = ("GET", "POST")

    def required_perms(self, req):
        return ("leader-ops",) if req.method == "POST" else ("status",)

    async def handle(self, service, req):
        return await (self.get if req.method == "GET" else self.post)(service, req)

    async def get(self, service, req):
        flags = flags_of(req)
        s = service.server
        info = s.leader_info()
        if info is None:
            return error_response(service, HttpError(503, "leader not found"))
        http = await service.leader_http()
        reachable = True
        if info["id"] != s.id:
            try:
                await service.member_status(info["id"], min(flags.timeout or 2.0, 10.0))
            except Exception:
                reachable = False
        out = {"id": str(info["id"])}
        if http:
            out["api_addr"] = f"{service.scheme}://{http}"
        out.update({"addr": raft_addr(info.get("peer")), "version": VERSION, "voter": True,
                    "reachable": reachable, "leader": True})
        return send_json(out, flags)

    async def post(self, service, req):
        flags = flags_of(req)
        s = service.server
        target = None
        if req.body.strip():
            try:
                data = json.loads(req.body)
                target = int(data["id"]) if isinstance(data, dict) and "id" in data else None
            except (ValueError, TypeError, KeyError):
                return error_response(service, HttpError(400, 'body must be {"id": "<node id>"}'))
        lid = s.raft.leader_id
        if lid == NONE:
            return error_response(service, HttpError(503, "leader not found"))
        if target is None:
            others = [v for v in sorted(s.raft.voters) if v != lid]
            if not others:
                return error_response(service, HttpError(400, "no other voter to hand leadership to"))
            if s.raft.role == Role.LEADER:
                prs = s.raft.prs
                others.sort(key=lambda v: -(prs[v].match if v in prs else 0))
            target = others[0]
        try:
            resp = await service.call({"op": "transfer", "to": target,
                                       "timeout": flags.timeout or 10.0})
        except HttpError as e:
            return await answer_error(service, req, e, as_503=True)
        return send_json({"leader": {"id": str(resp.get("leader", target))}}, flags)


class RemoveEndpoint(Endpoint):
    perms = ("remove",)
    methods = ("DELETE", "POST")

    async def handle(self, service, req):
        flags = flags_of(req)
        try:
            data = json.loads(req.body or b"null")
            nid = internal_id(data["id"])
        except (ValueError, TypeError, KeyError):
            return error_response(service, HttpError(400, 'body must be {"id": "<node id>"}'))
        body = {"op": "remove", "node_id": nid}
        if flags.timeout:
            body["timeout"] = flags.timeout
        if flags.redirect:
            body["redirect"] = True
        try:
            await service.call(body)
        except HttpError as e:
            return await answer_error(service, req, e, as_503=True)
        return Response(200, b"", DEFAULT_HEADERS)


class JoinEndpoint(Endpoint):
    """POST /join {"id": "4", "addr": "tcp://h:p" (raft), "client": "tcp://h:p", "api_addr":
    "h:p", "voter": true}: adds a node as a learner, promoted once caught up. Permissions
    depend on the body (join-read-only for a non-voter), so they are checked here."""
    methods = ("POST",)

    async def handle(self, service, req):
        if service.creds is not None:
            try:
                data = json.loads(req.body or b"{}")
            except ValueError:
                data = {}
            read_only = isinstance(data, dict) and data.get("voter") is False
            user, pw = parse_basic(req.headers.get("authorization"))
            if not (await service.creds.check(user, pw, ("join",)) or read_only and (
                    await service.creds.check(user, pw, ("join-read-only",))
                    or await service.creds.check(user, pw, ("join-read-replica",)))):
                return error_response(service, HttpError(401))
        try:
            data = json.loads(req.body)
            nid = internal_id(data["id"])
            peer, client = data["addr"], data["client"]
            if not isinstance(peer, str) or not isinstance(client, str):
                raise TypeError
        except (ValueError, TypeError, KeyError):
            return error_response(service, HttpError(400, 'body must be {"id", "addr" (raft address), '
                                                          '"client" (client address), "api_addr", "voter"}'))
        body = {"op": "join", "node_id": nid, "peer": tcp(peer), "client": tcp(client),
                "http": data.get("api_addr") or data.get("http"), "voter": data.get("voter", True) is not False}
        if str(nid) != str(data["id"]):
            body["name"] = str(data["id"])
        user, pw = parse_basic(req.headers.get("authorization"))
        if user is not None:
            body["auth"] = {"username": user, "password": pw}   # the node checks it too
        for k in ("member_of", "cluster"):      # a rejoining node's: see replica/requests.py
            if k in data:
                body[k] = data[k]
        try:
            resp = await service.call(body)
        except HttpError as e:
            return await answer_error(service, req, e, as_503=True)
        return send_json({"members": resp.get("members", {}), "cluster": resp.get("cluster")})


# ---------------------------------------------------------------------- backup & load
class BackupEndpoint(Endpoint):
    perms = ("backup",)

    async def handle(self, service, req):
        flags = flags_of(req)
        s = service.server
        if not flags.noleader:
            # the leader's state as of now: confirm the read index (also from a follower)
            resp = await s.handle({"op": "read_index", "timeout": flags.timeout or 10.0})
            if not resp.get("ok"):
                e = RequestError.from_dict(resp.get("error") or {})
                if flags.redirect and s.raft.role != Role.LEADER:
                    err = HttpError(301, e.message)
                    err.leader = s.leader_info()
                    return await redirect_to_leader(service, req, err)
                return error_response(service, HttpError(
                    503, "leader not found" if e.type == "NoLeader" else e.message))
        path = await self._copy(s)
        try:
            if flags.fmt == "sql":
                import apsw
                c = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
                try:
                    text = fmt.sql_dump(c, flags.tables or None, skip_internal)
                finally:
                    c.close()
                ctype = "application/sql"
                data = text.encode("utf-8")
            else:
                ctype = "application/octet-stream"
                with open(path, "rb") as f:
                    data = f.read()
            if flags.compress:
                import gzip
                data = gzip.compress(data)
                ctype = "application/octet-stream"
        finally:
            os.remove(path)
        name = "sql" if flags.fmt == "sql" else "sqlite3"
        service.metrics.store["num_backups"] += 1
        return Response(200, data, [("Content-Type", ctype)] + DEFAULT_HEADERS
                        + [("Content-Disposition", f'attachment; filename="backup.{name}"')])

    @staticmethod
    async def _copy(s) -> str:
        """Copy the live database in steps (yielding to the loop between them), then drop
        ddb's own tables from the copy."""
        import apsw
        fd, tmp = tempfile.mkstemp(prefix=".ddb-backup-", suffix=".db",
                                   dir=os.path.dirname(os.path.abspath(s.sm.path))
                                   if not s.sm.memory else None)
        os.close(fd)
        dest = apsw.Connection(tmp)
        try:
            with dest.backup("main", s.sm.connection, "main") as b:
                while not b.done:
                    b.step(512)
                    await asyncio.sleep(0)
            names = [r[0] for r in dest.execute(
                "SELECT name FROM sqlite_schema WHERE type='table' AND name LIKE '\\_ddb\\_%' ESCAPE '\\'")]
            for n in names:
                dest.execute(f'DROP TABLE IF EXISTS "{n}"')
            list(dest.execute("PRAGMA journal_mode=DELETE"))
            dest.execute("VACUUM")
        finally:
            dest.close()
        return tmp


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
    launcher serves them on an authenticated control path of its own (http_control), whose
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


class WebSocketEndpoint(Endpoint):
    perms = ("status",)

    async def handle(self, service, req):
        return websocket_endpoint(service, req)


class NotFoundEndpoint(Endpoint):
    methods = ("GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")

    async def handle(self, service, req: Request) -> Response:
        return error_response(service, HttpError(404))


NOT_FOUND = NotFoundEndpoint()

# path -> endpoint; "slash" paths also answer with one trailing slash, as rqlite's do
_SLASH = {
    "/db/execute": SqlEndpoint("execute", ("POST",), ("execute",)),
    "/db/query": SqlEndpoint("query", ("GET", "POST"), ("query",)),
    "/db/request": SqlEndpoint("request", ("POST",), ("query", "execute")),
    "/db/backup": BackupEndpoint(),
    "/db/load": LoadEndpoint(),
    "/status": StatusEndpoint(),
    "/nodes": NodesEndpoint(),
    "/readyz": ReadyEndpoint(),
    "/leader": LeaderEndpoint(),
    "/remove": RemoveEndpoint(),
    "/join": JoinEndpoint(),
    "/dashboard": DashboardEndpoint(),
}
_EXACT = {
    "/": RootEndpoint(),
    "/ws": WebSocketEndpoint(),
    "/debug/vars": DebugVarsEndpoint(),
    "/boot": BootEndpoint(),
    "/snapshot": SnapshotEndpoint(),
    "/reap": ReapEndpoint(),
    "/ddb/cluster": ClusterEndpoint(),
    "/ddb/faults": FaultsEndpoint(),
    "/ddb/control": ControlEndpoint(),
}
ROUTES = dict(_EXACT, **_SLASH, **{p + "/": ep for p, ep in _SLASH.items()})
STATIC = StaticEndpoint()


class Router:
    """The application the HTTP server calls (see http_server)."""

    def __init__(self, service):
        self.service = service

    def head(self, req: Request):
        """At the end of the headers: -> (body limit, None) or (0, early refusal)."""
        ep = ROUTES.get(req.path)
        if ep is None:
            ep = STATIC if req.path.startswith("/static/") else NOT_FOUND
        req.ctx = ep
        limit = getattr(self.service, ep.body_limit)
        cl = req.headers.get("content-length")
        if cl is not None and req.method != "OPTIONS" and ep is not NOT_FOUND:
            try:
                n = int(cl)
            except ValueError:           # repeated Content-Length headers
                return 0, error_response(self.service, HttpError(400, "bad Content-Length"))
            if n > limit:
                return 0, self.too_large(req)
        return limit, None

    def too_large(self, req: Request) -> Response:
        limit = getattr(self.service, req.ctx.body_limit)
        self.service.stats["too_large"] += 1
        return error_response(self.service, HttpError(413, f"request body larger than {limit} bytes"))

    async def handle(self, req: Request) -> Response:
        ep = req.ctx
        svc = self.service
        if ep is NOT_FOUND:
            return await ep.handle(svc, req)
        svc.stats["requests"] += 1
        svc.metrics.routed(req.path)
        if req.method == "OPTIONS" and ep.default_headers:
            return Response(200, b"", DEFAULT_HEADERS)
        try:
            if req.method not in ep.methods:
                raise HttpError(405)
            perms = ep.required_perms(req)
            if perms and not await svc.authorized(req, perms):
                svc.stats["auth_fail"] += 1
                raise HttpError(401)
            return await ep.handle(svc, req)
        except HttpError as e:
            if not ep.default_headers:
                return _html_error(e.status) if e.status in _REASONS else error_response(svc, e)
            return error_response(svc, e)
