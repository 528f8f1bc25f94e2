"""Log replication scenarios: Raft paper 5.3, 5.4.2 (Figure 8), 5.5, and flow control."""
from __future__ import annotations

import copy
import dataclasses

from ddb_node.raft import Entry, Message, MsgType, Role
from tests.raft_harness import Net, msg_is


def app(frm, to, term, prev_index, prev_term, entries, commit=0) -> Message:
    return Message(MsgType.APP, to, frm, term, log_term=prev_term, index=prev_index,
                   entries=entries, commit=commit)


def rejections(net: Net, to: int) -> list[Message]:
    return [m for m in net.delivered if m.type == MsgType.APP_RESP and m.reject and m.to == to]


# ----------------------------------------------------------------------- 5.3
def test_s5_3_replication_commits_on_majority_despite_a_partitioned_follower():
    """Paper 5.3: an entry is committed once the leader stored it on a majority; the
    commit index reaches the followers in later AppendEntries/heartbeats."""
    net = Net(3)
    net.elect(1)
    net.isolate(3)
    idx = net.propose(1, b"a")
    net.stabilize()
    assert net.nodes[1].commit_index == idx and net.nodes[2].commit_index == idx
    assert net.data(1) == net.data(2) == [b"a"] and net.data(3) == []
    net.heal()
    net.tick(1)
    net.stabilize()
    assert net.data(3) == [b"a"] and net.nodes[3].commit_index == idx


def test_s5_3_minority_cannot_commit():
    """Paper 5.3: a leader cut off from the majority appends but never commits."""
    net = Net(5, check_quorum=False)
    net.elect(1)
    net.partition([1, 2], [3, 4, 5])
    net.propose(1, b"lost")
    net.run(5)
    assert net.nodes[1].commit_index == 1 and net.nodes[2].last_index == 2
    assert net.data(1) == []


def test_s5_3_consistency_check_rejects_missing_prev_entry():
    """Paper 5.3: a follower refuses AppendEntries whose (prevLogIndex, prevLogTerm)
    it does not hold, and answers with a hint (its last index here)."""
    net = Net(3)
    n2 = net.nodes[2]
    n2.step(app(1, 2, 1, prev_index=5, prev_term=1, entries=[Entry(1, 6)]))
    net.process(2)
    (r,) = net.take()
    assert r.type == MsgType.APP_RESP and r.reject and r.index == 5 and r.reject_hint == 0
    assert n2.last_index == 0
    n2.step(app(1, 2, 1, prev_index=0, prev_term=0, entries=[Entry(1, 1), Entry(1, 2)], commit=1))
    net.process(2)
    (r,) = net.take()
    assert not r.reject and r.index == 2 and n2.commit_index == 1


def test_s5_3_conflicting_suffix_truncated():
    """Paper 5.3: if an existing entry conflicts with a new one (same index, different
    term), the follower deletes it and all that follow it."""
    net = Net(3, check_quorum=False, pre_vote=False)
    net.elect(1)
    net.partition([1], [2, 3])
    for i in range(3):
        net.propose(1, b"old%d" % i)        # 1/2..1/4, never committed
    net.drop()
    net.elect(2)                            # term 2
    net.propose(2, b"new")
    net.stabilize()
    net.heal()
    net.tick(2)
    net.stabilize()
    assert net.log_terms(1) == net.log_terms(2) == [(1, 1), (2, 2), (3, 2)]
    assert net.nodes[1].role == Role.FOLLOWER
    assert net.data(1) == [b"new"]


def test_s5_3_follower_catch_up_after_long_absence():
    """Paper 5.3: the leader retries AppendEntries until a lagging follower's log
    matches, whatever the follower's lag."""
    net = Net(3, max_entries_per_msg=16)
    net.elect(1)
    net.crash(3)
    for i in range(200):
        net.propose(1, b"%d" % i)
    net.stabilize()
    assert net.nodes[1].commit_index == 201
    net.restart(3)
    net.tick(1)
    net.stabilize()
    assert net.log_terms(3) == net.log_terms(1)
    assert net.data(3) == [b"%d" % i for i in range(200)]
    assert len(rejections(net, 1)) <= 1


