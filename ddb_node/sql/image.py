"""A consistent image of the live user database at its applied index, read in place.

No copy is made. The WAL is checkpointed completely (TRUNCATE), then a second, read-only
connection opens a read transaction. With the WAL empty that reader uses read-mark 0: it
reads the database file alone, and while it holds that mark SQLite's checkpointer may not
write a single page back into the file (walformat.html: backfilling needs an exclusive lock
on read-mark 0). Writers keep committing into the WAL meanwhile; the file's first
page_count * page_size bytes stay exactly the database as of the applied index read inside
that transaction, so they can be read with plain preads, a chunk at a time, for as long as
the image is open. The price: checkpoints wait until the image is closed (the WAL grows by
what is written meanwhile), so an image must be closed as soon as its transfer ends.
A ":memory:" database has no file: its image is `serialize()`d, as its data is in memory
anyway.
"""
from __future__ import annotations

import os

import apsw

from .errors import SnapshotError


class FileImage:
    def __init__(self, path: str):
        self.path = path
        wal = path + "-wal"
        self._reader = apsw.Connection(path, flags=apsw.SQLITE_OPEN_READONLY)
        self._fd = -1
        try:
            self._reader.set_busy_timeout(0)
            self._reader.execute("BEGIN")
            (self.index, self.term), = self._reader.execute(
                "SELECT idx, term FROM _ddb_applied WHERE id = 0").fetchall()
            if os.path.exists(wal) and os.path.getsize(wal) > 0:
                # frames in the WAL: the reader may not be reading the file alone
                raise SnapshotError("the WAL is not empty: checkpoint before opening an image")
            pages = self._reader.execute("PRAGMA page_count").fetchall()[0][0]
            page_size = self._reader.execute("PRAGMA page_size").fetchall()[0][0]
            self.size = pages * page_size
            self._fd = os.open(path, os.O_RDONLY)
        except BaseException:
            self.close()
            raise

    def read(self, offset: int, n: int) -> bytes:
        if self._fd < 0:
            raise SnapshotError("the image is closed")
        n = max(0, min(n, self.size - offset))
        out = os.pread(self._fd, n, offset)
        while len(out) < n:                        # pread may return short
            more = os.pread(self._fd, n - len(out), offset + len(out))
            if not more:
                raise SnapshotError("the database file is shorter than its image")
            out += more
        return out

    @property
    def closed(self) -> bool:
        return self._reader is None

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if self._reader is not None:
            self._reader.close()      # ends the read transaction: checkpoints resume
            self._reader = None


class BytesImage:
    def __init__(self, index: int, term: int, data: bytes):
        self.index, self.term, self.data = index, term, data
        self.size = len(data)
        self.closed = False

    def read(self, offset: int, n: int) -> bytes:
        return self.data[offset:offset + n]

    def close(self) -> None:
        self.closed = True
