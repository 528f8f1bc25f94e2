"""Leader election scenarios: Raft paper 5.2 and 5.4.1, pre-vote (dissertation 9.6),
check-quorum (dissertation 6.2 / 4.2.3), NotLeader hints and determinism."""
from __future__ import annotations

import random

import pytest

from ddb_node.raft import Message, MsgType, NotLeader, Role
from tests.raft_harness import Net, msg_is


def vote(frm: int, to: int, term: int, last_index: int = 0, last_term: int = 0,
         pre: bool = False) -> Message:
    return Message(MsgType.PRE_VOTE if pre else MsgType.VOTE, to, frm, term,
                   log_term=last_term, index=last_index)


def responses(net: Net, nid: int) -> list[Message]:
    net.process(nid)
    return net.take(lambda m: m.frm == nid)


# ----------------------------------------------------------------------- 5.2
def test_s5_2_one_vote_per_term_and_vote_survives_restart():
    """Paper 5.2: each server votes for at most one candidate in a given term
    (first-come-first-served), and the vote is persisted before it is sent."""
    net = Net(3, pre_vote=False)
    n2 = net.nodes[2]
    n2.step(vote(1, 2, term=1))
    (r,) = responses(net, 2)
    assert r.type == MsgType.VOTE_RESP and not r.reject and n2.vote == 1
    assert net.storage[2].initial_state()[0].vote == 1          # durable
    n2.step(vote(3, 2, term=1))
    (r,) = responses(net, 2)
    assert r.reject, "a second candidate of the same term must be refused"
    # the same candidate asking again (a retried RequestVote) gets the vote again
    n2.step(vote(1, 2, term=1))
    (r,) = responses(net, 2)
    assert not r.reject
    # after a crash the persisted vote still binds
    net.crash(2)
    n2 = net.restart(2)
    n2.step(vote(3, 2, term=1))
    (r,) = responses(net, 2)
    assert r.reject and n2.vote == 1
    # a new term frees the vote
    n2.step(vote(3, 2, term=2))
    (r,) = responses(net, 2)
    assert not r.reject and n2.vote == 3 and n2.term == 2


def test_s5_2_randomized_election_timeouts():
    """Paper 5.2: election timeouts are drawn from [T, 2T) with the injected rng, and
    a follower campaigns exactly when its own timeout elapses."""
    timeouts = set()
    for seed in range(20):
        net = Net(3, seed=seed, pre_vote=False)
        for node in net.nodes.values():
            assert 10 <= node.randomized_timeout < 20
            timeouts.add(node.randomized_timeout)
    assert len(timeouts) > 3, "timeouts must be spread"
    net = Net(3, seed=7, pre_vote=False)
    n1 = net.nodes[1]
    t = n1.randomized_timeout
    net.tick(1, t - 1)
    assert n1.role == Role.FOLLOWER and n1.term == 0
    net.tick(1)
    assert n1.role == Role.CANDIDATE and n1.term == 1


def test_s5_2_first_to_time_out_wins():
    """Paper 5.2: with randomized timeouts one server usually times out first and
    wins before the others time out; the winner is the node with the smallest timeout."""
    for seed in range(10):
        net = Net(3, seed=seed)
        first = min(net.nodes, key=lambda i: (net.nodes[i].randomized_timeout, i))
        for _ in range(40):
            net.tick_all()
            net.stabilize()
            if net.leader():
                break
        assert net.leader() == first
        assert len(net.leaders()) == 1


def test_s5_2_candidate_steps_down_on_seeing_a_leader():
    """Paper 5.2: a candidate that receives AppendEntries from a leader whose term is
    at least its own returns to follower state and recognizes that leader."""
    net = Net(3, pre_vote=False)
    net.campaign(1)                    # 1: candidate in term 1
    net.drop(msg_is(frm=1))            # its vote requests are lost
    assert net.nodes[1].role == Role.CANDIDATE
    net.nodes[2].campaign()            # 2 also campaigns in term 1 and wins with 3's vote
    net.process(2)
    net.deliver(msg_is(MsgType.VOTE, frm=2, to=3))
    net.deliver(msg_is(MsgType.VOTE_RESP, to=2))
    assert net.nodes[2].role == Role.LEADER and net.nodes[2].term == 1
    net.drop(msg_is(to=2, frm=1))
    net.stabilize()
    n1 = net.nodes[1]
    assert n1.role == Role.FOLLOWER and n1.leader_id == 2 and n1.term == 1


