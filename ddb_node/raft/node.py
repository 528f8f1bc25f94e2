"""RaftNode: the consensus core as a pure, deterministic state machine.

Inputs are `tick`, `step(message)` and the client calls (`propose`, `read_index`,
...); outputs are collected into a `Ready` that the driver persists, sends, applies
and then hands back through `advance`. Nothing here does I/O, reads a clock or uses
the global `random`: the injected rng is the only source of randomness, so the same
inputs always give the same outputs.

Section references are to the Raft paper (Ongaro & Ousterhout, 2014) and to Ongaro's
dissertation ("diss.").
"""
from __future__ import annotations

import random

from . import confchange
from .config import Config
from .log import RaftLog
from .progress import Progress, ProgressState
from .quorum import VoteResult, majority, majority_index, vote_result
from .read_only import ReadOnly
from .storage import Storage
from .types import (NONE, Compacted, ConfChange, ConfState, Entry, EntryType,
                    HardState, Message, MsgType, NotLeader, ProposalDropped, Ready, ReadState,
                    Role, Snapshot, SnapshotChunk, SnapshotTemporarilyUnavailable, SoftState,
                    Unavailable)

CAMPAIGN_TRANSFER = b"transfer"   # vote context: a leadership transfer, ignore leader leases

# Messages a leader may send before its own log write is durable (paper 10.2.1 of the
# dissertation), and ones any role may (they promise nothing about its disk: a heartbeat's
# answer, a ReadIndex passed on); everything else waits for persistence.
_SEND_NOW = frozenset({MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP, MsgType.TIMEOUT_NOW,
                       MsgType.READ_INDEX_RESP})
_SEND_NOW_ANY_ROLE = frozenset({MsgType.HEARTBEAT_RESP, MsgType.READ_INDEX})


