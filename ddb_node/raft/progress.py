"""What the leader knows about each follower (etcd-io/raft's tracker, simplified).

A follower is probed (one append in flight until it answers), replicated to
(pipelined appends bounded by an in-flight window), or sent a snapshot in chunks
(a `SnapshotSender`, which owns everything about that one transfer).
"""
from __future__ import annotations

from collections import deque
from enum import IntEnum

from .types import SnapshotChunk

SNAPSHOT_WINDOW = 4              # chunks of a snapshot in flight per follower
SNAPSHOT_RETRY_HEARTBEATS = 3    # resend unacknowledged chunks after this many heartbeats


class ProgressState(IntEnum):
    PROBE = 0
    REPLICATE = 1
    SNAPSHOT = 2


class Inflights:
    """Last indexes of the appends in flight, oldest first, at most `size` of them."""
    __slots__ = ("size", "q")

    def __init__(self, size: int):
        self.size = size
        self.q: deque[int] = deque()

    def add(self, index: int) -> None:
        self.q.append(index)

    def free_le(self, index: int) -> None:
        """The follower acknowledged everything up to `index`."""
        q = self.q
        while q and q[0] <= index:
            q.popleft()

    def free_first_one(self) -> None:
        """Free the oldest slot: a heartbeat answer shows the follower is alive, so a full
        window is probably one whose appends were lost; this lets one be retried."""
        if self.q:
            self.q.popleft()

    def full(self) -> bool:
        return len(self.q) >= self.size

    def reset(self) -> None:
        self.q.clear()

    def __len__(self) -> int:
        return len(self.q)


class SnapshotSender:
    """One snapshot transfer to one follower: which bytes of the source went out, which
    came back acknowledged, and when to resend. Chunks may be lost, duplicated or
    reordered; the follower keeps a contiguous prefix and reports its length (`have`) and,
    when it dropped a chunk beyond that prefix, the chunk's offset (`gap`)."""
    __slots__ = ("source", "sent", "acked", "idle", "started", "rewound", "recover", "low")

    def __init__(self, source):
        self.source = source      # SnapshotSource being streamed
        self.sent = 0             # bytes sent
        self.acked = 0            # bytes acknowledged
        self.idle = 0             # heartbeats without a chunk acknowledgement
        self.started = False      # a first chunk went out (an empty image is one chunk)
        self.rewound = -1         # offset we last resent from (one resend per gap)
        self.recover = 0          # highest offset sent before the last resend: a gap reported
                                  # for a chunk below it is the resend's own doing
        self.low = -1             # lowest prefix reported below `acked` since the last
                                  # progress (-1: none): where a retry resends from

    def next_chunk(self, chunk_size: int) -> SnapshotChunk | None:
        """The next chunk to send, or None when all is sent or the window is full."""
        src = self.source
        total = src.size
        if self.started and self.sent >= total:
            return None
        if self.sent - self.acked >= SNAPSHOT_WINDOW * chunk_size:
            return None
        off = self.sent
        piece = src.read(off, min(chunk_size, total - off)) if off < total else b""
        self.sent = off + len(piece)
        self.started = True
        return SnapshotChunk(src.meta, off, piece, off + len(piece) >= total, total)

    def on_response(self, have: int, gap: int) -> bool:
        """The follower holds `have` bytes (and dropped a chunk at `gap`, 0 if none).
        Returns whether to send more."""
        if have < self.acked:
            # an acknowledgement overtaken by a later one, or a follower that restarted
            # holding less than it had acknowledged (its staged bytes were not all on
            # disk): the two look alike, so only remember it; if the transfer then
            # stalls, the retry resends from here
            if self.low < 0 or have < self.low:
                self.low = have
            return False
        progress = have > self.acked
        if progress:
            self.acked = have
            self.sent = max(self.sent, have)
            self.idle = 0
            self.low = -1
        if (gap > have and gap >= self.recover and self.sent > have
                and self.rewound != have):
            # a chunk arrived past the follower's prefix, which drops it: the chunk at
            # `have` was lost or overtaken. Resend the window from there -- once per
            # offset, and only for a chunk first sent after the previous resend: the gaps
            # and duplicates a resend itself causes must not cause more resends (a
            # duplicate's acknowledgement, gap 0, never does)
            self.rewind(have)
            return True
        return progress

    def on_heartbeat(self) -> bool:
        """A heartbeat interval passed; True once the transfer has stalled."""
        self.idle += 1
        return self.idle >= SNAPSHOT_RETRY_HEARTBEATS

    def retry(self) -> None:
        """Resend the window after the acknowledged prefix (or from less, if the
        follower said it holds less)."""
        self.idle = 0
        low = self.acked
        if 0 <= self.low < low:
            low = self.low
        self.rewind(low)

    def rewind(self, offset: int) -> None:
        """Resend from `offset`; what was sent beyond it is in doubt."""
        self.recover = max(self.recover, self.sent)
        self.acked = min(self.acked, offset)
        self.sent = offset
        self.started = offset > 0
        self.rewound = offset
        self.low = -1


