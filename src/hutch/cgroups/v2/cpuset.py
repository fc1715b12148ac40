"""The v2 cpuset controller: cpuset.cpus and cpuset.mems."""

from __future__ import annotations

import os

from hutch.cgroups import files
from hutch.cgroups.convert import Write, format_list
from hutch.cgroups.v1.cpuset import check_available


def plan(d: str, cpu: dict) -> list:
    steps: list = []
    parent = os.path.dirname(d)
    for key in ("cpus", "mems"):
        if key not in cpu:
            continue
        check_available(key, cpu[key], os.path.join(parent, f"cpuset.{key}.effective"), parent)
        path = os.path.join(d, f"cpuset.{key}")
        steps.append(Write(path, format_list(cpu[key][1]), files.read_optional(path)))
    return steps
