"""A log write slower than the election timeout does not cost the leader its term.

The node writes a Ready's log off its loop and takes no new Ready until the write is done.
What needs nothing persisted -- a leader's heartbeats and appends, a follower's heartbeat
answers -- goes out meanwhile (RaftNode.take_messages; diss. 10.2.1 lets a leader replicate
in parallel with its own write). Without that, a leader whose fsync took longer than an
election timeout fell silent, its followers elected another (the 10-minute soak's term
changes), and check-quorum deposed it because its followers' answers waited for their own
writes too."""
from __future__ import annotations

import pytest

from ddb_node.raft.types import MsgType
from ddb_node.sim import kv
from ddb_node.sim.simulator import Simulator


SLOW_DISK_MS = (250.0, 400.0)       # every fsync; the election timeout is 100-200 ms


def _leader_then_slow_disk(seed):
    """A leader elected on a quick disk, then every log write slower than an election
    timeout (an election itself cannot finish on such a disk: a vote waits for two writes)."""
    sim = Simulator(3, seed=seed)
    assert sim.run_until(lambda s: s.leader() is not None and s.converged(), 200_000)
    sim.persist_ms = SLOW_DISK_MS
    return sim, sim.leader()


def _steady_writes(sim, lead, seconds, every_ms=20.0):
    """Writes at the leader every `every_ms` of virtual time: some write is always in flight."""
    acked = []
    end = sim.now + seconds * 1000
    k = 0
    while sim.now < end:
        sim.submit(lead, kv.put(f"k{k % 50}", k, f"w{k}"),
                   lambda st, res, e, k=k: acked.append((k, st)))
        k += 1
        sim.run_for(every_ms)
    return k, acked


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_slow_disk_on_every_node_keeps_one_leader_for_its_whole_term(seed):
    sim, lead = _leader_then_slow_disk(seed)
    term = sim.nodes[lead].raft.term
    sent, acked = _steady_writes(sim, lead, seconds=10)
    assert sim.leader() == lead and all(n.raft.term == term for n in sim.nodes.values())
    assert sim.run_until(lambda s: len(acked) == sent, 200_000)
    assert all(st == "ok" for _, st in acked)
    assert not sim.violations


def test_while_its_write_is_in_flight_a_leader_still_heartbeats_and_a_follower_still_answers():
    sim, lead = _leader_then_slow_disk(4)
    sent_during_write = []

    def watch(s, env):
        node = s.nodes[env.msg.frm] if env.msg.frm in s.nodes else None
        if node is not None and node.persist_event is not None:    # its write is in flight
            sent_during_write.append(env.msg.type)

    sim.message_hooks.append(watch)
    _steady_writes(sim, lead, seconds=2)
    assert MsgType.HEARTBEAT in sent_during_write
    assert MsgType.HEARTBEAT_RESP in sent_during_write
    # acknowledgements and votes promise persisted state: they never leave mid-write
    assert MsgType.APP_RESP not in sent_during_write
    assert MsgType.VOTE_RESP not in sent_during_write


def test_take_messages_mid_write_never_hands_out_a_vote_or_an_acknowledgement():
    """The core's side of the rule (diss. 10.2.1, 3.8): a candidate's vote requests and a
    follower's acknowledgements promise a persisted term, vote or log; while the Ready that
    holds them is outstanding, take_messages gives heartbeat answers only."""
    import random

    from ddb_node.raft import Config, ConfState, Message, RaftNode
    from ddb_node.raft.types import Entry
    from ddb_node.storage import MemoryStorage

    node = RaftNode(Config(id=1, pre_vote=False), MemoryStorage(conf_state=ConfState((1, 2, 3))),
                    random.Random(1))
    for _ in range(40):
        node.tick()
    rd = node.ready()                                   # the campaign: term and vote to save
    assert rd.must_sync and {m.type for m in rd.persisted_messages} == {MsgType.VOTE}
    assert not [m for m in rd.messages if m.type == MsgType.VOTE]
    node.step(Message(MsgType.APP, 1, 2, 5, 0, 0, [Entry(5, 1)], 0))   # a leader of term 5
    node.step(Message(MsgType.HEARTBEAT, 1, 2, 5, commit=0))
    for _ in range(40):
        node.tick()                                     # would campaign again
    early = node.take_messages()
    assert {m.type for m in early} == {MsgType.HEARTBEAT_RESP}
    node.advance(rd)
    later = node.ready()
    assert MsgType.APP_RESP in {m.type for m in later.persisted_messages}
    assert not {MsgType.VOTE, MsgType.PRE_VOTE} & {m.type for m in early}
