"""Client sessions (Raft dissertation §6.3): exactly-once writes across client retries.

A write may carry ``(client_id, seq)``. The table remembers, per client, the highest sequence
number applied, the log index of the client's last activity and that entry's result. A request
with the remembered ``seq`` returns the remembered result; an older one is reported as a
duplicate whose result is gone; a newer one is applied and remembered.

The table is bounded (``max_sessions``: the least recently active client is evicted) and
expires by log position (a session idle for ``ttl_entries`` log entries is dropped, checked
whenever the applied index crosses a multiple of ``expire_every``), never by a replica's clock,
so every replica keeps exactly the same sessions.
"""
from __future__ import annotations

import msgpack

from .results import EntryResult, Result

_packb = msgpack.Packer(use_bin_type=True).pack

SCHEMA = ("CREATE TABLE IF NOT EXISTS _ddb_sessions(client TEXT PRIMARY KEY, seq INTEGER NOT NULL, "
          "idx INTEGER NOT NULL, result BLOB) WITHOUT ROWID;"
          "CREATE INDEX IF NOT EXISTS _ddb_sessions_idx ON _ddb_sessions(idx, client);")


def encode_result(er: EntryResult) -> bytes:
    """What the session table stores: everything but the wall-clock ``time`` (which differs
    between replicas and must not reach the replicated database)."""
    results = []
    for r in er.results:
        d = r.to_dict()
        d["time"] = 0.0
        results.append(d)
    return _packb([er.error, results])


def decode_result(index: int, blob: bytes) -> EntryResult:
    error, results = msgpack.unpackb(blob, raw=False)
    return EntryResult(index, [Result.from_dict(d) for d in results], error, session_duplicate=True)


class Sessions:
    def __init__(self, run, *, max_sessions: int = 10_000, ttl_entries: int = 1_000_000,
                 expire_every: int = 1_000):
        self._run = run          # run(sql, params) -> list of rows, as an internal statement
        self.max_sessions = max_sessions
        self.ttl_entries = ttl_entries
        self.expire_every = expire_every
        self._known: str | None = None   # the client `check` just found in the table

    def check(self, index: int, client: str, seq: int) -> EntryResult | None:
        """A duplicate's EntryResult, or None when the request must be applied."""
        rows = self._run("SELECT seq, result FROM _ddb_sessions WHERE client = ?", (client,))
        if not rows:
            self._known = None
            return None
        self._known = client
        last_seq, blob = rows[0]
        if seq > last_seq:
            return None
        if seq == last_seq and blob is not None:
            return decode_result(index, blob)
        return EntryResult(index, [], error=(f"duplicate request: client {client!r} sequence number {seq} "
                                             f"was already applied (latest is {last_seq}); its result is "
                                             "no longer retained"), session_duplicate=True)

    def record(self, index: int, client: str, seq: int, er: EntryResult) -> None:
        """Remember the outcome of the entry `check` was just asked about (the common case, a
        client already in the table, is one UPDATE: no second lookup, no delete + insert)."""
        known, self._known = self._known == client, None
        if known:
            self._run("UPDATE _ddb_sessions SET seq = ?, idx = ?, result = ? WHERE client = ?",
                      (seq, index, encode_result(er), client))
            return
        known = self._run("SELECT 1 FROM _ddb_sessions WHERE client = ?", (client,))
        if not known:
            n = self._run("SELECT count(*) FROM _ddb_sessions", ())[0][0]
            if n >= self.max_sessions:
                self._run("DELETE FROM _ddb_sessions WHERE client IN (SELECT client FROM _ddb_sessions "
                          "ORDER BY idx, client LIMIT ?)", (n - self.max_sessions + 1,))
        self._run("INSERT OR REPLACE INTO _ddb_sessions(client, seq, idx, result) VALUES (?, ?, ?, ?)",
                  (client, seq, index, encode_result(er)))

    def maybe_expire(self, index: int) -> None:
        if index % self.expire_every == 0:
            self._run("DELETE FROM _ddb_sessions WHERE idx <= ?", (index - self.ttl_entries,))

    def count(self) -> int:
        return self._run("SELECT count(*) FROM _ddb_sessions", ())[0][0]
