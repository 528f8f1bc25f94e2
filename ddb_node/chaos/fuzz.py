"""Mutation-based fuzzing of the peer and client sockets of a live cluster.

Frames start valid (built with `ddb_node.net.codec` from well-formed Raft messages and client
requests) and are then mutated at two levels:
  - structure: decode the msgpack, replace / drop / duplicate / retype a random element
    (huge and negative integers, wrong types, deep nesting, other versions and clusters);
  - bytes: bit flips, truncation, insertion, duplication and splicing of the encoding.
The Hypothesis strategies here choose the seed message and the mutation plan, so a failure
shrinks to a small reproducer.

What may be sent: a peer frame that still decodes into a valid Raft message and carries a
member's identity would be a Byzantine peer, which Raft does not claim to survive; such frames
are sent with a non-member identity instead (they must be dropped as impostors). Client
requests mutated into membership, fault or transfer operations are not sent either.
"""
from __future__ import annotations

import copy

import msgpack
from hypothesis import strategies as st

from ddb_node.net.codec import (KIND_RAFT, KIND_REQUEST, PROTOCOL_VERSION, FrameError,
                                decode_message, encode_client, encode_message)
from ddb_node.protocol import LEVELS
from ddb_node.raft.types import (ConfState, Entry, Message, MsgType, SnapshotChunk,
                                 SnapshotMeta)

UNSAFE_OPS = {"join", "remove", "promote", "transfer", "faults", "snapshot"}

small = st.integers(0, 50)
terms = st.integers(0, 10**6)


@st.composite
def raft_messages(draw, ids=(1, 2, 3)):
    mtype = draw(st.sampled_from(list(MsgType)))
    frm = draw(st.sampled_from(ids))
    to = draw(st.sampled_from(ids))
    start = draw(st.integers(1, 10_000))
    n = draw(st.integers(0, 3)) if mtype == MsgType.APP else 0
    t = draw(terms)
    entries = [Entry(t, start + k, draw(st.sampled_from([0, 1])), draw(st.binary(max_size=40)))
               for k in range(n)]
    snap = None
    if mtype == MsgType.SNAP:
        data = draw(st.binary(max_size=64))
        snap = SnapshotChunk(SnapshotMeta(draw(small), draw(small), ConfState((1, 2, 3), ())),
                             0, data, draw(st.booleans()), len(data) + draw(st.integers(0, 10)))
    return Message(mtype, to, frm, t, draw(terms), draw(st.integers(0, 10**6)), entries,
                   draw(st.integers(0, 10**6)), draw(st.booleans()), draw(small),
                   draw(st.binary(max_size=16)), snap)


def client_bodies():
    stmt = st.sampled_from([
        ["SELECT count(*) FROM fuzz"], ["INSERT INTO fuzz(v) VALUES(?)", 1],
        ["SELECT * FROM fuzz WHERE id = ?", 3], ["UPDATE fuzz SET v = v + 1 WHERE id = 1"],
        ["SELECT :a", {"a": 1}], ["SELECT randomblob(4), changes()"],
    ])
    level = st.sampled_from(list(LEVELS))
    request = st.fixed_dictionaries({
        "op": st.just("request"), "statements": st.lists(stmt, min_size=1, max_size=3),
        "level": level, "transaction": st.booleans(),
        "timeout": st.sampled_from([0.5, 1.0, 2.0]),
    }, optional={"session": st.tuples(st.text(max_size=8), st.integers(0, 10)).map(list),
                 "freshness": st.floats(0, 2), "max_rows": st.integers(0, 5),
                 "redirect": st.booleans(), "forwarded": st.booleans()})
    other = st.fixed_dictionaries({"op": st.sampled_from(["status", "nodes", "ping", "map",
                                                          "map_result"])},
                                  optional={"sql": st.just("SELECT count(*) FROM fuzz"),
                                            "index": st.integers(-5, 10**6),
                                            "timeout": st.sampled_from([0.5, 1.0])})
    return st.one_of(request, other).map(lambda d: dict(d, id=1))


# ------------------------------------------------------------------ mutations
WEIRD = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=True),
                  st.text(max_size=20), st.binary(max_size=20),
                  st.lists(st.integers(-2**63, 2**63), max_size=3),
                  st.dictionaries(st.text(max_size=3), st.integers(-9, 9), max_size=2),
                  st.just([[[[[]]]]]), st.just("x" * 5000), st.just(2**64 - 1), st.just(-1))


@st.composite
def structural_plan(draw):
    return draw(st.lists(st.tuples(st.sampled_from(["replace", "drop", "dup", "wrap", "add"]),
                                   st.integers(0, 10**6), WEIRD), min_size=1, max_size=4))


def _paths(obj, path=()):
    yield path
    if len(path) > 12:
        return
    if isinstance(obj, list):
        for i, x in enumerate(obj):
            yield from _paths(x, path + (i,))
    elif isinstance(obj, dict):
        for k, x in obj.items():
            yield from _paths(x, path + (k,))


def _get(obj, path):
    for p in path:
        obj = obj[p]
    return obj


