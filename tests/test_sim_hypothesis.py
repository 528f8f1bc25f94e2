"""Hypothesis drives the simulator: it picks the schedule (run some steps, partition,
heal, crash, restart, pause, resume, propose, force an election, transfer leadership,
drop/delay/duplicate, compact), invariants are checked after every simulator step,
and at the end the cluster must converge with a linearizable history. A failing
schedule shrinks to a short one.

HYPOTHESIS_PROFILE=thorough (or DDB_HYPOTHESIS_EXAMPLES=n) runs more examples."""
from __future__ import annotations

import os

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule

from ddb_node.raft.types import NotLeader, ProposalDropped, RaftError
from ddb_node.sim import kv
from ddb_node.sim.clients import Workload
from ddb_node.sim.linearizability import VIOLATION, check_kv
from ddb_node.sim.simulator import Simulator

EXAMPLES = int(os.environ.get("DDB_HYPOTHESIS_EXAMPLES", "40"))

node = st.integers(min_value=0, max_value=6)


class ClusterSchedule(RuleBasedStateMachine):
    @initialize(seed=st.integers(0, 2**20), n=st.sampled_from([3, 5]),
                small=st.booleans())
    def start(self, seed, n, small):
        config = {"max_entries_per_msg": 2, "max_inflight_msgs": 2,
                  "max_snapshot_chunk": 64} if small else {}
        self.sim = Simulator(n, seed, config=config, auto_compact=(8, 1))
        self.wl = Workload(self.sim, 3, ("a", "b"))
        self.ids = list(self.sim.nodes)
        self.writes = 0

    def _id(self, k: int) -> int:
        return self.ids[k % len(self.ids)]

    @rule(k=st.integers(1, 400))
    def run(self, k):
        for _ in range(k):
            self.wl.poll()
            if self.sim.step() is None:
                break

    @rule(k=node, data=st.data())
    def partition(self, k, data):
        a = self._id(k)
        side = data.draw(st.sets(st.sampled_from(self.ids)), label="side")
        side.add(a)
        self.sim.partition([sorted(side), [i for i in self.ids if i not in side]])

    @rule(k=node)
    def isolate(self, k):
        self.sim.isolate(self._id(k))

    @rule(a=node, b=node, both=st.booleans())
    def cut(self, a, b, both):
        if self._id(a) != self._id(b):
            self.sim.cut(self._id(a), self._id(b), both)

    @rule()
    def heal(self):
        self.sim.heal()

    @rule(rate=st.sampled_from([0.1, 0.3]), dup=st.sampled_from([0.0, 0.2]),
          delay=st.sampled_from([0, 5, 30]))
    def lossy(self, rate, dup, delay):
        self.sim.drop(rate=rate)
        self.sim.duplicate(dup)
        self.sim.delay(ms=delay, jitter=delay)

    @rule()
    def clear(self):
        self.sim.clear_faults()

    @rule(k=node)
    def crash(self, k):
        self.sim.crash(self._id(k))

    @rule(k=node)
    def restart(self, k):
        self.sim.restart(self._id(k))

    @rule(k=node)
    def pause(self, k):
        self.sim.pause(self._id(k))

    @rule(k=node)
    def resume(self, k):
        self.sim.resume(self._id(k))

    @rule(k=node)
    def campaign(self, k):
        i = self._id(k)
        if self.sim.nodes[i].up:
            self.sim.campaign(i)

    @rule(k=node)
    def propose(self, k):
        i = self._id(k)
        if self.sim.nodes[i].up:
            self.writes += 1
            try:
                self.sim.submit(i, kv.put("z", self.writes, f"h{self.writes}"))
            except (NotLeader, ProposalDropped):
                pass

    @rule(k=node)
    def transfer(self, k):
        lead = self.sim.leader()
        if lead is not None and self.sim.nodes[lead].up:
            try:
                self.sim.transfer_leader(self._id(k), via=lead)
            except (RaftError, ValueError):
                pass

    @rule(k=node)
    def compact(self, k):
        self.sim.compact(self._id(k), keep=0)

    def teardown(self):
        sim = getattr(self, "sim", None)
        if sim is None:
            return
        sim.net.reset()
        for i in self.ids:
            sim.restart(i)
            sim.resume(i)
        self.wl.stop()
        for k in range(60_000):
            self.wl.poll()
            if k % 64 == 0 and sim.converged() and self.wl.idle():
                break
            sim.step()
        assert sim.converged(), "no convergence after healing:\n" + sim.describe()
        lin = check_kv(self.wl.resolved())
        assert lin.verdict != VIOLATION, lin.summary()


TestClusterSchedule = ClusterSchedule.TestCase
TestClusterSchedule.settings = settings(
    max_examples=EXAMPLES, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
