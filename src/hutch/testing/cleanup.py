"""Leave nothing behind: reap the processes a test started, remove its cgroups.

This host's PID 1 reaps orphans slowly, so tests wait for their own children
and count a zombie as gone.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Sequence
from typing import Any

from hutch.testing.host import cgroup_mounts, own_cgroup_dir, unescape


def pid_alive(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return False
    return state not in ("Z", "X")


def _reap_if_child(pid: int) -> None:
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        pass


def wait_gone(pids: Sequence[int], timeout: float, reap: bool = False) -> list[int]:
    """Wait until none of ``pids`` runs; return those still alive.

    With ``reap``, those that are our children are reaped too (never do that to a
    Popen's child: its returncode would be lost).
    """
    deadline = time.monotonic() + timeout
    while True:
        for pid in pids if reap else ():
            _reap_if_child(pid)
        alive = [p for p in pids if pid_alive(p)]
        if not alive or time.monotonic() >= deadline:
            return alive
        time.sleep(0.02)


class Reaper:
    """Tracks the processes a test starts and ends each one at :meth:`close`.

    ``popen`` starts a process in its own session, so ``close`` can kill its whole
    process group; ``add`` tracks a process (or a bare pid) started elsewhere.
    """

    def __init__(self) -> None:
        self._procs: list[subprocess.Popen[Any]] = []
        self._pids: list[int] = []

    def popen(self, argv: Sequence[str | os.PathLike[str]], **kw: Any) -> subprocess.Popen[Any]:
        kw.setdefault("start_new_session", True)
        kw.setdefault("stdin", subprocess.DEVNULL)
        proc = subprocess.Popen([os.fspath(a) for a in argv], **kw)
        self._procs.append(proc)
        return proc

    def add(self, proc: subprocess.Popen[Any] | int) -> None:
        if isinstance(proc, int):
            self._pids.append(proc)
        else:
            self._procs.append(proc)

    def close(self, timeout: float = 10.0) -> list[str]:
        """Kill and reap everything tracked; return what could not be ended."""
        problems = []
        for proc in self._procs:
            if proc.poll() is None:
                _kill_group_or_process(proc)
            try:
                proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                problems.append(f"pid {proc.pid} ({proc.args!r}) survived SIGKILL")
            for stream in (proc.stdin, proc.stdout, proc.stderr):
                if stream is not None:
                    stream.close()
        for pid in self._pids:
            if pid_alive(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        problems += [f"pid {p} survived SIGKILL" for p in wait_gone(self._pids, timeout, reap=True)]
        self._procs.clear()
        self._pids.clear()
        return problems

    def __enter__(self) -> Reaper:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _kill_group_or_process(proc: subprocess.Popen[Any]) -> None:
    try:
        if os.getpgid(proc.pid) == proc.pid:
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except ProcessLookupError:
        pass


def cgroup_candidates(relpath: str) -> list[str]:
    """Where a runtime may have put the relative cgroup ``relpath``, in every hierarchy:
    below this process's own cgroup (what hutch and runc do), and at the hierarchy's root."""
    relpath = relpath.strip("/")
    seen: list[str] = []
    for mount in cgroup_mounts():
        for base in (own_cgroup_dir(mount), mount.mountpoint):
            if base is not None and os.path.join(base, relpath) not in seen:
                seen.append(os.path.join(base, relpath))
    return seen


def _write(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError:
        pass


def _cgroup_pids(directory: str) -> list[int]:
    try:
        with open(os.path.join(directory, "cgroup.procs")) as f:
            return [int(line) for line in f if line.strip()]
    except OSError:
        return []


def remove_cgroup_tree(top: str, timeout: float = 5.0) -> None:
    """Thaw, kill what runs in, and rmdir ``top`` and its descendants, bottom-up.

    Raises OSError naming the directory that could not be removed.
    """
    dirs = [d for d, _, _ in os.walk(top)]  # top-down: parents first
    for d in dirs:  # a frozen task cannot die: thaw first (v1 freezer, v2 cgroup.freeze)
        if os.path.exists(os.path.join(d, "freezer.state")):
            _write(os.path.join(d, "freezer.state"), "THAWED")
        if os.path.exists(os.path.join(d, "cgroup.freeze")):
            _write(os.path.join(d, "cgroup.freeze"), "0")
    for d in reversed(dirs):
        pids = _cgroup_pids(d)
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        alive = wait_gone(pids, timeout)
        if alive:
            raise OSError(f"cannot empty cgroup {d}: pids {alive} survive SIGKILL")
        deadline = time.monotonic() + timeout
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as e:  # EBUSY while exiting tasks still leave
                if time.monotonic() >= deadline:
                    raise OSError(e.errno, f"cannot remove cgroup {d}: {e.strerror}") from e
                time.sleep(0.02)


def mounts_below(paths: Sequence[str | os.PathLike[str]]) -> list[str]:
    """Mount points of this mount namespace at or below any of ``paths``."""
    prefixes = [os.path.abspath(p) for p in paths]
    found = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            target = unescape(line.split()[4])
            if any(target == p or target.startswith(p + "/") for p in prefixes):
                found.append(target)
    return found
