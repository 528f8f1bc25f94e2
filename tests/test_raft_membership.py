"""Membership changes one server at a time: Raft dissertation chapter 4
(4.1 single-server changes, 4.2.1 catching up new servers as learners,
4.2.2 removing the current leader, 4.2.3 disruptive servers)."""
from __future__ import annotations

import pytest

from ddb_node.raft import ConfChangeType, ConfState, Message, MsgType, ProposalDropped, Role
from tests.raft_harness import Net, msg_is

ADD, PROMOTE, REMOVE = ConfChangeType.ADD_LEARNER, ConfChangeType.PROMOTE, ConfChangeType.REMOVE


def test_4_2_1_add_learner_catch_up_then_promote():
    """Dissertation 4.2.1: a new server joins as a non-voting learner, catches up,
    and only then is promoted; quorum sizes change only at promotion."""
    net = Net(3)
    net.elect(1)
    for i in range(20):
        net.propose(1, b"%d" % i)
    net.stabilize()
    net.add_node(4, ConfState(voters=(1, 2, 3), learners=(4,)))   # joins knowing the cluster
    net.conf_change(1, ADD, 4)
    net.stabilize()                                # probed as soon as the change applies: no tick
    lead = net.nodes[1]
    assert lead.conf_state.voters == (1, 2, 3) and lead.conf_state.learners == (4,)
    assert net.nodes[4].conf_state == lead.conf_state
    assert net.data(4) == [b"%d" % i for i in range(20)]     # caught up
    assert lead.prs[4].is_learner and lead.prs[4].match == lead.last_index
    assert lead.quorum() == 2
    net.conf_change(1, PROMOTE, 4)
    net.stabilize()
    for i in (1, 2, 3, 4):
        assert net.nodes[i].conf_state.voters == (1, 2, 3, 4), i
        assert net.nodes[i].conf_state.learners == ()
    assert lead.quorum() == 3
    # with 4 voters, two crashed servers block commitment, one does not
    net.crash(2)
    idx = net.propose(1, b"three-of-four")
    net.stabilize()
    assert lead.commit_index == idx
    net.crash(3)
    idx = net.propose(1, b"blocked")
    net.run(5)
    assert lead.commit_index == idx - 1


def test_4_2_1_learners_never_vote_nor_campaign():
    """Dissertation 4.2.1: learners are not counted in elections: they never time
    out into candidates and their (unsolicited) grants do not count."""
    net = Net(4, learners=[4], pre_vote=False)
    n4 = net.nodes[4]
    net.tick(4, 100)
    assert n4.role == Role.FOLLOWER and n4.term == 0 and not net.queue
    net.partition([1, 4], [2, 3])
    net.campaign(1)
    net.stabilize()
    assert not [m for m in net.delivered if m.type == MsgType.VOTE and m.to == 4]
    net.nodes[1].step(Message(MsgType.VOTE_RESP, 1, 4, net.nodes[1].term))
    assert net.nodes[1].role == Role.CANDIDATE, "a learner's vote must not count"
    # campaign() on a learner is a no-op too (e.g. a stray TimeoutNow)
    n4.step(Message(MsgType.TIMEOUT_NOW, 4, 1, net.nodes[1].term))
    net.process(4)
    assert n4.role == Role.FOLLOWER


def test_4_1_remove_follower():
    """Dissertation 4.1: removing a follower; the leader stops replicating to it and
    the removed server, which applied its own removal, never campaigns."""
    net = Net(3)
    net.elect(1)
    net.conf_change(1, REMOVE, 3)
    net.stabilize()
    net.tick(1)
    net.stabilize()
    lead = net.nodes[1]
    assert lead.conf_state.voters == (1, 2) and 3 not in lead.prs
    assert net.nodes[3].conf_state.voters == (1, 2) and not net.nodes[3].promotable()
    net.delivered.clear()
    idx = net.propose(1, b"after")
    net.run(50)
    assert not [m for m in net.delivered if 3 in (m.to, m.frm)]
    assert net.nodes[3].term == 1 and net.nodes[2].commit_index == idx


def test_4_2_2_remove_the_leader():
    """Dissertation 4.2.2: the leader replicates its own removal, steps down once it
    applies it, and the remaining servers elect a leader among themselves
    (here at once, through TimeoutNow to the most up-to-date voter)."""
    net = Net(3)
    net.elect(1)
    net.propose(1, b"before")
    net.stabilize()
    idx = net.conf_change(1, REMOVE, 1)
    with pytest.raises(ProposalDropped):
        net.conf_change(1, ADD, 9)
    net.stabilize()
    n1 = net.nodes[1]
    assert n1.role == Role.FOLLOWER and n1.conf_state.voters == (2, 3)
    lead = net.leader()
    assert lead in (2, 3) and net.nodes[lead].term == 2
    assert net.nodes[lead].commit_index >= idx
    net.propose(lead, b"after")
    net.stabilize()
    other = 5 - lead
    assert net.data(other) == [b"before", b"after"]
    assert net.nodes[lead].conf_state.voters == (2, 3)
    # the removed leader stays quiet
    net.run(50)
    assert net.leader() == lead and net.nodes[lead].term == 2


