"""ReadIndex: Raft dissertation 6.4 (linearizable reads without log writes)."""
from __future__ import annotations

import pytest

from ddb_node.raft import MsgType, NotLeader, ReadState, Role
from tests.raft_harness import Net, msg_is


def leader_with_writes(n: int = 3, **cfg) -> Net:
    net = Net(n, **cfg)
    net.elect(1)
    net.propose(1, b"w")
    net.stabilize()
    return net


def test_6_4_leader_confirms_read_with_a_quorum_heartbeat_round():
    """Dissertation 6.4 steps 1-4: the leader records its commit index, confirms it
    is still leader with one heartbeat round acknowledged by a majority, and only
    then answers; no log entry is written."""
    net = leader_with_writes()
    lead = net.nodes[1]
    last = lead.last_index
    lead.read_index(b"r1")
    net.process(1)
    assert net.read_states[1] == []
    hbs = net.take(msg_is(MsgType.HEARTBEAT, frm=1))
    assert sorted(m.to for m in hbs) == [2, 3]
    assert len({m.index for m in hbs}) == 1           # one round id
    net.inject([hbs[0]])
    net.deliver()                                      # node 2 gets the round...
    assert net.read_states[1] == []
    net.deliver()                                      # ...and acknowledges it: 2 of 3
    assert net.read_states[1] == [ReadState(lead.commit_index, b"r1")]
    assert lead.last_index == last                     # nothing appended
    net.inject([hbs[1]])
    net.stabilize()
    assert len(net.read_states[1]) == 1                # answered once only


def test_6_4_reads_are_batched_behind_one_round():
    """Dissertation 6.4 (batching): several reads arriving before the next round
    share one heartbeat round."""
    net = leader_with_writes(5)
    lead = net.nodes[1]
    for i in range(4):
        lead.read_index(b"r%d" % i)
    net.process(1)
    hbs = [m for m in net.queue if m.type == MsgType.HEARTBEAT]
    assert len(hbs) == 4                               # one per follower, not per read
    net.stabilize()
    assert [rs.ctx for rs in net.read_states[1]] == [b"r0", b"r1", b"r2", b"r3"]
    assert {rs.index for rs in net.read_states[1]} == {lead.commit_index}


def test_6_4_reads_arriving_during_a_round_share_the_next_one():
    """Dissertation 6.4 (batching), as etcd's server does it: one round in flight at a time.
    Reads that arrive while a round is unconfirmed do not start rounds of their own; they
    share the next one, started when the current one is confirmed -- never an earlier one
    (a round that began before a read arrived cannot vouch for it)."""
    net = leader_with_writes()
    lead = net.nodes[1]
    lead.read_index(b"first")
    net.process(1)
    first = net.take(msg_is(MsgType.HEARTBEAT, frm=1))
    for i in range(3):
        lead.read_index(b"later%d" % i)
        net.process(1)
    assert net.take(msg_is(MsgType.HEARTBEAT, frm=1)) == []   # no round per read
    net.inject(first)
    net.deliver()                                             # followers acknowledge round 1
    net.deliver()
    assert [rs.ctx for rs in net.read_states[1]] == [b"first"]
    second = [m for m in net.queue if m.type == MsgType.HEARTBEAT]
    assert sorted(m.to for m in second) == [2, 3]
    assert {m.index for m in second} == {first[0].index + 1}
    net.stabilize()
    assert [rs.ctx for rs in net.read_states[1]] == [b"first", b"later0", b"later1", b"later2"]


def test_6_4_a_lost_read_round_is_confirmed_by_the_next_heartbeat():
    """A round whose heartbeats are all lost does not strand the reads waiting behind it:
    the periodic heartbeat carries the current round number."""
    net = leader_with_writes()
    lead = net.nodes[1]
    lead.read_index(b"a")
    net.process(1)
    net.take(msg_is(MsgType.HEARTBEAT, frm=1))                # lost
    lead.read_index(b"b")
    for _ in range(net.nodes[1].cfg.heartbeat_tick):
        lead.tick()
    net.stabilize()
    assert [rs.ctx for rs in net.read_states[1]] == [b"a", b"b"]


