"""`ddb rqlited`: rqlited's command line (single-dash Go flags, the data directory last),
translated into `ddb node`'s options, so a script written for rqlited starts ddb unchanged.

    ddb rqlited -node-id 1 -http-addr localhost:4001 -raft-addr localhost:4002 ~/node.1
    ddb rqlited -node-id 2 -http-addr localhost:4003 -raft-addr localhost:4004 \\
        -join localhost:4002 ~/node.2

What differs, and why:
- ddb has a third address, the client (zmq) port that `-join`, forwarding and ddb's own
  clients use. It is derived from the Raft address: same host, Raft port + 1000
  (`CLIENT_PORT_OFFSET`), unless `-client-addr` (ddb's own flag) gives it. `-join` takes
  Raft addresses, as rqlited 8 does, and reaches each through the same rule.
- Node ids are strings as in rqlite (ddb_node/node_ids.py maps them onto the core's
  integers); the default id is the Raft address, as rqlited's.
- `-raft-adv-addr` also advertises the client address derived from it (port + 1000).
- A flag of rqlited's that ddb does not implement is refused by name, never silently
  ignored; ``IGNORED`` lists the few whose job ddb does its own way.
"""
from __future__ import annotations

import os
import sys

from . import main as node_main
from .http.endpoint import VERSION
from .http.format import FlagError, parse_duration

CLIENT_PORT_OFFSET = 1000

# rqlited flag -> (kind, default); kinds: str, bool, int, duration
FLAGS = {
    "node-id": ("str", ""), "http-addr": ("str", "localhost:4001"),
    "raft-addr": ("str", "localhost:4002"), "join": ("str", ""), "auth": ("str", ""),
    "http-cert": ("str", ""), "http-key": ("str", ""), "http-ca-cert": ("str", ""),
    "http-verify-client": ("bool", False), "raft-snap": ("int", None),
    "raft-reap-node-timeout": ("duration", None),
    "raft-reap-read-only-node-timeout": ("duration", None),
    "raft-log-level": ("str", "WARN"), "version": ("bool", False),
    "join-attempts": ("int", 5), "join-interval": ("duration", 3.0),
    "write-queue-capacity": ("int", 1024), "write-queue-batch-size": ("int", 128),
    "write-queue-timeout": ("duration", 0.05),
    "client-addr": ("str", ""),          # ddb's own: the zmq client address
    "http-adv-addr": ("str", ""), "raft-adv-addr": ("str", ""),
    "bootstrap-expect": ("int", 0), "bootstrap-expect-timeout": ("duration", None),
    "raft-non-voter": ("bool", False), "raft-cluster-remove-shutdown": ("bool", False),
    "extensions-path": ("str", ""), "join-as": ("str", ""),
}

# accepted, and done ddb's way (said once on stderr)
IGNORED = {
    "join-attempts": "ddb retries a join until it succeeds",
    "join-interval": "ddb backs off between join attempts by itself (0.2 s to 2 s)",
    "write-queue-capacity": "ddb's write queue has fixed bounds (1024, 128, 50 ms)",
    "write-queue-batch-size": "ddb's write queue has fixed bounds (1024, 128, 50 ms)",
    "write-queue-timeout": "ddb's write queue has fixed bounds (1024, 128, 50 ms)",
    "bootstrap-expect-timeout": "ddb waits for the expected nodes until they are up",
}

