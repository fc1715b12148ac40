"""Cgroup managers: create the container's cgroup, add processes, freeze, kill, remove.

``new_manager()`` picks the v1 manager on legacy and hybrid hosts and the v2 one on
unified hosts; ``load_manager()`` rebuilds either from state.json. Everything here
imports the stdlib only (no ``typing``: the runtime starts on every call).
"""

from __future__ import annotations

from hutch.cgroups.factory import build_manager, load_manager, new_manager
from hutch.cgroups.mode import detect_mode
from hutch.cgroups.null import NullCgroupManager
from hutch.cgroups.path import resolve_path
from hutch.cgroups.v1.manager import V1Manager
from hutch.cgroups.v2.manager import V2Manager

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hutch.cgroups.manager import CgroupManager

__all__ = ["CgroupManager", "NullCgroupManager", "V1Manager", "V2Manager", "build_manager",
           "detect_mode", "load_manager", "new_manager", "resolve_path"]


def __getattr__(name: str) -> object:
    # The Protocol needs typing, which costs milliseconds; load it on first use only.
    if name == "CgroupManager":
        from hutch.cgroups.manager import CgroupManager
        return CgroupManager
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
