"""Real network faults: every node in its own network namespace, as on its own machine.

Layout (root only; `apt-get install -y iproute2 iptables` if missing):

    root namespace: bridge ddbbrX with 10.213.X.1/24 (the harness and its clients live here)
    node i: namespace ddbXnI, veth pair ddbXhI (host side, on the bridge) <-> eth0 inside,
            address 10.213.X.(10+i)/24, listening on :7001 (peers) and :8001 (clients)

Faults act on the kernel's network, not on ddb's transport filters:
  - isolate node i:   take its veth link down (nobody reaches it, it reaches nobody)
  - partition groups: iptables DROP between the groups' addresses, inside each namespace
  - loss p:           iptables `-m statistic --mode random --probability p -j DROP` on INPUT
  - delay:            `tc qdisc netem delay` when the kernel has netem; otherwise (this
                      machine's kernel has no netem, no classifiers and no actions) a `tbf`
                      rate limit on each node's egress, whose queue delays packets in the kernel
`heal()` undoes all of it. Namespaces, links and rules are removed on close (and at exit).
"""
from __future__ import annotations

import atexit
import os
import shutil
import subprocess
import sys
import threading
import weakref

from ddb_node.cluster import LocalCluster, NodeProc

_LIVE: "weakref.WeakSet[NetnsCluster]" = weakref.WeakSet()
PEER_PORT, CLIENT_PORT = 7001, 8001
_SPAWN_LOCK = threading.Lock()


def sh(*args, check: bool = True, ns: str | None = None) -> subprocess.CompletedProcess:
    cmd = (["ip", "netns", "exec", ns] if ns else []) + [str(a) for a in args]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)}: {r.stderr.strip() or r.stdout.strip()}")
    return r


def available() -> str | None:
    """None if namespaces can be used here, else the reason why not."""
    if os.geteuid() != 0:
        return "not root"
    if not shutil.which("ip"):
        return "iproute2 is not installed (apt-get install -y iproute2)"
    probe = f"ddbprobe{os.getpid() % 100000}"
    r = sh("ip", "netns", "add", probe, check=False)
    if r.returncode != 0:
        return f"cannot create a network namespace: {r.stderr.strip()}"
    sh("ip", "netns", "del", probe, check=False)
    return None


_NETEM: bool | None = None


def has_netem() -> bool:
    """Whether the kernel has sch_netem (probed once, in a scratch namespace)."""
    global _NETEM
    if _NETEM is None:
        probe = f"ddbnetem{os.getpid() % 100000}"
        sh("ip", "netns", "add", probe, check=False)
        r = sh("tc", "qdisc", "add", "dev", "lo", "root", "netem", "delay", "1ms", ns=probe, check=False)
        _NETEM = r.returncode == 0
        sh("ip", "netns", "del", probe, check=False)
    return _NETEM


def has_iptables() -> bool:
    return bool(shutil.which("iptables"))


_UNPROBED = "unprobed"
_IPTABLES: str | None = _UNPROBED


def iptables_unavailable() -> str | None:
    """None if iptables can filter inside a network namespace (the rules the partition and
    loss faults add: address DROP and `-m statistic`), else why not. Probed once, in a
    scratch namespace; call only where available() is None."""
    global _IPTABLES
    if _IPTABLES is _UNPROBED:
        if not has_iptables():
            _IPTABLES = "iptables is not installed (apt-get install -y iptables)"
        else:
            probe = f"ddbipt{os.getpid() % 100000}"
            sh("ip", "netns", "add", probe, check=False)
            try:
                for rule in (["-s", "10.213.0.9", "-j", "DROP"],
                             ["-m", "statistic", "--mode", "random", "--probability", "0.5", "-j", "DROP"]):
                    r = sh("iptables", "-A", "INPUT", *rule, ns=probe, check=False)
                    if r.returncode != 0:
                        _IPTABLES = f"iptables cannot filter in a namespace: {(r.stderr or r.stdout).strip()}"
                        break
                else:
                    _IPTABLES = None
            finally:
                sh("ip", "netns", "del", probe, check=False)
    return _IPTABLES


def _pick_subnet() -> int:
    used = sh("ip", "-o", "addr").stdout
    start = os.getpid() % 200
    for k in range(200):
        x = 20 + (start + k) % 200
        if f"10.213.{x}." not in used and not os.path.exists(f"/run/netns/ddb{x}n1"):
            return x
    raise RuntimeError("no free 10.213.X.0/24 subnet for the namespaces")


