"""What a Replica puts in the log besides SQL entries, and the outcome vocabulary of a
proposal. Defined here once: `requests.py` packs a map step, `replica.py` recognises it."""
from __future__ import annotations

import msgpack

MAP_MARKER = b"M"   # entry payloads of map steps (SQL entries are msgpack arrays)

# on_done statuses of a proposal (Jepsen's vocabulary): the entry at the proposal's index is
# ours and was applied / is certainly another leader's / unknown (a snapshot covered it).
OK, FAIL, INFO = "ok", "fail", "info"


def is_map_step(data: bytes) -> bool:
    return data[:1] == MAP_MARKER


def encode_map_step(spec: dict) -> bytes:
    return MAP_MARKER + msgpack.packb(spec, use_bin_type=True)


def decode_map_step(data: bytes) -> dict:
    return msgpack.unpackb(data[1:], raw=False, strict_map_key=False)


# A member's new addresses (a restarted node that re-sent its join from elsewhere): logged
# so every replica's address book changes at the same log position, like a conf change.
ADDRESS_MARKER = b"A"


def is_address_update(data: bytes) -> bool:
    return data[:1] == ADDRESS_MARKER


def encode_address_update(node_id: int, addresses: dict) -> bytes:
    return ADDRESS_MARKER + msgpack.packb({"node": node_id, "addresses": addresses},
                                          use_bin_type=True)


def decode_address_update(data: bytes) -> tuple[int, dict] | None:
    try:
        d = msgpack.unpackb(data[1:], raw=False)
        nid, addrs = d["node"], d["addresses"]
    except Exception:      # noqa: BLE001  a damaged entry changes no address
        return None
    if not isinstance(nid, int) or not isinstance(addrs, dict) \
            or not isinstance(addrs.get("peer"), str) or not isinstance(addrs.get("client"), str):
        return None
    return nid, addrs
