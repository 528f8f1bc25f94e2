"""How a node is launched: everything `ddb node` accepts, as one plain object."""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from ddb_node.sql.changes import ChangeConfig

# Raft timing, the one definition (the command line and LocalCluster default to these).
# Failover costs about one election timeout (randomized in [election, 2*election) ticks), so
# the tick is short: 10 ms x 15 = 150-300 ms. Under load the leader's appends reset the
# followers' timers far more often than heartbeats do; with no load a heartbeat every 3
# ticks (30 ms) leaves five of them per election timeout. benchmarks/soak.py measures the
# longest silence a follower saw under 64-client load (`leader_gap_max_ms`) against it.
TICK_MS = 10
ELECTION_TICK = 15
HEARTBEAT_TICK = 3


_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):([0-9]{1,5})$")


def tcp(addr: str) -> str:
    """A zmq address from host:port (tcp:// unless another scheme is given)."""
    addr = addr.strip()
    return addr if "://" in addr else "tcp://" + addr


@dataclass
class NodeOptions:
    node_id: int
    peer_addr: str                       # tcp://host:port for Raft traffic
    client_addr: str                     # tcp://host:port for client requests
    peers: dict = field(default_factory=dict)   # {id: {"peer": addr, "client": addr, "http": addr}}
    data_dir: str | None = None          # required unless storage == "memory"
    storage: str = "disk"                # "disk" (raft.db + data.db) or "memory"
    cluster_id: str = "ddb"
    join: list = field(default_factory=list)   # client addresses of members to ask to join
    http_addr: str | None = None         # host:port for the HTTP API (served when set)
    http_workers: int | None = None      # read worker processes (http.workers); None: DDB_HTTP_WORKERS or 0
    tick_ms: int = TICK_MS
    election_tick: int = ELECTION_TICK
    heartbeat_tick: int = HEARTBEAT_TICK
    snapshot_entries: int = 20_000       # take a snapshot after this many applied entries...
    snapshot_bytes: int = 64 << 20       # ...or this many bytes of log
    snapshot_trailing: int = 2_000       # entries kept behind a snapshot for slow followers
    snapshot_chunk: int = 1 << 20        # bytes of a snapshot per message to a follower
    request_timeout: float = 10.0
    curve: dict | None = None            # {"public", "secret", "server", "clients": [...]}
    user_db_sync: str = "normal"         # the Raft log is durable; the user db may sync less
    reap_node_timeout: float = 0.0       # seconds; the leader removes a voter silent this long (0: never)
    reap_read_only_node_timeout: float = 0.0   # the same for a non-voter (learner)
    # rqlite's clustering options (README "Clustering")
    node_name: str | None = None         # the id as the operator wrote it (node_ids.py)
    non_voter: bool = False              # join as a read-only replica that never votes
    bootstrap_expect: int = 0            # form the cluster once this many --join nodes are up
    peer_adv_addr: str | None = None     # addresses the others use, when not the bound ones
    client_adv_addr: str | None = None
    http_adv_addr: str | None = None
    remove_on_shutdown: bool = False     # leave the configuration on a graceful shutdown
    sole_survivor: bool = False          # peers.json with several voters: force this log anyway
    http_auth: str | None = None         # users file (also DDB_HTTP_AUTH); guards /join too
    join_as: str | None = None           # the users-file user this node joins as
    extensions_path: str | None = None   # SQLite loadable extensions: a dir, a .so or a .zip
    # change data capture (sql/changes.py): configure every node alike (snapshots carry it)
    changes: bool = True                 # record every applied row change
    changes_keep_entries: int = 100_000  # log indexes of changes kept (0: no bound)
    changes_keep_bytes: int = 64 << 20   # encoded bytes of changes kept (0: no bound)
    cdc_webhook: str | None = None       # rqlite's -cdc-config URL: the leader POSTs batches

    def change_config(self) -> ChangeConfig:
        return ChangeConfig(enabled=self.changes, keep_entries=self.changes_keep_entries,
                            keep_bytes=self.changes_keep_bytes)

    @property
    def advertised(self) -> dict:
        """Where the other nodes and clients reach this node."""
        return {"peer": self.peer_adv_addr or self.peer_addr,
                "client": self.client_adv_addr or self.client_addr,
                "http": self.http_adv_addr or self.http_addr, "name": self.node_name}

    def validate(self) -> None:
        if self.node_id <= 0:
            raise ValueError("node id must be a positive integer")
        if self.storage not in ("disk", "memory"):
            raise ValueError("storage must be 'disk' or 'memory'")
        if self.storage == "disk" and not self.data_dir:
            raise ValueError("a data directory is required (or use --storage memory)")
        if self.tick_ms <= 0:
            raise ValueError("tick must be positive")
        for name in ("reap_node_timeout", "reap_read_only_node_timeout"):
            if getattr(self, name) < 0:
                raise ValueError(f"--{name.replace('_', '-').replace('reap', 'raft-reap', 1)} "
                                 "must not be negative")
        if self.bootstrap_expect < 0:
            raise ValueError("--bootstrap-expect must be a positive number of nodes")
        if self.bootstrap_expect and not self.join:
            raise ValueError("--bootstrap-expect needs --join with the addresses of the nodes "
                             "that form the cluster")
        if self.bootstrap_expect and self.peers:
            raise ValueError("--bootstrap-expect and --peers both say who the first members "
                             "are: give one of them")
        if self.non_voter and self.bootstrap_expect:
            raise ValueError("a non-voter never forms a cluster: drop --bootstrap-expect")
        if self.non_voter and not self.join:
            raise ValueError("a non-voter joins an existing cluster: give --join")
        if self.join_as is not None and not self.http_auth:
            raise ValueError("--join-as names a user of the users file: give --auth FILE")
        for flag, addr in (("--raft-adv-addr", self.peer_adv_addr),
                           ("--client-adv-addr", self.client_adv_addr),
                           ("--http-adv-addr", self.http_adv_addr)):
            if addr is not None and not _HOST_PORT.match(addr.split("://", 1)[-1]):
                raise ValueError(f"{flag} {addr!r} is not host:port")
        if self.http_workers is not None and self.http_workers < 0:
            raise ValueError("--http-workers must not be negative")
        if self.http_adv_addr and not self.http_addr:
            raise ValueError("--http-adv-addr needs --http (the address the API binds)")
        if self.changes_keep_entries < 0 or self.changes_keep_bytes < 0:
            raise ValueError("--changes-keep-entries and --changes-keep-bytes must not be negative")
        if self.cdc_webhook and not self.changes:
            raise ValueError("--cdc-config needs change capture (drop --changes off)")
        for ext in (self.extensions_path or "").split(","):
            if ext.strip() and not os.path.exists(os.path.expanduser(ext.strip())):
                raise ValueError(f"--extensions-path {ext.strip()}: no such file or directory")

    def path(self, name: str) -> str:
        assert self.data_dir
        return os.path.join(self.data_dir, name)