# rqlited's flags that ddb refuses, with the reason given to the user
UNSUPPORTED = {
    "disco-mode": "ddb has no discovery service", "disco-key": "ddb has no discovery service",
    "disco-config": "ddb has no discovery service",
    "node-cert": "peer links use CurveZMQ: ddb node --curve-keys",
    "node-key": "peer links use CurveZMQ: ddb node --curve-keys",
    "node-ca-cert": "peer links use CurveZMQ: ddb node --curve-keys",
    "node-no-verify": "peer links use CurveZMQ: ddb node --curve-keys",
    "node-verify-client": "peer links use CurveZMQ: ddb node --curve-keys",
    "node-verify-server-name": "peer links use CurveZMQ: ddb node --curve-keys",
    "fk": "foreign key enforcement is a PRAGMA ddb's policy keeps fixed",
    "on-disk-path": "ddb always keeps the database on disk in the data directory",
    "auto-backup": "no automatic backups to cloud storage",
    "auto-restore": "no automatic restores from cloud storage",
    "cdc-config": "no change data capture",
    "raft-snap-int": "ddb checks its snapshot threshold on every apply",
    "raft-snap-wal-size": "ddb snapshots by entries (-raft-snap)",
    "raft-heartbeat-timeout": "Raft timing is ddb's own (--tick-ms, --heartbeat-tick)",
    "raft-election-timeout": "Raft timing is ddb's own (--tick-ms, --election-tick)",
    "raft-leader-lease-timeout": "Raft timing is ddb's own",
    "raft-commit-timeout": "Raft timing is ddb's own",
    "raft-apply-timeout": "ddb's request timeout applies",
    "raft-remove-shutdown": "a removed ddb node keeps running until stopped",
    "raft-shutdown-stepdown": "a ddb leader does not step down on shutdown",
    "http-allow-origin": "ddb sets no Access-Control-Allow-Origin",
    "http-verify-common-name": "no client certificate name check",
    "cluster-connect-timeout": "ddb keeps trying to reach its peers",
    "cpu-profile": "no Go profiling", "mem-profile": "no Go profiling",
    "trace-profile": "no Go profiling",
    "otlp-endpoint": "no OpenTelemetry export", "otlp-interval": "no OpenTelemetry export",
    "otlp-insecure": "no OpenTelemetry export", "otlp-no-verify": "no OpenTelemetry export",
    "otlp-ca-cert": "no OpenTelemetry export", "otlp-cert": "no OpenTelemetry export",
    "otlp-key": "no OpenTelemetry export",
    "db-max-ro-conns": "ddb reads on a fixed pool of worker threads",
    "auto-vacuum-int": "no automatic VACUUM", "auto-optimize-int": "no automatic optimize",
    "compress-snap-transport": "snapshots are streamed uncompressed",
}

_LOG_LEVELS = {"DEBUG": "DEBUG", "INFO": "INFO", "WARN": "WARNING", "WARNING": "WARNING",
               "ERROR": "ERROR"}


class UsageError(ValueError):
    """A command line rqlited would refuse, or ddb cannot honour (exit status 2)."""


def parse(argv: list[str]) -> tuple[dict, list[str]]:
    """Go's flag package: -name value, -name=value, --name too; booleans bare or =true;
    parsing stops at the first argument that is not a flag, or after '--'."""
    values = {name: default for name, (_kind, default) in FLAGS.items()}
    given: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            i += 1
            break
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, value = arg.lstrip("-").partition("=")
        if name in UNSUPPORTED:
            raise UsageError(f"flag -{name} is rqlited's, but ddb does not support it: "
                             f"{UNSUPPORTED[name]}")
        if name not in FLAGS:
            raise UsageError(f"flag provided but not defined: -{name}")
        kind = FLAGS[name][0]
        if kind == "bool":
            text = value if eq else "true"
            if text.lower() not in ("1", "t", "true", "0", "f", "false"):
                raise UsageError(f"invalid boolean value {text!r} for flag -{name}")
            values[name] = text.lower() in ("1", "t", "true")
        else:
            if not eq:
                i += 1
                if i >= len(argv):
                    raise UsageError(f"flag needs an argument: -{name}")
                value = argv[i]
            values[name] = _typed(name, kind, value)
        given.append(name)
        i += 1
    return dict(values, _given=given), argv[i:]


def _typed(name: str, kind: str, value: str):
    if kind == "int":
        try:
            return int(value)
        except ValueError:
            raise UsageError(f"invalid value {value!r} for flag -{name}: not an integer") from None
    if kind == "duration":
        try:
            return parse_duration(value)
        except FlagError as e:
            raise UsageError(f"invalid value {value!r} for flag -{name}: {e}") from None
    return value


def _host_port(addr: str, flag: str) -> tuple[str, int]:
    host, sep, port = addr.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"-{flag} {addr!r} must be host:port")
    return host or "localhost", int(port)


def client_of(raft_addr: str, flag: str = "raft-addr") -> str:
    """The client address ddb derives from a Raft address (port + CLIENT_PORT_OFFSET)."""
    host, port = _host_port(raft_addr, flag)
    if port + CLIENT_PORT_OFFSET > 65535:
        raise UsageError(f"-{flag} {raft_addr!r}: no client port {port} + {CLIENT_PORT_OFFSET}; "
                         "give -client-addr")
    return f"tcp://{host}:{port + CLIENT_PORT_OFFSET}"


