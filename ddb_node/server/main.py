"""`ddb node`: parse the command line into NodeOptions and run one node until SIGTERM."""
from __future__ import annotations

import argparse
import json
import logging
import re
import sys

from ddb_node.node_ids import internal_id

from .http.format import FlagError, parse_duration
from .node import StartupRefused, run_node
from .options import ELECTION_TICK, HEARTBEAT_TICK, TICK_MS, NodeOptions, tcp


def parse_peers(text: str | None) -> dict:
    """'1=tcp://h:p1/tcp://h:c1,2=...' or a JSON object {id: {peer, client, http}}."""
    if not text:
        return {}
    text = text.strip()
    if text.startswith("{"):
        return {internal_id(k): dict(v, name=None if str(internal_id(k)) == str(k) else str(k))
                for k, v in json.loads(text).items()}
    out = {}
    for item in text.split(","):
        nid, _, addrs = item.partition("=")
        parts = re.split(r"(?<![:/])/(?!/)", addrs, maxsplit=1)
        peer, client = parts[0], (parts[1] if len(parts) > 1 else "")
        if not nid.strip() or not peer:
            raise ValueError(f"bad peer {item!r}: use ID=PEER_ADDR/CLIENT_ADDR")
        out[internal_id(nid.strip())] = {"peer": tcp(peer), "client": tcp(client) if client.strip() else None,
                         "http": None}
    return out


def duration(text: str) -> float:
    """A command-line duration: Go's form (rqlite's flags: 30s, 48h, 1m30s) or seconds."""
    try:
        return parse_duration(text)
    except FlagError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def add_node_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--id", required=True,
                   help="this node's id: a string, as rqlite's (\"1\", \"0\", \"node-a\")")
    p.add_argument("--data-dir", help="directory for raft.db and data.db")
    p.add_argument("--storage", choices=("disk", "memory"), default="disk")
    p.add_argument("--listen", required=True, help="peer address, e.g. tcp://127.0.0.1:7001")
    p.add_argument("--client", required=True, help="client address, e.g. tcp://127.0.0.1:8001")
    p.add_argument("--http", default=None, help="HTTP API address host:port (rqlite-compatible)")
    p.add_argument("--http-workers", type=int, default=None,
                   help="processes that accept the HTTP API's connections and answer its reads "
                        "on other cores; the node serves the rest (default: DDB_HTTP_WORKERS or 0)")
    p.add_argument("--peers", default=None,
                   help="initial members: ID=PEER/CLIENT,... or a JSON object (include this node)")
    p.add_argument("--join", default=None, help="client address(es) of members to join, comma-separated")
    p.add_argument("--cluster-id", default="ddb")
    p.add_argument("--tick-ms", type=int, default=TICK_MS)
    p.add_argument("--election-tick", type=int, default=ELECTION_TICK)
    p.add_argument("--heartbeat-tick", type=int, default=HEARTBEAT_TICK)
    p.add_argument("--snapshot-entries", type=int, default=20_000)
    p.add_argument("--snapshot-trailing", type=int, default=2_000)
    p.add_argument("--snapshot-bytes", type=int, default=64 << 20,
                   help="also snapshot after this many bytes of applied log entries, and keep at "
                        "most half of it behind a snapshot (0: count entries only)")
    p.add_argument("--snapshot-chunk", type=int, default=1 << 20,
                   help="bytes of a snapshot per message to a follower")
    p.add_argument("--raft-reap-node-timeout", type=duration, default=0.0, metavar="DURATION",
                   help="the leader removes a voter it has not heard from for this long "
                        "(Go duration or seconds, e.g. 48h; 0, the default: never)")
    p.add_argument("--raft-reap-read-only-node-timeout", type=duration, default=0.0,
                   metavar="DURATION", help="the same for a non-voting node (0: never)")
    p.add_argument("--curve-keys", default=None, help="JSON file with CURVE keys (ddb keygen)")
    p.add_argument("--log-level", default="WARNING")
    # rqlite's clustering, security and extension options (README "Clustering")
    p.add_argument("--non-voter", "--raft-non-voter", dest="non_voter", action="store_true",
                   help="join as a read-only replica that never votes (needs --join)")
    p.add_argument("--bootstrap-expect", type=int, default=0, metavar="N",
                   help="wait until the N nodes named by --join are up, then form the cluster")
    p.add_argument("--raft-adv-addr", default=None, help="peer address the other nodes use")
    p.add_argument("--client-adv-addr", default=None, help="client address the others use")
    p.add_argument("--http-adv-addr", default=None, help="HTTP address clients are told about")
    p.add_argument("--raft-cluster-remove-shutdown", dest="remove_on_shutdown",
                   action="store_true", help="leave the cluster on a graceful shutdown")
    p.add_argument("--recover-sole-survivor", dest="sole_survivor", action="store_true",
                   help="DATA_DIR/raft/peers.json names several voters and this node is the one "
                        "survivor whose log is forced; the others come back empty and --join it")
    p.add_argument("--auth", default=None, help="users file (rqlite's); also guards joins")
    p.add_argument("--join-as", default=None, help="the users-file user this node joins as")
    p.add_argument("--extensions-path", default=None,
                   help="SQLite loadable extensions to load: a directory, a .so file or a .zip")
    p.add_argument("--changes", choices=("on", "off"), default="on",
                   help="record every applied row change (change data capture; default on)")
    p.add_argument("--changes-keep-entries", type=int, default=100_000, metavar="N",
                   help="keep the changes of the last N log indexes (0: no bound)")
    p.add_argument("--changes-keep-bytes", type=int, default=64 << 20, metavar="BYTES",
                   help="keep at most about this many bytes of changes (0: no bound)")
    p.add_argument("--cdc-config", default=None, metavar="URL",
                   help="rqlite's CDC webhook: the leader POSTs batches of changes to URL")


