"""Tunables of one RaftNode. Time is measured in ticks; the driver decides how long a tick is."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass
class Config:
    id: int
    election_tick: int = 10          # randomized in [election_tick, 2*election_tick)
    heartbeat_tick: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    max_entries_per_msg: int = 4096
    max_bytes_per_msg: int = 1 << 20
    max_inflight_msgs: int = 256
    max_snapshot_chunk: int = 1 << 20
    max_committed_per_ready: int = 1 << 16
    # applied index to start from after a restart (entries up to it are not re-applied)
    applied: int = 0

    def validate(self) -> None:
        if self.id <= 0:
            raise ValueError("node id must be a positive integer")
        if self.heartbeat_tick <= 0:
            raise ValueError("heartbeat_tick must be > 0")
        if self.election_tick <= self.heartbeat_tick:
            raise ValueError("election_tick must be greater than heartbeat_tick")
        if self.max_inflight_msgs <= 0:
            raise ValueError("max_inflight_msgs must be > 0")
