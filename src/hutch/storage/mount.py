"""Mount a snapshot's ``Mount`` records on a directory, and unmount it again.

For tests, for applying layers where a driver's mounts cannot be used
directly, and later for the engine. The kernel calls go through
``hutch.linux.syscalls``. Overlay options longer than a page (many layers)
are shortened by mounting from a child process whose working directory is the
layers' common parent, with relative paths (as containerd does).
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from hutch.common.mount import Mount
from hutch.errors import InvalidArgument, SystemFailure
from hutch.linux import constants as C
from hutch.linux import syscalls
from hutch.linux.mountopts import parse_mount_options
from hutch.linux.safepath import mkdir_all_in_root

PAGE_LIMIT = 4000  # the kernel copies at most one page of mount data
_PATH_OPTIONS = ("lowerdir", "upperdir", "workdir")


def _fail(e: OSError, what: str) -> SystemFailure:
    return SystemFailure(e.errno or errno.EIO, f"{what}: {e.strerror or e}")


def _compact_overlay(data: str) -> tuple[str, str] | None:
    """Overlay ``data`` with lowerdir/upperdir/workdir relative to their common parent."""
    options = data.split(",")
    paths: list[str] = []
    for opt in options:
        key, _, value = opt.partition("=")
        if key in _PATH_OPTIONS:
            paths.extend(value.split(":"))
    if not paths or not all(p.startswith("/") for p in paths):
        return None
    common = os.path.commonpath(paths)
    if common == "/":
        return None
    out = []
    for opt in options:
        key, sep, value = opt.partition("=")
        if key in _PATH_OPTIONS:
            value = ":".join(os.path.relpath(p, common) for p in value.split(":"))
        out.append(key + sep + value)
    return common, ",".join(out)


def _mount_from(cwd: str, source: str, dest: str, fstype: str, flags: int, data: str) -> None:
    pid = os.fork()
    if pid == 0:  # child: chdir, mount, report the errno as the exit status
        code = 0
        try:
            os.chdir(cwd)
            syscalls.mount(source, dest, fstype, flags, data)
        except OSError as e:
            code = e.errno or 1
        except BaseException:  # noqa: BLE001 (the forked child must reach _exit)
            code = errno.EIO
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code:
        raise OSError(code, f"mount({source} on {dest}, type {fstype}, from {cwd}): "
                            f"{os.strerror(code)}")


def mount_one(m: Mount, target: str) -> str:
    """Mount ``m`` on ``target`` (or below it, at ``m.target``); returns where."""
    dest = mkdir_all_in_root(target, m.target) if m.target else os.path.abspath(target)
    opts = parse_mount_options(list(m.options))
    extra = opts.flags & ~(C.MS_BIND | C.MS_REC)
    try:
        if m.type == "bind" or opts.bind:
            flags = C.MS_BIND | (C.MS_REC if opts.recursive else 0)
            syscalls.mount(m.source, dest, None, flags)
            if extra:
                try:
                    syscalls.mount(None, dest, None, C.MS_REMOUNT | C.MS_BIND | extra)
                except OSError:
                    syscalls.umount2(dest, C.MNT_DETACH)
                    raise
        else:
            data = opts.data
            if m.type == "overlay" and len(data) > PAGE_LIMIT:
                compact = _compact_overlay(data)
                if compact is None or len(compact[1]) > PAGE_LIMIT:
                    raise InvalidArgument(f"overlay mount on {dest}: its {len(data)} bytes of "
                                          "options do not fit in a page, even shortened")
                _mount_from(compact[0], m.source, dest, m.type, opts.flags, compact[1])
            else:
                syscalls.mount(m.source, dest, m.type, opts.flags, data or None)
        for prop in opts.propagation:
            syscalls.mount(None, dest, None, prop)
    except OSError as e:
        raise _fail(e, f"cannot mount {m.type} {m.source} on {dest}") from e
    return dest


def mount_all(mounts: Sequence[Mount], target: str) -> None:
    """Mount every record, in order, on ``target``; on a failure unmount those done."""
    if not mounts:
        raise InvalidArgument(f"nothing to mount on {target}")
    done: list[str] = []
    try:
        for m in mounts:
            done.append(mount_one(m, target))
    except BaseException as e:
        for dest in reversed(done):
            try:
                syscalls.umount2(dest, C.MNT_DETACH)
            except OSError as cleanup:
                e.add_note(f"unmounting {dest} after the failure failed too: {cleanup}")
        raise


def _unescape(field: str) -> str:
    """Undo mountinfo's octal escapes (\\040 for a space...)."""
    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), field)


def unmount(target: str, detach: bool = False) -> None:
    try:
        syscalls.umount2(target, C.MNT_DETACH if detach else 0)
    except OSError as e:
        raise _fail(e, f"cannot unmount {target}") from e


def unmount_all(target: str, detach: bool = False) -> int:
    """Unmount everything stacked on ``target`` (and below it); returns how many."""
    count = 0
    real = os.path.realpath(target)
    while True:
        below = []
        with open("/proc/self/mountinfo") as f:
            for line in f:
                point = _unescape(line.split()[4])
                if point == real or point.startswith(real + "/"):
                    below.append(point)
        if not below:
            return count
        # deepest first; the same point may be stacked several times
        point = max(below, key=len)
        unmount(point, detach)
        count += 1


@contextmanager
def mounted(mounts: Sequence[Mount], target: str | None = None) -> Iterator[str]:
    """Mount ``mounts`` on ``target`` (a fresh temporary directory when None) for the
    ``with`` block; everything is unmounted (and the temporary directory removed) after."""
    made = target is None
    where = tempfile.mkdtemp(prefix="hutch-mnt-") if target is None else target
    try:
        mount_all(mounts, where)
        try:
            yield where
        finally:
            unmount_all(where)
    finally:
        if made:
            os.rmdir(where)
