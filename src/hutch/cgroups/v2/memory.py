"""The v2 memory controller.

v2 limits swap alone (memory.swap.max), so OCI's memory+swap becomes swap - limit
(runc's ConvertMemorySwapToCgroupV2Value); with only memory.swap given, the limit
in force (memory.max) is used. Settings v2 has no file for (swappiness,
disableOOMKiller, kernel, kernelTCP) are skipped with an ``IgnoredLimit`` warning,
as runc does.
"""

from __future__ import annotations

import errno
import os

from hutch.cgroups import files
from hutch.cgroups.convert import UNLIMITED, Write, swap_only, v2_value, warn_ignored
from hutch.errors import InvalidArgument, Unsupported

WHERE = "linux.resources.memory"


def _usage_hint(d: str):  # type: ignore[no-untyped-def]
    def explain(err: int) -> str | None:
        if err != errno.EBUSY:
            return None
        usage = files.read_optional(os.path.join(d, "memory.current"))
        return f"the cgroup uses {usage} bytes and the kernel could not reclaim enough"
    return explain


def plan(d: str, mem: dict, updating: bool = False) -> list:
    steps: list = []

    def f(name: str) -> str:
        return os.path.join(d, name)

    limit, swap = mem.get("limit"), mem.get("swap")
    old_max = files.read_optional(f("memory.max"))
    if updating and mem.get("checkBeforeUpdate") and limit not in (None, UNLIMITED):
        usage = int(files.read(f("memory.current")))
        if usage > limit:  # type: ignore[operator]
            raise InvalidArgument(f"{WHERE}.limit: {limit} is below the current usage of"
                                  f" {usage} bytes (checkBeforeUpdate is set)")
    if limit == UNLIMITED and swap is None:
        swap = UNLIMITED  # as on v1: unlimited memory lifts the swap limit too (runc)
    if swap is not None:
        in_force = limit
        if in_force is None and old_max is not None:
            in_force = UNLIMITED if old_max.strip() == "max" else int(old_max)
        swap_max = swap_only(swap, in_force)
        path = f("memory.swap.max")
        if os.path.exists(path):
            steps.append(Write(path, v2_value(swap_max), files.read_optional(path)))
        elif swap_max not in (UNLIMITED, 0):
            raise Unsupported(f"{WHERE}.swap: this host has no swap accounting ({path} is"
                              " missing; needs CONFIG_MEMCG_SWAP and swapaccount on), so swap"
                              " cannot be limited")
    if limit is not None:
        steps.append(Write(f("memory.max"), v2_value(limit), old_max, _usage_hint(d)))
    if "reservation" in mem:
        path = f("memory.low")
        steps.append(Write(path, v2_value(mem["reservation"]), files.read_optional(path)))
    for key, why in (("kernel", "kernel memory is part of memory.max in v2"),
                     ("kernelTCP", "TCP buffer memory is part of memory.max in v2"),
                     ("swappiness", "cgroup v2 has no per-cgroup swappiness"),):
        if key in mem:
            warn_ignored(f"{WHERE}.{key}: ignored on cgroup v2 ({why})")
    if mem.get("disableOOMKiller"):
        warn_ignored(f"{WHERE}.disableOOMKiller: ignored on cgroup v2, which cannot switch the"
                     " OOM killer off (runc ignores it too)")
    if mem.get("useHierarchy") is False:
        raise Unsupported(f"{WHERE}.useHierarchy: false is not possible on cgroup v2, which"
                          " always accounts hierarchically")
    return steps
