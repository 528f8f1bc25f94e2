"""The node's side of its HTTP read workers (http.worker): start them on the API's
listening sockets, adopt the connections they hand over, answer their ReadIndex requests,
tell them whether this node leads, and start a new one when one exits.

With workers the node's own loop accepts no HTTP connection: every connection reaches a
worker first, which either answers its reads or hands the connection over (at once for
anything but a read). The node then serves it like any other, from its first unanswered
byte. Why: one Python process is one core, and a read's HTTP and JSON work is most of its
cost; reads spread over the workers' processes while the loop keeps Raft, writes and
everything else. `--http-workers N` (DDB_HTTP_WORKERS); 0, the default, serves everything
in the node's loop. Not with TLS (the worker cannot hand over a TLS session) or a database
in memory (a worker reads the file).
"""
from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import os
import socket
import subprocess
import sys
import time

from ddb_node.raft import NotLeader

from . import worker_channel as channel

log = logging.getLogger("ddb.http.workers")

READ_ROUND_S = 0.001               # at most one ReadIndex round per millisecond for the workers
RESTART_DELAY_S = (0.2, 5.0)       # first and longest wait before a worker is started again


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound (SO_REUSEPORT) to the API's address but not listening: it holds the
    port -- and tells a port already taken at once, as a node without workers does -- while
    each worker listens on a socket of its own bound to the same port, so the kernel
    spreads new connections evenly over the workers (one shared listening socket let the
    first worker to wake take nearly all of them)."""
    family, kind, proto, _, addr = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM,
                                                      flags=socket.AI_PASSIVE)[0]
    # first without SO_REUSEPORT: another node (with workers) already on the port must be
    # "Address already in use" here, not a silent share of its connections
    probe = socket.socket(family, kind, proto)
    try:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        probe.bind(addr)
        addr = probe.getsockname()          # the port chosen, if 0 was asked
    finally:
        probe.close()
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(addr)
    except OSError:
        sock.close()
        raise
    return sock


def listen_like(reserved: dict) -> socket.socket:
    """A worker's listening socket on the address its node reserved."""
    sock = socket.socket(reserved["family"], socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind(tuple(reserved["addr"]))
    sock.listen(1024)
    sock.setblocking(False)
    return sock


class _Handle:
    """One worker: its process, its end of the channel, a connection being handed over."""

    def __init__(self, slot: int):
        self.slot = slot
        self.proc: subprocess.Popen | None = None
        self.sock: socket.socket | None = None
        self.partial: dict[int, tuple[int, list]] = {}     # handoff id -> (fd, chunks)
        self.started = 0.0
        self.ready: asyncio.Future | None = None
        self.delay = RESTART_DELAY_S[0]
        self.counts = (0, 0)           # what this process reported: reads, handoffs


class WorkerPool:
    def __init__(self, service, count: int, listeners: list):
        self.service = service
        self.server = service.server
        self.count = count
        self.listeners = listeners
        self.handles = [_Handle(i) for i in range(count)]
        self.closed = False
        self.stats = {"started": 0, "exited": 0, "adopted": 0, "read_index": 0}
        self.gone = [0, 0]                 # counts of workers that exited
        self._last_state = None
        self._read_wanted: list = []          # (worker, rid) waiting for the next round
        self._read_round = None               # the round in flight
        self._read_timer = None
        self._read_last = 0.0                 # when the last round started
        self._refresh = None
        tick_s = self.server.opts.tick_ms / 1000.0
        self.lease_s = self.server.opts.election_tick * tick_s   # how long "I lead" holds
        self.refresh_s = max(tick_s, self.lease_s / 4)

    # ---- lifecycle -------------------------------------------------------------------
    async def start(self, timeout: float = 20.0) -> None:
        """Start the workers; return once each listens (the API is up), or after `timeout`."""
        for h in self.handles:
            self._spawn(h)
        self._refresh = asyncio.ensure_future(self._renew())
        waits = [h.ready for h in self.handles if h.ready is not None]
        done, _ = await asyncio.wait(waits, timeout=timeout) if waits else (set(), set())
        if len(done) < self.count:
            log.error("node %d: %d of %d HTTP workers are not listening after %gs",
                      self.server.id, self.count - len(done), self.count, timeout)

    def _config(self, ctl_fd: int) -> dict:
        sm = self.server.sm
        svc = self.service
        return {"parent": os.getpid(), "node": self.server.id, "db": os.path.abspath(sm.path),
                "ctl_fd": ctl_fd,
                "listen": [{"family": int(s.family), "addr": list(s.getsockname())}
                           for s in self.listeners],
                "limits": dataclasses.asdict(sm.limits), "statement_cache": max(sm.statement_cache, 2048),
                "extension_files": list(sm.extension_files), "max_body": svc.max_body,
                "max_result": svc.max_result, "max_connections": svc.max_conns,
                "auth": getattr(svc, "auth_path", None)}

    def _spawn(self, h: _Handle) -> None:
        ours, theirs = channel.pair()
        cfg = self._config(theirs.fileno())
        fds = [theirs.fileno()]
        try:
            h.proc = subprocess.Popen([sys.executable, "-m", "ddb_node.server.http.worker",
                                       json.dumps(cfg)], pass_fds=fds, close_fds=True,
                                      stdin=subprocess.DEVNULL)
        except OSError as e:
            log.error("node %d: could not start an HTTP worker: %s", self.server.id, e)
            ours.close()
            theirs.close()
            self._restart_later(h)
            return
        theirs.close()
        ours.setblocking(False)
        h.sock = ours
        h.started = time.monotonic()
        h.ready = asyncio.get_running_loop().create_future()
        self.stats["started"] += 1
        asyncio.get_running_loop().add_reader(ours.fileno(), self._readable, h)
        self._send(h, ["state", self._state()])

    def _exited(self, h: _Handle) -> None:
        loop = asyncio.get_running_loop()
        if h.sock is not None:
            loop.remove_reader(h.sock.fileno())
            h.sock.close()
            h.sock = None
        for fd, _ in h.partial.values():
            os.close(fd)
        h.partial.clear()
        if h.proc is not None:
            if h.proc.poll() is None:      # its channel ended, so it is on its way out
                h.proc.kill()
                h.proc.wait()
            h.proc = None
        self.stats["exited"] += 1
        self.gone[0] += h.counts[0]
        self.gone[1] += h.counts[1]
        h.counts = (0, 0)
        if not self.closed:
            log.warning("node %d: HTTP worker %d exited; starting another", self.server.id, h.slot)
            if time.monotonic() - h.started > 10.0:
                h.delay = RESTART_DELAY_S[0]
            self._restart_later(h)

    def _restart_later(self, h: _Handle) -> None:
        delay, h.delay = h.delay, min(h.delay * 2, RESTART_DELAY_S[1])
        asyncio.get_running_loop().call_later(delay, lambda: None if self.closed else self._spawn(h))

    def close(self) -> None:
        self.closed = True
        if self._refresh is not None:
            self._refresh.cancel()
        if self._read_timer is not None:
            self._read_timer.cancel()
        loop = asyncio.get_event_loop()
        for h in self.handles:
            if h.sock is not None:
                loop.remove_reader(h.sock.fileno())
                h.sock.close()          # the worker sees the end and stops
                h.sock = None
            for fd, _ in h.partial.values():
                os.close(fd)
            h.partial.clear()
        for h in self.handles:
            if h.proc is not None:
                try:
                    h.proc.wait(timeout=2.0)
                except subprocess.TimeoutExpired:
                    h.proc.kill()
                    h.proc.wait()
                h.proc = None

    def status(self) -> dict:
        """For /status: the workers, what they answered and what they handed over."""
        return {"count": self.count,
                "running": sum(1 for h in self.handles if h.sock is not None),
                "pids": [h.proc.pid for h in self.handles if h.proc is not None],
                "reads_served": self.gone[0] + sum(h.counts[0] for h in self.handles),
                "connections_handed_over": self.gone[1] + sum(h.counts[1] for h in self.handles),
                **self.stats}

    # ---- what the workers are told -------------------------------------------------
    def _state(self) -> dict:
        r = self.server.replica
        leads = bool(r.is_leader)
        return {"leader": leads, "until": time.monotonic() + self.lease_s if leads else 0.0,
                "term": self.server.raft.term, "leader_id": self.server.raft.leader_id,
                "gen": self.server.sm.file_generation, "schema": self.server.sm.schema_generation}

    def changed(self) -> None:
        """After each turn of the node's loop: tell the workers when what they act on moved."""
        r = self.server.replica
        sm = self.server.sm
        now = (r.is_leader, self.server.raft.term, self.server.raft.leader_id,
               sm.file_generation, sm.schema_generation)
        if now != self._last_state:
            self._last_state = now
            self._broadcast()

    def _broadcast(self) -> None:
        msg = ["state", self._state()]
        for h in self.handles:
            self._send(h, msg)

    async def _renew(self) -> None:
        """A leader's word holds for one election timeout: renewed while it still leads, it
        lapses in the workers when this loop stops (SIGSTOP, a stuck loop)."""
        while True:
            await asyncio.sleep(self.refresh_s)
            if self.server.replica.is_leader:
                self._broadcast()

    def _send(self, h: _Handle, msg: list) -> None:
        if h.sock is None:
            return
        try:
            channel.send(h.sock, msg)
        except BlockingIOError:
            pass        # the worker is behind: the next message says the same, newer
        except OSError:
            pass        # it is exiting: _readable sees the end

    # ---- what the workers ask --------------------------------------------------------
    def _readable(self, h: _Handle) -> None:
        for msg, fds in channel.waiting(h.sock):
            if msg is None:
                self._exited(h)
                return
            kind = msg[0] if msg else None
            if kind == "handoff" and len(msg) == 4:
                self._handoff(h, msg[1], msg[2], msg[3], fds)
                continue
            for fd in fds:
                os.close(fd)
            if kind == "ready":
                if h.ready is not None and not h.ready.done():
                    h.ready.set_result(None)
            elif kind == "counts" and len(msg) == 3:
                h.counts = (int(msg[1]), int(msg[2]))
            elif kind == "read_index" and len(msg) == 2:
                self.stats["read_index"] += 1
                self._read_index(h, msg[1])

    def _handoff(self, h: _Handle, hid, chunk, more, fds: list) -> None:
        if fds:
            for fd in fds[1:]:
                os.close(fd)
            h.partial[hid] = (fds[0], [])
        entry = h.partial.get(hid)
        if entry is None or not isinstance(chunk, bytes):
            return
        entry[1].append(chunk)
        if more:
            return
        del h.partial[hid]
        fd, chunks = entry
        self.stats["adopted"] += 1
        try:
            sock = socket.socket(fileno=fd)
            sock.setblocking(False)
        except OSError:
            os.close(fd)
            return
        asyncio.ensure_future(self._adopt(sock, b"".join(chunks)))

    async def _adopt(self, sock: socket.socket, data: bytes) -> None:
        try:
            await self.service.httpd.adopt(sock, data)
        except OSError:
            sock.close()            # the client left meanwhile

    def _read_index(self, h: _Handle, rid) -> None:
        """A worker's batch of linearizable reads waits for a ReadIndex round of the
        Replica that starts after it arrived. The workers' batches share rounds: one in
        flight at a time, and a new one starts no sooner than READ_ROUND_S after the last
        one did. On loopback a round takes ~0.2 ms, so without the pause nearly every read
        had a round of its own: ~70 µs of the node's loop and ~35 µs of each follower's per
        read (heartbeats and their answers) where a read's whole HTTP work is ~100 µs."""
        self._read_wanted.append((h, rid))
        self._next_round()

    def _next_round(self) -> None:
        if self._read_wanted and self._read_round is None and self._read_timer is None:
            wait = self._read_last + READ_ROUND_S - time.monotonic()
            if wait > 0:
                self._read_timer = asyncio.get_running_loop().call_later(wait, self._start_round)
            else:
                self._start_round()

    def _start_round(self) -> None:
        self._read_timer = None
        if not self._read_wanted or self._read_round is not None:
            return
        srv = self.server
        batch, self._read_wanted = self._read_wanted, []
        self._read_last = time.monotonic()
        loop = asyncio.get_running_loop()
        state = {"timer": None}

        def answer(index, error) -> None:
            if state["timer"] is not None:
                state["timer"].cancel()
            if self._read_round is not token:
                return
            self._read_round = None
            for h, rid in batch:
                self._send(h, ["index", rid, index, error])
            self._next_round()

        token = object()
        try:
            ctx = srv.replica.read_index(lambda index: answer(index, None),
                                         lambda err: answer(None, getattr(err, "message", str(err))))
        except NotLeader as e:
            self._read_round = token
            answer(None, str(e))
            return
        self._read_round = token

        def expired() -> None:
            state["timer"] = None
            srv.replica.cancel_read(ctx)
            answer(None, "linearizable read (no quorum confirmed the leader)")
        state["timer"] = loop.call_later(srv.replica.request_timeout, expired)
        srv._kick()
