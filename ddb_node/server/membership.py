"""How a node finds its cluster at start and leaves it at shutdown, as rqlite operators do
it (README "Clustering"): `--join` (again at every restart, so a node that comes back with
other addresses is routed to anew), `--bootstrap-expect N`, `--non-voter`,
`--raft-cluster-remove-shutdown`, and the peers.json recovery file.

The decisions about membership stay in the Replica (`replica/requests.py` join, remove);
this module only talks to other nodes and reads the recovery file.
"""
from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from ddb_node.client import AsyncClient
from ddb_node.errors import DdbError
from ddb_node.node_ids import internal_id

from .options import tcp

log = logging.getLogger("ddb.node")

PEERS_JSON = os.path.join("raft", "peers.json")   # rqlite's place, inside the data dir


class StartupRefused(Exception):
    """The node must not run with this data directory and these options (a clear message)."""


# ---------------------------------------------------------------------- cluster identity
# Which cluster a data directory belongs to: a digest of the founding configuration (the
# cluster id, the first members' ids and peer addresses), so the founders compute the same
# one without talking; a node that joins learns it from the join reply. A node that joins
# with an identity that is not the cluster's is refused (README "Clustering").
IDENTITY_FILE = "cluster-identity.json"


def founding_identity(cluster_id: str, members: dict) -> str:
    h = hashlib.blake2b(digest_size=12)
    h.update(cluster_id.encode())
    for nid in sorted(members):
        h.update(f"|{nid}={members[nid].get('peer')}".encode())
    return h.hexdigest()


def load_identity(path: str | None) -> str | None:
    if not path or not os.path.exists(path):
        return None
    try:
        with open(path) as f:
            v = json.load(f).get("cluster")
        return v if isinstance(v, str) else None
    except (OSError, ValueError, AttributeError):
        return None


