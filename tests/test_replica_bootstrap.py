"""Replica.bootstrap (--bootstrap-expect) and the forced configuration of a peers.json
recovery, on one Replica with memory storage: the Raft safety rules they must keep."""
from __future__ import annotations

import random

import pytest

from ddb_node.raft import Config, ConfState, Message, MsgType
from ddb_node.replica import Replica
from ddb_node.replica.recovery import force_configuration
from ddb_node.sql import StateMachine
from ddb_node.storage import MemoryStorage


def _replica(storage=None) -> Replica:
    storage = storage or MemoryStorage(conf_state=ConfState())
    return Replica(1, storage, StateMachine(":memory:"), config=Config(id=1),
                   rng=random.Random(1), clock=lambda: 0.0, wall_ms=lambda: 0)


def _drain(r: Replica) -> list:
    sent = []
    r.process_ready(sent.append)
    return sent


def test_bootstrap_writes_one_committed_configuration_entry_and_keeps_a_cast_vote():
    r = _replica()
    # before bootstrapping, node 1 answers a founder that bootstrapped first: it votes
    r.step(Message(MsgType.VOTE, 1, 3, term=2, log_term=1, index=1))
    sent = _drain(r)
    assert any(m.type == MsgType.VOTE_RESP and not m.reject for m in sent)
    r.bootstrap([3, 2, 1])
    hs, _ = r.storage.initial_state()
    assert (hs.term, hs.vote, hs.commit) == (2, 3, 1)      # the term never goes back
    e = r.storage.entries(1, 2)[0]
    assert (e.index, e.term) == (1, 1)
    _drain(r)
    assert r.raft.conf_state == ConfState((1, 2, 3), ())
    with pytest.raises(ValueError):
        r.bootstrap([1, 2, 3])                               # once only


def test_bootstrap_refuses_a_configuration_without_this_node():
    with pytest.raises(ValueError):
        _replica().bootstrap([2, 3])


def test_forced_configuration_is_a_committed_entry_in_a_new_term():
    storage = MemoryStorage(conf_state=ConfState((1, 2, 3)))
    r = _replica(storage)
    for _ in range(40):                                      # it elects... nobody: no quorum
        r.tick()
        _drain(r)
    term = r.raft.term
    last = storage.last_index()
    index = force_configuration(storage, 1, [1])
    assert index == last + 1
    hs, _ = storage.initial_state()
    assert hs.commit == index and hs.term == term + 1
    again = _replica(storage)
    _drain(again)
    assert again.raft.conf_state == ConfState((1,), ())
    with pytest.raises(ValueError):
        force_configuration(storage, 1, [2])                 # the survivor must be a voter