def test_4_2_2_remove_the_leader_successor_not_caught_up():
    """Dissertation 4.2.2: if no voter is caught up when the leader steps down, the
    rest still elect a leader after an election timeout."""
    net = Net(3)
    net.elect(1)
    net.conf_change(1, REMOVE, 1)
    # the entry commits via node 2; node 3 sees nothing until after the step-down
    net.partition([1, 2], [3])
    net.deliver(msg_is(MsgType.APP, to=2))
    net.deliver(msg_is(MsgType.APP_RESP, to=1))
    # 1 applies its removal but node 2's match is stale?  either way 1 steps down
    net.stabilize()
    assert net.nodes[1].role == Role.FOLLOWER
    net.heal()
    net.run(60)
    lead = net.leader()
    assert lead in (2, 3)
    assert net.nodes[2].conf_state.voters == (2, 3)


def test_4_1_second_conf_change_refused_while_one_is_pending():
    """Dissertation 4.1: a leader accepts a new configuration change only once the
    previous one is applied (committed)."""
    net = Net(3)
    net.elect(1)
    net.add_node(4)
    net.add_node(5)
    net.conf_change(1, ADD, 4)
    with pytest.raises(ProposalDropped):
        net.conf_change(1, ADD, 5)
    net.stabilize()
    net.conf_change(1, ADD, 5)
    net.stabilize()
    assert net.nodes[1].conf_state.learners == (4, 5)


def test_4_1_new_leader_refuses_conf_change_until_its_log_is_applied():
    """Dissertation 4.1: a new leader may hold an unapplied conf change from its
    predecessor in its log; it refuses further changes until its tail applies."""
    net = Net(3, check_quorum=False)
    net.elect(1)
    net.add_node(4)
    net.conf_change(1, ADD, 4)
    net.deliver(msg_is(MsgType.APP, frm=1, to=2))   # 2 stores the conf change, uncommitted
    net.drop()
    net.crash(1)
    net.campaign(2)
    n2 = net.nodes[2]
    while n2.role != Role.LEADER:                   # one message at a time
        assert net.queue
        net.deliver(limit=1)
    assert n2.conf_state.learners == ()             # not applied yet
    with pytest.raises(ProposalDropped):
        net.conf_change(2, REMOVE, 3)
    net.stabilize()
    assert n2.conf_state.learners == (4,)
    net.conf_change(2, REMOVE, 4)
    net.stabilize()
    assert n2.conf_state.learners == ()


def test_4_2_3_removed_server_does_not_disrupt():
    """Dissertation 4.2.3: a removed server that never learned of its removal times
    out and campaigns; with pre-vote and check-quorum the cluster ignores it."""
    net = Net(3)
    net.elect(1)
    net.isolate(3)
    net.conf_change(1, REMOVE, 3)
    net.stabilize()
    net.heal()
    assert net.nodes[1].conf_state.voters == (1, 2)
    assert net.nodes[3].conf_state.voters == (1, 2, 3)   # never heard
    for _ in range(100):
        net.tick_all()
        net.stabilize()
    assert net.leader() == 1 and net.nodes[1].term == 1 and net.nodes[2].term == 1


def test_4_2_1_joining_node_with_empty_storage_learns_the_configuration():
    """Dissertation 4.2.1: a server added with an empty log (as ddb_node/sim does)
    must end with the cluster's configuration; otherwise after PROMOTE it thinks
    it is alone, elects itself with its own vote and commits without a majority.
    (Regression: the bootstrap voters lived only in the initial ConfState; fixed in
    d0e6228 by carrying the resulting configuration in every ConfChange entry.)"""
    net = Net(3)
    net.elect(1)
    net.add_node(4)                                # empty storage, no configuration
    net.conf_change(1, ADD, 4)
    net.stabilize()
    net.tick(1)
    net.stabilize()
    net.conf_change(1, PROMOTE, 4)
    net.stabilize()
    net.tick(1)
    net.stabilize()
    assert net.nodes[1].conf_state.voters == (1, 2, 3, 4)
    net.isolate(4)
    net.tick(4, 50)
    lone = net.nodes[4]
    assert lone.role != Role.LEADER, (
        f"isolated node 4 elected itself with voters {lone.conf_state.voters}")
    assert lone.conf_state.voters == (1, 2, 3, 4)
