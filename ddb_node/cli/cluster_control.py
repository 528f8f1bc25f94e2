"""`ddb cluster up`'s control server, as a process of its own.

The nodes of `ddb cluster up` are detached and the command exits, so the dashboard's pause,
resume, restart, stop and kill go to this small process, which acts on the cluster's state
file exactly as the CLI does (`cli.cluster.StateCluster`) and serves it with
`server/http/control.ControlServer`. It takes its token from $DDB_CONTROL_TOKEN (never on
its command line, and not passed on to the nodes it restarts) and exits on SIGTERM (`ddb
cluster down`) or once the state file is gone.

    DDB_CONTROL_TOKEN=... python -m ddb_node.cli.cluster_control --dir DIR --port PORT
"""
from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from ddb_node.cli.cluster import StateCluster
from ddb_node.server.http.control import ControlServer


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m ddb_node.cli.cluster_control")
    ap.add_argument("--dir", required=True, help="the cluster's directory (its cluster.json)")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0)
    args = ap.parse_args(argv)
    token = os.environ.pop("DDB_CONTROL_TOKEN", "")
    if len(token) < 16:
        print("cluster_control: $DDB_CONTROL_TOKEN must hold a token of 16 characters or more",
              file=sys.stderr)
        return 2
    sc = StateCluster(args.dir)
    server = ControlServer(sc, token=token, host=args.host, port=args.port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"control {server.url} for {sc.dir}", flush=True)
    try:
        while not stop.wait(1.0):          # the watchdog: the cluster was taken down
            if not os.path.exists(sc.path):
                break
    finally:
        server.close()
        sc.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
