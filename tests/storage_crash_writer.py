"""Child process for the storage crash test: appends batches to a SqliteLogStorage
(sync=True) forever, printing each acknowledged batch's last index, until killed.

Entry data and snapshot data are functions of their index, so the test can check
every surviving byte without being told what was written.
"""
from __future__ import annotations

import sys

from ddb_node.raft.types import ConfState, Entry, HardState
from ddb_node.storage import SqliteLogStorage


def payload(index: int) -> bytes:
    return b"entry-%d;" % index * (index % 7 + 1)


def snapshot_data(index: int) -> bytes:
    return b"snapshot-%d" % index * 100


def term_of(index: int) -> int:
    return 1 + index // 1000


def main(path: str) -> None:
    storage = SqliteLogStorage(path, ConfState(voters=(1,)), sync=True)
    batch_number = 0
    while True:
        batch_number += 1
        start = storage.last_index() + 1
        size = 1 + (batch_number * 37) % 300
        entries = [Entry(term_of(i), i, 0, payload(i)) for i in range(start, start + size)]
        last = entries[-1].index
        storage.save(HardState(term_of(last), 1, last), entries, None)
        if batch_number % 10 == 0:  # exercise snapshot + compaction under crashes too
            storage.create_snapshot(last, ConfState(voters=(1,)), snapshot_data(last))
            storage.compact(max(storage.first_index(), last - 500))
        print(last, flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
