"""Log compaction bounded in bytes as well as entries (replica/compaction.py), simulated.

Found at 10^7 rows (benchmarks/scale.py): a bulk load's entries are ~120 kB each, so the
entries kept by count alone (3,000 between snapshots plus 2,000 trailing) made a raft.db of
620 MB beside a 755 MB database; at the node's defaults (20,000 + 2,000) it would have been
2.6 GB. `snapshot_bytes` takes a snapshot after that many bytes of applied entries and keeps
at most half of it behind the snapshot."""
from __future__ import annotations

from ddb_node.sim import kv
from ddb_node.sim.simulator import Simulator

VALUE = "x" * 480          # an entry of ~520 bytes


def _loaded(auto_compact, n=60) -> Simulator:
    sim = Simulator(3, seed=21, auto_compact=auto_compact)
    assert sim.run_until(lambda s: s.leader() is not None, max_steps=200_000)
    for i in range(n):
        sim.propose(kv.put(f"k{i % 7}", VALUE + str(i), f"op{i}"))
        sim.run_for(5)
    assert sim.run_until(lambda s: s.converged(), max_steps=500_000)
    return sim


def _log_bytes(node) -> int:
    st = node.storage
    return sum(len(e.data) for e in st.entries(st.first_index(), st.last_index() + 1))


def test_a_log_past_its_byte_bound_is_snapshotted_and_keeps_half_of_it_behind():
    sim = _loaded((0, 1_000, 4_000))     # entries alone would never compact (every = 0)
    for node in sim.nodes.values():
        st = node.storage
        assert st.snapshot_meta().index > 0, f"node {node.id} never took a snapshot"
        # since the last snapshot < 4,000 bytes; behind it <= 2,000 bytes (+ one entry)
        assert _log_bytes(node) <= 4_000 + 2_000 + 600, (node.id, _log_bytes(node))
    assert len({tuple(sorted(n.sm.data.items())) for n in sim.nodes.values()}) == 1


def test_without_a_byte_bound_the_same_load_keeps_its_whole_log():
    sim = _loaded((0, 1_000))
    for node in sim.nodes.values():
        assert node.storage.snapshot_meta().index == 0
        assert _log_bytes(node) > 60 * 500


def test_the_trailing_entry_count_still_holds_when_entries_are_small():
    """The byte bound only ever compacts further: 5 trailing entries stay when they fit."""
    sim = _loaded((10, 5, 1 << 20))
    for node in sim.nodes.values():
        st = node.storage
        assert st.snapshot_meta().index - st.first_index() + 1 >= 5
