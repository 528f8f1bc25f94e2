"""Snapshot data as files beside raft.db: `<db name>-snapshot-<index>.bin`.

A file is complete before the database refers to it (temp name, fsync, rename,
directory fsync), and the database row is the only pointer: any other snapshot
file (an orphan from a crash, or the previous snapshot) is garbage to delete.
"""
from __future__ import annotations

import os


class SnapshotFiles:
    def __init__(self, db_path: str, sync: bool):
        self._dir = os.path.dirname(os.path.abspath(db_path))
        self._prefix = os.path.basename(db_path) + "-snapshot-"
        self._sync = sync

    def path(self, index: int) -> str:
        return os.path.join(self._dir, f"{self._prefix}{index}.bin")

    def write(self, index: int, data: bytes) -> None:
        final = self.path(index)
        temp = final + ".tmp"
        with open(temp, "wb") as f:
            f.write(data)
            f.flush()
            if self._sync:
                os.fsync(f.fileno())
        os.replace(temp, final)
        if self._sync:
            self._fsync_dir()

    def read(self, index: int) -> bytes:
        with open(self.path(index), "rb") as f:
            return f.read()

    def remove(self, index: int) -> None:
        try:
            os.remove(self.path(index))
        except FileNotFoundError:
            pass

    def remove_all_but(self, index: int) -> None:
        keep = os.path.basename(self.path(index))
        for name in os.listdir(self._dir):
            if name.startswith(self._prefix) and name != keep:
                os.remove(os.path.join(self._dir, name))

    def _fsync_dir(self) -> None:
        fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
