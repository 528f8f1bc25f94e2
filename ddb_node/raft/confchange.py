"""The next configuration, from the current one and one ConfChange (§6, diss. 4.1).

Pure functions, so the leader proposing a change and every node applying it compute the
same membership. Changes are one server at a time: a learner is added, promoted to
voter, or a member removed; there is no joint configuration.
"""
from __future__ import annotations

from .types import ConfChange, ConfChangeType, ConfState

_TYPES = frozenset(ConfChangeType)


def check(conf: ConfState, cc: ConfChange) -> None:
    """Refuse a change that makes no sense in `conf` (ValueError), before it is proposed."""
    t, nid = cc.type, cc.node_id
    voters, learners = conf.voters, conf.learners
    if t not in _TYPES:
        raise ValueError(f"unknown configuration change type {t!r}")
    if t == ConfChangeType.ADD_LEARNER and (nid in voters or nid in learners):
        raise ValueError(f"node {nid} is already a member")
    if t == ConfChangeType.PROMOTE and nid not in learners:
        raise ValueError(f"node {nid} is not a learner")
    if t == ConfChangeType.REMOVE:
        if nid not in voters and nid not in learners:
            raise ValueError(f"node {nid} is not a member")
        if tuple(voters) == (nid,):
            raise ValueError("cannot remove the last voter")


def next_conf(conf: ConfState, cc: ConfChange) -> ConfState:
    """The configuration after `cc`. Adding a voter as a learner changes nothing (a
    voter is never demoted); an unknown change type leaves the configuration as it is."""
    voters, learners = set(conf.voters), set(conf.learners)
    t, nid = cc.type, cc.node_id
    if t == ConfChangeType.ADD_LEARNER:
        if nid not in voters:
            learners.add(nid)
    elif t == ConfChangeType.PROMOTE:
        learners.discard(nid)
        voters.add(nid)
    elif t == ConfChangeType.REMOVE:
        voters.discard(nid)
        learners.discard(nid)
    return ConfState(tuple(sorted(voters)), tuple(sorted(learners)))


def applied_conf(conf: ConfState, cc: ConfChange) -> ConfState:
    """The configuration a committed entry installs: the whole configuration the leader
    recorded in it (see ConfChange), or, for an entry without one, `next_conf`."""
    if cc.voters is not None:
        return ConfState(tuple(sorted(cc.voters)), tuple(sorted(cc.learners or ())))
    return next_conf(conf, cc)
