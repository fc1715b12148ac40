"""The OCI ``linux.cgroupsPath`` rule.

An absolute path ("/a/b") is taken from the root of each hierarchy. A relative
path ("a/b") is placed below the cgroup of the process that asks, in each
hierarchy (DESIGN.md: never at the root). No path means "hutch/<id>", relative.
"""

from __future__ import annotations

from hutch.errors import InvalidArgument

DEFAULT_PARENT = "hutch"


def _check_id(container_id: str) -> None:
    if (not container_id or container_id in (".", "..") or "/" in container_id
            or any(c in container_id for c in "\0\n")):
        raise InvalidArgument(f"container id {container_id!r} cannot name a cgroup:"
                              " it must be one path component, not '.' or '..'")


def normalize(cgroups_path: str | None, container_id: str) -> str:
    """Check ``cgroups_path`` and clean it: "/a/b" or "a/b" (never "", "/" or "..")."""
    _check_id(container_id)
    if not cgroups_path:
        return f"{DEFAULT_PARENT}/{container_id}"
    if "\0" in cgroups_path or "\n" in cgroups_path:
        raise InvalidArgument(f"cgroupsPath {cgroups_path!r} contains a NUL or newline character")
    if "/" not in cgroups_path and cgroups_path.count(":") == 2:
        raise InvalidArgument(
            f"cgroupsPath {cgroups_path!r} uses the systemd 'slice:prefix:name' syntax, which"
            " hutch does not support; use a path such as '/hutch/<id>' or 'hutch/<id>'")
    parts = [p for p in cgroups_path.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise InvalidArgument(f"cgroupsPath {cgroups_path!r} contains '..'; give a path"
                              " without '..' components")
    if not parts:
        raise InvalidArgument(f"cgroupsPath {cgroups_path!r} names the root or the caller's own"
                              " cgroup; give a path below it such as 'hutch/<id>'")
    joined = "/".join(parts)
    return "/" + joined if cgroups_path.startswith("/") else joined


def place(normalized: str, own: str) -> str:
    """Put a normalized path in one hierarchy where the caller sits at ``own``."""
    if normalized.startswith("/"):
        return normalized
    own = own.rstrip("/")
    return f"{own}/{normalized}"


def resolve_path(cgroups_path: str | None, container_id: str, own: str | None = None) -> str:
    """The container's cgroup path, as /proc/PID/cgroup will show it.

    ``own`` is the caller's cgroup; by default that of the primary hierarchy
    (v1 freezer, else cgroup2) read from /proc/self/cgroup. On v1 a relative
    path can land at different places in different hierarchies; the manager
    resolves it per hierarchy, and this is the primary one.
    """
    normalized = normalize(cgroups_path, container_id)
    if normalized.startswith("/"):
        return normalized
    if own is None:
        from hutch.cgroups.mode import primary_own, read_own
        own = primary_own(read_own())
    return place(normalized, own)
