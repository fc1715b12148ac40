"""Thin, checked wrappers over the system calls the stdlib of Python 3.11 lacks.

Each wrapper raises ``OSError(errno, "call(args): reason")`` on failure, so the
caller's message can say what was being done and the errno survives.
"""

from __future__ import annotations

import ctypes
import os

from hutch.linux import constants as C
from hutch.linux.libc import check, libc, syscall

_mount = libc.mount
_mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_umount2 = libc.umount2
_umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_prctl = libc.prctl
_prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
_setdomainname = libc.setdomainname
_setdomainname.argtypes = [ctypes.c_char_p, ctypes.c_size_t]


def _b(s: str | bytes | None) -> bytes | None:
    if s is None or isinstance(s, bytes):
        return s
    return os.fsencode(s)


def unshare(flags: int) -> None:
    check(libc.unshare(ctypes.c_int(flags)), "unshare", hex(flags))


def setns(fd: int, nstype: int = 0, what: str = "") -> None:
    check(libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns", what or str(fd))


def mount(source: str | None, target: str, fstype: str | None, flags: int = 0,
          data: str | None = None) -> None:
    ret = _mount(_b(source), _b(target), _b(fstype), flags, _b(data))
    check(ret, "mount", f"{source or 'none'} on {target}, type {fstype or '-'}, flags {flags:#x}"
          + (f", data {data}" if data else ""))


def umount2(target: str, flags: int = 0) -> None:
    check(_umount2(_b(target), flags), "umount2", target)


def pivot_root(new_root: str, put_old: str) -> None:
    syscall(C.SYS_PIVOT_ROOT, _b(new_root), _b(put_old), call="pivot_root", detail=new_root)


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    return check(_prctl(option, arg2, arg3, arg4, arg5), "prctl", str(option))


def setdomainname(name: str) -> None:
    raw = name.encode()
    check(_setdomainname(raw, len(raw)), "setdomainname", name)


class _MountAttr(ctypes.Structure):
    _fields_ = [("attr_set", ctypes.c_uint64), ("attr_clr", ctypes.c_uint64),
                ("propagation", ctypes.c_uint64), ("userns_fd", ctypes.c_uint64)]


def mount_setattr(dirfd: int, path: str, flags: int, attr_set: int = 0, attr_clr: int = 0,
                  propagation: int = 0, userns_fd: int = 0) -> None:
    attr = _MountAttr(attr_set, attr_clr, propagation, userns_fd)
    syscall(C.SYS_MOUNT_SETATTR, ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags),
            ctypes.byref(attr), ctypes.c_size_t(ctypes.sizeof(attr)),
            call="mount_setattr", detail=path)


def open_tree(dirfd: int, path: str, flags: int) -> int:
    return syscall(C.SYS_OPEN_TREE, ctypes.c_int(dirfd), _b(path), ctypes.c_uint(flags),
                   call="open_tree", detail=path)


def move_mount(from_fd: int, from_path: str, to_fd: int, to_path: str, flags: int) -> None:
    syscall(C.SYS_MOVE_MOUNT, ctypes.c_int(from_fd), _b(from_path), ctypes.c_int(to_fd),
            _b(to_path), ctypes.c_uint(flags), call="move_mount", detail=to_path)


class _OpenHow(ctypes.Structure):
    _fields_ = [("flags", ctypes.c_uint64), ("mode", ctypes.c_uint64),
                ("resolve", ctypes.c_uint64)]


def openat2(dirfd: int, path: str, flags: int, mode: int = 0, resolve: int = 0) -> int:
    how = _OpenHow(flags | os.O_CLOEXEC, mode, resolve)
    return syscall(C.SYS_OPENAT2, ctypes.c_int(dirfd), _b(path), ctypes.byref(how),
                   ctypes.c_size_t(ctypes.sizeof(how)), call="openat2", detail=path)


def execveat(fd: int, argv: list[str], env: list[str]) -> None:
    """execveat(fd, "", argv, env, AT_EMPTY_PATH); returns only on failure (raises)."""
    def cvec(items: list[str]) -> ctypes.Array[ctypes.c_char_p]:
        arr = (ctypes.c_char_p * (len(items) + 1))()
        arr[:-1] = [os.fsencode(i) for i in items]
        arr[-1] = None
        return arr
    syscall(C.SYS_EXECVEAT, ctypes.c_int(fd), b"", cvec(argv), cvec(env),
            ctypes.c_int(C.AT_EMPTY_PATH), call="execveat", detail=argv[0] if argv else "")
