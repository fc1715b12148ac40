"""Directory work shared by the v1 and v2 managers: mkdir -p, pids, rmdir bottom-up."""

from __future__ import annotations

import errno
import os
import time

from hutch.cgroups import files
from hutch.errors import InvalidArgument, SystemFailure

# TYPE_CHECKING without importing typing (mypy treats the name specially).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable


def make_dirs(path: str) -> list[str]:
    """mkdir -p; returns the directories this call created, top first."""
    missing = []
    d = path
    while not os.path.isdir(d):
        missing.append(d)
        parent = os.path.dirname(d)
        if parent == d:
            break
        d = parent
    created: list[str] = []
    for d in reversed(missing):
        try:
            os.mkdir(d, 0o755)
        except FileExistsError:
            continue  # someone else was quicker; the directory is there either way
        except OSError as e:
            undo_dirs(created, e)
            raise SystemFailure(e.errno or errno.EIO, f"create cgroup {d}: {e.strerror}") from e
        created.append(d)
    return created


def undo_dirs(created: list[str], error: BaseException) -> None:
    """Remove directories made by a failed step; failures become notes on ``error``."""
    for d in reversed(created):
        try:
            os.rmdir(d)
        except FileNotFoundError:
            pass
        except OSError as e:
            error.add_note(f"cleanup: could not remove cgroup {d}: {e.strerror}")


def _subdirs_bottom_up(path: str) -> list[str]:
    """``path`` and every cgroup below it, children before their parents."""
    out: list[str] = []
    for top, dirs, _ in os.walk(path, topdown=False, onerror=None, followlinks=False):
        out.extend(os.path.join(top, d) for d in dirs)
    out.append(path)
    return out


def walk_pids(path: str, recursive: bool = True) -> list[int]:
    """Every pid in cgroup.procs of ``path`` (and, if recursive, of its descendants)."""
    dirs = _subdirs_bottom_up(path) if recursive else [path]
    pids: set[int] = set()
    for d in dirs:
        try:
            pids.update(files.read_pids(os.path.join(d, "cgroup.procs")))
        except SystemFailure as e:
            # ENOENT: the cgroup went away meanwhile; EOPNOTSUPP: a v2 threaded cgroup,
            # whose processes are listed by its thread root.
            if e.errno not in (errno.ENOENT, errno.ENODEV, errno.EOPNOTSUPP):
                raise
    return sorted(pids)


def wait_until(done: Callable[[], bool], timeout: float) -> bool:
    """Poll ``done`` with a short back-off until it is true or ``timeout`` has passed."""
    deadline = time.monotonic() + timeout
    delay = 0.001
    while True:
        if done():
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def remove_dirs(paths: Iterable[str], timeout: float) -> None:
    """rmdir each cgroup and its descendants, children first.

    rmdir fails with EBUSY while processes are still leaving; that is retried until
    ``timeout``. A cgroup already gone is fine.
    """
    paths = list(paths)
    for path in paths:
        if os.path.ismount(path):
            raise InvalidArgument(f"refusing to remove {path}: it is the root of a cgroup hierarchy")
    deadline = time.monotonic() + timeout
    first: SystemFailure | None = None
    for path in paths:  # every hierarchy gets its turn, even after one failed
        try:
            for d in _subdirs_bottom_up(path) if os.path.isdir(path) else ():
                _rmdir(d, deadline, timeout)
        except SystemFailure as e:
            if first is None:
                first = e
            else:
                first.add_note(f"also: {e}")
    if first is not None:
        raise first


def _rmdir(d: str, deadline: float, timeout: float) -> None:
    delay = 0.005
    while True:
        try:
            os.rmdir(d)
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno == errno.EBUSY and time.monotonic() < deadline:
                time.sleep(delay)
                delay = min(delay * 2, 0.1)
                continue
            detail = e.strerror
            if e.errno == errno.EBUSY:
                try:
                    left = walk_pids(d)
                except SystemFailure:
                    left = []
                detail = (f"still busy after {timeout:g}s"
                          + (f", pids {' '.join(map(str, left))} are in it" if left else "")
                          + "; kill them and delete again")
            raise SystemFailure(e.errno or errno.EIO, f"remove cgroup {d}: {detail}") from e
