"""Reading and writing cgroup files.

Every failure is a ``SystemFailure`` that keeps the errno and names the file (and
the value, for writes), so "write '1' to .../cgroup.freeze: Device or resource
busy" tells the whole story.
"""

from __future__ import annotations

import errno
import os

from hutch.errors import SystemFailure


def read(path: str) -> str:
    """The content of a cgroup file, without the final newline."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            chunks = []
            while chunk := os.read(fd, 65536):
                chunks.append(chunk)
        finally:
            os.close(fd)
    except OSError as e:
        raise SystemFailure(e.errno or errno.EIO, f"read {path}: {e.strerror}") from e
    return b"".join(chunks).decode("utf-8", "surrogateescape").rstrip("\n")


def read_optional(path: str) -> str | None:
    """Like ``read()``, but None when the file (or its cgroup) does not exist."""
    try:
        return read(path)
    except SystemFailure as e:
        if e.errno == errno.ENOENT:
            return None
        raise


def write(path: str, value: str) -> None:
    """Write ``value`` in one write(2), as cgroup files want it."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, value.encode())
        finally:
            os.close(fd)
    except OSError as e:
        raise SystemFailure(e.errno or errno.EIO,
                            f"write '{value}' to {path}: {e.strerror}") from e


def read_keyed(path: str) -> dict[str, str]:
    """A flat keyed file ("key value" lines, e.g. cgroup.events) as a dict."""
    out = {}
    for line in read(path).splitlines():
        key, _, value = line.partition(" ")
        if key:
            out[key] = value.strip()
    return out


def read_pids(path: str) -> list[int]:
    """The pids in a cgroup.procs file."""
    return [int(line) for line in read(path).split()]
