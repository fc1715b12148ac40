"""linux.resources on cgroup v1: check everything against the hierarchies, then plan.

Each setting goes to the hierarchy that has its controller. On a hybrid host a
controller that no v1 hierarchy has but the cgroup2 one offers (hugetlb, say) is
driven there, through the v2 modules. ``plan()`` reads but writes nothing; the
manager runs the plan with ``convert.run``.
"""

from __future__ import annotations

from hutch.cgroups.mode import UNIFIED
from hutch.cgroups.v1 import blkio, cpu, cpuset, devices, hugetlb, memory, net, pids, rdma
from hutch.cgroups.v2 import resources as v2
from hutch.errors import Unsupported

WHERE = "linux.resources"


class _Where:
    """Finds the directory for each controller."""

    def __init__(self, paths: dict[str, str]) -> None:
        self.paths = paths
        self.unified = paths.get(UNIFIED)
        self._v2: set[str] | None = None

    def v2_has(self, controller: str) -> bool:
        if self.unified is None:
            return False
        if self._v2 is None:
            self._v2 = v2.available(self.unified)
        return controller in self._v2

    def find(self, v1_name: str, v2_name: str | None, what: str) -> tuple[int, str]:
        if v1_name in self.paths:
            return 1, self.paths[v1_name]
        if v2_name is not None and self.v2_has(v2_name):
            return 2, self.unified  # type: ignore[return-value]
        also = ""
        if self.unified is not None and v2_name is not None:
            also = (f", and the cgroup2 hierarchy does not offer {v2_name} to {self.unified}"
                    " (not in its cgroup.controllers)")
        raise Unsupported(f"{WHERE}.{what}: no cgroup v1 hierarchy with the {v1_name} controller"
                          f" is mounted on this host{also}; mount one, or leave out {what}")


def plan(paths: dict[str, str], res: dict, updating: bool = False) -> list:
    where = _Where(paths)
    steps: list = []
    sets, rest = v2.split_cpu(res.get("cpu", {}))
    if sets:
        version, d = where.find("cpuset", "cpuset", "cpu.cpus" if "cpus" in sets else "cpu.mems")
        steps += cpuset.plan(d, sets) if version == 1 else v2.cpuset.plan(d, sets)
    if rest:
        version, d = where.find("cpu", "cpu", "cpu")
        steps += cpu.plan(d, rest) if version == 1 else v2.cpu.plan(d, rest)
    if "memory" in res:
        version, d = where.find("memory", "memory", "memory")
        steps += (memory.plan(d, res["memory"], updating) if version == 1
                  else v2.memory.plan(d, res["memory"], updating))
    if "pids" in res:
        version, d = where.find("pids", "pids", "pids")
        steps += pids.plan(d, res["pids"]) if version == 1 else v2.pids.plan(d, res["pids"])
    if "blockIO" in res:
        version, d = where.find("blkio", "io", "blockIO")
        steps += blkio.plan(d, res["blockIO"]) if version == 1 else v2.io.plan(d, res["blockIO"])
    if "hugepageLimits" in res:
        version, d = where.find("hugetlb", "hugetlb", "hugepageLimits")
        steps += (hugetlb.plan(d, res["hugepageLimits"]) if version == 1
                  else v2.hugetlb.plan(d, res["hugepageLimits"]))
    network = res.get("network", {})
    if "classID" in network:
        _, d = where.find("net_cls", None, "network.classID")
        steps += net.plan_classid(d, network["classID"])
    if "priorities" in network:
        _, d = where.find("net_prio", None, "network.priorities")
        steps += net.plan_priorities(d, network["priorities"])
    if "rdma" in res:
        _, d = where.find("rdma", "rdma", "rdma")
        steps += rdma.plan(d, res["rdma"])
    if "unified" in res:
        raise Unsupported(f"{WHERE}.unified: raw cgroup v2 keys"
                          f" ({', '.join(sorted(res['unified']))}) need a cgroup v2 host, and"
                          " this one runs the container on cgroup v1; use the structured fields"
                          " (cpu, memory, pids, blockIO...) instead")
    if "devices" in res:
        if "devices" in paths:
            steps += devices.plan(paths["devices"], res["devices"])
        elif where.unified is not None:  # hybrid without v1 devices: BPF needs no controller
            steps += v2.devices.plan(where.unified, res["devices"])
        else:
            where.find("devices", None, "devices")  # raises: nothing can enforce them
    return steps
