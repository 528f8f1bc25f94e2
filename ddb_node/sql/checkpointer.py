"""Passive WAL checkpoints of the user database on a thread of their own.

A checkpoint copies the WAL's pages into the database file and fsyncs it: 16 MB of WAL took
10-40 ms, and it ran inside the apply of an entry, on the node's loop (a write latency spike
and a pause in heartbeats). SQLite lets a second connection checkpoint while the first one
writes (PASSIVE mode takes no lock a writer needs), so this one runs here, on SQLite's own
unix VFS (no Python in its file I/O: the GIL is released for the whole checkpoint).

What the loop learns back is `durable`: the highest applied index whose WAL frames a
completed checkpoint has put, synced, into the database file. The index is taken when the
checkpoint is asked for, after that entry's commit, so the frames it names are all in the
WAL the checkpoint reads: the claim never runs ahead of the file.
"""
from __future__ import annotations

import struct
import threading

import apsw


_U32 = struct.Struct("=I")


class Checkpointer:
    def __init__(self, path: str, synchronous: str, durable: bool):
        self._conn = apsw.Connection(path, vfs="unix",
                                     flags=apsw.SQLITE_OPEN_READWRITE | apsw.SQLITE_OPEN_URI)
        self._conn.set_busy_timeout(0)
        # per connection: it is the checkpointer that syncs the WAL and the database file
        self._conn.execute(f"PRAGMA synchronous={synchronous}")
        self._durable_mode = durable
        self._cv = threading.Condition()
        self._running = threading.Lock()   # held for the whole of one checkpoint
        self._wanted: int | None = None
        self._closed = False
        self.durable = 0
        self.checkpoints = 0          # completed (every frame copied)
        self.incomplete = 0           # a reader (an open snapshot image) held some back
        self._thread = threading.Thread(target=self._run, name="ddb-checkpoint", daemon=True)
        self._thread.start()

    def request(self, applied_index: int) -> None:
        """Checkpoint soon: everything up to `applied_index` is committed to the WAL."""
        with self._cv:
            if self._wanted is None or applied_index > self._wanted:
                self._wanted = applied_index
            self._cv.notify()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._wanted is None and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                index, self._wanted = self._wanted, None
            try:
                with self._running:
                    nlog, nckpt = self._conn.wal_checkpoint(mode=apsw.SQLITE_CHECKPOINT_PASSIVE)
            except apsw.Error:
                self.incomplete += 1      # busy: another checkpoint runs; asked again
                continue
            if nlog == nckpt:
                self.checkpoints += 1
                if self._durable_mode and index > self.durable:
                    self.durable = index
            else:
                self.incomplete += 1

    @staticmethod
    def backlog_pages(path: str) -> int:
        """WAL frames not yet copied into the database file: the wal-index header's mxFrame
        less the checkpoint's nBackfill (SQLite's documented wal-index layout, walformat:
        u32 at offsets 16 and 96 of the -shm file, native byte order). A 136-byte read."""
        try:
            with open(path + "-shm", "rb") as f:
                head = f.read(136)
        except FileNotFoundError:
            return 0
        if len(head) < 136:
            return 0
        return max(0, _U32.unpack_from(head, 16)[0] - _U32.unpack_from(head, 96)[0])

    def try_exclusive(self) -> bool:
        """Hold back the thread's checkpoints if none is in progress (release with
        `exclusive().release()`); False at once if one is."""
        return self._running.acquire(blocking=False)

    def exclusive(self):
        """Hold back the thread's checkpoints (waiting out the one in progress, 10-40 ms at
        most) so that the caller's own TRUNCATE checkpoint is not refused as busy."""
        return self._running

    def close(self) -> None:
        """Stop after the checkpoint in progress (if any); the connection is closed."""
        with self._cv:
            self._closed = True
            self._cv.notify()
        self._thread.join()
        self._conn.close()