def mutate_structure(obj, plan):
    """Apply a plan of (action, selector, value) to a decoded frame (copy)."""
    obj = msgpack.unpackb(msgpack.packb(obj, use_bin_type=True), raw=False, strict_map_key=False)
    for action, sel, value in plan:
        value = copy.deepcopy(value)      # never share one drawn object between two places
        paths = list(_paths(obj))
        path = paths[sel % len(paths)]
        if not path:
            obj = value if action == "replace" else [obj, value] if action == "wrap" else obj
            continue
        parent, last = _get(obj, path[:-1]), path[-1]
        if action == "replace":
            parent[last] = value
        elif action == "wrap":
            parent[last] = [parent[last]]
        elif action == "drop":
            if isinstance(parent, list):
                del parent[last]
            else:
                parent.pop(last, None)
        elif action == "dup":
            if isinstance(parent, list):
                parent.insert(last, parent[last])
            else:
                parent[f"{last}_"] = parent[last]
        elif action == "add":
            if isinstance(parent, list):
                parent.append(value)
            else:
                parent[str(value)[:8]] = value
    return obj


@st.composite
def byte_plan(draw):
    return draw(st.lists(st.tuples(st.sampled_from(["flip", "truncate", "insert", "dupe", "splice", "set"]),
                                   st.integers(0, 10**6), st.binary(min_size=1, max_size=8)),
                         min_size=1, max_size=4))


def mutate_bytes(frame: bytes, plan) -> bytes:
    b = bytearray(frame)
    for action, pos, blob in plan:
        if not b:
            b = bytearray(blob)
            continue
        i = pos % len(b)
        if action == "flip":
            b[i] ^= 1 << (blob[0] % 8)
        elif action == "truncate":
            del b[i:]
        elif action == "insert":
            b[i:i] = blob
        elif action == "dupe":
            b[i:i] = b[i:i + len(blob) * 4]
        elif action == "splice":
            j = (pos // 7) % len(b)
            b[i:i + len(blob)] = b[j:j + len(blob)]
        elif action == "set":
            b[i] = blob[0]
    return bytes(b)


@st.composite
def peer_frames(draw, cluster_id: str):
    """(frame bytes, how) from a valid Raft message, mutated."""
    m = draw(raft_messages())
    frame = encode_message(cluster_id, m)
    how = draw(st.sampled_from(["valid", "structure", "bytes", "both", "envelope"]))
    if how in ("structure", "both"):
        obj = msgpack.unpackb(frame, raw=False)
        frame = msgpack.packb(mutate_structure(obj, draw(structural_plan())), use_bin_type=True)
    if how in ("bytes", "both"):
        frame = mutate_bytes(frame, draw(byte_plan()))
    if how == "envelope":
        body = msgpack.unpackb(frame, raw=False)[3]
        env = draw(st.sampled_from([[PROTOCOL_VERSION + 1, cluster_id, KIND_RAFT, body],
                                    [PROTOCOL_VERSION, "other-cluster", KIND_RAFT, body],
                                    [PROTOCOL_VERSION, cluster_id, KIND_REQUEST, body],
                                    [PROTOCOL_VERSION, cluster_id, KIND_RAFT],
                                    {"v": PROTOCOL_VERSION}]))
        frame = msgpack.packb(env, use_bin_type=True)
    return frame, how, m


def decodes_as_member(frame: bytes, cluster_id: str, members) -> bool:
    try:
        m = decode_message(frame, cluster_id)
    except FrameError:
        return False
    except Exception:  # noqa: BLE001 - a decoder that raises anything else is a finding
        return False
    return m.frm in members


@st.composite
def client_frames(draw, cluster_id: str):
    body = draw(client_bodies())
    how = draw(st.sampled_from(["valid", "structure", "bytes", "both"]))
    obj = [PROTOCOL_VERSION, cluster_id, KIND_REQUEST, body]
    if how in ("structure", "both"):
        obj = mutate_structure(obj, draw(structural_plan()))
        b = obj[3] if isinstance(obj, list) and len(obj) == 4 and isinstance(obj[3], dict) else None
        if b is not None and _unsafe_op(b.get("op")):
            b["op"] = "status"
    frame = msgpack.packb(obj, use_bin_type=True)
    if how in ("bytes", "both"):
        frame = mutate_bytes(frame, draw(byte_plan()))
    return frame, how


def _unsafe_op(op) -> bool:
    return isinstance(op, str) and op in UNSAFE_OPS


def unsafe_client_frame(frame: bytes) -> bool:
    """A byte mutation that happens to produce an admin operation: do not send it."""
    try:
        obj = msgpack.unpackb(frame, raw=False, strict_map_key=False)
    except Exception:  # noqa: BLE001
        return False
    return isinstance(obj, list) and len(obj) == 4 and isinstance(obj[3], dict) \
        and _unsafe_op(obj[3].get("op"))


def encode_request(cluster_id: str, body: dict) -> bytes:
    return encode_client(cluster_id, KIND_REQUEST, body)
