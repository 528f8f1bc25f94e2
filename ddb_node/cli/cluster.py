"""`ddb cluster up/status/down`: a local cluster that outlives the command.

Unlike `LocalCluster` (whose nodes die with the process that started them), `ddb cluster up`
starts the same `python -m ddb_node.server` commands detached (a new session each) and writes
what it started to a state file, `DIR/cluster.json`: pids, addresses, commands, data
directories. Every later command (`status`, `down`, `ddb shell`, `ddb query` without an
address, the shell's `.kill`/`.restart`) reads it.

DIR is `--dir`, else `$DDB_HOME/cluster`, else `~/.ddb/cluster`. The node layout (ids,
addresses, cluster id) is also kept in `DIR/layout.json`, which `down` leaves in place with
the data, so a later `up` in the same DIR restarts the same cluster from its data. `down
--purge` removes the data and the layout too.

With `--http`, `up` also starts the dashboard's control server (`cluster_control.py`, a
detached process like the nodes, stopped by `down`) and prints the dashboard link that
carries its URL and token, so pause, resume and restart work from the page.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from urllib.parse import urlencode

from ddb_node.cluster import ClusterControl, free_ports
from ddb_node.errors import DdbError

STATE = "cluster.json"
LAYOUT = "layout.json"
CONTROL = "control.json"      # the dashboard's control server: pid, url, token (mode 0600)


class CliError(Exception):
    """An expected failure of a `ddb` command: printed as one line, exit status 1."""


# ------------------------------------------------------------------------------- paths
def ddb_home() -> str:
    return os.path.abspath(os.path.expanduser(os.environ.get("DDB_HOME") or "~/.ddb"))


def default_dir() -> str:
    return os.path.join(ddb_home(), "cluster")


def cluster_dir(d: str | None) -> str:
    return os.path.abspath(os.path.expanduser(d)) if d else default_dir()


def _read_json(path: str) -> dict | None:
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise CliError(f"cannot read {path}: {e}") from None


def _write_json(path: str, obj: dict) -> None:
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")
    os.replace(tmp, path)


def load_state(d: str | None) -> dict | None:
    return _read_json(os.path.join(cluster_dir(d), STATE))


def require_state(d: str | None) -> dict:
    st = load_state(d)
    if st is None:
        raise CliError(f"no cluster in {cluster_dir(d)} (start one with `ddb cluster up"
                       + (f" --dir {d}" if d else "") + "`)")
    return st


def resolve_addresses(addrs: list[str] | None, d: str | None) -> list[str]:
    """The addresses given on the command line (comma lists allowed), else the client
    addresses of the cluster in the state file."""
    out = [a.strip() for item in (addrs or []) for a in item.split(",") if a.strip()]
    if out:
        return out
    return [n["client"] for n in require_state(d)["nodes"]]


# ------------------------------------------------------------------------------- processes
def _proc_stat(pid: int) -> str | None:
    """The process state letter from /proc (R, S, D, T, Z, ...), or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
        return data.rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return None


def _is_ours(pid: int, node: dict) -> bool:
    """Is `pid` still the node we started (not a recycled pid)?"""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().split(b"\0")
    except FileNotFoundError:
        return False
    except OSError:
        return True
    return b"ddb_node.server" in cmd and node["client"].encode() in cmd


def alive(node: dict) -> bool:
    pid = node.get("pid")
    if not pid:
        return False
    if os.path.isdir("/proc"):
        st = _proc_stat(pid)
        return st is not None and st not in ("Z", "X") and _is_ours(pid, node)
    try:                                      # no /proc: best effort
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def paused(node: dict) -> bool:
    return alive(node) and _proc_stat(node["pid"]) in ("T", "t")


def _signal(node: dict, sig) -> None:
    try:
        os.kill(node["pid"], sig)
    except (ProcessLookupError, PermissionError):
        pass


def wait_dead(nodes: list[dict], timeout: float) -> list[dict]:
    """Poll until every node's process is gone; -> the ones still alive at the deadline."""
    deadline = time.monotonic() + timeout
    left = [n for n in nodes if alive(n)]
    while left and time.monotonic() < deadline:
        time.sleep(0.02)
        left = [n for n in left if alive(n)]
    return left


