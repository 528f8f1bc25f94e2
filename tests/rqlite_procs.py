"""Node processes started with whatever command line a test needs (rqlite-style clustering
flags: --join, --bootstrap-expect, --non-voter, advertised addresses ...), beside or instead
of a LocalCluster, and stopped at the end. Everything is observed by polling a node's status
with a deadline (nodehelpers.wait_until), never by sleeping."""
from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass

from ddb_node.client import Client
from ddb_node.cluster import _die_with_parent, free_ports
from ddb_node.procs import stop_process


@dataclass
class Proc:
    name: str
    peer: str            # tcp://host:port
    client: str
    http: str            # host:port
    data_dir: str
    log_path: str
    popen: subprocess.Popen | None = None

    def log(self) -> str:
        with open(self.log_path, errors="replace") as f:
            return f.read()


class Procs:
    def __init__(self, root: str, cluster_id: str):
        self.root = root
        self.cluster_id = cluster_id
        self.procs: dict[str, Proc] = {}
        self._client = None

    def new(self, name: str, host: str = "127.0.0.1") -> Proc:
        p1, p2, p3 = free_ports(3, host)
        d = os.path.join(self.root, f"node-{name}")
        p = Proc(name, f"tcp://{host}:{p1}", f"tcp://{host}:{p2}", f"{host}:{p3}", d,
                 os.path.join(self.root, f"node-{name}.log"))
        self.procs[name] = p
        return p

    def command(self, p: Proc, *args, bind: Proc | None = None) -> list[str]:
        b = bind or p
        return [sys.executable, "-m", "ddb_node.server", "--id", p.name, "--data-dir", p.data_dir,
                "--listen", b.peer, "--client", b.client, "--http", b.http,
                "--cluster-id", self.cluster_id, "--log-level", "INFO", *args]

    def start(self, p: Proc, *args, bind: Proc | None = None) -> Proc:
        with open(p.log_path, "ab") as logf:
            p.popen = subprocess.Popen(self.command(p, *args, bind=bind), stdout=logf,
                                       stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                       preexec_fn=_die_with_parent, close_fds=True)
        return p

    def run(self, p: Proc, *args, timeout: float = 60.0) -> subprocess.CompletedProcess:
        """Run a node that is expected to refuse to start: its exit code and output."""
        return subprocess.run(self.command(p, *args), capture_output=True, text=True,
                              timeout=timeout, stdin=subprocess.DEVNULL)

    def status(self, p: Proc, timeout: float = 2.0) -> dict:
        if self._client is None:
            self._client = Client([p.client], cluster_id=self.cluster_id, timeout=timeout)
        reply = self._client.call(p.client, {"op": "status"}, timeout)
        assert reply.get("ok"), reply
        return reply["status"]

    def stop(self, p: Proc, timeout: float = 15.0) -> int | None:
        return stop_process(p.popen, timeout)

    def kill(self, p: Proc) -> None:
        if p.popen is not None and p.popen.poll() is None:
            p.popen.kill()
            p.popen.wait(10)

    def close(self) -> None:
        for p in self.procs.values():
            self.kill(p)
        if self._client is not None:
            self._client.close()
            self._client = None


class Clients:
    """The Python clients a test opens on LocalClusters, all closed at its end."""

    def __init__(self):
        self.made: list[Client] = []

    def __call__(self, lc) -> Client:
        c = lc.client()
        self.made.append(c)
        return c

    def close(self) -> None:
        for c in self.made:
            c.close()
        self.made.clear()
