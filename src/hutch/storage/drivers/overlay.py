"""overlay: committed layers stacked as overlayfs lower directories (the default driver).

An active snapshot is an empty upper directory (``fs``) and a work directory
over its parents' ``fs`` directories, nearest first; with no parent it is a
read-write bind of ``fs``. A view of one layer is a read-only bind of it, of
more layers an overlay with lower directories only (read-only by nature).
Preparing costs the same whatever the size of the image. Layers are applied
to the upper directory in overlayfs's whiteout form.
"""

from __future__ import annotations

import functools
import os

from hutch.common.mount import Mount
from hutch.errors import Unsupported
from hutch.storage.drivers.base import BaseSnapshotter
from hutch.storage.fsutil import fs_type
from hutch.storage.metastore import Snapshot
from hutch.storage.snapshotter import DriverInfo, Kind

MAX_LOWERS = 500  # the kernel's limit on lower directories


@functools.cache
def _kernel_has_overlay() -> bool:
    with open("/proc/filesystems") as f:
        return any(line.split()[-1] == "overlay" for line in f if line.strip())


@functools.cache
def _index_option() -> tuple[str, ...]:
    """``index=off`` where the kernel knows the option: the same lower directories are
    shared by many mounts, which the inodes index does not allow."""
    return ("index=off",) if os.path.exists("/sys/module/overlay/parameters/index") else ()


class OverlaySnapshotter(BaseSnapshotter):
    def check_host(self) -> None:
        if any(c in self.root for c in ",:="):
            raise Unsupported(f"the overlay driver's root {self.root!r} must not hold ',', ':' "
                              "or '=': they separate overlayfs's mount options")
        if not _kernel_has_overlay():
            raise Unsupported("the overlay driver needs overlayfs, which this kernel lacks "
                              "(modprobe overlay); or use the copy driver")
        backing = fs_type(self.root)
        if backing == "overlay":
            raise Unsupported(f"the overlay driver cannot keep its layers in {self.root}: "
                              "it is on overlayfs itself; choose a root on another file system")

    def info(self) -> DriverInfo:
        return DriverInfo("overlay", copy_on_write=True, shares_layers=True,
                          overlay_layers=True, needs_root=True, max_depth=MAX_LOWERS)

    def make(self, snap: Snapshot, directory: str, parent: str | None) -> None:
        os.mkdir(os.path.join(directory, "fs"), 0o755)
        if snap.kind is Kind.ACTIVE:
            os.mkdir(os.path.join(directory, "work"), 0o711)

    def snapshot_mounts(self, snap: Snapshot) -> list[Mount]:
        fs = self.fs(snap.id)
        lowers = [self.fs(pid) for pid in snap.parent_ids]
        if len(lowers) > MAX_LOWERS:
            raise Unsupported(f"snapshot {snap.info.name!r} has {len(lowers)} parents; "
                              f"overlayfs stacks at most {MAX_LOWERS}")
        if snap.kind is Kind.ACTIVE:
            if not lowers:
                return [Mount("bind", fs, None, ("rbind", "rw"))]
            work = os.path.join(self.directory(snap.id), "work")
            return [Mount("overlay", "overlay", None,
                          (*_index_option(), f"workdir={work}", f"upperdir={fs}",
                           f"lowerdir={':'.join(lowers)}"))]
        if not lowers:
            return [Mount("bind", fs, None, ("rbind", "ro"))]
        if len(lowers) == 1:
            return [Mount("bind", lowers[0], None, ("rbind", "ro"))]
        return [Mount("overlay", "overlay", None, (*_index_option(),
                                                   f"lowerdir={':'.join(lowers)}"))]
