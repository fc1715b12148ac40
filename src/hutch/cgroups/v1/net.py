"""The v1 net_cls and net_prio controllers (cgroup v2 has neither)."""

from __future__ import annotations

import os

from hutch.cgroups import files
from hutch.cgroups.convert import Write


def plan_classid(d: str, classid: int) -> list:
    path = os.path.join(d, "net_cls.classid")
    return [Write(path, str(classid), files.read_optional(path))]


def plan_priorities(d: str, priorities: list[tuple[str, int]]) -> list:
    path = os.path.join(d, "net_prio.ifpriomap")
    current = {}
    for line in (files.read_optional(path) or "").splitlines():
        name, _, prio = line.partition(" ")
        current[name] = prio.strip()
    return [Write(path, f"{name} {prio}", f"{name} {current.get(name, '0')}")
            for name, prio in priorities]
