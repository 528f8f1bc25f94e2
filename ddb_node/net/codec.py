"""Wire format: msgpack frames with a protocol version and a cluster id.

Every frame is one msgpack array `[version, cluster_id, kind, body]`. Peer frames carry
Raft messages (as flat arrays, cheap to pack); client frames carry request/response maps.
Decoding validates the shape completely and raises `FrameError` for anything malformed,
truncated, oversized, of another version or of another cluster, so the caller can drop and
count it without ever letting bad input reach the core.
"""
from __future__ import annotations

import msgpack

from ddb_node.raft.types import (ConfState, Entry, Message, MsgType, SnapshotChunk,
                                 SnapshotMeta)

PROTOCOL_VERSION = 1
MAX_PEER_FRAME = 64 << 20      # a snapshot chunk or a batch of entries, with headroom
MAX_CLIENT_FRAME = 32 << 20

KIND_RAFT = 1       # peer: one Raft message
KIND_REQUEST = 2    # client -> node
KIND_RESPONSE = 3   # node -> client

_MSG_TYPES = frozenset(int(t) for t in MsgType)


class FrameError(ValueError):
    """A frame that must be dropped (and counted), with the reason."""


def _int(v, what: str) -> int:
    if type(v) is not int or v < 0:
        raise FrameError(f"bad {what}")
    return v


# --------------------------------------------------------------------------- peers
def peer_identity(cluster_id: str, node_id: int) -> bytes:
    """Who a peer connection says it is (zmq's socket identity, the TCP link's hello)."""
    return f"{cluster_id}/{node_id}".encode()


def encode_message(cluster_id: str, m: Message) -> bytes:
    snap = None
    c = m.snapshot
    if c is not None:
        meta = c.meta
        snap = [meta.index, meta.term, list(meta.conf_state.voters), list(meta.conf_state.learners),
                c.offset, c.data, c.done, c.total]
    ents = [[e.term, e.index, e.type, e.data] for e in m.entries] if m.entries else None
    body = [int(m.type), m.to, m.frm, m.term, m.log_term, m.index, ents, m.commit,
            m.reject, m.reject_hint, m.context, snap]
    return msgpack.packb([PROTOCOL_VERSION, cluster_id, KIND_RAFT, body], use_bin_type=True)


def _unpack(frame: bytes, limit: int):
    if len(frame) > limit:
        raise FrameError(f"frame of {len(frame)} bytes exceeds the limit of {limit}")
    try:
        obj = msgpack.unpackb(frame, raw=False, strict_map_key=True,
                              max_bin_len=limit, max_str_len=limit)
    except Exception as exc:  # msgpack raises several unrelated types on garbage
        raise FrameError(f"undecodable frame: {type(exc).__name__}") from None
    if not isinstance(obj, list) or len(obj) != 4:
        raise FrameError("not a ddb frame")
    version, cluster, kind, body = obj
    if version != PROTOCOL_VERSION:
        raise FrameError(f"protocol version {version!r} is not {PROTOCOL_VERSION}")
    return cluster, kind, body


def decode_message(frame: bytes, cluster_id: str) -> Message:
    cluster, kind, body = _unpack(frame, MAX_PEER_FRAME)
    if cluster != cluster_id:
        raise FrameError("frame from another cluster")
    if kind != KIND_RAFT or not isinstance(body, list) or len(body) != 12:
        raise FrameError("not a raft message")
    (mtype, to, frm, term, log_term, index, ents, commit, reject, hint, ctx, snap) = body
    if mtype not in _MSG_TYPES:
        raise FrameError("unknown message type")
    entries = []
    if ents is not None:
        if not isinstance(ents, list):
            raise FrameError("bad entries")
        for e in ents:
            if not isinstance(e, list) or len(e) != 4 or not isinstance(e[3], bytes) \
                    or e[2] not in (0, 1):
                raise FrameError("bad entry")
            entries.append(Entry(_int(e[0], "entry term"), _int(e[1], "entry index"), e[2], e[3]))
        for a, b in zip(entries, entries[1:]):
            if b.index != a.index + 1:
                raise FrameError("entries are not contiguous")
    chunk = None
    if snap is not None:
        if not isinstance(snap, list) or len(snap) != 8:
            raise FrameError("bad snapshot chunk")
        si, st, voters, learners, off, data, done, total = snap
        if not isinstance(voters, list) or not isinstance(learners, list) \
                or not isinstance(data, bytes) or not isinstance(done, bool):
            raise FrameError("bad snapshot chunk")
        cs = ConfState(tuple(_int(v, "voter") for v in voters),
                       tuple(_int(v, "learner") for v in learners))
        chunk = SnapshotChunk(SnapshotMeta(_int(si, "snapshot index"), _int(st, "snapshot term"), cs),
                              _int(off, "offset"), data, done, _int(total, "total"))
        if chunk.offset + len(data) > chunk.total:
            raise FrameError("snapshot chunk beyond its total")
    if not isinstance(reject, bool) or not isinstance(ctx, bytes):
        raise FrameError("bad message fields")
    if mtype == MsgType.SNAP and chunk is None:
        raise FrameError("snapshot message without a chunk")
    return Message(MsgType(mtype), _int(to, "to"), _int(frm, "from"), _int(term, "term"),
                   _int(log_term, "log term"), _int(index, "index"), entries,
                   _int(commit, "commit"), reject, _int(hint, "hint"), ctx, chunk)


# --------------------------------------------------------------------------- clients
def encode_client(cluster_id: str, kind: int, body: dict) -> bytes:
    return msgpack.packb([PROTOCOL_VERSION, cluster_id, kind, body], use_bin_type=True)


def decode_client(frame: bytes, cluster_id: str | None, kind: int) -> tuple[str, dict]:
    """Decode a client frame. cluster_id None accepts any cluster (clients discover it)."""
    cluster, k, body = _unpack(frame, MAX_CLIENT_FRAME)
    if not isinstance(cluster, str):
        raise FrameError("bad cluster id")
    if cluster_id is not None and cluster and cluster != cluster_id:
        raise FrameError(f"frame for cluster {cluster!r}, this is {cluster_id!r}")
    if k != kind or not isinstance(body, dict):
        raise FrameError("unexpected frame kind")
    return cluster, body
