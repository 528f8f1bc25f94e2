"""The leader's ReadIndex rounds (paper §8, diss. 6.4): which reads wait, for what.

A read may be answered at the commit index the leader had when the read arrived, once
a quorum has since confirmed this node is still the leader. Confirmation is by rounds:
every heartbeat carries the current round and followers echo it; a read queued for
round r is released once a quorum has echoed a round >= r. One round is in flight at a
time: reads arriving meanwhile share the next round, started when this one is confirmed
(never an earlier round: it began before they arrived). A new leader first waits until
it has committed an entry of its own term (step 1 of diss. 6.4).

Pure bookkeeping: the node decides when a read may be queued and sends the answers.
"""
from __future__ import annotations

from collections import deque

from .quorum import majority_index


class ReadOnly:
    __slots__ = ("round", "bcast_pending", "waiting_commit", "queue", "acks")

    def __init__(self) -> None:
        self.round = 0                # the latest round started (carried by heartbeats)
        self.bcast_pending = False    # start a new round at the next Ready
        self.waiting_commit: list[tuple[bytes, int]] = []            # (ctx, requester)
        self.queue: deque[tuple[int, int, bytes, int]] = deque()     # (round, index, ctx, requester)
        self.acks: dict[int, int] = {}    # peer -> highest round it echoed

    def reset(self) -> None:
        """A new term or role: pending reads are dropped (their requesters retry) and a
        new leadership counts rounds from 0."""
        self.round = 0
        self.bcast_pending = False
        self.waiting_commit = []
        self.queue.clear()
        self.acks = {}

    # ------------------------------------------------------------ requests
    def wait_for_commit(self, ctx: bytes, requester: int) -> None:
        """Hold a read until this leader has committed an entry of its term."""
        self.waiting_commit.append((ctx, requester))

    def take_waiting(self) -> list[tuple[bytes, int]]:
        """The reads held for the first commit of the term, now to be queued."""
        waiting, self.waiting_commit = self.waiting_commit, []
        return waiting

    def add_request(self, index: int, ctx: bytes, requester: int, me: int, voters) -> None:
        """Queue a read at commit index `index` for the next round; start that round now
        unless one is still unconfirmed (a lost round is confirmed by the next periodic
        heartbeat, which carries the current round)."""
        self.queue.append((self.round + 1, index, ctx, requester))
        if self.confirmed(me, voters) >= self.round:
            self.bcast_pending = True

    # ------------------------------------------------------------ rounds
    def start_round(self) -> bool:
        """At a Ready: begin the pending round, if any (its heartbeats go out now)."""
        if not self.bcast_pending:
            return False
        self.bcast_pending = False
        self.round += 1
        return True

    def recv_ack(self, peer: int, rnd: int) -> bool:
        """`peer` echoed round `rnd`; True if that is news."""
        if rnd > self.acks.get(peer, 0):
            self.acks[peer] = rnd
            return True
        return False

    def forget(self, peer: int) -> None:
        """`peer` left the configuration; if it comes back it starts from round 0."""
        self.acks.pop(peer, None)

    def confirmed(self, me: int, voters) -> int:
        """The highest round a quorum of voters has answered (the leader answers its own)."""
        acks, rnd = self.acks, self.round
        return majority_index((rnd if v == me else acks.get(v, 0)) for v in voters)

    def release(self, me: int, voters) -> list[tuple[int, bytes, int]]:
        """The reads a quorum has now confirmed, as (index, ctx, requester), oldest first;
        if more wait, their round is started."""
        q = self.queue
        if not q:
            return []
        confirmed = self.confirmed(me, voters)
        out = []
        while q and q[0][0] <= confirmed:
            _, index, ctx, req = q.popleft()
            out.append((index, ctx, req))
        if q and confirmed >= self.round:
            self.bcast_pending = True     # the reads that waited for the next round
        return out
