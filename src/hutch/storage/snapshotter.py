"""The snapshotter contract (containerd's model): what every storage driver offers.

Vocabulary. A *key* names an active or view snapshot, a *name* a committed
one; both live in one namespace per snapshotter. ``prepare(key, parent)``
makes an active (writable) snapshot on top of the committed ``parent`` and
returns how to mount it; ``view`` the same, read-only; ``commit(name, key)``
turns the active snapshot ``key`` into the committed ``name`` (``key`` is gone
then); ``remove`` deletes a snapshot that has no children.

Importing a layer: ``prepare("extract-x", parent)`` -> apply the tar to the
returned mounts -> ``commit(chain_id, "extract-x")``. Running a container:
``prepare(container_id, top_chain_id)`` -> hand the mounts to the runtime.

Drivers never mount anything themselves: they return ``Mount`` records.
Callers that need to know what a driver can do ask its ``DriverInfo``, never
its class or name.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import Protocol, runtime_checkable

from hutch.common.mount import Mount


class Kind(str, Enum):
    VIEW = "view"
    ACTIVE = "active"
    COMMITTED = "committed"


@dataclass(frozen=True, slots=True)
class Info:
    kind: Kind
    name: str  # the key of an active/view snapshot, the name of a committed one
    parent: str | None = None
    labels: dict[str, str] = field(default_factory=dict, compare=False)
    created: float = 0.0
    updated: float = 0.0


@dataclass(frozen=True, slots=True)
class Usage:
    size: int = 0  # bytes on disk (blocks, each inode once)
    inodes: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(self.size + other.size, self.inodes + other.inodes)


@dataclass(frozen=True, slots=True)
class DriverInfo:
    """What a driver can do, as data (Incus's ``Info``)."""

    name: str
    copy_on_write: bool  # prepare costs the same whatever the size of the parent
    shares_layers: bool  # committed layers are used in place by their children (not copied)
    overlay_layers: bool  # committed layers hold overlayfs whiteouts (apply in overlay form)
    needs_root: bool
    backing_fs: str | None = None  # the file system the root must be on (btrfs), if any
    max_depth: int | None = None  # the longest parent chain a mount can hold


@runtime_checkable
class Snapshotter(Protocol):
    """One driver's snapshots below its root directory."""

    root: str

    def info(self) -> DriverInfo: ...

    def stat(self, key: str) -> Info: ...

    def update(self, key: str, labels: dict[str, str]) -> Info: ...

    def usage(self, key: str) -> Usage: ...

    def mounts(self, key: str) -> list[Mount]: ...

    def prepare(self, key: str, parent: str | None = None,
                labels: dict[str, str] | None = None) -> list[Mount]: ...

    def view(self, key: str, parent: str | None = None,
             labels: dict[str, str] | None = None) -> list[Mount]: ...

    def commit(self, name: str, key: str, labels: dict[str, str] | None = None) -> None: ...

    def remove(self, key: str) -> None: ...

    def walk(self, kinds: Sequence[Kind] | None = None) -> list[Info]: ...

    def cleanup(self) -> int: ...

    def close(self) -> None: ...
