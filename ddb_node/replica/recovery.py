"""Recovery after quorum is lost for good (rqlite's peers.json, etcd's force-new-cluster).

The survivor writes a forced configuration into its own Raft log, at the end of what it
holds, in a term above every term it has seen, and marks it committed. At start the core
applies it like any committed conf change (membership takes effect when applied), so the
new configuration is in the log itself: it is replicated to every node that joins later,
survives restarts and snapshots, and no separate override has to be remembered.

What it costs, as in rqlite and etcd: the survivor's log is taken as committed up to its
end (entries it held that the old majority never acknowledged are kept and applied), and
entries only the lost nodes held are gone. Only one node may be recovered this way: two
survivors forcing their own logs could commit different entries at the same index. The
others must come back with an empty data directory and `--join` the recovered node.
"""
from __future__ import annotations

from ddb_node.raft import NONE, ConfChange, ConfChangeType, Entry, EntryType, HardState


def force_configuration(storage, node_id: int, voters, learners=(), context: bytes = b"") -> int:
    """Append the forced configuration (voters, learners) to `storage` as a committed entry;
    return its index. `node_id` (the recovering node) must be one of the voters."""
    voters = tuple(sorted(set(voters)))
    learners = tuple(sorted(set(learners) - set(voters)))
    if node_id not in voters:
        raise ValueError(f"node {node_id} recovers the cluster, so it must be one of its voters "
                         f"(peers.json lists {list(voters)})")
    hs, _cs = storage.initial_state()
    last = storage.last_index()
    term = max(hs.term, storage.term(last) if last else 0) + 1
    cc = ConfChange(ConfChangeType.PROMOTE, node_id, context, voters, learners)
    entry = Entry(term, last + 1, EntryType.CONF_CHANGE, cc.encode())
    storage.save(HardState(term, NONE, last + 1), [entry], None, sync=True)
    return last + 1
