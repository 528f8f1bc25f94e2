"""Client histories: invocations and completions, as a linearizability checker wants them.

An operation is invoked at a virtual time and completes later with one of:
    ok       it happened, with this output
    fail     it certainly did not happen (e.g. the node said "not the leader")
    info     unknown: it may have happened, at any time after its invocation
             (Jepsen's vocabulary; a write whose node crashed before answering)
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

OK, FAIL, INFO = "ok", "fail", "info"


@dataclass(slots=True)
class Op:
    id: int
    client: int
    kind: str                 # "read" | "write" | "cas"
    key: str
    value: object = None      # write: the value; cas: the new value
    expected: object = None   # cas: the expected value
    call: float = 0.0
    ret: float = math.inf
    status: str | None = None  # None while pending
    output: object = None     # read: the value read; cas: True/False
    node: int = 0             # node the client talked to
    index: int = 0            # log index the write was proposed at (if any)
    note: str = ""

    def describe(self) -> str:
        if self.kind == "read":
            what = f"read({self.key}) -> {self.output!r}"
        elif self.kind == "write":
            what = f"write({self.key}, {self.value!r})"
        else:
            what = f"cas({self.key}, {self.expected!r} -> {self.value!r}) -> {self.output!r}"
        ret = "∞" if self.ret == math.inf else f"{self.ret:.2f}"
        return f"#{self.id} c{self.client} {what} [{self.call:.2f}, {ret}] {self.status}" + \
            (f" ({self.note})" if self.note else "")


@dataclass
class History:
    ops: list[Op] = field(default_factory=list)

    def invoke(self, client: int, kind: str, key: str, time: float, value=None,
               expected=None, node: int = 0) -> Op:
        op = Op(len(self.ops) + 1, client, kind, key, value, expected, call=time, node=node)
        self.ops.append(op)
        return op

    def complete(self, op: Op, status: str, time: float, output=None, note: str = "") -> None:
        if op.status is not None:
            raise AssertionError(f"operation completed twice: {op.describe()}")
        op.status = status
        op.output = output
        op.note = note
        op.ret = time if status != INFO else math.inf

    def pending(self) -> list[Op]:
        return [op for op in self.ops if op.status is None]

    def counts(self) -> dict:
        c: dict = {}
        for op in self.ops:
            k = f"{op.kind}:{op.status}"
            c[k] = c.get(k, 0) + 1
        return c
