"""A small deterministic key/value register state machine.

Commands are JSON objects (sorted keys, so the bytes are canonical):
    {"op": "put", "k": key, "v": value, "id": op_id}
    {"op": "cas", "k": key, "old": expected, "v": new, "id": op_id}
    {"op": "get", "k": key, "id": op_id}       (a read through the log)
apply() returns {"ok": bool, "v": value-after-or-read, "prev": value-before}.

The state machine interface the simulator drives (any object with it will do, the
SQL state machine included):
    apply(index, term, data) -> result      data: bytes of a NORMAL entry
    apply_noop(index, term)                  optional: a conf change or empty entry
    snapshot() -> bytes                      state as of applied_index
    restore(data: bytes)                     replace the state with a snapshot's
    applied_index                            int attribute
    durable                                  optional bool: survives a crash as is
"""
from __future__ import annotations

import json


def encode(cmd: dict) -> bytes:
    return json.dumps(cmd, sort_keys=True, separators=(",", ":")).encode()


def decode(data: bytes) -> dict:
    return json.loads(data)


def put(key: str, value, op_id: str) -> bytes:
    return encode({"op": "put", "k": key, "v": value, "id": op_id})


def cas(key: str, old, new, op_id: str) -> bytes:
    return encode({"op": "cas", "k": key, "old": old, "v": new, "id": op_id})


def get(key: str, op_id: str) -> bytes:
    return encode({"op": "get", "k": key, "id": op_id})


class KVStateMachine:
    durable = False  # lives in memory: a crash loses it, restart restores the snapshot

    def __init__(self) -> None:
        self.data: dict[str, object] = {}
        self.applied_index = 0
        self.applied_term = 0

    def apply(self, index: int, term: int, data: bytes):
        self._advance(index, term)
        cmd = decode(data)
        op, key = cmd["op"], cmd["k"]
        prev = self.data.get(key)
        if op == "put":
            self.data[key] = cmd["v"]
            return {"ok": True, "v": cmd["v"], "prev": prev}
        if op == "cas":
            if prev == cmd["old"]:
                self.data[key] = cmd["v"]
                return {"ok": True, "v": cmd["v"], "prev": prev}
            return {"ok": False, "v": prev, "prev": prev}
        if op == "get":
            return {"ok": True, "v": prev, "prev": prev}
        raise ValueError(f"unknown KV op {op!r}")

    def apply_noop(self, index: int, term: int) -> None:
        self._advance(index, term)

    def _advance(self, index: int, term: int) -> None:
        if index != self.applied_index + 1:
            raise AssertionError(
                f"KV state machine applied {index} after {self.applied_index} (gap or repeat)")
        self.applied_index = index
        self.applied_term = term

    def read(self, key: str):
        return self.data.get(key)

    def snapshot(self) -> bytes:
        return encode({"applied": self.applied_index, "term": self.applied_term, "data": self.data})

    def restore(self, data: bytes) -> None:
        snap = decode(data)
        self.data = dict(snap["data"])
        self.applied_index = snap["applied"]
        self.applied_term = snap["term"]
