"""Container logs as JSON lines, with size-based rotation so they cannot fill the disk.

Each line is ``{"time": RFC3339Nano, "stream": "stdout"|"stderr", "log": text}``, as
Docker's json-file driver writes them. When the file would grow past ``max_size``
it is renamed to ``.1`` (older ones shift up to ``.N``, the oldest dropped).

The writer lives in every shim for the container's whole life, so it encodes with
``minijson`` (no ``json``, ``re``, ``enum``); the readers, used by the CLI, import
``json`` when they run.
"""

from __future__ import annotations

import os
import time

from hutch.shim.minijson import quote


def rfc3339(ns: int) -> str:
    seconds, nanos = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{nanos:09d}Z"


class JsonLog:
    def __init__(self, path: str, max_size: int = 10 << 20, max_files: int = 3) -> None:
        self.path = path
        self.max_size = max_size
        self.max_files = max(1, max_files)
        self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o640)
        self.size = os.fstat(self.fd).st_size
        self._partial: dict[str, bytes] = {}

    # -- handing over to the shim's next image (shim/handover.py) -------------------------

    def handover_state(self) -> dict:
        """What a re-executed shim needs to go on writing: the open file, its size and
        the lines not finished yet (bytes as latin-1 text: any byte survives)."""
        return {"fd": self.fd, "size": self.size,
                "partial": {k: v.decode("latin-1") for k, v in self._partial.items()}}

    @classmethod
    def restore(cls, path: str, max_size: int, max_files: int, state: dict) -> JsonLog:
        log = cls.__new__(cls)
        log.path, log.max_size, log.max_files = path, max_size, max(1, max_files)
        log.fd, log.size = int(state["fd"]), int(state["size"])
        log._partial = {k: v.encode("latin-1") for k, v in state["partial"].items()}
        return log

    def write(self, stream: str, data: bytes) -> None:
        """Log ``data``; complete lines become entries, a partial one waits for its end."""
        buf = self._partial.pop(stream, b"") + data
        *lines, rest = buf.split(b"\n")
        for line in lines:
            self._entry(stream, line + b"\n")
        if rest:
            if len(rest) > 16 << 10:  # a line without end: log it in pieces
                self._entry(stream, rest)
            else:
                self._partial[stream] = rest

    def flush(self) -> None:
        for stream, rest in list(self._partial.items()):
            self._entry(stream, rest)
        self._partial.clear()

    def _entry(self, stream: str, raw: bytes) -> None:
        line = (f'{{"time": "{rfc3339(time.time_ns())}", "stream": {quote(stream)}, '
                f'"log": {quote(raw.decode("utf-8", "replace"))}}}\n').encode()
        if self.size and self.size + len(line) > self.max_size:
            self._rotate()
        os.write(self.fd, line)
        self.size += len(line)

    def _rotate(self) -> None:
        os.close(self.fd)
        if self.max_files == 1:
            os.truncate(self.path, 0)
        else:
            for i in range(self.max_files - 1, 0, -1):
                older = f"{self.path}.{i}"
                newer = self.path if i == 1 else f"{self.path}.{i - 1}"
                if os.path.exists(newer):
                    os.replace(newer, older)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC,
                          0o640)
        self.size = 0

    def close(self) -> None:
        self.flush()
        os.close(self.fd)


def read_entries(path: str, max_files: int = 3) -> list[dict]:
    """Every entry still on disk, oldest first (rotated files included)."""
    return read_rotated(path, max_files) + _read(path)


def read_rotated(path: str, max_files: int = 3) -> list[dict]:
    """The entries of the rotated files only (``path.N`` ... ``path.1``), oldest first."""
    out: list[dict] = []
    for i in range(max_files - 1, 0, -1):
        out += _read(f"{path}.{i}")
    return out


def _read(path: str) -> list[dict]:
    import json
    try:
        with open(path, "rb") as f:
            return [json.loads(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []


class LogFollower:
    """New entries of a log as they are written, read incrementally (not the whole
    file each time). A rotation (the file shrinks or is replaced) starts it over on
    the new file; entries written and rotated away between two reads are missed."""

    def __init__(self, path: str, from_end: bool = True) -> None:
        self.path = path
        self.inode = 0
        self.offset = 0
        self.partial = b""
        if from_end:
            try:
                st = os.stat(path)
                self.inode, self.offset = st.st_ino, st.st_size
            except FileNotFoundError:
                pass

    def read_new(self) -> list[dict]:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return []
        if st.st_ino != self.inode or st.st_size < self.offset:
            self.inode, self.offset, self.partial = st.st_ino, 0, b""
        if st.st_size == self.offset:
            return []
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            data = f.read()
        self.offset += len(data)
        *lines, self.partial = (self.partial + data).split(b"\n")
        import json
        return [json.loads(line) for line in lines if line.strip()]
