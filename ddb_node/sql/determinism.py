"""The deterministic function environment of apply.

While an entry is applied, the *entry context* (its timestamp and seed) answers:
- SQLite's clock, through a VFS that inherits the default VFS and overrides
  ``xCurrentTimeInt64`` (``datetime('now')``, ``CURRENT_TIMESTAMP`` also in DEFAULTs,
  ``julianday``, ``unixepoch``, ``strftime``);
- SQLite's own PRNG (e.g. the rowid picked once the maximum rowid is taken): the VFS is the
  default one and its ``xRandomness`` returns bytes derived from the seed; ``apsw.randomness(0)``
  makes SQLite reseed from it at the start of each entry;
- ``random()`` and ``randomblob()``: user functions of the same names (they replace the
  built-ins, also inside column DEFAULTs) drawing from a PRNG seeded by the entry.
Outside an entry (the read path) all of them fall back to real time and real randomness.
``localtime`` is UTC: the process's TZ is set to UTC once, when the VFS is installed.
"""
from __future__ import annotations

import hashlib
import os
import random as _random
import threading
import time

import apsw

VFS_NAME = "ddb-det"
JULIAN_UNIX_EPOCH_MS = 210_866_760_000_000   # julian day 2440587.5 in milliseconds


class EntryContext:
    """The entry being applied. One per process, like the VFS that reads it: apply runs on one
    thread at a time (the node's event loop). It is active *for that thread only*: a reader
    serving a query on another thread meanwhile gets real time and real randomness, and can
    never draw from (and so change) the entry's deterministic streams."""

    def __init__(self):
        self._active = False
        self._thread = None
        self.timestamp_ms = 0
        self.seed = 0
        self.rng = None

    @property
    def active(self) -> bool:
        return self._active and self._thread == threading.get_ident()

    @active.setter
    def active(self, value: bool) -> None:
        self._active = bool(value)
        self._thread = threading.get_ident() if value else None

    def begin(self, timestamp_ms: int, seed: int):
        self.active = True
        self.timestamp_ms = timestamp_ms
        self.seed = seed
        self.rng = None
        apsw.randomness(0)         # SQLite reseeds from xRandomness on next use

    def end(self):
        self.active = False
        self.rng = None

    def prng(self) -> _random.Random:
        if self.rng is None:
            self.rng = _random.Random(self.seed)
        return self.rng


context = EntryContext()


def seed_bytes(seed: int, n: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < n:
        out += hashlib.sha256(b"ddb-sqlite-prng:%d:%d" % (seed, counter)).digest()
        counter += 1
    return out[:n]


class DeterministicVFS(apsw.VFS):
    def __init__(self):
        super().__init__(VFS_NAME, "", makedefault=True)

    def xCurrentTimeInt64(self) -> int:
        if context.active:
            return context.timestamp_ms + JULIAN_UNIX_EPOCH_MS
        return super().xCurrentTimeInt64()

    def xRandomness(self, numbytes: int) -> bytes:
        if context.active:
            return seed_bytes(context.seed, numbytes)
        return os.urandom(numbytes)


_vfs = None
_lock = threading.Lock()


def install() -> str:
    """Register the VFS (once per process) as the default VFS and force UTC; return its name."""
    global _vfs
    with _lock:
        if _vfs is None:
            if os.environ.get("TZ") != "UTC":
                os.environ["TZ"] = "UTC"
                time.tzset()
            _vfs = DeterministicVFS()
    return VFS_NAME


def _random_fn():
    if context.active:
        return context.prng().getrandbits(64) - 2 ** 63
    return int.from_bytes(os.urandom(8), "little", signed=True)


MAX_RANDOMBLOB = 1_000_000_000


def _randomblob_fn(n):
    try:
        n = int(n) if n is not None else 1
    except (TypeError, ValueError):
        n = 1
    n = max(n, 1)
    if n > MAX_RANDOMBLOB:
        raise apsw.TooBigError("string or blob too big")
    if context.active:
        return context.prng().randbytes(n)
    return os.urandom(n)


def register_functions(conn: apsw.Connection) -> None:
    """``random()``/``randomblob()`` from the entry's seed (non-deterministic flag, so that each
    call is evaluated)."""
    conn.create_scalar_function("random", _random_fn, 0)
    conn.create_scalar_function("randomblob", _randomblob_fn, 1)
