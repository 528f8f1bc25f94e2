"""LocalCluster: n ddb node processes on loopback, started with one call, and the fault
controls the notebook magics and the tour drive.

Children get PR_SET_PDEATHSIG, so they die with the process that started them even when it
is killed; `close()` (also at interpreter exit) stops them and removes temporary data.
`Cluster.attach(addresses)` gives the same status and fault calls for a cluster started
elsewhere (without process control). `dashboard_url()` serves the process control to the
dashboard (server/http/control.py) and gives the link that carries its token.
"""
from __future__ import annotations

from abc import ABC, abstractmethod

import atexit
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import weakref
from dataclasses import dataclass, field
from urllib.parse import urlencode

from ddb_node.client import Client
from ddb_node.errors import ConnectionFailed, DdbError
from ddb_node.procs import stop_processes
from ddb_node.server.http.control import ControlServer
from ddb_node.server.options import ELECTION_TICK, HEARTBEAT_TICK, TICK_MS

_LIVE: "weakref.WeakSet[LocalCluster]" = weakref.WeakSet()


def _ephemeral_range() -> tuple[int, int]:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 32768, 60999


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """n distinct ports that are free on host now, chosen below the kernel's ephemeral range.

    A port the kernel hands out (bind to 0) is one it may also give an outgoing connection
    a moment later, and a node's listen on it then fails with "address already in use"; ports
    below the ephemeral range are taken only by another listener. Each is probed by binding."""
    import random
    lo, _ = _ephemeral_range()
    pool_lo, pool_hi = (10000, lo - 1) if lo > 12000 else (1024, lo - 1)
    rng = random.SystemRandom()
    ports: list[int] = []
    for _ in range(200 * n):
        if len(ports) == n or pool_hi <= pool_lo:
            break
        port = rng.randint(pool_lo, pool_hi)
        if port in ports:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host, port))
            except OSError:
                continue
        ports.append(port)
    if len(ports) < n:  # no room below the ephemeral range: let the kernel choose
        socks = []
        try:
            while len(ports) < n:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                socks.append(s)
                s.bind((host, 0))
                if s.getsockname()[1] not in ports:
                    ports.append(s.getsockname()[1])
        finally:
            for s in socks:
                s.close()
    return ports


def _die_with_parent() -> None:
    """preexec_fn: SIGKILL this child when the parent dies (Linux)."""
    try:
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except OSError:
        pass


_SPAWNER = None


def _popen(*args, **kw) -> subprocess.Popen:
    """Popen, always from one long-lived thread. PR_SET_PDEATHSIG fires when the *thread*
    that forked the child exits, not the process: a node (re)started from a short-lived
    thread (asyncio.to_thread, an executor, a callback thread) was SIGKILLed when that
    thread ended."""
    global _SPAWNER
    if threading.current_thread() is threading.main_thread():
        return subprocess.Popen(*args, **kw)
    if _SPAWNER is None:
        from concurrent.futures import ThreadPoolExecutor
        _SPAWNER = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ddb-spawner")
    return _SPAWNER.submit(subprocess.Popen, *args, **kw).result()


def _wait_signalled(pid: int, stopped: bool, timeout: float = 5.0) -> None:
    """SIGSTOP/SIGCONT are delivered asynchronously: poll /proc (where there is one) until
    the process shows it, so whoever looks next sees the new state."""
    path = f"/proc/{pid}/stat"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                letter = f.read().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return                       # no /proc, or the process is gone
        if (letter in ("T", "t")) == stopped:
            return
        time.sleep(0.005)


@dataclass
class NodeProc:
    id: int
    peer_addr: str
    client_addr: str
    http_addr: str | None
    data_dir: str
    log_path: str
    proc: subprocess.Popen | None = None
    state: str = "new"          # running, paused, stopped, killed, removed
    join: list = field(default_factory=list)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None


