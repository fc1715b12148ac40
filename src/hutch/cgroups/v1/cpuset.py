"""The v1 cpuset controller.

A new v1 cpuset cgroup starts with empty cpuset.cpus and cpuset.mems, and the
kernel refuses to move a task into it (ENOSPC) until both are set. So every level
we create copies them from its parent, as runc does.
"""

from __future__ import annotations

import os

from hutch.cgroups import files


def _file(directory: str, name: str) -> str:
    """cpuset.<name>, or plain <name> on a hierarchy mounted with noprefix."""
    prefixed = os.path.join(directory, f"cpuset.{name}")
    if os.path.exists(prefixed):
        return prefixed
    return os.path.join(directory, name)


def inherit(directory: str) -> None:
    """Copy cpus and mems from the parent where they are still empty."""
    parent = os.path.dirname(directory)
    for name in ("cpus", "mems"):
        mine = _file(directory, name)
        if files.read(mine).strip():
            continue
        value = files.read(_file(parent, name)).strip()
        if value:  # else the parent is empty too; joining will fail with ENOSPC
            files.write(mine, value)
