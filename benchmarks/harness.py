"""A small harness to time commands side by side with the installed peers.

Each peer is a command prefix (``["runc"]``, ``["crun", "--debug"]``...). A
benchmark times a callable that runs one command to its end, with
``time.perf_counter_ns`` around it, and prints medians, p90 and the ratio of
each median to a baseline's. Run by hand (as root where runtimes need it), not
by CI: figures from a shared 2-core machine are only comparable within a run.
"""

from __future__ import annotations

import math
import shlex
import shutil
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field


@dataclass
class Peer:
    """A program to compare, as the command prefix that runs it."""

    name: str
    argv: list[str]
    note: str = ""

    def available(self) -> bool:
        return shutil.which(self.argv[0]) is not None

    def version(self) -> str:
        """The first line of ``--version``, or "?"."""
        try:
            out = subprocess.run([self.argv[0], "--version"], capture_output=True, text=True,
                                 timeout=10, stdin=subprocess.DEVNULL)
        except (OSError, subprocess.TimeoutExpired):
            return "?"
        lines = (out.stdout or out.stderr).strip().splitlines()
        return lines[0] if lines else "?"


def time_runs(fn: Callable[[], None], runs: int, warmup: int = 3,
              after: Callable[[], None] | None = None) -> list[int]:
    """Nanoseconds of each of ``runs`` calls of ``fn`` (after ``warmup`` untimed ones).

    ``after`` runs untimed after every call (cleanup, like deleting a container).
    """
    samples = []
    for i in range(warmup + runs):
        start = time.perf_counter_ns()
        fn()
        elapsed = time.perf_counter_ns() - start
        if i >= warmup:
            samples.append(elapsed)
        if after is not None:
            after()
    return samples


def run_checked(argv: Sequence[str], **kw: object) -> None:
    """Run a command to its end, quietly; raise with its stderr if it fails."""
    res = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, text=True, check=False, **kw)  # type: ignore
    if res.returncode != 0:
        raise RuntimeError(f"{shlex.join(argv)} exited with {res.returncode}: "
                           f"{res.stderr.strip()}")


def percentile(samples: Sequence[int], q: float) -> int:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(samples)
    return ordered[max(0, math.ceil(q / 100 * len(ordered)) - 1)]


@dataclass
class Result:
    """The samples of one peer (nanoseconds), or why it has none."""

    name: str
    samples: list[int] = field(default_factory=list)
    note: str = ""
    error: str | None = None

    @property
    def median_ms(self) -> float:
        return statistics.median(self.samples) / 1e6

    @property
    def p90_ms(self) -> float:
        return percentile(self.samples, 90) / 1e6

    @property
    def min_ms(self) -> float:
        return min(self.samples) / 1e6


def time_interleaved(fns: dict[str, Callable[[], None]], runs: int, warmup: int = 3,
                     after: dict[str, Callable[[], None]] | None = None) -> dict[str, Result]:
    """Like :func:`time_runs` for several callables, taking turns run by run, so a
    change of load on the machine weighs on each of them alike.

    A callable that raises is dropped from then on; its Result keeps the error
    (and no samples: a partial series would compare badly).
    """
    results = {name: Result(name) for name in fns}
    for i in range(warmup + runs):
        for name, fn in fns.items():
            result = results[name]
            if result.error is not None:
                continue
            start = time.perf_counter_ns()
            try:
                fn()
            except Exception as e:  # noqa: BLE001 (reported in the table)
                result.error, result.samples = f"failed in run {i + 1}: {e}", []
                continue
            elapsed = time.perf_counter_ns() - start
            if i >= warmup:
                result.samples.append(elapsed)
            if after is not None and name in after:
                after[name]()
    return results


def ratio(results: Sequence[Result], name: str, other: str) -> float | None:
    """Median of ``name`` over median of ``other``, when both have samples."""
    by_name = {r.name: r for r in results if r.samples}
    if name not in by_name or other not in by_name:
        return None
    return by_name[name].median_ms / by_name[other].median_ms


def print_table(results: Sequence[Result], baseline: str | None = None) -> None:
    """One line per peer: runs, median, p90, min (ms) and median / baseline's median."""
    timed = [r for r in results if r.samples]
    base = next((r for r in timed if r.name == baseline), timed[0] if timed else None)
    width = max([len(r.name) for r in results] + [4])
    head = f"{'peer':<{width}}  {'runs':>5}  {'median ms':>10}  {'p90 ms':>8}  {'min ms':>8}"
    if base is not None:
        head += f"  {'x ' + base.name:>{len(base.name) + 2}}"
    print(head)
    print("-" * len(head))
    for r in results:
        if not r.samples:
            print(f"{r.name:<{width}}  {'-':>5}  {r.error or 'no samples'}")
            continue
        line = (f"{r.name:<{width}}  {len(r.samples):>5}  {r.median_ms:>10.2f}  "
                f"{r.p90_ms:>8.2f}  {r.min_ms:>8.2f}")
        if base is not None:
            line += f"  {r.median_ms / base.median_ms:>{len(base.name) + 2}.2f}"
        print(line + (f"  ({r.note})" if r.note else ""))