class NetnsCluster(LocalCluster):
    """A LocalCluster whose nodes each run in their own network namespace."""

    def __init__(self, n: int = 3, data_dir: str | None = None, **kw):
        why = available()
        if why:
            raise RuntimeError(f"network namespaces are not available: {why}")
        self.x = _pick_subnet()
        self.bridge = f"ddbbr{self.x}"
        self.namespaces: dict[int, str] = {}
        self.net_faults: dict = {}
        self._net_closed = False
        start = kw.pop("start", True)
        timeout = kw.pop("timeout", 30.0)
        _LIVE.add(self)
        sh("ip", "link", "add", self.bridge, "type", "bridge")
        sh("ip", "addr", "add", f"10.213.{self.x}.1/24", "dev", self.bridge)
        sh("ip", "link", "set", self.bridge, "up")
        try:
            super().__init__(n, data_dir, start=False, host="127.0.0.1", **kw)
            if start:
                self.start(timeout=timeout)
        except BaseException:
            self.close()
            raise

    # ---- addresses and namespaces ------------------------------------------------------
    def ip(self, i: int) -> str:
        return f"10.213.{self.x}.{10 + i}"

    def ns(self, i: int) -> str:
        return f"ddb{self.x}n{i}"

    def veth(self, i: int) -> str:
        return f"ddb{self.x}h{i}"

    def _make_namespace(self, i: int) -> None:
        if i in self.namespaces:
            return
        ns, host = self.ns(i), self.veth(i)
        sh("ip", "netns", "add", ns)
        self.namespaces[i] = ns
        sh("ip", "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
        sh("ip", "link", "set", host, "master", self.bridge)
        sh("ip", "link", "set", host, "up")
        sh("ip", "link", "set", "lo", "up", ns=ns)
        sh("ip", "addr", "add", f"{self.ip(i)}/24", "dev", "eth0", ns=ns)
        sh("ip", "link", "set", "eth0", "up", ns=ns)

    def _new_node(self, i: int, http, join=None) -> NodeProc:
        self._make_namespace(i)
        d = os.path.join(self.data_dir, f"node{i}")
        return NodeProc(i, f"tcp://{self.ip(i)}:{PEER_PORT}", f"tcp://{self.ip(i)}:{CLIENT_PORT}",
                        None, d, os.path.join(self.data_dir, f"node{i}.log"), join=join or [])

    def _spawn(self, node: NodeProc) -> None:
        """LocalCluster's own spawn (same command line), prefixed with `ip netns exec`.
        `ip netns exec` execs the command in place: the pid is the node's own."""
        import ddb_node.cluster as cl
        orig = cl._popen
        ns = self.ns(node.id)

        def popen(cmd, **kw):
            env = dict(os.environ)
            env["PYTHONPATH"] = os.pathsep.join([p for p in sys.path if p] + [env.get("PYTHONPATH", "")])
            return orig(["ip", "netns", "exec", ns, *cmd], env=env, **kw)
        with _SPAWN_LOCK:
            cl._popen = popen
            try:
                super()._spawn(node)
            finally:
                cl._popen = orig

    # ---- real network faults --------------------------------------------------------------
    def link_down(self, i: int) -> None:
        sh("ip", "link", "set", self.veth(i), "down")
        self.net_faults.setdefault("down", set()).add(i)

    def link_up(self, i: int) -> None:
        sh("ip", "link", "set", self.veth(i), "up")
        self.net_faults.get("down", set()).discard(i)

    def net_partition(self, groups) -> None:
        """Drop every packet between nodes of different groups (both directions, both ends)."""
        groups = [list(g) for g in groups]
        for g in groups:
            for i in g:
                for h in groups:
                    if h is g:
                        continue
                    for j in h:
                        sh("iptables", "-A", "INPUT", "-s", self.ip(j), "-j", "DROP", ns=self.ns(i))
                        sh("iptables", "-A", "OUTPUT", "-d", self.ip(j), "-j", "DROP", ns=self.ns(i))
        self.net_faults["partition"] = groups

    def net_loss(self, p: float, nodes=None) -> None:
        for i in nodes or self.node_ids():
            sh("iptables", "-A", "INPUT", "-m", "statistic", "--mode", "random",
               "--probability", f"{p:.3f}", "-j", "DROP", ns=self.ns(i))
        self.net_faults["loss"] = p

    def net_delay(self, ms: int, jitter: int = 0, nodes=None) -> str:
        """Kernel-level delay on each node's egress; returns the mechanism used."""
        how = "netem" if has_netem() else "tbf"
        for i in nodes or self.node_ids():
            if how == "netem":
                args = ["netem", "delay", f"{ms}ms"] + ([f"{jitter}ms"] if jitter else [])
            else:
                # no netem in this kernel: shape to a low rate so the kernel queues packets;
                # the queue (bounded by `latency`) delays them and drops beyond it
                args = ["tbf", "rate", "256kbit", "burst", "2kb", "latency", f"{max(ms, 50)}ms"]
            sh("tc", "qdisc", "replace", "dev", "eth0", "root", *args, ns=self.ns(i))
        self.net_faults["delay"] = (how, ms)
        return how

    def net_heal(self) -> None:
        for i in list(self.namespaces):
            ns = self.ns(i)
            sh("ip", "link", "set", self.veth(i), "up", check=False)
            if has_iptables():
                sh("iptables", "-F", "INPUT", ns=ns, check=False)
                sh("iptables", "-F", "OUTPUT", ns=ns, check=False)
            sh("tc", "qdisc", "del", "dev", "eth0", "root", ns=ns, check=False)
        self.net_faults = {}

    # ---- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        try:
            if getattr(self, "nodes", None) is not None:
                super().close()
        finally:
            self._teardown()

    def _teardown(self) -> None:
        if self._net_closed:
            return
        self._net_closed = True
        for i in list(self.namespaces):
            sh("ip", "link", "del", self.veth(i), check=False)
            sh("ip", "netns", "del", self.ns(i), check=False)
        self.namespaces.clear()
        sh("ip", "link", "del", self.bridge, check=False)
        _LIVE.discard(self)


@atexit.register
def _teardown_all() -> None:
    for c in list(_LIVE):
        try:
            c.close()
        except Exception:
            pass
