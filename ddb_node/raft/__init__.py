"""ddb's Raft consensus core: pure, deterministic, single-steppable."""
from .config import Config
from .node import RaftNode
from .storage import SnapshotSource, Storage
from .types import (NONE, Compacted, ConfChange, ConfChangeType, ConfState, Entry, EntryType,
                    HardState, Message, MsgType, NotLeader, ProposalDropped, RaftError, Ready,
                    ReadState, Role, Snapshot, SnapshotChunk, SnapshotMeta,
                    SnapshotTemporarilyUnavailable, SoftState, Unavailable)

__all__ = ["Config", "RaftNode", "Storage", "NONE", "Compacted", "ConfChange", "ConfChangeType",
           "ConfState", "Entry", "EntryType", "HardState", "Message", "MsgType", "NotLeader",
           "ProposalDropped", "RaftError", "Ready", "ReadState", "Role", "Snapshot",
           "SnapshotChunk", "SnapshotMeta", "SnapshotSource", "SnapshotTemporarilyUnavailable",
           "SoftState", "Unavailable"]
