"""Round trip of one Raft message between two processes on loopback, through each peer
transport ddb has: `TcpPeerTransport` (a socket written and read by the loop) and zmq's
`PeerTransport` (ROUTER/DEALER, libzmq's I/O thread on each side). One process sends a
heartbeat, the other answers it on its own link; p50/p99 over --rounds round trips, one
JSON line per transport. Both sides run the node's loop (uvloop when installed).

    .venv/bin/python benchmarks/peer_rtt.py [--rounds 5000] [--json out.jsonl]
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from ddb_node.cluster import free_ports  # noqa: E402
from ddb_node.raft.types import Message, MsgType  # noqa: E402


def _side(kind: str, me: int, ports: list, rounds: int, q) -> None:
    import zmq.asyncio

    from ddb_node.net.tcp_transport import TcpPeerTransport
    from ddb_node.net.transport import PeerTransport
    from ddb_node.server.loop import run

    cls = TcpPeerTransport if kind == "tcp" else PeerTransport
    other = 3 - me

    async def main():
        ctx = zmq.asyncio.Context() if kind == "zmq" else None
        lat: list[float] = []
        done = asyncio.get_running_loop().create_future()
        t0 = [0.0]

        def on_message(m):
            if me == 2:                       # the echo side
                t.send(Message(MsgType.HEARTBEAT_RESP, other, me, 1))
                return
            lat.append(time.perf_counter() - t0[0])
            if len(lat) >= rounds:
                if not done.done():
                    done.set_result(None)
                return
            t0[0] = time.perf_counter()
            t.send(Message(MsgType.HEARTBEAT, other, me, 1))

        t = cls(ctx, me, "rtt", f"tcp://127.0.0.1:{ports[me - 1]}", on_message)
        t.set_peer(other, f"tcp://127.0.0.1:{ports[other - 1]}")
        t.start()
        if me == 1:
            # until the link is up, a send is dropped: keep knocking
            while not lat:
                t0[0] = time.perf_counter()
                t.send(Message(MsgType.HEARTBEAT, other, me, 1))
                await asyncio.sleep(0.05)
            lat.clear()
            t0[0] = time.perf_counter()
            t.send(Message(MsgType.HEARTBEAT, other, me, 1))
            await asyncio.wait_for(done, 120)
            q.put(lat)
        else:
            await asyncio.sleep(3600)
        t.close()
    run(main())


def measure(kind: str, rounds: int) -> dict:
    ports = free_ports(2)
    q = mp.Queue()
    echo = mp.Process(target=_side, args=(kind, 2, ports, rounds, q), daemon=True)
    ping = mp.Process(target=_side, args=(kind, 1, ports, rounds, q), daemon=True)
    echo.start()
    ping.start()
    lat = q.get(timeout=180)[:rounds]
    ping.join(10)
    echo.terminate()
    echo.join(10)
    lat.sort()
    return {"benchmark": "peer_rtt", "transport": kind, "rounds": len(lat),
            "p50_us": round(statistics.median(lat) * 1e6, 1),
            "p99_us": round(lat[int(0.99 * (len(lat) - 1))] * 1e6, 1),
            "python": platform.python_version(), "cpus": os.cpu_count(),
            "when": time.strftime("%Y-%m-%dT%H:%M:%S")}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5000)
    ap.add_argument("--json", default=None, help="also append the JSON lines to this file")
    args = ap.parse_args(argv)
    for kind in ("tcp", "zmq"):
        rec = measure(kind, args.rounds)
        line = json.dumps(rec)
        print(line, flush=True)
        if args.json:
            with open(args.json, "a") as f:
                f.write(line + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
