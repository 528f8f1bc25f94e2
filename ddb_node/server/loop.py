"""The node's event loop: uvloop when it is installed, else asyncio's default.

uvloop runs the same single-threaded loop with its callbacks, timers and socket transports
in C (libuv). Under the HTTP API's load it cuts the loop's own share of a request, and the
zmq sockets work unchanged (pyzmq's asyncio integration only needs ``add_reader``).
``DDB_LOOP=asyncio`` selects the default loop (to compare, or to rule uvloop out).
"""
from __future__ import annotations

import asyncio
import os


def loop_factory():
    """-> a callable that makes the node's loop, or None for asyncio's default."""
    if os.environ.get("DDB_LOOP", "").lower() == "asyncio":
        return None
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


def run(coro):
    """asyncio.run(coro) on the node's loop."""
    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        return runner.run(coro)
