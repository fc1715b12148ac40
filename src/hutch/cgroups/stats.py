"""What a cgroup uses, in runc's stats shape: the "data" of `runc events --stats`.

``v1_stats(paths)`` reads a cgroup spread over v1 hierarchies (``paths`` maps a
controller to its directory, as the v1 manager keeps it), ``v2_stats(directory)``
one cgroup of the unified hierarchy. Both return the same dict, with runc's JSON
names (runc/types/events.go)::

    cpu      usage {total, percpu, percpu_kernel, percpu_user, kernel, user}   ns
             throttling {periods, throttledPeriods, throttledTime}              ns
    cpuset   cpus, mems (lists), and the v1 flags
    memory   cache, usage/swap/kernel/kernelTCP {usage, max, failcnt, limit}    bytes
             raw (memory.stat), event_count {low, high, max, oom, oom_kill}
    pids     current, limit (0: no limit, as runc)
    blkio    ioServiceBytesRecursive, ioServicedRecursive, ...: [{major, minor, op, value}]
    hugetlb  {"2MB": {usage, max, failcnt}}

Where the two versions differ, v2 is mapped to the v1 meaning, as runc does:
cpu.stat's microseconds become nanoseconds; swap is memory+swap (v2 counts swap
alone); "no memory limit" is 2^64-1 on v2 (v1 shows its own huge number);
memory failcnt on v2 is memory.events "max". The OOM kill count is in
memory.event_count.oom_kill (v1: memory.oom_control; v1 has no count of OOM
events without a kill, so "oom" is the kill count there).

Unlike runc's Go encoder, which leaves zeros and empty lists out, every key is
present; a reader of runc's JSON takes a missing key as zero, so both read alike.
A controller the cgroup does not have reads as zeros. Stdlib only.
"""

from __future__ import annotations

import errno
import os

from hutch.cgroups import files
from hutch.cgroups.mode import UNIFIED
from hutch.errors import NotFound, SystemFailure

UINT64_MAX = (1 << 64) - 1  # runc's "no limit" for v2 memory (math.MaxUint64)
NS_PER_US = 1000

CPUSET_FLAGS = ("cpu_exclusive", "mem_hardwall", "mem_exclusive", "memory_migrate",
                "memory_spread_page", "memory_spread_slab", "memory_pressure",
                "sched_load_balance", "sched_relax_domain_level")

# v1 blkio files (without the "blkio." + scheduler prefix) and their runc names.
BLKIO_FILES = (("io_service_bytes_recursive", "ioServiceBytesRecursive"),
               ("io_serviced_recursive", "ioServicedRecursive"),
               ("io_queued_recursive", "ioQueueRecursive"),
               ("io_service_time_recursive", "ioServiceTimeRecursive"),
               ("io_wait_time_recursive", "ioWaitTimeRecursive"),
               ("io_merged_recursive", "ioMergedRecursive"),
               ("time_recursive", "ioTimeRecursive"),
               ("sectors_recursive", "sectorsRecursive"))
# v2 io.stat keys: (runc list, op)
IO_STAT_KEYS = {"rbytes": ("ioServiceBytesRecursive", "Read"),
                "wbytes": ("ioServiceBytesRecursive", "Write"),
                "dbytes": ("ioServiceBytesRecursive", "Discard"),
                "rios": ("ioServicedRecursive", "Read"),
                "wios": ("ioServicedRecursive", "Write"),
                "dios": ("ioServicedRecursive", "Discard")}


def _entry() -> dict:
    return {"limit": 0, "usage": 0, "max": 0, "failcnt": 0}


def empty() -> dict:
    """The stats of a cgroup that uses nothing: every key, zero."""
    return {
        "cpu": {"usage": {"total": 0, "percpu": [], "percpu_kernel": [], "percpu_user": [],
                          "kernel": 0, "user": 0},
                "throttling": {"periods": 0, "throttledPeriods": 0, "throttledTime": 0}},
        "cpuset": {"cpus": [], "mems": [], **{k: 0 for k in CPUSET_FLAGS}},
        "memory": {"cache": 0, "usage": _entry(), "swap": _entry(), "kernel": _entry(),
                   "kernelTCP": _entry(), "raw": {},
                   "event_count": {"low": 0, "high": 0, "max": 0, "oom": 0, "oom_kill": 0}},
        "pids": {"current": 0, "limit": 0},
        "blkio": {name: [] for _, name in BLKIO_FILES},
        "hugetlb": {},
        "intel_rdt": {},
        "network_interfaces": None,
    }


