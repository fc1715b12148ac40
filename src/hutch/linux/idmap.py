"""Idmapped mounts: show a tree with its owners shifted into a user namespace's range.

An idmapped mount needs a user namespace (as an fd) that carries the mapping.
``userns_for`` makes one (``userns_with`` for one range from 0): a child unshares a
user namespace, the parent writes its maps, keeps an fd to it and lets the child go.
``idmapped_tree`` clones a directory as a detached mount with that mapping
(open_tree + mount_setattr); ``attach_at_fd`` mounts it where an fd points.

overlayfs cannot be idmapped itself, but it can be mounted on idmapped layers,
which is how a container's copy-on-write root gets the container's ownership.
"""

from __future__ import annotations

import os

from hutch.linux import constants as C
from hutch.linux.syscalls import mount_setattr, move_mount, open_tree, unshare

AT_FDCWD = -100


Mapping = tuple[int, int, int]  # (id inside, id on the host, how many), as in uid_map


def _map_text(mappings: list[Mapping]) -> str:
    return "".join(f"{inside} {host} {size}\n" for inside, host, size in mappings)


def userns_with(base: int, size: int = 65536) -> int:
    """An fd of a new user namespace mapping 0..size-1 to base..base+size-1."""
    return userns_for([(0, base, size)], [(0, base, size)])


def userns_for(uid_map: list[Mapping], gid_map: list[Mapping]) -> int:
    """An fd of a new user namespace with these maps (the caller must be root on the host)."""
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child only exists to own the namespace for a moment
        try:
            os.close(ready_r)
            os.close(done_w)
            unshare(C.CLONE_NEWUSER)
            os.write(ready_w, b"u")
            os.read(done_r, 1)  # until the parent holds an fd to the namespace
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(done_r)
    try:
        if os.read(ready_r, 1) != b"u":
            raise OSError(0, "userns_for: the child could not make a user namespace")
        for name, mappings in (("uid_map", uid_map), ("gid_map", gid_map)):
            try:
                with open(f"/proc/{pid}/{name}", "w") as f:
                    f.write(_map_text(mappings))
            except OSError as e:
                raise OSError(e.errno, f"write {name} {_map_text(mappings).strip()!r}: "
                                       f"{e.strerror}") from None
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def idmapped_tree(path: str, userns_fd: int, with_submounts: bool = False,
                  map_submounts: bool = False) -> int:
    """A detached idmapped clone of ``path`` (an O_PATH-like mount fd).

    ``with_submounts`` clones the mounts below ``path`` too (an rbind);
    ``map_submounts`` idmaps them as well (OCI's "ridmap"), else only the top one.
    """
    flags = C.OPEN_TREE_CLONE | C.OPEN_TREE_CLOEXEC | (C.AT_RECURSIVE if with_submounts else 0)
    fd = open_tree(AT_FDCWD, path, flags)
    try:
        mount_setattr(fd, "", C.AT_EMPTY_PATH | (C.AT_RECURSIVE if map_submounts else 0),
                      attr_set=C.MOUNT_ATTR_IDMAP, userns_fd=userns_fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def attach(fd: int, target: str) -> None:
    """Attach a detached mount (from idmapped_tree) at ``target``."""
    move_mount(fd, "", AT_FDCWD, target, C.MOVE_MOUNT_F_EMPTY_PATH)


def attach_at_fd(fd: int, target_fd: int) -> None:
    """Attach a detached mount on the directory or file open as ``target_fd``
    (no path lookup, so no symlink can redirect it)."""
    move_mount(fd, "", target_fd, "", C.MOVE_MOUNT_F_EMPTY_PATH | C.MOVE_MOUNT_T_EMPTY_PATH)
