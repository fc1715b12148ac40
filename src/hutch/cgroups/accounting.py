"""Resource accounting that reads like OpenVZ's user beancounters (/proc/user_beancounters).

For every resource a cgroup can limit, one row::

    resource   held      maxheld   barrier      limit        failcnt
    memory     current   peak      soft limit   hard limit   times the limit was hit

``rows(manager)`` (or ``v1_rows(paths)`` / ``v2_rows(directory)``) returns the rows
as data; ``format_beancounters()`` prints them in /proc/user_beancounters' layout.

The resources and where each number comes from:

==========  =====  ===========================  ===================================
resource    unit   v1                           v2
==========  =====  ===========================  ===================================
memory      bytes  memory.usage_in_bytes,       memory.current, memory.peak,
                   max_usage_in_bytes,          memory.high, memory.max,
                   soft_limit_in_bytes,         memory.events max / oom_kill
                   limit_in_bytes, failcnt /
                   oom_control oom_kill
memsw/swap  bytes  memory.memsw.* (memory+swap) memory.swap.* (swap alone)
numproc     tasks  pids.current, pids.peak,     the same files
                   pids.max (barrier = limit),
                   pids.events max (forks
                   refused)
cpu         us     cpu.cfs_quota_us per         cpu.max; cpu.stat nr_throttled
                   cpu.cfs_period_us; cpu.stat
                   nr_throttled
hugetlb.SZ  bytes  hugetlb.SZ.usage_in_bytes,   hugetlb.SZ.current, .max,
                   .max_usage_in_bytes,         .events max
                   .limit_in_bytes, .failcnt
==========  =====  ===========================  ===================================

Choices, where OpenVZ and cgroups do not line up:

- **Unlimited** is 9223372036854775807 (LONG_MAX), the number OpenVZ shows for "no
  limit", whatever the kernel wrote ("max", -1, or v1's page-rounded 2^63-4096).
- **memory failcnt** is the kernel's count of limit hits (v1 memory.failcnt, v2
  memory.events "max"), or the number of OOM kills when that is larger: since
  Linux 6.x a v1 charge that the OOM killer resolves no longer counts in
  memory.failcnt, so an OOM-killed cgroup could otherwise show 0.
- **barrier** is the soft limit: v1 memory.soft_limit_in_bytes, v2 memory.high (the
  level above which v2 throttles and reclaims; memory.low is a protection, not a
  limit). Resources without a soft limit (pids, cpu, hugetlb) repeat the limit
  there, as OpenVZ does for its hard-only resources.
- **cpu** is a rate, not a level: barrier and limit are the quota in microseconds
  of CPU time per period (the period is in ``Row.unit``, e.g. "us/100000us"),
  failcnt counts the periods in which the quota ran out (throttled). held and
  maxheld are None (printed "-"): CPU time is not held. The CPU time used is in
  the stats (stats.py).
- **maxheld** is None ("-") where the kernel keeps no peak (v2 before Linux 5.19
  for memory, hugetlb on v2, pids before 6.x).

A row is left out when the cgroup lacks that controller. Stdlib only.
"""

from __future__ import annotations

import os

from hutch.cgroups import stats
from hutch.cgroups.mode import UNIFIED
from hutch.errors import NotFound

UNLIMITED = 9223372036854775807  # LONG_MAX: OpenVZ's "no limit"
_HUGE = 1 << 62  # v1 writes "no limit" as a number near 2^63


class Row:
    """One beancounter: numbers are ints (UNLIMITED for no limit) or None (not kept)."""

    __slots__ = ("barrier", "failcnt", "held", "limit", "maxheld", "resource", "unit")

    def __init__(self, resource: str, held: int | None, maxheld: int | None, barrier: int,
                 limit: int, failcnt: int, unit: str = "") -> None:
        self.resource = resource
        self.held = held
        self.maxheld = maxheld
        self.barrier = barrier
        self.limit = limit
        self.failcnt = failcnt
        self.unit = unit

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in ("resource", "held", "maxheld", "barrier",
                                              "limit", "failcnt", "unit")}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Row) and self.as_dict() == other.as_dict()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (f"Row({self.resource!r}, held={self.held}, maxheld={self.maxheld},"
                f" barrier={self.barrier}, limit={self.limit}, failcnt={self.failcnt})")


