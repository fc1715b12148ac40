"""The v1 cpu controller: shares, CFS quota/period/burst, realtime, idle."""

from __future__ import annotations

import errno
import os

from hutch.cgroups import files
from hutch.cgroups.convert import UNLIMITED, Call, Write, v1_value
from hutch.errors import SystemFailure, Unsupported

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

WHERE = "linux.resources.cpu"


def _need(path: str, what: str, why: str) -> str:
    if not os.path.exists(path):
        raise Unsupported(f"{WHERE}.{what}: {why} ({path} is missing)")
    return path


def _paired(first: str, first_value: str | None, second: str,
            second_value: str | None) -> Callable[[], None]:
    """Write ``first`` then ``second``; if the kernel refuses ``first`` with EINVAL only
    because of the old ``second`` value, write ``second`` first and retry (runc's way
    with cfs_period/cfs_quota and rt_period/rt_runtime)."""
    def do() -> None:
        retry = False
        if first_value is not None:
            try:
                files.write(first, first_value)
            except SystemFailure as e:
                if e.errno != errno.EINVAL or second_value is None:
                    raise
                retry = True
        if second_value is not None:
            files.write(second, second_value)
            if retry:
                files.write(first, first_value)  # type: ignore[arg-type]
    return do


def _ratio_above(runtime: int, period: int, other_runtime: int, other_period: int) -> bool:
    """runtime/period > other_runtime/other_period, without floats (-1: unlimited)."""
    if runtime == UNLIMITED:
        return other_runtime != UNLIMITED
    if other_runtime == UNLIMITED:
        return False
    return runtime * other_period > other_runtime * period


def plan(d: str, cpu: dict) -> list:
    steps: list = []

    def f(name: str) -> str:
        return os.path.join(d, name)

    if "idle" in cpu:
        path = _need(f("cpu.idle"), "idle", "this kernel has no SCHED_IDLE cgroups (Linux 5.15+)")
        steps.append(Write(path, str(cpu["idle"]), files.read_optional(path)))
    if "shares" in cpu:
        path = f("cpu.shares")
        steps.append(Write(path, str(cpu["shares"]), files.read_optional(path)))
    period, quota = cpu.get("period"), cpu.get("quota")
    if period is not None or quota is not None:
        p, q = _need(f("cpu.cfs_period_us"), "quota", "this kernel has no CFS bandwidth control"
                     " (CONFIG_CFS_BANDWIDTH)"), f("cpu.cfs_quota_us")
        old_p, old_q = files.read_optional(p), files.read_optional(q)
        steps.append(Call(f"write cpu.cfs_period_us {period} and cpu.cfs_quota_us {quota} in {d}",
                          _paired(p, None if period is None else str(period),
                                  q, None if quota is None else v1_value(quota)),
                          _paired(p, old_p, q, old_q)))
    if "burst" in cpu:
        path = _need(f("cpu.cfs_burst_us"), "burst", "this kernel has no CFS burst (Linux 5.14+)")
        steps.append(Write(path, str(cpu["burst"]), files.read_optional(path)))
    runtime, rt_period = cpu.get("realtimeRuntime"), cpu.get("realtimePeriod")
    if runtime is not None or rt_period is not None:
        steps.extend(_plan_realtime(d, runtime, rt_period))
    return steps


def _plan_realtime(d: str, runtime: int | None, period: int | None) -> list:
    rt = os.path.join(d, "cpu.rt_runtime_us")
    rp = os.path.join(d, "cpu.rt_period_us")
    what = "realtimeRuntime" if runtime is not None else "realtimePeriod"
    _need(rt, what, "this kernel has no realtime group scheduling (CONFIG_RT_GROUP_SCHED, or"
          " it is switched off with rt_group_sched=0)")
    old_rt, old_rp = files.read_optional(rt), files.read_optional(rp)
    if runtime:
        # A cgroup gets no more realtime than its parent has (the kernel says only EINVAL).
        parent = os.path.dirname(d)
        p_rt = files.read_optional(os.path.join(parent, "cpu.rt_runtime_us"))
        p_rp = files.read_optional(os.path.join(parent, "cpu.rt_period_us"))
        mine = period if period is not None else int(old_rp or 1000000)
        if p_rt is not None and p_rp is not None and _ratio_above(runtime, mine, int(p_rt),
                                                                  int(p_rp)):
            raise Unsupported(
                f"{WHERE}.realtimeRuntime: {runtime} µs per {mine} µs is more realtime than the"
                f" parent cgroup {parent} has ({p_rt} µs per {p_rp} µs); a cgroup cannot get"
                " more than its parent, so give the parent realtime runtime first")
    return [Call(f"write cpu.rt_period_us {period} and cpu.rt_runtime_us {runtime} in {d}",
                 _paired(rp, None if period is None else str(period),
                         rt, None if runtime is None else str(runtime)),
                 _paired(rt, old_rt, rp, old_rp))]