def spawn(node: dict, cwd: str) -> int:
    """Start one node detached: a new session, output to its log, no tie to this process."""
    with open(node["log"], "ab") as logf:
        p = subprocess.Popen(node["cmd"], stdout=logf, stderr=subprocess.STDOUT,
                             stdin=subprocess.DEVNULL, start_new_session=True, close_fds=True,
                             cwd=cwd)
    return p.pid


def log_tail(node: dict, lines: int = 1) -> str:
    try:
        with open(node["log"], "rb") as f:
            f.seek(0, 2)
            f.seek(max(0, f.tell() - 4096))
            text = f.read().decode(errors="replace").strip().splitlines()
        return " | ".join(text[-lines:]) if text else ""
    except OSError:
        return ""


# ------------------------------------------------------------------------------- control
class StateCluster(ClusterControl):
    """Status, faults and process control for the cluster a state file describes."""

    def __init__(self, d: str | None = None):
        self.dir = cluster_dir(d)
        self.path = os.path.join(self.dir, STATE)
        self.state = require_state(d)
        self._client = None

    # ---- state file ----
    def reload(self) -> dict:
        st = _read_json(self.path)
        if st is None:
            raise CliError(f"the cluster in {self.dir} was taken down")
        self.state = st
        return st

    def save(self) -> None:
        _write_json(self.path, self.state)

    def node(self, nid: int) -> dict:
        for n in self.state["nodes"]:
            if n["id"] == nid:
                return n
        raise CliError(f"no node {nid} (nodes: {', '.join(str(n['id']) for n in self.state['nodes'])})")

    # ---- ClusterControl hooks ----
    def client_addresses(self) -> list[str]:
        return [n["client"] for n in self.state["nodes"]]

    def node_ids(self) -> list[int]:
        return [n["id"] for n in self.state["nodes"]]

    def _reachable_ids(self) -> list[int]:
        return [n["id"] for n in self.state["nodes"] if alive(n)]

    def _proc_state(self, nid: int) -> str | None:
        n = self.node(nid)
        if not alive(n):
            # killed or stopped by a command, or it died on its own
            return n.get("state") if n.get("state") in ("killed", "stopped") else "exited"
        return "paused" if paused(n) else "running"

    def processes(self) -> dict[int, dict]:
        """What the state file and /proc say now (another command may have changed it)."""
        try:
            self.reload()
        except CliError:
            return {}
        out = {}
        for n in self.state["nodes"]:
            st = self._proc_state(n["id"])
            out[n["id"]] = {"state": st, "pid": n.get("pid") if st in ("running", "paused") else None}
        return out

    def status(self) -> dict:
        out = super().status()
        for nid, s in out.items():
            n = self.node(nid)
            s.setdefault("id", nid)
            s["pid"] = n.get("pid") if alive(n) else None
        return out

    # ---- processes ----
    def kill(self, nid: int) -> None:
        """SIGKILL one node (it loses nothing acknowledged)."""
        self.reload()
        n = self.node(nid)
        if alive(n):
            _signal(n, signal.SIGCONT)
            _signal(n, signal.SIGKILL)
            if wait_dead([n], 5.0):
                raise CliError(f"node {nid} (pid {n['pid']}) did not die")
        n["state"] = "killed"
        self.save()

    def stop(self, nid: int, timeout: float = 10.0) -> None:
        self.reload()
        n = self.node(nid)
        _stop_all([n], timeout)
        n["state"] = "stopped"
        self.save()

    def restart(self, nid: int, timeout: float = 10.0) -> None:
        """Start a node again from its data directory, with the same command and addresses."""
        self.reload()
        n = self.node(nid)
        if alive(n):
            _stop_all([n], timeout)
        n["pid"] = spawn(n, self.dir)
        n["state"] = "running"
        self.save()

    def pause(self, nid: int) -> None:
        n = self.node(nid)
        if not alive(n):
            raise CliError(f"node {nid} is not running")
        if paused(n):
            raise CliError(f"node {nid} is paused already")
        _signal(n, signal.SIGSTOP)
        _wait_paused(n, True)

    def resume(self, nid: int) -> None:
        n = self.node(nid)
        if not alive(n):
            raise CliError(f"node {nid} is not running")
        if not paused(n):
            raise CliError(f"node {nid} is not paused")
        _signal(n, signal.SIGCONT)
        _wait_paused(n, False)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def _wait_paused(node: dict, want: bool, timeout: float = 5.0) -> None:
    """A signal is delivered asynchronously: poll /proc until the process shows it, so the
    state a caller reads next is the new one."""
    deadline = time.monotonic() + timeout
    while paused(node) != want:
        if time.monotonic() > deadline:
            raise CliError(f"node {node['id']} is still {'running' if want else 'stopped'} "
                           f"{timeout:g}s after the signal")
        time.sleep(0.005)


