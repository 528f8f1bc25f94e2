"""Snapshots and log compaction for one Replica: when to compact, what a snapshot holds,
how a received one is installed, and the image a follower is sent.

Its own object because it is one decision with its own state (the image being sent, the
last configuration change, the thresholds) that the rest of the request path only calls:
at every Ready (`maybe_compact`), on a restored snapshot (`install`), on an admin
`snapshot` request (`take`). Deterministic like the Replica: no clock, no threads.

Snapshots cost what changed, not the database (storage/DESIGN.md): with a durable
application that can read its own image in place, compaction records metadata only and a
follower is sent the live database read as it is when it needs it ("lazy"); otherwise
(memory, the simulator) a snapshot carries its data.
"""
from __future__ import annotations

import collections

from ddb_node.raft import SnapshotMeta, SnapshotTemporarilyUnavailable
from ddb_node.sql.errors import SnapshotError
from ddb_node.storage.snapshot_sources import BytesSource, ConcatSource, SharedSource

from .members import members_trailer, read_members, split_members


class Compaction:
    """When to compact is counted in entries and in bytes: `every` entries applied since
    the last snapshot, or `log_bytes` bytes of them, take one; behind it at most `trailing`
    entries stay for slow followers, and at most half of `log_bytes` (a bulk load's entries
    are large: at 120 kB an entry, 20,000 entries would be a log of 2.4 GB beside the
    database). Sizes are those of the entries applied since this replica started; entries
    older than that count as empty."""

    def __init__(self, replica, *, every: int, trailing: int, log_bytes: int = 0):
        self.r = replica
        self.every = every              # snapshot after this many applied entries (0: never)
        self.trailing = trailing        # entries kept behind a snapshot for slow followers
        self.log_bytes = log_bytes      # ...or after this many bytes of them (0: no bound)
        self._sizes: collections.deque = collections.deque()   # (index, bytes) still in the log
        self._bytes_since_snapshot = 0
        app, storage = replica.app, replica.storage
        self.lazy = replica.durable and hasattr(app, "snapshot_source") and \
            hasattr(storage, "set_snapshot_provider")
        self.images = SharedSource(self.open_source)
        if self.lazy:
            storage.set_snapshot_provider(self.images.get)
        # the last applied configuration change (or where the application started, set by
        # `recover`): a compaction at a durable index below the applied one is right only above it
        self.conf_changed_at = app.applied_index

    # ---------------------------------------------------------------- installing
    def recover(self) -> None:
        """A restart resumes from the application's own state. Only a log that starts past it
        (a snapshot received just before a crash, or an application that does not survive
        one) needs the storage's snapshot installed first."""
        r = self.r
        if r.app.applied_index < r.storage.first_index() - 1:
            self.install(r.storage.snapshot_meta().index)
        self.conf_changed_at = r.app.applied_index

    def install(self, index: int) -> None:
        """Put the snapshot the storage holds (received from a leader, or taken here) into the
        application, and learn the addresses it carries. A snapshot file is moved into
        place, not copied."""
        r = self.r
        self.images.close()
        path_of = getattr(r.storage, "snapshot_path", None)
        path = path_of() if path_of is not None else None
        if path is not None and hasattr(r.app, "install_file"):
            members, length = read_members(path)
            r.book.add_missing(members, r.id)
            r.app.install_file(path, length)
            return
        data = r.storage.snapshot().data
        if not data:
            raise SnapshotError(f"node {r.id}: the snapshot at {index} has no data to install "
                                f"(applied {r.app.applied_index})")
        members, length = split_members(data[-(1 << 20):], len(data))
        r.book.add_missing(members, r.id)
        r.app.restore_image(data[:length])

    # ---------------------------------------------------------------- sending
    def open_source(self):
        """The snapshot a follower is sent: the application as of now (its applied index, that
        entry's term, the configuration at that index, the address book), read in place.
        Asked between Readies, so the core's configuration is the one at the applied index."""
        r = self.r
        if r.app.applied_index != r.raft.applied:
            raise SnapshotTemporarilyUnavailable("a Ready is being applied")
        try:
            stream = r.app.snapshot_source(wait=False)    # never waits on the loop
        except SnapshotError as exc:      # e.g. the checkpoint could not complete
            raise SnapshotTemporarilyUnavailable(str(exc)) from None
        except Exception as exc:          # noqa: BLE001  (apsw's BusyError and friends)
            raise SnapshotTemporarilyUnavailable(f"{type(exc).__name__}: {exc}") from None
        image = stream.image
        meta = SnapshotMeta(image.index, image.term, r.raft.conf_state)
        r.counters["snapshot_images"] += 1
        r.event("snapshot_image", index=image.index, bytes=image.size)
        return ConcatSource(meta, [stream, BytesSource(meta, members_trailer(r.book.members))])

    # ---------------------------------------------------------------- compacting
    def note_applied(self, entries) -> None:
        """Count the applied entries' bytes (for the `log_bytes` bound)."""
        if not self.log_bytes:
            return
        total = 0
        sizes = self._sizes
        for e in entries:
            n = len(e.data)
            sizes.append((e.index, n))
            total += n
        self._bytes_since_snapshot += total

    def maybe_compact(self) -> None:
        """Runs every Ready: only cheap, in-memory questions here."""
        r = self.r
        images = self.images
        images.release_unused(r.raft.snapshot_sources_in_use())
        if images.current is not None:
            return   # an image is being sent: its checkpoint hold and its log entries stay
        st = r.storage
        applied = r.app.applied_index
        due = self.every and \
            applied - max(st.first_index() - 1, st.snapshot_meta().index) >= self.every
        if due or (self.log_bytes and self._bytes_since_snapshot >= self.log_bytes):
            self.take(sync=False)

    def _bytes_floor(self) -> int:
        """The lowest index the trailing entries may keep within half of `log_bytes`: the
        newest entries whose bytes fit, the older ones compacted."""
        if not self.log_bytes:
            return 0
        budget = self.log_bytes // 2
        for index, n in reversed(self._sizes):
            budget -= n
            if budget < 0:
                return index
        return 0

    def _forget_compacted(self, keep_from: int, snapshot_index: int) -> None:
        sizes = self._sizes
        while sizes and sizes[0][0] <= keep_from:
            sizes.popleft()
        self._bytes_since_snapshot = sum(n for i, n in sizes if i > snapshot_index)

    def take(self, trailing: int | None = None, sync: bool = True) -> int:
        """Snapshot at the applied index and compact the log up to `applied - trailing`.
        Lazy (a durable application): once the application has made the applied index
        durable, the snapshot is metadata only -- the image is read when a follower needs
        it. Otherwise the image and the address book are the snapshot's data.
        `sync=False` (automatic compaction) never checkpoints on this thread: the snapshot
        is at the index the application's own checkpoints made durable (asked for if
        they lag), when no configuration change lies between it and the applied one."""
        r = self.r
        app, st = r.app, r.storage
        applied = app.applied_index
        keep = self.trailing if trailing is None else trailing
        if applied > st.snapshot_meta().index:
            if self.lazy:
                at = app.durable_index
                if at < applied and (sync or at <= st.snapshot_meta().index
                                     or at < self.conf_changed_at):
                    if not sync:
                        app.request_checkpoint()
                        return st.snapshot_meta().index
                    app.sync()     # the WAL's worth; waits while an image is open
                    at = app.durable_index
                    if at < applied:
                        return st.snapshot_meta().index
                applied = min(at, applied)
                st.create_snapshot(applied, r.raft.conf_state)
                size = 0
            else:
                data = app.snapshot_image()
                if r.book.members:
                    data += members_trailer(r.book.members)
                st.create_snapshot(applied, r.raft.conf_state, data)
                size = len(data)
            r.counters["snapshots_taken"] += 1
            r.snapshot_at_ms = r.wall_ms()
            r.event("snapshot", index=applied, bytes=size)
        keep_from = min(max(applied - keep, self._bytes_floor()), st.snapshot_meta().index)
        if r.durable and not self.lazy:
            # never discard entries the user database has not made durable (relaxed sync)
            if app.durable_index < keep_from:
                app.sync()
            keep_from = min(keep_from, app.durable_index)
        if keep_from >= st.first_index():
            st.compact(keep_from)
        if self.log_bytes:
            self._forget_compacted(st.first_index() - 1, st.snapshot_meta().index)
        return applied
