"""The v2 cpu controller: cpu.weight (from shares), cpu.max, cpu.max.burst, cpu.idle."""

from __future__ import annotations

import os

from hutch.cgroups import files
from hutch.cgroups.convert import Write, cpu_max, shares_to_weight
from hutch.errors import Unsupported

WHERE = "linux.resources.cpu"


def plan(d: str, cpu: dict) -> list:
    steps: list = []

    def f(name: str) -> str:
        return os.path.join(d, name)

    if cpu.get("realtimeRuntime") or "realtimePeriod" in cpu:
        what = "realtimeRuntime" if cpu.get("realtimeRuntime") else "realtimePeriod"
        raise Unsupported(f"{WHERE}.{what}: cgroup v2 has no realtime group scheduling"
                          " (cpu.rt_runtime_us/cpu.rt_period_us exist only in v1)")
    if "idle" in cpu:
        path = f("cpu.idle")
        if not os.path.exists(path):
            raise Unsupported(f"{WHERE}.idle: this kernel has no SCHED_IDLE cgroups (Linux"
                              f" 5.15+; {path} is missing)")
        steps.append(Write(path, str(cpu["idle"]), files.read_optional(path)))
    if "shares" in cpu:
        path = f("cpu.weight")
        steps.append(Write(path, str(shares_to_weight(cpu["shares"])), files.read_optional(path)))
    quota, period = cpu.get("quota"), cpu.get("period")
    if quota is not None or period is not None:
        path = f("cpu.max")
        old = files.read_optional(path)
        if quota is None:
            # Only the period changes: keep the quota in force (runc would reset it to max).
            text = f"{(old or 'max').split()[0]} {period}"
        else:
            text = cpu_max(quota, period)
        steps.append(Write(path, text, old))
    if "burst" in cpu:
        path = f("cpu.max.burst")
        if not os.path.exists(path):
            raise Unsupported(f"{WHERE}.burst: this kernel has no CFS burst (Linux 5.14+;"
                              f" {path} is missing)")
        steps.append(Write(path, str(cpu["burst"]), files.read_optional(path)))
    return steps