class Progress:
    __slots__ = ("match", "next", "state", "probe_sent", "pending_snapshot", "recent_active",
                 "inflights", "is_learner", "snapshot")

    def __init__(self, next_index: int, max_inflight: int, is_learner: bool = False):
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.recent_active = False
        self.inflights = Inflights(max_inflight)
        self.is_learner = is_learner
        self.snapshot: SnapshotSender | None = None   # in state SNAPSHOT only

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self._reset(ProgressState.PROBE)

    def become_replicate(self) -> None:
        self.next = self.match + 1
        self._reset(ProgressState.REPLICATE)

    def become_snapshot(self, source) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = source.meta.index
        self.snapshot = SnapshotSender(source)

    def abort_snapshot(self) -> None:
        """Give up a transfer (etcd's snapshot failure): probe from the match again."""
        self.pending_snapshot = 0
        self.become_probe()

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snapshot = None
        self.inflights.reset()

    def maybe_update(self, n: int) -> bool:
        """An append up to n was acknowledged."""
        updated = False
        if self.match < n:
            self.match = n
            updated = True
            self.probe_sent = False
        if self.next < n + 1:
            self.next = n + 1
        return updated

    def acknowledged(self, index: int) -> bool:
        """An append up to `index` was accepted: a probe that found the match point starts
        replicating, a follower that installed the snapshot resumes after it, a pipeline
        frees its window. Returns whether the match index moved."""
        if not self.maybe_update(index):
            return False
        if self.state == ProgressState.PROBE:
            self.become_replicate()
        elif self.state == ProgressState.SNAPSHOT and self.match >= self.pending_snapshot:
            self.become_probe()
            self.become_replicate()
        elif self.state == ProgressState.REPLICATE:
            self.inflights.free_le(index)
        return True

    def sent_entries(self, last: int) -> None:
        """An append carrying entries up to `last` went out."""
        if self.state == ProgressState.REPLICATE:
            self.next = last + 1
            self.inflights.add(last)
        else:
            self.probe_sent = True

    def heartbeat_answered(self) -> None:
        """The follower answered a heartbeat: it is reachable, so a probe may go out again
        and a full window gives up one slot (its appends were probably lost)."""
        self.probe_sent = False
        if self.state == ProgressState.REPLICATE and self.inflights.full():
            self.inflights.free_first_one()

    def maybe_decr_to(self, rejected: int, match_hint: int) -> bool:
        """An append at `rejected` was refused; back off using the follower's hint."""
        if self.state == ProgressState.REPLICATE:
            if rejected <= self.match:
                return False  # stale
            self.next = self.match + 1
            return True
        if self.next - 1 != rejected:
            return False  # stale
        self.next = max(min(rejected, match_hint + 1), self.match + 1, 1)
        self.probe_sent = False
        return True

    def is_paused(self) -> bool:
        if self.state == ProgressState.PROBE:
            return self.probe_sent
        if self.state == ProgressState.REPLICATE:
            return self.inflights.full()
        return True

    def to_dict(self) -> dict:
        return {"match": self.match, "next": self.next, "state": self.state.name.lower(),
                "learner": self.is_learner, "inflight": len(self.inflights),
                "recent_active": self.recent_active}
