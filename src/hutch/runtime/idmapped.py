"""Idmapped bind mounts (runtime-spec 1.1: a mount's uidMappings/gidMappings, "idmap",
"ridmap"), prepared on the host side before the container's children are forked.

Making a mount idmapped (mount_setattr MOUNT_ATTR_IDMAP) needs CAP_SYS_ADMIN over the
source's file system, which the container's init, in its own user namespace, does not
have. So the runtime clones each such source as a detached mount here, as root on the
host, and init only attaches it at its target inside the rootfs.

The mapping of a mount works like a user namespace's: a file owned by ``containerID +
k`` on disk shows as owned by ``hostID + k``. A mount with "idmap"/"ridmap" and no
mappings of its own takes the container's (linux.uidMappings/gidMappings), so the
container's root sees files owned by root on disk as its own, and what it writes is
stored as owned by root on disk.
"""

from __future__ import annotations

import os

from hutch.errors import InvalidArgument, SystemFailure

IDMAP_OPTIONS = ("idmap", "ridmap")


def wants_idmap(m: dict) -> bool:
    options = m.get("options") or []
    return (m.get("uidMappings") is not None or m.get("gidMappings") is not None
            or any(o in IDMAP_OPTIONS for o in options))


def _triples(mappings: list[dict]) -> list[tuple[int, int, int]]:
    return [(int(x["containerID"]), int(x["hostID"]), int(x["size"])) for x in mappings]


def _describe(i: int, m: dict) -> str:
    return f"mounts[{i}] ({m.get('source')} on {m.get('destination')})"


def prepare(spec: dict, bundle: str) -> dict[int, int]:
    """Detached idmapped clones of the spec's idmapped mounts: {mount index: fd}.

    The caller closes the fds (each is O_CLOEXEC). Nothing is mounted anywhere yet.
    """
    wanted = [(i, m) for i, m in enumerate(spec.get("mounts") or []) if wants_idmap(m)]
    if not wanted:
        return {}
    from hutch.linux.idmap import idmapped_tree, userns_for

    linux = spec.get("linux") or {}
    joined_userns = next((ns.get("path") for ns in linux.get("namespaces") or []
                          if ns.get("type") == "user" and ns.get("path")), None)
    has_userns = any(ns.get("type") == "user" for ns in linux.get("namespaces") or [])
    fds: dict[int, int] = {}
    userns_cache: dict[str, int] = {}
    try:
        for i, m in wanted:
            what = _describe(i, m)
            options = m.get("options") or []
            if "bind" not in options and "rbind" not in options and m.get("type") != "bind":
                raise InvalidArgument(f"{what}: only bind mounts can be idmapped")
            key, make = _mapping(i, m, linux, joined_userns, has_userns, userns_for)
            if os.geteuid() != 0:
                raise InvalidArgument(f"{what}: idmapped mounts need root on the host "
                                      "(rootless containers cannot have them)")
            if key not in userns_cache:
                userns_cache[key] = make()
            source = m.get("source") or ""
            if not os.path.isabs(source):
                source = os.path.join(bundle, source)
            try:
                fds[i] = idmapped_tree(source, userns_cache[key],
                                       with_submounts="rbind" in options,
                                       map_submounts="ridmap" in options)
            except OSError as e:
                hint = ""
                if e.errno == 22:  # EINVAL: the file system has no FS_ALLOW_IDMAP
                    hint = ("; its file system cannot be idmapped (or, with ridmap, one "
                            "below it cannot)")
                raise SystemFailure(e.errno or 0, f"{what}: idmapped mount: "
                                                  f"{os.strerror(e.errno or 0)}{hint}") from None
    except BaseException:
        for fd in fds.values():
            os.close(fd)
        raise
    finally:
        for fd in userns_cache.values():
            os.close(fd)
    return fds


def _mapping(i: int, m: dict, linux: dict, joined_userns: str | None, has_userns: bool,
             userns_for):  # type: ignore[no-untyped-def]
    """(a cache key, a function making the user namespace fd) for mount ``m``."""
    uids, gids = m.get("uidMappings"), m.get("gidMappings")
    if uids or gids:
        if not (uids and gids):
            raise InvalidArgument(f"{_describe(i, m)}: an idmapped mount needs both "
                                  "uidMappings and gidMappings")
        u, g = _triples(uids), _triples(gids)
        return repr((u, g)), lambda: userns_for(u, g)
    if joined_userns:
        def open_joined() -> int:
            try:
                return os.open(joined_userns, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as e:
                raise InvalidArgument(f"{_describe(i, m)}: user namespace {joined_userns}: "
                                      f"{e.strerror}") from None
        return "joined", open_joined
    if has_userns and linux.get("uidMappings") and linux.get("gidMappings"):
        u, g = _triples(linux["uidMappings"]), _triples(linux["gidMappings"])
        return repr((u, g)), lambda: userns_for(u, g)
    raise InvalidArgument(f"{_describe(i, m)}: idmap without uidMappings/gidMappings takes "
                          "the container's, but it has no user namespace")
