"""Pick and build the manager for this host, or rebuild one from state.json."""

from __future__ import annotations

import posixpath

from hutch.cgroups import mode as _mode
from hutch.cgroups.mode import UNIFIED, Hierarchy, Mount, OwnCgroup
from hutch.cgroups.null import NullCgroupManager
from hutch.cgroups.path import normalize
from hutch.cgroups.v1.manager import V1Manager
from hutch.cgroups.v2.manager import V2Manager
from hutch.errors import InvalidArgument, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from hutch.cgroups.manager import CgroupManager


def build_manager(cgroups_path: str | None, container_id: str, mounts: list[Mount],
                  own: list[OwnCgroup]) -> V1Manager | V2Manager:
    """``new_manager()`` with the host described by parsed mountinfo and /proc/self/cgroup."""
    normalized = normalize(cgroups_path, container_id)
    host_mode = _mode.mode_of(mounts)
    hierarchies = _mode.find_hierarchies(mounts, own)
    if host_mode == "unified":
        v2: list[Hierarchy] = [h for h in hierarchies if h.version == 2]
        if not v2:
            raise Unsupported("the cgroup2 hierarchy is mounted but /proc/self/cgroup has no"
                              " '0::' line for it")
        return V2Manager.for_hierarchy(normalized, v2[0])
    # legacy or hybrid: every v1 hierarchy, plus the process-tracking cgroup2 one if any
    return V1Manager.for_hierarchies(normalized, hierarchies)


def new_manager(cgroups_path: str | None, container_id: str) -> CgroupManager:
    """The manager for ``linux.cgroupsPath`` on this host; nothing is created yet."""
    return build_manager(cgroups_path, container_id, _mode.read_mounts(), _mode.read_own())


def _check_dir(where: str, value: object) -> str:
    if (not isinstance(value, str) or not value.startswith("/") or value == "/"
            or posixpath.normpath(value) != value or "/../" in value + "/"):
        raise InvalidArgument(f"cgroup state: {where} is {value!r}, not a normalized absolute"
                              " directory below a cgroup mount")
    return value


def load_manager(saved: dict[str, object]) -> CgroupManager:
    """Rebuild a manager from what its ``state()`` returned."""
    if not isinstance(saved, dict):
        raise InvalidArgument(f"cgroup state must be an object, not {type(saved).__name__}")
    version, path, paths = saved.get("version"), saved.get("path", ""), saved.get("paths")
    if not isinstance(path, str):
        raise InvalidArgument(f"cgroup state: path is {path!r}, not a string")
    if version == 0:
        return NullCgroupManager()
    if not isinstance(paths, dict) or not paths:
        raise InvalidArgument(f"cgroup state: paths is {paths!r}, not a non-empty object")
    checked = {str(k): _check_dir(f"paths[{k!r}]", v) for k, v in paths.items()}
    if version == 1:
        return V1Manager(checked, path)
    if version == 2:
        if set(checked) != {UNIFIED}:
            raise InvalidArgument(f"cgroup state: a v2 state has only the {UNIFIED!r} path,"
                                  f" not {sorted(checked)}")
        return V2Manager(checked[UNIFIED], path)
    raise InvalidArgument(f"cgroup state: version is {version!r}, not 0, 1 or 2")
