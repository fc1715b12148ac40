"""``hutch top``: the processes of a container, from its cgroup (as ``docker top``).

Read from /proc on the host side: host pids and host uids (a container with its
own user namespace shows its root as its id base), like ``ps -ef``'s columns.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING

from hutch.errors import WrongState

if TYPE_CHECKING:
    from hutch.engine.api import Engine

COLUMNS = ("UID", "PID", "PPID", "STIME", "TIME", "CMD")


def _clock() -> int:
    return os.sysconf("SC_CLK_TCK")


def _boot_time() -> float:
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("btime "):
                return float(line.split()[1])
    return 0.0


def process_row(pid: int, boot: float, tick: int) -> dict | None:
    """One process as ps -ef shows it, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
        with open(f"/proc/{pid}/status") as f:
            uid = next(line.split()[1] for line in f if line.startswith("Uid:"))
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().rstrip(b"\0").split(b"\0")
    except (FileNotFoundError, ProcessLookupError, StopIteration):
        return None
    name, _, rest = stat.rpartition(")")
    fields = rest.split()
    cpu = (int(fields[11]) + int(fields[12])) // tick  # utime + stime
    started = boot + int(fields[19]) / tick
    cmd = b" ".join(argv).decode("utf-8", "replace") if argv != [b""] else \
        "[" + name.split(" (", 1)[1] + "]"
    return {"UID": uid, "PID": pid, "PPID": int(fields[1]),
            "STIME": time.strftime("%H:%M", time.localtime(started)),
            "TIME": f"{cpu // 3600:02d}:{cpu // 60 % 60:02d}:{cpu % 60:02d}", "CMD": cmd}


def top(engine: Engine, ref: str) -> list[dict]:
    """The processes in a running container's cgroup, by pid."""
    from hutch.runtime.container import Container
    row = engine.db.find(ref)
    if engine.status(row["id"]) != "running":
        raise WrongState(f"container {row['name']} is not running")
    cg = Container(engine.layout.runtime_root, row["id"]).cgroup
    if cg is None or not cg.exists():
        raise WrongState(f"container {row['name']} has no cgroup")
    boot, tick = _boot_time(), _clock()
    rows = [process_row(pid, boot, tick) for pid in sorted(set(cg.pids()))]
    return [r for r in rows if r is not None]
