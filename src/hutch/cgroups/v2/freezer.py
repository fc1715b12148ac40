"""The v2 freezer: write cgroup.freeze, then cgroup.events says "frozen 1" once done."""

from __future__ import annotations

import errno
import os

from hutch.cgroups import files
from hutch.cgroups.tree import wait_until
from hutch.errors import SystemFailure, Unsupported


def _frozen(events: str) -> bool:
    return files.read_keyed(events).get("frozen") == "1"


def is_frozen(directory: str) -> bool:
    """False also when the cgroup (or the freezer, before Linux 5.2) does not exist."""
    try:
        return _frozen(os.path.join(directory, "cgroup.events"))
    except SystemFailure as e:
        if e.errno == errno.ENOENT:
            return False
        raise


def _freeze_file(directory: str) -> str:
    path = os.path.join(directory, "cgroup.freeze")
    if os.path.isdir(directory) and not os.path.exists(path):
        raise Unsupported(f"{path} does not exist: the cgroup v2 freezer needs Linux 5.2 or later")
    return path


def freeze(directory: str, timeout: float) -> None:
    path = _freeze_file(directory)
    events = os.path.join(directory, "cgroup.events")
    files.write(path, "1")
    if wait_until(lambda: _frozen(events), timeout):
        return
    err = SystemFailure(errno.ETIMEDOUT, f"freeze: {events} does not read 'frozen 1'"
                        f" {timeout:g}s after writing '1' to {path}; the cgroup was thawed again")
    try:
        files.write(path, "0")
    except SystemFailure as e:
        err.add_note(f"cleanup: {e}")
    raise err


def thaw(directory: str, timeout: float) -> None:
    path = _freeze_file(directory)
    events = os.path.join(directory, "cgroup.events")
    files.write(path, "0")
    if not wait_until(lambda: not _frozen(events), timeout):
        raise SystemFailure(errno.ETIMEDOUT, f"thaw: {events} still reads 'frozen 1'"
                            f" {timeout:g}s after writing '0' to {path}; is a parent cgroup frozen?")
