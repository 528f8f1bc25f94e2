"""Snapshot stream format: the database image first, then a fixed-size trailer.

    image (a SQLite database file, page_count * page_size bytes)
    | u64 index | u64 term | u64 image size | sha256(image) | b"DDBSNAP2"     (big-endian)

Image first, so that a received stream is already a database file at offset 0: installing it
is a rename, never a copy (SQLite ignores bytes past the page count its header records, and
the installer truncates them anyway). The trailer is last because the digest is only known
once the image has been read, which happens while it is being sent: nothing reads a big
database twice or holds it in memory.
"""
from __future__ import annotations

import hashlib
import os
import struct
from typing import Iterator

from .errors import SnapshotError

MAGIC = b"DDBSNAP2"
TRAILER = struct.Struct(">QQQ32s8s")
_PIECE = 1 << 20


def trailer(index: int, term: int, size: int, sha256: bytes) -> bytes:
    return TRAILER.pack(index, term, size, sha256, MAGIC)


class ImageStream:
    """A snapshot source over an image (`index`, `term`, `size`, `read(offset, n)`): the
    image's bytes, then the trailer. The digest is computed as the image is read in order;
    re-reads (retransmissions) are not hashed twice, and a read that skips ahead hashes the
    gap first, so the trailer is right whatever the read pattern."""

    def __init__(self, image):
        self.image = image
        self.size = image.size + TRAILER.size
        self._hash = hashlib.sha256()
        self._hashed = 0

    def _hash_to(self, end: int, data: bytes = b"", start: int = 0) -> None:
        """Hash image bytes up to `end`, using `data` (image bytes from `start`) if it covers."""
        while self._hashed < end:
            if start <= self._hashed < start + len(data):
                piece = data[self._hashed - start:end - start]
            else:
                piece = self.image.read(self._hashed, min(_PIECE, end - self._hashed))
                if not piece:
                    raise SnapshotError("image shorter than its size")
            self._hash.update(piece)
            self._hashed += len(piece)

    def read(self, offset: int, n: int) -> bytes:
        isize = self.image.size
        out = b""
        if offset < isize and n > 0:
            out = self.image.read(offset, min(n, isize - offset))
            self._hash_to(offset + len(out), out, offset)
        end = offset + n
        if end > isize:
            self._hash_to(isize)
            t = trailer(self.image.index, self.image.term, isize, self._hash.digest())
            out += t[max(0, offset - isize):end - isize]
        return out

    def close(self) -> None:
        self.image.close()


def read_stream(source: ImageStream, chunk_size: int = _PIECE) -> Iterator[bytes]:
    """The whole stream of a source, in order."""
    off = 0
    while off < source.size:
        b = source.read(off, chunk_size)
        off += len(b)
        yield b


def parse_trailer(tail: bytes, length: int) -> dict:
    """The trailer of a stream of `length` bytes whose last bytes are `tail`."""
    if length < TRAILER.size or len(tail) < TRAILER.size:
        raise SnapshotError("truncated snapshot: no trailer")
    index, term, size, digest, magic = TRAILER.unpack(tail[-TRAILER.size:])
    if magic != MAGIC:
        raise SnapshotError("not a ddb snapshot, or a truncated one (bad magic)")
    if size != length - TRAILER.size:
        raise SnapshotError(f"truncated or padded snapshot: {length - TRAILER.size} image "
                            f"bytes, its trailer says {size}")
    return {"index": index, "term": term, "size": size, "sha256": digest}


def verify_file(path: str, length: int | None = None) -> dict:
    """Check the stream held in the first `length` bytes of `path` (its whole length by
    default): trailer, then the image's digest, read in pieces. Returns the trailer."""
    with open(path, "rb") as f:
        if length is None:
            length = os.fstat(f.fileno()).st_size
        f.seek(max(0, length - TRAILER.size))
        meta = parse_trailer(f.read(TRAILER.size), length)
        f.seek(0)
        h = hashlib.sha256()
        left = meta["size"]
        while left:
            b = f.read(min(_PIECE, left))
            if not b:
                raise SnapshotError("truncated snapshot")
            h.update(b)
            left -= len(b)
    if h.digest() != meta["sha256"]:
        raise SnapshotError("corrupt snapshot: checksum mismatch")
    return meta


def _chunks_of(source) -> Iterator[bytes]:
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            while True:
                b = f.read(_PIECE)
                if not b:
                    return
                yield b
    elif hasattr(source, "read"):
        while True:
            b = source.read(_PIECE)
            if not b:
                return
            yield b
    elif isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
    else:
        for b in source:
            yield bytes(b)


def receive(source, dest_path: str) -> dict:
    """Write the stream from ``source`` (path, file object, bytes or iterable of chunks) to
    ``dest_path`` and verify it; return the trailer. Raises SnapshotError (and removes
    ``dest_path``) on anything short of a perfect stream."""
    try:
        with open(dest_path, "wb") as out:
            for chunk in _chunks_of(source):
                out.write(chunk)
            out.flush()
            os.fsync(out.fileno())
        return verify_file(dest_path)
    except BaseException:
        try:
            os.remove(dest_path)
        except FileNotFoundError:
            pass
        raise
