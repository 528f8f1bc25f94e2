"""The node's client port: request frames in, reply frames out, between the client
endpoint (plain TCP, `net/tcp_endpoint.py`; zmq with CURVE, `net/endpoint.py`) and the
node's entry points.

A SQL request (op "request") goes to the Replica from the endpoint's reader
(`NodeServer.submit`: no asyncio task per request); the shell's own operations (status,
trace, cursors...) get a task (`NodeServer.handle`). An answer with many values is encoded
on a read worker thread, so a long result never holds the loop that heartbeats need.
"""
from __future__ import annotations

import asyncio
import logging

import zmq

from ddb_node.net.codec import KIND_REQUEST, KIND_RESPONSE, FrameError, decode_client, encode_client

log = logging.getLogger("ddb.node")

BIG_REPLY_CELLS = 20_000      # answers with more values than this are encoded off the loop


class ClientPort:
    def __init__(self, node):
        self.node = node

    def bad_frame(self) -> None:
        self.node.shell_counters["bad_frames"] += 1

    def on_frames(self, parts: list) -> None:
        """The client endpoint's reader hands every frame here: [client identity, frame]."""
        if len(parts) != 2:
            self.bad_frame()
            return
        ident, frame = parts
        node = self.node
        try:
            _, body = decode_client(frame, node.cluster_id, KIND_REQUEST)
        except FrameError as exc:
            self.bad_frame()
            self.reply(ident, {"id": None, "ok": False,
                               "error": {"type": "BadRequest", "message": str(exc)}})
            return
        if isinstance(body, dict) and body.get("op") == "request":
            node.submit(body, lambda resp: self.answer(ident, body.get("id"), resp))
        else:
            asyncio.ensure_future(self._serve(ident, body))

    async def _serve(self, ident: bytes, body) -> None:
        self.answer(ident, body.get("id") if isinstance(body, dict) else None,
                    await self.node.handle(body))

    def answer(self, ident: bytes, rid, resp: dict) -> None:
        resp = dict(resp, id=rid)
        reads = self.node.reads
        if cells(resp) > BIG_REPLY_CELLS and reads is not None:
            job = asyncio.get_running_loop().run_in_executor(reads.pool, self.encode, resp)
            job.add_done_callback(lambda f: f.cancelled() or f.result() is None
                                  or self.send_frame(ident, f.result()))
        else:
            self.reply(ident, resp)

    def encode(self, resp: dict) -> bytes | None:
        try:
            return encode_client(self.node.cluster_id, KIND_RESPONSE, resp)
        except (TypeError, ValueError) as exc:
            log.warning("node %d: cannot encode reply: %s", self.node.id, exc)
            return None

    def reply(self, ident: bytes, resp: dict) -> None:
        frame = self.encode(resp)
        if frame is not None:
            self.send_frame(ident, frame)

    def send_frame(self, ident: bytes, frame: bytes) -> None:
        try:
            self.node.client_sock.reply(ident, frame)
        except (zmq.ZMQError, OSError) as exc:
            log.warning("node %d: cannot send reply: %s", self.node.id, exc)


def cells(resp: dict) -> int:
    """About how many values an answer carries (cheap: no row is looked at)."""
    n = 0
    for r in resp.get("results") or ():
        vals = r.get("values") if isinstance(r, dict) else None
        if vals:
            n += len(vals) * len(vals[0])
    return n
