"""Specification of the client's routing engine (ddb_node/routing.py): the pure decisions
`Client` and `AsyncClient` share. Each test scripts the outcomes of the steps and checks the
steps the route asks for, on a fake clock: no cluster, no sockets, no sleeping."""
from __future__ import annotations

import random

import pytest

from ddb_node.errors import BadRequest, ConnectionFailed, NodeDown, Timeout
from ddb_node.routing import (AwaitSuccessor, ClusterView, LeaderMoved, Refresh, Send, Sleep,
                              route)

A, B, C = "tcp://a:1", "tcp://b:1", "tcp://c:1"


class Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def ok(node: int, term: int = 2) -> dict:
    return {"ok": True, "node": node, "term": term, "results": []}


def error(kind: str, **extra) -> dict:
    return {"ok": False, "error": dict({"type": kind, "message": kind}, **extra)}


def view3(leader: int | None = 1) -> ClusterView:
    return ClusterView([A], {1: A, 2: B, 3: C}, leader, 2)


def drive(gen, outcomes, clock: Clock | None = None, down=()):
    """Run `gen`, answering each step from `outcomes` (a function of the step or a value);
    return (the steps seen, the result). Sleeps advance the clock."""
    steps, outcome = [], None
    script = list(outcomes)
    while True:
        try:
            step = gen.send(outcome)
        except StopIteration as done:
            return steps, done.value
        steps.append(step)
        if isinstance(step, Sleep) and clock is not None:
            clock.t += step.seconds
        if isinstance(step, Send):
            nxt = script.pop(0)
            outcome = nxt(step) if callable(nxt) else nxt
            if clock is not None:
                clock.t += 0.001
        else:
            outcome = None
            if script and isinstance(script[0], tuple) and script[0][0] == type(step).__name__:
                script.pop(0)[1](step)


def new_route(view, clock=None, *, to_leader=True, down=(), timeout=5.0, **kw):
    return route(view, {"op": "request"}, to_leader=to_leader, timeout=timeout,
                 attempt_timeout=1.0, now=clock or Clock(), is_down=lambda a: a in down,
                 rng=random.Random(7), **kw)


def sends(steps) -> list[str]:
    return [s.addr for s in steps if isinstance(s, Send)]


def test_a_write_goes_to_the_known_leader_with_a_short_attempt():
    view = view3()
    steps, reply = drive(new_route(view), [ok(1)])
    assert sends(steps) == [A] and reply["node"] == 1
    send = steps[0]
    assert send.watch_leader and send.body["timeout"] == 1.0 and send.timeout == 1.5


def test_without_members_the_route_first_asks_the_cluster():
    view = ClusterView([A, B])

    def learned(step):
        view.learn({1: A, 2: B}, 2, 3)
    steps, _ = drive(new_route(view), [("Refresh", learned), ok(2)])
    assert isinstance(steps[0], Refresh) and sends(steps) == [B]


def test_not_leader_with_a_hint_goes_to_the_hint_at_once():
    view = view3(leader=2)
    hint = {"id": 3, "client": "c:1"}
    steps, reply = drive(new_route(view), [error("NotLeader", leader=hint), ok(3)])
    assert sends(steps) == [B, C] and not any(isinstance(s, Sleep) for s in steps)
    assert view.leader == 3 and reply["node"] == 3


def test_not_leader_without_a_hint_backs_off_before_asking_again():
    steps, _ = drive(new_route(view3()), [error("NotLeader"), ok(2)])
    assert isinstance(steps[1], Sleep) and steps[1].seconds == 0.05


def test_a_dead_leader_is_replaced_by_its_successor_not_waited_for():
    """Its connection dropped (NodeDown): wait for the election, then go to the winner."""
    view = view3()

    def elected(step):
        view.learn(view.members, 2, 3)
    steps, reply = drive(new_route(view), [NodeDown("a died"), ("AwaitSuccessor", elected), ok(2)])
    kinds = [type(s).__name__ for s in steps]
    assert kinds == ["Send", "AwaitSuccessor", "Send"]
    assert steps[1].dead == A and steps[1].wait == 1.0
    assert sends(steps) == [A, B] and reply["node"] == 2


