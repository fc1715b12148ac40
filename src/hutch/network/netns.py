"""Do things inside a network namespace named by a path.

A network namespace is a per-thread attribute, so :func:`call_in` runs a
function in a short-lived thread that first enters the namespace; the caller's
own thread never moves. Sockets keep the namespace they were created in, and a
child process forked from that thread starts in it, so the same trick gives a
netlink socket for pyroute2, a listening-port probe, a sysctl write and a
subprocess (``nft``, ``tc``) in the namespace, without ``ip netns exec``.

``None`` as a namespace means the caller's own: nothing is entered.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from hutch.errors import AlreadyExists, InvalidArgument, NotFound, SystemFailure
from hutch.linux.constants import CLONE_NEWNET, CLONE_NEWUSER, MNT_DETACH, MS_BIND
from hutch.linux.syscalls import mount, setns, umount2, unshare

T = TypeVar("T")

NETNS_RUN_DIR = "/run/netns"


def netns_path(ref: str | int | None) -> str | None:
    """Normalise a namespace reference: a path, a ``/run/netns`` name or a pid."""
    if ref is None:
        return None
    if isinstance(ref, int):
        return f"/proc/{ref}/ns/net"
    if ref.isdigit():
        return f"/proc/{ref}/ns/net"
    if "/" not in ref:
        return os.path.join(NETNS_RUN_DIR, ref)
    return ref


def open_netns(path: str) -> int:
    """An O_RDONLY fd on the namespace file; NotFound when it is gone."""
    try:
        return os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        raise NotFound(f"network namespace {path} does not exist") from None
    except OSError as e:
        raise SystemFailure(e.errno or errno.EIO,
                            f"open network namespace {path}: {e.strerror}") from None


def same_netns(a: str | None, b: str | None) -> bool:
    """True when both references name one namespace (``None`` is our own)."""
    sa = os.stat(a or "/proc/thread-self/ns/net")
    sb = os.stat(b or "/proc/thread-self/ns/net")
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def call_in(path: str | None, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """``fn(*args, **kwargs)`` run in the network namespace at ``path``."""
    if path is None:
        return fn(*args, **kwargs)
    fd = open_netns(path)
    result: list[T] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            try:
                setns(fd, CLONE_NEWNET, path)
            except OSError as e:
                raise SystemFailure(e.errno or errno.EIO,
                                    f"enter network namespace {path}: {e.strerror}") from None
            result.append(fn(*args, **kwargs))
        except BaseException as e:  # handed to the caller's thread
            failure.append(e)

    try:
        thread = threading.Thread(target=run, name=f"netns:{path}", daemon=True)
        thread.start()
        thread.join()
    finally:
        os.close(fd)
    if failure:
        raise failure[0]
    return result[0]


def create_persistent(path: str, owner_userns: str | None = None) -> str:
    """A new, empty network namespace kept alive by a bind mount at ``path`` (as
    ``ip netns add`` does, at a path of our choosing); lo is left down.

    With ``owner_userns`` (a user namespace file) the new namespace belongs to that
    user namespace, so that a container's root in it may use its own network (raw
    sockets, interface settings) as Docker's and LXD's do.
    """
    if os.path.lexists(path):
        raise AlreadyExists(f"network namespace file {path} exists already")
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    try:
        if owner_userns is None:
            _new_netns_here(path)
        else:
            _new_netns_in(path, owner_userns)
    except BaseException:
        os.unlink(path)
        raise
    return path


def _new_netns_here(path: str) -> None:
    failure: list[BaseException] = []

    def make() -> None:
        # The namespace is per thread: only this short-lived thread moves into it.
        try:
            unshare(CLONE_NEWNET)
            mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", path, None, MS_BIND)
        except BaseException as e:
            failure.append(e)

    thread = threading.Thread(target=make, name="netns:create", daemon=True)
    thread.start()
    thread.join()
    if failure:
        e = failure[0]
        if isinstance(e, OSError):
            raise SystemFailure(e.errno or errno.EIO,
                                f"make network namespace {path}: {e.strerror}") from None
        raise e


def _new_netns_in(path: str, userns: str) -> None:
    """A child enters the user namespace (only a single-threaded process may) and
    unshares a network namespace there; we bind it to ``path``, then let it go."""
    user_fd = open_netns(userns)
    ready_r, ready_w = os.pipe()
    done_r, done_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.close(ready_r)
            os.close(done_w)
            setns(user_fd, CLONE_NEWUSER, userns)
            unshare(CLONE_NEWNET)
            os.write(ready_w, b"n")
            os.read(done_r, 1)
            code = 0
        finally:
            os._exit(code)
    os.close(ready_w)
    os.close(done_r)
    os.close(user_fd)
    try:
        if os.read(ready_r, 1) != b"n":
            raise SystemFailure(errno.EPERM, f"make network namespace {path} in user "
                                f"namespace {userns}: the helper process failed")
        try:
            mount(f"/proc/{pid}/ns/net", path, None, MS_BIND)
        except OSError as e:
            raise SystemFailure(e.errno or errno.EIO,
                                f"make network namespace {path}: {e.strerror}") from None
    finally:
        os.close(ready_r)
        os.close(done_w)
        os.waitpid(pid, 0)


def create_persistent_userns(path: str, base: int, size: int = 65536) -> str:
    """A user namespace mapping 0..size-1 to base.. kept alive by a bind mount at
    ``path`` (it owns a container's network namespace)."""
    from hutch.linux.idmap import userns_with
    if os.path.lexists(path):
        raise AlreadyExists(f"user namespace file {path} exists already")
    os.makedirs(os.path.dirname(path), mode=0o711, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o444))
    try:
        fd = userns_with(base, size)
        try:
            mount(f"/proc/self/fd/{fd}", path, None, MS_BIND)
        finally:
            os.close(fd)
    except OSError as e:
        os.unlink(path)
        raise SystemFailure(e.errno or errno.EIO,
                            f"make user namespace {path}: {e.strerror}") from None
    return path


