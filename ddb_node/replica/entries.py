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
