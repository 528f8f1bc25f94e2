"""rqlite 9's CDC webhook (``--cdc-config URL``): the leader POSTs the change log to a URL.

Every node records the same changes (sql/changes.py); only the leader sends them. Delivery is
at least once: a batch counts as delivered when the destination answers 200 or 202, and is
sent again (after a back-off) until it is. The leader's high-water mark (the index of the last
delivered entry, ``hwm``) is kept in a file beside the data and shown in the node's status
(``cdc.hwm``); followers read it from the leader about once a second, so a new leader resumes
close to where the old one stopped: what it sends again is at most about a second's worth
(rqlite's design too). Receivers de-duplicate by ``index``, which names one log entry.

The body is rqlite's JSON envelope::

    {"node_id": "1", "payload": [{"index": 42, "events": [
        {"op": "INSERT", "table": "t", "new_row_id": 7, "after": {"id": 7, ...}},
        {"op": "UPDATE", "table": "t", "old_row_id": 7, "new_row_id": 7, "before": {...}, "after": {...}},
        {"op": "DELETE", "table": "t", "old_row_id": 7, "before": {...}}]}]}

Rows whose key is not an integer rowid (a TEXT or composite primary key) carry ``key`` too.
Blobs are base64 strings.
"""
from __future__ import annotations

import asyncio
import logging
import os

from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from ddb_node.async_client import AsyncClient
from ddb_node.errors import DdbError

from .http import format as fmt
from .http.changes import _row, _jsonable

log = logging.getLogger("ddb.cdc")

BATCH_ENTRIES = 100      # log entries per POST, at most
POLL_S = 1.0             # the leader's long poll of its own change log; a follower's HWM poll
RETRY_S = (0.1, 5.0)     # back-off after a failed delivery: first, at most
HWM_FILE = "cdc_hwm"


def envelope(node_id: int, events: list) -> dict:
    """rqlite's CDC envelope of `events` (``[index, table, op, key, old, new]``, in order)."""
    payload: list = []
    for index, table, op, key, old, new in events:
        if not payload or payload[-1]["index"] != index:
            payload.append({"index": index, "events": []})
        ev = {"op": op.upper(), "table": table}
        if isinstance(key, int) and not isinstance(key, bool):
            if old is not None:
                ev["old_row_id"] = key
            if new is not None:
                ev["new_row_id"] = key
        else:
            ev["key"] = [_jsonable(k) for k in key] if isinstance(key, list) else _jsonable(key)
        if old is not None:
            ev["before"] = _row(old)
        if new is not None:
            ev["after"] = _row(new)
        payload[-1]["events"].append(ev)
    return {"node_id": str(node_id), "payload": payload}


class Webhook:
    def __init__(self, server, url: str):
        self.server = server
        self.url = url
        self.path = server.opts.path(HWM_FILE) if server.opts.data_dir else None
        self.hwm = self._load()
        self.stats = {"posts": 0, "delivered_entries": 0, "failed_posts": 0, "lost_entries": 0}
        self._peer: AsyncClient | None = None

    # ---- the high-water mark -------------------------------------------------------------
    def _load(self) -> int:
        try:
            with open(self.path) as f:
                return int(f.read().strip() or 0)
        except (TypeError, OSError, ValueError):
            return 0

    def _advance(self, index: int) -> None:
        if index <= self.hwm:
            return
        self.hwm = index
        if self.path:
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                f.write(str(index))
            os.replace(tmp, self.path)

    def status(self) -> dict:
        return {"url": self.url, "hwm": self.hwm, **self.stats}

    async def _learn_hwm(self) -> None:
        """A follower: take the leader's high-water mark."""
        leader = self.server.replica.leader_info()
        if not leader or not leader.get("client"):
            return
        if self._peer is None:
            self._peer = AsyncClient([leader["client"]], timeout=2.0,
                                     cluster_id=self.server.cluster_id,
                                     curve=self.server.opts.curve)
        try:
            reply = await self._peer.call_addr(leader["client"], {"op": "status"}, 1.0)
        except DdbError:
            return
        hwm = ((reply.get("status") or {}).get("cdc") or {}).get("hwm")
        if isinstance(hwm, int):
            self._advance(hwm)

    # ---- the loop -------------------------------------------------------------------------
    async def run(self) -> None:
        try:
            while True:
                try:
                    if not self.server.replica.is_leader:
                        await self._learn_hwm()
                        await asyncio.sleep(POLL_S)
                        continue
                    await self._lead_once()
                except asyncio.CancelledError:
                    raise
                except Exception:  # noqa: BLE001  the webhook never stops for good
                    log.exception("cdc: webhook loop failed; going on")
                    await asyncio.sleep(POLL_S)
        finally:
            if self._peer is not None:
                await self._peer.close()

    async def _lead_once(self) -> None:
        reply = await self.server.handle({"op": "changes", "since": self.hwm, "wait": POLL_S,
                                          "max_entries": BATCH_ENTRIES})
        if not reply.get("ok", True):
            err = reply.get("error") or {}
            if err.get("type") == "ChangesTruncated":
                # retention dropped entries never delivered: say so and go on from what is left
                oldest = int(err.get("oldest") or self.hwm + 1)
                self.stats["lost_entries"] += max(0, oldest - 1 - self.hwm)
                log.error("cdc: entries %d..%d were dropped by retention before delivery",
                          self.hwm + 1, oldest - 1)
                self._advance(oldest - 1)
            else:
                await asyncio.sleep(POLL_S)
            return
        events, through = reply.get("events") or [], reply.get("through", self.hwm)
        if events and not await self._deliver(envelope(self.server.id, events)):
            return
        self.stats["delivered_entries"] += len({e[0] for e in events})
        self._advance(through)

    async def _deliver(self, body: dict) -> bool:
        """POST until a 200/202 (True), or until this node stops leading (False)."""
        data = fmt.encode_json(body)
        delay = RETRY_S[0]
        client = AsyncHTTPClient()
        while self.server.replica.is_leader:
            self.stats["posts"] += 1
            try:
                resp = await client.fetch(HTTPRequest(
                    self.url, method="POST", body=data, request_timeout=10.0,
                    headers={"Content-Type": "application/json"}), raise_error=False)
                if resp.code in (200, 202):
                    return True
                log.warning("cdc: %s answered %s", self.url, resp.code)
            except Exception as e:  # noqa: BLE001  unreachable destination: retry
                log.warning("cdc: POST to %s failed: %s", self.url, e)
            self.stats["failed_posts"] += 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, RETRY_S[1])
        return False
