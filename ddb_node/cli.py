"""The `ddb` command. Each subcommand lives in its own module and is imported lazily,
so `ddb --help` stays fast and a broken optional part never breaks the others."""
from __future__ import annotations

import argparse
import sys


def _add_sim(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="run the deterministic simulator tour or a random seed")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--nodes", "-n", type=int, default=3)
    p.add_argument("--random", action="store_true",
                   help="run one randomized fault schedule (as the test suite does) instead of the tour")
    p.add_argument("--steps", type=int, default=None, help="step budget for --random")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=_run_sim)


def _run_sim(args: argparse.Namespace) -> int:
    from ddb_node.sim import tour
    return tour.main(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ddb", description="ddb: distributed SQLite replicated with Raft")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_sim(sub)
    t = sub.add_parser("tour", help="the guided tour (the README's main job)")
    t.add_argument("--seed", type=int, default=1)
    t.set_defaults(func=_run_tour)
    return parser


def _run_tour(args: argparse.Namespace) -> int:
    from ddb_node.sim import tour
    args.nodes, args.random, args.steps, args.quiet = 3, False, None, False
    return tour.main(args)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
