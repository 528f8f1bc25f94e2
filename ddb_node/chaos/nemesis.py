"""Nemeses: the faults injected while the clients run, one at a time, each healed before the
next (so that the cluster always *can* recover, and recovery times can be measured).

Process faults: kill (-9, then restart from the data directory), pause (SIGSTOP, SIGCONT),
each against a random node or the leader. Transport faults (ddb's own peer filters, sent to
every node): random-halves partition, majority ring (for 3 nodes: a bridge, one node sees
both sides), isolate the leader, drop, delay, reorder, duplicate. Cluster operations:
membership change (remove a voter, maybe the leader; then add a fresh node), leadership
transfer. Real network faults (NetnsCluster only): links taken down, iptables partitions,
iptables random loss, kernel delay (tc).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


@dataclass
class Injected:
    detail: dict
    heal: Callable[[], None]
    targets_leader: bool = False


def _leader(cluster):
    try:
        return cluster.leader()
    except Exception:  # noqa: BLE001
        return None


def _running(cluster) -> list[int]:
    return [i for i in cluster.node_ids() if cluster.nodes[i].state == "running"]


def _target(cluster, rng, leader_only: bool):
    ids = _running(cluster)
    lead = _leader(cluster)
    if leader_only and lead in ids:
        return lead, True
    t = rng.choice(ids)
    return t, t == lead


# ------------------------------------------------------------------ process faults
def _process_fault(cluster, rng, leader_only, stop, undo):
    t, is_lead = _target(cluster, rng, leader_only)
    stop(t)
    return Injected({"node": t, "leader": is_lead}, lambda: undo(t), is_lead)


def kill(cluster, rng, leader_only=False):
    return _process_fault(cluster, rng, leader_only, cluster.kill, cluster.restart)


def kill_leader(cluster, rng):
    return kill(cluster, rng, True)


def pause(cluster, rng, leader_only=False):
    return _process_fault(cluster, rng, leader_only, cluster.pause, cluster.resume)


def pause_leader(cluster, rng):
    return pause(cluster, rng, True)


# ------------------------------------------------------------------ transport partitions
def _halves(cluster, rng):
    ids = list(cluster.node_ids())
    rng.shuffle(ids)
    k = len(ids) // 2
    return [sorted(ids[:k]), sorted(ids[k:])]


def partition_halves(cluster, rng):
    lead = _leader(cluster)
    groups = _halves(cluster, rng)
    cluster.partition(groups)
    minority = groups[0]
    return Injected({"groups": groups, "leader": lead}, cluster.heal, lead in minority)


def partition_ring(cluster, rng):
    """Majority ring: every node sees a majority (itself and its ring neighbours), no two
    nodes the same one. With 3 nodes that is a bridge: one node sees both others, which
    do not see each other."""
    ids = list(cluster.node_ids())
    rng.shuffle(ids)
    n = len(ids)
    lead = _leader(cluster)
    cuts = []
    if n <= 3:
        if n >= 2:
            cuts = [(ids[0], ids[-1])]
    else:
        reach = (n // 2 + 1) // 2    # neighbours on each side: 2*reach+1 is a majority
        for a in range(n):
            for b in range(a + 1, n):
                d = min(b - a, n - (b - a))
                if d > reach:
                    cuts.append((ids[a], ids[b]))
    for a, b in cuts:
        cluster.cut(a, b)
    return Injected({"ring": ids, "cuts": cuts, "leader": lead}, cluster.heal,
                    any(lead in c for c in cuts))


def isolate_leader(cluster, rng):
    lead = _leader(cluster)
    if lead is None:
        lead = rng.choice(_running(cluster))
    cluster.isolate(lead)
    return Injected({"node": lead}, cluster.heal, True)


# ------------------------------------------------------------------ transport message faults
def drop(cluster, rng):
    rate = round(rng.uniform(0.1, 0.3), 2)
    cluster.drop(rate)
    return Injected({"rate": rate}, cluster.heal)


def delay(cluster, rng):
    ms, jitter = rng.choice([20, 50, 100, 200]), rng.choice([0, 20, 50])
    cluster.delay(ms, jitter)
    return Injected({"ms": ms, "jitter": jitter}, cluster.heal)


def reorder(cluster, rng):
    rate = round(rng.uniform(0.2, 0.5), 2)
    cluster.delay(5, 30)
    cluster.reorder(rate)
    return Injected({"rate": rate, "delay_ms": 5, "jitter": 30}, cluster.heal)


def duplicate(cluster, rng):
    rate = round(rng.uniform(0.1, 0.4), 2)
    cluster.duplicate(rate)
    return Injected({"rate": rate}, cluster.heal)


# ------------------------------------------------------------------ cluster operations
def membership(cluster, rng):
    """Remove a voter (the leader one time in three), then, as the heal, add a fresh node."""
    voters = _running(cluster)
    lead = _leader(cluster)
    removed = None
    if len(voters) >= 3:
        removed = lead if (lead in voters and rng.random() < 1 / 3) else rng.choice(voters)
        cluster.remove_node(removed, timeout=15.0)

    def heal():
        cluster.add_node(timeout=60.0)
    return Injected({"removed": removed, "leader": lead}, heal, removed == lead and removed is not None)


def transfer(cluster, rng):
    lead = _leader(cluster)
    others = [i for i in _running(cluster) if i != lead]
    to = rng.choice(others)
    got = cluster.transfer_leader(to, timeout=5.0)
    return Injected({"from": lead, "to": to, "leader_after": got}, lambda: None, False)


# ------------------------------------------------------------------ real network (netns)
def net_isolate_leader(cluster, rng):
    lead = _leader(cluster)
    if lead is None:
        lead = rng.choice(_running(cluster))
    cluster.link_down(lead)
    return Injected({"node": lead, "how": "veth link down"}, cluster.net_heal, True)


def net_partition(cluster, rng):
    lead = _leader(cluster)
    groups = _halves(cluster, rng)
    if len(groups[0]) == 1 and rng.random() < 0.5:
        # a single-node minority: take its link down instead of filtering
        cluster.link_down(groups[0][0])
        how = "veth link down"
    else:
        cluster.net_partition(groups)
        how = "iptables DROP"
    return Injected({"groups": groups, "leader": lead, "how": how}, cluster.net_heal,
                    lead in groups[0])


def net_loss(cluster, rng):
    p = rng.choice([0.1, 0.2, 0.3])
    cluster.net_loss(p)
    return Injected({"loss": p, "how": "iptables statistic"}, cluster.net_heal)


def net_delay(cluster, rng):
    ms = rng.choice([50, 100, 200])
    how = cluster.net_delay(ms, ms // 4)
    return Injected({"ms": ms, "how": how}, cluster.net_heal)


NEMESES = {
    "kill": kill, "kill-leader": kill_leader, "pause": pause, "pause-leader": pause_leader,
    "partition-halves": partition_halves, "partition-ring": partition_ring,
    "isolate-leader": isolate_leader, "drop": drop, "delay": delay, "reorder": reorder,
    "duplicate": duplicate, "membership": membership, "transfer": transfer,
    "net-isolate-leader": net_isolate_leader, "net-partition": net_partition,
    "net-loss": net_loss, "net-delay": net_delay,
}
NET_NEMESES = {"net-isolate-leader", "net-partition", "net-loss", "net-delay"}
PROCESS = ["kill", "kill-leader", "pause", "pause-leader"]
TRANSPORT = ["partition-halves", "partition-ring", "isolate-leader", "drop", "delay", "reorder",
             "duplicate"]
CLUSTER_OPS = ["membership", "transfer"]
