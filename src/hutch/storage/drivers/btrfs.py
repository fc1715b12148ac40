"""btrfs: each snapshot is a btrfs subvolume, children are subvolume snapshots.

The root must be on btrfs. Preparing snapshots the parent's subvolume (copy
on write, constant time), a view is a read-only snapshot, a commit makes the
subvolume read-only. The ``btrfs`` command (btrfs-progs) does the work.
Usage is measured by walking the subvolume (no quota groups), so a committed
snapshot counts its whole tree.
"""

from __future__ import annotations

import functools
import os
import shutil

from hutch.common.mount import Mount
from hutch.errors import Unsupported
from hutch.storage.drivers.base import BaseSnapshotter
from hutch.storage.fsutil import fs_type, remove_tree, run
from hutch.storage.metastore import Snapshot
from hutch.storage.snapshotter import DriverInfo, Kind

BTRFS_FIRST_FREE_OBJECTID = 256  # the inode number of every subvolume's root


@functools.cache
def _btrfs() -> str | None:
    return shutil.which("btrfs")


def _is_subvolume(path: str) -> bool:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    return st.st_ino == BTRFS_FIRST_FREE_OBJECTID and os.path.isdir(path)


class BtrfsSnapshotter(BaseSnapshotter):
    def check_host(self) -> None:
        if _btrfs() is None:
            raise Unsupported("the btrfs driver needs the btrfs command: "
                              "apt-get install btrfs-progs")
        backing = fs_type(self.root)
        if backing != "btrfs":
            raise Unsupported(f"the btrfs driver needs its root on btrfs; {self.root} is on "
                              f"{backing}")

    def info(self) -> DriverInfo:
        return DriverInfo("btrfs", copy_on_write=True, shares_layers=False,
                          overlay_layers=False, needs_root=True, backing_fs="btrfs")

    def _btrfs(self, *args: str, what: str) -> None:
        run([_btrfs() or "btrfs", *args], what)

    def make(self, snap: Snapshot, directory: str, parent: str | None) -> None:
        fs = os.path.join(directory, "fs")
        name = snap.info.name
        if parent is not None:
            ro = ("-r",) if snap.kind is Kind.VIEW else ()
            self._btrfs("subvolume", "snapshot", *ro, os.path.join(parent, "fs"), fs,
                        what=f"cannot snapshot {parent} for {name!r}")
        else:
            self._btrfs("subvolume", "create", fs, what=f"cannot create a subvolume for {name!r}")
            if snap.kind is Kind.VIEW:
                self.seal(snap, fs)

    def seal(self, snap: Snapshot, fs: str | None = None) -> None:
        path = fs or self.fs(snap.id)
        self._btrfs("property", "set", "-t", "subvol", path, "ro", "true",
                    what=f"cannot make {path} read-only")

    def destroy(self, directory: str) -> None:
        fs = os.path.join(directory, "fs")
        if _is_subvolume(fs):
            self._btrfs("subvolume", "delete", fs, what=f"cannot delete the subvolume {fs}")
        remove_tree(directory)

    def snapshot_mounts(self, snap: Snapshot) -> list[Mount]:
        ro = "rw" if snap.kind is Kind.ACTIVE else "ro"
        return [Mount("bind", self.fs(snap.id), None, ("rbind", ro))]
