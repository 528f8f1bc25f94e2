"""`python -m ddb_node.chaos` (and `ddb chaos`): run a profile or a custom run."""
from __future__ import annotations

import argparse
import json
import random
import sys

from . import nemesis as nem      # no heavy imports: `ddb --help` stays fast

ALL_WORKLOADS = ["register", "bank", "append", "stale"]


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", choices=("quick", "long", "custom"), default="custom")
    p.add_argument("--seed", default="1", help="an integer, or 'random'")
    p.add_argument("--duration", type=float, default=None,
                   help="seconds per run (quick: 20, long: 600, custom: 30)")
    p.add_argument("--nodes", type=int, default=3)
    p.add_argument("--workloads", default=",".join(ALL_WORKLOADS))
    p.add_argument("--nemeses", default="kill,pause,partition-halves",
                   help="comma-separated: " + ", ".join(nem.NEMESES))
    p.add_argument("--netns", action="store_true", help="run every node in its own network namespace (root)")
    p.add_argument("--no-netns", action="store_true", help="never use network namespaces")
    p.add_argument("--hold", default="2,4", help="min,max seconds a fault stays")
    p.add_argument("--quiet", default="1.5,3", help="min,max seconds between faults")
    p.add_argument("--out", default="chaos-runs", help="directory for the run folders")
    p.add_argument("--only", default=None, help="quick profile: only these runs (comma-separated)")
    p.add_argument("--max-states", type=int, default=200_000)
    p.add_argument("--snapshot-entries", type=int, default=2000,
                   help="nodes snapshot and compact their log every this many entries")
    p.add_argument("--register-levels", default="linearizable,strong",
                   help="read levels of the register workload (add weak or none to see the "
                        "checker catch stale reads)")
    p.add_argument("--summarize", nargs="+", metavar="REPORT_JSON",
                   help="print totals over these runs' report.json files and exit")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _pair(s: str) -> tuple:
    a, _, b = s.partition(",")
    return float(a), float(b or a)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="ddb chaos", description=__doc__)
    add_args(p)
    return run_args(p.parse_args(argv))


def run_args(args) -> int:
    from .report import aggregate, render
    if args.summarize:
        print(json.dumps(aggregate(args.summarize), indent=1))
        return 0
    from .runner import Config, run
    seed = random.SystemRandom().randrange(1, 10**6) if args.seed == "random" else int(args.seed)
    netns = False if args.no_netns else (True if args.netns else None)
    if args.profile == "quick":
        from .profiles import quick
        cfgs = quick(args.duration or 20.0, netns, args.only.split(",") if args.only else None, args.out)
    elif args.profile == "long":
        from .profiles import long
        cfgs = [long(args.duration or 600.0, seed, netns, args.nodes, args.out)]
    else:
        cfgs = [Config(name="custom", seed=seed, duration=args.duration or 30.0, nodes=args.nodes,
                       workloads=args.workloads.split(","), nemeses=[n for n in args.nemeses.split(",") if n],
                       netns=bool(netns), hold=_pair(args.hold), quiet=_pair(args.quiet),
                       out_dir=args.out, max_states=args.max_states,
                       snapshot_entries=args.snapshot_entries,
                       register_levels=tuple(args.register_levels.split(",")))]
    for c in cfgs:
        c.snapshot_entries = args.snapshot_entries
        bad = [n for n in c.nemeses if n not in nem.NEMESES]
        if bad:
            print(f"unknown nemeses {bad}; use: {', '.join(nem.NEMESES)}", file=sys.stderr)
            return 2
    worst = 0
    for cfg in cfgs:
        rep = run(cfg)
        print(json.dumps(rep, indent=1, default=repr) if args.json else render(rep))
        print(f"reproduce: {cfg.reproduce()}")
        if rep["valid"] is False:
            worst = 1
        elif rep["valid"] == "unknown" and worst == 0:
            worst = 3
    return worst


if __name__ == "__main__":
    sys.exit(main())
