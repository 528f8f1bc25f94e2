"""The simulator's agenda: a priority queue of events on virtual time.

Events are ordered by (time, sequence number); the sequence number is assigned at
scheduling time, so two events due at the same instant fire in the order they were
scheduled. That makes the whole run a pure function of the seed.

Cancellation is lazy (an event is flagged and skipped when popped), which keeps
scheduling and cancelling O(log n) / O(1).
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

TICK = "tick"
DELIVER = "deliver"
PERSIST = "persist"


@dataclass(slots=True, eq=False)
class Event:
    time: float
    seq: int
    kind: str            # TICK, DELIVER or PERSIST
    node: int            # the node the event happens on (the receiver for DELIVER)
    payload: Any = None  # Envelope for DELIVER, Ready for PERSIST
    incarnation: int = 0
    cancelled: bool = False

    def __lt__(self, other: "Event") -> bool:  # heapq only needs <
        return (self.time, self.seq) < (other.time, other.seq)

    def describe(self) -> str:
        if self.kind == DELIVER:
            env = self.payload
            return f"t={self.time:.3f} deliver {env.describe()}"
        return f"t={self.time:.3f} {self.kind} n{self.node}"


@dataclass
class EventQueue:
    _heap: list = field(default_factory=list)
    _seq: int = 0
    _live: int = 0

    def schedule(self, time: float, kind: str, node: int, payload: Any = None,
                 incarnation: int = 0) -> Event:
        self._seq += 1
        ev = Event(time, self._seq, kind, node, payload, incarnation)
        heapq.heappush(self._heap, ev)
        self._live += 1
        return ev

    def cancel(self, ev: Event) -> None:
        if not ev.cancelled:
            ev.cancelled = True
            self._live -= 1

    def pop(self) -> Event | None:
        heap = self._heap
        while heap:
            ev = heapq.heappop(heap)
            if not ev.cancelled:
                self._live -= 1
                return ev
        return None

    def peek(self) -> Event | None:
        heap = self._heap
        while heap and heap[0].cancelled:
            heapq.heappop(heap)
        return heap[0] if heap else None

    def take(self, pred: Callable[[Event], bool]) -> Event | None:
        """Remove and return the earliest live event matching pred (O(n); for
        single-stepping one node by hand)."""
        best = None
        for ev in self._heap:
            if not ev.cancelled and pred(ev) and (best is None or ev < best):
                best = ev
        if best is not None:
            self.cancel(best)
        return best

    def __iter__(self) -> Iterator[Event]:
        return (ev for ev in sorted(self._heap) if not ev.cancelled)

    def __len__(self) -> int:
        return self._live
