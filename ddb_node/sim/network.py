"""The simulated network: who can reach whom, and what happens to each message.

The fault vocabulary is the one the real transport (ddb_node.net) and the magics use:

    partition(groups)      nodes in different groups cannot talk; nodes named in no
                           group form one more group together
    isolate(i)             i can reach nobody and nobody reaches i
    cut(a, b, both=False)  messages a -> b are lost (and b -> a with both=True)
    heal()                 undo partition / isolate / cut (connectivity only)
    drop(rate=, every=, link=, count=)
                           lose messages at random (rate), or every n-th one, on
                           every link or one directed link; count bounds how many
    drop_next(link=, type=, count=1)
                           lose the next matching message(s): "one chosen message"
    delay(ms=, ticks=, jitter=, link=)
                           add latency (fixed + uniform jitter)
    reorder(rate, window_ms)  give a fraction of messages extra random latency,
                           so later messages overtake them
    duplicate(rate)        deliver a fraction of messages twice
    clear()                remove drop/delay/reorder/duplicate rules; reset() = heal + clear

The network decides at send time (`route`), producing zero, one or two Envelopes
with delivery times. Connectivity is checked again at delivery time, so a partition
that starts while a message is in flight loses it, as a broken TCP connection would.
All randomness comes from the rng handed in by the simulator.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from ddb_node.raft.types import Message, MsgType


@dataclass(slots=True, eq=False)
class ClientMessage:
    """A client request or its answer on the simulated network: a follower forwarding to
    its leader (and the answer back), or a client's request reaching a node. The same
    fields the routing reads of a Raft Message (type, to, frm)."""
    REQUEST = "CLIENT_REQUEST"
    RESPONSE = "CLIENT_RESPONSE"

    type: str
    to: int
    frm: int
    token: object          # request: the sender's id for it; response: the same id back
    body: dict
    term: int = 0

    def __repr__(self) -> str:
        what = self.body.get("op") if self.type == self.REQUEST else \
            ("ok" if self.body.get("ok") else (self.body.get("error") or {}).get("type"))
        return f"{self.type}({self.frm}->{self.to} {what})"


@dataclass(slots=True, eq=False)
class Envelope:
    msg: Message
    src: int
    dst: int
    sent_at: float
    deliver_at: float
    seq: int = 0
    duplicate: bool = False
    dropped: bool = False
    reason: str = ""

    def drop(self, reason: str = "hook") -> None:
        self.dropped = True
        self.reason = reason

    def delay(self, ms: float) -> None:
        self.deliver_at += ms

    def describe(self) -> str:
        return describe_message(self.msg)


def describe_message(m: Message) -> str:
    if isinstance(m, ClientMessage):
        return repr(m)
    try:
        name = MsgType(m.type).name
    except ValueError:
        name = str(m.type)
    s = f"{name} {m.frm}->{m.to} term={m.term}"
    if m.type in (MsgType.APP, MsgType.APP_RESP, MsgType.SNAP, MsgType.SNAP_RESP):
        s += f" idx={m.index}"
    if m.type == MsgType.APP:
        s += f" logterm={m.log_term} n={len(m.entries)} commit={m.commit}"
    if m.reject:
        s += f" reject(hint={m.reject_hint})"
    return s


@dataclass
class DropRule:
    rate: float = 0.0
    every: int = 0
    link: tuple[int, int] | None = None
    type: int | None = None
    count: int | None = None      # remaining drops; None = unbounded
    seen: int = 0

    def matches(self, env: Envelope) -> bool:
        if self.link is not None and (env.src, env.dst) != self.link:
            return False
        return self.type is None or env.msg.type == self.type


@dataclass
class DelayRule:
    ms: float
    jitter: float = 0.0
    link: tuple[int, int] | None = None


@dataclass
class NetworkStats:
    sent: int = 0
    delivered: int = 0
    dropped: int = 0
    duplicated: int = 0
    reordered: int = 0


@dataclass
class Network:
    rng: random.Random
    latency_ms: tuple[float, float] = (0.5, 2.0)   # base one-way latency, uniform
    tick_ms: float = 10.0
    groups: list[frozenset] | None = None
    isolated: set = field(default_factory=set)
    cuts: set = field(default_factory=set)
    drops: list[DropRule] = field(default_factory=list)
    delays: list[DelayRule] = field(default_factory=list)
    reorder_rate: float = 0.0
    reorder_window_ms: float = 0.0
    duplicate_rate: float = 0.0
    stats: NetworkStats = field(default_factory=NetworkStats)

    # ---- connectivity --------------------------------------------------------
    def partition(self, groups) -> None:
        self.groups = [frozenset(g) for g in groups]

    def isolate(self, node: int) -> None:
        self.isolated.add(node)

    def cut(self, a: int, b: int, both: bool = False) -> None:
        self.cuts.add((a, b))
        if both:
            self.cuts.add((b, a))

    def heal(self) -> None:
        self.groups = None
        self.isolated.clear()
        self.cuts.clear()

    def _group_of(self, node: int):
        for g in self.groups:
            if node in g:
                return g
        return None  # the implicit group of nodes named nowhere

    def reachable(self, a: int, b: int) -> bool:
        if a == b:
            return True
        if a in self.isolated or b in self.isolated or (a, b) in self.cuts:
            return False
        if self.groups is not None and self._group_of(a) != self._group_of(b):
            return False
        return True

    # ---- message faults ------------------------------------------------------
    def drop(self, rate: float = 0.0, every: int = 0, link: tuple[int, int] | None = None,
             type: int | None = None, count: int | None = None) -> DropRule:
        rule = DropRule(rate=rate, every=every, link=tuple(link) if link else None,
                        type=type, count=count)
        self.drops.append(rule)
        return rule

    def drop_next(self, link: tuple[int, int] | None = None, type: int | None = None,
                  count: int = 1) -> DropRule:
        return self.drop(rate=1.0, link=link, type=type, count=count)

    def delay(self, ms: float = 0.0, ticks: float = 0.0, jitter: float = 0.0,
              link: tuple[int, int] | None = None) -> DelayRule:
        rule = DelayRule(ms + ticks * self.tick_ms, jitter, tuple(link) if link else None)
        self.delays.append(rule)
        return rule

    def reorder(self, rate: float = 0.3, window_ms: float | None = None) -> None:
        self.reorder_rate = rate
        self.reorder_window_ms = window_ms if window_ms is not None else 2 * self.tick_ms

    def duplicate(self, rate: float = 0.1) -> None:
        self.duplicate_rate = rate

    def clear(self) -> None:
        self.drops.clear()
        self.delays.clear()
        self.reorder_rate = self.reorder_window_ms = self.duplicate_rate = 0.0

    def reset(self) -> None:
        self.heal()
        self.clear()

    def describe(self) -> str:
        parts = []
        if self.groups is not None:
            parts.append("partition " + " | ".join(
                ",".join(map(str, sorted(g))) for g in self.groups))
        if self.isolated:
            parts.append("isolated " + ",".join(map(str, sorted(self.isolated))))
        if self.cuts:
            parts.append("cut " + ",".join(f"{a}->{b}" for a, b in sorted(self.cuts)))
        for r in self.drops:
            parts.append(f"drop(rate={r.rate}, every={r.every}, link={r.link}, count={r.count})")
        for d in self.delays:
            parts.append(f"delay({d.ms}ms ±{d.jitter}, link={d.link})")
        if self.reorder_rate:
            parts.append(f"reorder({self.reorder_rate})")
        if self.duplicate_rate:
            parts.append(f"duplicate({self.duplicate_rate})")
        return "; ".join(parts) or "healthy"

    # ---- routing -------------------------------------------------------------
    def route(self, msg: Message, now: float) -> list[Envelope]:
        """Decide the fate of one message sent now: the envelopes to deliver (each
        possibly already marked dropped, so hooks still see it)."""
        rng = self.rng
        src, dst = msg.frm, msg.to
        lo, hi = self.latency_ms
        env = Envelope(msg, src, dst, now, now + lo + (hi - lo) * rng.random())
        self.stats.sent += 1
        if not self.reachable(src, dst):
            env.drop("unreachable")
        else:
            for rule in self.drops:
                if rule.count is not None and rule.count <= 0:
                    continue
                if not rule.matches(env):
                    continue
                rule.seen += 1
                hit = (rule.every and rule.seen % rule.every == 0) or \
                      (rule.rate and rng.random() < rule.rate)
                if hit:
                    if rule.count is not None:
                        rule.count -= 1
                    env.drop("drop rule")
                    break
        for d in self.delays:
            if d.link is None or d.link == (src, dst):
                env.deliver_at += d.ms + (d.jitter * rng.random() if d.jitter else 0.0)
        if self.reorder_rate and rng.random() < self.reorder_rate:
            env.deliver_at += self.reorder_window_ms * rng.random()
            self.stats.reordered += 1
        out = [env]
        if not env.dropped and self.duplicate_rate and rng.random() < self.duplicate_rate:
            dup = Envelope(msg, src, dst, now, env.deliver_at + (hi - lo + 1.0) * rng.random(),
                           duplicate=True)
            out.append(dup)
            self.stats.duplicated += 1
        return out