def _stop_all(nodes: list[dict], timeout: float) -> list[dict]:
    """SIGTERM (after SIGCONT, for paused ones), then SIGKILL whatever outlives `timeout`.
    -> nodes that were SIGKILLed."""
    live = [n for n in nodes if alive(n)]
    for n in live:
        _signal(n, signal.SIGCONT)
        _signal(n, signal.SIGTERM)
    stubborn = wait_dead(live, timeout)
    for n in stubborn:
        _signal(n, signal.SIGKILL)
    left = wait_dead(stubborn, 5.0)
    if left:
        raise CliError("could not stop node(s) " + ", ".join(f"{n['id']} (pid {n['pid']})" for n in left))
    return stubborn


# ------------------------------------------------------------------------------- control
def _control_ours(ctl: dict, d: str) -> bool:
    pid = ctl.get("pid")
    if not pid or _proc_stat(pid) in (None, "Z", "X"):
        return False
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().split(b"\0")
    except OSError:
        return False
    return b"ddb_node.cli.cluster_control" in cmd and d.encode() in cmd


def load_control(d: str) -> dict | None:
    """The running control server of the cluster in `d` ({"pid", "url", "token"}), if any."""
    ctl = _read_json(os.path.join(d, CONTROL))
    return ctl if ctl is not None and _control_ours(ctl, d) else None


def start_control(d: str, host: str, timeout: float = 10.0) -> dict:
    """Start the dashboard's control server for the cluster in `d` (cluster_control.py),
    detached like the nodes; its URL and token go to DIR/control.json (mode 0600)."""
    stop_control(d)
    port = free_ports(1, host)[0]
    token = secrets.token_urlsafe(24)
    cmd = [sys.executable, "-m", "ddb_node.cli.cluster_control", "--dir", d, "--host", host,
           "--port", str(port)]
    with open(os.path.join(d, "control.log"), "ab") as logf:
        p = subprocess.Popen(cmd, stdout=logf, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, close_fds=True, cwd=d,
                             env=dict(os.environ, DDB_CONTROL_TOKEN=token))
    ctl = {"pid": p.pid, "url": f"http://{host}:{port}", "token": token}
    path = os.path.join(d, CONTROL)
    fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(ctl, f)
    os.replace(path + ".tmp", path)
    deadline = time.monotonic() + timeout
    while True:                                   # poll until it answers with our token
        try:
            req = urllib.request.Request(ctl["url"] + "/control/state",
                                         headers={"Authorization": f"Bearer {token}"})
            with urllib.request.urlopen(req, timeout=1.0):
                return ctl
        except OSError as e:
            if p.poll() is not None or time.monotonic() > deadline:
                stop_control(d)
                raise CliError(f"the dashboard's control server did not start: {e} "
                               f"(log: {os.path.join(d, 'control.log')})") from None
            time.sleep(0.05)


def stop_control(d: str, timeout: float = 5.0) -> None:
    path = os.path.join(d, CONTROL)
    ctl = _read_json(path)
    if ctl is None:
        return
    if _control_ours(ctl, d):
        try:
            os.kill(ctl["pid"], signal.SIGTERM)
        except ProcessLookupError:
            pass
        deadline = time.monotonic() + timeout
        while _control_ours(ctl, d) and time.monotonic() < deadline:
            time.sleep(0.02)
        if _control_ours(ctl, d):
            os.kill(ctl["pid"], signal.SIGKILL)
    os.unlink(path)


def dashboard_url(state: dict, ctl: dict | None) -> str | None:
    """The dashboard on the first node with HTTP, with the control URL and token after '#'."""
    http = next((n["http"] for n in state["nodes"] if n.get("http")), None)
    if not http:
        return None
    url = f"http://{http}/dashboard"
    if ctl:
        url += "#" + urlencode({"control": ctl["url"], "token": ctl["token"]})
    return url


# ------------------------------------------------------------------------------- up
def _port_free(addr: str) -> bool:
    host, _, port = addr.split("://", 1)[-1].rpartition(":")
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, int(port)))
        return True
    except OSError:
        return False
    finally:
        s.close()


