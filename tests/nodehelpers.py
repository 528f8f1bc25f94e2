"""Shared helpers for the tests on real node processes (tests/test_node_*.py).

No sleeps in place of synchronisation: everything polls a condition with a deadline.
"""
from __future__ import annotations

import hashlib
import os
import re
import threading
import time

import msgpack

from ddb_node.errors import DdbError, StatementError
from ddb_node.net.codec import KIND_REQUEST, KIND_RESPONSE, decode_client, encode_client


def wait_until(pred, timeout: float = 20.0, what: str = "condition", interval: float = 0.05):
    """Poll `pred()` until it returns something truthy; return that value.

    Exceptions from `pred` count as "not yet" (the last one is reported on timeout)."""
    deadline = time.monotonic() + timeout
    last_exc = None
    while True:
        try:
            v = pred()
            if v:
                return v
        except Exception as e:  # noqa: BLE001 - polled conditions may fail while the cluster moves
            last_exc = e
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}"
                                 + (f" (last error: {last_exc!r})" if last_exc else ""))
        time.sleep(interval)



def wait_compacted(c, nid: int, above: int = 10, timeout: float = 30.0) -> dict:
    """Wait until node `nid` has compacted its log past index `above`; return its status.
    Compaction follows the user database's own checkpoints, which run off the node's loop
    (sql/checkpointer.py): it comes soon after the snapshot interval, not inside a write."""
    return wait_until(lambda: (lambda st: st if st["log_first_index"] > above else None)(
        node_status(c, nid)), timeout, what=f"node {nid} to compact its log past {above}")

def pids_matching(pattern: str) -> list[int]:
    """The processes (other than this one) whose command line matches the regex, as
    `pgrep -f` finds them, read from /proc (no procps needed)."""
    rx, found = re.compile(pattern), []
    for d in os.listdir("/proc"):
        if not d.isdigit() or int(d) == os.getpid():
            continue
        try:
            with open(f"/proc/{d}/cmdline", "rb") as f:
                cmd = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:
            continue
        if rx.search(cmd):
            found.append(int(d))
    return found


def live_ids(lc) -> list[int]:
    return [i for i, n in lc.nodes.items() if n.state == "running"]


def node_status(c, nid: int) -> dict:
    st = c.status(nid, timeout=2.0)
    if "error" in st:
        raise DdbError(f"node {nid}: {st['error']}")
    return st


def wait_converged(lc, c, ids=None, timeout: float = 30.0) -> int:
    """Wait until every node in `ids` reports the same applied index, equal to the commit
    index of the current leader (so nothing committed is still in flight). Returns it."""
    ids = list(ids or live_ids(lc))

    def pred():
        sts = {i: node_status(c, i) for i in ids}
        applied = {s["applied"] for s in sts.values()}
        commits = {s.get("commit") for s in sts.values()}
        if len(applied) == 1 and len(commits) == 1 and applied == commits:
            return applied.pop() or -1
        return None

    return wait_until(pred, timeout, what=f"nodes {ids} to converge")


def dump_on(c, nid: int, table: str = "t", order: str = "id") -> list[tuple]:
    r = c.query_on(nid, f"SELECT * FROM {table} ORDER BY {order}", level="none")
    return [tuple(row) for row in r[0].rows]


def content_hash(rows) -> str:
    return hashlib.sha256(msgpack.packb([list(r) for r in rows], use_bin_type=True)).hexdigest()


def assert_replicas_identical(lc, c, ids=None, table: str = "t", order: str = "id",
                              timeout: float = 30.0) -> dict:
    """All nodes at one applied index, then the same full ordered dump on each."""
    ids = list(ids or live_ids(lc))
    index = wait_converged(lc, c, ids, timeout)
    dumps = {i: dump_on(c, i, table, order) for i in ids}
    hashes = {i: content_hash(d) for i, d in dumps.items()}
    # nothing moved while we read (no concurrent writers in the callers)
    after = {i: node_status(c, i)["applied"] for i in ids}
    assert set(after.values()) == {index}, f"applied moved during the dump: {after} vs {index}"
    assert len(set(hashes.values())) == 1, f"replicas diverged at index {index}: {hashes}"
    return dumps[ids[0]]