def test_6_4_read_index_covers_every_acknowledged_write():
    """Dissertation 6.4: the read index is at least the index of every write
    committed before the read began."""
    net = leader_with_writes()
    idx = net.propose(1, b"x")
    net.stabilize()
    net.nodes[1].read_index(b"r")
    net.stabilize()
    (rs,) = net.read_states[1]
    assert rs.index >= idx


def test_6_4_new_leader_waits_for_its_noop_before_answering():
    """Dissertation 6.4 step 1: a new leader does not know the latest commit index
    until an entry of its own term commits; reads wait for the no-op."""
    net = leader_with_writes(check_quorum=False)
    net.crash(1)
    net.campaign(2)
    n2 = net.nodes[2]
    while n2.role != Role.LEADER:
        net.deliver(msg_is(MsgType.PRE_VOTE, MsgType.PRE_VOTE_RESP, MsgType.VOTE,
                           MsgType.VOTE_RESP), limit=1)
    noop = n2.last_index
    assert n2.commit_index < noop
    n2.read_index(b"early")
    net.process(2)
    assert not [m for m in net.queue if m.type == MsgType.HEARTBEAT], "no round yet"
    assert net.read_states[2] == []
    net.stabilize()
    assert n2.commit_index >= noop
    (rs,) = net.read_states[2]
    assert rs.ctx == b"early" and rs.index >= noop


def test_6_4_partitioned_leader_cannot_answer_reads():
    """Dissertation 6.4: a leader cut off from the majority never answers a read
    (it could be deposed and serve stale data); once it steps down the read is
    abandoned, while the new majority leader serves reads including newer writes."""
    net = leader_with_writes(check_quorum=True)
    net.isolate(1)
    net.nodes[1].read_index(b"stale?")
    for _ in range(30):
        net.tick(1)
        net.stabilize()
    assert net.read_states[1] == []
    assert net.nodes[1].role == Role.FOLLOWER          # check-quorum
    net.run(40)
    new = net.leader()
    assert new in (2, 3)
    idx = net.propose(new, b"new")
    net.stabilize()
    net.nodes[new].read_index(b"fresh")
    net.stabilize()
    assert [rs.index >= idx for rs in net.read_states[new]] == [True]
    net.heal()
    net.run(5)
    assert net.read_states[1] == []


def test_6_4_partitioned_leader_without_check_quorum_still_never_answers():
    """Dissertation 6.4: even a stale leader that never steps down (check-quorum
    off) cannot confirm a read without a majority."""
    net = leader_with_writes(check_quorum=False)
    net.isolate(1)
    net.nodes[1].read_index(b"stale?")
    for _ in range(100):
        net.tick(1)
        net.stabilize()
    assert net.nodes[1].role == Role.LEADER and net.read_states[1] == []


def test_6_4_follower_forwards_read_index_to_leader():
    """Dissertation 6.4 (reads at followers): the follower asks the leader for a read
    index, the leader confirms it with a round and answers the follower."""
    net = leader_with_writes()
    n3 = net.nodes[3]
    n3.read_index(b"f")
    net.process(3)
    fwd = [m for m in net.queue if m.type == MsgType.READ_INDEX]
    assert len(fwd) == 1 and fwd[0].to == 1 and fwd[0].frm == 3
    net.stabilize()
    (rs,) = net.read_states[3]
    assert rs == ReadState(net.nodes[1].commit_index, b"f")
    assert net.read_states[1] == []
    assert [m.to for m in net.delivered if m.type == MsgType.READ_INDEX_RESP] == [3]


def test_6_4_read_index_without_a_known_leader_raises():
    """A node that knows no leader cannot forward a read."""
    net = Net(3)
    with pytest.raises(NotLeader):
        net.nodes[2].read_index(b"x")


def test_6_4_single_voter_answers_at_once():
    """Dissertation 6.4: with a single voter the leader is its own quorum."""
    net = Net(1)
    net.elect(1)
    net.nodes[1].read_index(b"solo")
    net.process(1)
    assert net.read_states[1] == [ReadState(1, b"solo")]