def test_a_known_dead_leader_is_not_even_tried():
    view = view3()

    def elected(step):
        view.learn(view.members, 3, 3)
    steps, _ = drive(new_route(view, down={A}), [("AwaitSuccessor", elected), ok(3)])
    assert isinstance(steps[0], AwaitSuccessor) and sends(steps) == [C]


def test_a_leader_replaced_while_we_waited_sends_us_to_the_new_one_without_pause():
    view = view3()

    def moved(step):
        view.learn(view.members, 2, 3)
        return LeaderMoved("node 2 leads at term 3")
    steps, _ = drive(new_route(view), [moved, ok(2)])
    assert [type(s).__name__ for s in steps] == ["Send", "Send"] and sends(steps) == [A, B]


def test_no_answer_in_time_backs_off_and_refreshes_avoiding_that_node():
    view = view3()
    steps, _ = drive(new_route(view), [ConnectionFailed("no answer"), ok(2)])
    assert [type(s).__name__ for s in steps[:3]] == ["Send", "Sleep", "Refresh"]
    assert steps[2].avoid == A and view.leader in (None, 2)


def test_retryable_errors_back_off_doubling_to_one_second():
    view = view3()
    outcomes = [error("NoLeader")] * 6 + [ok(1)]
    steps, _ = drive(new_route(view, timeout=30.0), outcomes, clock=Clock())
    assert [s.seconds for s in steps if isinstance(s, Sleep)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0]
    assert sum(isinstance(s, Refresh) for s in steps) >= 6


def test_an_error_retrying_cannot_fix_is_the_answer():
    with pytest.raises(BadRequest, match="BadRequest"):
        drive(new_route(view3()), [error("BadRequest")])


def test_the_deadline_ends_the_route_with_a_timeout_whose_outcome_is_unknown():
    """Nodes that did not answer: a Timeout (a write may or may not have been applied)."""
    clock = Clock()
    with pytest.raises(Timeout, match="outcome is unknown"):
        drive(new_route(view3(), clock, timeout=0.5), [ConnectionFailed("late")] * 50, clock=clock)


def test_at_the_deadline_a_node_that_kept_refusing_gives_its_own_error():
    from ddb_node.errors import Unavailable
    clock = Clock()
    with pytest.raises(Unavailable):
        drive(new_route(view3(), clock, timeout=0.5), [error("Unavailable")] * 50, clock=clock)


def test_reads_at_level_none_go_to_a_live_node_of_any_role():
    view = view3()
    steps, _ = drive(new_route(view, to_leader=False, down={A, B}), [ok(3)])
    assert sends(steps) == [C] and not steps[0].watch_leader


def test_redirect_mode_asks_followers_for_a_hint_instead_of_forwarding():
    steps, _ = drive(new_route(view3(), redirect=True), [ok(1)])
    assert steps[0].body["redirect"] is True
    steps, _ = drive(new_route(view3(), to_leader=False, redirect=True), [ok(1)])
    assert "redirect" not in steps[0].body


def test_an_answer_from_a_leader_we_do_not_know_makes_us_learn_the_members():
    view = ClusterView([A], {1: A}, None, 1)
    steps, _ = drive(new_route(view), [ok(4)])
    assert isinstance(steps[-1], Refresh) and steps[-1].prefer == A


def test_every_wire_error_type_has_its_client_exception():
    """One vocabulary: what a node may answer (protocol.ERROR_TYPES) the client raises as
    its own class, keeping the wire error it came from."""
    from ddb_node import errors, protocol
    assert set(errors.ERROR_TYPES) == set(protocol.ERROR_TYPES)
    for kind in protocol.ERROR_TYPES:
        exc = errors.from_reply({"type": kind, "message": "m"})
        assert type(exc) is errors.ERROR_TYPES[kind] and exc.wire["type"] == kind
