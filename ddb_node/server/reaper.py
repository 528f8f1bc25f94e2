"""rqlite's reaping of failed nodes (``-raft-reap-node-timeout``,
``-raft-reap-read-only-node-timeout``): the leader removes a voter, or a non-voter, that it
has not heard from for longer than the timeout. Off (0) by default, as in rqlite: a node that
is only partitioned away would be reaped too.

The policy is pure (times in, ids out); the node runs it about once a second while it leads
and removes what it returns through the ordinary ``remove`` operation. A member's silence is
counted from the last message received from it, and never from before this node became
leader: a new leader gives every member a whole timeout.
"""
from __future__ import annotations


class Reaper:
    def __init__(self, voter_timeout: float = 0.0, learner_timeout: float = 0.0):
        if voter_timeout < 0 or learner_timeout < 0:
            raise ValueError("reap timeouts must not be negative")
        self.voter_timeout = voter_timeout
        self.learner_timeout = learner_timeout
        self._since: dict[int, float] = {}     # member -> when this leadership first saw it

    @property
    def enabled(self) -> bool:
        return self.voter_timeout > 0 or self.learner_timeout > 0

    def not_leader(self) -> None:
        """Leadership lost: the next leadership starts every member's clock afresh."""
        self._since.clear()

    def due(self, now: float, self_id: int, voters, learners, last_seen: dict) -> list[int]:
        """Members silent for longer than their kind's timeout, while this node leads."""
        out = []
        members = [(v, self.voter_timeout) for v in voters] + \
                  [(n, self.learner_timeout) for n in learners]
        current = {nid for nid, _ in members}
        for nid in list(self._since):
            if nid not in current:
                del self._since[nid]
        for nid, timeout in members:
            if nid == self_id:
                continue
            since = self._since.setdefault(nid, now)
            if timeout <= 0:
                continue
            heard = max(last_seen.get(nid, since), since)
            if now - heard > timeout:
                out.append(nid)
        return sorted(out)
