"""What the leader knows about each follower (etcd-io/raft's tracker, simplified).

A follower is probed (one append in flight until it answers), replicated to
(pipelined appends bounded by an in-flight window), or sent a snapshot in chunks.
"""
from __future__ import annotations

from collections import deque
from enum import IntEnum


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
        q = self.q
        while q and q[0] <= index:
            q.popleft()

    def full(self) -> bool:
        return len(self.q) >= self.size

    def reset(self) -> None:
        self.q.clear()

    def __len__(self) -> int:
        return len(self.q)


class Progress:
    __slots__ = ("match", "next", "state", "probe_sent", "pending_snapshot", "recent_active",
                 "inflights", "is_learner", "read_round",
                 "snap", "snap_sent", "snap_acked", "snap_idle", "snap_started", "snap_rewound",
                 "snap_recover", "snap_low")

    def __init__(self, next_index: int, max_inflight: int, is_learner: bool = False):
        self.match = 0
        self.next = next_index
        self.state = ProgressState.PROBE
        self.probe_sent = False
        self.pending_snapshot = 0
        self.recent_active = False
        self.inflights = Inflights(max_inflight)
        self.is_learner = is_learner
        self.read_round = 0       # highest ReadIndex round this follower acknowledged
        self.snap = None          # SnapshotSource being streamed
        self.snap_sent = 0        # bytes sent
        self.snap_acked = 0       # bytes acknowledged
        self.snap_idle = 0        # heartbeats without a chunk acknowledgement
        self.snap_started = False
        self.snap_rewound = -1    # offset we last resent from (one resend per gap)
        self.snap_recover = 0     # highest offset sent before the last resend: a gap reported
                                  # for a chunk below it is the resend's own doing
        self.snap_low = -1        # lowest prefix reported below snap_acked since the last
                                  # progress (-1: none): where a retry resends from

    def become_probe(self) -> None:
        if self.state == ProgressState.SNAPSHOT:
            self.next = max(self.match + 1, self.pending_snapshot + 1)
        else:
            self.next = self.match + 1
        self._reset(ProgressState.PROBE)

    def become_replicate(self) -> None:
        self.next = self.match + 1
        self._reset(ProgressState.REPLICATE)

    def become_snapshot(self, snap) -> None:
        self._reset(ProgressState.SNAPSHOT)
        self.pending_snapshot = snap.meta.index
        self.snap = snap
        self.snap_sent = self.snap_acked = self.snap_idle = 0
        self.snap_started = False
        self.snap_rewound = -1
        self.snap_recover = 0
        self.snap_low = -1

    def abort_snapshot(self) -> None:
        """Give up a transfer (etcd's snapshot failure): probe from the match again."""
        self.pending_snapshot = 0
        self.become_probe()

    def _reset(self, state: ProgressState) -> None:
        self.state = state
        self.probe_sent = False
        self.pending_snapshot = 0
        self.snap = None
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
