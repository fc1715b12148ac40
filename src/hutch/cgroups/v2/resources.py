"""linux.resources on cgroup v2: check everything against the cgroup, then plan writes.

``plan()`` reads (controllers, current values, the parent's cpuset) but writes
nothing; the manager runs the plan with ``convert.run``. Used for the container's
cgroup on a unified host, and on hybrid hosts for controllers that only the
cgroup2 hierarchy has.
"""

from __future__ import annotations

import os

from hutch.cgroups import files
from hutch.cgroups.convert import Write
from hutch.cgroups.v2 import cpu, cpuset, devices, hugetlb, io, memory, pids, rdma
from hutch.errors import Unsupported

WHERE = "linux.resources"


def available(d: str) -> set[str]:
    """The controllers the cgroup ``d`` can use (its cgroup.controllers)."""
    return set((files.read_optional(os.path.join(d, "cgroup.controllers")) or "").split())


def require(d: str, controller: str, what: str, have: set[str] | None = None) -> None:
    have = available(d) if have is None else have
    if controller not in have:
        parent = os.path.dirname(d)
        raise Unsupported(f"{WHERE}.{what}: the {controller} controller is not enabled for {d}"
                          f" (its cgroup.controllers lists {' '.join(sorted(have)) or 'none'});"
                          f" it must be enabled in {parent}/cgroup.subtree_control, which needs"
                          f" the {controller} controller delegated to {parent}")


def split_cpu(section: dict) -> tuple[dict, dict]:
    """(cpuset part, cpu part) of linux.resources.cpu; a zero realtime runtime asks nothing."""
    sets = {k: v for k, v in section.items() if k in ("cpus", "mems")}
    rest = {k: v for k, v in section.items()
            if k not in ("cpus", "mems") and not (k == "realtimeRuntime" and v == 0)}
    return sets, rest


def plan_unified(d: str, unified: dict[str, str]) -> list:
    steps: list = []
    for key, value in unified.items():
        path = os.path.join(d, key)
        if not os.path.exists(path):
            controller = key.split(".", 1)[0]
            raise Unsupported(f"{WHERE}.unified[{key!r}]: {path} does not exist (the"
                              f" {controller} controller is not enabled for this cgroup, or"
                              " this kernel has no such file)")
        old = files.read_optional(path)
        steps.append(Write(path, value, old if old is not None and "\n" not in old else None))
    return steps


def plan(d: str, res: dict, updating: bool = False) -> list:
    have = available(d)
    steps: list = []
    sets, rest = split_cpu(res.get("cpu", {}))
    if sets:
        require(d, "cpuset", "cpu.cpus" if "cpus" in sets else "cpu.mems", have)
        steps += cpuset.plan(d, sets)
    if rest:
        if not any(k.startswith("realtime") for k in rest):
            require(d, "cpu", "cpu", have)
        steps += cpu.plan(d, rest)
    if "memory" in res:
        require(d, "memory", "memory", have)
        steps += memory.plan(d, res["memory"], updating)
    if "pids" in res:
        require(d, "pids", "pids", have)
        steps += pids.plan(d, res["pids"])
    if "blockIO" in res:
        require(d, "io", "blockIO", have)
        steps += io.plan(d, res["blockIO"])
    if "hugepageLimits" in res:
        require(d, "hugetlb", "hugepageLimits", have)
        steps += hugetlb.plan(d, res["hugepageLimits"])
    if "network" in res:
        raise Unsupported(f"{WHERE}.network: cgroup v2 has no net_cls or net_prio controller;"
                          " mark or prioritise traffic by cgroup with nftables (socket"
                          " cgroupv2) or tc/eBPF instead")
    if "rdma" in res:
        require(d, "rdma", "rdma", have)
        steps += rdma.plan(d, res["rdma"])
    if "unified" in res:
        steps += plan_unified(d, res["unified"])
    if "devices" in res:
        steps += devices.plan(d, res["devices"])
    return steps
