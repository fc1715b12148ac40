"""Idmapped mounts: show a tree with its owners shifted into a user namespace's range.

An idmapped mount needs a user namespace (as an fd) that carries the mapping.
``userns_with`` makes one: a child unshares a user namespace, the parent writes its
maps, keeps an fd to it and lets the child go. ``idmapped_tree`` clones a
directory as a detached mount with that mapping (open_tree + mount_setattr).

overlayfs cannot be idmapped itself, but it can be mounted on idmapped layers,
which is how a container's copy-on-write root gets the container's ownership.
"""

from __future__ import annotations

import os

from hutch.linux import constants as C
from hutch.linux.syscalls import mount_setattr, move_mount, open_tree, unshare

AT_FDCWD = -100


def _map_text(base: int, size: int) -> str:
    return f"0 {base} {size}\n"


def userns_with(base: int, size: int = 65536) -> int:
    """An fd of a new user namespace mapping 0..size-1 to base..base+size-1."""
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
            raise OSError(0, "userns_with: the child could not make a user namespace")
        with open(f"/proc/{pid}/uid_map", "w") as f:
            f.write(_map_text(base, size))
        with open(f"/proc/{pid}/gid_map", "w") as f:
            f.write(_map_text(base, size))
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def idmapped_tree(path: str, userns_fd: int) -> int:
    """A detached idmapped clone of ``path`` (an O_PATH-like mount fd)."""
    fd = open_tree(AT_FDCWD, path, C.OPEN_TREE_CLONE | C.OPEN_TREE_CLOEXEC)
    try:
        mount_setattr(fd, "", C.AT_EMPTY_PATH, attr_set=C.MOUNT_ATTR_IDMAP, userns_fd=userns_fd)
    except BaseException:
        os.close(fd)
        raise
    return fd


def attach(fd: int, target: str) -> None:
    """Attach a detached mount (from idmapped_tree) at ``target``."""
    move_mount(fd, "", AT_FDCWD, target, C.MOVE_MOUNT_F_EMPTY_PATH)
