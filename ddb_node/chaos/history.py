"""The history of one run: every operation's invocation and completion, and every fault.

Times are `time.monotonic()` seconds since the start of the run. Completion types follow
Jepsen: `ok` (it happened, with this output), `fail` (it certainly did not happen), `info`
(unknown: a write that timed out may or may not have taken effect, at any time after its
invocation). The file is JSON lines: one `invoke` and one completion event per operation,
one `fault` / `heal` event per nemesis step, in the order they happened.
"""
from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import asdict, dataclass, field

OK, FAIL, INFO = "ok", "fail", "info"


@dataclass
class ChaosOp:
    id: int
    process: int
    workload: str
    f: str                       # read | write | cas | transfer | append | stale-read ...
    key: object = None
    value: object = None
    expected: object = None
    level: str = ""
    invoke: float = 0.0
    complete: float | None = None
    status: str | None = None    # ok | fail | info (None while pending)
    output: object = None
    node: int | None = None      # node that answered
    index: int | None = None     # log / applied index in the answer
    error: str = ""

    @property
    def is_write(self) -> bool:
        return self.f not in ("read", "stale-read")

    @property
    def latency(self) -> float | None:
        return None if self.complete is None else self.complete - self.invoke


@dataclass
class FaultEvent:
    id: int
    nemesis: str
    start: float
    end: float | None = None
    detail: dict = field(default_factory=dict)
    targets_leader: bool = False   # the fault took away the leader (kill/pause/isolate/minority)
    requested: float | None = None   # when the nemesis started injecting it
    error: str = ""


class History:
    """Thread-safe recorder shared by every client thread and the nemesis."""

    def __init__(self, t0: float | None = None):
        self.t0 = time.monotonic() if t0 is None else t0
        self.ops: list[ChaosOp] = []
        self.faults: list[FaultEvent] = []
        self.events: list[dict] = []     # the file's lines, in order
        self._lock = threading.Lock()
        self._ids = itertools.count(1)
        self._fids = itertools.count(1)

    def now(self) -> float:
        return time.monotonic() - self.t0

    def invoke(self, process: int, workload: str, f: str, key=None, value=None, expected=None,
               level: str = "") -> ChaosOp:
        with self._lock:
            op = ChaosOp(next(self._ids), process, workload, f, key, value, expected, level,
                         invoke=self.now())
            self.ops.append(op)
            self.events.append({"type": "invoke", "id": op.id, "process": process,
                                "workload": workload, "f": f, "key": key, "value": value,
                                "expected": expected, "level": level, "time": op.invoke})
        return op

    def complete(self, op: ChaosOp, status: str, output=None, *, node=None, index=None,
                 error: str = "") -> None:
        with self._lock:
            if op.status is not None:
                raise AssertionError(f"operation {op.id} completed twice")
            op.complete = self.now()
            op.status, op.output, op.node, op.index, op.error = status, output, node, index, error
            self.events.append({"type": status, "id": op.id, "process": op.process,
                                "workload": op.workload, "f": op.f, "key": op.key,
                                "output": _jsonable(output), "node": node, "index": index,
                                "error": error, "time": op.complete})

    def fault_start(self, nemesis: str, detail: dict, targets_leader: bool = False) -> FaultEvent:
        with self._lock:
            ev = FaultEvent(next(self._fids), nemesis, self.now(), detail=detail,
                            targets_leader=targets_leader)
            self.faults.append(ev)
            self.events.append({"type": "fault", "fault": ev.id, "nemesis": nemesis,
                                "detail": _jsonable(detail), "targets_leader": targets_leader,
                                "time": ev.start})
        return ev

    def fault_update(self, ev: FaultEvent, detail: dict, targets_leader: bool) -> None:
        """Fill in what the injection did (the fault starts before the call that makes it)."""
        with self._lock:
            ev.detail, ev.targets_leader = detail, targets_leader
            ev.requested, ev.start = ev.start, self.now()   # in effect from now on
            for e in reversed(self.events):
                if e.get("type") == "fault" and e.get("fault") == ev.id:
                    e["detail"], e["targets_leader"] = _jsonable(detail), targets_leader
                    e["requested"], e["time"] = ev.requested, ev.start
                    break

    def fault_end(self, ev: FaultEvent, error: str = "") -> None:
        with self._lock:
            ev.end = self.now()
            ev.error = error
            self.events.append({"type": "heal", "fault": ev.id, "nemesis": ev.nemesis,
                                "error": error, "time": ev.end})

    def note(self, kind: str, **detail) -> None:
        with self._lock:
            self.events.append({"type": "note", "kind": kind, "time": self.now(),
                                **_jsonable(detail)})

    def close_pending(self) -> None:
        """Operations still running when the run ended: their outcome is unknown."""
        for op in list(self.ops):
            if op.status is None:
                self.complete(op, INFO, error="still pending at the end of the run")

    def write(self, path: str) -> None:
        with self._lock, open(path, "w") as f:
            for ev in self.events:
                f.write(json.dumps(ev, default=repr) + "\n")

    @staticmethod
    def read(path: str) -> "History":
        """Rebuild ops and faults from a history file (for re-checking offline)."""
        h = History(0.0)
        by_id: dict[int, ChaosOp] = {}
        faults: dict[int, FaultEvent] = {}
        import gzip
        opener = gzip.open if path.endswith(".gz") else open
        with opener(path, "rt") as f:
            for line in f:
                ev = json.loads(line)
                h.events.append(ev)
                t = ev["type"]
                if t == "invoke":
                    op = ChaosOp(ev["id"], ev["process"], ev["workload"], ev["f"], _key(ev["key"]),
                                 ev.get("value"), ev.get("expected"), ev.get("level", ""),
                                 invoke=ev["time"])
                    by_id[op.id] = op
                    h.ops.append(op)
                elif t in (OK, FAIL, INFO):
                    op = by_id[ev["id"]]
                    op.complete, op.status, op.output = ev["time"], t, ev.get("output")
                    op.node, op.index, op.error = ev.get("node"), ev.get("index"), ev.get("error", "")
                elif t == "fault":
                    fe = FaultEvent(ev["fault"], ev["nemesis"], ev["time"], detail=ev.get("detail") or {},
                                    targets_leader=ev.get("targets_leader", False))
                    faults[fe.id] = fe
                    h.faults.append(fe)
                elif t == "heal":
                    fe = faults.get(ev["fault"])
                    if fe:
                        fe.end, fe.error = ev["time"], ev.get("error", "")
        return h


def _key(k):
    return tuple(k) if isinstance(k, list) else k


def _jsonable(v):
    if isinstance(v, (str, int, float, bool)) or v is None:
        return v
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [_jsonable(x) for x in v]
    try:
        return asdict(v)
    except TypeError:
        return repr(v)
