"""Signalling every process of a cgroup.

With a freezer, the cgroup is frozen while the pids are listed and signalled, so a
process that forks cannot leave a child behind (runc does the same). Without one,
SIGKILL is repeated until the cgroup is empty or we give up.
"""

from __future__ import annotations

import errno
import os

from hutch.cgroups.tree import wait_until
from hutch.errors import SystemFailure

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

SIGKILL = 9  # the same on every Linux architecture; `import signal` costs 3 ms
KILL_TIMEOUT = 5.0  # seconds of repeated SIGKILL without a freezer before we give up


def signal_pids(pids: list[int], sig: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            continue  # it exited meanwhile
        except OSError as e:
            raise SystemFailure(e.errno or errno.EIO,
                                f"kill -{sig} {pid}: {e.strerror}") from e


def signal_all(sig: int, list_pids: Callable[[], list[int]],
               freezer: tuple[Callable[[], bool], Callable[[], None], Callable[[], None]] | None,
               where: str) -> None:
    """Send ``sig`` to every pid ``list_pids()`` returns.

    ``freezer`` is ``(is_frozen, freeze, thaw)`` or None. A cgroup that was frozen
    before stays frozen, except after SIGKILL: frozen processes die only once thawed.
    """
    if freezer is None:
        _signal_unfrozen(sig, list_pids, where)
        return
    is_frozen, freeze, thaw = freezer
    was_frozen = is_frozen()
    try:
        freeze()
    except SystemFailure:
        # A freeze that does not complete (a task stuck in the kernel) must not stop
        # a kill; freeze() has thawed again, so signal the way we would without one.
        _signal_unfrozen(sig, list_pids, where)
        return
    try:
        signal_pids(list_pids(), sig)
    finally:
        if not was_frozen or sig == SIGKILL:
            thaw()


def _signal_unfrozen(sig: int, list_pids: Callable[[], list[int]], where: str) -> None:
    pids = list_pids()
    signal_pids(pids, sig)
    if sig != SIGKILL:
        return

    def gone() -> bool:
        nonlocal pids
        pids = list_pids()
        signal_pids(pids, sig)
        return not pids

    if not wait_until(gone, KILL_TIMEOUT):
        raise SystemFailure(errno.EAGAIN, f"kill -9 every process in {where}: pids"
                            f" {' '.join(map(str, pids))} are still there after {KILL_TIMEOUT:g}s"
                            " (stuck in the kernel, or forking faster than we kill without a"
                            " freezer)")
