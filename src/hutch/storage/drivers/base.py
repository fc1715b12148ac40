"""What the drivers share: the metadata store, the directory layout, the transactions.

A driver only says how to make, commit, mount, measure and destroy one
snapshot directory; this base class does the rest as containerd's drivers do
around ``storage.MetaStore``:

    <root>/metadata.db         the shared metadata store (SQLite)
    <root>/snapshots/<id>/     one directory per snapshot (``fs`` inside, and more)
    <root>/staging/            a snapshot being made, renamed into snapshots/ when done
    <root>/removing/<id>/      a removed snapshot, deleted after the record is gone

Each operation records the change and does its file system work inside one
transaction, which commits only when the work succeeded. ``cleanup`` removes
what a crash left (directories without a record).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from typing import Self

from hutch.common.mount import Mount
from hutch.errors import WrongState
from hutch.storage.fsutil import remove_tree
from hutch.storage.metastore import MetaStore, Snapshot
from hutch.storage.snapshotter import DriverInfo, Info, Kind, Usage


class BaseSnapshotter:
    """A snapshotter whose subclass supplies the file system work."""

    def __init__(self, root: str) -> None:
        self.root = os.path.abspath(root)
        self.check_host()
        for sub in ("snapshots", "staging", "removing"):
            os.makedirs(os.path.join(self.root, sub), mode=0o711, exist_ok=True)
        os.chmod(self.root, 0o711)
        self.ms = MetaStore(os.path.join(self.root, "metadata.db"))

    # --- for subclasses -------------------------------------------------------------

    def check_host(self) -> None:
        """Raise Unsupported when this host or root cannot hold this driver's snapshots."""

    def info(self) -> DriverInfo:
        raise NotImplementedError

    def make(self, snap: Snapshot, directory: str, parent: str | None) -> None:
        """Fill the new snapshot directory (``fs`` and what else the driver needs).
        ``parent``: the directory of the parent snapshot."""
        raise NotImplementedError

    def snapshot_mounts(self, snap: Snapshot) -> list[Mount]:
        raise NotImplementedError

    def seal(self, snap: Snapshot) -> None:
        """Make an active snapshot's directory a committed one (btrfs: read-only)."""

    def destroy(self, directory: str) -> None:
        """Delete a snapshot directory that no record names any more."""
        remove_tree(directory)

    def measure(self, snap: Snapshot) -> Usage:
        """The disk usage of what this snapshot adds (its own ``fs``)."""
        from hutch.storage.fsutil import disk_usage
        return disk_usage(self.fs(snap.id))

    # --- layout ---------------------------------------------------------------------

    def directory(self, sid: int) -> str:
        return os.path.join(self.root, "snapshots", str(sid))

    def fs(self, sid: int) -> str:
        return os.path.join(self.root, "snapshots", str(sid), "fs")

    # --- the Snapshotter Protocol ---------------------------------------------------

    def stat(self, key: str) -> Info:
        return self.ms.get(key).info

    def update(self, key: str, labels: dict[str, str]) -> Info:
        with self.ms.transaction():
            return self.ms.update(key, labels).info

    def usage(self, key: str) -> Usage:
        snap = self.ms.get(key)
        if snap.kind is Kind.COMMITTED:
            return snap.usage
        if snap.kind is Kind.VIEW:
            return Usage()
        return self.measure(snap)

    def mounts(self, key: str) -> list[Mount]:
        snap = self.ms.get(key)
        if snap.kind is Kind.COMMITTED:
            raise WrongState(f"snapshot {key!r} is committed: mount a view of it "
                             "(view(key, parent)) or prepare a child")
        return self.snapshot_mounts(snap)

    def prepare(self, key: str, parent: str | None = None,
                labels: dict[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.ACTIVE, key, parent, labels)

    def view(self, key: str, parent: str | None = None,
             labels: dict[str, str] | None = None) -> list[Mount]:
        return self._create(Kind.VIEW, key, parent, labels)

    def _create(self, kind: Kind, key: str, parent: str | None,
                labels: dict[str, str] | None) -> list[Mount]:
        with self.ms.transaction():
            snap = self.ms.create(kind, key, parent, labels)
            staging = tempfile.mkdtemp(prefix=f"{snap.id}-", dir=os.path.join(self.root,
                                                                               "staging"))
            try:
                os.chmod(staging, 0o711)
                parent_dir = self.directory(snap.parent_ids[0]) if snap.parent_ids else None
                self.make(snap, staging, parent_dir)
                os.rename(staging, self.directory(snap.id))
            except BaseException as e:
                try:
                    self.destroy(staging)
                except Exception as cleanup:  # noqa: BLE001 (reported with the first error)
                    e.add_note(f"removing {staging} failed too: {cleanup}")
                raise
            return self.snapshot_mounts(snap)

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None:
        with self.ms.transaction():
            active = self.ms.get(key)
            if active.kind is not Kind.ACTIVE:
                raise WrongState(f"snapshot {key!r} is {active.kind.value}: only an active "
                                 "snapshot can be committed")
            usage = self.measure(active)
            snap = self.ms.commit(name, key, usage, labels)
            self.seal(snap)

    def remove(self, key: str) -> None:
        with self.ms.transaction():
            snap = self.ms.remove(key)
            removing = os.path.join(self.root, "removing", str(snap.id))
            os.rename(self.directory(snap.id), removing)
        self.destroy(removing)

    def walk(self, kinds: Sequence[Kind] | None = None) -> list[Info]:
        return self.ms.walk(kinds)

    def cleanup(self) -> int:
        """Delete directories no record names (left by a crash); returns how many."""
        removed = 0
        with self.ms.transaction():
            ids = self.ms.ids()
            for sub in ("staging", "removing"):
                for entry in os.listdir(os.path.join(self.root, sub)):
                    self.destroy(os.path.join(self.root, sub, entry))
                    removed += 1
            for entry in os.listdir(os.path.join(self.root, "snapshots")):
                if not entry.isdigit() or int(entry) not in ids:
                    self.destroy(os.path.join(self.root, "snapshots", entry))
                    removed += 1
        return removed

    def close(self) -> None:
        self.ms.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.root!r})"
