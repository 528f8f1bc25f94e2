"""Where a client's request goes next, and what each outcome means: one engine for `Client`
and `AsyncClient` (issue 15: the two carried their own retry loops, and they had drifted).

`route()` is a pure generator: it yields steps (ask the cluster, wait for a successor, send
to a node, sleep) and is sent each step's outcome; it returns the reply or raises the error.
No sockets, no sleeping, no clock of its own (the driver's `now` is injected), so a test
drives it with scripted outcomes and a fake clock. The two drivers only perform the steps:
blocking (`Client._send`) or awaiting (`AsyncClient.call`).

What it encodes, learned the hard way (tests/test_client_failover.py):
- Attempts are short (`attempt_timeout`): a dead node must not eat the whole deadline, and
  retrying is safe because writes carry a session (applied at most once).
- A node whose connection dropped is dead, not slow: if it was the leader, wait for the
  successor (a long poll on the others), never for a timeout.
- A slow answer from a live leader is waited for (the driver's attempt watches for a newer
  leader meanwhile and ends with LeaderMoved when one is named).
- NotLeader with a hint goes to the hint at once; without one, back off and ask again.
- Retryable errors (NoLeader, Unavailable, Timeout, `retry`) back off (50 ms doubling to
  1 s) and refresh the view; anything else is the answer.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Callable, Generator

from ddb_node.errors import ConnectionFailed, DdbError, NodeDown, Timeout, from_reply


def norm_addr(a: str) -> str:
    a = a.strip()
    if "://" not in a:
        a = "tcp://" + a
    return a


class LeaderMoved(DdbError):
    """Internal: while we waited on a node, another member named a newer leader."""


@dataclass
class ClusterView:
    """What a client believes about the cluster: members (id -> client address), the leader
    and the highest term it knows a leader of."""
    seeds: list[str]
    members: dict[int, str] = field(default_factory=dict)
    leader: int | None = None
    term: int = 0

    def learn(self, members: dict[int, str], leader: int | None, term: int | None) -> None:
        self.members, self.leader = members, leader
        self.term = max(self.term, term or 0)

    def candidates(self) -> list[str]:
        addrs = list(self.members.values())
        return addrs + [a for a in self.seeds if a not in addrs]

    def leader_addr(self) -> str | None:
        return self.members.get(self.leader) if self.leader is not None else None

    def follow_hint(self, hint: dict | None) -> bool:
        """A NotLeader answer's leader hint: go there next (False: it named none)."""
        if hint and hint.get("id") and hint.get("client"):
            self.members[int(hint["id"])] = norm_addr(hint["client"])
            self.leader = int(hint["id"])
            return True
        self.leader = None
        return False


# ---- the steps a driver performs -----------------------------------------------------------
@dataclass
class Refresh:
    """Ask every known node for members and leader (outcome: None or the ConnectionFailed)."""
    timeout: float
    avoid: str | None = None
    prefer: str | None = None


@dataclass
class AwaitSuccessor:
    """The leader at `dead` is gone: wait up to `wait` until another member names its
    successor (a long poll on each; answered the moment an election is won)."""
    dead: str
    wait: float


@dataclass
class Send:
    """One attempt at `addr` (outcome: the reply dict, or the exception it raised)."""
    addr: str
    body: dict
    timeout: float
    watch_leader: bool


@dataclass
class Sleep:
    seconds: float


RETRYABLE = ("NoLeader", "Unavailable", "Timeout")


def route(view: ClusterView, body: dict, *, to_leader: bool, timeout: float,
          attempt_timeout: float, now: Callable[[], float], is_down: Callable[[str], bool],
          rng: random.Random, redirect: bool = False,
          pick_reader: Callable[[list[str]], str] | None = None) -> Generator:
    """The journey of one request (see the module docstring); returns the ok reply."""
    deadline = now() + timeout
    backoff = 0.05
    last: Exception | None = None
    tried_refresh = False

    def left() -> float:
        return max(0.0, deadline - now())

    def pause():
        nonlocal backoff
        s = min(backoff, left())
        backoff = min(backoff * 2, 1.0)
        return Sleep(s)

    def live() -> list[str]:
        addrs = view.candidates()
        return [a for a in addrs if not is_down(a)] or addrs

    while True:
        if left() <= 0:
            if isinstance(last, Timeout):
                raise last
            if last is None or isinstance(last, (ConnectionFailed, LeaderMoved)):
                raise Timeout(f"no answer within {timeout:g}s; the outcome is unknown"
                              + (f" ({last})" if last else ""))
            raise last
        if not view.members and not tried_refresh:
            tried_refresh = True        # learn the leader and its term: go straight there
            err = yield Refresh(min(left(), 2.0))
            if err is not None:
                last = err
        if to_leader:
            addr = view.leader_addr()
            if addr is not None and is_down(addr):
                yield AwaitSuccessor(addr, max(0.05, min(attempt_timeout, left())))
                addr = view.leader_addr()
            addr = addr or rng.choice(live())
        else:
            addr = (pick_reader or rng.choice)(live())
        attempt = max(0.05, min(left(), attempt_timeout))
        wire = dict(body, timeout=attempt)
        if redirect and to_leader:
            wire["redirect"] = True     # a follower answers NotLeader + hint, no forwarding
        outcome = yield Send(addr, wire, attempt + 0.5, to_leader)

        if isinstance(outcome, LeaderMoved):
            last = outcome              # the members and the new leader are known: go now
            continue
        if isinstance(outcome, NodeDown):
            last = outcome
            if to_leader and addr == view.leader_addr():
                yield AwaitSuccessor(addr, max(0.05, min(attempt_timeout, left())))
            elif len(live()) == len(view.candidates()) or is_down(addr):
                yield pause()           # every node is down (or a fresh socket cannot tell yet)
            continue
        if isinstance(outcome, ConnectionFailed):
            last = outcome
            if to_leader:
                view.leader = None
            tried_refresh = False
            yield pause()
            # the node may have been removed, and the leader may be a node that joined after
            # our last refresh: without this we would keep trying the dead address
            yield Refresh(min(0.5, max(0.05, left())), avoid=addr)
            continue
        if isinstance(outcome, BaseException):
            raise outcome
        reply = outcome
        if reply.get("ok"):
            node = reply.get("node")
            if to_leader and node is not None and node not in view.members:
                # answered (forwarded) by a leader we do not know: learn the members
                yield Refresh(min(0.5, max(0.05, left())), prefer=addr)
            if to_leader and node in view.members:
                view.leader = node
                if "forwarded_by" not in reply:
                    view.term = max(view.term, reply.get("term") or 0)
            return reply
        err = reply.get("error") or {}
        etype = err.get("type")
        if etype == "NotLeader":
            last = from_reply(err)
            if not view.follow_hint(err.get("leader")):
                yield pause()
            continue                    # follow the hint (in redirect mode too: its point)
        if err.get("retry") or etype in RETRYABLE:
            last = from_reply(err)
            view.leader = None
            tried_refresh = False
            yield pause()
            yield Refresh(min(1.0, max(0.05, left())))
            continue
        raise from_reply(err)