def save_identity(path: str | None, identity: str) -> None:
    if not path:
        return
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump({"cluster": identity}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


# ---------------------------------------------------------------------- peers.json
def read_peers_json(path: str, book) -> tuple[list[int], list[int], dict]:
    """rqlite's recovery file: [{"id": "1", "address": "host:raft_port", "non_voter": false},
    ...]. ddb also reads "client" (its client address) and "api_addr" (HTTP); a member the
    address book knows keeps its other addresses. -> (voters, learners, {id: addresses})."""
    try:
        with open(path) as f:
            data = json.load(f)
    except (OSError, ValueError) as e:
        raise StartupRefused(f"{path}: cannot read the recovery file: {e}") from None
    if not isinstance(data, list) or not data:
        raise StartupRefused(f"{path}: must be a non-empty JSON array of "
                             '{"id": "...", "address": "host:port", "non_voter": false}')
    voters, learners, addrs = [], [], {}
    for i, e in enumerate(data):
        if not isinstance(e, dict) or not isinstance(e.get("id"), (str, int)) \
                or not isinstance(e.get("address"), str):
            raise StartupRefused(f"{path}: entry {i} needs an \"id\" and an \"address\"")
        try:
            nid = internal_id(e["id"])
        except ValueError as exc:
            raise StartupRefused(f"{path}: entry {i}: {exc}") from None
        known = book.get(nid) or {}
        client = e.get("client") or known.get("client")
        if not client:
            raise StartupRefused(f"{path}: entry {i} (id {e['id']}): this node does not know its "
                                 "client address; add \"client\": \"host:port\"")
        a = {"peer": tcp(e["address"]), "client": tcp(client),
             "http": e.get("api_addr") or known.get("http")}
        if str(nid) != str(e["id"]):
            a["name"] = str(e["id"])
        addrs[nid] = a
        (learners if e.get("non_voter") is True else voters).append(nid)
    if not voters:
        raise StartupRefused(f"{path}: at least one member must be a voter")
    return voters, learners, addrs


def check_sole_survivor(path: str, voters, storage, confirmed: bool) -> None:
    """rqlite's procedure writes peers.json on every survivor. ddb forces the log of the node
    that reads it (replica/recovery.py): two survivors doing so could commit different
    entries at one index. So a file naming several voters, on a node whose log holds
    anything, is refused unless the operator says this is the one survivor to force."""
    if len(voters) < 2 or confirmed:
        return
    if storage.last_index() == 0 and storage.snapshot_meta().index == 0:
        return
    raise StartupRefused(
        f"{path} lists {len(voters)} voters and this node has a log: ddb forces the log of "
        "the node it recovers, so only one survivor may read peers.json. Keep the file on "
        "the most up-to-date survivor and start it with --recover-sole-survivor; start the "
        "others with an empty data directory and --join it")


# ---------------------------------------------------------------------- join
def _credentials(server) -> dict | None:
    """The users-file user this node joins as (`--join-as`): rqlite reads its password from
    the same file, so it must be stored in plain text there."""
    user = server.opts.join_as
    if user is None or server.creds is None:
        return None
    entry = server.creds.users.get(user)
    if entry is None or entry[0] is None:
        raise StartupRefused(f"--join-as {user}: no such user (with a password) in the users file")
    if entry[0].startswith(("scrypt$", "$2")):
        raise StartupRefused(f"--join-as {user}: the users file holds a hash of this user's "
                             "password; a joining node needs it in plain text, as in rqlite")
    return {"username": user, "password": entry[0]}


def join_body(server) -> dict:
    adv = server.opts.advertised
    cs = server.raft.conf_state
    body = {"op": "join", "node_id": server.id, "peer": adv["peer"], "client": adv["client"],
            "http": adv["http"], "voter": not server.opts.non_voter}
    if adv.get("name"):
        body["name"] = adv["name"]
    member_of = sorted(set(cs.voters) | set(cs.learners))
    if member_of:
        body["member_of"] = member_of       # the leader refuses us if it is another cluster
    if server.replica.cluster_identity:
        body["cluster"] = server.replica.cluster_identity
    auth = _credentials(server)
    if auth is not None:
        body["auth"] = auth
    return body


def is_http(addr: str) -> bool:
    """rqlite's -join takes HTTP API addresses; ddb's --join takes client addresses too."""
    return addr.startswith(("http://", "https://"))


async def _join_zmq(server, addresses: list[str], body: dict) -> dict:
    async with AsyncClient(addresses, cluster_id=server.cluster_id, curve=server.opts.curve) as c:
        try:
            return await c.call(body, timeout=10.0)
        except DdbError as e:      # a refusal: its wire error as the node sent it (its type)
            if getattr(e, "wire", None) is None:
                raise
            return {"ok": False, "error": e.wire}


async def _join_http(addr: str, body: dict) -> dict:
    """POST /join as rqlite's nodes do (Basic credentials of --join-as), answered like the
    zmq join: {"ok", "members", "cluster"} or {"ok": False, "error": {type, message}}."""
    payload = {"id": body.get("name") or str(body["node_id"]), "addr": body["peer"],
               "client": body["client"], "api_addr": body.get("http"), "voter": body["voter"]}
    for k in ("member_of", "cluster"):
        if k in body:
            payload[k] = body[k]
    auth = body.get("auth") or {}
    req = HTTPRequest(addr.rstrip("/") + "/join", method="POST", body=json.dumps(payload),
                      headers={"Content-Type": "application/json"}, request_timeout=10.0,
                      auth_username=auth.get("username"), auth_password=auth.get("password"),
                      validate_cert=False)
    try:
        resp = await AsyncHTTPClient().fetch(req, raise_error=False)
    except OSError as e:
        raise ConnectionError(f"{addr}: {e}") from None
    text = resp.body.decode("utf-8", "replace") if resp.body else ""
    if resp.code == 200:
        d = json.loads(text or "{}")
        return {"ok": True, "members": d.get("members") or {}, "cluster": d.get("cluster")}
    kind = {401: "Unauthorized", 409: "OtherCluster"}.get(resp.code, "HTTP")
    return {"ok": False, "error": {"type": kind, "message": f"HTTP {resp.code}: {text.strip()}"}}


async def join(server, addresses: list[str]) -> None:
    """Ask the members at `addresses` to add us, until one answers. A member that is already
    in the configuration sends its join anyway (a restart): the leader notes new addresses.
    Refusals that retrying cannot fix (another cluster, no permission) stop the node."""
    zmq_addrs = [a for a in addresses if not is_http(a)]
    http_addrs = [a for a in addresses if is_http(a)]
    delay = 0.2
    while True:
        body = join_body(server)
        for target in ([zmq_addrs] if zmq_addrs else []) + http_addrs:
            try:
                resp = await (_join_zmq(server, target, body) if isinstance(target, list)
                              else _join_http(target, body))
            except Exception as exc:  # noqa: BLE001  not up yet: try again
                log.warning("node %d: join attempt failed: %s", server.id, exc)
                continue
            if resp.get("ok"):
                server.joined(resp.get("members") or {}, resp.get("cluster"))
                return
            err = resp.get("error") or {}
            if err.get("type") in ("OtherCluster", "Unauthorized"):
                where = ", ".join(target) if isinstance(target, list) else target
                raise StartupRefused(f"join refused by {where}: {err.get('message')}")
            log.warning("node %d: join refused: %s", server.id, err)
        await asyncio.sleep(delay)
        delay = min(delay * 2, 2.0)


# ---------------------------------------------------------------------- bootstrap-expect
async def _node_status(server, addr: str) -> tuple[int, dict]:
    """(id, status) of the node at a client or HTTP address (its /status "ddb" part)."""
    if not is_http(addr):
        async with AsyncClient([addr], cluster_id=server.cluster_id, curve=server.opts.curve) as c:
            resp = await c.call_addr(addr, {"op": "status"}, timeout=1.0)
        return int(resp["node"]), resp["status"]
    auth = _credentials(server) or {}
    resp = await AsyncHTTPClient().fetch(HTTPRequest(
        addr.rstrip("/") + "/status", request_timeout=1.0, validate_cert=False,
        auth_username=auth.get("username"), auth_password=auth.get("password")))
    st = json.loads(resp.body)["ddb"]
    return int(st["node"]), st


async def bootstrap_expect(server, addresses: list[str], expect: int) -> None:
    """rqlite's -bootstrap-expect, made safe: exactly one cluster forms, even when the
    operators' --join lists disagree.

    1. Wait until every node named by `addresses` answers; if they are exactly `expect`
       nodes, their sorted ids are this node's *candidate* configuration (shown in its
       status). A node's candidate never changes: it is a function of its --join list.
    2. Bootstrap (the same committed first entry as every other founder) only once every
       other member of the candidate shows the same candidate, or has bootstrapped it.
    So any two nodes that bootstrap share a candidate: no two different first entries can
    meet in one log. A listed node that already has another configuration means a cluster
    exists: join it instead."""
    delay = 0.1
    while True:
        cs = server.raft.conf_state
        if cs.voters or cs.learners:
            # the configuration reached us by replication already
            return await join(server, addresses)
        seen: dict[int, dict] = {server.id: dict(server.opts.advertised)}
        configs: dict[int, tuple] = {}
        candidates: dict[int, tuple] = {}
        missing = []
        by_addr: dict[str, int] = {}
        for addr in addresses:
            try:
                nid, st = await _node_status(server, addr)
                seen[nid] = st.get("advertised") or st["addresses"]
                by_addr[addr] = nid
                configs[nid] = tuple(st.get("voters") or ())
                candidates[nid] = tuple(st.get("bootstrap_candidate") or ())
                server.learn_address(nid, seen[nid])   # to answer its vote requests
            except Exception:  # noqa: BLE001  not up yet
                missing.append(addr)
        if len(seen) > expect:
            raise StartupRefused(f"--bootstrap-expect {expect}, but the --join addresses name "
                                 f"{len(seen)} nodes: list exactly the nodes that form the cluster")
        ours = tuple(sorted(seen))
        other = [a for a, nid in by_addr.items() if configs[nid] and configs[nid] != ours]
        if other:
            return await join(server, other)
        if not missing and len(seen) == expect:
            server.bootstrap_candidate = list(ours)
            agreed = all(candidates.get(n) == ours or configs.get(n) == ours
                         for n in ours if n != server.id)
            if agreed:
                try:
                    server.bootstrap(seen, founding_identity(server.cluster_id, seen))
                    return
                except ValueError:     # Raft state arrived meanwhile: go round and join
                    pass
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


# ---------------------------------------------------------------------- leave
async def leave(server, timeout: float = 5.0) -> None:
    """rqlite's -raft-cluster-remove-shutdown: ask the leader to remove us (a leader removes
    itself and hands over) before the process stops."""
    cs = server.raft.conf_state
    if server.id not in cs.voters and server.id not in cs.learners:
        return
    if cs.voters == (server.id,):
        log.warning("node %d: the last voter does not leave its cluster", server.id)
        return
    try:
        resp = await asyncio.wait_for(server.handle({"op": "remove", "node_id": server.id,
                                                     "timeout": timeout}), timeout + 1.0)
        if not resp.get("ok"):
            log.warning("node %d: could not leave the cluster: %s", server.id, resp.get("error"))
    except asyncio.TimeoutError:
        log.warning("node %d: leaving the cluster timed out", server.id)
