"""Plain data types shared by the Raft core, its storage and its drivers.

They are small slotted classes (not frozen dataclasses) because the core creates
millions of them in a benchmark run; equality and repr come from dataclasses so
tests can compare them directly.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum

NONE = 0  # "no node": node ids are positive integers


class EntryType(IntEnum):
    NORMAL = 0
    CONF_CHANGE = 1


class Role(IntEnum):
    FOLLOWER = 0
    PRE_CANDIDATE = 1
    CANDIDATE = 2
    LEADER = 3


class MsgType(IntEnum):
    APP = 1              # AppendEntries (also carries the commit index)
    APP_RESP = 2
    VOTE = 3             # RequestVote
    VOTE_RESP = 4
    PRE_VOTE = 5         # dissertation 9.6
    PRE_VOTE_RESP = 6
    HEARTBEAT = 7
    HEARTBEAT_RESP = 8   # context echoes a ReadIndex round
    SNAP = 9             # one chunk of a snapshot install
    SNAP_RESP = 10       # acknowledges a chunk (or rejects the install)
    TIMEOUT_NOW = 11     # leadership transfer: campaign now, skip pre-vote
    READ_INDEX = 12      # follower -> leader: please confirm a read index
    READ_INDEX_RESP = 13
    TRANSFER_LEADER = 14  # follower -> leader: please transfer to `frm`/`index`


class ConfChangeType(IntEnum):
    ADD_LEARNER = 0
    PROMOTE = 1          # learner -> voter
    REMOVE = 2


@dataclass(slots=True)
class Entry:
    term: int
    index: int
    type: int = EntryType.NORMAL
    data: bytes = b""

    def size(self) -> int:
        return len(self.data) + 16


@dataclass(slots=True)
class HardState:
    term: int = 0
    vote: int = NONE
    commit: int = 0


@dataclass(slots=True)
class ConfState:
    voters: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()


@dataclass(slots=True)
class ConfChange:
    """One membership change. The leader also records the whole resulting configuration
    (`voters`, `learners`), so a node that joins later learns every member by applying
    the entry, even members that were only in the bootstrap configuration."""
    type: int
    node_id: int
    context: bytes = b""  # opaque to the core (e.g. the node's addresses)
    voters: tuple | None = None
    learners: tuple | None = None

    def encode(self) -> bytes:
        out = bytearray([self.type])
        out += self.node_id.to_bytes(8, "big")
        if self.voters is None:
            out += b"\xff\xff"
        else:
            out += len(self.voters).to_bytes(2, "big")
            for v in self.voters:
                out += v.to_bytes(8, "big")
            learners = self.learners or ()
            out += len(learners).to_bytes(2, "big")
            for v in learners:
                out += v.to_bytes(8, "big")
        return bytes(out) + self.context

    @classmethod
    def decode(cls, data: bytes) -> "ConfChange":
        t, nid = data[0], int.from_bytes(data[1:9], "big")
        nv = int.from_bytes(data[9:11], "big")
        if nv == 0xFFFF:
            return cls(t, nid, bytes(data[11:]))
        pos = 11
        voters = tuple(int.from_bytes(data[pos + 8 * i:pos + 8 * i + 8], "big") for i in range(nv))
        pos += 8 * nv
        nl = int.from_bytes(data[pos:pos + 2], "big")
        pos += 2
        learners = tuple(int.from_bytes(data[pos + 8 * i:pos + 8 * i + 8], "big") for i in range(nl))
        pos += 8 * nl
        return cls(t, nid, bytes(data[pos:]), voters, learners)


@dataclass(slots=True)
class SnapshotMeta:
    index: int = 0
    term: int = 0
    conf_state: ConfState = field(default_factory=ConfState)


@dataclass(slots=True)
class Snapshot:
    meta: SnapshotMeta = field(default_factory=SnapshotMeta)
    data: bytes = b""

    def is_empty(self) -> bool:
        return self.meta.index == 0


@dataclass(slots=True)
class SnapshotChunk:
    """One piece of a snapshot install (MsgType.SNAP); on a follower, also a piece of a
    snapshot being received that the driver must stage (`Ready.snapshot_chunks`)."""
    meta: SnapshotMeta
    offset: int
    data: bytes
    done: bool
    total: int
    # staging only: the term of the leader that sent it. Two leaders may send images of one
    # (index, term) that differ byte for byte (each reads its own database file), so the
    # pieces of one staging must all come from one leader term.
    epoch: int = 0


@dataclass(slots=True)
class Message:
    type: int
    to: int
    frm: int
    term: int = 0
    log_term: int = 0        # APP: term of entry at `index`; APP_RESP reject: hint term
    index: int = 0           # APP: index preceding `entries`; responses: match / hint
    entries: list = field(default_factory=list)
    commit: int = 0          # SNAP_RESP: offset of a chunk received past the follower's prefix
                             # (it was dropped: a gap), 0 if none
    reject: bool = False
    reject_hint: int = 0     # APP_RESP reject: follower's best guess of the match point
    context: bytes = b""     # READ_INDEX ctx, heartbeat round id, campaign kind
    snapshot: SnapshotChunk | None = None


@dataclass(slots=True)
class SoftState:
    role: int = Role.FOLLOWER
    leader: int = NONE


@dataclass(slots=True)
class ReadState:
    """A ReadIndex answer: reads for `ctx` may be served once applied >= index."""
    index: int
    ctx: bytes


@dataclass(slots=True)
class Ready:
    """Everything the driver must do, in order: persist, send, apply, advance.

    `messages` may be sent at once (in parallel with persisting);
    `persisted_messages` must wait until hard_state/entries/snapshot are durable and
    `snapshot_chunks` are staged. A `snapshot` received from a leader carries only its meta:
    its data are the chunks staged for that meta (see Storage.save).
    """
    soft_state: SoftState | None = None
    hard_state: HardState | None = None
    entries: list = field(default_factory=list)
    snapshot: Snapshot | None = None
    committed_entries: list = field(default_factory=list)
    messages: list = field(default_factory=list)
    persisted_messages: list = field(default_factory=list)
    read_states: list = field(default_factory=list)
    must_sync: bool = False
    # pieces of a snapshot being received, in order: the driver stages them
    # (Storage.stage_snapshot_chunk) before sending persisted_messages, which acknowledge them
    snapshot_chunks: list = field(default_factory=list)

    def all_messages(self) -> list:
        return self.messages + self.persisted_messages


class RaftError(Exception):
    """Base of the core's errors."""


class NotLeader(RaftError):
    def __init__(self, leader_hint: int = NONE, msg: str = "not the leader"):
        super().__init__(f"{msg} (leader hint: {leader_hint or 'unknown'})")
        self.leader_hint = leader_hint


class ProposalDropped(RaftError):
    """The leader cannot take this proposal now (transfer in progress, pending conf change...)."""


class StorageError(RaftError):
    pass


class Compacted(StorageError):
    """The requested index is below the storage's first index (compacted into a snapshot)."""


class Unavailable(StorageError):
    """The requested index is beyond the storage's last index."""


class SnapshotTemporarilyUnavailable(StorageError):
    pass
