"""Node ids as operators write them (rqlite's ids are strings, `"0"` included) and as the
Raft core counts them (positive integers; 0 means "nobody").

A decimal id from 1 to 2**53 is its own number, so `--id 3` stays node 3 everywhere. Any
other string (`"0"`, `"node-a"`, `"007"`) maps to a stable 62-bit number derived from it
(blake2b), above every decimal id, so the two never collide; every node computes the same
number from the same string without asking anyone. The string itself travels with the
node's addresses (`name` in the address book) for display.
"""
from __future__ import annotations

import hashlib

MAX_DECIMAL = 1 << 53          # decimal ids at or below stay themselves
MAX_NAME = 128                 # characters in a node id


def internal_id(name) -> int:
    """The core's integer for a node id given as a string (or an int)."""
    if isinstance(name, bool):
        raise ValueError("a node id is a string or a positive integer, not a boolean")
    if isinstance(name, int):
        if 0 < name <= MAX_DECIMAL:
            return name
        name = str(name)
    if not isinstance(name, str):
        raise ValueError(f"a node id must be a string, not {type(name).__name__}")
    if not name or len(name) > MAX_NAME or not name.isprintable() or name != name.strip():
        raise ValueError(f"bad node id {name!r}: 1 to {MAX_NAME} printable characters, "
                         "no surrounding spaces")
    if name.isascii() and name.isdigit() and name[0] != "0" and int(name) <= MAX_DECIMAL:
        return int(name)
    h = int.from_bytes(hashlib.blake2b(name.encode(), digest_size=8).digest(), "big")
    return (1 << 62) | (h >> 2)


def display_id(nid: int, name: str | None = None) -> str:
    """The id an operator wrote: the name when one is known, else the number."""
    return name if name else str(nid)
