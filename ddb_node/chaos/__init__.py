"""Jepsen-style reliability testing of ddb on real processes and real network faults.

Concurrent clients run workloads against a real cluster (LocalCluster on loopback, or
NetnsCluster: one network namespace per node) while a nemesis injects faults; afterwards the
checkers decide, from the recorded history alone, whether anything was lost or inconsistent.

    python -m ddb_node.chaos --profile quick            # the CI profile (fixed seeds)
    python -m ddb_node.chaos --profile long --duration 600 --seed random

Modules: history (recording), workloads (register, bank, appends, stale reads), nemesis
(process, transport and network faults), netns (namespaces, veth, bridge, iptables, tc),
checkers (linearizability, bank, appends, convergence, crashes), report, runner, profiles,
fuzz (mutation-based frame strategies), crash (fsync shim and power-loss simulation).
See docs/reliability.md.
"""
