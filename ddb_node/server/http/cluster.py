"""The endpoints about the cluster: /status, /nodes, /readyz, /leader, /remove, /join."""
from __future__ import annotations

import asyncio
import json
import os
import platform
import socket
import sys
import time


from ddb_node.node_ids import display_id, internal_id
from ddb_node.raft import NONE, Role

from . import format as fmt
from .auth import parse_basic
from .errors import HttpError
from .endpoint import (DEFAULT_HEADERS, VERSION, Endpoint, answer_error, error_response,
                            flags_of, raft_addr, send_json, send_text)
from .server import Response
from .status import advertised_http, dir_size, go_configuration, snapshot_store, sqlite3_status
from ..options import tcp



# ---------------------------------------------------------------------- status & cluster
def _role_name(role) -> str:
    return {Role.LEADER: "Leader", Role.FOLLOWER: "Follower"}.get(Role(role), "Candidate")


def node_name(server, nid) -> str:
    """A node's id as the operator wrote it (`--id node-a`, `--id 0`): the name the address
    book keeps for it, else its number (node_ids.py). rqlite's ids are those strings."""
    if nid == server.id and server.opts.node_name:
        return server.opts.node_name
    return display_id(nid, (server.book.get(nid) or {}).get("name"))


def _last_contact(r, st: dict):
    """hashicorp raft's Stats()["last_contact"]: 0 on the leader (rqlite makes "0" a
    number), "never" before any leader was heard, else Go's duration since the last."""
    if r.role == Role.LEADER:
        return 0
    ms = st.get("last_leader_contact_ms")
    return "never" if ms is None else fmt.go_duration(ms / 1000.0)


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
        own_peer = s.opts.advertised["peer"]        # what the others are told, as in rqlite

        def addr_of(nid):
            return raft_addr(own_peer if nid == s.id else (s.book.get(nid) or {}).get("peer"))
        store = {
            "node_id": node_name(s, s.id),
            "addr": raft_addr(own_peer),
            "leader": {"node_id": node_name(s, leader["id"]) if leader else "",
                       "addr": raft_addr(leader.get("peer"))},
            "ready": r.leader_id != NONE,
            "raft": {"state": _role_name(r.role), "term": r.term, "commit_index": r.commit_index,
                     "applied_index": s.sm.applied_index, "last_log_index": r.last_index,
                     "last_log_term": last_term, "first_log_index": s.storage.first_index(),
                     "snapshot_index": st.get("snapshot_index"),
                     "last_snapshot_index": snap.index, "last_snapshot_term": snap.term,
                     "last_contact": _last_contact(r, st),
                     "voter": s.id in r.voters,
                     "num_peers": max(0, len(r.voters) - (1 if s.id in r.voters else 0)),
                     "latest_configuration": go_configuration(
                         r.voters, r.learners, lambda n: node_name(s, n), addr_of)},
            "fsm_index": s.sm.applied_index,
            "db_applied_index": s.sm.applied_index,
            "sqlite3": {"path": s.sm.path, "durable_index": s.sm.durable_index,
                        **await sqlite3_status(s)},
            "snapshot_store": snapshot_store(s),
            "dir": s.opts.data_dir or "",
            "dir_size": dir_size(s.opts.data_dir),
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
                     "workers": service.workers.status() if service.workers is not None
                     else {"count": 0},
                     "quick_writes": _quick_writes(service),
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
    sorted by id (the operator's string), empty fields omitted except version, time and
    time_s for every node (how long asking it took, also when it did not answer); the
    legacy form is a map by id, ver=2 a list under "nodes"."""
    perms = ("status",)

    async def handle(self, service, req):
        flags = flags_of(req)
        s = service.server
        timeout = min(flags.timeout or 5.0, 30.0)
        ids = set(s.raft.voters) | (set(s.raft.learners) if flags.nonvoters else set())
        leader = s.raft.leader_id

        async def probe(nid):
            t0 = time.perf_counter()
            node = {"id": node_name(s, nid), "addr": raft_addr((s.book.get(nid) or {}).get("peer")),
                    "version": "", "voter": nid in s.raft.voters, "reachable": False,
                    "leader": False}
            try:
                st = await service.member_status(nid, timeout)
            except Exception as e:
                node["error"] = "timeout waiting for node to respond" if "within" in str(e) \
                    else type(e).__name__
            else:
                http = advertised_http(st) or service.member_http().get(nid)
                if http:
                    node["api_addr"] = f"{service.scheme}://{http}"
                node.update(version=VERSION, reachable=True, leader=nid == leader)
            dt = time.perf_counter() - t0
            node.update(time=dt, time_s=fmt.go_duration(dt))
            return node

        nodes = await asyncio.gather(*(probe(n) for n in ids))
        nodes.sort(key=lambda n: n["id"])
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
        out = {"id": node_name(s, info["id"])}
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
                target = internal_id(data["id"]) if isinstance(data, dict) and "id" in data else None
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
        return send_json({"leader": {"id": node_name(s, resp.get("leader", target))}}, flags)


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


def _quick_writes(service) -> dict:
    """What the short write path (http.quick_write) took and answered; off: {}."""
    router = service.httpd.app if service.httpd is not None else None
    qw = getattr(router, "quick_write", None)
    return qw.status() if qw is not None else {}
