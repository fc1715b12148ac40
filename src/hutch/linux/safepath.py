"""Resolve and create paths inside a root directory without leaving it.

Paths inside a container's root file system are resolved as the container would
see them: an absolute symlink is taken relative to the root, and ``..`` never
climbs above it. A symlink chain that tries to climb out is refused, so a mount
destination cannot be aimed at the host through a symlink planted in the image.
"""

from __future__ import annotations

import errno
import os
import stat

from hutch.linux import constants as C
from hutch.linux.syscalls import openat2

_MAX_SYMLINKS = 40


class EscapeError(OSError):
    """The path climbs out of the root through ``..`` or a symlink."""


def resolve_in_root(root: str, path: str) -> str:
    """The host path of ``path`` as seen inside ``root``; missing tail components are kept.

    Raises EscapeError when resolution would leave ``root``.
    """
    root = os.path.realpath(root)
    parts = [p for p in path.split("/") if p not in ("", ".")]
    done: list[str] = []  # resolved components below root
    links = 0
    while parts:
        name = parts.pop(0)
        if name == "..":
            if not done:
                raise EscapeError(errno.EXDEV, f"{path}: '..' climbs above the root file system")
            done.pop()
            continue
        current = os.path.join(root, *done, name)
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            done.append(name)
            done.extend(p for p in parts)
            # A missing tail cannot hold symlinks; '..' in it is still checked.
            if any(p == ".." for p in parts):
                raise EscapeError(errno.EXDEV, f"{path}: '..' after a missing component")
            return os.path.join(root, *done)
        if stat.S_ISLNK(st.st_mode):
            links += 1
            if links > _MAX_SYMLINKS:
                raise OSError(errno.ELOOP, f"{path}: too many levels of symbolic links")
            target = os.readlink(current)
            if target.startswith("/"):
                done = []  # absolute symlinks are relative to the root
            new = [p for p in target.split("/") if p not in ("", ".")]
            # Check that the relative target does not climb out.
            depth = len(done)
            for p in new:
                if p == "..":
                    depth -= 1
                    if depth < 0:
                        raise EscapeError(
                            errno.EXDEV,
                            f"{path}: symlink {os.path.join('/', *done, name)} -> {target} "
                            "points outside the root file system")
                else:
                    depth += 1
            parts = new + parts
            continue
        done.append(name)
    return os.path.join(root, *done)


def open_in_root(root_fd: int, path: str, flags: int = os.O_PATH) -> int:
    """Open ``path`` below the directory ``root_fd`` with the kernel's in-root resolution."""
    return openat2(root_fd, path.lstrip("/") or ".", flags,
                   resolve=C.RESOLVE_IN_ROOT | C.RESOLVE_NO_MAGICLINKS)


def mkdir_all_in_root(root: str, path: str, mode: int = 0o755) -> str:
    """``mkdir -p`` of ``path`` inside ``root``; returns the resolved host path."""
    target = resolve_in_root(root, path)
    rel = os.path.relpath(target, os.path.realpath(root))
    current = os.path.realpath(root)
    if rel == ".":
        return target
    for part in rel.split("/"):
        current = os.path.join(current, part)
        try:
            os.mkdir(current, mode)
        except FileExistsError:
            if not os.path.isdir(current):
                raise NotADirectoryError(errno.ENOTDIR, f"{path}: {current} is not a directory")
    return target


def create_file_in_root(root: str, path: str, mode: int = 0o644) -> str:
    """Make sure a file exists at ``path`` inside ``root`` (for bind-mounting a file)."""
    target = resolve_in_root(root, path)
    parent = os.path.dirname(os.path.relpath(target, os.path.realpath(root)))
    if parent and parent != ".":
        mkdir_all_in_root(root, "/" + parent)
    try:
        fd = os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW,
                     mode)
        os.close(fd)
    except FileExistsError:
        pass
    return target
