"""raft/read_only.py as a specification: §8 read-only queries (diss. 6.4, ReadIndex)
confirmed by heartbeat rounds, one round in flight at a time."""
from __future__ import annotations

from ddb_node.raft.read_only import ReadOnly

ME, VOTERS = 1, {1, 2, 3}


def started(ro: ReadOnly) -> int:
    """Start the pending round as ready() does; return it."""
    assert ro.start_round()
    return ro.round


def test_a_read_waits_for_a_round_started_after_it_arrived():
    ro = ReadOnly()
    ro.add_request(7, b"a", ME, ME, VOTERS)
    assert ro.bcast_pending                 # no round in flight: start one
    r = started(ro)
    assert r == 1 and not ro.bcast_pending
    assert ro.release(ME, VOTERS) == []     # only the leader has answered round 1


def test_a_quorum_of_echoes_releases_the_read_at_its_commit_index():
    ro = ReadOnly()
    ro.add_request(7, b"a", 5, ME, VOTERS)
    r = started(ro)
    assert ro.recv_ack(2, r)
    assert ro.release(ME, VOTERS) == [(7, b"a", 5)]
    assert ro.release(ME, VOTERS) == []


def test_reads_arriving_during_a_round_share_the_next_one():
    ro = ReadOnly()
    ro.add_request(7, b"a", ME, ME, VOTERS)
    r1 = started(ro)
    ro.add_request(8, b"b", ME, ME, VOTERS)
    ro.add_request(9, b"c", ME, ME, VOTERS)
    assert not ro.bcast_pending             # round 1 unconfirmed: do not start another
    ro.recv_ack(3, r1)
    # round 1 confirms only the read that was queued before it began
    assert ro.release(ME, VOTERS) == [(7, b"a", ME)]
    assert ro.bcast_pending                 # ... and starts the round the others wait for
    r2 = started(ro)
    ro.recv_ack(2, r2)
    assert ro.release(ME, VOTERS) == [(8, b"b", ME), (9, b"c", ME)]


def test_an_echo_of_an_earlier_round_never_confirms_a_later_read():
    ro = ReadOnly()
    ro.add_request(7, b"a", ME, ME, VOTERS)
    r1 = started(ro)
    ro.recv_ack(2, r1)
    ro.release(ME, VOTERS)
    ro.add_request(8, b"b", ME, ME, VOTERS)
    started(ro)
    assert not ro.recv_ack(2, r1)           # old news
    assert ro.release(ME, VOTERS) == []


def test_a_lost_round_is_confirmed_by_a_later_heartbeat_of_the_same_round():
    ro = ReadOnly()
    ro.add_request(7, b"a", ME, ME, VOTERS)
    r = started(ro)                         # its heartbeats are lost; a periodic one carries r
    assert ro.recv_ack(3, r) and ro.release(ME, VOTERS) == [(7, b"a", ME)]


def test_learners_do_not_confirm_reads():
    ro = ReadOnly()
    ro.add_request(7, b"a", ME, ME, VOTERS)
    r = started(ro)
    ro.recv_ack(4, r)                       # a learner's echo
    assert ro.release(ME, VOTERS) == []


def test_reads_before_the_first_commit_of_the_term_are_held():
    ro = ReadOnly()
    ro.wait_for_commit(b"a", 2)
    ro.wait_for_commit(b"b", ME)
    assert not ro.queue
    assert ro.take_waiting() == [(b"a", 2), (b"b", ME)]
    assert ro.take_waiting() == []


def test_a_new_leadership_drops_pending_reads_and_counts_rounds_from_zero():
    ro = ReadOnly()
    ro.add_request(7, b"a", ME, ME, VOTERS)
    started(ro)
    ro.recv_ack(2, 1)
    ro.wait_for_commit(b"w", 2)
    ro.reset()
    assert ro.round == 0 and not ro.bcast_pending and not ro.queue and not ro.waiting_commit
    assert ro.confirmed(ME, VOTERS) == 0


def test_a_server_that_left_and_came_back_starts_from_round_zero():
    ro = ReadOnly()
    ro.recv_ack(2, 5)
    ro.forget(2)
    assert ro.recv_ack(2, 1)
