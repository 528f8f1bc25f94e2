"""Opening client-side sockets the same way everywhere (clients, forwarding, peers)."""
from __future__ import annotations

import zmq

# zmq's flags as plain ints for the hot paths: pyzmq's enum flags cost ~2 us an operation
NOBLOCK, EVENTS, POLLIN = int(zmq.NOBLOCK), int(zmq.EVENTS), int(zmq.POLLIN)


def open_dealer(ctx, curve: dict | None = None):
    """A DEALER not connected yet (so that a monitor can see its first connect): no linger
    on close, CURVE client keys when given ({"public", "secret", "server"})."""
    s = ctx.socket(zmq.DEALER)
    s.setsockopt(zmq.LINGER, 0)
    if curve:
        s.curve_secretkey = curve["secret"]
        s.curve_publickey = curve["public"]
        s.curve_serverkey = curve["server"]
    return s


def connect_dealer(ctx, addr: str, curve: dict | None = None):
    """A DEALER connected to addr (see open_dealer)."""
    s = open_dealer(ctx, curve)
    s.connect(addr)
    return s