def raw_call(addr: str, body: dict, cluster_id: str = "", timeout: float = 5.0) -> dict:
    """One request on a fresh connection (no client logic: no retries, no discovery)."""
    from tests.client_wire import ClientConn
    conn = ClientConn(addr)
    try:
        conn.send(encode_client(cluster_id, KIND_REQUEST, dict(body, id=1)))
        if not conn.poll(timeout):
            raise AssertionError(f"no answer from {addr} within {timeout}s")
        _, reply = decode_client(conn.frames.popleft(), None, KIND_RESPONSE)
        return reply
    finally:
        conn.close()


def follower_of(lc, leader: int) -> int:
    return next(i for i in live_ids(lc) if i != leader)


class Writers:
    """Threads writing unique keys; each records what was acknowledged and what failed.

    Each write inserts its key into `acked` (PRIMARY KEY: a second application of a retried
    write would be a constraint error) and into `log` (no constraint: a second application
    would be a second row)."""

    def __init__(self, lc, n: int, prefix: str, shared_client=None):
        self.lc = lc
        self.n = n
        self.prefix = prefix
        self.stop = threading.Event()
        self.acked: list[set] = [set() for _ in range(n)]
        self.unknown: list[set] = [set() for _ in range(n)]
        self.errors: list[list] = [[] for _ in range(n)]
        self.shared = shared_client
        self.threads = [threading.Thread(target=self._run, args=(w,), daemon=True) for w in range(n)]

    def _run(self, w: int) -> None:
        c = self.shared or self.lc.client(timeout=15.0)
        try:
            i = 0
            while not self.stop.is_set():
                k = f"{self.prefix}-{w}-{i}"
                try:
                    c.request([("INSERT INTO acked(k, w, i) VALUES(?, ?, ?)", [k, w, i]),
                               ("INSERT INTO log(k) VALUES(?)", [k])], transaction=True)
                    self.acked[w].add(k)
                except StatementError as e:        # would mean a retry was applied twice
                    self.errors[w].append((k, repr(e)))
                except DdbError as e:              # timeout / unavailable: outcome unknown
                    self.unknown[w].add(k)
                    if "constraint" in str(e).lower():
                        self.errors[w].append((k, repr(e)))
                i += 1
        finally:
            if self.shared is None:
                c.close()

    def start(self) -> "Writers":
        for t in self.threads:
            t.start()
        return self

    def total_acked(self) -> int:
        return sum(len(a) for a in self.acked)

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(60)
        assert not any(t.is_alive() for t in self.threads), "a writer thread hung"

    def all_acked(self) -> set:
        return set().union(*self.acked)

    def all_unknown(self) -> set:
        return set().union(*self.unknown)


def check_no_loss_no_dup(c, writers: Writers) -> None:
    errors = [e for es in writers.errors for e in es]
    assert not errors, f"writes applied twice (constraint errors on retry): {errors[:5]}"
    r = c.query("SELECT k FROM acked WHERE k LIKE ?", [writers.prefix + "-%"], level="linearizable")
    present = set(r[0].values[0]) if r[0].values else set()
    lost = writers.all_acked() - present
    assert not lost, f"{len(lost)} acknowledged writes lost, e.g. {sorted(lost)[:5]}"
    extra = present - writers.all_acked() - writers.all_unknown()
    assert not extra, f"rows nobody wrote: {sorted(extra)[:5]}"
    dup = c.query("SELECT k, count(*) FROM log WHERE k LIKE ? GROUP BY k HAVING count(*) > 1",
                  [writers.prefix + "-%"], level="linearizable")
    assert dup[0].rows == [], f"writes applied more than once: {dup[0].rows[:5]}"


def restore_health(lc, timeout: float = 30.0) -> None:
    """After a test: heal every fault, wait for a leader, and fail if a node process died."""
    lc.heal()
    lc.wait_for_leader(timeout)
    assert lc.crashed() == [], f"node processes died: {lc.crashed()}"