def test_s5_2_split_vote_then_reelection():
    """Paper 5.2: when votes split nobody wins; candidates time out (randomized) and
    a later term elects exactly one leader."""
    net = Net(4, pre_vote=False)
    net.campaign(1)
    net.campaign(2)
    # 3 hears 1 first, 4 hears 2 first: 2 votes each, quorum is 3
    net.deliver(msg_is(MsgType.VOTE, frm=1, to=3))
    net.deliver(msg_is(MsgType.VOTE, frm=2, to=4))
    net.stabilize()
    assert net.leaders() == []
    assert net.nodes[1].role == net.nodes[2].role == Role.CANDIDATE
    assert {n.term for n in net.nodes.values()} == {1}
    for _ in range(60):
        net.tick_all()
        net.stabilize()
        if net.leader():
            break
    lead = net.leader()
    assert lead is not None and net.nodes[lead].term >= 2
    assert len(net.leaders()) == 1


def test_s5_2_at_most_one_leader_per_term_under_random_schedules():
    """Paper 5.2 (election safety): over random tick/drop schedules, no term ever has
    two leaders."""
    for seed in range(15):
        net = Net(5, seed=seed, pre_vote=seed % 2 == 0, check_quorum=seed % 3 == 0)
        rng = random.Random(seed)
        leaders_by_term: dict[int, int] = {}
        for _ in range(300):
            nid = rng.randrange(1, 6)
            net.tick(nid)
            if rng.random() < 0.3:
                net.drop(lambda m: rng.random() < 0.3)
            net.deliver(limit=rng.randrange(0, 6))
            for i, n in net.nodes.items():
                if n.role == Role.LEADER:
                    assert leaders_by_term.setdefault(n.term, i) == i


# ----------------------------------------------------------------------- 5.4.1
def test_s5_4_1_election_restriction_shorter_log_loses():
    """Paper 5.4.1: a voter denies its vote to a candidate whose log is less
    up-to-date (lower last term, or same last term and shorter)."""
    net = Net(3, pre_vote=False, check_quorum=False)
    net.elect(1)
    net.isolate(3)
    for i in range(3):
        net.propose(1, b"w%d" % i)
    net.stabilize()
    assert net.nodes[1].commit_index == 4 and net.nodes[3].last_index == 1
    net.heal()
    net.crash(1)
    net.campaign(3)
    net.stabilize()
    assert net.nodes[3].role != Role.LEADER
    assert net.nodes[2].term == 2 and net.nodes[2].vote != 3   # heard it, refused it
    net.campaign(2)
    net.stabilize()
    assert net.leader() == 2
    assert net.data(3) == [b"w0", b"w1", b"w2"]   # committed entries survived


def test_s5_4_1_last_term_beats_length():
    """Paper 5.4.1: logs ending in a higher term are more up-to-date, whatever their length."""
    net = Net(3, pre_vote=False)
    log = net.nodes[1].log
    # node 1 holds [1/1, 1/2, 1/3]; a candidate ending with term 2 at index 2 wins its vote
    from ddb_node.raft import Entry
    log.append([Entry(1, 1), Entry(1, 2), Entry(1, 3)])
    assert log.is_up_to_date(2, 2)
    assert not log.is_up_to_date(2, 1)
    assert log.is_up_to_date(3, 1)
    assert not log.is_up_to_date(4, 0)


# ----------------------------------------------------------------------- pre-vote 9.6
def test_9_6_prevote_does_not_increase_terms():
    """Dissertation 9.6: a pre-candidate asks with term+1 but neither it nor the
    voters change term until it wins the pre-vote."""
    net = Net(3)
    net.elect(1)
    net.isolate(3)
    net.tick(3, 100)
    assert net.nodes[3].term == 1 and net.nodes[3].role == Role.PRE_CANDIDATE
    sent = [m for m in net.queue if m.frm == 3]
    assert sent and all(m.type == MsgType.PRE_VOTE and m.term == 2 for m in sent)
    # a voter that grants a pre-vote keeps its own term
    net.drop()
    n2 = net.nodes[2]
    net.crash(1)
    net.heal()
    net.tick(2, 10)                          # 2 leaves its leader lease
    n2.step(vote(3, 2, term=2, last_index=1, last_term=1, pre=True))
    (r,) = responses(net, 2)
    assert r.type == MsgType.PRE_VOTE_RESP and not r.reject
    assert n2.term == 1 and n2.vote == 1


def test_9_6_prevote_rejoining_node_does_not_disrupt():
    """Dissertation 9.6: a partitioned server that rejoins does not bump the term
    nor depose the leader (pre-vote alone, no check-quorum)."""
    net = Net(3, pre_vote=True, check_quorum=False)
    net.elect(1)
    net.isolate(3)
    net.propose(1, b"x")
    for _ in range(60):
        net.tick_all()
        net.stabilize()
    assert net.nodes[3].term == 1
    net.heal()
    for _ in range(60):
        net.tick_all()
        net.stabilize()
    assert net.leader() == 1 and all(n.term == 1 for n in net.nodes.values())
    assert net.data(3) == [b"x"]


