"""Snapshot data as files beside raft.db: `<db name>-snapshot-<index>.bin`.

A file is complete before the database refers to it (temp name, fsync, rename,
directory fsync), and the database row is the only pointer: any other snapshot
file (an orphan from a crash, or the previous snapshot) is garbage to delete.

A snapshot being received is staged in `<db name>-incoming.part`, described by
`<db name>-incoming.json` (its meta, epoch and total size), written before the first
byte: after a restart the part file's length says how much was received.
"""
from __future__ import annotations

import json
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

    def exists(self, index: int) -> bool:
        return os.path.exists(self.path(index))

    # ---- staging a snapshot being received -------------------------------------
    @property
    def part_path(self) -> str:
        return os.path.join(self._dir, self._prefix.replace("-snapshot-", "-incoming.part"))

    @property
    def _part_info(self) -> str:
        return self.part_path[:-len(".part")] + ".json"

    def start_part(self, info: dict) -> int:
        """Begin a new staging described by `info`; return the part file's descriptor."""
        self.remove_part()
        tmp = self._part_info + ".tmp"
        with open(tmp, "w") as f:
            json.dump(info, f)
        os.replace(tmp, self._part_info)
        return os.open(self.part_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)

    def open_part(self) -> tuple[dict, int, int] | None:
        """The staging left by a previous run: (info, bytes on disk, descriptor to append)."""
        try:
            with open(self._part_info) as f:
                info = json.load(f)
            fd = os.open(self.part_path, os.O_WRONLY | os.O_APPEND)
        except (OSError, ValueError):
            self.remove_part()
            return None
        return info, os.fstat(fd).st_size, fd

    def promote_part(self, fd: int, index: int) -> None:
        """The staged file becomes snapshot `index` (durable before the row points at it)."""
        if self._sync:
            os.fsync(fd)
        os.close(fd)
        os.replace(self.part_path, self.path(index))
        if self._sync:
            self._fsync_dir()

    def remove_part(self) -> None:
        for p in (self.part_path, self._part_info):
            try:
                os.remove(p)
            except FileNotFoundError:
                pass

    def remove_all_but(self, index: int) -> int:
        """Delete every snapshot file but `index`'s; -> how many were deleted."""
        keep = os.path.basename(self.path(index))
        n = 0
        for name in os.listdir(self._dir):
            if name.startswith(self._prefix) and name != keep:
                os.remove(os.path.join(self._dir, name))
                n += 1
        return n

    def _fsync_dir(self) -> None:
        fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
