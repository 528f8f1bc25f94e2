"""Counting a majority of voters: the one place the core decides what "a quorum" means.

Everything that needs a quorum asks here: the commit index (paper §5.3, §5.4.2), an
election or pre-vote (§5.2, diss. 9.6), check-quorum (diss. 6.2) and the confirmation
of a ReadIndex round (§8, diss. 6.4). Membership changes one server at a time (§6, diss. 4),
so a configuration is a single majority; there is no joint consensus to combine.
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import IntEnum


class VoteResult(IntEnum):
    PENDING = 0
    LOST = 1
    WON = 2


def majority(n: int) -> int:
    """How many of `n` voters make a quorum."""
    return n // 2 + 1


def majority_index(acked: Iterable[int]) -> int:
    """The largest value a quorum has reached, given one acknowledged value per voter.

    With match indexes this is the index a quorum stores (the commit candidate); with
    ReadIndex rounds, the highest round a quorum confirmed. No voters: 0.
    """
    values = sorted(acked)
    if not values:
        return 0
    return values[len(values) - majority(len(values))]


def vote_result(voters: Iterable[int], votes: Mapping[int, bool]) -> VoteResult:
    """WON once a quorum of `voters` granted, LOST once a quorum rejected, else PENDING.

    Votes from non-voters (learners, removed servers) do not count. A split vote in an
    even-sized configuration stays PENDING until the election times out (etcd-io/raft
    would call it lost as soon as winning is impossible; ddb keeps its own rule).
    """
    voters = set(voters)
    q = majority(len(voters))
    granted = sum(1 for v, g in votes.items() if g and v in voters)
    if granted >= q:
        return VoteResult.WON
    rejected = sum(1 for v, g in votes.items() if not g and v in voters)
    if rejected >= q:
        return VoteResult.LOST
    return VoteResult.PENDING