def test_s5_3_fast_backtracking_long_divergent_log():
    """Paper 5.3 (optimization at the end of the section) / etcd's conflict hints:
    a follower whose 100-entry uncommitted suffix diverges from a leader whose
    log ends 100 entries of another term further is repaired with ONE rejection
    (without hints it would take one per divergent entry)."""
    net = Net(5, check_quorum=False, pre_vote=False)
    net.elect(1)
    for i in range(5):
        net.propose(1, b"c%d" % i)
    net.stabilize()                          # committed prefix 1..6 (term 1)
    net.partition([1], [2, 3, 4, 5])
    for i in range(100):
        net.propose(1, b"x%d" % i)           # 1/7..1/106 on node 1 only
    net.drop()
    net.elect(2)                             # term 2
    for i in range(100):
        net.propose(2, b"y%d" % i)           # after the no-op 2/7: 2/8..2/107, committed
    net.stabilize()
    net.crash(2)
    net.elect(3)                             # term 3: its next index for 1 starts at 108
    net.heal()
    net.delivered.clear()
    net.tick(3)
    net.stabilize()
    assert net.log_terms(1) == net.log_terms(3)
    assert net.data(1) == [b"c%d" % i for i in range(5)] + [b"y%d" % i for i in range(100)]
    rej = rejections(net, 3)
    assert len(rej) == 1
    assert (rej[0].index, rej[0].reject_hint, rej[0].log_term) == (107, 106, 1)


def test_s5_3_fast_backtracking_follower_with_higher_term_suffix():
    """Paper 5.3 / conflict hints, the other direction: the follower's divergent
    suffix is of a *higher* term than the leader's entries at those indexes
    (the leader got elected with a longer log of an older term). Backtracking
    still needs only a few rejections."""
    net = Net(5, check_quorum=False, pre_vote=False)
    net.elect(1)                               # term 1, 1/1 committed everywhere
    net.crash(1)
    net.restart(1)                             # 1 back as a follower of term 1
    net.campaign(2)                            # term 2: 3 and 4 vote for 2...
    net.deliver(msg_is(MsgType.VOTE, frm=2, to=3))
    net.deliver(msg_is(MsgType.VOTE, frm=2, to=4))
    net.deliver(msg_is(MsgType.VOTE_RESP, to=2))
    assert net.nodes[2].role == Role.LEADER and net.nodes[2].term == 2
    net.drop()                                 # ...but none of its appends arrive
    for i in range(50):
        net.propose(2, b"t2-%d" % i)           # 2/2..2/52 on node 2 only
    net.drop()
    # term 3: node 1 leads {1, 3, 4, 5} and writes 80 entries (longer log, term 3)
    net.isolate(2)
    net.campaign(1)                            # term 2: refused by 3 and 4
    net.stabilize()
    net.campaign(1)                            # term 3: elected
    net.stabilize()
    assert net.nodes[1].role == Role.LEADER and net.nodes[1].term == 3
    for i in range(80):
        net.propose(1, b"t3-%d" % i)
    net.stabilize()
    net.heal()
    net.delivered.clear()
    net.tick(1)
    net.stabilize()
    assert net.log_terms(2) == net.log_terms(1)
    assert len(rejections(net, 1)) <= 2


# ----------------------------------------------------------------------- 5.4.2
def _strip_term(term: int):
    """Hook: AppendEntries lose their entries of `term` (they never arrive)."""
    def hook(m: Message) -> Message:
        if m.type == MsgType.APP and any(e.term == term for e in m.entries):
            m = dataclasses.replace(m, entries=[e for e in m.entries if e.term != term])
        return m
    return hook