class ClusterControl(ABC):
    """Status and fault calls shared by LocalCluster and attached clusters."""

    _client: Client | None = None

    curve: dict | None = None

    def client(self, **kw) -> Client:
        if self.curve and "curve" not in kw:
            kw["curve"] = self.curve
        return Client(self.client_addresses(), **kw)

    def _admin_client(self) -> Client:
        if self._client is None:
            self._client = Client(self.client_addresses(), timeout=5.0, curve=self.curve)
        return self._client

    @abstractmethod
    def client_addresses(self) -> list[str]:
        """Client addresses of the members."""

    @abstractmethod
    def node_ids(self) -> list[int]:
        """Ids of the members."""

    def _reachable_ids(self) -> list[int]:
        return self.node_ids()

    # ---- faults: sent to every reachable node --------------------------------------
    def _faults(self, cmd: dict) -> dict:
        c = self._admin_client()
        if not c.members:
            c.refresh()
        out = {}
        for nid in self._reachable_ids():
            try:
                out[nid] = c.admin(nid, {"op": "faults", "cmd": cmd}, timeout=2.0)["faults"]
            except (ConnectionFailed, DdbError) as e:
                if isinstance(e, DdbError) and not isinstance(e, ConnectionFailed) \
                        and "fault" in str(e).lower():
                    raise
                out[nid] = {"error": str(e)}
        self._record_event("fault", cmd)
        return out

    def partition(self, groups) -> dict:
        groups = [list(g) for g in groups]
        return self._faults({"action": "partition", "groups": groups})

    def isolate(self, node_id: int) -> dict:
        return self._faults({"action": "isolate", "node": node_id, "peers": self.node_ids()})

    def cut(self, a: int, b: int, both: bool = True) -> dict:
        return self._faults({"action": "cut", "a": a, "b": b, "both": both})

    def heal(self) -> dict:
        return self._faults({"action": "heal"})

    def drop(self, rate: float = 0.0, *, every: int | None = None, link: tuple | None = None) -> dict:
        cmd = {"action": "drop", "rate": rate}
        if every is not None:
            cmd["every"] = every
        if link:
            cmd["link"] = list(link)
        return self._faults(cmd)

    def delay(self, ms: float, jitter: float = 0.0) -> dict:
        return self._faults({"action": "delay", "ms": ms, "jitter": jitter})

    def reorder(self, rate: float) -> dict:
        return self._faults({"action": "reorder", "rate": rate})

    def duplicate(self, rate: float) -> dict:
        return self._faults({"action": "duplicate", "rate": rate})

    # ---- status ----------------------------------------------------------------------
    def status(self) -> dict:
        """Per node: state, role, term, leader, commit/applied/last index, reachable peers,
        active faults (or the reason it cannot answer)."""
        c = self._admin_client()
        out = {}
        for nid in self.node_ids():
            st = self._proc_state(nid)
            if st in ("killed", "stopped", "paused", "removed"):
                out[nid] = {"id": nid, "state": st}
                continue
            try:
                if nid not in c.members:
                    c.refresh()
                s = c.status(nid, timeout=1.5)
            except (ConnectionFailed, DdbError, KeyError) as e:
                s = {"error": {"type": "Unreachable", "message": str(e)}}
            if "error" in s:
                out[nid] = {"id": nid, "state": st or "unreachable", "error": s["error"]}
            else:
                s["state"] = st or "running"
                out[nid] = s
        return out

    def _proc_state(self, nid: int) -> str | None:
        return None

    def processes(self) -> dict[int, dict]:
        """Per node: {"state", "pid"} of its process as the launcher knows it; empty for a
        cluster started elsewhere (no process control: no pause, resume or restart)."""
        return {}

    def leader(self) -> int | None:
        """The node that leads in the highest term right now (None while electing)."""
        leaders = [s for s in self.status().values() if s.get("role") == "leader"]
        if not leaders:
            return None
        return max(leaders, key=lambda s: s.get("term", 0))["id"]

    def wait_for_leader(self, timeout: float = 30.0, exclude=()) -> int:
        """Poll until a leader that a majority of live nodes follow exists."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            st = self.status()
            leaders = [s for s in st.values() if s.get("role") == "leader" and s["id"] not in exclude]
            if leaders:
                top = max(leaders, key=lambda s: s.get("term", 0))
                followers = sum(1 for s in st.values()
                                if s.get("leader") == top["id"] and s.get("term") == top["term"])
                voters = len(top.get("voters") or st)
                if followers >= voters // 2 + 1:
                    return top["id"]
            last = st
            time.sleep(0.05)
        raise DdbError(f"no leader within {timeout:g}s: " +
                       ", ".join(f"{k}:{v.get('role') or v.get('state')}" for k, v in (last or {}).items()))

    def transfer_leader(self, node_id: int, timeout: float = 10.0) -> int:
        return self._admin_client().transfer_leader(node_id, timeout=timeout)

    def _record_event(self, kind: str, detail) -> None:
        """Hook: LocalCluster keeps an event list; an attached cluster has no history."""


class LocalCluster(ClusterControl):
    def __init__(self, n: int = 3, data_dir: str | None = None, *, storage: str = "disk",
                 http: list | bool | None = None, cluster_id: str | None = None,
                 tick_ms: int = TICK_MS, election_tick: int = ELECTION_TICK,
                 heartbeat_tick: int = HEARTBEAT_TICK, snapshot_entries: int = 20_000,
                 snapshot_trailing: int | None = None,
                 start: bool = True, timeout: float = 30.0, host: str = "127.0.0.1",
                 extra_args: tuple = (), curve_keys: str | None = None):
        if n < 1:
            raise ValueError("a cluster needs at least one node")
        self.n = n
        self.tmp = data_dir is None
        self.data_dir = data_dir or tempfile.mkdtemp(prefix="ddb-cluster-")
        os.makedirs(self.data_dir, exist_ok=True)
        self.storage = storage
        self.cluster_id = cluster_id or "ddb-" + os.urandom(3).hex()
        self.tick_ms = tick_ms
        self.election_tick = election_tick
        self.heartbeat_tick = heartbeat_tick
        self.snapshot_entries = snapshot_entries
        # entries kept behind a snapshot; by default never more than one snapshot interval,
        # so a small snapshot_entries really compacts the log (the node's default is 2000)
        self.snapshot_trailing = (min(2_000, snapshot_entries) if snapshot_trailing is None
                                  else snapshot_trailing)
        self.host = host
        self.extra_args = tuple(extra_args)
        self.curve = None
        if curve_keys:
            # the cluster key file from `ddb keygen`; the launcher speaks with the cluster key
            import json
            with open(curve_keys) as f:
                k = json.load(f)
            self.extra_args += ("--curve-keys", curve_keys)
            self.curve = {"public": k["public"].encode(), "secret": k["secret"].encode(),
                          "server": k["public"].encode()}
        self.nodes: dict[int, NodeProc] = {}
        self.events: list[dict] = []
        self._control: ControlServer | None = None
        self._closed = False
        self._client = None
        self._ports_chosen = bool(http) and http is not True   # HTTP addresses the caller gave
        http_addrs = self._http_addresses(http, n)
        for i in range(1, n + 1):
            self.nodes[i] = self._new_node(i, http_addrs[i - 1])
        _LIVE.add(self)
        if start:
            self.start(timeout=timeout)

    def _http_addresses(self, http, n) -> list:
        if not http:
            return [None] * n
        if http is True:
            return [f"{self.host}:{p}" for p in free_ports(n, self.host)]
        if isinstance(http, str):
            http = [a for a in http.split(",") if a]
        if len(http) != n:
            raise ValueError(f"give {n} HTTP addresses, one per node")
        return list(http)

    def _new_node(self, i: int, http: str | None, join: list | None = None) -> NodeProc:
        p1, p2 = free_ports(2, self.host)
        d = os.path.join(self.data_dir, f"node{i}")
        return NodeProc(i, f"tcp://{self.host}:{p1}", f"tcp://{self.host}:{p2}", http, d,
                        os.path.join(self.data_dir, f"node{i}.log"), join=join or [])

    # ---- processes -----------------------------------------------------------------------
    def _peers_arg(self) -> str:
        import json
        return json.dumps({str(n.id): {"peer": n.peer_addr, "client": n.client_addr,
                                       "http": n.http_addr}
                           for n in self.nodes.values() if not n.join})

    def _spawn(self, node: NodeProc) -> None:
        cmd = [sys.executable, "-m", "ddb_node.server", "--id", str(node.id),
               "--listen", node.peer_addr, "--client", node.client_addr,
               "--cluster-id", self.cluster_id, "--storage", self.storage,
               "--tick-ms", str(self.tick_ms), "--election-tick", str(self.election_tick),
               "--heartbeat-tick", str(self.heartbeat_tick),
               "--snapshot-entries", str(self.snapshot_entries),
               "--snapshot-trailing", str(self.snapshot_trailing), "--log-level", "WARNING"]
        if self.storage == "disk":
            cmd += ["--data-dir", node.data_dir]
        if node.http_addr:
            cmd += ["--http", node.http_addr]
        if node.join:
            cmd += ["--join", ",".join(node.join)]
        else:
            cmd += ["--peers", self._peers_arg()]
        cmd += list(self.extra_args)
        logf = open(node.log_path, "ab")
        try:
            # own process group: a Ctrl-C (or a Jupyter "interrupt", which signals the whole
            # group) in the parent must not kill the nodes; PDEATHSIG still ties them to it
            node.proc = _popen(cmd, stdout=logf, stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, preexec_fn=_die_with_parent,
                               close_fds=True, process_group=0)
        finally:
            logf.close()
        node.state = "running"

    def start(self, timeout: float = 30.0) -> "LocalCluster":
        """Start the nodes; return once every one of them follows one leader (a majority can
        elect it before the slowest process is up, within one short election timeout).

        A node that exits while starting fails the start at once, with the end of its log.
        On a new cluster, a port that another process took between `free_ports` and the
        node's bind is retried with fresh ports (twice)."""
        deadline = time.monotonic() + timeout
        # a new cluster whose every port came from free_ports may take other ones
        fresh = all(n.state == "new" for n in self.nodes.values()) and not self._ports_chosen
        for attempt in range(3):
            for nid, node in self.nodes.items():
                if node.state in ("new", "stopped", "killed") or self._proc_state(nid) == "exited":
                    self._spawn(node)
            exited = self._await_followers(deadline, timeout)
            if not exited:
                break
            tails = {i: self._log_tail(i) for i in exited}
            if fresh and attempt < 2 and any("address already in use" in t.lower() for t in tails.values()):
                self._stop_all_and_renumber()
                continue
            raise DdbError("node(s) exited while starting: " + "; ".join(
                f"node {i} (exit {self.nodes[i].proc.returncode}): ...{t[-600:]}"
                for i, t in tails.items()))
        self._record_event("started", {"nodes": list(self.nodes)})
        return self

    def _await_followers(self, deadline: float, timeout: float) -> list[int]:
        """Wait until every running node follows one leader; the nodes that exited instead."""
        while True:
            exited = self.crashed()
            if exited:
                return exited
            try:
                leader = self.wait_for_leader(max(0.1, min(1.0, deadline - time.monotonic())))
            except DdbError:
                if time.monotonic() > deadline:
                    exited = self.crashed()
                    if exited:
                        return exited
                    raise
                continue
            st = self.status()
            term = st.get(leader, {}).get("term")
            if all(s.get("leader") == leader and s.get("term") == term
                   for nid, s in st.items() if self.nodes[nid].state == "running"):
                return []
            if time.monotonic() > deadline:
                raise DdbError(f"not every node follows leader {leader} within {timeout:g}s")
            time.sleep(0.05)

    def _log_tail(self, i: int, size: int = 4000) -> str:
        try:
            with open(self.nodes[i].log_path, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - size))
                return f.read().decode(errors="replace")
        except OSError as e:
            return f"(no log: {e})"

    def _stop_all_and_renumber(self) -> None:
        """A new cluster whose start lost a port race: stop every node, take fresh ports."""
        stop_processes([n.proc for n in self.nodes.values() if n.proc is not None])
        http = self._http_addresses(any(n.http_addr for n in self.nodes.values()), len(self.nodes))
        for (i, old), addr in zip(list(self.nodes.items()), http):
            node = self._new_node(i, addr if old.http_addr else None)
            shutil.rmtree(node.data_dir, ignore_errors=True)
            self.nodes[i] = node
        if self._client is not None:
            self._client.close()
            self._client = None

    def node(self, i: int) -> NodeProc:
        if i not in self.nodes:
            raise ValueError(f"no node {i} (nodes: {', '.join(map(str, self.nodes))})")
        return self.nodes[i]

    def kill(self, i: int) -> None:
        """SIGKILL: the node loses everything not yet on disk (nothing acknowledged)."""
        node = self.node(i)
        if node.proc and node.proc.poll() is None:
            if node.state == "paused":
                node.proc.send_signal(signal.SIGCONT)
            node.proc.kill()
            node.proc.wait(10)
        node.state = "killed"
        self._record_event("kill", {"node": i})

    def stop(self, i: int, timeout: float = 10.0) -> None:
        """SIGTERM: a clean shutdown."""
        node = self.node(i)
        if node.proc and node.proc.poll() is None:
            stop_processes([node.proc], timeout,
                           resume=[node.proc] if node.state == "paused" else [])
        node.state = "stopped"
        self._record_event("stop", {"node": i})

    def pause(self, i: int) -> None:
        node = self.node(i)
        if self._proc_state(i) != "running":
            raise DdbError(f"node {i} is {self._proc_state(i)}, not running")
        node.proc.send_signal(signal.SIGSTOP)
        _wait_signalled(node.proc.pid, stopped=True)
        node.state = "paused"
        self._record_event("pause", {"node": i})

    def resume(self, i: int) -> None:
        node = self.node(i)
        if node.state != "paused":
            raise DdbError(f"node {i} is {node.state}, not paused")
        node.proc.send_signal(signal.SIGCONT)
        _wait_signalled(node.proc.pid, stopped=False)
        node.state = "running"
        self._record_event("resume", {"node": i})

    def restart(self, i: int) -> None:
        """Start a stopped or killed node again from its data directory (same addresses)."""
        node = self.node(i)
        if node.state in ("running", "paused"):
            self.stop(i)
        if node.state == "removed":
            raise DdbError(f"node {i} was removed from the cluster")
        self._spawn(node)
        self._record_event("restart", {"node": i})

    def add_node(self, timeout: float = 60.0) -> int:
        """Start a new node that joins as a learner and is promoted once caught up."""
        nid = max(self.nodes) + 1
        members = [n.client_addr for n in self.nodes.values() if n.state == "running"]
        node = self._new_node(nid, None, join=members)
        self.nodes[nid] = node
        self._spawn(node)
        c = self._admin_client()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                info = c.admin(None, {"op": "nodes"}, timeout=2.0)
                if nid in info.get("voters", []):
                    c.refresh()
                    self._record_event("add", {"node": nid})
                    return nid
            except DdbError:
                pass
            time.sleep(0.05)
        raise DdbError(f"node {nid} did not become a voter within {timeout:g}s "
                       f"(log: {node.log_path})")

    def remove_node(self, i: int, timeout: float = 30.0) -> None:
        """Remove a node from the configuration (the leader too), then stop its process."""
        self.node(i)
        self._admin_client().remove_node(i, timeout=timeout)
        self.stop(i)
        self.nodes[i].state = "removed"
        self._client = None
        self._record_event("remove", {"node": i})

    # ---- ClusterControl hooks -----------------------------------------------------------
    def client_addresses(self) -> list[str]:
        return [n.client_addr for n in self.nodes.values() if n.state not in ("removed",)]

    def node_ids(self) -> list[int]:
        return [i for i, n in self.nodes.items() if n.state != "removed"]

    def _reachable_ids(self) -> list[int]:
        return [i for i, n in self.nodes.items() if n.state == "running"]

    def _proc_state(self, nid: int) -> str | None:
        node = self.nodes.get(nid)
        if node is None:
            return None
        if node.state == "running" and node.proc is not None and node.proc.poll() is not None:
            return "exited"         # it died on its own: say so, and leave it to crashed()
        return node.state

    def processes(self) -> dict[int, dict]:
        out = {}
        for i in self.node_ids():
            st = self._proc_state(i)
            out[i] = {"state": st, "pid": self.nodes[i].pid if st in ("running", "paused") else None}
        return out

    # ---- the dashboard's control path ---------------------------------------------------
    def serve_control(self) -> ControlServer:
        """The authenticated control server (http.control) that lets the dashboard pause,
        resume, restart, stop and kill these processes; started once, closed with us."""
        if self._control is None:
            self._control = ControlServer(self, host=self.host)
        return self._control

    def dashboard_url(self, node: int | None = None) -> str:
        """The dashboard on `node` (default: the first with HTTP), with this launcher's
        control URL and token after '#' so every fault button works."""
        ids = [node] if node is not None else [i for i, n in self.nodes.items() if n.http_addr]
        if not ids or not self.node(ids[0]).http_addr:
            raise DdbError("no node serves HTTP: start the cluster with http=True")
        cs = self.serve_control()
        return f"http://{self.nodes[ids[0]].http_addr}/dashboard#" + urlencode(
            {"control": cs.url, "token": cs.token})

    def _record_event(self, kind: str, detail) -> None:
        self.events.append({"t": time.time(), "kind": kind, "detail": detail})

    def http_addresses(self) -> list[str | None]:
        return [n.http_addr for n in self.nodes.values()]

    def crashed(self) -> list[int]:
        """Nodes whose process exited without being killed or stopped by us."""
        return [i for i, n in self.nodes.items()
                if n.state == "running" and n.proc is not None and n.proc.poll() is not None]

    # ---- lifecycle --------------------------------------------------------------------------
    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._control is not None:
            self._control.close()
            self._control = None
        if self._client is not None:
            self._client.close()
            self._client = None
        stop_processes([n.proc for n in self.nodes.values()], 10.0,
                       resume=[n.proc for n in self.nodes.values() if n.state == "paused"])
        if self.tmp:
            shutil.rmtree(self.data_dir, ignore_errors=True)
        _LIVE.discard(self)

    def __enter__(self) -> "LocalCluster":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __del__(self):
        try:
            self.close()
        except Exception:
            pass

    def __repr__(self) -> str:
        return f"<LocalCluster {self.cluster_id} nodes={list(self.nodes)} dir={self.data_dir}>"


class AttachedCluster(ClusterControl):
    """Status and fault control for a cluster started elsewhere (no process control)."""

    def __init__(self, addresses):
        if isinstance(addresses, str):
            addresses = [a for a in addresses.split(",") if a.strip()]
        self.addresses = list(addresses)
        self._client = None
        c = self._admin_client()
        c.refresh()

    def client_addresses(self) -> list[str]:
        return self.addresses

    def node_ids(self) -> list[int]:
        c = self._admin_client()
        if not c.members:
            c.refresh()
        return sorted(c.members)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


class Cluster:
    @staticmethod
    def attach(addresses) -> AttachedCluster:
        return AttachedCluster(addresses)

    local = LocalCluster


@atexit.register
def _close_all() -> None:
    for c in list(_LIVE):
        try:
            c.close()
        except Exception:
            pass
