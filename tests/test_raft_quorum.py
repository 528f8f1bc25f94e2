"""raft/quorum.py as a specification: what a majority of voters decides."""
from __future__ import annotations

import pytest

from ddb_node.raft.quorum import VoteResult, majority, majority_index, vote_result


@pytest.mark.parametrize("n, q", [(1, 1), (2, 2), (3, 2), (4, 3), (5, 3), (7, 4)])
def test_a_quorum_is_more_than_half_of_the_voters(n, q):
    assert majority(n) == q


# ---------------------------------------------------------------- §5.3 / §5.4.2 commitment
def test_commit_index_is_the_largest_index_stored_on_a_majority():
    # §5.3: an entry is committed once the leader has replicated it on a majority
    assert majority_index([7, 5, 3]) == 5
    assert majority_index([3, 7, 5]) == 5          # order of voters does not matter
    assert majority_index([9, 9, 1, 1, 1]) == 1
    assert majority_index([9, 9, 9, 1, 1]) == 9


def test_even_sized_configuration_needs_more_than_half():
    # 4 voters: 3 must hold the entry, 2 are not enough
    assert majority_index([8, 8, 2, 2]) == 2
    assert majority_index([8, 8, 8, 2]) == 8


def test_single_voter_commits_what_it_stores_and_no_voters_commit_nothing():
    assert majority_index([4]) == 4
    assert majority_index([]) == 0


def test_majority_index_serves_readindex_rounds_too():
    # §8 / diss. 6.4: the highest round a quorum has echoed is the confirmed round
    assert majority_index([3, 2, 0]) == 2


# ---------------------------------------------------------------- §5.2 elections
def test_vote_is_won_with_a_majority_of_grants():
    assert vote_result({1, 2, 3}, {1: True, 2: True}) == VoteResult.WON
    assert vote_result({1}, {1: True}) == VoteResult.WON


def test_vote_is_pending_until_a_majority_decides():
    assert vote_result({1, 2, 3}, {1: True}) == VoteResult.PENDING
    assert vote_result({1, 2, 3}, {1: True, 2: False}) == VoteResult.PENDING
    assert vote_result({1, 2, 3}, {}) == VoteResult.PENDING


def test_vote_is_lost_only_when_a_majority_rejected():
    assert vote_result({1, 2, 3}, {1: True, 2: False, 3: False}) == VoteResult.LOST
    # ddb's rule: 2 of 4 rejecting makes winning impossible, yet the vote stays pending
    # (the election timeout ends it); a third rejection loses it
    assert vote_result({1, 2, 3, 4}, {1: True, 2: False, 3: False}) == VoteResult.PENDING
    assert vote_result({1, 2, 3, 4}, {2: False, 3: False, 4: False}) == VoteResult.LOST


def test_votes_of_non_voters_do_not_count():
    # §6: learners and removed servers have no say in elections
    assert vote_result({1, 2, 3}, {1: True, 4: True, 5: True}) == VoteResult.PENDING
    assert vote_result({1, 2, 3}, {1: True, 4: False, 5: False, 6: False}) == VoteResult.PENDING


def test_check_quorum_is_a_vote_of_the_active_voters():
    # diss. 6.2: a leader stays only while a majority of voters has been heard from
    assert vote_result({1, 2, 3}, {1: True, 3: True}) == VoteResult.WON
    assert vote_result({1, 2, 3, 4, 5}, {1: True, 3: True}) == VoteResult.PENDING
