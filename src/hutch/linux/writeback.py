"""Start writing a file's dirty pages to disk without waiting: sync_file_range(2).

A writer that will fsync a large file at its end (a content-store blob) calls
``start_writeback`` every few MiB, so the disk works while the rest arrives and
the closing fsync finds little left to write. It is only a hint: it makes
nothing durable (fsync still does that), and a failure is ignored.
"""

from __future__ import annotations

import ctypes

from hutch.linux.libc import libc

SYNC_FILE_RANGE_WRITE = 2  # linux/fs.h: start write-out of dirty pages not yet submitted

_sync_file_range = libc.sync_file_range
_sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
_sync_file_range.restype = ctypes.c_int


def start_writeback(fd: int, offset: int, length: int) -> bool:
    """Ask the kernel to start writing ``length`` bytes of ``fd`` from ``offset``.

    Returns whether it was accepted (False on a file or a kernel that refuses it:
    nothing to do then, the fsync later writes everything).
    """
    return bool(_sync_file_range(fd, offset, length, SYNC_FILE_RANGE_WRITE) == 0)
