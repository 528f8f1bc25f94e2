"""Client links on plain TCP: which wire a client and a node speak, and the hello.

Client traffic went over zmq DEALER/ROUTER: every request and every answer crossed
libzmq's I/O thread on both ends, four thread hops per request. On 2 cores shared by
three nodes and the client those hops are context switches on the request path (the
leader's process spent ~265 µs of wall time per single-client write inside the reply's
zmq send, where its own I/O thread took the core). So, as for peers (tcp_transport.py),
the default client wire is TCP read and written by the node's loop and by the client's
own thread: 4-byte big-endian length, then the frame (a ``codec`` client frame). The first
frame a client sends is ``HELLO``; a connection that starts with anything else (a zmq
DEALER's greeting, say) or announces a frame above the limit is closed and counted.

CurveZMQ stays zmq's (its encryption and key check): with CURVE keys both ends speak zmq,
and ``DDB_CLIENT_TRANSPORT=zmq`` picks zmq anyway (to compare). A node and its clients read
the same setting (a LocalCluster's nodes inherit the environment).
"""
from __future__ import annotations

import os

from .codec import MAX_CLIENT_FRAME

HELLO = b"ddb-client/1"
MAX_FRAME = MAX_CLIENT_FRAME + 1024        # a codec frame's limit, plus its envelope
RECONNECT_MIN, RECONNECT_MAX = 0.05, 1.0   # seconds, as zmq's reconnect backoff was


def uses_tcp(curve: dict | None) -> bool:
    """Does a client link with these CURVE settings speak TCP (True) or zmq (False)?"""
    if curve:
        return False
    return os.environ.get("DDB_CLIENT_TRANSPORT", "").lower() != "zmq"
