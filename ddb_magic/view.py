"""A backend-neutral picture of a cluster at one moment, and the event timeline.

Both the real cluster (LocalCluster / attached) and the simulated one are turned into a
`ClusterView`; `picture.py` draws it.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

ROLE_NAMES = {"LEADER": "leader", "FOLLOWER": "follower", "CANDIDATE": "candidate",
              "PRE_CANDIDATE": "pre-candidate", "PRECANDIDATE": "pre-candidate"}


def norm_role(role) -> str | None:
    if role is None:
        return None
    r = str(role)
    return ROLE_NAMES.get(r.upper().replace("-", "_"), r.lower().replace("_", "-"))


@dataclass
class NodeView:
    id: int
    state: str = "up"                 # up, paused, killed, stopped, removed, unreachable
    role: str | None = None           # leader, follower, candidate, pre-candidate
    term: int | None = None
    commit: int | None = None
    applied: int | None = None
    last_index: int | None = None
    leader: int | None = None
    learner: bool = False
    note: str = ""

    @property
    def alive(self) -> bool:
        return self.state == "up"


@dataclass
class LinkView:
    a: int
    b: int
    state: str = "ok"                 # ok, cut, one-way, down
    lossy: float = 0.0                # drop rate
    delay_ms: float = 0.0
    jitter_ms: float = 0.0
    inflight: list = field(default_factory=list)   # (src, dst, label, fraction) for the simulator

    @property
    def label(self) -> str:
        parts = []
        if self.state == "cut":
            parts.append("cut")
        elif self.state == "one-way":
            parts.append("one-way cut")
        if self.lossy:
            parts.append(f"drop {self.lossy:.0%}")
        if self.delay_ms or self.jitter_ms:
            parts.append(f"+{self.delay_ms:g}ms" + (f" ±{self.jitter_ms:g}" if self.jitter_ms else ""))
        if self.inflight:
            parts.append(f"{len(self.inflight)} in flight")
        return ", ".join(parts)


@dataclass
class ClusterView:
    name: str
    kind: str                          # local, attached, sim
    nodes: list[NodeView]
    links: list[LinkView]
    events: list = field(default_factory=list)     # (seconds since launch, text)
    clock: str = ""                    # "t=123.4ms" for the simulator
    faults: str = ""

    @property
    def leader(self) -> int | None:
        best = None
        for n in self.nodes:
            if n.alive and n.role == "leader" and (best is None or (n.term or 0) > (best.term or 0)):
                best = n
        return best.id if best else None

    def node(self, i: int) -> NodeView | None:
        for n in self.nodes:
            if n.id == i:
                return n
        return None


class Timeline:
    """Events since launch: faults (recorded when a magic injects them) and elections and
    term changes (noticed whenever the cluster is looked at)."""

    def __init__(self, clock=None):
        self.clock = clock or time.monotonic
        self.t0 = self.clock()
        self.events: list[tuple[float, str]] = []
        self._last: dict[int, tuple] = {}

    def add(self, text: str, at: float | None = None) -> None:
        t = (self.clock() if at is None else at) - self.t0
        self.events.append((t, text))

    def observe(self, view: ClusterView, at: float | None = None) -> None:
        for n in view.nodes:
            prev = self._last.get(n.id)
            cur = (n.state, n.role, n.term)
            if prev is not None and prev != cur:
                pstate, prole, pterm = prev
                if n.state == "up" and pstate == "up":
                    if n.role == "leader" and prole != "leader":
                        self.add(f"term {n.term}: n{n.id} became leader", at)
                    elif prole == "leader" and n.role != "leader":
                        self.add(f"term {n.term}: n{n.id} stepped down ({n.role})", at)
                    elif n.role == "candidate" and prole != "candidate":
                        self.add(f"term {n.term}: n{n.id} campaigns", at)
                    elif pterm is not None and n.term is not None and n.term > pterm \
                            and n.role == "follower":
                        pass   # a follower learning the new term is part of the election above
            elif prev is None and n.role == "leader" and not self._last:
                pass
            self._last[n.id] = cur
        if not any(e[1].startswith("term") for e in self.events):
            lid = view.leader
            if lid is not None:
                self.add(f"term {view.node(lid).term}: n{lid} is leader", at)

    def recent(self, k: int = 8) -> list[tuple[float, str]]:
        return self.events[-k:]