def node_command(layout: dict, n: dict) -> list[str]:
    peers = ",".join(f"{m['id']}={m['peer']}/{m['client']}" for m in layout["nodes"])
    cmd = [sys.executable, "-m", "ddb_node.server", "--id", str(n["id"]),
           "--listen", n["peer"], "--client", n["client"], "--cluster-id", layout["cluster_id"],
           "--storage", "disk", "--data-dir", n["data_dir"], "--peers", peers,
           "--log-level", layout.get("log_level", "WARNING")]
    if n.get("http"):
        cmd += ["--http", n["http"]]
    return cmd


def _new_layout(d: str, n: int, http: list, host: str) -> dict:
    ports = free_ports(2 * n, host)
    nodes = []
    for i in range(1, n + 1):
        nodes.append({"id": i, "peer": f"tcp://{host}:{ports[2 * i - 2]}",
                      "client": f"tcp://{host}:{ports[2 * i - 1]}", "http": http[i - 1],
                      "data_dir": os.path.join(d, f"node{i}"),
                      "log": os.path.join(d, f"node{i}.log")})
    return {"version": 1, "cluster_id": "ddb-" + os.urandom(3).hex(), "dir": d,
            "created": time.time(), "nodes": nodes}


def up(d: str | None, n: int | None, http: str | None, timeout: float = 30.0,
       host: str = "127.0.0.1", out=sys.stdout) -> int:
    d = cluster_dir(d)
    os.makedirs(d, exist_ok=True)
    old = _read_json(os.path.join(d, STATE))
    if old is not None:
        running = [x for x in old.get("nodes", []) if alive(x)]
        if running:
            raise CliError(f"a cluster is already running in {d} (pids "
                           f"{', '.join(str(x['pid']) for x in running)}); "
                           f"stop it with `ddb cluster down --dir {d}`")
    layout = _read_json(os.path.join(d, LAYOUT))
    if layout is not None and n is not None and n != len(layout["nodes"]):
        raise CliError(f"{d} holds the data of a {len(layout['nodes'])}-node cluster; use -n "
                       f"{len(layout['nodes'])}, another --dir, or `ddb cluster down --purge`")
    n = n if n is not None else (len(layout["nodes"]) if layout else 3)
    if n < 1:
        raise CliError("a cluster needs at least one node")
    http_list = [a.strip() for a in (http or "").split(",") if a.strip()]
    if http_list and len(http_list) != n:
        raise CliError(f"--http needs {n} addresses, one per node (got {len(http_list)})")
    if layout is None:
        layout = _new_layout(d, n, http_list or [None] * n, host)
    else:
        if http_list:
            for node, h in zip(layout["nodes"], http_list):
                node["http"] = h
        for node in layout["nodes"]:
            for key in ("peer", "client"):
                if not _port_free(node[key]):
                    raise CliError(f"node {node['id']}'s {key} address {node[key]} is in use "
                                   f"(the cluster in {d} reuses its addresses)")
    for node in layout["nodes"]:
        node["cmd"] = node_command(layout, node)
    _write_json(os.path.join(d, LAYOUT), layout)

    state = dict(layout, started=time.time())
    state["nodes"] = [dict(x) for x in layout["nodes"]]
    for node in state["nodes"]:
        node["pid"] = spawn(node, d)
        node["state"] = "running"
    _write_json(os.path.join(d, STATE), state)

    sc = StateCluster(d)
    try:
        leader = _wait_up(sc, timeout)
    except CliError:
        _stop_all(state["nodes"], 5.0)
        os.unlink(os.path.join(d, STATE))
        raise
    finally:
        sc.close()
    ctl = None
    if any(x.get("http") for x in state["nodes"]):
        try:
            ctl = start_control(d, host)
        except CliError as e:              # the cluster is up; only the launcher buttons are not
            print(f"warning: {e}", file=sys.stderr)
    addrs = [x["client"] for x in state["nodes"]]
    opt = "" if d == default_dir() else f" --dir {d}"
    print(f"cluster {state['cluster_id']}: {n} node{'s' if n != 1 else ''} up in {d}, "
          f"leader node {leader}", file=out)
    for x in state["nodes"]:
        extra = f"  http {x['http']}" if x.get("http") else ""
        print(f"  node {x['id']}  client {x['client']}  peer {x['peer']}{extra}  pid {x['pid']}",
              file=out)
    print(f"clients: {','.join(addrs)}", file=out)
    url = dashboard_url(state, ctl)
    if url:
        print(f"dashboard: {url}", file=out)
    print(f"next: ddb shell{opt}  |  ddb cluster status{opt}  |  ddb cluster down{opt}", file=out)
    return 0


