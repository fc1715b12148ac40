"""The v1 freezer controller: freezer.state is THAWED, FREEZING or FROZEN."""

from __future__ import annotations

import errno
import os

from hutch.cgroups import files
from hutch.cgroups.tree import wait_until
from hutch.errors import SystemFailure

STATE = "freezer.state"


def state(directory: str) -> str | None:
    """The freezer state, or None when the cgroup does not exist."""
    return files.read_optional(os.path.join(directory, STATE))


def freeze(directory: str, timeout: float) -> None:
    """Write FROZEN and wait until the kernel reports every task frozen.

    FREEZING can get stuck behind a task that is in the middle of something; writing
    FROZEN again retries the freeze, so each poll does that.
    """
    path = os.path.join(directory, STATE)

    def frozen() -> bool:
        if files.read(path) == "FROZEN":
            return True
        files.write(path, "FROZEN")
        return False

    files.write(path, "FROZEN")
    if wait_until(frozen, timeout):
        return
    last = files.read_optional(path)
    err = SystemFailure(errno.ETIMEDOUT, f"freeze: {path} still reads {last} after {timeout:g}s;"
                        " the cgroup was thawed again")
    try:
        files.write(path, "THAWED")
    except SystemFailure as e:
        err.add_note(f"cleanup: {e}")
    raise err


def thaw(directory: str, timeout: float) -> None:
    path = os.path.join(directory, STATE)
    files.write(path, "THAWED")
    if not wait_until(lambda: files.read(path) == "THAWED", timeout):
        raise SystemFailure(errno.ETIMEDOUT,
                            f"thaw: {path} still reads {files.read_optional(path)} after"
                            f" {timeout:g}s; is a parent cgroup frozen?")