# --- parsing (pure: tested on samples) ------------------------------------------------------

def to_int(text: str | None, unlimited: int = UINT64_MAX) -> int:
    """A cgroup number: "max" (and v1's -1) become ``unlimited``; None and "" become 0."""
    if text is None:
        return 0
    t = text.strip()
    if not t:
        return 0
    if t == "max":
        return unlimited
    n = int(t)
    return unlimited if n < 0 else n


def parse_keyed(text: str | None) -> dict[str, int]:
    """"key value" lines (memory.stat, cpu.stat, pids.events...) as ints; others dropped."""
    out: dict[str, int] = {}
    for line in (text or "").splitlines():
        key, _, value = line.strip().partition(" ")
        value = value.strip()
        if key and value.lstrip("-").isdigit():
            out[key] = int(value)
        elif key and value == "max":
            out[key] = UINT64_MAX
    return out


def parse_list(text: str | None) -> list[int]:
    """A cpu or node list ("0-3,6") as numbers."""
    out: list[int] = []
    for part in (text or "").strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def parse_blkio(text: str | None) -> list[dict]:
    """A v1 blkio file: "8:0 Read 4096" (or "8:0 4096") lines; the "Total N" line is dropped."""
    out = []
    for line in (text or "").splitlines():
        fields = line.split()
        if len(fields) < 2 or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        op, value = (fields[1], fields[2]) if len(fields) >= 3 else ("", fields[1])
        if not (major.isdigit() and minor.isdigit() and value.isdigit()):
            continue
        out.append({"major": int(major), "minor": int(minor), "op": op, "value": int(value)})
    return out


def parse_io_stat(text: str | None) -> dict[str, list[dict]]:
    """v2 io.stat ("8:0 rbytes=1 wbytes=2 rios=3 ...") as runc's blkio lists."""
    out: dict[str, list[dict]] = {"ioServiceBytesRecursive": [], "ioServicedRecursive": []}
    for line in (text or "").splitlines():
        fields = line.split()
        if not fields or ":" not in fields[0]:
            continue
        major, _, minor = fields[0].partition(":")
        if not (major.isdigit() and minor.isdigit()):
            continue
        for kv in fields[1:]:
            key, _, value = kv.partition("=")
            if key in IO_STAT_KEYS and value.isdigit():
                name, op = IO_STAT_KEYS[key]
                out[name].append({"major": int(major), "minor": int(minor), "op": op,
                                  "value": int(value)})
    return out


def parse_usage_all(text: str | None) -> tuple[list[int], list[int]]:
    """cpuacct.usage_all ("cpu user system" then one line per cpu): (kernel, user) per cpu."""
    kernel: list[int] = []
    user: list[int] = []
    for line in (text or "").splitlines()[1:]:
        fields = line.split()
        if len(fields) == 3 and all(f.isdigit() for f in fields):
            user.append(int(fields[1]))
            kernel.append(int(fields[2]))
    return kernel, user


# --- reading ----------------------------------------------------------------------------------

def _read(directory: str | None, name: str) -> str | None:
    """A file of the cgroup, or None when the cgroup lacks it (that controller is absent)."""
    if directory is None:
        return None
    try:
        return files.read(os.path.join(directory, name))
    except SystemFailure as e:
        # ENOENT: no such file here; ENODEV/EOPNOTSUPP: a file this cgroup cannot show.
        if e.errno in (errno.ENOENT, errno.ENODEV, errno.EOPNOTSUPP, errno.EINVAL):
            return None
        raise