def limit_value(text: str | None) -> int:
    """A limit as the kernel shows it ("max", -1, v1's huge number, a number) in beancounter
    terms: UNLIMITED for no limit. A missing file is no limit too."""
    if text is None:
        return UNLIMITED
    t = text.strip()
    if t in ("", "max"):
        return UNLIMITED
    n = int(t)
    return UNLIMITED if n < 0 or n >= _HUGE else n


def _num(text: str | None) -> int | None:
    return None if text is None or not text.strip() else int(text.strip())


def _read(directory: str | None, name: str) -> str | None:
    return stats._read(directory, name)


def _events(directory: str | None, name: str) -> dict[str, int]:
    return stats.parse_keyed(_read(directory, name))


def _pids_row(d: str | None) -> Row | None:
    current = _num(_read(d, "pids.current"))
    if current is None:
        return None
    limit = limit_value(_read(d, "pids.max"))
    return Row("numproc", current, _num(_read(d, "pids.peak")), limit, limit,
               _events(d, "pids.events").get("max", 0), "tasks")


def _cpu_row(quota: int | None, period: int | None, throttled: int) -> Row:
    """quota None or negative: no limit."""
    limit = UNLIMITED if quota is None or quota < 0 else quota
    return Row("cpu", None, None, limit, limit, throttled,
               f"us/{period}us" if period else "us")


def _hugetlb_rows(d: str, v2: bool) -> list[Row]:
    out = []
    for size in stats._hugetlb_sizes(d, "current" if v2 else "limit_in_bytes"):
        p = f"hugetlb.{size}."
        if v2:
            limit = limit_value(_read(d, p + "max"))
            out.append(Row(f"hugetlb.{size}", _num(_read(d, p + "current")), None, limit, limit,
                           _events(d, p + "events").get("max", 0), "bytes"))
        else:
            limit = limit_value(_read(d, p + "limit_in_bytes"))
            out.append(Row(f"hugetlb.{size}", _num(_read(d, p + "usage_in_bytes")),
                           _num(_read(d, p + "max_usage_in_bytes")), limit, limit,
                           _num(_read(d, p + "failcnt")) or 0, "bytes"))
    return out


def _require(directories: list[str]) -> None:
    missing = [d for d in dict.fromkeys(directories) if not os.path.isdir(d)]
    if missing:
        raise NotFound(f"cannot read accounting: cgroup {' '.join(missing)} does not exist")


def v1_rows(paths: dict[str, str]) -> list[Row]:
    """The beancounters of a cgroup spread over v1 hierarchies (controller -> directory)."""
    _require([d for k, d in paths.items() if k != UNIFIED])
    rows: list[Row] = []
    mem = paths.get("memory")
    usage = _num(_read(mem, "memory.usage_in_bytes"))
    if usage is not None:
        kills = _events(mem, "memory.oom_control").get("oom_kill", 0)
        rows.append(Row("memory", usage, _num(_read(mem, "memory.max_usage_in_bytes")),
                        limit_value(_read(mem, "memory.soft_limit_in_bytes")),
                        limit_value(_read(mem, "memory.limit_in_bytes")),
                        max(_num(_read(mem, "memory.failcnt")) or 0, kills), "bytes"))
        memsw = _num(_read(mem, "memory.memsw.usage_in_bytes"))
        if memsw is not None:
            limit = limit_value(_read(mem, "memory.memsw.limit_in_bytes"))
            rows.append(Row("memsw", memsw, _num(_read(mem, "memory.memsw.max_usage_in_bytes")),
                            limit, limit, _num(_read(mem, "memory.memsw.failcnt")) or 0,
                            "bytes"))
    row = _pids_row(paths.get("pids"))
    if row:
        rows.append(row)
    cpu = paths.get("cpu")
    quota = _num(_read(cpu, "cpu.cfs_quota_us"))
    if quota is not None:
        throttled = _events(cpu, "cpu.stat").get("nr_throttled", 0)
        rows.append(_cpu_row(quota, _num(_read(cpu, "cpu.cfs_period_us")), throttled))
    if paths.get("hugetlb"):
        rows += _hugetlb_rows(paths["hugetlb"], v2=False)
    elif paths.get(UNIFIED) and os.path.isdir(paths[UNIFIED]):
        rows += _hugetlb_rows(paths[UNIFIED], v2=True)  # hybrid: hugetlb lives in cgroup2
    return rows


