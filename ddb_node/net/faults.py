"""Fault filters on the peer transport, with the simulator's vocabulary.

Each node filters its own outgoing *and* incoming peer messages, so a fault set on any
one side of a link is enough to cut it. The controller (LocalCluster, the magics, the
dashboard) usually sends the same command to every node. All state is plain data so it can
be shown in `status()` and set through the admin request.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class FaultState:
    blocked: set = field(default_factory=set)         # {(src, dst)} directed links that are cut
    drop_rate: float = 0.0
    drop_every: int = 0                                 # drop every n-th message (0: off)
    link_drop: dict = field(default_factory=dict)       # {(src, dst): rate}
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    reorder_rate: float = 0.0                           # extra random delay on this share
    duplicate_rate: float = 0.0
    isolated: int = 0                                   # node id isolated, for display

    def describe(self) -> dict:
        return {
            # isolate adds ("*", n) wildcards: sort them first, never compare str with int
            "blocked": sorted([list(p) for p in self.blocked],
                              key=lambda p: [-1 if x == "*" else x for x in p]),
            "drop_rate": self.drop_rate, "drop_every": self.drop_every,
            "link_drop": {f"{a}-{b}": r for (a, b), r in sorted(self.link_drop.items())},
            "delay_ms": self.delay_ms, "jitter_ms": self.jitter_ms,
            "reorder_rate": self.reorder_rate, "duplicate_rate": self.duplicate_rate,
            "isolated": self.isolated,
        }

    def active(self) -> bool:
        return bool(self.blocked or self.drop_rate or self.drop_every or self.link_drop
                    or self.delay_ms or self.jitter_ms or self.reorder_rate or self.duplicate_rate)


class FaultFilter:
    """Decides the fate of each peer message: dropped, delivered (after a delay), or twice."""

    def __init__(self, node_id: int, rng: random.Random | None = None):
        self.node_id = node_id
        self.rng = rng or random.Random()
        self.state = FaultState()
        self.counter = 0
        self.dropped = 0

    # ---- commands (same names as the simulator's) ------------------------------------
    def apply(self, cmd: dict) -> dict:
        """Apply one admin command; raises ValueError with a clear message on bad input."""
        action = cmd.get("action")
        s = self.state
        if action == "heal":
            self.state = FaultState()
        elif action == "partition":
            groups = [set(_ids(g)) for g in cmd.get("groups") or []]
            if len(groups) < 2:
                raise ValueError("partition needs at least two groups, e.g. [[1,2],[3]]")
            all_ids = set().union(*groups)
            s.blocked = {(a, b) for a in all_ids for b in all_ids
                         if a != b and not any(a in g and b in g for g in groups)}
            s.isolated = 0
        elif action == "isolate":
            node = _id(cmd.get("node"))
            peers = set(_ids(cmd.get("peers") or []))
            s.blocked = {(node, p) for p in peers if p != node} | {(p, node) for p in peers if p != node}
            s.blocked |= {("*", node), (node, "*")}
            s.isolated = node
        elif action == "cut":
            a, b = _id(cmd.get("a")), _id(cmd.get("b"))
            s.blocked.add((a, b))
            if cmd.get("both", True):
                s.blocked.add((b, a))
        elif action == "drop":
            rate = float(cmd.get("rate", 0.0))
            if not 0.0 <= rate <= 1.0:
                raise ValueError("drop rate must be between 0 and 1")
            link = cmd.get("link")
            if link:
                a, b = _ids(link)
                s.link_drop[(a, b)] = rate
                s.link_drop[(b, a)] = rate
            else:
                s.drop_rate = rate
            every = int(cmd.get("every", 0) or 0)
            if every < 0:
                raise ValueError("every must be >= 0")
            if every or "every" in cmd:
                s.drop_every = every
        elif action == "delay":
            ms, jitter = float(cmd.get("ms", 0)), float(cmd.get("jitter", 0))
            if ms < 0 or jitter < 0 or ms > 60_000 or jitter > 60_000:
                raise ValueError("delay and jitter must be between 0 and 60000 ms")
            s.delay_ms, s.jitter_ms = ms, jitter
        elif action == "reorder":
            s.reorder_rate = _rate(cmd.get("rate", 0.0))
        elif action == "duplicate":
            s.duplicate_rate = _rate(cmd.get("rate", 0.0))
        else:
            raise ValueError(f"unknown fault action {action!r}; use partition, isolate, cut, "
                             "drop, delay, reorder, duplicate or heal")
        return self.state.describe()

    # ---- per message ------------------------------------------------------------------
    def blocked(self, src: int, dst: int) -> bool:
        b = self.state.blocked
        return bool(b) and ((src, dst) in b or (src, "*") in b or ("*", dst) in b)

    def outgoing(self, dst: int) -> list[float]:
        """Delays in seconds at which to deliver a message to dst ([] drops it)."""
        s = self.state
        if not s.active():
            return [0.0]
        if self.blocked(self.node_id, dst):
            self.dropped += 1
            return []
        self.counter += 1
        if s.drop_every and self.counter % s.drop_every == 0:
            self.dropped += 1
            return []
        rate = s.link_drop.get((self.node_id, dst), s.drop_rate)
        if rate and self.rng.random() < rate:
            self.dropped += 1
            return []
        delay = s.delay_ms / 1000.0
        if s.jitter_ms:
            delay += self.rng.uniform(0, s.jitter_ms) / 1000.0
        if s.reorder_rate and self.rng.random() < s.reorder_rate:
            delay += self.rng.uniform(0, max(s.delay_ms, 20.0)) / 1000.0
        delays = [delay]
        if s.duplicate_rate and self.rng.random() < s.duplicate_rate:
            delays.append(delay + self.rng.uniform(0, 0.01))
        return delays

    def incoming_ok(self, src: int) -> bool:
        if self.blocked(src, self.node_id):
            self.dropped += 1
            return False
        return True


def _id(v) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
        raise ValueError(f"bad node id {v!r}")
    return v


def _ids(vs) -> list[int]:
    if isinstance(vs, str):
        vs = [int(x) for x in vs.replace("-", ",").split(",") if x.strip()]
    if not isinstance(vs, (list, tuple)):
        raise ValueError(f"bad node list {vs!r}")
    return [_id(v) for v in vs]


def _rate(v) -> float:
    r = float(v)
    if not 0.0 <= r <= 1.0:
        raise ValueError("rate must be between 0 and 1")
    return r
