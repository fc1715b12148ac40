"""Files written whole or not at all: temp file, fsync, rename, fsync the directory.

``json`` is imported by the functions that use it: the shim's steady state writes
through ``write_atomic`` without it (see hutch.shim.minijson).
"""

from __future__ import annotations

import os


def write_atomic(path: str, data: bytes, mode: int = 0o644) -> None:
    directory = os.path.dirname(path) or "."
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, mode)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def write_json_atomic(path: str, obj: object, mode: int = 0o644) -> None:
    import json
    write_atomic(path, json.dumps(obj, separators=(",", ":")).encode(), mode)


def read_json(path: str) -> object:
    import json
    with open(path, "rb") as f:
        return json.loads(f.read())
