"""raft/confchange.py as a specification: §6 membership, one server at a time (diss. 4.1)."""
from __future__ import annotations

import pytest

from ddb_node.raft.confchange import applied_conf, check, next_conf
from ddb_node.raft.types import ConfChange, ConfChangeType, ConfState

ADD, PROMOTE, REMOVE = ConfChangeType.ADD_LEARNER, ConfChangeType.PROMOTE, ConfChangeType.REMOVE
THREE = ConfState((1, 2, 3), ())


def test_a_new_server_joins_as_a_learner_then_is_promoted():
    # diss. 4.2.1: a new server catches up without a vote before it counts
    with_learner = next_conf(THREE, ConfChange(ADD, 4))
    assert with_learner == ConfState((1, 2, 3), (4,))
    assert next_conf(with_learner, ConfChange(PROMOTE, 4)) == ConfState((1, 2, 3, 4), ())


def test_remove_takes_a_voter_or_a_learner_out():
    assert next_conf(THREE, ConfChange(REMOVE, 2)) == ConfState((1, 3), ())
    assert next_conf(ConfState((1, 2, 3), (4,)), ConfChange(REMOVE, 4)) == THREE


def test_adding_a_voter_as_a_learner_never_demotes_it():
    assert next_conf(THREE, ConfChange(ADD, 2)) == THREE


def test_next_conf_leaves_its_input_alone_and_sorts_members():
    conf = ConfState((3, 1, 2), ())
    assert next_conf(conf, ConfChange(ADD, 9)) == ConfState((1, 2, 3), (9,))
    assert conf == ConfState((3, 1, 2), ())


@pytest.mark.parametrize("cc, why", [
    (ConfChange(ADD, 2), "already a member"),
    (ConfChange(PROMOTE, 2), "not a learner"),
    (ConfChange(PROMOTE, 9), "not a learner"),
    (ConfChange(REMOVE, 9), "not a member"),
    (ConfChange(7, 2), "unknown"),
])
def test_a_change_that_makes_no_sense_is_refused_before_it_is_proposed(cc, why):
    with pytest.raises(ValueError, match=why):
        check(THREE, cc)


def test_the_last_voter_cannot_be_removed():
    with pytest.raises(ValueError, match="last voter"):
        check(ConfState((1,), (2,)), ConfChange(REMOVE, 1))
    check(ConfState((1,), (2,)), ConfChange(REMOVE, 2))     # its learner can


def test_an_applied_entry_installs_the_configuration_the_leader_recorded():
    # the recorded result wins over the applier's own view: a node that joined later
    # learns every member, even those only in the bootstrap configuration
    cc = ConfChange(ADD, 4, b"", (1, 2, 3), (4,))
    assert applied_conf(ConfState((1,), ()), cc) == ConfState((1, 2, 3), (4,))


def test_an_entry_without_a_recorded_configuration_applies_the_change():
    assert applied_conf(THREE, ConfChange(REMOVE, 3)) == ConfState((1, 2), ())


def test_proposer_and_applier_agree():
    # the leader records next_conf; applying that record gives what next_conf gives
    for conf, cc in [(THREE, ConfChange(ADD, 4)), (ConfState((1, 2), (4,)), ConfChange(PROMOTE, 4)),
                     (THREE, ConfChange(REMOVE, 1))]:
        nxt = next_conf(conf, cc)
        recorded = ConfChange(cc.type, cc.node_id, b"", nxt.voters, nxt.learners)
        assert applied_conf(conf, recorded) == applied_conf(conf, cc) == nxt