def options_from_args(args: argparse.Namespace) -> NodeOptions:
    peers = parse_peers(args.peers)
    curve = None
    if args.curve_keys:
        with open(args.curve_keys) as f:
            k = json.load(f)
        curve = {key: (v.encode() if isinstance(v, str) else v) for key, v in k.items()
                 if key in ("public", "secret")}
        curve["server"] = curve["public"]      # every node serves with the cluster key pair
        curve["authorized"] = [a.encode() for a in k.get("authorized", [])]
    name = str(args.id)
    return NodeOptions(
        node_id=internal_id(name), node_name=name if str(internal_id(name)) != name else None, peer_addr=tcp(args.listen), client_addr=tcp(args.client), peers=peers,
        data_dir=args.data_dir, storage=args.storage, cluster_id=args.cluster_id,
        join=[a for a in (args.join or "").split(",") if a], http_addr=args.http, http_workers=args.http_workers,
        tick_ms=args.tick_ms, election_tick=args.election_tick, heartbeat_tick=args.heartbeat_tick,
        snapshot_entries=args.snapshot_entries, snapshot_trailing=args.snapshot_trailing,
        snapshot_bytes=args.snapshot_bytes, snapshot_chunk=args.snapshot_chunk, curve=curve,
        reap_node_timeout=args.raft_reap_node_timeout,
        reap_read_only_node_timeout=args.raft_reap_read_only_node_timeout,
        non_voter=getattr(args, "non_voter", False),
        bootstrap_expect=getattr(args, "bootstrap_expect", 0) or 0,
        peer_adv_addr=_adv(getattr(args, "raft_adv_addr", None)),
        client_adv_addr=_adv(getattr(args, "client_adv_addr", None)),
        http_adv_addr=getattr(args, "http_adv_addr", None),
        remove_on_shutdown=getattr(args, "remove_on_shutdown", False),
        sole_survivor=getattr(args, "sole_survivor", False),
        http_auth=getattr(args, "auth", None), join_as=getattr(args, "join_as", None),
        extensions_path=getattr(args, "extensions_path", None),
        changes=getattr(args, "changes", "on") != "off",
        changes_keep_entries=getattr(args, "changes_keep_entries", 100_000),
        changes_keep_bytes=getattr(args, "changes_keep_bytes", 64 << 20),
        cdc_webhook=getattr(args, "cdc_config", None))


def _adv(addr: str | None) -> str | None:
    return tcp(addr) if addr else None


def run(args: argparse.Namespace) -> int:
    logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.WARNING),
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        opts = options_from_args(args)
        opts.validate()
    except (ValueError, OSError) as e:
        print(f"ddb node: {e}", file=sys.stderr)
        return 2
    try:
        run_node(opts)
    except StartupRefused as e:
        print(f"ddb node: {e}", file=sys.stderr)
        return 2
    return 0


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="ddb node")
    add_node_args(p)
    return run(p.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
