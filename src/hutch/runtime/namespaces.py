"""Which namespaces a container gets, made new or joined through a path."""

from __future__ import annotations

import errno
import os

from hutch.errors import InvalidArgument
from hutch.linux.constants import CLONE_NEWUSER, NAMESPACES
from hutch.linux.syscalls import setns

# Join order: the user namespace first (it owns the others), mount last, since
# setns(mnt) changes our root and the paths of the other namespace files.
JOIN_ORDER = ("user", "ipc", "uts", "network", "pid", "cgroup", "time", "mount")


class NamespacePlan:
    """The namespaces of one container: ``new`` types to unshare, ``join`` type -> path."""

    def __init__(self, namespaces: list[dict]) -> None:
        self.new: list[str] = []
        self.join: dict[str, str] = {}
        for ns in namespaces:
            kind = ns["type"]
            if ns.get("path"):
                self.join[kind] = ns["path"]
            else:
                self.new.append(kind)

    def has(self, kind: str) -> bool:
        return kind in self.new or kind in self.join

    def unshare_flags(self, exclude_user: bool = True) -> int:
        flags = 0
        for kind in self.new:
            if exclude_user and kind == "user":
                continue
            flags |= NAMESPACES[kind][0]
        return flags

    def open_join_fds(self) -> list[tuple[str, int]]:
        """Open the namespace files to join, in join order (before any setns)."""
        fds: list[tuple[str, int]] = []
        try:
            for kind in JOIN_ORDER:
                path = self.join.get(kind)
                if path is None:
                    continue
                try:
                    fds.append((kind, os.open(path, os.O_RDONLY | os.O_CLOEXEC)))
                except OSError as e:
                    raise InvalidArgument(
                        f"linux.namespaces: {kind} namespace path {path}: {e.strerror}") from None
        except BaseException:
            for _, fd in fds:
                os.close(fd)
            raise
        return fds


def join_all(fds: list[tuple[str, int]], skip_user: bool = False) -> None:
    for kind, fd in fds:
        if skip_user and kind == "user":
            continue
        try:
            setns(fd, NAMESPACES[kind][0], what=f"{kind} namespace")
        except OSError as e:
            raise OSError(e.errno, f"join {kind} namespace: {e.strerror}") from None
        finally:
            os.close(fd)


def join_user_last(fds: list[tuple[str, int]]) -> None:
    """Join namespaces including a user namespace, keeping the privileges each needs.

    Joining the user namespace drops every capability outside it, so a namespace it
    does not own (a network namespace the engine made, owned by the host's) can no
    longer be joined after it. So, as nsenter does: join the others first, keep those
    that refuse (EPERM: not privileged there, e.g. rootless) for after the user
    namespace, which then owns them. ``fds`` are in JOIN_ORDER; all are closed.
    """
    user = [(k, fd) for k, fd in fds if k == "user"]
    others = [(k, fd) for k, fd in fds if k != "user"]
    if not user:
        join_all(others)
        return
    later: list[tuple[str, int]] = []
    try:
        while others:
            kind, fd = others[0]
            try:
                setns(fd, NAMESPACES[kind][0], what=f"{kind} namespace")
            except OSError as e:
                if e.errno != errno.EPERM:
                    raise OSError(e.errno, f"join {kind} namespace: {e.strerror}") from None
                later.append((kind, fd))
            else:
                os.close(fd)
            others.pop(0)
    except BaseException:
        for _, fd in others + later + user:
            os.close(fd)
        raise
    join_all(user + later)


def same_as_host(pid: int, kind: str) -> bool:
    """True when process ``pid`` shares our namespace of this kind."""
    name = NAMESPACES[kind][1]
    try:
        a = os.stat(f"/proc/self/ns/{name}")
        b = os.stat(f"/proc/{pid}/ns/{name}")
    except FileNotFoundError:
        return True
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


USER_FLAG = CLONE_NEWUSER
