"""Progress of blob transfers: bars with rich on a terminal, nothing otherwise.

rich is imported only when bars are shown (start-up cost, DESIGN.md).
"""

from __future__ import annotations

import sys
import threading
from typing import Any, Protocol, TextIO


class Progress(Protocol):
    """What pull and push report. Methods are called from several threads."""

    def add(self, key: str, description: str, total: int) -> None: ...

    def advance(self, key: str, n: int) -> None: ...

    def finish(self, key: str, note: str) -> None: ...


class NullProgress:
    def add(self, key: str, description: str, total: int) -> None:
        pass

    def advance(self, key: str, n: int) -> None:
        pass

    def finish(self, key: str, note: str) -> None:
        pass

    def __enter__(self) -> NullProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        pass


class RichProgress:
    """One bar per blob, on ``stream`` (stderr), removed when the ``with`` block ends."""

    def __init__(self, stream: TextIO | None = None) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            DownloadColumn,
            TextColumn,
            TransferSpeedColumn,
        )
        from rich.progress import Progress as _Bars

        self._bars: Any = _Bars(TextColumn("{task.description}"), BarColumn(),
                                DownloadColumn(), TransferSpeedColumn(),
                                TextColumn("{task.fields[note]}"),
                                console=Console(file=stream or sys.stderr), transient=False)
        self._tasks: dict[str, Any] = {}
        self._totals: dict[str, int] = {}
        self._lock = threading.Lock()

    def add(self, key: str, description: str, total: int) -> None:
        with self._lock:
            if key not in self._tasks:
                self._tasks[key] = self._bars.add_task(description, total=total, note="")
                self._totals[key] = total

    def advance(self, key: str, n: int) -> None:
        task = self._tasks.get(key)
        if task is not None:
            self._bars.advance(task, n)

    def finish(self, key: str, note: str) -> None:
        task = self._tasks.get(key)
        if task is not None:
            self._bars.update(task, completed=self._totals[key], note=note)

    def __enter__(self) -> RichProgress:
        self._bars.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._bars.stop()


def make_progress(quiet: bool = False, stream: TextIO | None = None) -> NullProgress | RichProgress:
    """Bars when ``stream`` (stderr) is a terminal and not ``quiet``; else nothing."""
    out = stream or sys.stderr
    if quiet or not out.isatty():
        return NullProgress()
    return RichProgress(out)