def v2_rows(directory: str) -> list[Row]:
    """The beancounters of one cgroup v2 directory."""
    _require([directory])
    d = directory
    rows: list[Row] = []
    current = _num(_read(d, "memory.current"))
    if current is not None:
        events = _events(d, "memory.events")
        rows.append(Row("memory", current, _num(_read(d, "memory.peak")),
                        limit_value(_read(d, "memory.high")), limit_value(_read(d, "memory.max")),
                        max(events.get("max", 0), events.get("oom_kill", 0)), "bytes"))
        swap = _num(_read(d, "memory.swap.current"))
        if swap is not None:
            rows.append(Row("swap", swap, _num(_read(d, "memory.swap.peak")),
                            limit_value(_read(d, "memory.swap.high")),
                            limit_value(_read(d, "memory.swap.max")),
                            _events(d, "memory.swap.events").get("max", 0), "bytes"))
    row = _pids_row(d)
    if row:
        rows.append(row)
    cpu_max = _read(d, "cpu.max")
    if cpu_max is not None:
        quota_text, _, period_text = cpu_max.strip().partition(" ")
        quota = None if quota_text == "max" else int(quota_text)
        period = int(period_text) if period_text.isdigit() else None
        rows.append(_cpu_row(quota, period, _events(d, "cpu.stat").get("nr_throttled", 0)))
    rows += _hugetlb_rows(d, v2=True)
    return rows


def rows(manager: object) -> list[Row]:
    """The beancounters of a manager's cgroup (V1Manager or V2Manager)."""
    version = getattr(manager, "version", 0)
    if version == 1:
        return v1_rows(manager.paths)  # type: ignore[attr-defined]
    if version == 2:
        return v2_rows(manager.directory)  # type: ignore[attr-defined]
    from hutch.errors import Unsupported
    raise Unsupported("no accounting: this container runs without a cgroup, so nothing"
                      " counts or limits what it uses")


def _cell(value: int | None) -> str:
    return "-" if value is None else str(value)


HEADER = ("       uid  resource                     held              maxheld"
          "              barrier                limit              failcnt")


def format_beancounters(groups: list[tuple[str, list[Row]]], version: str = "2.5") -> str:
    """/proc/user_beancounters' layout: ``groups`` is [(name, rows)], the name in the uid
    column (OpenVZ's container id). Not-kept numbers print as "-"."""
    lines = [f"Version: {version}", HEADER]
    for name, group_rows in groups:
        if len(name) >= 10 and group_rows:  # OpenVZ's ids fit; a long group name gets a line
            lines.append(f"{name}:")
        for i, r in enumerate(group_rows):
            label = f"{name}:" if i == 0 and len(name) < 10 else ""
            lines.append(f"{label:>10}  {r.resource:<12}{_cell(r.held):>21}{_cell(r.maxheld):>21}"
                         f"{_cell(r.barrier):>21}{_cell(r.limit):>21}{_cell(r.failcnt):>21}")
        if not group_rows:
            lines.append(f"{name + ':':>10}  (no limited resources: no controller here)")
    return "\n".join(lines) + "\n"