def _wait_up(sc: StateCluster, timeout: float) -> int:
    deadline = time.monotonic() + timeout
    while True:
        dead = [x for x in sc.state["nodes"] if not alive(x)]
        if dead:
            x = dead[0]
            raise CliError(f"node {x['id']} exited while starting: "
                           f"{log_tail(x) or 'no output'} (log: {x['log']})")
        left = deadline - time.monotonic()
        if left <= 0:
            raise CliError(f"no leader within {timeout:g}s (logs: {sc.dir}/node*.log)")
        try:
            return sc.wait_for_leader(timeout=min(1.0, left))
        except DdbError:
            continue


# ------------------------------------------------------------------------------- status / down
STATUS_COLUMNS = ["id", "state", "role", "term", "leader", "commit", "applied", "last index",
                  "pid", "client"]


def status_rows(control, st: dict | None = None) -> list[list]:
    st = st if st is not None else control.status()
    if isinstance(control, StateCluster):
        addrs = {n["id"]: n["client"] for n in control.state["nodes"]}
    else:
        client = getattr(control, "_client", None)
        addrs = dict(client.members) if client is not None else {}
    rows = []
    for nid in sorted(st):
        s = st[nid]
        err = s.get("error")
        state = s.get("state") or "running"
        if err and state in ("running", "unreachable"):
            state = "unreachable"
        client = addrs.get(nid) or (s.get("addresses") or {}).get("client")
        rows.append([nid, state, s.get("role"), s.get("term"), s.get("leader") or None,
                     s.get("commit"), s.get("applied"), s.get("log_last_index", s.get("last_index")),
                     s.get("pid"), client])
    return rows


def status(d: str | None, as_json: bool = False, out=sys.stdout) -> int:
    from ddb_node.cli.output import box_style, dumps, format_table
    sc = StateCluster(d)
    try:
        st = sc.status()
    finally:
        sc.close()
    if as_json:
        keep = ("id", "state", "role", "term", "leader", "commit", "applied", "log_last_index",
                "pid", "error", "reachable", "faults")
        print(dumps({"dir": sc.dir, "cluster_id": sc.state.get("cluster_id"),
                     "nodes": [{k: s.get(k) for k in keep if k in s} for _, s in sorted(st.items())]},
                    pretty=True), file=out)
    else:
        print(f"cluster {sc.state.get('cluster_id')} in {sc.dir}", file=out)
        print(format_table(STATUS_COLUMNS, status_rows(sc, st), style=box_style(out),
                           footer=False, null=""), file=out)
        url = dashboard_url(sc.state, load_control(sc.dir))
        if url:
            print(f"dashboard: {url}", file=out)
    return 0


def down(d: str | None, purge: bool = False, timeout: float = 10.0, out=sys.stdout) -> int:
    d = cluster_dir(d)
    state = _read_json(os.path.join(d, STATE))
    if state is None and not purge:
        raise CliError(f"no cluster in {d}")
    killed = []
    stop_control(d)
    if state is not None:
        killed = _stop_all(state["nodes"], timeout)
        os.unlink(os.path.join(d, STATE))
        msg = f"stopped {len(state['nodes'])} node(s) in {d}"
        if killed:
            msg += f" ({', '.join(str(n['id']) for n in killed)} needed SIGKILL)"
        print(msg, file=out)
    if purge:
        layout = _read_json(os.path.join(d, LAYOUT)) or state or {"nodes": []}
        for n in layout["nodes"]:
            shutil.rmtree(n["data_dir"], ignore_errors=True)
            for p in (n["log"],):
                if os.path.exists(p):
                    os.unlink(p)
        for name in (LAYOUT, "control.log"):
            if os.path.exists(os.path.join(d, name)):
                os.unlink(os.path.join(d, name))
        try:
            os.rmdir(d)
        except OSError:
            pass
        print(f"removed the cluster's data in {d}", file=out)
    else:
        print(f"data kept in {d} (`ddb cluster up` restarts it; `down --purge` removes it)", file=out)
    return 0