def translate(argv: list[str]) -> tuple[list[str], dict[str, str], list[str]]:
    """rqlited's argv -> (`ddb node` argv, environment to set, notes for stderr)."""
    v, rest = parse(argv)
    if v["version"]:
        return [], {}, []
    if not rest:
        raise UsageError("data directory path is required")
    if len(rest) > 1:
        raise UsageError(f"arguments after data directory ({rest[0]}) are not accepted ({rest[1:]})")
    node_id = v["node-id"].strip() or v["raft-addr"].strip()   # rqlited's default id
    for name in ("raft-reap-node-timeout", "raft-reap-read-only-node-timeout"):
        if name in v["_given"] and not v[name] > 0:
            raise UsageError(f"-{name} must be greater than 0")
    level = _LOG_LEVELS.get(v["raft-log-level"].upper())
    if level is None:
        raise UsageError(f"-raft-log-level {v['raft-log-level']!r}: use DEBUG, INFO, WARN or ERROR")
    raft_host, raft_port = _host_port(v["raft-addr"], "raft-addr")
    _host_port(v["http-addr"], "http-addr")
    client = v["client-addr"]
    if client:
        _host_port(client.split("://")[-1], "client-addr")
        client = client if "://" in client else "tcp://" + client
    else:
        client = client_of(v["raft-addr"])
    out = ["--id", node_id, "--data-dir", rest[0], "--listen", f"tcp://{raft_host}:{raft_port}",
           "--client", client, "--http", v["http-addr"], "--log-level", level]
    joins = [a.strip() for a in v["join"].split(",") if a.strip()]
    if joins:     # Raft addresses (rqlited 8) reach the client port by the same rule; an
        #           http:// address joins through that member's HTTP API (rqlited 7)
        out += ["--join", ",".join(a if "://" in a else client_of(a, "join") for a in joins)]
    if v["raft-adv-addr"]:
        h, p = _host_port(v["raft-adv-addr"], "raft-adv-addr")
        out += ["--raft-adv-addr", f"tcp://{h}:{p}",
                "--client-adv-addr", client_of(v["raft-adv-addr"], "raft-adv-addr")]
    if v["http-adv-addr"]:
        _host_port(v["http-adv-addr"], "http-adv-addr")
        out += ["--http-adv-addr", v["http-adv-addr"]]
    if v["bootstrap-expect"]:
        if v["bootstrap-expect"] < 0 or not joins:
            raise UsageError("-bootstrap-expect N needs -join with the addresses of the N nodes")
        out += ["--bootstrap-expect", str(v["bootstrap-expect"])]
    for flag, opt in (("raft-non-voter", "--non-voter"),
                      ("raft-cluster-remove-shutdown", "--raft-cluster-remove-shutdown")):
        if v[flag]:
            out.append(opt)
    if v["extensions-path"]:
        out += ["--extensions-path", v["extensions-path"]]
    if v["auth"]:
        out += ["--auth", v["auth"]]     # the users file also guards joins
    if v["join-as"]:
        if not v["auth"]:
            raise UsageError("-join-as names a user of the users file: give -auth FILE")
        out += ["--join-as", v["join-as"]]
    if v["raft-snap"] is not None:
        if v["raft-snap"] <= 0:
            raise UsageError("-raft-snap must be a positive number of entries")
        out += ["--snapshot-entries", str(v["raft-snap"])]
    for name in ("raft-reap-node-timeout", "raft-reap-read-only-node-timeout"):
        if v[name]:
            out += [f"--{name}", repr(v[name])]
    env = {}
    for flag, var in (("auth", "DDB_HTTP_AUTH"), ("http-cert", "DDB_HTTP_CERT"),
                      ("http-key", "DDB_HTTP_KEY")):
        if v[flag]:
            env[var] = v[flag]
    if bool(v["http-cert"]) != bool(v["http-key"]):
        raise UsageError("-http-cert and -http-key go together")
    if v["http-verify-client"]:
        if not v["http-ca-cert"]:
            raise UsageError("-http-verify-client needs -http-ca-cert (ddb checks client "
                             "certificates against it)")
        env["DDB_HTTP_CA"] = v["http-ca-cert"]
    notes = [f"ddb rqlited: -{name} accepted, not used: {IGNORED[name]}"
             for name in v["_given"] if name in IGNORED]
    if v["http-ca-cert"] and not v["http-verify-client"]:
        notes.append("ddb rqlited: -http-ca-cert accepted, not used: ddb uses a CA only to "
                     "verify client certificates (-http-verify-client)")
    return out, env, notes


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        node_argv, env, notes = translate(argv)
    except UsageError as e:
        print(f"ddb rqlited: {e}", file=sys.stderr)
        return 2
    if not node_argv:
        print(f"ddb rqlited {VERSION} (rqlite's command line for ddb)")
        return 0
    for note in notes:
        print(note, file=sys.stderr)
    os.environ.update(env)
    return node_main.main(node_argv)
