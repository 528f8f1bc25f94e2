"""Parts of rqlite's ``/status`` that need more than a glance at the node: the snapshot store,
the SQLite library and each connection's settings (``store.sqlite3.pragmas``).

ddb keeps no snapshot directory: a snapshot is a record in raft.db (the user database holds
the state) plus, while one is received or kept for a memory-less peer, a file beside raft.db.
``snapshot_store`` describes that: the data directory, the bytes of snapshot files in it, and
the current snapshot's id (``term-index``, rqlite's ids start the same way).
"""
from __future__ import annotations

import asyncio
import os

import apsw

RO_WAIT_S = 1.0


def snapshot_store(server) -> dict:
    meta = server.storage.snapshot_meta()
    data_dir = server.opts.data_dir or ""
    size = 0
    if data_dir and os.path.isdir(data_dir):
        for entry in os.scandir(data_dir):
            if "-snapshot-" in entry.name or "-incoming." in entry.name:
                try:
                    size += entry.stat().st_size
                except FileNotFoundError:
                    pass      # replaced while we looked
    return {"dir": data_dir, "dir_size": size,
            "snapshots": [f"{meta.term}-{meta.index}"] if meta.index else []}


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
