"""copy: every active snapshot is a full copy of its parent. Works on any file system.

The reference driver: no kernel feature, no special file system. Preparing
costs a copy of the whole parent (``cp -a --reflink=auto``: cheap on file
systems with reflinks, such as btrfs and xfs). A view of a committed snapshot
is a read-only bind of it (committed snapshots never change). Layers are
applied to a copy of their parent, whiteouts carried out.
"""

from __future__ import annotations

import os

from hutch.common.mount import Mount
from hutch.storage.drivers.base import BaseSnapshotter
from hutch.storage.fsutil import copy_tree
from hutch.storage.metastore import Snapshot
from hutch.storage.snapshotter import DriverInfo, Kind


class CopySnapshotter(BaseSnapshotter):
    def info(self) -> DriverInfo:
        return DriverInfo("copy", copy_on_write=False, shares_layers=False,
                          overlay_layers=False, needs_root=False)

    def make(self, snap: Snapshot, directory: str, parent: str | None) -> None:
        fs = os.path.join(directory, "fs")
        os.mkdir(fs, 0o755)
        if snap.kind is Kind.ACTIVE and parent is not None:
            copy_tree(os.path.join(parent, "fs"), fs)

    def snapshot_mounts(self, snap: Snapshot) -> list[Mount]:
        if snap.kind is Kind.ACTIVE:
            return [Mount("bind", self.fs(snap.id), None, ("rbind", "rw"))]
        source = self.fs(snap.parent_ids[0]) if snap.parent_ids else self.fs(snap.id)
        return [Mount("bind", source, None, ("rbind", "ro"))]
