"""A manager that manages nothing, for --no-cgroups and rootless without delegation."""

from __future__ import annotations


class NullCgroupManager:
    version = 0
    path = ""

    def create(self) -> None:
        pass

    def add_pid(self, pid: int) -> None:
        pass

    def freeze(self) -> None:
        pass

    def thaw(self) -> None:
        pass

    def is_frozen(self) -> bool:
        return False

    def pids(self, recursive: bool = True) -> list[int]:
        return []

    def kill_all(self, sig: int) -> None:
        pass

    def exists(self) -> bool:
        return False

    def remove(self, timeout: float = 5.0) -> None:
        pass

    def apply(self, resources: dict) -> None:
        self._refuse(resources, "apply")

    def update(self, resources: dict) -> None:
        self._refuse(resources, "update")

    def _refuse(self, resources: dict, verb: str) -> None:
        from hutch.cgroups import convert
        from hutch.errors import Unsupported

        res = convert.check(resources)  # bad input is still bad input
        if res:
            raise Unsupported(f"cannot {verb} linux.resources ({', '.join(res)}): this container"
                              " runs without a cgroup, so nothing can enforce them; leave them"
                              " out or run it with cgroups")

    def stats(self) -> dict:
        from hutch.cgroups import stats
        return stats.of(self)  # refuses: nothing is measured without a cgroup

    def state(self) -> dict[str, object]:
        return {"version": 0, "path": "", "paths": {}}

    def __repr__(self) -> str:
        return "NullCgroupManager()"
