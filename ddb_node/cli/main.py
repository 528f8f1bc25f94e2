"""The `ddb` command. Each subcommand lives in its own module and is imported lazily,
so `ddb --help` stays fast and a broken optional part never breaks the others."""
from __future__ import annotations

import argparse
import sys

from ddb_node.protocol import LEVELS


def _add_sim(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sim", help="run the deterministic simulator tour or a random seed")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--nodes", "-n", type=int, default=None,
                   help="cluster size (tour: 3; --random: chosen by the seed unless given)")
    p.add_argument("--random", action="store_true",
                   help="run one randomized fault schedule (as the test suite does) instead of the tour")
    p.add_argument("--requests", action="store_true",
                   help="run one randomized run of the whole request path (SQL clients through "
                        "Replicas at every level) instead of the tour")
    p.add_argument("--bank", action="store_true",
                   help="run one randomized run of the bank workload (interactive transactions)")
    p.add_argument("--steps", type=int, default=None, help="step budget for --random / --requests / --bank")
    p.add_argument("--quiet", "-q", action="store_true")
    p.set_defaults(func=_run_sim)


def _run_sim(args: argparse.Namespace) -> int:
    from ddb_node.sim import tour
    return tour.main(args)


def _add_node(sub) -> None:
    from ddb_node.server.main import add_node_args   # light: argparse and a dataclass
    p = sub.add_parser("node", help="run one node (until SIGTERM)",
                       description="Run one ddb node: its id, data directory, peer and client "
                                   "addresses, and the initial members (--peers) or a member to "
                                   "join (--join).")
    add_node_args(p)
    p.set_defaults(func=_run_node)


def _run_node(args: argparse.Namespace) -> int:
    from ddb_node.server.main import run
    return run(args)


def _add_rqlited(sub) -> None:
    # listed for --help only: main() hands everything after `rqlited` to rqlited's parser,
    # whose single-dash Go flags argparse would not leave alone
    sub.add_parser("rqlited", add_help=False,
                   help="run one node from rqlited's command line (-node-id 1 -http-addr ... "
                        "-raft-addr ... [-join ...] DATA_DIR)")


def _run_rqlited(argv: list[str]) -> int:
    from ddb_node.server import rqlited
    return rqlited.main(argv)


def _dir_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dir", default=None,
                   help="the local cluster's directory (default: $DDB_HOME/cluster or ~/.ddb/cluster)")


def _add_cluster(sub) -> None:
    p = sub.add_parser("cluster", help="start, inspect and stop a local cluster that outlives the command")
    csub = p.add_subparsers(dest="action", metavar="ACTION")
    up = csub.add_parser("up", help="start n detached nodes on loopback and wait for a leader")
    up.add_argument("-n", "--nodes", type=int, default=None,
                    help="number of nodes (default 3, or as many as DIR already holds)")
    _dir_arg(up)
    up.add_argument("--http", default=None, help="HTTP API addresses, one per node: ADDR,ADDR,ADDR")
    up.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    up.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for a leader")
    up.set_defaults(func=_run_cluster)
    st = csub.add_parser("status", help="a table of the nodes: state, role, term, indexes")
    _dir_arg(st)
    st.add_argument("--json", action="store_true", help="print JSON instead of a table")
    st.set_defaults(func=_run_cluster)
    dn = csub.add_parser("down", help="stop the nodes (SIGTERM, then SIGKILL); keeps the data")
    _dir_arg(dn)
    dn.add_argument("--purge", action="store_true", help="also delete the data and logs")
    dn.add_argument("--timeout", type=float, default=10.0, help="seconds before SIGKILL")
    dn.set_defaults(func=_run_cluster)
    p.set_defaults(func=lambda a: (p.print_help(), 2)[1])


def _run_cluster(args: argparse.Namespace) -> int:
    from ddb_node.cli import cluster as cc
    if args.action == "up":
        return cc.up(args.dir, args.nodes, args.http, timeout=args.timeout, host=args.host)
    if args.action == "status":
        return cc.status(args.dir, as_json=args.json)
    return cc.down(args.dir, purge=args.purge, timeout=args.timeout)


LEVEL_CHOICES = LEVELS


def _add_shell(sub) -> None:
    p = sub.add_parser("shell", help="interactive SQL (reads stdin when it is not a terminal)")
    p.add_argument("addresses", nargs="*", metavar="ADDR",
                   help="node client addresses (default: the cluster of `ddb cluster up`)")
    _dir_arg(p)
    p.add_argument("--level", default="weak", choices=LEVEL_CHOICES, help="read consistency")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    p.add_argument("--ascii", action="store_true", help="draw table borders with ASCII only")
    p.add_argument("--bail", action="store_true", help="stop at the first error (non-interactive)")
    p.set_defaults(func=_run_shell)


def _run_shell(args: argparse.Namespace) -> int:
    from ddb_node.cli import shell
    return shell.main(args)


