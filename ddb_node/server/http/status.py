"""Parts of rqlite's ``/status`` that need more than a glance at the node: the snapshot store,
the SQLite library and each connection's settings (``store.sqlite3.pragmas``).

ddb keeps no snapshot directory: a snapshot is a record in raft.db (the user database holds
the state) plus, while one is received or kept for a memory-less peer, a file beside raft.db.
``snapshot_store`` is rqlite's ``{dir, snapshots}``: the data directory and the current
snapshot's id in rqlite's form ``term-index-msec`` (snapshot/store.go snapshotName), msec
being when this node took or installed it (or, after a restart, when it started with it).
The directory's size is ``store.dir_size``, as in rqlite (store/store.go Stats).
"""
from __future__ import annotations

import asyncio
import os

import apsw

RO_WAIT_S = 1.0


def snapshot_store(server) -> dict:
    meta = server.storage.snapshot_meta()
    msec = getattr(server.replica, "snapshot_at_ms", 0)
    return {"dir": server.opts.data_dir or "",
            "snapshots": [f"{meta.term}-{meta.index}-{msec}"] if meta.index else []}


def dir_size(path: str | None) -> int:
    """Bytes of the files under the data directory (rqlite's store.dir_size)."""
    size = 0
    for root, _dirs, files in os.walk(path or "") if path else ():
        for name in files:
            try:
                size += os.lstat(os.path.join(root, name)).st_size
            except FileNotFoundError:
                pass      # replaced while we looked
    return size


def go_configuration(voters, learners, name_of, addr_of) -> str:
    """hashicorp raft's Stats()["latest_configuration"]: fmt.Sprintf("%+v", servers)."""
    servers = [("Voter", v) for v in sorted(voters)] + [("Nonvoter", v) for v in sorted(learners)]
    return "[" + " ".join(f"{{Suffrage:{kind} ID:{name_of(n)} Address:{addr_of(n)}}}"
                          for kind, n in servers) + "]"


async def sqlite3_status(server) -> dict:
    """SQLite's version and the settings of the write connection (``rw``, the state machine's)
    and of a read connection (``ro``, a worker's; a memory node reads on ``rw``)."""
    rw = server.sm.status_pragmas()
    ro = rw
    if server.reads is not None:
        try:      # every worker may be busy with a long read: /status does not wait for it
            ro = await asyncio.wait_for(server.reads.status_pragmas(), RO_WAIT_S)
        except asyncio.TimeoutError:
            ro = {"error": f"no read worker free within {RO_WAIT_S:g}s"}
    return {"version": apsw.sqlite_lib_version(), "pragmas": {"ro": ro, "rw": rw}}

def advertised_http(status: dict) -> str | None:
    """A node's HTTP address from its status: the advertised one (--http-adv-addr), which
    is what clients must use, else the bound one."""
    return (status.get("advertised") or {}).get("http") or (status.get("addresses") or {}).get("http")
