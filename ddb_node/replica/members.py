"""The address book: which node id listens where.

Raft's configuration only knows node ids; addresses travel in the conf-change context and
in join responses, and are kept in `members.json` beside the data so a restarted node finds
its peers again.
"""
from __future__ import annotations

import json
import os

import msgpack


def encode_addresses(peer: str, client: str, http: str | None = None,
                     name: str | None = None, promote: bool = False) -> bytes:
    """A learner's conf-change context. `promote` records, in the log itself, that it is to
    become a voter once caught up: every replica applies it, so whichever node leads when the
    learner catches up promotes it (a leader change during a long catch-up used to leave it
    a learner for good)."""
    d = {"peer": peer, "client": client, "http": http}
    if name is not None:
        d["name"] = name          # the id as the operator wrote it (node_ids.py)
    if promote:
        d["promote"] = True
    return msgpack.packb(d, use_bin_type=True)


def decode_addresses(ctx: bytes) -> dict | None:
    try:
        d = msgpack.unpackb(ctx, raw=False)
    except Exception:
        return None
    if not isinstance(d, dict) or not isinstance(d.get("peer"), str) \
            or not isinstance(d.get("client"), str):
        return None
    out = {"peer": d["peer"], "client": d["client"], "http": d.get("http")}
    if isinstance(d.get("name"), str):
        out["name"] = d["name"]
    if d.get("promote") is True:
        out["promote"] = True
    return out


class AddressBook:
    def __init__(self, path: str | None, initial: dict | None = None):
        self.path = path
        self.members: dict[int, dict] = {}
        if path and os.path.exists(path):
            try:
                with open(path) as f:
                    self.members = {int(k): v for k, v in json.load(f).items()}
            except (OSError, ValueError):
                self.members = {}
        for k, v in (initial or {}).items():
            self.members.setdefault(int(k), dict(v))

    def set(self, node_id: int, addrs: dict) -> None:
        self.members[node_id] = dict(addrs)
        self.save()

    def merge(self, members: dict) -> None:
        for k, v in members.items():
            self.members[int(k)] = dict(v)
        self.save()

    def add_missing(self, members: dict, own_id: int) -> None:
        """Learn addresses of members we have none for (never overwrite what we know)."""
        new = {k: v for k, v in members.items() if k != own_id and k not in self.members}
        if new:
            self.members.update(new)
            self.save()

    def get(self, node_id: int) -> dict | None:
        return self.members.get(node_id)

    def keep_only(self, ids) -> None:
        """Forget every member not in `ids` (a forced configuration, see recovery.py)."""
        ids = set(ids)
        self.members = {k: v for k, v in self.members.items() if k in ids}
        self.save()

    def save(self) -> None:
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({str(k): v for k, v in self.members.items()}, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def to_dict(self) -> dict:
        return {str(k): v for k, v in sorted(self.members.items())}


# Snapshots carry the address book: a node that catches up by snapshot never sees the
# conf-change entries (with their addresses) that were compacted away, so without this it
# would not know where members added meanwhile listen (it could neither replicate to them as
# leader nor tell clients about them). The book is a trailer after the state machine's
# stream, so that stream stays at offset 0 of the received file (installed by a rename):
#     state machine stream | msgpack {"members": ...} | u32 length | b"DDBNODE2"
MEMBERS_MAGIC = b"DDBNODE2"
_TAIL = 4 + len(MEMBERS_MAGIC)
MAX_MEMBERS_TRAILER = 1 << 20


def members_trailer(members: dict) -> bytes:
    meta = msgpack.packb({"members": {str(k): v for k, v in members.items()}}, use_bin_type=True)
    return meta + len(meta).to_bytes(4, "big") + MEMBERS_MAGIC


def split_members(tail: bytes, total: int) -> tuple[dict, int]:
    """From the last bytes of a node snapshot of `total` bytes: (members {id: addresses},
    length of the state machine's stream before the trailer). No trailer: no members, the
    whole is the state machine's stream."""
    if len(tail) < _TAIL or tail[-len(MEMBERS_MAGIC):] != MEMBERS_MAGIC:
        return {}, total
    n = int.from_bytes(tail[-_TAIL:-len(MEMBERS_MAGIC)], "big")
    if n + _TAIL > len(tail):
        return {}, total
    members = {}
    try:
        meta = msgpack.unpackb(tail[-_TAIL - n:-_TAIL], raw=False)
        for k, v in (meta.get("members") or {}).items():
            if isinstance(v, dict) and isinstance(v.get("peer"), str) \
                    and isinstance(v.get("client"), str):
                members[int(k)] = {"peer": v["peer"], "client": v["client"], "http": v.get("http")}
                if isinstance(v.get("name"), str):
                    members[int(k)]["name"] = v["name"]
    except Exception:  # a damaged book only costs the addresses, never the data
        members = {}
    return members, total - n - _TAIL


def read_members(path: str) -> tuple[dict, int]:
    """`split_members` of a node snapshot file."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(max(0, size - MAX_MEMBERS_TRAILER))
        return split_members(f.read(), size)