def _require(directories: list[str]) -> None:
    missing = [d for d in dict.fromkeys(directories) if not os.path.isdir(d)]
    if missing:
        raise NotFound(f"cannot read stats: cgroup {' '.join(missing)} does not exist"
                       " (the container was deleted, or never had this cgroup)")


def _hugetlb_sizes(directory: str | None, suffix: str) -> list[str]:
    from hutch.cgroups.v1.hugetlb import sizes
    return sizes(directory, suffix) if directory else []


def _pids(out: dict, directory: str | None) -> None:
    current = _read(directory, "pids.current")
    if current is not None:
        out["pids"]["current"] = to_int(current)
        # runc: "max" is a limit of 0 (none)
        out["pids"]["limit"] = to_int(_read(directory, "pids.max"), unlimited=0)


def v1_stats(paths: dict[str, str]) -> dict:
    """Stats of a v1 cgroup: ``paths`` maps controllers ("cpu", "memory"...) to directories."""
    _require([d for k, d in paths.items() if k != UNIFIED])
    out = empty()

    # cpu: cpuacct for usage, cpu for throttling (often one co-mounted directory)
    acct = paths.get("cpuacct")
    total = _read(acct, "cpuacct.usage")
    if total is not None:
        usage = out["cpu"]["usage"]
        usage["total"] = to_int(total)
        usage["percpu"] = [int(x) for x in (_read(acct, "cpuacct.usage_percpu") or "").split()]
        usage["percpu_kernel"], usage["percpu_user"] = parse_usage_all(
            _read(acct, "cpuacct.usage_all"))
        user, system = _read(acct, "cpuacct.usage_user"), _read(acct, "cpuacct.usage_sys")
        if user is not None and system is not None:
            usage["user"], usage["kernel"] = to_int(user), to_int(system)
        else:  # older kernels: cpuacct.stat in USER_HZ ticks, as runc reads it
            ticks = parse_keyed(_read(acct, "cpuacct.stat"))
            hz = os.sysconf("SC_CLK_TCK")
            usage["user"] = ticks.get("user", 0) * 1_000_000_000 // hz
            usage["kernel"] = ticks.get("system", 0) * 1_000_000_000 // hz
    cpu_stat = parse_keyed(_read(paths.get("cpu"), "cpu.stat"))
    out["cpu"]["throttling"] = {"periods": cpu_stat.get("nr_periods", 0),
                                "throttledPeriods": cpu_stat.get("nr_throttled", 0),
                                "throttledTime": cpu_stat.get("throttled_time", 0)}

    # cpuset
    cs = paths.get("cpuset")
    if cs is not None:
        from hutch.cgroups.v1.cpuset import _file
        out["cpuset"]["cpus"] = parse_list(_read(cs, os.path.basename(_file(cs, "cpus"))))
        out["cpuset"]["mems"] = parse_list(_read(cs, os.path.basename(_file(cs, "mems"))))
        for flag in CPUSET_FLAGS:
            text = _read(cs, f"cpuset.{flag}")
            if text is not None and text.strip().lstrip("-").isdigit():
                out["cpuset"][flag] = int(text)

    # memory
    mem = paths.get("memory")
    if _read(mem, "memory.usage_in_bytes") is not None:
        m = out["memory"]
        m["raw"] = parse_keyed(_read(mem, "memory.stat"))
        m["cache"] = m["raw"].get("cache", 0)
        for key, prefix in (("usage", "memory"), ("swap", "memory.memsw"),
                            ("kernel", "memory.kmem"), ("kernelTCP", "memory.kmem.tcp")):
            usage = _read(mem, f"{prefix}.usage_in_bytes")
            if usage is None:
                continue
            m[key] = {"limit": to_int(_read(mem, f"{prefix}.limit_in_bytes")),
                      "usage": to_int(usage),
                      "max": to_int(_read(mem, f"{prefix}.max_usage_in_bytes")),
                      "failcnt": to_int(_read(mem, f"{prefix}.failcnt"))}
        oom = parse_keyed(_read(mem, "memory.oom_control"))
        kills = oom.get("oom_kill", 0)
        m["event_count"] = {"low": 0, "high": 0, "max": m["usage"]["failcnt"], "oom": kills,
                            "oom_kill": kills}

    _pids(out, paths.get("pids"))

    # blkio: the CFQ files, else BFQ's, else the throttle ones (which count all I/O), as runc
    bio = paths.get("blkio")
    if bio is not None:
        for scheduler in ("blkio.", "blkio.bfq.", "blkio.throttle."):
            found = {name: parse_blkio(_read(bio, scheduler + f)) for f, name in BLKIO_FILES}
            if any(found.values()) or scheduler == "blkio.throttle.":
                out["blkio"].update(found)
                break

    # hugetlb: a v1 controller, or (hybrid hosts) in the cgroup2 hierarchy
    huge = paths.get("hugetlb")
    if huge is not None:
        for size in _hugetlb_sizes(huge, "limit_in_bytes"):
            out["hugetlb"][size] = {
                "usage": to_int(_read(huge, f"hugetlb.{size}.usage_in_bytes")),
                "max": to_int(_read(huge, f"hugetlb.{size}.max_usage_in_bytes")),
                "failcnt": to_int(_read(huge, f"hugetlb.{size}.failcnt"))}
    elif paths.get(UNIFIED) and os.path.isdir(paths[UNIFIED]):
        _v2_hugetlb(out, paths[UNIFIED])
    return out