def test_9_6_without_prevote_rejoining_node_disrupts():
    """Dissertation 9.6 (the problem pre-vote solves): without pre-vote the
    partitioned server's term runs ahead and deposes the leader when it rejoins."""
    net = Net(3, pre_vote=False, check_quorum=False)
    net.elect(1)
    net.isolate(3)
    for _ in range(60):
        net.tick_all()
        net.stabilize()
    assert net.nodes[3].term > 1
    net.heal()
    term3 = net.nodes[3].term
    net.run(30)                         # 3 times out again and its RequestVote deposes 1
    assert net.nodes[1].term > term3 > 1
    assert net.leader() is not None


# ----------------------------------------------------------------------- check-quorum
def test_check_quorum_leader_in_minority_steps_down():
    """Dissertation 6.2: a leader that has not heard from a quorum during a whole
    election timeout steps down (so clients can find the real leader). The
    followers answered during the first timeout window (the election), so the
    leader survives its first check and steps down at the second."""
    net = Net(3, check_quorum=True)
    net.elect(1)
    net.isolate(1)
    n1 = net.nodes[1]
    net.tick(1, 19)
    assert n1.role == Role.LEADER
    net.tick(1, 1)
    assert n1.role == Role.FOLLOWER and n1.leader_id == 0 and n1.term == 1


def test_check_quorum_leader_with_quorum_stays():
    """Dissertation 6.2: a leader hearing from a quorum keeps its role."""
    net = Net(3, check_quorum=True)
    net.elect(1)
    net.crash(3)
    for _ in range(50):
        net.tick(1)
        net.stabilize()
    assert net.nodes[1].role == Role.LEADER


def test_check_quorum_followers_in_lease_ignore_disruptive_votes():
    """Dissertation 4.2.3: a server that heard from a leader within the minimum
    election timeout ignores RequestVote (it neither votes nor updates its term)."""
    net = Net(3, pre_vote=False, check_quorum=True)
    net.elect(1)
    net.isolate(3)
    net.tick(3, 25)
    n3 = net.nodes[3]
    assert n3.role == Role.CANDIDATE and n3.term > 1
    net.drop()
    net.heal()
    n3.campaign()
    net.process(3)
    votes = net.take(msg_is(MsgType.VOTE, frm=3))
    assert len(votes) == 2
    for m in votes:
        net.step(m)
        net.process(m.to)
    assert not [m for m in net.queue if m.frm in (1, 2)], "votes in lease get no answer"
    assert net.nodes[1].term == net.nodes[2].term == 1
    assert net.nodes[1].role == Role.LEADER and net.nodes[2].vote == 1


# ----------------------------------------------------------------------- NotLeader
def test_not_leader_hint_on_follower_propose():
    """A follower refuses proposals with NotLeader carrying the leader it knows; a
    node that knows no leader gives no hint."""
    net = Net(3)
    with pytest.raises(NotLeader) as ei:
        net.nodes[2].propose(b"x")
    assert ei.value.leader_hint == 0
    net.elect(1)
    for nid in (2, 3):
        with pytest.raises(NotLeader) as ei:
            net.nodes[nid].propose(b"x")
        assert ei.value.leader_hint == 1
    net.isolate(1)
    net.tick(2, 40)
    with pytest.raises(NotLeader) as ei:           # candidate / pre-candidate
        net.nodes[2].propose(b"x")
    assert ei.value.leader_hint == 0


# ----------------------------------------------------------------------- determinism
def _random_run(seed: int) -> list[str]:
    net = Net(5, seed=seed)
    rng = random.Random(seed)
    for step in range(400):
        r = rng.random()
        nid = rng.randrange(1, 6)
        if r < 0.5:
            net.tick(nid)
        elif r < 0.6:
            lead = net.leader()
            if lead is not None:
                net.propose(lead, b"p%d" % step)
        elif r < 0.65:
            net.drop(lambda m: rng.random() < 0.5)
        elif r < 0.7:
            net.isolate(nid)
        elif r < 0.75:
            net.heal()
        net.deliver(limit=rng.randrange(0, 8))
    net.heal()
    net.run(40)
    net.check_state_machine_safety()
    return net.trace


def test_determinism_same_seed_same_messages():
    """The core is pure: the same seed and inputs give the identical message trace."""
    a, b = _random_run(11), _random_run(11)
    assert len(a) > 500
    assert a == b
    assert _random_run(12) != a