class RaftNode:
    def __init__(self, config: Config, storage: Storage, rng: random.Random):
        config.validate()
        self.cfg = config
        self.id = config.id
        self.rng = rng
        self.storage = storage
        self.log = RaftLog(storage, config.applied)
        hs, cs = storage.initial_state()
        self.term = hs.term
        self.vote = hs.vote
        self.voters: set[int] = set(cs.voters)
        self.learners: set[int] = set(cs.learners)
        self.role = Role.FOLLOWER
        self.leader_id = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self.randomized_timeout = config.election_tick
        self.votes: dict[int, bool] = {}
        self.prs: dict[int, Progress] = {}
        self.lead_transferee = NONE
        self.pending_conf_index = 0
        self.read_only = ReadOnly()     # the leader's ReadIndex rounds (diss. 6.4)
        self.read_states: list[ReadState] = []
        # snapshot install in progress on a follower: [meta, epoch, bytes staged]; the bytes go
        # to storage through Ready.snapshot_chunks, never into this object. A restarted node
        # resumes the install its storage had staged.
        staged = storage.staged_snapshot()
        self.snap_rx: list | None = (
            list(staged) if staged is not None and staged[0].index > self.log.committed else None)
        self.snap_pieces: list[SnapshotChunk] = []
        # outputs
        self.msgs: list[Message] = []
        self.msgs_after: list[Message] = []
        self.bcast_pending = False
        self.ready_outstanding = False
        self.prev_hs = HardState(hs.term, hs.vote, self.log.committed)
        self.prev_ss = SoftState(Role.FOLLOWER, NONE)
        self._replay_conf_changes()
        self._reset_timeout()

    # =========================================================== introspection
    @property
    def commit_index(self) -> int:
        return self.log.committed

    @property
    def applied(self) -> int:
        return self.log.applied

    @property
    def last_index(self) -> int:
        return self.log.last_index()

    @property
    def conf_state(self) -> ConfState:
        return ConfState(tuple(sorted(self.voters)), tuple(sorted(self.learners)))

    def log_term(self, index: int) -> int | None:
        try:
            return self.log.term(index)
        except (Compacted, Unavailable):
            return None

    def hard_state(self) -> HardState:
        return HardState(self.term, self.vote, self.log.committed)

    def promotable(self) -> bool:
        return self.id in self.voters

    def quorum(self) -> int:
        return majority(len(self.voters))

    def status(self) -> dict:
        st = {
            "id": self.id, "role": self.role.name.lower(), "term": self.term, "vote": self.vote,
            "leader": self.leader_id, "commit": self.log.committed, "applied": self.log.applied,
            "first_index": self.log.first_index(), "last_index": self.log.last_index(),
            "voters": sorted(self.voters), "learners": sorted(self.learners),
            "lead_transferee": self.lead_transferee,
        }
        if self.role == Role.LEADER:
            st["progress"] = {i: p.to_dict() for i, p in sorted(self.prs.items())}
        return st

    # =========================================================== client inputs
    def tick(self) -> None:
        if self.role == Role.LEADER:
            self._tick_leader()
        else:
            self.election_elapsed += 1
            if self.promotable() and self.election_elapsed >= self.randomized_timeout:
                self.election_elapsed = 0
                self.campaign()

    def campaign(self, transfer: bool = False) -> None:
        """Start an election (with pre-vote unless disabled or transferring)."""
        if not self.promotable() or self.role == Role.LEADER:
            return
        if self.cfg.pre_vote and not transfer:
            self._become_pre_candidate()
            self._request_votes(MsgType.PRE_VOTE, self.term + 1, b"")
        else:
            self._become_candidate()
            self._request_votes(MsgType.VOTE, self.term, CAMPAIGN_TRANSFER if transfer else b"")

    def propose(self, data: bytes) -> int:
        """Append one entry at the leader; returns its index."""
        self._check_can_propose()
        log = self.log
        idx = log.last_index() + 1
        log.append([Entry(self.term, idx, EntryType.NORMAL, data)])
        self.bcast_pending = True
        return idx

    def propose_batch(self, datas: list[bytes]) -> tuple[int, int]:
        """Append several entries at once; returns (first index, last index)."""
        self._check_can_propose()
        first = self.log.last_index() + 1
        t = self.term
        self.log.append([Entry(t, first + i, EntryType.NORMAL, d) for i, d in enumerate(datas)])
        self.bcast_pending = True
        return first, first + len(datas) - 1

    def propose_conf_change(self, cc: ConfChange) -> int:
        """One server at a time (diss. 4.1); takes effect when applied."""
        self._check_can_propose()
        if self.pending_conf_index > self.log.applied:
            raise ProposalDropped("a configuration change is still pending")
        conf = self.conf_state
        confchange.check(conf, cc)
        nxt = confchange.next_conf(conf, cc)
        # the entry records the whole result, so later joiners learn every member
        cc = ConfChange(cc.type, cc.node_id, cc.context, nxt.voters, nxt.learners)
        idx = self.log.last_index() + 1
        self.log.append([Entry(self.term, idx, EntryType.CONF_CHANGE, cc.encode())])
        self.pending_conf_index = idx
        self.bcast_pending = True
        return idx

    def read_index(self, ctx: bytes) -> None:
        """Ask for a linearizable read point (diss. 6.4); answered as a ReadState."""
        if self.role == Role.LEADER:
            self._leader_read(ctx, self.id)
        elif self.leader_id != NONE:
            self._send(Message(MsgType.READ_INDEX, self.leader_id, self.id, self.term, context=ctx))
        else:
            raise NotLeader(NONE, "no leader to confirm a read")

    def transfer_leader(self, to: int) -> None:
        """Hand leadership to `to` (diss. 3.10)."""
        if self.role != Role.LEADER:
            if self.leader_id == NONE:
                raise NotLeader(NONE)
            self._send(Message(MsgType.TRANSFER_LEADER, self.leader_id, self.id, self.term, index=to))
            return
        if to == self.id:
            self._abort_transfer()
            return
        if to not in self.voters:
            raise ValueError(f"node {to} is not a voter")
        if self.lead_transferee == to:
            return
        self.lead_transferee = to
        self.election_elapsed = 0
        pr = self.prs[to]
        if pr.match == self.log.last_index():
            self._send(Message(MsgType.TIMEOUT_NOW, to, self.id, self.term))
        else:
            self._send_append(to)

    # =========================================================== Ready
    def has_ready(self) -> bool:
        if self.ready_outstanding:
            return False
        log = self.log
        if (self.msgs or self.msgs_after or self.bcast_pending or self.read_states
                or self.read_only.bcast_pending or self.snap_pieces or log.committed > log.applying or log.has_unstable()):
            return True
        hs = self.prev_hs
        if hs.term != self.term or hs.vote != self.vote or hs.commit != log.committed:
            return True
        ss = self.prev_ss
        return ss.role != self.role or ss.leader != self.leader_id

    def take_messages(self) -> list:
        """The messages that may go out now, also while a Ready is being persisted: the ones
        `Ready.messages` would carry (appends of what was proposed meanwhile, heartbeats,
        heartbeat answers). Without it a node whose fsync is slow falls silent for as long as
        the write takes and its peers' election timers run out (etcd's asynchronous storage
        writes send these at once for the same reason). What promises persisted state
        (acknowledgements, votes) stays for the Ready after the write."""
        self._start_broadcasts()
        msgs, self.msgs = self.msgs, []
        return msgs

    def _start_broadcasts(self) -> None:
        if self.bcast_pending:
            self.bcast_pending = False
            self._bcast_append()
        if self.read_only.start_round():
            self._bcast_heartbeat()

    def ready(self) -> Ready:
        if self.ready_outstanding:
            raise RuntimeError("advance() the previous Ready before asking for the next one")
        self._start_broadcasts()
        log = self.log
        rd = Ready()
        if self.prev_ss.role != self.role or self.prev_ss.leader != self.leader_id:
            rd.soft_state = self.prev_ss = SoftState(self.role, self.leader_id)
        hs = self.prev_hs
        if hs.term != self.term or hs.vote != self.vote or hs.commit != log.committed:
            rd.must_sync = hs.term != self.term or hs.vote != self.vote
            rd.hard_state = self.prev_hs = HardState(self.term, self.vote, log.committed)
        if log.snapshot is not None and not log.snapshot_in_progress:
            rd.snapshot = log.snapshot
            log.snapshot_in_progress = True
            log.applying = max(log.applying, log.snapshot.meta.index)
            rd.must_sync = True
        rd.entries = log.take_unstable()
        if rd.entries:
            rd.must_sync = True
        if log.committed > log.applying:
            rd.committed_entries = log.next_committed(self.cfg.max_committed_per_ready)
        rd.messages = self.msgs
        rd.persisted_messages = self.msgs_after
        rd.read_states = self.read_states
        rd.snapshot_chunks = self.snap_pieces
        self.msgs, self.msgs_after, self.read_states, self.snap_pieces = [], [], [], []
        self.ready_outstanding = True
        return rd

    def advance(self, rd: Ready) -> None:
        """The driver has persisted, sent and applied `rd`."""
        self.ready_outstanding = False
        log = self.log
        if rd.snapshot is not None:
            log.stable_snap_to(rd.snapshot.meta.index)
            log.applied_to(rd.snapshot.meta.index)
        if rd.entries:
            last = rd.entries[-1]
            log.stable_to(last.index, last.term)
            if self.role == Role.LEADER:
                pr = self.prs.get(self.id)
                if pr is not None and pr.maybe_update(log.persisted_last_index()):
                    if self._maybe_commit():
                        self.bcast_pending = True
        if rd.committed_entries:
            for e in rd.committed_entries:
                if e.type == EntryType.CONF_CHANGE:
                    self._apply_conf_change(ConfChange.decode(e.data))
            log.applied_to(rd.committed_entries[-1].index)

    # =========================================================== step
    def step(self, m: Message) -> None:
        if m.term > self.term:
            if m.type in (MsgType.VOTE, MsgType.PRE_VOTE):
                forced = m.context == CAMPAIGN_TRANSFER
                in_lease = (self.cfg.check_quorum and self.leader_id != NONE
                            and self.election_elapsed < self.cfg.election_tick)
                if in_lease and not forced:
                    return  # diss. 4.2.3: a node that hears from a leader ignores disruptive votes
            if m.type == MsgType.PRE_VOTE or (m.type == MsgType.PRE_VOTE_RESP and not m.reject):
                pass  # pre-votes never change terms (diss. 9.6)
            elif m.type in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP):
                self._become_follower(m.term, m.frm)
            else:
                self._become_follower(m.term, NONE)
        elif m.term < self.term:
            if (self.cfg.check_quorum or self.cfg.pre_vote) and m.type in (MsgType.APP, MsgType.HEARTBEAT):
                # tell a stale leader about the newer term so it steps down
                self._send(Message(MsgType.APP_RESP, m.frm, self.id, self.term))
            elif m.type == MsgType.PRE_VOTE:
                self._send(Message(MsgType.PRE_VOTE_RESP, m.frm, self.id, self.term, reject=True))
            return

        t = m.type
        if t == MsgType.VOTE or t == MsgType.PRE_VOTE:
            self._handle_vote_request(m)
        elif self.role == Role.LEADER:
            self._step_leader(m)
        elif self.role == Role.FOLLOWER:
            self._step_follower(m)
        else:
            self._step_candidate(m)

    def _handle_vote_request(self, m: Message) -> None:
        can_vote = (self.vote == m.frm
                    or (self.vote == NONE and self.leader_id == NONE)
                    or (m.type == MsgType.PRE_VOTE and m.term > self.term))
        resp = MsgType.VOTE_RESP if m.type == MsgType.VOTE else MsgType.PRE_VOTE_RESP
        if can_vote and self.log.is_up_to_date(m.index, m.log_term):
            self._send(Message(resp, m.frm, self.id, m.term))
            if m.type == MsgType.VOTE:
                self.election_elapsed = 0
                self.vote = m.frm
        else:
            self._send(Message(resp, m.frm, self.id, self.term, reject=True))

    # ----------------------------------------------------------- leader
    def _tick_leader(self) -> None:
        self.heartbeat_elapsed += 1
        self.election_elapsed += 1
        if self.election_elapsed >= self.cfg.election_tick:
            self.election_elapsed = 0
            if self.cfg.check_quorum:
                if not self._quorum_active():
                    self._become_follower(self.term, NONE)  # check-quorum (diss. 6.2)
                    return
                for pid, pr in self.prs.items():
                    if pid != self.id:
                        pr.recent_active = False
            self._abort_transfer()
        if self.heartbeat_elapsed >= self.cfg.heartbeat_tick:
            self.heartbeat_elapsed = 0
            self._bcast_heartbeat()
            for pid, pr in self.prs.items():
                if pr.state == ProgressState.SNAPSHOT and pid != self.id \
                        and pr.snapshot.on_heartbeat():
                    if not pr.recent_active:
                        # silent for an election timeout: give the transfer up, so its source
                        # (an open database image) is released; a probe restarts it once the
                        # follower answers again
                        pr.abort_snapshot()
                    else:
                        pr.snapshot.retry()
                        self._send_snapshot_chunks(pid, pr)

    def _step_leader(self, m: Message) -> None:
        t = m.type
        pr = self.prs.get(m.frm)
        if t == MsgType.READ_INDEX:
            self._leader_read(m.context, m.frm)
            return
        if t == MsgType.TRANSFER_LEADER:
            try:
                self.transfer_leader(m.index)
            except ValueError:
                pass
            return
        if pr is None:
            return
        if t == MsgType.APP_RESP:
            pr.recent_active = True
            if m.reject:
                if pr.maybe_decr_to(m.index, self._backtrack_hint(m)):
                    if pr.state == ProgressState.REPLICATE:
                        pr.become_probe()
                    self._send_append(m.frm)
                return
            if pr.acknowledged(m.index):
                if self._maybe_commit():
                    self.bcast_pending = True
                # fill the pipeline up to the in-flight window
                while self._send_append(m.frm, send_if_empty=False):
                    pass
                if m.frm == self.lead_transferee and pr.match == self.log.last_index():
                    self._send(Message(MsgType.TIMEOUT_NOW, m.frm, self.id, self.term))
        elif t == MsgType.HEARTBEAT_RESP:
            pr.recent_active = True
            pr.heartbeat_answered()
            if pr.match < self.log.last_index() and pr.state != ProgressState.SNAPSHOT:
                self._send_append(m.frm)
            if self.read_only.recv_ack(m.frm, m.index):
                self._release_reads()
        elif t == MsgType.SNAP_RESP:
            pr.recent_active = True
            if pr.state != ProgressState.SNAPSHOT or m.index != pr.pending_snapshot:
                return
            # bytes the follower holds contiguously (a reject: none of this snapshot), and the
            # offset of a chunk it received past them (0: the chunk was new or a duplicate)
            if pr.snapshot.on_response(0 if m.reject else m.reject_hint, m.commit):
                self._send_snapshot_chunks(m.frm, pr)

    def _backtrack_hint(self, m: Message) -> int:
        """Leader side of fast log backtracking (etcd-io/raft's findConflictByTerm)."""
        if m.log_term > 0:
            return self.log.find_conflict_by_term(m.reject_hint, m.log_term)
        return m.reject_hint

    def _maybe_commit(self) -> bool:
        """Commit the largest index stored on a quorum, only in the leader's term (5.4.2)."""
        if not self.voters:
            return False
        prs = self.prs
        idx = majority_index((prs[v].match if v in prs else 0) for v in self.voters)
        log = self.log
        if idx > log.committed and log.term_or_zero(idx) == self.term:
            first_in_term = log.term_or_zero(log.committed) != self.term
            log.commit_to(idx)
            if first_in_term:
                for ctx, req in self.read_only.take_waiting():
                    self._leader_read(ctx, req)
            return True
        return False

    def _quorum_active(self) -> bool:
        """Whether a quorum of voters was heard from since the last check (diss. 6.2)."""
        active = {v: True for v in self.voters
                  if v == self.id or (v in self.prs and self.prs[v].recent_active)}
        return vote_result(self.voters, active) == VoteResult.WON

    # ----------------------------------------------------------- replication
    def _bcast_append(self) -> None:
        for pid in self.prs:
            if pid != self.id:
                self._send_append(pid)

    def _send_append(self, to: int, send_if_empty: bool = True) -> bool:
        pr = self.prs[to]
        if pr.is_paused():
            return False
        log = self.log
        prev = pr.next - 1
        try:
            prev_term = log.term(prev)
            ents = log.entries(pr.next, log.last_index() + 1,
                               self.cfg.max_entries_per_msg, self.cfg.max_bytes_per_msg)
        except Compacted:
            return self._start_snapshot(to, pr)
        if not ents and not send_if_empty:
            return False
        self.msgs.append(Message(MsgType.APP, to, self.id, self.term, prev_term, prev, ents,
                                 log.committed))
        if ents:
            pr.sent_entries(ents[-1].index)
        return True

    def _bcast_heartbeat(self) -> None:
        for pid, pr in self.prs.items():
            if pid != self.id:
                # never let a heartbeat commit beyond what the follower is known to hold
                self.msgs.append(Message(MsgType.HEARTBEAT, pid, self.id, self.term,
                                         index=self.read_only.round,
                                         commit=min(pr.match, self.log.committed)))

    # ----------------------------------------------------------- snapshots
    def _start_snapshot(self, to: int, pr: Progress) -> bool:
        if not pr.recent_active:
            return False
        try:
            src = self.storage.snapshot_source()
        except SnapshotTemporarilyUnavailable:
            return False         # asked again at the next probe (etcd does the same)
        if src.meta.index == 0:
            return False
        pr.become_snapshot(src)
        self._send_snapshot_chunks(to, pr)
        return True

    def snapshot_sources_in_use(self) -> list:
        """The sources of the snapshots being streamed to followers: the driver may release
        any other it opened (a leader that stepped down uses none)."""
        return [pr.snapshot.source for pr in self.prs.values() if pr.snapshot is not None]

    def _send_snapshot_chunks(self, to: int, pr: Progress) -> None:
        """Send as many chunks as the transfer's window allows."""
        sender = pr.snapshot
        if sender is None:
            return
        size = max(1, self.cfg.max_snapshot_chunk)
        while (chunk := sender.next_chunk(size)) is not None:
            self.msgs.append(Message(MsgType.SNAP, to, self.id, self.term, snapshot=chunk))

    def _handle_snapshot_chunk(self, m: Message) -> None:
        """Follower side of a chunked install. Chunks may arrive lost, duplicated or out of
        order: we keep the contiguous prefix, acknowledge its length, and never reject
        anything but a chunk of a snapshot we hold nothing of. The bytes are staged in
        storage (Ready.snapshot_chunks); the core keeps only how many it has."""
        c = m.snapshot
        meta = c.meta
        if meta.index <= self.log.committed:
            # already covered (installed, or our log caught up): nothing more to receive
            self.snap_rx = None
            self._send(Message(MsgType.APP_RESP, m.frm, self.id, self.term, index=self.log.committed))
            return
        rx = self.snap_rx
        same = (rx is not None and rx[0].index == meta.index and rx[0].term == meta.term
                and rx[1] == m.term)
        if not same:
            if c.offset != 0:
                self._send(Message(MsgType.SNAP_RESP, m.frm, self.id, self.term, index=meta.index,
                                   reject=True, reject_hint=0, commit=c.offset))
                return
            rx = self.snap_rx = [meta, m.term, 0]
        have = rx[2]
        end = c.offset + len(c.data)
        # a chunk past our prefix is dropped (the bytes before it are missing): say so, so
        # the leader can tell a gap (resend) from a duplicate (nothing to do)
        gap = c.offset if c.offset > have else 0
        if c.offset <= have < end:
            # same snapshot, same bytes: stage the new tail (the driver writes it to storage
            # before this node's acknowledgement goes out)
            self.snap_pieces.append(SnapshotChunk(meta, have, c.data[have - c.offset:],
                                                  end >= c.total, c.total, m.term))
            rx[2] = have = end
        if have < c.total or (c.total == 0 and not c.done):
            self._send(Message(MsgType.SNAP_RESP, m.frm, self.id, self.term, index=meta.index,
                               reject_hint=have, commit=gap))
            return
        self.snap_rx = None
        if self._restore(Snapshot(meta)):
            self._send(Message(MsgType.APP_RESP, m.frm, self.id, self.term, index=self.log.last_index()))
        else:
            self._send(Message(MsgType.APP_RESP, m.frm, self.id, self.term, index=self.log.committed))

    def _restore(self, snap: Snapshot) -> bool:
        """Install a leader's snapshot unless our log already covers it (5.3, 7)."""
        meta = snap.meta
        log = self.log
        if meta.index <= log.committed:
            return False
        if log.match_term(meta.index, meta.term):
            # our log already holds that entry, hence (log matching) everything before it
            log.commit_to(meta.index)
            return False
        log.restore(snap)
        self.voters = set(meta.conf_state.voters)
        self.learners = set(meta.conf_state.learners)
        return True

    # ----------------------------------------------------------- ReadIndex
    def _leader_read(self, ctx: bytes, requester: int) -> None:
        log = self.log
        if log.term_or_zero(log.committed) != self.term:
            # diss. 6.4 step 1: wait until this leader has committed an entry of its term
            self.read_only.wait_for_commit(ctx, requester)
            return
        if self.voters == {self.id}:
            self._answer_read(log.committed, ctx, requester)
            return
        # one round in flight at a time (as etcd's server does): a round per read would
        # cost 2 messages per follower per read under load
        self.read_only.add_request(log.committed, ctx, requester, self.id, self.voters)

    def _release_reads(self) -> None:
        for index, ctx, req in self.read_only.release(self.id, self.voters):
            self._answer_read(index, ctx, req)

    def _answer_read(self, index: int, ctx: bytes, requester: int) -> None:
        if requester == self.id:
            self.read_states.append(ReadState(index, ctx))
        else:
            self._send(Message(MsgType.READ_INDEX_RESP, requester, self.id, self.term,
                               index=index, context=ctx))

    # ----------------------------------------------------------- follower / candidate
    def _step_follower(self, m: Message) -> None:
        t = m.type
        if t == MsgType.APP:
            self.election_elapsed = 0
            self.leader_id = m.frm
            self._handle_append(m)
        elif t == MsgType.HEARTBEAT:
            self.election_elapsed = 0
            self.leader_id = m.frm
            self.log.commit_to(min(m.commit, self.log.last_index()))
            self._send(Message(MsgType.HEARTBEAT_RESP, m.frm, self.id, self.term, index=m.index))
        elif t == MsgType.SNAP:
            self.election_elapsed = 0
            self.leader_id = m.frm
            self._handle_snapshot_chunk(m)
        elif t == MsgType.TIMEOUT_NOW:
            self.campaign(transfer=True)
        elif t == MsgType.READ_INDEX_RESP:
            self.read_states.append(ReadState(m.index, m.context))
        elif t == MsgType.READ_INDEX:
            if self.leader_id != NONE:
                self._send(Message(MsgType.READ_INDEX, self.leader_id, m.frm, self.term,
                                   context=m.context))
        elif t == MsgType.TRANSFER_LEADER:
            if self.leader_id != NONE:
                self._send(Message(MsgType.TRANSFER_LEADER, self.leader_id, m.frm, self.term,
                                   index=m.index))

    def _step_candidate(self, m: Message) -> None:
        t = m.type
        if t in (MsgType.APP, MsgType.HEARTBEAT, MsgType.SNAP):
            self._become_follower(m.term, m.frm)   # 5.2: a leader of our term exists
            self._step_follower(m)
        elif (t == MsgType.VOTE_RESP and self.role == Role.CANDIDATE) or \
                (t == MsgType.PRE_VOTE_RESP and self.role == Role.PRE_CANDIDATE):
            self.votes.setdefault(m.frm, not m.reject)
            result = vote_result(self.voters, self.votes)
            if result == VoteResult.WON:
                if self.role == Role.PRE_CANDIDATE:
                    self._become_candidate()
                    self._request_votes(MsgType.VOTE, self.term, b"")
                else:
                    self._become_leader()
            elif result == VoteResult.LOST:
                self._become_follower(self.term, NONE)

    def _handle_append(self, m: Message) -> None:
        log = self.log
        if m.index < log.committed:
            self._send(Message(MsgType.APP_RESP, m.frm, self.id, self.term, index=log.committed))
            return
        last_new = log.maybe_append(m.index, m.log_term, m.commit, m.entries)
        if last_new is not None:
            self._send(Message(MsgType.APP_RESP, m.frm, self.id, self.term, index=last_new))
            return
        hint = min(m.index, log.last_index())
        hint = log.find_conflict_by_term(hint, m.log_term)
        self._send(Message(MsgType.APP_RESP, m.frm, self.id, self.term, index=m.index,
                           reject=True, reject_hint=hint, log_term=log.term_or_zero(hint)))

    # =========================================================== role changes
    def _reset(self, term: int) -> None:
        if term != self.term:
            self.term = term
            self.vote = NONE
        self.leader_id = NONE
        self.election_elapsed = 0
        self.heartbeat_elapsed = 0
        self._reset_timeout()
        self.votes = {}
        self._abort_transfer()
        self.read_only.reset()
        self.bcast_pending = False
        self.prs = {}

    def _reset_timeout(self) -> None:
        e = self.cfg.election_tick
        self.randomized_timeout = e + self.rng.randrange(e)

    def _become_follower(self, term: int, leader: int) -> None:
        self._reset(term)
        self.role = Role.FOLLOWER
        self.leader_id = leader

    def _become_pre_candidate(self) -> None:
        self.role = Role.PRE_CANDIDATE
        self.votes = {}
        self.leader_id = NONE
        self.prs = {}
        self._reset_timeout()

    def _become_candidate(self) -> None:
        self._reset(self.term + 1)
        self.vote = self.id
        self.role = Role.CANDIDATE

    def _become_leader(self) -> None:
        self._reset(self.term)
        self.role = Role.LEADER
        self.leader_id = self.id
        log = self.log
        last = log.last_index()
        for pid in self.voters | self.learners:
            self.prs[pid] = Progress(last + 1, self.cfg.max_inflight_msgs, pid in self.learners)
        me = self.prs.get(self.id)
        if me is not None:
            me.recent_active = True
            me.match = log.persisted_last_index()
            me.become_replicate()
        # conf changes in the uncommitted tail are not applied yet: none may be proposed
        self.pending_conf_index = last
        # 5.4.2 / diss. 6.4: an empty entry of our term lets us commit (and serve reads)
        log.append([Entry(self.term, last + 1, EntryType.NORMAL, b"")])
        self.bcast_pending = True

    def _request_votes(self, kind: MsgType, term: int, context: bytes) -> None:
        # our own vote
        self.votes[self.id] = True
        if vote_result(self.voters, self.votes) == VoteResult.WON:   # a single-voter cluster
            if kind == MsgType.PRE_VOTE:
                self._become_candidate()
                self._request_votes(MsgType.VOTE, self.term, context)
            else:
                self._become_leader()
            return
        li, lt = self.log.last_index(), self.log.last_term()
        for v in sorted(self.voters):
            if v != self.id:
                self._send(Message(kind, v, self.id, term, lt, li, context=context))

    def _abort_transfer(self) -> None:
        self.lead_transferee = NONE

    def _check_can_propose(self) -> None:
        if self.role != Role.LEADER:
            raise NotLeader(self.leader_id)
        if self.lead_transferee != NONE:
            raise ProposalDropped(f"leadership is being transferred to {self.lead_transferee}")
        if self.id not in self.voters:
            raise ProposalDropped("this leader is being removed from the cluster")

    # =========================================================== membership
    def _apply_conf_change(self, cc: ConfChange) -> None:
        conf = confchange.applied_conf(self.conf_state, cc)
        self.voters, self.learners = set(conf.voters), set(conf.learners)
        if self.role != Role.LEADER:
            return
        members = self.voters | self.learners
        for pid in list(self.prs):
            if pid not in members:
                del self.prs[pid]
                self.read_only.forget(pid)
        added = []
        for pid in members:
            pr = self.prs.get(pid)
            if pr is None:
                pr = self.prs[pid] = Progress(self.log.last_index() + 1, self.cfg.max_inflight_msgs)
                pr.recent_active = True
                added.append(pid)
            pr.is_learner = pid in self.learners
        if self.lead_transferee not in self.voters:
            self._abort_transfer()
        if self.id not in self.voters:
            # removed leader (diss. 4.2.2): hand over to the most up-to-date voter, step down
            best = max((v for v in self.voters if v in self.prs),
                       key=lambda v: (self.prs[v].match, -v), default=NONE)
            if best != NONE and self.prs[best].match == self.log.last_index():
                self._send(Message(MsgType.TIMEOUT_NOW, best, self.id, self.term))
            self._become_follower(self.term, NONE)
            return
        for pid in added:
            if pid != self.id:
                self._send_append(pid)     # probe a new server now, not at the next heartbeat
        if self._maybe_commit():
            self.bcast_pending = True

    def _replay_conf_changes(self) -> None:
        """After a restart, re-apply conf changes between the snapshot and `applied`."""
        lo = self.log.first_index()
        hi = min(self.log.applied, self.log.last_index()) + 1
        if hi <= lo:
            return
        for e in self.log.entries(lo, hi):
            if e.type == EntryType.CONF_CHANGE:
                self._apply_conf_change(ConfChange.decode(e.data))

    # =========================================================== output
    def _send(self, m: Message) -> None:
        if (self.role == Role.LEADER and m.type in _SEND_NOW) or m.type in _SEND_NOW_ANY_ROLE:
            self.msgs.append(m)
        else:
            self.msgs_after.append(m)
