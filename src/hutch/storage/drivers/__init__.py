"""The registry of snapshotters: a name -> a factory taking the driver's root.

``load(name, root)`` opens (or creates) one; ``names()`` lists them. A driver
that the host cannot run raises Unsupported saying what is missing. Callers
choose by name and branch on ``DriverInfo``, never on the class.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

from hutch.errors import InvalidArgument

if TYPE_CHECKING:
    from hutch.storage.snapshotter import Snapshotter

DEFAULT = "overlay"

# name -> "module:class" (imported on first use)
DRIVERS: dict[str, str] = {
    "overlay": "hutch.storage.drivers.overlay:OverlaySnapshotter",
    "copy": "hutch.storage.drivers.copy:CopySnapshotter",
    "btrfs": "hutch.storage.drivers.btrfs:BtrfsSnapshotter",
}
ALIASES = {"overlayfs": "overlay", "native": "copy", "vfs": "copy", "dir": "copy"}


def names() -> list[str]:
    return list(DRIVERS)


def load(name: str, root: str) -> Snapshotter:
    """The snapshotter ``name`` keeping its snapshots below ``root``."""
    name = ALIASES.get(name, name)
    try:
        spec = DRIVERS[name]
    except KeyError:
        raise InvalidArgument(f"unknown storage driver {name!r} "
                              f"(known: {', '.join(DRIVERS)})") from None
    module, _, cls = spec.partition(":")
    factory = getattr(importlib.import_module(module), cls)
    return factory(root)  # type: ignore[no-any-return]