def remove_persistent(path: str) -> bool:
    """Undo :func:`create_persistent` (or ``create_persistent_userns``); False when
    there was nothing at ``path``."""
    if not os.path.lexists(path):
        return False
    try:
        umount2(path, MNT_DETACH)
    except OSError as e:
        if e.errno != errno.EINVAL:  # EINVAL: not a mount point (a crash left the file)
            raise SystemFailure(e.errno or errno.EIO,
                                f"unmount network namespace {path}: {e.strerror}") from None
    os.unlink(path)
    return True


def is_netns(path: str) -> bool:
    """True when ``path`` is a live namespace file (nsfs has one device for all)."""
    try:
        return os.stat(path).st_dev == os.stat("/proc/self/ns/net").st_dev
    except OSError:
        return False


def socket_in(path: str | None, family: int, type: int, proto: int = 0) -> socket.socket:
    """A socket created inside the namespace at ``path``."""
    return call_in(path, socket.socket, family, type, proto)


def run_in(path: str | None, argv: Sequence[str], *, input: str | None = None,
           timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """Run a command in the namespace; never raises for its exit status."""
    def run() -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(argv), input=input, capture_output=True, text=True,
                              timeout=timeout, stdin=None if input is not None else
                              subprocess.DEVNULL)
    try:
        return call_in(path, run)
    except FileNotFoundError:
        raise NotFound(f"{argv[0]} not found: install it (it is part of hutch's "
                       "dependencies)") from None


def _sysctl_file(key: str) -> str:
    if not key or ".." in key or key.startswith("/"):
        raise InvalidArgument(f"bad sysctl name {key!r}")
    return "/proc/sys/" + (key if "/" in key else key.replace(".", "/"))


def write_sysctl(path: str | None, key: str, value: str) -> None:
    """Write a ``net.*`` sysctl as seen from the namespace at ``path``.

    ``key`` is dotted (``net.ipv4.ip_forward``) or a path below /proc/sys (needed
    when an interface name has a dot in it).
    """
    target = _sysctl_file(key)

    def write() -> None:
        with open(target, "w") as f:
            f.write(value)
    try:
        call_in(path, write)
    except FileNotFoundError:
        raise NotFound(f"sysctl {key} does not exist in network namespace "
                       f"{path or 'of the caller'}") from None
    except OSError as e:
        if isinstance(e, SystemFailure):
            raise
        raise SystemFailure(e.errno or errno.EIO,
                            f"write {value} to sysctl {key} in network namespace "
                            f"{path or 'of the caller'}: {e.strerror}") from None


def read_sysctl(path: str | None, key: str) -> str:
    target = _sysctl_file(key)

    def read() -> str:
        with open(target) as f:
            return f.read().strip()
    try:
        return call_in(path, read)
    except FileNotFoundError:
        raise NotFound(f"sysctl {key} does not exist in network namespace "
                       f"{path or 'of the caller'}") from None


def port_in_use(path: str | None, proto: str, port: int, host_ip: str | None = None) -> str | None:
    """Why ``port`` cannot be had in the namespace at ``path``, or None when it is free.

    Tries to bind it (no SO_REUSEADDR), which fails for any socket bound to that
    port on that address or on the wildcard, listening TCP sockets included.
    """
    kind = socket.SOCK_STREAM if proto == "tcp" else socket.SOCK_DGRAM

    def probe() -> str | None:
        with socket.socket(socket.AF_INET, kind) as s:
            if kind == socket.SOCK_STREAM:  # a TIME_WAIT leftover is no owner
                s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind((host_ip or "0.0.0.0", port))
            except OSError as e:
                if e.errno == errno.EADDRINUSE:
                    return "a process in the host's network namespace has bound it"
                if e.errno == errno.EADDRNOTAVAIL:
                    raise InvalidArgument(f"cannot publish on {host_ip}: it is not an "
                                          "address of the host") from None
                return f"bind failed: {e.strerror}"
        return None
    return call_in(path, probe)
