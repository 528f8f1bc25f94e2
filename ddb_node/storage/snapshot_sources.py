"""Snapshot sources: what a leader streams to a follower (raft.storage.SnapshotSource).

A source is a snapshot's meta, its size and random-access reads, so a snapshot as large as
the database is streamed a chunk at a time and never held whole in memory. `BytesSource` is
the in-memory twin (simulator, tests, memory nodes); `ConcatSource` joins parts (a state
machine image stream and a trailer, say); `SharedSource` opens one source lazily, shares it
between every follower that needs a snapshot meanwhile, and closes it when none does.
"""
from __future__ import annotations

import os
from typing import Callable, Iterable

from ddb_node.raft.types import SnapshotMeta


class BytesSource:
    def __init__(self, meta: SnapshotMeta, data: bytes):
        self.meta = meta
        self.data = data
        self.size = len(data)

    def read(self, offset: int, n: int) -> bytes:
        return self.data[offset:offset + n]

    def close(self) -> None:
        pass


class FileSource:
    """A snapshot file read in place. Each read opens the file, so a source nobody closes
    (the core just drops it) holds no descriptor."""

    def __init__(self, meta: SnapshotMeta, path: str):
        self.meta = meta
        self.path = path
        self.size = os.path.getsize(path)

    def read(self, offset: int, n: int) -> bytes:
        with open(self.path, "rb", buffering=0) as f:
            return os.pread(f.fileno(), max(0, min(n, self.size - offset)), offset)

    def close(self) -> None:
        pass


class ConcatSource:
    """Parts read back to back (each with `size` and `read`), under one meta."""

    def __init__(self, meta: SnapshotMeta, parts: list, on_close: Callable[[], None] | None = None):
        self.meta = meta
        self.parts = parts
        self.size = sum(p.size for p in parts)
        self._on_close = on_close

    def read(self, offset: int, n: int) -> bytes:
        out = []
        start = 0
        for p in self.parts:
            end = start + p.size
            if n > 0 and offset < end:
                lo = max(0, offset - start)
                piece = p.read(lo, min(n, p.size - lo))
                out.append(piece)
                offset += len(piece)
                n -= len(piece)
            start = end
        return b"".join(out)

    def close(self) -> None:
        for p in self.parts:
            close = getattr(p, "close", None)
            if close is not None:
                close()
        if self._on_close is not None:
            self._on_close()
            self._on_close = None


class SharedSource:
    """At most one open source, made by `opener` when a follower first needs a snapshot and
    shared by every transfer until none uses it (`release_unused`). While it is open its
    index pins log compaction: the entries after it must stay for the followers that
    install it (`pinned_index`)."""

    def __init__(self, opener: Callable[[], object]):
        self._opener = opener
        self.current = None
        self.opened = 0          # how many sources were opened (a counter for status)

    def get(self):
        if self.current is None:
            self.current = self._opener()
            self.opened += 1
        return self.current

    def release_unused(self, in_use: Iterable) -> None:
        cur = self.current
        if cur is not None and not any(s is cur for s in in_use):
            self.close()

    def pinned_index(self) -> int | None:
        return None if self.current is None else self.current.meta.index

    def close(self) -> None:
        cur, self.current = self.current, None
        if cur is not None:
            cur.close()
