"""Snapshot stream format: a header carrying index, term, size and SHA-256, then the database
image (taken with SQLite's online backup API) in chunks.

    b"DDBSNAP1" | u32 big-endian header length | msgpack {index, term, size, sha256} | image
"""
from __future__ import annotations

import hashlib
import os
import struct
from typing import Iterable, Iterator

import msgpack

from .errors import SnapshotError

MAGIC = b"DDBSNAP1"
_HLEN = struct.Struct(">I")
MAX_HEADER = 1 << 16


def header(index: int, term: int, size: int, sha256: bytes) -> bytes:
    h = msgpack.packb({"index": index, "term": term, "size": size, "sha256": sha256}, use_bin_type=True)
    return MAGIC + _HLEN.pack(len(h)) + h


def file_digest(path: str) -> tuple[int, bytes]:
    h = hashlib.sha256()
    size = 0
    with open(path, "rb") as f:
        while True:
            b = f.read(1 << 20)
            if not b:
                break
            h.update(b)
            size += len(b)
    return size, h.digest()


def stream_file(path: str, index: int, term: int, chunk_size: int) -> Iterator[bytes]:
    size, digest = file_digest(path)
    yield header(index, term, size, digest)
    with open(path, "rb") as f:
        while True:
            b = f.read(chunk_size)
            if not b:
                break
            yield b


def _chunks_of(source) -> Iterator[bytes]:
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as f:
            while True:
                b = f.read(1 << 20)
                if not b:
                    return
                yield b
    elif hasattr(source, "read"):
        while True:
            b = source.read(1 << 20)
            if not b:
                return
            yield b
    elif isinstance(source, (bytes, bytearray, memoryview)):
        yield bytes(source)
    else:
        for b in source:
            yield bytes(b)


def receive(source, dest_path: str) -> dict:
    """Write the image from ``source`` (path, file object, bytes or iterable of chunks) to
    ``dest_path``, verifying size and checksum; return the header. Raises SnapshotError (and
    removes ``dest_path``) on anything short of a perfect stream."""
    buf = b""
    meta = None
    h = hashlib.sha256()
    written = 0
    try:
        with open(dest_path, "wb") as out:
            for chunk in _chunks_of(source):
                if meta is None:
                    buf += chunk
                    if len(buf) < len(MAGIC) + 4:
                        continue
                    if buf[:len(MAGIC)] != MAGIC:
                        raise SnapshotError("not a ddb snapshot (bad magic)")
                    (hlen,) = _HLEN.unpack_from(buf, len(MAGIC))
                    if hlen > MAX_HEADER:
                        raise SnapshotError("corrupt snapshot header (length)")
                    start = len(MAGIC) + 4
                    if len(buf) < start + hlen:
                        continue
                    try:
                        meta = msgpack.unpackb(buf[start:start + hlen], raw=False)
                        if not (isinstance(meta, dict) and {"index", "term", "size", "sha256"} <= meta.keys()):
                            raise ValueError("missing fields")
                    except Exception as e:
                        raise SnapshotError(f"corrupt snapshot header: {e}") from None
                    chunk = buf[start + hlen:]
                    buf = b""
                if chunk:
                    written += len(chunk)
                    if written > meta["size"]:
                        raise SnapshotError(f"snapshot longer than its header says ({meta['size']} bytes)")
                    h.update(chunk)
                    out.write(chunk)
            if meta is None:
                raise SnapshotError("truncated snapshot: header incomplete")
            if written != meta["size"]:
                raise SnapshotError(f"truncated snapshot: {written} of {meta['size']} bytes")
            if h.digest() != meta["sha256"]:
                raise SnapshotError("corrupt snapshot: checksum mismatch")
            out.flush()
            os.fsync(out.fileno())
    except BaseException:
        try:
            os.remove(dest_path)
        except FileNotFoundError:
            pass
        raise
    return meta
