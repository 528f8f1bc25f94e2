"""A random fault schedule: every so often (virtual time) pick one fault or control
action and apply it to the simulator. Everything is drawn from the rng handed in.

Actions: partition, isolate, cut (one or both directions), heal, drop (rate, every
n-th, one chosen message), delay with jitter, reorder, duplicate, clear, crash,
restart, pause, resume, transfer leadership, force an election, add a node (learner,
promoted once caught up), remove a node, snapshot + compact a node's log.

Membership is kept sane so the cluster can still make progress and converge in the
end: at most 7 members, at least 3 voters, a node id is never reused, and a node is
retired (stopped for good) only once its removal is applied by the leader.
"""
from __future__ import annotations

import random
from collections import Counter

from ddb_node.raft.types import (ConfChange, ConfChangeType, EntryType, MsgType, NotLeader,
                                 ProposalDropped, RaftError, Role)

_MSG_TYPES = [MsgType.APP, MsgType.APP_RESP, MsgType.VOTE, MsgType.VOTE_RESP,
              MsgType.HEARTBEAT, MsgType.HEARTBEAT_RESP, MsgType.SNAP, MsgType.SNAP_RESP,
              MsgType.PRE_VOTE, MsgType.PRE_VOTE_RESP]

ACTIONS = {  # name: weight (tests may pass their own mix)
    "partition": 5, "isolate": 4, "cut": 4, "heal": 12, "drop_rate": 3, "drop_every": 2,
    "drop_one": 3, "delay": 3, "reorder": 2, "duplicate": 2, "clear": 5, "crash": 5,
    "restart": 8, "pause": 3, "resume": 5, "transfer": 3, "campaign": 2, "add": 3,
    "remove": 2, "promote": 6, "compact": 6, "snapshot_all": 1,
}