def _figure8_until_c(net: Net) -> None:
    """Paper Figure 8 (a)-(c) on 5 servers (no-op entries shift indexes by one).

    (a) S1 leads term 1 and stores "a" at index 2 on S1, S2 only.
    (b) S5 wins term 2 with S3, S4 and appends its no-op 2/2 on itself only.
    (c) S1 restarts, wins term 3 and replicates 1/2 to S2, S3, S4 (a majority),
        but its own term-3 no-op reaches nobody.
    """
    net.elect(1)
    net.partition([1, 2], [3, 4, 5])
    net.propose(1, b"a")
    net.stabilize()
    net.campaign(5)
    net.deliver(msg_is(MsgType.VOTE, frm=5))
    net.deliver(msg_is(MsgType.VOTE_RESP, to=5))
    assert net.nodes[5].role == Role.LEADER and net.nodes[5].term == 2
    net.drop()
    net.partition([1, 2, 3, 4], [5])
    net.crash(1)
    net.restart(1)
    net.hook = _strip_term(3)
    net.campaign(1)                 # term 2: 3 and 4 already voted for 5
    net.stabilize()
    net.campaign(1)                 # term 3: wins with 2, 3, 4
    net.stabilize()
    assert net.nodes[1].role == Role.LEADER and net.nodes[1].term == 3
    for i in (1, 2, 3, 4):
        assert net.log_terms(i)[:2] == [(1, 1), (2, 1)]


def test_s5_4_2_figure8_old_term_entry_on_majority_not_committed():
    """Paper 5.4.2 / Figure 8: a leader never commits an entry of a previous term by
    counting replicas; here 1/2 sits on a majority (S1-S4) yet stays uncommitted,
    and indeed S5 may (and does) overwrite it."""
    net = Net(5, pre_vote=False, check_quorum=False)
    _figure8_until_c(net)
    assert net.nodes[1].commit_index == 1, "1/2 is on a majority but not of term 3"
    assert all(n.commit_index == 1 for n in net.nodes.values())
    # (d) S1 crashes; S5 (last term 2 > 1) is elected by S2-S4 and overwrites index 2
    net.hook = None
    net.crash(1)
    net.heal()
    net.crash(5)
    net.restart(5)                  # S5 (stale leader of term 2) restarts as a follower
    net.campaign(5)
    net.stabilize()
    if net.nodes[5].role != Role.LEADER:    # term 3 votes were taken by S1
        net.campaign(5)
        net.stabilize()
    assert net.nodes[5].role == Role.LEADER
    net.propose(5, b"b")
    net.stabilize()
    net.restart(1)
    net.tick(5)
    net.stabilize()
    for i in range(1, 6):
        assert net.log_terms(i)[1] == (2, 2)
        assert b"a" not in net.data(i) and net.data(i) == [b"b"]
    net.check_state_machine_safety()


def test_s5_4_2_figure8_current_term_entry_commits_the_prefix():
    """Paper 5.4.2 / Figure 8 (e): once S1's term-3 entry is on a majority, the
    older entry before it is committed too, and S5 can no longer win."""
    net = Net(5, pre_vote=False, check_quorum=False)
    _figure8_until_c(net)
    net.hook = None
    net.tick(1)
    net.stabilize()
    assert net.nodes[1].commit_index == 3
    assert net.data(1) == [b"a"]
    net.crash(1)
    net.heal()
    net.crash(5)
    net.restart(5)
    for _ in range(3):
        net.campaign(5)
        net.stabilize()
        assert net.nodes[5].role != Role.LEADER
    net.campaign(2)
    net.stabilize()
    assert net.leader() == 2
    assert net.data(2) == net.data(3) == [b"a"]


# ----------------------------------------------------------------------- 5.5
def test_s5_5_duplicate_messages_are_idempotent():
    """Paper 5.5: RPCs are idempotent; every message delivered twice changes nothing
    (the harness also asserts no index is applied twice)."""
    net = Net(3)
    net.hook = None
    net.campaign(1)
    for _ in range(200):
        net.process_all()
        if not net.queue:
            break
        msgs = net.take()
        net.inject(msgs + [copy.deepcopy(m) for m in msgs])
        net.deliver()
        if net.nodes[1].role == Role.LEADER and net.nodes[1].last_index < 6:
            net.propose(1, b"d%d" % net.nodes[1].last_index)
    net.stabilize()
    assert net.nodes[1].role == Role.LEADER
    assert net.data(1) == net.data(2) == net.data(3) == [b"d%d" % i for i in range(1, 6)]


