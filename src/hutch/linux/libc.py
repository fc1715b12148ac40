"""The libc handle and the one error check for raw calls.

This package (``hutch.linux``) is the only place in hutch that uses ctypes.
"""

from __future__ import annotations

import ctypes
import os

# CDLL(None) is the already-loaded libc of the interpreter; find_library() would
# spawn ldconfig, which costs milliseconds on every start.
libc = ctypes.CDLL(None, use_errno=True)

_syscall = libc.syscall
_syscall.restype = ctypes.c_long


def check(ret: int, call: str, detail: str = "") -> int:
    """Turn a -1 return into ``OSError(errno, "call(detail): strerror")``."""
    if ret == -1:
        err = ctypes.get_errno()
        where = f"{call}({detail})" if detail else call
        raise OSError(err, f"{where}: {os.strerror(err)}")
    return ret


def syscall(number: int, *args: object, call: str, detail: str = "") -> int:
    """Run a raw system call by number and check its result."""
    return check(_syscall(ctypes.c_long(number), *args), call, detail)


def can_load(soname: str) -> bool:
    """Whether the dynamic loader finds and loads ``soname`` (e.g. "libseccomp.so.2")."""
    try:
        ctypes.CDLL(soname)
    except OSError:
        return False
    return True