class Nemesis:
    def __init__(self, sim, rng: random.Random, interval_ms: tuple[float, float] = (20.0, 150.0),
                 max_members: int = 7, min_voters: int = 3, actions: dict | None = None,
                 compact_before_add: bool = False):
        self.sim = sim
        self.rng = rng
        self.interval_ms = interval_ms
        self.max_members = max_members
        self.min_voters = min_voters
        self.next_at = sim.now + interval_ms[1] * rng.random()
        self.next_id = max(sim.nodes) + 1
        self.joining: set[int] = set()
        self.removing: set[int] = set()
        self.removed: set[int] = set()    # nodes whose removal some member applied (committed)
        sim.apply_callbacks.append(self._on_apply)
        self.counts: Counter = Counter()
        self.log: list[str] = []
        actions = ACTIONS if actions is None else actions
        self._names = [n for n, w in actions.items() if w > 0]
        self._weights = [actions[n] for n in self._names]
        self.active = True
        # work-around knob for exploring past a core bug where a joining node that
        # replays the log from index 1 never learns the bootstrap voters: compact
        # every live node first so the newcomer gets a snapshot (with a ConfState)
        self.compact_before_add = compact_before_add

    # ---- helpers -------------------------------------------------------------
    def _alive(self):
        return [n.id for n in self.sim.nodes.values() if n.alive]

    def _present(self):
        return [n.id for n in self.sim.nodes.values() if not n.retired]

    def _record(self, what: str) -> None:
        self.log.append(f"t={self.sim.now:.1f} {what}")

    def poll(self) -> None:
        if not self.active or self.sim.now < self.next_at:
            return
        lo, hi = self.interval_ms
        self.next_at = self.sim.now + lo + (hi - lo) * self.rng.random()
        name = self.rng.choices(self._names, self._weights)[0]
        try:
            done = getattr(self, "_" + name)()
        except (NotLeader, ProposalDropped):
            done = False
        except (RaftError, ValueError) as e:  # a refused request is fine; anything else propagates
            self._record(f"{name} refused: {e}")
            done = False
        if done:
            self.counts[name] += 1
        self.tend()

    def _on_apply(self, sim, node_id, entry, result) -> None:
        if entry.type == EntryType.CONF_CHANGE:
            cc = ConfChange.decode(entry.data)
            if cc.type == ConfChangeType.REMOVE:
                self.removed.add(cc.node_id)

    def tend(self) -> None:
        """Membership housekeeping: retire nodes whose removal is applied. Applied, not
        merely absent from the leader's configuration: a leader that has not applied a
        node's addition yet does not list it either (seed 779 retired a learner that way,
        and the addition, applied later, left a dead member the cluster waited for)."""
        sim = self.sim
        lid = sim.leader()
        if lid is None:
            return
        cs = sim.nodes[lid].raft.conf_state
        members = set(cs.voters) | set(cs.learners)
        for i in sorted(self.removing):
            if i != lid and i in self.removed and i not in members:
                self.removing.discard(i)
                sim.retire(i)
                self._record(f"retire n{i}")
        for i in sorted(self.joining):
            if i in members:
                self.joining.discard(i)

    # ---- network ---------------------------------------------------------------
    def _partition(self):
        ids = self._present()
        self.rng.shuffle(ids)
        k = self.rng.randint(1, max(1, len(ids) - 1))
        groups = [sorted(ids[:k]), sorted(ids[k:])]
        self.sim.partition(groups)
        self._record(f"partition {groups}")
        return True

    def _isolate(self):
        i = self.rng.choice(self._present())
        self.sim.isolate(i)
        self._record(f"isolate n{i}")
        return True

    def _cut(self):
        ids = self._present()
        a, b = self.rng.sample(ids, 2)
        both = self.rng.random() < 0.5
        self.sim.cut(a, b, both)
        self._record(f"cut n{a}->n{b}{' both' if both else ''}")
        return True

    def _heal(self):
        self.sim.heal()
        self._record("heal")
        return True

    def _link(self):
        if self.rng.random() < 0.5:
            return None
        return tuple(self.rng.sample(self._present(), 2))

    def _drop_rate(self):
        rate = self.rng.choice([0.05, 0.1, 0.2, 0.4])
        link = self._link()
        self.sim.drop(rate=rate, link=link)
        self._record(f"drop rate={rate} link={link}")
        return True

    def _drop_every(self):
        every = self.rng.randint(2, 10)
        link = self._link()
        self.sim.drop(every=every, link=link, count=self.rng.randint(1, 50))
        self._record(f"drop every={every} link={link}")
        return True

    def _drop_one(self):
        link = tuple(self.rng.sample(self._present(), 2))
        t = self.rng.choice(_MSG_TYPES + [None])
        self.sim.drop_next(link=link, type=t)
        self._record(f"drop next {t!s} on {link}")
        return True

    def _delay(self):
        ms = self.rng.choice([1, 5, 15, 40])
        jitter = self.rng.choice([0, 5, 20, 60])
        link = self._link()
        self.sim.delay(ms=ms, jitter=jitter, link=link)
        self._record(f"delay {ms}ms ±{jitter} link={link}")
        return True

    def _reorder(self):
        self.sim.reorder(self.rng.choice([0.1, 0.3, 0.6]), self.rng.choice([5.0, 20.0, 50.0]))
        return True

    def _duplicate(self):
        self.sim.duplicate(self.rng.choice([0.05, 0.2, 0.5]))
        return True

    def _clear(self):
        self.sim.clear_faults()
        self._record("clear faults")
        return True

    # ---- nodes -----------------------------------------------------------------
    def _crash(self):
        alive = self._alive()
        present = self._present()
        down = len(present) - len(alive)
        # mostly keep a majority up; sometimes go further (safety must hold anyway)
        if not alive or (down >= (len(present) - 1) // 2 and self.rng.random() < 0.8):
            return False
        i = self.rng.choice(alive)
        self.sim.crash(i)
        self._record(f"crash n{i}")
        return True

    def _restart(self):
        down = [n.id for n in self.sim.nodes.values() if not n.alive and not n.retired]
        if not down:
            return False
        i = self.rng.choice(down)
        self.sim.restart(i)
        self._record(f"restart n{i}")
        return True

    def _pause(self):
        cand = [n.id for n in self.sim.nodes.values() if n.alive and not n.paused]
        if not cand:
            return False
        i = self.rng.choice(cand)
        self.sim.pause(i)
        self._record(f"pause n{i}")
        return True

    def _resume(self):
        cand = [n.id for n in self.sim.nodes.values() if n.alive and n.paused]
        if not cand:
            return False
        i = self.rng.choice(cand)
        self.sim.resume(i)
        self._record(f"resume n{i}")
        return True

    # ---- control ---------------------------------------------------------------
    def _transfer(self):
        sim = self.sim
        lid = sim.leader()
        if lid is None:
            return False
        voters = [v for v in sim.nodes[lid].raft.conf_state.voters if v != lid]
        if not voters:
            return False
        to = self.rng.choice(voters)
        sim.transfer_leader(to, via=lid)
        self._record(f"transfer leadership n{lid} -> n{to}")
        return True

    def _campaign(self):
        cand = [n.id for n in self.sim.nodes.values() if n.up]
        if not cand:
            return False
        i = self.rng.choice(cand)
        self.sim.campaign(i)
        self._record(f"campaign n{i}")
        return True

    def _members(self):
        lid = self.sim.leader()
        if lid is None:
            return None, None
        return lid, self.sim.nodes[lid].raft.conf_state

    def _add(self):
        lid, cs = self._members()
        if lid is None or len(cs.voters) + len(cs.learners) + len(self.joining) >= self.max_members:
            return False
        pending = sorted(j for j in self.joining if j not in cs.voters and j not in cs.learners)
        if pending:
            i = pending[0]  # retry the pending one first
        else:
            i = self.next_id
            self.next_id += 1
            self.sim.start_node(i)
            self.joining.add(i)
        if self.compact_before_add:
            for n in list(self.sim.nodes.values()):
                if n.alive:
                    self.sim.compact(n.id, 0)
        self.sim.add_node(i)
        self._record(f"add learner n{i}")
        return True

    def _promote(self):
        lid, cs = self._members()
        if lid is None or not cs.learners:
            return False
        i = self.rng.choice(cs.learners)
        if not self.sim.caught_up(i, slack=2):
            return False
        self.sim.promote(i)
        self._record(f"promote n{i}")
        return True

    def _remove(self):
        lid, cs = self._members()
        if lid is None:
            return False
        cand = list(cs.learners)
        if len(cs.voters) > self.min_voters:
            cand += list(cs.voters)
        if not cand:
            return False
        i = self.rng.choice(cand)
        self.sim.remove_node(i)
        self.removing.add(i)
        self.joining.discard(i)         # never added again: ids are not reused
        self._record(f"remove n{i}{' (the leader)' if i == lid else ''}")
        return True

    def _compact(self):
        cand = [n.id for n in self.sim.nodes.values() if n.alive]
        if not cand:
            return False
        i = self.rng.choice(cand)
        keep = self.rng.choice([0, 0, 2, 10])
        return self.sim.compact(i, keep)

    def _snapshot_all(self):
        done = False
        for n in list(self.sim.nodes.values()):
            if n.alive:
                done = self.sim.compact(n.id, 0) or done
        return done

    # ---- the end -----------------------------------------------------------------
    def calm(self) -> None:
        """Stop faults and bring every node that should be up back up."""
        self.active = False
        sim = self.sim
        sim.net.reset()
        for n in list(sim.nodes.values()):
            if n.retired:
                continue
            if not n.alive:
                sim.restart(n.id)
            elif n.paused:
                sim.resume(n.id)
        self._record("calm: heal, clear, restart and resume everything")