def _add_sql(sub, name: str) -> None:
    write = name == "exec"
    p = sub.add_parser(name, usage=f"ddb {name} [options] [ADDR ...] SQL",
                       help=("run writes (or any SQL) through the leader" if write
                                   else "run a query and print the rows"),
                       description="ADDR... are node client addresses (default: the cluster of "
                                   "`ddb cluster up`); SQL is the last argument ('-' reads stdin).")
    p.add_argument("args", nargs="+", metavar="ADDR... SQL")
    _dir_arg(p)
    p.add_argument("--format", "-f", choices=("table", "json", "csv"), default=None,
                   help="output format (default: table on a terminal, JSON otherwise)")
    p.add_argument("--params", default=None,
                   help="parameters as JSON: a list for ?, an object for :name (@FILE reads a file)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds")
    if write:
        p.add_argument("--transaction", action="store_true",
                       help="run all statements in one transaction (all or nothing)")
    else:
        p.add_argument("--level", default="weak", choices=LEVEL_CHOICES, help="read consistency")
        p.add_argument("--freshness", type=float, default=None,
                       help="with --level none: refuse if the node heard from a leader longer ago (s)")
    p.set_defaults(func=_run_sql)


def _run_sql(args: argparse.Namespace) -> int:
    from ddb_node.cli import sql as cli_sql
    return cli_sql.execute(args) if args.command == "exec" else cli_sql.query(args)


def _add_bench(sub) -> None:
    p = sub.add_parser("bench", help="a quick, bounded load generator (prints JSON)")
    p.add_argument("addresses", nargs="*", metavar="ADDR")
    _dir_arg(p)
    p.add_argument("--clients", "-c", type=int, default=4, help="concurrent clients (threads)")
    p.add_argument("--ops", type=int, default=1000, help="operations in total")
    p.add_argument("--kind", choices=("insert", "batch", "read"), default="insert")
    p.add_argument("--level", default="weak", choices=LEVEL_CHOICES, help="read consistency (read)")
    p.add_argument("--batch-size", type=int, default=100, help="rows per request (batch)")
    p.add_argument("--rows", type=int, default=1000, help="rows to read from (read)")
    p.add_argument("--payload", type=int, default=16, help="bytes of text per row")
    p.add_argument("--duration", type=float, default=60.0, help="stop after this many seconds")
    p.add_argument("--table", default="ddb_bench")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per request")
    p.set_defaults(func=_run_bench)


def _run_bench(args: argparse.Namespace) -> int:
    from ddb_node.cli import bench
    return bench.main(args)


def _add_keygen(sub) -> None:
    p = sub.add_parser("keygen", help="write a CURVE keypair as JSON {public, secret}")
    p.add_argument("--out", "-o", default=None, help="file to write (mode 0600; default: stdout)")
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=_run_keygen)


def _run_keygen(args: argparse.Namespace) -> int:
    from ddb_node.cli import sql as cli_sql
    return cli_sql.keygen(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ddb", description="ddb: distributed SQLite replicated with Raft")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_node(sub)
    _add_rqlited(sub)
    _add_cluster(sub)
    _add_shell(sub)
    _add_sql(sub, "query")
    _add_sql(sub, "exec")
    _add_bench(sub)
    _add_keygen(sub)
    _add_sim(sub)
    t = sub.add_parser("tour", help="the guided tour on a real local cluster (the README's main job)")
    t.add_argument("--nodes", "-n", type=int, default=3)
    t.set_defaults(func=_run_tour)
    c = sub.add_parser("chaos", help="Jepsen-style fault injection against real node processes")
    from ddb_node.chaos.cli import add_args   # light: argparse and nemesis names only
    add_args(c)
    c.set_defaults(func=_run_chaos)
    return parser


def _run_tour(args: argparse.Namespace) -> int:
    from ddb_node.cli import tour
    return tour.main(args)


def _run_chaos(args: argparse.Namespace) -> int:
    from ddb_node.chaos.cli import run_args
    return run_args(args)


def _expected(e: BaseException) -> str | None:
    """The one-line message for an expected failure, or None for a bug (keep the traceback)."""
    from ddb_node.cli.cluster import CliError
    from ddb_node.cli.output import error_line
    from ddb_node.errors import DdbError
    if isinstance(e, CliError):
        return str(e)
    if isinstance(e, DdbError):
        return error_line(e)
    if isinstance(e, OSError):
        return f"{e.strerror or e}" + (f": {e.filename}" if getattr(e, "filename", None) else "")
    return None


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["rqlited"]:
        return _run_rqlited(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = None   # stdout's reader went away (| head): nothing left to say
        finally:
            return 0
    except Exception as e:
        msg = _expected(e)
        if msg is None:
            raise
        name = args.command + (f" {args.action}" if getattr(args, "action", None) else "")
        print(f"ddb {name}: {msg}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
