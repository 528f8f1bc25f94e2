"""Leadership transfer: Raft dissertation 3.10 (TimeoutNow)."""
from __future__ import annotations

import pytest

from ddb_node.raft import MsgType, ProposalDropped, Role
from tests.raft_harness import Net, msg_is


def test_3_10_transfer_to_caught_up_follower_sends_timeout_now():
    """Dissertation 3.10: the leader sends TimeoutNow to an up-to-date target, which
    campaigns at once (skipping pre-vote and the followers' leader lease)."""
    net = Net(3, check_quorum=True, pre_vote=True)
    net.elect(1)
    net.propose(1, b"a")
    net.stabilize()
    net.delivered.clear()
    net.nodes[1].transfer_leader(2)
    net.process(1)
    (tn,) = net.take(msg_is(MsgType.TIMEOUT_NOW))
    assert tn.to == 2
    net.inject([tn])
    net.stabilize()
    assert net.leader() == 2 and net.nodes[2].term == 2
    assert net.nodes[1].role == Role.FOLLOWER and net.nodes[1].leader_id == 2
    assert not [m for m in net.delivered if m.type == MsgType.PRE_VOTE]
    net.propose(2, b"b")
    net.stabilize()
    assert net.data(1) == [b"a", b"b"]


def test_3_10_transfer_to_lagging_follower_catches_it_up_first():
    """Dissertation 3.10 step 2: the leader first brings the target's log up to date,
    and sends TimeoutNow only once it matches."""
    net = Net(3)
    net.elect(1)
    net.isolate(3)
    for i in range(10):
        net.propose(1, b"%d" % i)
    net.stabilize()
    net.heal()
    net.nodes[1].transfer_leader(3)
    net.process(1)
    assert not [m for m in net.queue if m.type == MsgType.TIMEOUT_NOW]
    assert [m for m in net.queue if m.type == MsgType.APP and m.to == 3]
    net.stabilize()
    tn = [m for m in net.delivered if m.type == MsgType.TIMEOUT_NOW]
    assert len(tn) == 1 and tn[0].to == 3
    first_tn = net.delivered.index(tn[0])
    caught = [i for i, m in enumerate(net.delivered)
              if m.type == MsgType.APP_RESP and m.frm == 3 and m.index == 11]
    assert caught and caught[0] < first_tn
    assert net.leader() == 3
    assert net.data(3) == [b"%d" % i for i in range(10)]


def test_3_10_proposals_refused_during_transfer():
    """Dissertation 3.10: while a transfer is in progress the leader stops accepting
    client requests (they would be lost or delay the transfer)."""
    net = Net(3)
    net.elect(1)
    net.isolate(3)
    net.propose(1, b"x")
    net.stabilize()
    net.nodes[1].transfer_leader(3)
    with pytest.raises(ProposalDropped):
        net.nodes[1].propose(b"y")
    with pytest.raises(ProposalDropped):
        net.nodes[1].propose_batch([b"y"])


def test_3_10_transfer_aborts_after_an_election_timeout():
    """Dissertation 3.10: if the transfer does not complete within an election
    timeout the leader aborts it and resumes accepting client requests."""
    net = Net(3)
    net.elect(1)
    net.crash(3)
    lead = net.nodes[1]
    lead.transfer_leader(3)
    net.process(1)
    assert lead.lead_transferee == 3
    for _ in range(9):
        net.tick(1)
        net.stabilize()
    assert lead.lead_transferee == 3
    net.tick(1)
    net.stabilize()
    assert lead.lead_transferee == 0 and lead.role == Role.LEADER
    net.propose(1, b"ok")
    net.stabilize()
    assert net.data(2) == [b"ok"]


def test_3_10_follower_requests_transfer_to_itself():
    """A follower may ask the leader to hand leadership to it (TRANSFER_LEADER)."""
    net = Net(3)
    net.elect(1)
    net.nodes[2].transfer_leader(2)
    net.process(2)
    net.stabilize()
    assert net.leader() == 2


def test_3_10_transfer_to_self_or_non_voter():
    """Transfer to itself is a no-op (abort); to a non-voter is refused."""
    net = Net(3, learners=[3])
    net.elect(1)
    with pytest.raises(ValueError):
        net.nodes[1].transfer_leader(3)
    net.nodes[1].transfer_leader(1)
    assert net.nodes[1].lead_transferee == 0
    net.propose(1, b"still leader")
