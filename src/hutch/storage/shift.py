"""Shift a tree's owners into a user namespace's range, once (where idmapped mounts are
not to be had).

Where the kernel or the file system cannot idmap a mount, a container with its own user
namespace still needs its root file system owned by its ids: each file's owner ``id``
(below ``size``) becomes ``base + id`` on disk, as LXD did before idmapped mounts. On an
overlay this writes only the container's own upper layer (the kernel copies a file up to
change its owner), so the image's layers stay as they are.
"""

from __future__ import annotations

import os
import stat


def _shifted(value: int, base: int, size: int) -> int:
    return base + value if value < size else value


def shift_tree(root: str, base: int, size: int = 65536) -> int:
    """Shift every owner below ``root`` (the root included), without following symlinks
    or crossing into other file systems; returns how many entries were changed."""
    dev = os.lstat(root).st_dev
    changed = 0
    stack = [root]
    while stack:
        path = stack.pop()
        st = os.lstat(path)
        if st.st_dev != dev:
            continue  # a mount below (proc, a volume): not ours to change
        uid, gid = _shifted(st.st_uid, base, size), _shifted(st.st_gid, base, size)
        if (uid, gid) != (st.st_uid, st.st_gid):
            os.lchown(path, uid, gid)
            changed += 1
            if stat.S_ISREG(st.st_mode) and st.st_mode & (stat.S_ISUID | stat.S_ISGID):
                os.chmod(path, stat.S_IMODE(st.st_mode))  # chown cleared set-id bits
        if stat.S_ISDIR(st.st_mode):
            with os.scandir(path) as entries:
                stack.extend(e.path for e in entries)
    return changed