def test_s5_5_stale_reordered_append_does_not_truncate():
    """Paper 5.5 / 5.3: an old AppendEntries arriving late whose entries all match
    must not truncate the entries that followed them."""
    net = Net(3)
    n2 = net.nodes[2]
    n2.step(app(1, 2, 1, 0, 0, [Entry(1, 1), Entry(1, 2), Entry(1, 3), Entry(1, 4)]))
    net.process(2)
    net.take()
    n2.step(app(1, 2, 1, 0, 0, [Entry(1, 1), Entry(1, 2)]))     # the delayed, older one
    net.process(2)
    (r,) = net.take()
    assert not r.reject and r.index == 2
    assert n2.last_index == 4


def test_s5_5_duplicate_vote_responses_count_once():
    """Paper 5.5: a duplicated RequestVote response does not count twice."""
    net = Net(5, pre_vote=False)
    net.campaign(1)
    net.drop()
    grant = Message(MsgType.VOTE_RESP, 1, 2, 1)
    for _ in range(3):
        net.nodes[1].step(copy.deepcopy(grant))
    assert net.nodes[1].role == Role.CANDIDATE
    net.nodes[1].step(Message(MsgType.VOTE_RESP, 1, 3, 1))
    assert net.nodes[1].role == Role.LEADER


def test_s5_5_follower_crash_leader_retries_indefinitely():
    """Paper 5.5: if a follower crashes, the leader retries; when it restarts it
    gets the entries it missed."""
    net = Net(3)
    net.elect(1)
    net.crash(2)
    for i in range(5):
        net.propose(1, b"%d" % i)
    net.run(30)
    assert net.nodes[1].commit_index == 6
    net.restart(2)
    net.run(3)
    assert net.data(2) == [b"%d" % i for i in range(5)]


def test_s5_5_candidate_crash_keeps_term_and_vote():
    """Paper 5.5 / Figure 2: currentTerm and votedFor are persisted before the
    candidate's RequestVotes leave, so a restarted candidate does not vote twice."""
    net = Net(3, pre_vote=False)
    net.campaign(1)
    net.crash(1)
    n1 = net.restart(1)
    assert n1.term == 1 and n1.vote == 1 and n1.role == Role.FOLLOWER
    n1.step(Message(MsgType.VOTE, 1, 2, 1, 0, 0))
    net.process(1)
    resp = net.take(msg_is(MsgType.VOTE_RESP, frm=1))
    assert resp and resp[0].reject


# ----------------------------------------------------------------------- flow control
def test_flow_control_inflight_window_bounds_outstanding_appends():
    """Pipelining (dissertation 10.2.2) is bounded: at most max_inflight_msgs appends
    are outstanding to a follower in replicate state."""
    net = Net(3, max_inflight_msgs=3, max_entries_per_msg=1)
    net.elect(1)
    pr = net.nodes[1].prs[2]
    assert pr.state.name == "REPLICATE"
    for i in range(10):
        net.propose(1, b"%d" % i)
    to2 = [m for m in net.queue if m.type == MsgType.APP and m.to == 2 and m.entries]
    assert len(to2) == 3 and len(pr.inflights) == 3 and pr.is_paused()
    # acknowledgements open the window again, never beyond 3
    rounds = 0
    while net.queue:
        rounds += 1
        net.deliver()
        outstanding = [m for m in net.queue if m.type == MsgType.APP and m.to == 2 and m.entries]
        assert len(outstanding) <= 3
    assert net.nodes[2].last_index == 11 and rounds > 3


def test_flow_control_probe_state_sends_one_append_at_a_time():
    """etcd-style probe state: until a follower acknowledges, the leader keeps at
    most one append with entries outstanding to it."""
    net = Net(3)
    net.isolate(3)
    net.elect(1)
    pr = net.nodes[1].prs[3]
    assert pr.state.name == "PROBE"
    for i in range(10):
        net.propose(1, b"%d" % i)
        net.stabilize()
    sent = [m for m in net.dropped if m.type == MsgType.APP and m.to == 3 and m.entries]
    assert len(sent) == 1
    net.heal()
    net.tick(1)
    net.stabilize()
    assert pr.state.name == "REPLICATE" and net.nodes[3].last_index == 11
