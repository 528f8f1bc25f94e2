"""Benchmark of the Raft core alone: a simulated 3-node cluster on MemoryStorage.

The leader takes `--batch` proposals of 16-byte payloads per loop turn; then every
node steps the messages addressed to it and processes one Ready, exactly as the
driver contract says (send, persist, send-after-persist, apply, advance).
Messages are delivered in-process. Bounded by --entries and --max-seconds; logs
are compacted now and then so memory stays bounded. Prints one JSON object.

    .venv/bin/python benchmarks/core.py --entries 300000 --batch 1024
"""
from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ddb_node.raft import Config, ConfState, RaftNode, Role  # noqa: E402
from ddb_node.storage import MemoryStorage  # noqa: E402

PAYLOAD = b"0123456789abcdef"   # 16 bytes


def run(entries: int, batch: int, max_seconds: float, compact_every: int, seed: int = 1) -> dict:
    ids = (1, 2, 3)
    storages = {i: MemoryStorage(conf_state=ConfState(voters=ids)) for i in ids}
    nodes = {i: RaftNode(Config(id=i), storages[i], random.Random(seed * 100 + i)) for i in ids}
    inbox: dict[int, list] = {i: [] for i in ids}
    applied = {i: 0 for i in ids}

    def turn() -> None:
        for i in ids:
            node, st = nodes[i], storages[i]
            msgs = inbox[i]
            if msgs:
                inbox[i] = []
                for m in msgs:
                    node.step(m)
            if node.has_ready():
                rd = node.ready()
                for m in rd.messages:
                    inbox[m.to].append(m)
                st.save(rd.hard_state, rd.entries, rd.snapshot)
                for m in rd.persisted_messages:
                    inbox[m.to].append(m)
                if rd.committed_entries:
                    applied[i] = rd.committed_entries[-1].index
                node.advance(rd)

    # elect node 1 (not timed)
    nodes[1].campaign()
    for _ in range(100):
        turn()
        if nodes[1].role == Role.LEADER and nodes[1].commit_index >= 1:
            break
    lead = nodes[1]
    assert lead.role == Role.LEADER
    start_index = lead.commit_index
    payloads = [PAYLOAD] * batch
    max_uncommitted = 4 * batch
    last_compact = start_index
    t0 = time.perf_counter()
    deadline = t0 + max_seconds
    proposed = 0
    turns = 0
    while True:
        committed = lead.commit_index - start_index
        if committed >= entries:
            break
        turns += 1
        if (turns & 63) == 0 and time.perf_counter() > deadline:
            break
        if proposed - committed < max_uncommitted and proposed < entries:
            n = min(batch, entries - proposed)
            lead.propose_batch(payloads if n == batch else payloads[:n])
            proposed += n
        turn()
        low = min(applied.values())
        if low - last_compact >= compact_every:
            for i in ids:
                a = min(applied[i], nodes[i].applied)
                storages[i].create_snapshot(a, nodes[i].conf_state, b"")
                storages[i].compact(a)
            last_compact = low
    elapsed = time.perf_counter() - t0
    committed = lead.commit_index - start_index
    # entries committed by the leader and applied on every node
    applied_all = min(applied.values()) - start_index
    return {
        "benchmark": "raft-core-3-node-memory",
        "entries": committed,
        "applied_on_all_nodes": applied_all,
        "seconds": round(elapsed, 4),
        "entries_per_sec": round(committed / elapsed) if elapsed > 0 else None,
        "batch": batch,
        "payload_bytes": len(PAYLOAD),
        "loop_turns": turns,
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=300_000, help="entries to commit")
    ap.add_argument("--batch", type=int, default=1024, help="proposals per loop turn")
    ap.add_argument("--max-seconds", type=float, default=60.0, help="time bound")
    ap.add_argument("--compact-every", type=int, default=100_000,
                    help="compact the logs after this many applied entries")
    ap.add_argument("--seed", type=int, default=1)
    a = ap.parse_args(argv)
    if a.entries <= 0 or a.batch <= 0:
        ap.error("--entries and --batch must be positive")
    print(json.dumps(run(a.entries, a.batch, a.max_seconds, a.compact_every, a.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
