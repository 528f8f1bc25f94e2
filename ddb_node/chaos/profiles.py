"""Profiles: named lists of runs.

quick  the CI profile: fixed seeds, five short runs of ~20 s, each with its own nemesis
       family, all four workloads (about 3 minutes in total on two cores).
long   one run of `--duration` seconds (default 600) with every nemesis (the real network
       ones too when namespaces are available) and a random seed unless one is given.
"""
from __future__ import annotations

from . import nemesis as nem
from .runner import Config

QUICK = [
    ("process", 11, ["kill-leader", "kill", "pause-leader", "pause"]),
    ("partition", 12, ["partition-halves", "partition-ring", "isolate-leader"]),
    ("messages", 13, ["drop", "delay", "reorder", "duplicate", "transfer"]),
    ("membership", 14, ["membership", "transfer", "kill-leader"]),
    ("network", 15, ["net-isolate-leader", "net-partition", "net-loss", "net-delay"]),
]


def quick(duration: float = 20.0, netns: bool | None = None, only=None, out_dir="chaos-runs") -> list[Config]:
    from .netns import available
    can_netns = available() is None if netns is None else netns
    out = []
    for name, seed, nemeses in QUICK:
        if only and name not in only:
            continue
        use_ns = name == "network"
        if use_ns and not can_netns:
            continue
        out.append(Config(name=name, profile="quick", seed=seed, duration=duration, nodes=3,
                          nemeses=nemeses, netns=use_ns, hold=(2.0, 4.0), quiet=(1.5, 3.0),
                          out_dir=out_dir, max_states=100_000, op_timeout=3.0))
    return out


def long(duration: float = 600.0, seed: int = 1, netns: bool | None = None, nodes: int = 3,
         out_dir="chaos-runs") -> Config:
    from .netns import available
    use_ns = available() is None if netns is None else netns
    nemeses = nem.PROCESS + nem.TRANSPORT + nem.CLUSTER_OPS
    if use_ns:
        nemeses += sorted(nem.NET_NEMESES)
    return Config(name="long", profile="long", seed=seed, duration=duration, nodes=nodes,
                  nemeses=nemeses, netns=use_ns, hold=(2.0, 10.0), quiet=(2.0, 6.0),
                  out_dir=out_dir, max_states=300_000, op_timeout=3.0)
