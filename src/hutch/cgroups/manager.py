"""The interface every cgroup manager offers (v1, v2, null).

Resource limits (``apply``/``update``) are implemented per controller in v1/ and
v2/, with the checks and conversions in convert.py; stats and accounting come
later. This module imports ``typing``; the rest of the package does not, so
import it only for type checking or isinstance checks.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable


@runtime_checkable
class CgroupManager(Protocol):
    version: int  # 1 or 2 (0 for the null manager)
    path: str  # the container's cgroup, as /proc/PID/cgroup shows it

    def create(self) -> None:
        """mkdir -p in every hierarchy; fine if an earlier call of ours made them."""

    def add_pid(self, pid: int) -> None:
        """Move a process (its whole thread group) into the cgroup."""

    def freeze(self) -> None:
        """Freeze every process and wait until the kernel says all are frozen."""

    def thaw(self) -> None: ...

    def is_frozen(self) -> bool:
        """False also when the cgroup does not exist."""

    def pids(self, recursive: bool = True) -> list[int]: ...

    def apply(self, resources: dict) -> None:
        """Set OCI ``linux.resources``: checked whole before the first write; idempotent."""

    def update(self, resources: dict) -> None:
        """Change the given limits of a live cgroup (the rest stays)."""

    def kill_all(self, sig: int) -> None:
        """Signal every process, so that forks cannot escape (freezer or cgroup.kill)."""

    def exists(self) -> bool: ...

    def remove(self, timeout: float = 5.0) -> None:
        """rmdir children first, in every hierarchy, retrying while processes exit."""

    def state(self) -> dict[str, object]:
        """JSON-able; ``load_manager()`` rebuilds the manager from it."""