def _v2_hugetlb(out: dict, d: str) -> None:
    for size in _hugetlb_sizes(d, "current"):
        out["hugetlb"][size] = {
            "usage": to_int(_read(d, f"hugetlb.{size}.current")),
            "max": 0,  # v2 keeps no peak
            "failcnt": parse_keyed(_read(d, f"hugetlb.{size}.events")).get("max", 0)}


def v2_stats(directory: str) -> dict:
    """Stats of one cgroup v2 directory, mapped to the v1 meanings as runc does."""
    _require([directory])
    d = directory
    out = empty()

    cpu = parse_keyed(_read(d, "cpu.stat"))  # always there: the core keeps usage
    out["cpu"]["usage"].update(total=cpu.get("usage_usec", 0) * NS_PER_US,
                               user=cpu.get("user_usec", 0) * NS_PER_US,
                               kernel=cpu.get("system_usec", 0) * NS_PER_US)
    out["cpu"]["throttling"] = {"periods": cpu.get("nr_periods", 0),
                                "throttledPeriods": cpu.get("nr_throttled", 0),
                                "throttledTime": cpu.get("throttled_usec", 0) * NS_PER_US}

    cpus = _read(d, "cpuset.cpus.effective")
    if cpus is not None:
        out["cpuset"]["cpus"] = parse_list(cpus)
        out["cpuset"]["mems"] = parse_list(_read(d, "cpuset.mems.effective"))

    current = _read(d, "memory.current")
    if current is not None:
        m = out["memory"]
        m["raw"] = parse_keyed(_read(d, "memory.stat"))
        m["cache"] = m["raw"].get("file", 0)
        events = parse_keyed(_read(d, "memory.events"))
        m["usage"] = {"limit": to_int(_read(d, "memory.max")), "usage": to_int(current),
                      "max": to_int(_read(d, "memory.peak")), "failcnt": events.get("max", 0)}
        swap = _read(d, "memory.swap.current")
        if swap is not None:
            # runc reports memory+swap, the v1 meaning
            swap_max = to_int(_read(d, "memory.swap.max"))
            limit = m["usage"]["limit"]
            swap_peak = _read(d, "memory.swap.peak")
            m["swap"] = {
                "limit": UINT64_MAX if UINT64_MAX in (swap_max, limit) else swap_max + limit,
                "usage": to_int(swap) + m["usage"]["usage"],
                "max": to_int(swap_peak) + m["usage"]["max"] if swap_peak is not None else 0,
                "failcnt": parse_keyed(_read(d, "memory.swap.events")).get("max", 0)}
        m["event_count"] = {k: events.get(k, 0) for k in ("low", "high", "max", "oom",
                                                           "oom_kill")}

    _pids(out, d)
    if _read(d, "pids.current") is None:
        # no pids controller here: count the processes, as runc does
        from hutch.cgroups.tree import walk_pids
        out["pids"]["current"] = len(walk_pids(d))

    io = _read(d, "io.stat")
    if io is not None:
        out["blkio"].update(parse_io_stat(io))

    _v2_hugetlb(out, d)
    return out


