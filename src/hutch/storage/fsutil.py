"""File system helpers the drivers share: disk usage, tree copies, file system types."""

from __future__ import annotations

import errno
import os
import re
import shutil
import stat
import subprocess

from hutch.errors import SystemFailure
from hutch.storage.snapshotter import Usage


def disk_usage(path: str) -> Usage:
    """Blocks and inodes below ``path`` (each inode once, hard links counted once)."""
    seen: set[tuple[int, int]] = set()
    size = inodes = 0
    stack = [path]
    while stack:
        current = stack.pop()
        try:
            st = os.lstat(current)
        except FileNotFoundError:
            continue
        ident = (st.st_dev, st.st_ino)
        if ident not in seen:
            seen.add(ident)
            size += st.st_blocks * 512
            inodes += 1
        if stat.S_ISDIR(st.st_mode):
            try:
                with os.scandir(current) as it:
                    for entry in it:
                        if entry.is_dir(follow_symlinks=False):
                            stack.append(entry.path)
                            continue
                        est = entry.stat(follow_symlinks=False)
                        eid = (est.st_dev, est.st_ino)
                        if eid not in seen:
                            seen.add(eid)
                            size += est.st_blocks * 512
                            inodes += 1
            except FileNotFoundError:
                continue
    return Usage(size, inodes)


def run(argv: list[str], what: str) -> str:
    """Run a helper program; SystemFailure with its stderr when it fails."""
    try:
        res = subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True, text=True,
                             check=False)
    except FileNotFoundError:
        raise SystemFailure(errno.ENOENT, f"{what}: {argv[0]} not found") from None
    if res.returncode != 0:
        raise SystemFailure(errno.EIO, f"{what}: {' '.join(argv)} exited with "
                                       f"{res.returncode}: {res.stderr.strip()}")
    return res.stdout


def copy_tree(src: str, dst: str) -> None:
    """Copy the contents of ``src`` into the existing directory ``dst``: owners, modes,
    times, xattrs, hard links, devices and holes kept; reflinks where the file system
    has them (cp -a --reflink=auto)."""
    run(["cp", "-a", "--reflink=auto", "--sparse=auto", "--", src.rstrip("/") + "/.", dst],
        f"cannot copy {src} to {dst}")


def remove_tree(path: str) -> None:
    try:
        shutil.rmtree(path)
    except FileNotFoundError:
        pass


def _unescape(field: str) -> str:
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def fs_type(path: str) -> str:
    """The type of the file system ``path`` is on ("ext4", "btrfs", "overlay"...)."""
    real = os.path.realpath(path)
    best, best_type = "", "unknown"
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = _unescape(fields[4])
            fstype = fields[fields.index("-") + 1]
            inside = real == point or real.startswith(point.rstrip("/") + "/")
            if inside and len(point) >= len(best):
                best, best_type = point, fstype
    return best_type