def of(manager: object) -> dict:
    """The stats of a manager's cgroup (V1Manager, V2Manager)."""
    version = getattr(manager, "version", 0)
    if version == 1:
        return v1_stats(manager.paths)  # type: ignore[attr-defined]
    if version == 2:
        return v2_stats(manager.directory)  # type: ignore[attr-defined]
    from hutch.errors import Unsupported
    raise Unsupported("no stats: this container runs without a cgroup, so nothing counts"
                      " what it uses")


# --- OOM notifications ------------------------------------------------------------------------

class OomWatch:
    """Tells when the kernel's OOM killer strikes in a cgroup (`runc events`' "oom").

    v1: an eventfd registered in cgroup.event_control for memory.oom_control (the
    kernel signals it at every OOM in the cgroup, and once more when the cgroup is
    removed); when that cannot be set up, the oom_kill counter of memory.oom_control
    is polled. v2: the oom_kill (or oom) count of memory.events is polled. ``wait()``
    returns how many OOM notifications came in; ``gone`` turns true when the cgroup
    went away.
    """

    def __init__(self, manager: object) -> None:
        version = getattr(manager, "version", 0)
        if version == 1:
            self.directory = getattr(manager, "paths", {}).get("memory")
            self.file = "memory.oom_control"
        elif version == 2:
            self.directory = getattr(manager, "directory", None)
            self.file = "memory.events"
        else:
            self.directory = None
            self.file = ""
        self.gone = False
        self._efd: int | None = None
        self._control_fd: int | None = None
        self._last = self._count()
        if version == 1 and self.directory is not None:
            self._register()

    def _count(self) -> int:
        if self.directory is None:
            return 0
        events = parse_keyed(_read(self.directory, self.file))
        if self.file == "memory.events":
            return max(events.get("oom_kill", 0), events.get("oom", 0))
        return events.get("oom_kill", 0)

    def _register(self) -> None:
        assert self.directory is not None
        try:
            efd = os.eventfd(0, os.EFD_CLOEXEC | os.EFD_NONBLOCK)
        except (AttributeError, OSError):
            return
        cfd = -1
        try:
            cfd = os.open(os.path.join(self.directory, self.file), os.O_RDONLY | os.O_CLOEXEC)
            files.write(os.path.join(self.directory, "cgroup.event_control"), f"{efd} {cfd}")
        except OSError:  # SystemFailure too
            os.close(efd)
            if cfd >= 0:
                os.close(cfd)
            return  # no event_control (a v1 kernel built without it): poll the counter
        self._efd, self._control_fd = efd, cfd

    def wait(self, timeout: float) -> int:
        """Wait up to ``timeout`` seconds; the number of OOMs seen (0: none, or gone)."""
        import select
        import time

        if self.directory is None or self.gone:
            if timeout > 0:
                time.sleep(timeout)
            return 0
        if self._efd is not None:
            ready, _, _ = select.select([self._efd], [], [], timeout)
            if not ready:
                return 0
            try:
                os.eventfd_read(self._efd)
            except BlockingIOError:
                return 0
            if not os.path.exists(os.path.join(self.directory, "cgroup.event_control")):
                self.gone = True  # the kernel signals the eventfd once when the cgroup goes
                return 0
            return 1  # one event per wake-up, as runc sends
        if timeout > 0:
            time.sleep(timeout)
        if not os.path.isdir(self.directory):
            self.gone = True
            return 0
        now = self._count()
        seen, self._last = max(now - self._last, 0), now
        return 1 if seen else 0

    def close(self) -> None:
        for fd in (self._efd, self._control_fd):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self._efd = self._control_fd = None

    def __enter__(self) -> OomWatch:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
